//! Test fixture: a valid dynamic library without the plugin entry point.

/// Some other symbol.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> i32 {
    42
}
