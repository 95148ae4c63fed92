//! Hashing functions: eKuiper's `md5`, `sha1`, `sha256`, `sha384` and `sha512`, plus
//! `crc32` (IEEE). Each hashes a string's UTF-8 bytes (or a BYTEA's bytes; numbers and
//! booleans as their text, like eKuiper) and returns lower-case hexadecimal.

use std::fmt::Write as _;
use std::sync::Arc;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::Builtin;
use crate::function::{Function, FunctionError};
use crate::value::Value;

/// The bytes a hash function hashes.
fn input(name: &str, value: &Value) -> Result<Vec<u8>, FunctionError> {
    match value {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Bytes(b) => Ok(b.to_vec()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => Ok(value.to_string().into_bytes()),
        other => Err(FunctionError::argument_type(name, 1, "string", other)),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn digest<D: Digest>(bytes: &[u8]) -> String {
    hex(&D::digest(bytes))
}

fn hash(name: &str, description: &str, f: fn(&[u8]) -> String) -> Arc<dyn Function> {
    Builtin::scalar(name, 1, Some(1), description, move |name, _, args| Ok(Value::string(f(&input(name, &args[0])?))))
        .build()
}

/// The hashing functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        hash("md5", "The MD5 hash of a string, as hexadecimal.", digest::<Md5>),
        hash("sha1", "The SHA-1 hash of a string, as hexadecimal.", digest::<Sha1>),
        hash("sha256", "The SHA-256 hash of a string, as hexadecimal.", digest::<Sha256>),
        hash("sha384", "The SHA-384 hash of a string, as hexadecimal.", digest::<Sha384>),
        hash("sha512", "The SHA-512 hash of a string, as hexadecimal.", digest::<Sha512>),
        hash("crc32", "The CRC-32 (IEEE) checksum of a string, as 8 hexadecimal digits.", |bytes| {
            format!("{:08x}", crc32fast::hash(bytes))
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{err, s};

    crate::functions::testing::shorthands!(functions);

    #[test]
    fn known_digests() {
        let cases = [
            ("md5", "900150983cd24fb0d6963f7d28e17f72"),
            ("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            ("sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "sha384",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                "sha512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            ("crc32", "352441c2"),
        ];
        for (name, expected) in cases {
            assert_eq!(f(name, &[s("abc")]), s(expected), "{name}");
            assert_eq!(f(name, &[Value::Bytes(Arc::from(&b"abc"[..]))]), s(expected), "{name} of bytes");
            assert_eq!(f(name, &[Value::Null]), Value::Null, "{name}");
            let e = err(&functions(), name, &[Value::list(vec![])]);
            assert!(matches!(e, FunctionError::ArgumentType { index: 1, .. }), "{name}");
        }
        assert_eq!(f("md5", &[Value::Int(1)]), f("md5", &[s("1")]), "numbers hash as their text");
        assert_eq!(f("md5", &[s("")]), s("d41d8cd98f00b204e9800998ecf8427e"));
    }
}
