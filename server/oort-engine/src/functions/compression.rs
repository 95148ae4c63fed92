//! `compress(x, method)` and `decompress(x, method)`, as eKuiper's, with its
//! methods: `zlib`, `gzip`, `flate` (raw deflate) and `zstd`. The input is a
//! string (its UTF-8 bytes) or bytes; the output is bytes.
//!
//! A decompressed result is bounded ([`MAX_DECOMPRESSED`]): a small input
//! that would expand past it (a compression bomb) fails that event instead
//! of taking the server's memory.

use std::io::{Read, Write};
use std::sync::Arc;

use super::{Builtin, Kind, literal_str, text};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::Value;

/// The most bytes `decompress` returns.
pub const MAX_DECOMPRESSED: usize = 64 << 20;

const METHODS: &[&str] = &["zlib", "gzip", "flate", "zstd"];

/// The bytes of a string or bytes argument.
fn bytes<'a>(name: &str, value: &'a Value) -> Result<&'a [u8], FunctionError> {
    match value {
        Value::String(s) => Ok(s.as_bytes()),
        Value::Bytes(b) => Ok(b),
        other => Err(FunctionError::argument_type(name, 1, "string or bytea", other)),
    }
}

fn method<'a>(name: &str, value: &'a Value) -> Result<&'a str, FunctionError> {
    let method = text(name, 1, value)?;
    if METHODS.contains(&method) { Ok(method) } else { Err(FunctionError::failed(name, unknown(method))) }
}

fn unknown(method: &str) -> String {
    format!("unknown compression method {method:?}; use one of {}", METHODS.join(", "))
}

fn compress(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let input = bytes(name, &args[0])?;
    let failed = |e: std::io::Error| FunctionError::failed(name, e.to_string());
    let level = flate2::Compression::default();
    let out = match method(name, &args[1])? {
        "zlib" => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(input).and_then(|()| encoder.finish()).map_err(failed)?
        }
        "gzip" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(input).and_then(|()| encoder.finish()).map_err(failed)?
        }
        "flate" => {
            let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), level);
            encoder.write_all(input).and_then(|()| encoder.finish()).map_err(failed)?
        }
        _ => zstd::bulk::compress(input, zstd::DEFAULT_COMPRESSION_LEVEL).map_err(failed)?,
    };
    Ok(Value::Bytes(Arc::from(out)))
}

fn decompress(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let input = bytes(name, &args[0])?;
    let reader: Box<dyn Read + '_> = match method(name, &args[1])? {
        "zlib" => Box::new(flate2::read::ZlibDecoder::new(input)),
        "gzip" => Box::new(flate2::read::GzDecoder::new(input)),
        "flate" => Box::new(flate2::read::DeflateDecoder::new(input)),
        _ => Box::new(zstd::stream::read::Decoder::new(input).map_err(|e| FunctionError::failed(name, e.to_string()))?),
    };
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| FunctionError::failed(name, format!("the input is not valid: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(FunctionError::failed(name, format!("the result would be over {} MiB", MAX_DECOMPRESSED >> 20)));
    }
    Ok(Value::Bytes(Arc::from(out)))
}

fn validate_method(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(method) if !METHODS.contains(&method) => Err(format!("function {name}: {}", unknown(method))),
        _ => Ok(()),
    }
}

/// The compression functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Builtin::scalar(
            "compress",
            2,
            Some(2),
            "Compresses a string or bytes with zlib, gzip, flate or zstd; returns bytes.",
            compress,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .validate(validate_method)
        .build(),
        Builtin::scalar(
            "decompress",
            2,
            Some(2),
            "Decompresses bytes (or a string) compressed with zlib, gzip, flate or zstd; returns bytes.",
            decompress,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .validate(validate_method)
        .build(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{s, validate};

    crate::functions::testing::shorthands!(functions);

    #[test]
    fn every_method_round_trips() {
        let input = s("the quick brown fox jumps over the lazy dog, again and again and again");
        for method in METHODS {
            let compressed = f("compress", &[input.clone(), s(method)]);
            assert!(matches!(&compressed, Value::Bytes(b) if !b.is_empty()), "{method}");
            let back = f("decompress", &[compressed, s(method)]);
            assert_eq!(
                back,
                Value::Bytes(Arc::from(&b"the quick brown fox jumps over the lazy dog, again and again and again"[..])),
                "{method}"
            );
        }
    }

    #[test]
    fn bad_input_methods_and_bombs_fail() {
        assert!(
            e("decompress", &[Value::Bytes(Arc::from(&b"not compressed"[..])), s("gzip")])
                .to_string()
                .contains("not valid")
        );
        assert!(e("compress", &[s("x"), s("lz4")]).to_string().contains("unknown compression method"));
        assert!(validate(&functions(), "compress", &[None, Some(s("lz4"))]).is_err(), "refused when created");
        assert!(validate(&functions(), "decompress", &[None, Some(s("zstd"))]).is_ok());
        assert!(e("compress", &[Value::Int(1), s("zlib")]).to_string().contains("string or bytea"));
        // 100 MiB of zeros compresses to about 100 KB: decompressing it is refused.
        let zeros = vec![0u8; 100 << 20];
        let bomb = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(bomb.len() < 1 << 20);
        let refused = e("decompress", &[Value::Bytes(Arc::from(bomb)), s("zstd")]).to_string();
        assert!(refused.contains("over 64 MiB"), "{refused}");
    }
}
