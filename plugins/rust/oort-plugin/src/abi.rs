//! The native C ABI, version [`ABI_MAJOR`].[`ABI_MINOR`]: the `#[repr(C)]` types
//! that cross the boundary between `oortd` and a plugin library. `plugins/ABI.md`
//! is the prose version of this file.
//!
//! A library exports one symbol, [`ENTRY_SYMBOL`], an `extern "C" fn() -> *const
//! PluginTable`. The table's first two fields are the ABI version and never move,
//! so that a host can read them from a library of any version and refuse it with
//! a clear message. No Rust type, allocator or panic crosses: values are
//! [`OortValue`]s (scalars inline, strings borrowed or owned by the side that
//! allocated them), structured data is protobuf (`oort.plugin.v1` messages), and
//! every buffer a plugin hands out is given back to its `free_*` functions.

use std::ffi::c_void;

/// Incompatible changes bump the major: a host refuses a library of another major.
pub const ABI_MAJOR: u32 = 1;
/// Compatible additions (fields appended to the table) bump the minor.
pub const ABI_MINOR: u32 = 0;
/// The symbol every native plugin exports.
pub const ENTRY_SYMBOL: &str = "oort_plugin_entry";

/// Status codes returned by table functions.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// Failure; the error buffer holds a UTF-8 message.
    pub const ERROR: i32 = 1;
    /// A source has no more events.
    pub const END: i32 = 2;
}

/// Tags of [`OortValue`].
pub mod tag {
    /// SQL NULL.
    pub const NULL: u32 = 0;
    /// `scalar` is 0 or 1.
    pub const BOOL: u32 = 1;
    /// `scalar` is an `i64`.
    pub const INT: u32 = 2;
    /// `scalar` holds the bits of an `f64`.
    pub const FLOAT: u32 = 3;
    /// `ptr`/`len`: UTF-8 bytes.
    pub const STRING: u32 = 4;
    /// `ptr`/`len`: bytes.
    pub const BYTES: u32 = 5;
    /// `scalar`: nanoseconds since the Unix epoch, UTC, as an `i64`.
    pub const TIMESTAMP: u32 = 6;
    /// `ptr`/`len`: an encoded `oort.v1.Value` (lists and maps).
    pub const ENCODED: u32 = 7;
    /// In results only: this row failed; `ptr`/`len` is the UTF-8 message.
    pub const ERROR: u32 = 8;
    /// In `validate` only: the argument is not a literal.
    pub const ABSENT: u32 = 9;
}

/// A value crossing the boundary. Arguments borrow the host's memory for the
/// duration of the call; results that point to memory (strings, bytes, encoded,
/// errors) were allocated by the plugin and go back to `free_values`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OortValue {
    /// One of [`tag`].
    pub tag: u32,
    /// Bool, int, float bits or timestamp.
    pub scalar: u64,
    /// Start of the bytes, for the tags that have them; null otherwise.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl OortValue {
    /// NULL.
    pub const NULL: OortValue = OortValue { tag: tag::NULL, scalar: 0, ptr: std::ptr::null(), len: 0 };
}

/// A byte buffer allocated by the plugin (a `Vec<u8>` taken apart); it goes back
/// to `free_buf` unless `ptr` is null.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OortBuf {
    /// Start, or null for "no buffer".
    pub ptr: *mut u8,
    /// Length.
    pub len: usize,
    /// Capacity, as allocated.
    pub cap: usize,
}

impl OortBuf {
    /// No buffer.
    pub const EMPTY: OortBuf = OortBuf { ptr: std::ptr::null_mut(), len: 0, cap: 0 };
}

/// Bytes borrowed for the duration of a call (or, in the table, for the life of
/// the library).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OortStr {
    /// Start.
    pub ptr: *const u8,
    /// Length.
    pub len: usize,
}

/// An opaque source or sink instance created by the plugin.
pub type Handle = *mut c_void;

/// The table a plugin exports. Fields are only ever appended (minor versions).
#[repr(C)]
pub struct PluginTable {
    /// ABI major version of the library.
    pub abi_major: u32,
    /// ABI minor version of the library.
    pub abi_minor: u32,
    /// Plugin name (UTF-8).
    pub name: OortStr,
    /// Plugin version (UTF-8).
    pub version: OortStr,
    /// Frees a buffer the plugin returned.
    pub free_buf: extern "C" fn(buf: OortBuf),
    /// Frees the memory of `n` result values the plugin wrote.
    pub free_values: extern "C" fn(values: *mut OortValue, n: usize),
    /// An encoded `oort.plugin.v1.DescribeResponse`: the symbols, in index order.
    pub describe: extern "C" fn() -> OortBuf,
    /// Checks a call of function `index` at plan time; `args` are literals or ABSENT.
    pub function_validate: extern "C" fn(index: u32, args: *const OortValue, nargs: usize, err: *mut OortBuf) -> i32,
    /// Calls function `index` on `nrows` rows of `nargs` arguments (row-major),
    /// writing `nrows` results (values or ERROR) into `results`. A non-OK status
    /// (the whole batch failed) leaves `results` unset and fills `err`.
    pub function_invoke: extern "C" fn(
        index: u32,
        rule_id: OortStr,
        args: *const OortValue,
        nargs: usize,
        nrows: usize,
        results: *mut OortValue,
        err: *mut OortBuf,
    ) -> i32,
    /// Checks a source's configuration (an encoded `OpenSourceRequest`) without
    /// opening it: creates an instance, calls `configure`, drops it.
    pub source_configure: extern "C" fn(index: u32, request: OortStr, err: *mut OortBuf) -> i32,
    /// Creates, configures and opens source `index` from an encoded
    /// `oort.plugin.v1.OpenSourceRequest`.
    pub source_open: extern "C" fn(index: u32, request: OortStr, handle: *mut Handle, err: *mut OortBuf) -> i32,
    /// Waits up to `timeout_ms` for events; OK with an encoded
    /// `oort.plugin.v1.OpenSourceResponse` in `out` (maybe no events), END, or ERROR.
    pub source_read: extern "C" fn(handle: Handle, timeout_ms: u32, out: *mut OortBuf) -> i32,
    /// Closes a source and frees it; the handle is dead afterwards.
    pub source_close: extern "C" fn(handle: Handle, err: *mut OortBuf) -> i32,
    /// Checks a sink's configuration (an encoded `SinkOpen`) without opening it.
    pub sink_configure: extern "C" fn(index: u32, request: OortStr, err: *mut OortBuf) -> i32,
    /// Creates, configures and opens sink `index` from an encoded `oort.plugin.v1.SinkOpen`.
    pub sink_open: extern "C" fn(index: u32, request: OortStr, handle: *mut Handle, err: *mut OortBuf) -> i32,
    /// Delivers an encoded `oort.plugin.v1.SinkBatch`.
    pub sink_collect: extern "C" fn(handle: Handle, batch: OortStr, err: *mut OortBuf) -> i32,
    /// Closes a sink and frees it; the handle is dead afterwards.
    pub sink_close: extern "C" fn(handle: Handle, err: *mut OortBuf) -> i32,
}

/// The type of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginTable;
