//! [`NativeFunction`]: a plugin function as an engine [`Function`].

use std::sync::Arc;

use oort_engine::function::ArgInfo;
use oort_engine::{
    BatchCall, CallContext, Calling, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin, Value,
};
use oort_plugin::abi::{OortValue, tag};
use prost::Message;

use super::ffi::{MAX_RETURN_BYTES, RawResult};
use super::slot::Slot;
use crate::convert;

/// A function of a native plugin.
pub struct NativeFunction {
    meta: FunctionMeta,
    slot: Arc<Slot>,
}

impl NativeFunction {
    /// The function `name` of plugin `owner`, behind `slot`.
    pub fn new(name: &str, owner: &str, aggregate: bool, description: &str, slot: Arc<Slot>) -> Self {
        let meta = FunctionMeta {
            name: name.to_ascii_lowercase(),
            kind: if aggregate { FunctionKind::Aggregate } else { FunctionKind::Scalar },
            origin: FunctionOrigin::Native,
            owner: owner.to_owned(),
            calling: Calling::Batched,
            min_args: 0,
            max_args: None,
            description: description.to_owned(),
        };
        Self { meta, slot }
    }

    /// Calls the function on many rows in one crossing of the boundary; an
    /// error of the whole batch (e.g. rows of different lengths) fails every row.
    fn batch(&self, rule_id: &str, rows: &[&[Value]]) -> Result<Vec<Result<Value, FunctionError>>, FunctionError> {
        let nargs = rows.first().map_or(0, |r| r.len());
        if rows.iter().any(|r| r.len() != nargs) {
            return Err(FunctionError::failed(
                &self.meta.name,
                "every row of a batch needs the same number of arguments",
            ));
        }
        let mut encoded = Encoded::default();
        let raw: Vec<OortValue> = rows.iter().flat_map(|r| r.iter()).map(|v| encoded.arg(v)).collect();
        let mut results = vec![OortValue::NULL; rows.len()];
        let mut out = Vec::with_capacity(rows.len());
        let current = self.slot.read();
        current
            .library
            .invoke(current.index, rule_id, &raw, nargs, rows.len(), &mut results, |r| out.push(self.result(r)))
            .map_err(|message| FunctionError::failed(&self.meta.name, message))?;
        Ok(out)
    }

    fn result(&self, raw: RawResult<'_>) -> Result<Value, FunctionError> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(match raw {
            RawResult::Null => Value::Null,
            RawResult::Bool(b) => Value::Bool(b),
            RawResult::Int(i) => Value::Int(i),
            RawResult::Float(f) => Value::Float(f),
            RawResult::Timestamp(ns) => convert::timestamp_ns(ns),
            RawResult::String(b) => Value::String(String::from_utf8_lossy(b).into()),
            RawResult::Bytes(b) => Value::Bytes(b.into()),
            RawResult::Encoded(b) => match oort_plugin::wire::Value::decode(b) {
                Ok(v) => convert::from_proto(&v),
                Err(e) => {
                    return Err(FunctionError::failed(
                        &self.meta.name,
                        format!("the plugin returned a bad value: {e}"),
                    ));
                }
            },
            RawResult::Error(b) => return Err(FunctionError::failed(&self.meta.name, text(b))),
            RawResult::TooLarge(len) => {
                return Err(FunctionError::failed(
                    &self.meta.name,
                    format!("the plugin returned a value of {len} bytes; at most {} are accepted", MAX_RETURN_BYTES),
                ));
            }
            RawResult::Unknown(t) => {
                return Err(FunctionError::failed(
                    &self.meta.name,
                    format!("the plugin returned an unknown value tag {t}"),
                ));
            }
        })
    }
}

/// The encoded lists and maps of a call's arguments, alive until it returns
/// (scalars and strings need none: they are passed inline or borrowed).
#[derive(Default)]
struct Encoded(Vec<Vec<u8>>);

impl Encoded {
    /// The ABI form of an argument; it borrows `v` (or `self`) for the call.
    fn arg(&mut self, v: &Value) -> OortValue {
        let scalar = |tag, scalar| OortValue { tag, scalar, ..OortValue::NULL };
        let bytes = |tag, b: &[u8]| OortValue { tag, scalar: 0, ptr: b.as_ptr(), len: b.len() };
        match v {
            Value::Null => OortValue::NULL,
            Value::Bool(b) => scalar(tag::BOOL, u64::from(*b)),
            Value::Int(i) => scalar(tag::INT, *i as u64),
            Value::Float(f) => scalar(tag::FLOAT, f.to_bits()),
            Value::Timestamp(t) => scalar(tag::TIMESTAMP, t.timestamp_nanos_opt().unwrap_or_default() as u64),
            Value::String(s) => bytes(tag::STRING, s.as_bytes()),
            Value::Bytes(b) => bytes(tag::BYTES, b),
            Value::List(_) | Value::Map(_) => {
                // The Vec's heap buffer does not move when `self.0` grows, so
                // the pointer stays valid.
                self.0.push(convert::to_proto(v).encode_to_vec());
                let last = self.0.last().map(Vec::as_slice).unwrap_or_default();
                bytes(tag::ENCODED, last)
            }
        }
    }
}

/// Most arguments passed without a heap allocation.
const INLINE_ARGS: usize = 8;

impl Function for NativeFunction {
    fn meta(&self) -> &FunctionMeta {
        &self.meta
    }

    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        let mut encoded = Encoded::default();
        let raw: Vec<OortValue> = args
            .iter()
            .map(|a| match a.literal {
                Some(v) => encoded.arg(v),
                None => OortValue { tag: tag::ABSENT, ..OortValue::NULL },
            })
            .collect();
        let current = self.slot.read();
        current.library.validate(current.index, &raw)
    }

    fn call(&self, ctx: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        let mut encoded = Encoded::default();
        let mut inline = [OortValue::NULL; INLINE_ARGS];
        let mut heap = Vec::new();
        let raw: &[OortValue] = if args.len() <= INLINE_ARGS {
            for (slot, v) in inline.iter_mut().zip(args) {
                *slot = encoded.arg(v);
            }
            &inline[..args.len()]
        } else {
            heap.extend(args.iter().map(|v| encoded.arg(v)));
            &heap
        };
        let mut results = [OortValue::NULL];
        let mut out = None;
        let current = self.slot.read();
        current
            .library
            .invoke(current.index, ctx.rule_id, raw, args.len(), 1, &mut results, |r| out = Some(self.result(r)))
            .map_err(|message| FunctionError::failed(&self.meta.name, message))?;
        out.unwrap_or_else(|| Err(FunctionError::failed(&self.meta.name, "the plugin returned no result")))
    }

    /// The batch in one crossing of the boundary, on the calling thread.
    fn call_batch(&self, ctx: &CallContext<'_>, rows: &[&[Value]]) -> BatchCall {
        let answers = match self.batch(ctx.rule_id, rows) {
            Ok(results) => results,
            Err(error) => rows.iter().map(|_| Err(error.clone())).collect(),
        };
        Box::pin(std::future::ready(answers))
    }
}
