//! Conversion functions: eKuiper's transform functions (`cast`, `chr`, `encode`,
//! `decode`, `trunc`, `hex2dec`, `dec2hex`) and its JSON value functions (`to_json`,
//! `parse_json`).

use std::sync::Arc;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use chrono::SecondsFormat;

use super::json::{from_json, to_json_string};
use super::{Builtin, Kind, int, literal_str, num, text};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::Value;

/// The types `cast` converts to.
const CAST_TYPES: &[&str] = &["bigint", "float", "string", "boolean", "datetime", "bytea"];
/// The encodings `encode` and `decode` know.
const ENCODINGS: &[&str] = &["base64"];
/// `trunc` keeps at most this many decimals.
const MAX_TRUNC_DIGITS: i64 = 34;

fn cannot(name: &str, value: &Value, target: &str) -> FunctionError {
    FunctionError::failed(name, format!("cannot cast {} {value} to {target}", value.type_name()))
}

/// `cast(value, type)`, with eKuiper's rules: numbers to datetime are Unix milliseconds,
/// strings to datetime are RFC 3339 (`2006-01-02T15:04:05.000Z07:00`).
fn cast(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    cast_value(name, &args[0], text(name, 1, &args[1])?)
}

/// `value` as the type named `target` (`bigint`, `float`, `string`,
/// `boolean`, `datetime`, `bytea`), for function `name`.
pub(crate) fn cast_value(name: &str, value: &Value, target: &str) -> Result<Value, FunctionError> {
    match target.to_ascii_lowercase().as_str() {
        "bigint" => cast_bigint(name, value),
        "float" => match value {
            Value::Int(i) => Ok(Value::Float(*i as f64)),
            Value::Float(_) => Ok(value.clone()),
            Value::String(s) => s.trim().parse::<f64>().map(Value::Float).map_err(|_| cannot(name, value, "float")),
            Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
            _ => Err(cannot(name, value, "float")),
        },
        "string" => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Bytes(b) => std::str::from_utf8(b).map(Value::string).map_err(|_| cannot(name, value, "string")),
            Value::Timestamp(t) => Ok(Value::string(t.to_rfc3339_opts(SecondsFormat::Millis, true))),
            Value::List(_) | Value::Map(_) => Ok(Value::string(to_json_string(value))),
            other => Ok(Value::string(other.to_string())),
        },
        "boolean" => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::Int(i) => Ok(Value::Bool(*i != 0)),
            Value::Float(x) => Ok(Value::Bool(*x != 0.0)),
            Value::String(s) => parse_bool(s).map(Value::Bool).ok_or_else(|| cannot(name, value, "boolean")),
            _ => Err(cannot(name, value, "boolean")),
        },
        "datetime" => super::datetime::to_datetime(name, 0, value).map(Value::Timestamp),
        "bytea" => match value {
            Value::Bytes(_) => Ok(value.clone()),
            // As eKuiper's ToByteA: base64 is decoded, other text taken as its bytes.
            Value::String(s) => {
                let decoded = BASE64_STANDARD.decode(s.as_bytes()).unwrap_or_else(|_| s.as_bytes().to_vec());
                Ok(Value::Bytes(Arc::from(decoded)))
            }
            _ => Err(cannot(name, value, "bytea")),
        },
        other => Err(FunctionError::failed(name, unknown_type(other))),
    }
}

fn cast_bigint(name: &str, value: &Value) -> Result<Value, FunctionError> {
    match value {
        Value::Int(_) => Ok(value.clone()),
        Value::Float(x) => {
            // Truncates toward zero, as Go's int(x).
            let t = x.trunc();
            if t.is_finite() && t >= i64::MIN as f64 && t < i64::MAX as f64 {
                Ok(Value::Int(t as i64))
            } else {
                Err(cannot(name, value, "bigint"))
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map(Value::Int).map_err(|_| cannot(name, value, "bigint")),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Timestamp(t) => Ok(Value::Int(t.timestamp_millis())),
        _ => Err(cannot(name, value, "bigint")),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn unknown_type(target: &str) -> String {
    format!("unknown type {target:?}; expected one of {}", CAST_TYPES.join(", "))
}

fn validate_cast(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(target) if !CAST_TYPES.contains(&target.to_ascii_lowercase().as_str()) => {
            Err(format!("function {name}: {}", unknown_type(target)))
        }
        _ => Ok(()),
    }
}

fn chr(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let code = match &args[0] {
        Value::Int(i) => *i,
        Value::Float(x) if x.is_finite() => x.trunc() as i64,
        Value::String(s) => {
            let mut chars = s.chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Value::string(c.to_string())),
                _ => Err(FunctionError::failed(name, "a string argument must be one character")),
            };
        }
        other => return Err(FunctionError::argument_type(name, 1, "bigint", other)),
    };
    u32::try_from(code)
        .ok()
        .and_then(char::from_u32)
        .map(|c| Value::string(c.to_string()))
        .ok_or_else(|| FunctionError::failed(name, format!("{code} is not a character code")))
}

fn encoding(name: &str, args: &[Value]) -> Result<(), FunctionError> {
    let method = text(name, 1, &args[1])?;
    if ENCODINGS.iter().any(|e| e.eq_ignore_ascii_case(method)) {
        Ok(())
    } else {
        Err(FunctionError::failed(name, format!("unsupported encoding {method:?}; only base64 is supported")))
    }
}

fn encode(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    encoding(name, args)?;
    let bytes: &[u8] = match &args[0] {
        Value::String(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        other => return Err(FunctionError::argument_type(name, 1, "string", other)),
    };
    Ok(Value::string(BASE64_STANDARD.encode(bytes)))
}

fn decode(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    encoding(name, args)?;
    let input = text(name, 0, &args[0])?;
    BASE64_STANDARD
        .decode(input.trim())
        .map(|bytes| Value::Bytes(Arc::from(bytes)))
        .map_err(|e| FunctionError::failed(name, format!("invalid base64: {e}")))
}

fn validate_encoding(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(method) if !ENCODINGS.iter().any(|e| e.eq_ignore_ascii_case(method)) => {
            Err(format!("function {name}: unsupported encoding {method:?}; only base64 is supported"))
        }
        _ => Ok(()),
    }
}

/// `trunc(x, d)`: `x` cut (toward zero) to `d` decimals, `d` clamped to 0..=34. Works on
/// the shortest decimal form of `x`, so `trunc(0.29, 2)` is 0.29, not 0.28.
fn trunc(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    let digits = int(name, 1, &args[1])?.clamp(0, MAX_TRUNC_DIGITS) as usize;
    if !x.is_finite() {
        return Ok(Value::Float(x));
    }
    let decimal = x.to_string();
    let cut = match decimal.split_once('.') {
        Some((integer, fraction)) if fraction.len() > digits => format!("{integer}.{}", &fraction[..digits]),
        _ => decimal,
    };
    cut.parse::<f64>().map(Value::Float).map_err(|e| FunctionError::failed(name, e.to_string()))
}

fn to_json(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(to_json_string(&args[0])))
}

fn parse_json(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let parsed: Result<serde_json::Value, _> = match &args[0] {
        Value::String(s) => serde_json::from_str(s),
        Value::Bytes(b) => serde_json::from_slice(b),
        other => return Err(FunctionError::argument_type(name, 1, "string", other)),
    };
    parsed.map(|json| from_json(&json)).map_err(|e| FunctionError::failed(name, format!("invalid JSON: {e}")))
}

fn hex2dec(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let input = text(name, 0, &args[0])?.trim();
    let (negative, unsigned) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let digits = unsigned.strip_prefix("0x").or_else(|| unsigned.strip_prefix("0X")).unwrap_or(unsigned);
    let invalid = || FunctionError::failed(name, format!("{input:?} is not a hexadecimal number"));
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(invalid());
    }
    let magnitude = u64::from_str_radix(digits, 16).map_err(|_| invalid())?;
    let value = if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() };
    value.map(Value::Int).ok_or_else(|| FunctionError::failed(name, format!("{input} overflows bigint")))
}

fn dec2hex(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let i = int(name, 0, &args[0])?;
    let sign = if i < 0 { "-" } else { "" };
    Ok(Value::string(format!("{sign}0x{:x}", i.unsigned_abs())))
}

/// The conversion functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Builtin::scalar(
            "cast",
            2,
            Some(2),
            "Converts a value to bigint, float, string, boolean, datetime or bytea: cast(value, \"type\").",
            cast,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .validate(validate_cast)
        .build(),
        Builtin::scalar("chr", 1, Some(1), "The character of a code point.", chr).build(),
        Builtin::scalar("decode", 2, Some(2), "Decodes a string: decode(str, \"base64\") gives bytes.", decode)
            .kinds(&[Kind::Str])
            .validate(validate_encoding)
            .build(),
        Builtin::scalar(
            "dec2hex",
            1,
            Some(1),
            "The hexadecimal string of an integer: dec2hex(16) is \"0x10\".",
            dec2hex,
        )
        .kinds(&[Kind::Int])
        .build(),
        Builtin::scalar("encode", 2, Some(2), "Encodes a string or bytes: encode(x, \"base64\").", encode)
            .kinds(&[Kind::Any, Kind::Str])
            .validate(validate_encoding)
            .build(),
        Builtin::scalar(
            "hex2dec",
            1,
            Some(1),
            "The integer of a hexadecimal string: hex2dec(\"0x10\") is 16.",
            hex2dec,
        )
        .kinds(&[Kind::Str])
        .build(),
        Builtin::scalar("parse_json", 1, Some(1), "Parses a JSON string into a value.", parse_json).build(),
        Builtin::scalar("to_json", 1, Some(1), "The JSON text of a value.", to_json).build(),
        Builtin::scalar("trunc", 2, Some(2), "Truncates a number to d decimals (0 to 34): trunc(x, d).", trunc)
            .kinds(&[Kind::Number, Kind::Int])
            .build(),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::functions::testing::{assert_close, list, s, validate};

    crate::functions::testing::shorthands!(functions);

    fn cast(value: Value, target: &str) -> Value {
        f("cast", &[value, s(target)])
    }

    fn cast_err(value: Value, target: &str) -> FunctionError {
        e("cast", &[value, s(target)])
    }

    #[test]
    fn cast_to_numbers_and_booleans() {
        assert!(matches!(cast(Value::Float(3.9), "bigint"), Value::Int(3)));
        assert!(matches!(cast(Value::Float(-3.9), "bigint"), Value::Int(-3)));
        assert!(matches!(cast(s("42"), "bigint"), Value::Int(42)));
        assert!(matches!(cast(Value::Bool(true), "bigint"), Value::Int(1)));
        assert!(matches!(cast(Value::Int(2), "float"), Value::Float(x) if x == 2.0));
        assert_close(&cast(s("2.5"), "float"), 2.5);
        assert_eq!(cast(Value::Bool(false), "float"), Value::Float(0.0));
        assert_eq!(cast(Value::Int(0), "boolean"), Value::Bool(false));
        assert_eq!(cast(Value::Float(0.5), "boolean"), Value::Bool(true));
        assert_eq!(cast(s("TRUE"), "boolean"), Value::Bool(true));
        assert_eq!(cast(s("f"), "boolean"), Value::Bool(false));
        assert_eq!(cast(Value::Null, "bigint"), Value::Null);
        for (value, target) in [
            (s("4.5"), "bigint"),
            (s("x"), "float"),
            (s("yes"), "boolean"),
            (Value::Float(f64::INFINITY), "bigint"),
            (Value::list(vec![]), "float"),
        ] {
            assert!(matches!(cast_err(value, target), FunctionError::Failed { .. }), "{target}");
        }
    }

    #[test]
    fn cast_to_strings_datetimes_and_bytes() {
        assert_eq!(cast(Value::Int(1), "string"), s("1"));
        assert_eq!(cast(Value::Float(1.5), "string"), s("1.5"));
        assert_eq!(cast(Value::Bool(true), "string"), s("true"));
        assert_eq!(cast(list(vec![Value::Int(1)]), "string"), s("[1]"));
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap_or_default();
        assert_eq!(cast(Value::utc(t), "string"), s("2024-01-02T03:04:05.000Z"));
        assert_eq!(cast(Value::Int(t.timestamp_millis()), "datetime"), Value::utc(t));
        assert_eq!(cast(s("2024-01-02T05:04:05.000+02:00"), "datetime"), Value::utc(t));
        assert_eq!(cast(Value::utc(t), "bigint"), Value::Int(t.timestamp_millis()));
        assert_eq!(cast(s("hi!"), "bytea"), Value::Bytes(Arc::from(&b"hi!"[..])), "not base64: its bytes");
        assert_eq!(cast(s("aGk="), "bytea"), Value::Bytes(Arc::from(&b"hi"[..])), "base64 is decoded");
        assert_eq!(cast(Value::Bytes(Arc::from(&b"hi"[..])), "string"), s("hi"));
        assert!(matches!(cast_err(Value::Bytes(Arc::from(&b"\xff"[..])), "string"), FunctionError::Failed { .. }));
        assert!(matches!(cast_err(s("yesterday"), "datetime"), FunctionError::Failed { .. }));
        assert!(matches!(cast_err(Value::Bool(true), "datetime"), FunctionError::ArgumentType { .. }));
        assert!(matches!(cast_err(Value::Int(1), "bytea"), FunctionError::Failed { .. }));
        assert!(matches!(cast_err(Value::Int(1), "decimal"), FunctionError::Failed { .. }));
        assert!(matches!(e("cast", &[Value::Int(1), Value::Int(2)]), FunctionError::ArgumentType { index: 2, .. }));
    }

    #[test]
    fn cast_types_are_checked_at_plan_time() {
        for target in CAST_TYPES {
            assert!(validate(&functions(), "cast", &[None, Some(s(target))]).is_ok(), "{target}");
        }
        assert!(validate(&functions(), "cast", &[None, Some(s("BIGINT"))]).is_ok(), "case is ignored");
        let error = validate(&functions(), "cast", &[None, Some(s("int"))]).unwrap_err();
        assert!(error.contains("unknown type"), "{error}");
        assert!(validate(&functions(), "cast", &[None, Some(Value::Int(1))]).is_err());
        assert!(validate(&functions(), "cast", &[None, None]).is_ok(), "a column is checked at run time");
    }

    #[test]
    fn chr_gives_a_character() {
        assert_eq!(f("chr", &[Value::Int(65)]), s("A"));
        assert_eq!(f("chr", &[Value::Float(97.0)]), s("a"));
        assert_eq!(f("chr", &[s("é")]), s("é"));
        assert_eq!(f("chr", &[Value::Null]), Value::Null);
        assert!(matches!(e("chr", &[Value::Int(-1)]), FunctionError::Failed { .. }));
        assert!(matches!(e("chr", &[Value::Int(0xD800)]), FunctionError::Failed { .. }));
        assert!(matches!(e("chr", &[s("ab")]), FunctionError::Failed { .. }));
        assert!(matches!(e("chr", &[Value::Bool(true)]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn base64_encoding() {
        assert_eq!(f("encode", &[s("hello"), s("base64")]), s("aGVsbG8="));
        assert_eq!(f("encode", &[Value::Bytes(Arc::from(&b"\x00\xff"[..])), s("BASE64")]), s("AP8="));
        assert_eq!(f("decode", &[s("aGVsbG8="), s("base64")]), Value::Bytes(Arc::from(&b"hello"[..])));
        assert_eq!(f("encode", &[Value::Null, s("base64")]), Value::Null);
        assert_eq!(f("decode", &[Value::Null, s("base64")]), Value::Null);
        assert!(matches!(e("decode", &[s("%%%"), s("base64")]), FunctionError::Failed { .. }));
        assert!(matches!(e("encode", &[s("x"), s("hex")]), FunctionError::Failed { .. }));
        assert!(matches!(e("encode", &[Value::Int(1), s("base64")]), FunctionError::ArgumentType { .. }));
        for name in ["encode", "decode"] {
            assert!(validate(&functions(), name, &[None, Some(s("base64"))]).is_ok());
            assert!(validate(&functions(), name, &[None, Some(s("zip"))]).is_err());
        }
    }

    #[test]
    fn trunc_cuts_decimals() {
        assert_eq!(f("trunc", &[Value::Float(5.6789), Value::Int(2)]), Value::Float(5.67));
        assert_eq!(f("trunc", &[Value::Float(0.29), Value::Int(2)]), Value::Float(0.29));
        assert_eq!(f("trunc", &[Value::Float(-3.99), Value::Int(0)]), Value::Float(-3.0));
        assert_eq!(f("trunc", &[Value::Float(3.99), Value::Int(-2)]), Value::Float(3.0), "negative is 0");
        assert_eq!(f("trunc", &[Value::Int(7), Value::Int(2)]), Value::Float(7.0));
        assert_eq!(f("trunc", &[Value::Null, Value::Int(2)]), Value::Null);
        assert!(matches!(e("trunc", &[s("1.5"), Value::Int(2)]), FunctionError::ArgumentType { .. }));
        assert!(validate(&functions(), "trunc", &[Some(s("x")), None]).is_err());
    }

    #[test]
    fn json_text() {
        let mut map = crate::value::Map::new();
        map.insert(Arc::from("b"), list(vec![Value::Int(1), Value::Null]));
        map.insert(Arc::from("a"), s("x"));
        let value = Value::map(map);
        assert_eq!(f("to_json", std::slice::from_ref(&value)), s(r#"{"a":"x","b":[1,null]}"#));
        assert_eq!(f("to_json", &[Value::Null]), Value::Null);
        assert_eq!(f("parse_json", &[s(r#"{"a":"x","b":[1,null]}"#)]), value);
        assert_eq!(f("parse_json", &[s("null")]), Value::Null);
        assert_eq!(f("parse_json", &[Value::Null]), Value::Null);
        assert!(matches!(f("parse_json", &[s("1")]), Value::Int(1)));
        assert!(matches!(e("parse_json", &[s("{")]), FunctionError::Failed { .. }));
        assert!(matches!(e("parse_json", &[Value::Int(1)]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn hexadecimal() {
        assert_eq!(f("hex2dec", &[s("0x10")]), Value::Int(16));
        assert_eq!(f("hex2dec", &[s("ff")]), Value::Int(255));
        assert_eq!(f("hex2dec", &[s("-0x10")]), Value::Int(-16));
        assert_eq!(f("hex2dec", &[s("-0x8000000000000000")]), Value::Int(i64::MIN));
        assert_eq!(f("hex2dec", &[Value::Null]), Value::Null);
        assert!(matches!(e("hex2dec", &[s("0xg")]), FunctionError::Failed { .. }));
        assert!(matches!(e("hex2dec", &[s("0x")]), FunctionError::Failed { .. }));
        assert!(matches!(e("hex2dec", &[s("0xffffffffffffffff")]), FunctionError::Failed { .. }));
        assert!(matches!(e("hex2dec", &[Value::Int(16)]), FunctionError::ArgumentType { .. }));
        assert_eq!(f("dec2hex", &[Value::Int(16)]), s("0x10"));
        assert_eq!(f("dec2hex", &[Value::Int(-255)]), s("-0xff"));
        assert_eq!(f("dec2hex", &[Value::Int(i64::MIN)]), s("-0x8000000000000000"));
        assert_eq!(f("dec2hex", &[Value::Null]), Value::Null);
        assert!(matches!(e("dec2hex", &[s("16")]), FunctionError::ArgumentType { .. }));
    }
}
