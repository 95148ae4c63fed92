//! Test fixture: a plugin whose table says ABI 1.5, as one built with a newer
//! SDK of the same major would. It is the SDK's own table with the minor
//! raised, so everything else works: the server must load it and call it.

use std::sync::OnceLock;

use oort_plugin::abi::{ABI_MINOR, PluginTable};
use oort_plugin::{Context, Function, Plugin, Value};

struct Plus;

impl Function for Plus {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        Ok(Value::Int(args.iter().filter_map(Value::as_i64).sum()))
    }
}

/// `newer_blob(n)`: a string of `n` bytes, to check the host's bound on what it copies.
struct Blob;

impl Function for Blob {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let n = args.first().and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
        Ok(Value::String("x".repeat(n)))
    }
}

/// `newer_sleep(ms)`: returns `ms` after sleeping that long, to check the
/// host's watchdog of calls that do not return.
struct Sleep;

impl Function for Sleep {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let ms = args.first().and_then(Value::as_i64).unwrap_or(0).max(0);
        std::thread::sleep(std::time::Duration::from_millis(ms as u64));
        Ok(Value::Int(ms))
    }
}

fn plugin() -> Plugin {
    Plugin::new("newer", "0.1.0")
        .function("newer_plus", Plus)
        .function("newer_blob", Blob)
        .function("newer_sleep", Sleep)
}

struct Shared(PluginTable);

// SAFETY: the table holds pointers to 'static data of the SDK and functions only.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

static TABLE: OnceLock<Shared> = OnceLock::new();

/// The entry point: the SDK's table, minor version raised by 5.
#[unsafe(no_mangle)]
pub extern "C" fn oort_plugin_entry() -> *const PluginTable {
    let base = oort_plugin::export::entry(plugin);
    if base.is_null() {
        return base;
    }
    let table = TABLE.get_or_init(|| {
        // SAFETY: the SDK's table is 'static and fully initialised.
        let t = unsafe { &*base };
        Shared(PluginTable {
            abi_major: t.abi_major,
            abi_minor: ABI_MINOR + 5,
            name: t.name,
            version: t.version,
            free_buf: t.free_buf,
            free_values: t.free_values,
            describe: t.describe,
            function_validate: t.function_validate,
            function_invoke: t.function_invoke,
            source_configure: t.source_configure,
            source_open: t.source_open,
            source_read: t.source_read,
            source_close: t.source_close,
            sink_configure: t.sink_configure,
            sink_open: t.sink_open,
            sink_collect: t.sink_collect,
            sink_close: t.sink_close,
        })
    });
    &table.0
}
