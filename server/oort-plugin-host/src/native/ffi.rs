//! The host side of the native ABI: loading a library with libloading, reading
//! its table, and calling it. All of the host's unsafe code is in this module;
//! everything above it sees safe methods on [`Library`].
//!
//! Lifetime rule: a [`Library`] is only dropped (dlclose'd) when no `Arc` of it
//! is left, and every adapter, source or sink instance holds one, so no call can
//! be in flight and no plugin object can be alive when it is unloaded.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use oort_plugin::abi::{self, EntryFn, Handle, OortBuf, OortStr, OortValue, PluginTable, status, tag};

use crate::error::HostError;

/// The functions of a library's table, copied out of it.
#[derive(Clone, Copy)]
struct Table {
    free_buf: extern "C" fn(OortBuf),
    free_values: extern "C" fn(*mut OortValue, usize),
    describe: extern "C" fn() -> OortBuf,
    function_validate: extern "C" fn(u32, *const OortValue, usize, *mut OortBuf) -> i32,
    function_invoke: extern "C" fn(u32, OortStr, *const OortValue, usize, usize, *mut OortValue, *mut OortBuf) -> i32,
    source_configure: extern "C" fn(u32, OortStr, *mut OortBuf) -> i32,
    source_open: extern "C" fn(u32, OortStr, *mut Handle, *mut OortBuf) -> i32,
    source_read: extern "C" fn(Handle, u32, *mut OortBuf) -> i32,
    source_close: extern "C" fn(Handle, *mut OortBuf) -> i32,
    sink_configure: extern "C" fn(u32, OortStr, *mut OortBuf) -> i32,
    sink_open: extern "C" fn(u32, OortStr, *mut Handle, *mut OortBuf) -> i32,
    sink_collect: extern "C" fn(Handle, OortStr, *mut OortBuf) -> i32,
    sink_close: extern "C" fn(Handle, *mut OortBuf) -> i32,
}

/// A loaded plugin library.
pub struct Library {
    table: Table,
    /// The plugin's name and version as the library reports them.
    pub name: String,
    /// See `name`.
    pub version: String,
    /// ABI version of the library.
    pub abi: (u32, u32),
    /// The encoded `DescribeResponse`.
    pub describe: Vec<u8>,
    /// Tells this library from the others for the watchdog.
    pub(crate) id: u64,
    /// Why the library is unhealthy: set when one of its calls did not return.
    stuck: OnceLock<String>,
    // Last: the table's functions must not outlive the mapping.
    _lib: libloading::Library,
}

/// The most bytes the host copies out of one buffer or value that a plugin
/// returns: a plugin shares the server's memory, not its trust.
pub const MAX_RETURN_BYTES: usize = 64 << 20;

/// The longest error message kept from a plugin.
const MAX_ERROR_BYTES: usize = 4096;

/// One result of a function call, borrowed from the plugin until the next row.
#[derive(Debug, Clone, Copy)]
pub enum RawResult<'a> {
    /// NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// BIGINT.
    Int(i64),
    /// FLOAT.
    Float(f64),
    /// DATETIME, ns since the epoch.
    Timestamp(i64),
    /// UTF-8 bytes (unchecked).
    String(&'a [u8]),
    /// BYTEA.
    Bytes(&'a [u8]),
    /// An encoded `oort.v1.Value`.
    Encoded(&'a [u8]),
    /// This row failed: the message.
    Error(&'a [u8]),
    /// A tag this host does not know (a newer minor).
    Unknown(u32),
    /// A value of more than [`MAX_RETURN_BYTES`] bytes: its length.
    TooLarge(usize),
}

/// A source or sink instance created by a plugin. Only the [`Library`] that made
/// it may use or close it.
pub struct RawHandle(Handle);

// SAFETY: the SDK requires sources and sinks to be `Send`, and the host uses a
// handle from one thread at a time (it is owned by one source/sink adapter).
unsafe impl Send for RawHandle {}

fn str_of(s: &[u8]) -> OortStr {
    OortStr { ptr: s.as_ptr(), len: s.len() }
}

/// # Safety
/// `s` must point to `len` bytes valid for the call.
unsafe fn read_str(s: OortStr) -> String {
    if s.ptr.is_null() {
        return String::new();
    }
    // SAFETY: per the function's contract.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(s.ptr, s.len) }).into_owned()
}

impl Library {
    /// Loads the library at `path`, checks its ABI version and reads its table.
    pub fn open(path: &Path) -> Result<Library, HostError> {
        // SAFETY: loading a library runs its initialisers. The server only loads
        // libraries an operator installed, which is the trust model of native
        // plugins (they run in the server's process, with its user).
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| HostError::Library(format!("cannot load {}: {e}", file_name(path))))?;
        // SAFETY: the symbol's type is the ABI's entry type, documented in ABI.md
        // for every version; a library that exports the name with another type
        // breaks the ABI contract.
        let entry: EntryFn = unsafe { lib.get::<EntryFn>(abi::ENTRY_SYMBOL.as_bytes()) }
            .map(|symbol| *symbol)
            .map_err(|_| {
                HostError::Library(format!(
                    "{} does not export the symbol `{}`: it is not an Oort native plugin (build it with oort_plugin::export_plugin!)",
                    file_name(path),
                    abi::ENTRY_SYMBOL
                ))
            })?;
        // SAFETY: the entry point takes no arguments and returns a pointer to a
        // table with 'static lifetime inside the library (or null).
        let table_ptr = unsafe { entry() };
        if table_ptr.is_null() {
            return Err(HostError::Library(format!("{}: the plugin failed to initialise", file_name(path))));
        }
        // SAFETY: every ABI version starts the table with the two u32 version
        // fields, so reading them is valid whatever the library's version.
        let (major, minor) = unsafe { ((*table_ptr).abi_major, (*table_ptr).abi_minor) };
        // SAFETY: as above, for the name, read only to name the plugin in the error.
        let name = unsafe { read_str((*table_ptr).name) };
        if major != abi::ABI_MAJOR {
            return Err(HostError::Abi { plugin: name, has: format!("{major}.{minor}"), needs: abi::ABI_MAJOR });
        }
        // SAFETY: same major: the table has at least the fields of this
        // version's `PluginTable` (minors only append), valid for the library's life.
        let t: &PluginTable = unsafe { &*table_ptr };
        let table = Table {
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
        };
        // SAFETY: the version string lives in the library, valid while it is loaded.
        let version = unsafe { read_str(t.version) };
        static IDS: AtomicU64 = AtomicU64::new(1);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let mut library = Library {
            table,
            name,
            version,
            abi: (major, minor),
            describe: Vec::new(),
            id,
            stuck: OnceLock::new(),
            _lib: lib,
        };
        library.describe = library
            .take_buf((library.table.describe)())
            .map_err(|e| HostError::Library(format!("{}: describe: {e}", file_name(path))))?;
        Ok(library)
    }

    /// Copies at most `limit` bytes of a buffer the plugin returned and gives
    /// it back; `Err(len)` when it is longer and `truncate` is false.
    fn take_buf_bounded(&self, buf: OortBuf, limit: usize, truncate: bool) -> Result<Vec<u8>, usize> {
        if buf.ptr.is_null() {
            return Ok(Vec::new());
        }
        let len = buf.len;
        let copied = if len <= limit || truncate {
            // SAFETY: a non-null buffer from the plugin holds `len` initialised bytes.
            Ok(unsafe { std::slice::from_raw_parts(buf.ptr, len.min(limit)) }.to_vec())
        } else {
            Err(len)
        };
        (self.table.free_buf)(buf);
        copied
    }

    /// Copies a buffer the plugin returned (at most [`MAX_RETURN_BYTES`]) and gives it back.
    fn take_buf(&self, buf: OortBuf) -> Result<Vec<u8>, String> {
        self.take_buf_bounded(buf, MAX_RETURN_BYTES, false)
            .map_err(|len| format!("the plugin returned {len} bytes; at most {MAX_RETURN_BYTES} are accepted"))
    }

    fn error(&self, code: i32, err: OortBuf) -> String {
        let message = self.take_buf_bounded(err, MAX_ERROR_BYTES, true).unwrap_or_default();
        let message = String::from_utf8_lossy(&message).into_owned();
        if message.is_empty() { format!("the plugin returned status {code} without a message") } else { message }
    }

    /// Validates a call of function `index`: `args` are literals or ABSENT.
    pub fn validate(&self, index: u32, args: &[OortValue]) -> Result<(), String> {
        self.healthy()?;
        let mut err = OortBuf::EMPTY;
        let validate = || (self.table.function_validate)(index, args.as_ptr(), args.len(), &mut err);
        match super::watchdog::watched(self.id, validate) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }

    /// Marks the library unhealthy with `message`; false if it was already.
    pub(crate) fn mark_stuck(&self, message: &str) -> bool {
        self.stuck.set(message.to_owned()).is_ok()
    }

    /// Why the library is unhealthy, if it is: one of its calls never returned.
    pub fn stuck(&self) -> Option<&str> {
        self.stuck.get().map(String::as_str)
    }

    /// Fails at once when a call of the library never returned: another call
    /// could only hang too.
    fn healthy(&self) -> Result<(), String> {
        match self.stuck() {
            None => Ok(()),
            Some(why) => Err(format!("plugin {} is unhealthy: {why}", self.name)),
        }
    }

    /// Calls function `index` on `nrows` rows of `nargs` values (row-major) and
    /// hands each row's result to `each`, in order. The arguments' pointers must
    /// point to live memory for the call (they borrow the caller's values).
    /// `results` must hold `nrows` values; the plugin overwrites them.
    #[allow(clippy::too_many_arguments)] // the ABI call's own arguments, plus the result callback
    pub fn invoke(
        &self,
        index: u32,
        rule_id: &str,
        args: &[OortValue],
        nargs: usize,
        nrows: usize,
        results: &mut [OortValue],
        mut each: impl FnMut(RawResult<'_>),
    ) -> Result<(), String> {
        if args.len() != nargs * nrows || results.len() != nrows {
            return Err(format!(
                "{} argument values and {} result slots for {nrows} rows of {nargs}",
                args.len(),
                results.len()
            ));
        }
        self.healthy()?;
        let mut err = OortBuf::EMPTY;
        let code = super::watchdog::watched(self.id, || {
            (self.table.function_invoke)(
                index,
                str_of(rule_id.as_bytes()),
                args.as_ptr(),
                nargs,
                nrows,
                results.as_mut_ptr(),
                &mut err,
            )
        });
        if code != status::OK {
            return Err(self.error(code, err));
        }
        for value in results.iter() {
            let bytes = || {
                if value.ptr.is_null() {
                    return &[][..];
                }
                // SAFETY: the plugin's result values point to `len` bytes it owns
                // until `free_values`, called below after the last use.
                unsafe { std::slice::from_raw_parts(value.ptr, value.len) }
            };
            let sized = matches!(value.tag, tag::STRING | tag::BYTES | tag::ENCODED | tag::ERROR);
            if sized && !value.ptr.is_null() && value.len > MAX_RETURN_BYTES {
                each(RawResult::TooLarge(value.len));
                continue;
            }
            each(match value.tag {
                tag::NULL => RawResult::Null,
                tag::BOOL => RawResult::Bool(value.scalar != 0),
                tag::INT => RawResult::Int(value.scalar as i64),
                tag::FLOAT => RawResult::Float(f64::from_bits(value.scalar)),
                tag::TIMESTAMP => RawResult::Timestamp(value.scalar as i64),
                tag::STRING => RawResult::String(bytes()),
                tag::BYTES => RawResult::Bytes(bytes()),
                tag::ENCODED => RawResult::Encoded(bytes()),
                tag::ERROR => RawResult::Error(bytes()),
                other => RawResult::Unknown(other),
            });
        }
        // Only results that own memory need to go back.
        if results.iter().any(|v| !v.ptr.is_null()) {
            (self.table.free_values)(results.as_mut_ptr(), results.len());
        }
        Ok(())
    }

    /// Checks the configuration of source `index` (an encoded `OpenSourceRequest`).
    pub fn source_configure(&self, index: u32, request: &[u8]) -> Result<(), String> {
        let mut err = OortBuf::EMPTY;
        match (self.table.source_configure)(index, str_of(request), &mut err) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }

    /// Checks the configuration of sink `index` (an encoded `SinkOpen`).
    pub fn sink_configure(&self, index: u32, request: &[u8]) -> Result<(), String> {
        let mut err = OortBuf::EMPTY;
        match (self.table.sink_configure)(index, str_of(request), &mut err) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }

    /// Opens source `index` with an encoded `OpenSourceRequest`.
    pub fn source_open(&self, index: u32, request: &[u8]) -> Result<RawHandle, String> {
        let (mut handle, mut err): (Handle, _) = (std::ptr::null_mut(), OortBuf::EMPTY);
        match (self.table.source_open)(index, str_of(request), &mut handle, &mut err) {
            status::OK if !handle.is_null() => Ok(RawHandle(handle)),
            status::OK => Err("the plugin returned no source".to_owned()),
            code => Err(self.error(code, err)),
        }
    }

    /// Reads from a source: `Some(encoded OpenSourceResponse)`, or `None` at its end.
    pub fn source_read(&self, handle: &mut RawHandle, timeout_ms: u32) -> Result<Option<Vec<u8>>, String> {
        let mut out = OortBuf::EMPTY;
        match (self.table.source_read)(handle.0, timeout_ms, &mut out) {
            status::OK => self.take_buf(out).map(Some),
            status::END => Ok(None),
            code => Err(self.error(code, out)),
        }
    }

    /// Closes a source; the handle is consumed.
    pub fn source_close(&self, handle: RawHandle) -> Result<(), String> {
        let mut err = OortBuf::EMPTY;
        match (self.table.source_close)(handle.0, &mut err) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }

    /// Opens sink `index` with an encoded `SinkOpen`.
    pub fn sink_open(&self, index: u32, request: &[u8]) -> Result<RawHandle, String> {
        let (mut handle, mut err): (Handle, _) = (std::ptr::null_mut(), OortBuf::EMPTY);
        match (self.table.sink_open)(index, str_of(request), &mut handle, &mut err) {
            status::OK if !handle.is_null() => Ok(RawHandle(handle)),
            status::OK => Err("the plugin returned no sink".to_owned()),
            code => Err(self.error(code, err)),
        }
    }

    /// Delivers an encoded `SinkBatch`.
    pub fn sink_collect(&self, handle: &mut RawHandle, batch: &[u8]) -> Result<(), String> {
        let mut err = OortBuf::EMPTY;
        match (self.table.sink_collect)(handle.0, str_of(batch), &mut err) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }

    /// Closes a sink; the handle is consumed.
    pub fn sink_close(&self, handle: RawHandle) -> Result<(), String> {
        let mut err = OortBuf::EMPTY;
        match (self.table.sink_close)(handle.0, &mut err) {
            status::OK => Ok(()),
            code => Err(self.error(code, err)),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
