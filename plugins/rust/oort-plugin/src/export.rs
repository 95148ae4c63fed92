//! The plugin side of the ABI: the `extern "C"` functions of the
//! [`PluginTable`] that [`export_plugin!`](crate::export_plugin) exports. All of
//! the SDK's unsafe code is here. Every entry point catches panics and turns
//! them into errors; every buffer it hands out is freed by `free_buf` or
//! `free_values`, that is by this library's allocator.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;

use crate::abi::{self, Handle, OortBuf, OortStr, OortValue, PluginTable, status, tag};
use crate::api::{Context, Plugin, Sink, Source, Symbol};
use crate::value::{self, Value};
use crate::wire;

static PLUGIN: OnceLock<Option<Plugin>> = OnceLock::new();

thread_local! {
    static ARGS: std::cell::Cell<Vec<Value>> = const { std::cell::Cell::new(Vec::new()) };
}
static TABLE: OnceLock<Table> = OnceLock::new();

/// The table, made shareable: it holds only pointers to `'static` data and functions.
struct Table(PluginTable);

// SAFETY: the table's pointers point to the `'static` PLUGIN strings, which are
// never mutated after initialisation, and to functions; sharing them is sound.
unsafe impl Sync for Table {}
// SAFETY: as above.
unsafe impl Send for Table {}

/// The body of the exported entry point: builds the plugin once (a panic in
/// `init` yields a null table, which the host reports) and returns the table.
pub fn entry(init: fn() -> Plugin) -> *const PluginTable {
    let plugin = PLUGIN.get_or_init(|| match catch_unwind(init) {
        Ok(plugin) => Some(plugin),
        Err(panic) => {
            eprintln!("oort plugin: building the plugin panicked: {}", panic_message(&*panic));
            None
        }
    });
    let Some(plugin) = plugin else { return std::ptr::null() };
    let table = TABLE.get_or_init(|| {
        Table(PluginTable {
            abi_major: abi::ABI_MAJOR,
            abi_minor: abi::ABI_MINOR,
            name: OortStr { ptr: plugin.name.as_ptr(), len: plugin.name.len() },
            version: OortStr { ptr: plugin.version.as_ptr(), len: plugin.version.len() },
            free_buf,
            free_values,
            describe,
            function_validate,
            function_invoke,
            source_configure,
            source_open,
            source_read,
            source_close,
            sink_configure,
            sink_open,
            sink_collect,
            sink_close,
        })
    });
    &table.0
}

fn plugin() -> Result<&'static Plugin, String> {
    PLUGIN.get().and_then(Option::as_ref).ok_or_else(|| "the plugin is not initialised".to_owned())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn to_buf(bytes: Vec<u8>) -> OortBuf {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    OortBuf { ptr: bytes.as_mut_ptr(), len: bytes.len(), cap: bytes.capacity() }
}

extern "C" fn free_buf(buf: OortBuf) {
    if !buf.ptr.is_null() {
        // SAFETY: a non-null OortBuf comes from `to_buf`, i.e. from a Vec of this
        // library's allocator with exactly this pointer, length and capacity, and
        // the host gives each buffer back once.
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }
}

fn owned(tag: u32, bytes: Vec<u8>) -> OortValue {
    let len = bytes.len();
    let ptr = Box::into_raw(bytes.into_boxed_slice()) as *const u8;
    OortValue { tag, scalar: 0, ptr, len }
}

extern "C" fn free_values(values: *mut OortValue, n: usize) {
    if values.is_null() {
        return;
    }
    // SAFETY: the host passes the `results` array of a successful invoke: `n`
    // values this library wrote, each given back once.
    let values = unsafe { std::slice::from_raw_parts_mut(values, n) };
    for v in values {
        if matches!(v.tag, tag::STRING | tag::BYTES | tag::ENCODED | tag::ERROR) && !v.ptr.is_null() {
            // SAFETY: these tags' pointers come from `owned`: a boxed slice of `len` bytes.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(v.ptr as *mut u8, v.len)) });
            v.ptr = std::ptr::null();
        }
    }
}

/// Runs `f`, turning an error or a panic into the ERROR status with its message in `err`.
fn guard(err: *mut OortBuf, f: impl FnOnce() -> Result<i32, String>) -> i32 {
    let message = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => return code,
        Ok(Err(message)) => message,
        Err(panic) => format!("the plugin panicked: {}", panic_message(&*panic)),
    };
    if !err.is_null() {
        // SAFETY: a non-null `err` points to an OortBuf the host owns for this call.
        unsafe { err.write(to_buf(message.into_bytes())) };
    }
    status::ERROR
}

/// # Safety
/// `s` must point to `len` readable bytes for the lifetime `'a`.
unsafe fn bytes<'a>(s: OortStr) -> &'a [u8] {
    if s.ptr.is_null() || s.len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `s` is valid for 'a.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

/// # Safety
/// The pointer of `v`, for the tags that have one, must point to `len` bytes.
unsafe fn from_raw(v: &OortValue) -> Result<Option<Value>, String> {
    // SAFETY: per the function's contract.
    let data = || unsafe { bytes(OortStr { ptr: v.ptr, len: v.len }) };
    Ok(Some(match v.tag {
        tag::NULL => Value::Null,
        tag::BOOL => Value::Bool(v.scalar != 0),
        tag::INT => Value::Int(v.scalar as i64),
        tag::FLOAT => Value::Float(f64::from_bits(v.scalar)),
        tag::STRING => Value::String(String::from_utf8_lossy(data()).into_owned()),
        tag::BYTES => Value::Bytes(data().to_vec()),
        tag::TIMESTAMP => Value::Timestamp(v.scalar as i64),
        tag::ENCODED => value::from_wire(&wire::Value::decode(data()).map_err(|e| format!("bad argument: {e}"))?),
        tag::ABSENT => return Ok(None),
        other => return Err(format!("unknown value tag {other}")),
    }))
}

fn to_raw(v: Value) -> OortValue {
    let scalar = |tag, scalar| OortValue { tag, scalar, ..OortValue::NULL };
    match v {
        Value::Null => OortValue::NULL,
        Value::Bool(b) => scalar(tag::BOOL, u64::from(b)),
        Value::Int(i) => scalar(tag::INT, i as u64),
        Value::Float(f) => scalar(tag::FLOAT, f.to_bits()),
        Value::Timestamp(ns) => scalar(tag::TIMESTAMP, ns as u64),
        Value::String(s) => owned(tag::STRING, s.into_bytes()),
        Value::Bytes(b) => owned(tag::BYTES, b),
        v @ (Value::List(_) | Value::Map(_)) => owned(tag::ENCODED, value::to_wire(v).encode_to_vec()),
    }
}

fn symbol(index: u32) -> Result<&'static Symbol, String> {
    let plugin = plugin()?;
    plugin.symbols.get(index as usize).map(|(_, s)| s).ok_or_else(|| format!("no symbol with index {index}"))
}

extern "C" fn describe() -> OortBuf {
    let Ok(plugin) = plugin() else { return OortBuf::EMPTY };
    let symbols = plugin
        .symbols
        .iter()
        .map(|(name, symbol)| {
            let (kind, aggregate, description) = match symbol {
                Symbol::Function(f) => (wire::symbol_kind::FUNCTION, f.is_aggregate(), f.description().to_owned()),
                Symbol::Source(_) => (wire::symbol_kind::SOURCE, false, String::new()),
                Symbol::Sink(_) => (wire::symbol_kind::SINK, false, String::new()),
            };
            wire::Symbol { name: name.clone(), kind, aggregate, description }
        })
        .collect();
    let response = wire::DescribeResponse {
        name: plugin.name.clone(),
        version: plugin.version.clone(),
        protocol_version: abi::ABI_MAJOR,
        symbols,
    };
    to_buf(response.encode_to_vec())
}

extern "C" fn function_validate(index: u32, args: *const OortValue, nargs: usize, err: *mut OortBuf) -> i32 {
    guard(err, || {
        let Symbol::Function(f) = symbol(index)? else { return Err(format!("symbol {index} is not a function")) };
        // SAFETY: the host passes `nargs` values it owns for the call.
        let raw = unsafe { slice(args, nargs) };
        // SAFETY: the host's values point to memory it owns for the call.
        let literals = raw.iter().map(|v| unsafe { from_raw(v) }).collect::<Result<Vec<_>, _>>()?;
        f.validate(&literals).map(|()| status::OK)
    })
}

/// # Safety
/// `ptr` must point to `n` values (or `n` must be 0).
unsafe fn slice<'a>(ptr: *const OortValue, n: usize) -> &'a [OortValue] {
    if n == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: per the function's contract.
    unsafe { std::slice::from_raw_parts(ptr, n) }
}

extern "C" fn function_invoke(
    index: u32,
    rule_id: OortStr,
    args: *const OortValue,
    nargs: usize,
    nrows: usize,
    results: *mut OortValue,
    err: *mut OortBuf,
) -> i32 {
    guard(err, || {
        let Symbol::Function(f) = symbol(index)? else { return Err(format!("symbol {index} is not a function")) };
        // SAFETY: the host passes the rule id, valid for the call.
        let rule_id = std::str::from_utf8(unsafe { bytes(rule_id) }).unwrap_or("");
        let ctx = Context { rule_id };
        // SAFETY: the host passes `nrows * nargs` argument values for the call.
        let all = unsafe { slice(args, nrows.saturating_mul(nargs)) };
        if results.is_null() && nrows > 0 {
            return Err("no result array".to_owned());
        }
        // The argument vector is reused across calls on this thread: no allocation
        // per call for scalar arguments.
        let mut row = ARGS.with(|a| a.take());
        for r in 0..nrows {
            row.clear();
            let mut result = Ok(());
            for v in &all[r * nargs..(r + 1) * nargs] {
                // SAFETY: the host's values point to memory it owns for the call.
                match unsafe { from_raw(v) } {
                    Ok(v) => row.push(v.unwrap_or_default()),
                    Err(e) => result = Err(e),
                }
            }
            let out = match result.map(|()| catch_unwind(AssertUnwindSafe(|| f.exec(&ctx, &row)))) {
                Ok(Ok(Ok(v))) => to_raw(v),
                Ok(Ok(Err(message))) | Err(message) => owned(tag::ERROR, message.into_bytes()),
                Ok(Err(panic)) => owned(tag::ERROR, format!("panicked: {}", panic_message(&*panic)).into_bytes()),
            };
            // SAFETY: the host's `results` array holds `nrows` values.
            unsafe { results.add(r).write(out) };
        }
        row.clear();
        ARGS.with(|a| a.replace(row));
        Ok(status::OK)
    })
}

extern "C" fn source_configure(index: u32, request: OortStr, err: *mut OortBuf) -> i32 {
    guard(err, || {
        let Symbol::Source(new) = symbol(index)? else { return Err(format!("symbol {index} is not a source")) };
        // SAFETY: the host passes the encoded request, valid for the call.
        let request = wire::OpenSourceRequest::decode(unsafe { bytes(request) }).map_err(|e| e.to_string())?;
        let mut source: Box<dyn Source> = new();
        source.configure(&request.datasource, &value::config_from_struct(request.config.as_ref()))?;
        Ok(status::OK)
    })
}

extern "C" fn source_open(index: u32, request: OortStr, handle: *mut Handle, err: *mut OortBuf) -> i32 {
    guard(err, || {
        let Symbol::Source(new) = symbol(index)? else { return Err(format!("symbol {index} is not a source")) };
        // SAFETY: the host passes the encoded request, valid for the call.
        let request = wire::OpenSourceRequest::decode(unsafe { bytes(request) }).map_err(|e| e.to_string())?;
        let mut source: Box<dyn Source> = new();
        source.configure(&request.datasource, &value::config_from_struct(request.config.as_ref()))?;
        source.open(&Context { rule_id: &request.rule_id })?;
        if handle.is_null() {
            return Err("no handle pointer".to_owned());
        }
        // SAFETY: the host passes a pointer to a handle slot it owns.
        unsafe { handle.write(Box::into_raw(Box::new(source)).cast()) };
        Ok(status::OK)
    })
}

/// # Safety
/// `handle` must come from `source_open` and not be closed.
unsafe fn source_of<'a>(handle: Handle) -> &'a mut Box<dyn Source> {
    // SAFETY: per the contract; the host uses a handle from one thread at a time.
    unsafe { &mut *handle.cast::<Box<dyn Source>>() }
}

extern "C" fn source_read(handle: Handle, timeout_ms: u32, out: *mut OortBuf) -> i32 {
    guard(out, || {
        // SAFETY: the host passes a live handle of source_open.
        let source = unsafe { source_of(handle) };
        match source.read(Duration::from_millis(u64::from(timeout_ms)))? {
            None => Ok(status::END),
            Some(events) => {
                let response =
                    wire::OpenSourceResponse { events: events.into_iter().map(value::event_to_wire).collect() };
                // SAFETY: the host passes a pointer to a buffer slot it owns.
                unsafe { out.write(to_buf(response.encode_to_vec())) };
                Ok(status::OK)
            }
        }
    })
}

extern "C" fn source_close(handle: Handle, err: *mut OortBuf) -> i32 {
    guard(err, || {
        // SAFETY: the host passes a live handle of source_open once, and never uses it again.
        let mut source = unsafe { Box::from_raw(handle.cast::<Box<dyn Source>>()) };
        source.close().map(|()| status::OK)
    })
}

extern "C" fn sink_configure(index: u32, request: OortStr, err: *mut OortBuf) -> i32 {
    guard(err, || {
        let Symbol::Sink(new) = symbol(index)? else { return Err(format!("symbol {index} is not a sink")) };
        // SAFETY: the host passes the encoded request, valid for the call.
        let request = wire::SinkOpen::decode(unsafe { bytes(request) }).map_err(|e| e.to_string())?;
        let mut sink: Box<dyn Sink> = new();
        sink.configure(&value::config_from_struct(request.config.as_ref()))?;
        Ok(status::OK)
    })
}

extern "C" fn sink_open(index: u32, request: OortStr, handle: *mut Handle, err: *mut OortBuf) -> i32 {
    guard(err, || {
        let Symbol::Sink(new) = symbol(index)? else { return Err(format!("symbol {index} is not a sink")) };
        // SAFETY: the host passes the encoded request, valid for the call.
        let request = wire::SinkOpen::decode(unsafe { bytes(request) }).map_err(|e| e.to_string())?;
        let mut sink: Box<dyn Sink> = new();
        sink.configure(&value::config_from_struct(request.config.as_ref()))?;
        sink.open(&Context { rule_id: &request.rule_id })?;
        if handle.is_null() {
            return Err("no handle pointer".to_owned());
        }
        // SAFETY: the host passes a pointer to a handle slot it owns.
        unsafe { handle.write(Box::into_raw(Box::new(sink)).cast()) };
        Ok(status::OK)
    })
}

extern "C" fn sink_collect(handle: Handle, batch: OortStr, err: *mut OortBuf) -> i32 {
    guard(err, || {
        // SAFETY: the host passes a live handle of sink_open, from one thread at a time.
        let sink = unsafe { &mut *handle.cast::<Box<dyn Sink>>() };
        // SAFETY: the host passes the encoded batch, valid for the call.
        let batch = wire::SinkBatch::decode(unsafe { bytes(batch) }).map_err(|e| e.to_string())?;
        let rows: Vec<_> = batch.events.iter().map(|e| value::map_from_wire(&e.fields)).collect();
        sink.collect(&rows).map(|()| status::OK)
    })
}

extern "C" fn sink_close(handle: Handle, err: *mut OortBuf) -> i32 {
    guard(err, || {
        // SAFETY: the host passes a live handle of sink_open once, and never uses it again.
        let mut sink = unsafe { Box::from_raw(handle.cast::<Box<dyn Sink>>()) };
        sink.close().map(|()| status::OK)
    })
}

/// Exports a native Oort plugin: `export_plugin!(plugin())` where `plugin()`
/// returns the [`Plugin`](crate::Plugin) listing the functions, sources and sinks.
/// It defines the one symbol the server looks for, `oort_plugin_entry`. With
/// the SDK's `portable` feature it also defines `pub fn serve_portable() -> !`,
/// which serves the same plugin as a portable process (call it from a `main`).
#[macro_export]
macro_rules! export_plugin {
    ($init:expr) => {
        /// The entry point of this native Oort plugin: returns its ABI table.
        #[unsafe(no_mangle)]
        pub extern "C" fn oort_plugin_entry() -> *const $crate::abi::PluginTable {
            $crate::export::entry(|| $init)
        }
        $crate::__export_portable!($init);
    };
}

/// With the `portable` feature: `serve_portable()`.
#[cfg(feature = "portable")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_portable {
    ($init:expr) => {
        /// Serves this plugin as a portable plugin process (started by oortd); never returns.
        pub fn serve_portable() -> ! {
            $crate::portable::serve(|| $init)
        }
    };
}

/// Without the `portable` feature: nothing.
#[cfg(not(feature = "portable"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_portable {
    ($init:expr) => {};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Function;

    struct Half;

    impl Function for Half {
        fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
            match args {
                [Some(Value::Int(0))] => Err("half of a literal 0 is pointless".into()),
                [_] => Ok(()),
                _ => Err("half takes 1 argument".into()),
            }
        }
        fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
            match &args[0] {
                Value::Int(i) if *i < 0 => panic!("negative: {i}"),
                Value::Int(i) => Ok(Value::String(format!("{}", i / 2))),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                other => Err(format!("not an int: {}", other.type_name())),
            }
        }
    }

    fn int(i: i64) -> OortValue {
        OortValue { tag: tag::INT, scalar: i as u64, ..OortValue::NULL }
    }

    fn take(table: &PluginTable, buf: OortBuf) -> String {
        // SAFETY: a buffer of this library, read before it is freed.
        let text = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }).into_owned();
        (table.free_buf)(buf);
        text
    }

    /// The plugin side of the ABI, called through the table as the host does.
    #[test]
    fn the_table_validates_invokes_and_turns_panics_into_row_errors() {
        // SAFETY: the table is 'static in this test binary.
        let table = unsafe { &*entry(|| Plugin::new("t", "1.2.3").function("half", Half)) };
        assert_eq!((table.abi_major, table.abi_minor), (abi::ABI_MAJOR, abi::ABI_MINOR));
        let describe = wire::DescribeResponse::decode(take(table, (table.describe)()).as_bytes()).unwrap();
        assert_eq!((describe.name.as_str(), describe.version.as_str()), ("t", "1.2.3"));
        assert_eq!(describe.symbols[0].kind, wire::symbol_kind::FUNCTION);

        let mut err = OortBuf::EMPTY;
        let absent = OortValue { tag: tag::ABSENT, ..OortValue::NULL };
        assert_eq!((table.function_validate)(0, &absent, 1, &mut err), status::OK);
        assert_eq!((table.function_validate)(0, &int(0), 1, &mut err), status::ERROR);
        assert_eq!(take(table, err), "half of a literal 0 is pointless");

        let list = value::to_wire(Value::List(vec![Value::Null, Value::Null])).encode_to_vec();
        let encoded = OortValue { tag: tag::ENCODED, scalar: 0, ptr: list.as_ptr(), len: list.len() };
        let args = [int(9), int(-1), OortValue::NULL, encoded];
        let mut results = vec![OortValue::NULL; 4];
        let rule = OortStr { ptr: b"r".as_ptr(), len: 1 };
        let code = (table.function_invoke)(0, rule, args.as_ptr(), 1, 4, results.as_mut_ptr(), &mut err);
        assert_eq!(code, status::OK);
        let bytes = |v: &OortValue| {
            // SAFETY: result values of this library, read before free_values.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(v.ptr, v.len) }).into_owned()
        };
        assert_eq!((results[0].tag, bytes(&results[0]).as_str()), (tag::STRING, "4"));
        assert_eq!((results[1].tag, bytes(&results[1]).as_str()), (tag::ERROR, "panicked: negative: -1"));
        assert_eq!((results[2].tag, bytes(&results[2]).as_str()), (tag::ERROR, "not an int: null"));
        assert_eq!((results[3].tag, results[3].scalar), (tag::INT, 2));
        (table.free_values)(results.as_mut_ptr(), results.len());
        assert!(results.iter().all(|v| v.ptr.is_null()), "every owned buffer was freed");

        // A symbol that does not exist is an error of the whole call, not a crash.
        let code = (table.function_invoke)(7, rule, args.as_ptr(), 1, 1, results.as_mut_ptr(), &mut err);
        assert_eq!(code, status::ERROR);
        assert_eq!(take(table, err), "no symbol with index 7");
    }
}
