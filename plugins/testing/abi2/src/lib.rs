//! Test fixture: exports `oort_plugin_entry` with a table of ABI 2.3, as a
//! plugin built for a future server would. Only the two version fields and
//! the name are laid out as in every ABI version; the host must stop there.

/// The start of every plugin table.
#[repr(C)]
pub struct Table {
    abi_major: u32,
    abi_minor: u32,
    name: *const u8,
    name_len: usize,
}

struct Shared(Table);

// SAFETY: the table is immutable and points to a static string.
unsafe impl Sync for Shared {}

static NAME: &[u8] = b"future";
static TABLE: Shared = Shared(Table { abi_major: 2, abi_minor: 3, name: NAME.as_ptr(), name_len: NAME.len() });

/// The entry point, ABI 2.3.
#[unsafe(no_mangle)]
pub extern "C" fn oort_plugin_entry() -> *const Table {
    &TABLE.0
}
