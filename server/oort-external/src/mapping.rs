//! SQL arguments → request message, response message → SQL value, as eKuiper
//! maps them:
//!
//! - no argument: an empty request (the message must have no field);
//! - one argument that is a map (a row such as `self`, or a struct) fills the
//!   request's fields by name (missing ones keep their default, extra keys are
//!   ignored), unless the message has one field the map does not name;
//! - otherwise the arguments fill the fields in declaration order, one each;
//! - scalars convert to the field's type when no information is lost (an
//!   integral float to an int, an int to a float, a string to bytes, a name or
//!   number to an enum); a `google.protobuf.*Value` wrapper takes its scalar, a
//!   `Timestamp` a datetime; a one-entry map passed where a scalar is expected
//!   gives its value (so the `self` of a `FORMAT="binary"` stream is its bytes);
//! - the response becomes a map of all its fields (wrappers and timestamps as
//!   their value, unset messages as NULL), or, when it has a single field, that
//!   field's value.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use oort_engine::{Map, Value};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as PValue,
};

use crate::error::CallError;

/// Builds the request of a call from its SQL arguments.
pub fn request(desc: &MessageDescriptor, args: &[Value]) -> Result<DynamicMessage, CallError> {
    let fields: Vec<FieldDescriptor> = desc.fields().collect();
    let mut message = DynamicMessage::new(desc.clone());
    if let [Value::Map(map)] = args
        && !fields.is_empty()
        && (fields.len() > 1 || lookup(map, &fields[0]).is_some())
    {
        for field in &fields {
            if let Some(value) = lookup(map, field) {
                set(&mut message, field, value)?;
            }
        }
        return Ok(message);
    }
    if fields.len() != args.len() {
        return Err(CallError::Convert(format!(
            "{} takes {} argument(s) ({}), or one map of them by name; got {}",
            desc.full_name(),
            fields.len(),
            fields.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
            args.len()
        )));
    }
    for (field, arg) in fields.iter().zip(args) {
        set(&mut message, field, unwrap_single(field, arg))?;
    }
    Ok(message)
}

/// The value a map gives for a field: by its name, else its JSON name.
fn lookup<'a>(map: &'a Map, field: &FieldDescriptor) -> Option<&'a Value> {
    map.get(field.name()).or_else(|| map.get(field.json_name()))
}

/// A one-entry map passed for a field that is not a message or a map gives its value.
fn unwrap_single<'a>(field: &FieldDescriptor, arg: &'a Value) -> &'a Value {
    match (arg, field.kind()) {
        (Value::Map(map), kind) if map.len() == 1 && !field.is_map() && !is_plain_message(&kind) => {
            map.values().next().unwrap_or(arg)
        }
        _ => arg,
    }
}

fn is_plain_message(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if wrapper_kind(m).is_none() && m.full_name() != "google.protobuf.Timestamp")
}

fn set(message: &mut DynamicMessage, field: &FieldDescriptor, value: &Value) -> Result<(), CallError> {
    if value.is_null() {
        return Ok(());
    }
    let converted =
        field_value(field, value).map_err(|e| CallError::Convert(format!("field {}: {e}", field.full_name())))?;
    message.set_field(field, converted);
    Ok(())
}

fn field_value(field: &FieldDescriptor, value: &Value) -> Result<PValue, String> {
    let kind = field.kind();
    if field.is_map() {
        let Value::Map(map) = value else { return Err(format!("expected a map, got {}", value.type_name())) };
        let Kind::Message(entry) = &kind else { return Err("map field without entry".into()) };
        let (key_kind, value_field) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field());
        let mut out = std::collections::HashMap::with_capacity(map.len());
        for (k, v) in map.iter() {
            out.insert(map_key(&key_kind, k)?, scalar(&value_field.kind(), v)?);
        }
        return Ok(PValue::Map(out));
    }
    if field.is_list() {
        let Value::List(items) = value else { return Err(format!("expected an array, got {}", value.type_name())) };
        return items.iter().map(|v| scalar(&kind, v)).collect::<Result<_, _>>().map(PValue::List);
    }
    scalar(&kind, value)
}

fn map_key(kind: &Kind, key: &str) -> Result<MapKey, String> {
    let bad = |_| format!("map key \"{key}\" is not a {kind:?}");
    Ok(match kind {
        Kind::String => MapKey::String(key.to_owned()),
        Kind::Bool => MapKey::Bool(key.parse().map_err(|_| format!("map key \"{key}\" is not a bool"))?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(key.parse().map_err(bad)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(key.parse().map_err(bad)?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(key.parse().map_err(bad)?),
        _ => MapKey::U64(key.parse().map_err(bad)?),
    })
}

/// One (non-repeated) value of a kind.
fn scalar(kind: &Kind, value: &Value) -> Result<PValue, String> {
    let mismatch = || format!("cannot convert {} to {}", value.type_name(), kind_name(kind));
    let int = || -> Result<i64, String> {
        match value {
            Value::Int(i) => Ok(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() && f.abs() < 9.2e18 => Ok(*f as i64),
            _ => Err(mismatch()),
        }
    };
    let range = |_| format!("{value} is out of range of {}", kind_name(kind));
    Ok(match kind {
        Kind::Double => PValue::F64(value.as_f64().ok_or_else(mismatch)?),
        Kind::Float => PValue::F32(value.as_f64().ok_or_else(mismatch)? as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => PValue::I32(i32::try_from(int()?).map_err(range)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => PValue::U32(u32::try_from(int()?).map_err(range)?),
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(u64::try_from(int()?).map_err(range)?),
        Kind::Bool => match value {
            Value::Bool(b) => PValue::Bool(*b),
            _ => return Err(mismatch()),
        },
        Kind::String => match value {
            Value::String(s) => PValue::String(s.to_string()),
            _ => return Err(mismatch()),
        },
        Kind::Bytes => match value {
            Value::Bytes(b) => PValue::Bytes(bytes::Bytes::copy_from_slice(b)),
            Value::String(s) => PValue::Bytes(bytes::Bytes::copy_from_slice(s.as_bytes())),
            _ => return Err(mismatch()),
        },
        Kind::Enum(e) => match value {
            Value::String(s) => PValue::EnumNumber(
                e.get_value_by_name(s).ok_or_else(|| format!("\"{s}\" is not a value of {}", e.full_name()))?.number(),
            ),
            _ => PValue::EnumNumber(i32::try_from(int()?).map_err(range)?),
        },
        Kind::Message(m) => PValue::Message(message(m, value)?),
    })
}

/// A message from a value: a wrapper or timestamp from its scalar, others from a map.
fn message(desc: &MessageDescriptor, value: &Value) -> Result<DynamicMessage, String> {
    let mut out = DynamicMessage::new(desc.clone());
    if let Some(inner) = wrapper_kind(desc) {
        let field = desc.get_field(1).ok_or("wrapper without field")?;
        out.set_field(&field, scalar(&inner, value)?);
        return Ok(out);
    }
    if desc.full_name() == "google.protobuf.Timestamp" {
        let t = match value {
            Value::Timestamp(t) => t.to_utc(),
            Value::Int(ms) => DateTime::<Utc>::from_timestamp_millis(*ms).ok_or("timestamp out of range")?,
            _ => return Err(format!("cannot convert {} to google.protobuf.Timestamp", value.type_name())),
        };
        out.set_field_by_number(1, PValue::I64(t.timestamp()));
        out.set_field_by_number(2, PValue::I32(t.timestamp_subsec_nanos() as i32));
        return Ok(out);
    }
    let Value::Map(map) = value else {
        return Err(format!("cannot convert {} to message {}", value.type_name(), desc.full_name()));
    };
    for field in desc.fields() {
        if let Some(v) = lookup(map, &field).filter(|v| !v.is_null()) {
            let converted = field_value(&field, v).map_err(|e| format!("field {}: {e}", field.name()))?;
            out.set_field(&field, converted);
        }
    }
    Ok(out)
}

/// The scalar kind inside a `google.protobuf.*Value` wrapper.
fn wrapper_kind(desc: &MessageDescriptor) -> Option<Kind> {
    match desc.full_name() {
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => desc.get_field(1).map(|f| f.kind()),
        _ => None,
    }
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// The SQL value of a response: a map of its fields, or its single field's value.
pub fn response(message: &DynamicMessage) -> Value {
    let desc = message.descriptor();
    let mut fields = desc.fields();
    if let (Some(only), None) = (fields.next(), fields.next()) {
        return field_to_value(message, &only);
    }
    message_value(message)
}

/// A message as a value (wrappers and timestamps as their value).
pub fn message_value(message: &DynamicMessage) -> Value {
    let desc = message.descriptor();
    if wrapper_kind(&desc).is_some() {
        return message.get_field_by_number(1).map(|v| to_value(&v)).unwrap_or_default();
    }
    if desc.full_name() == "google.protobuf.Timestamp" {
        let seconds = message.get_field_by_number(1).and_then(|v| v.as_i64()).unwrap_or(0);
        let nanos = message.get_field_by_number(2).and_then(|v| v.as_i32()).unwrap_or(0);
        return DateTime::<Utc>::from_timestamp(seconds, nanos.max(0) as u32).map(Value::utc).unwrap_or_default();
    }
    let map: Map = desc.fields().map(|f| (Arc::from(f.name()), field_to_value(message, &f))).collect();
    Value::map(map)
}

fn field_to_value(message: &DynamicMessage, field: &FieldDescriptor) -> Value {
    // An unset message field (or oneof member) is NULL, not an empty map.
    if field.supports_presence() && !message.has_field(field) {
        return Value::Null;
    }
    to_value(&message.get_field(field))
}

fn to_value(value: &PValue) -> Value {
    match value {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(i) => Value::Int(i64::from(*i)),
        PValue::I64(i) => Value::Int(*i),
        PValue::U32(u) => Value::Int(i64::from(*u)),
        PValue::U64(u) => i64::try_from(*u).map(Value::Int).unwrap_or(Value::Float(*u as f64)),
        PValue::F32(f) => Value::Float(f64::from(*f)),
        PValue::F64(f) => Value::Float(*f),
        PValue::String(s) => Value::string(s.as_str()),
        PValue::Bytes(b) => Value::Bytes(Arc::from(b.as_ref())),
        PValue::EnumNumber(n) => Value::Int(i64::from(*n)),
        PValue::Message(m) => message_value(m),
        PValue::List(items) => Value::list(items.iter().map(to_value).collect()),
        PValue::Map(map) => {
            let out: Map = map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(u) => u.to_string(),
                        MapKey::U64(u) => u.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    (Arc::from(key), to_value(v))
                })
                .collect();
            Value::map(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile;

    const PROTO: &str = r#"syntax = "proto3"; package t;
        import "google/protobuf/wrappers.proto"; import "google/protobuf/timestamp.proto";
        message Box { int32 w = 1; int32 h = 2; }
        message Feature { string name = 1; Box box = 2; repeated double scores = 3; }
        message Req { string name = 1; int64 count = 2; google.protobuf.DoubleValue ratio = 3;
                      repeated Feature features = 4; map<string, int32> tags = 5; Kind kind = 6;
                      google.protobuf.Timestamp at = 7; }
        enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1; }
        message Two { int32 a = 1; string b = 2; }"#;

    fn desc(name: &str) -> MessageDescriptor {
        let pool = compile(&[("t.proto".into(), PROTO.into())]).unwrap();
        pool.get_message_by_name(name).unwrap()
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::map(entries.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect())
    }

    #[test]
    fn one_map_fills_fields_by_name_with_nested_repeated_wrappers_and_enums() {
        let feature = map(&[
            ("name", "f".into()),
            ("box", map(&[("w", Value::Int(3)), ("h", Value::Float(4.0))])),
            ("scores", Value::list(vec![Value::Int(1), Value::Float(0.5)])),
        ]);
        let row = map(&[
            ("name", "n".into()),
            ("count", Value::Float(7.0)),
            ("ratio", Value::Int(2)),
            ("features", Value::list(vec![feature])),
            ("tags", map(&[("x", Value::Int(1))])),
            ("kind", "KIND_A".into()),
            ("ignored", Value::Bool(true)),
        ]);
        let req = request(&desc("t.Req"), &[row]).unwrap();
        let back = message_value(&req);
        let Value::Map(back) = back else { panic!() };
        assert_eq!(back["name"], Value::from("n"));
        assert_eq!(back["count"], Value::Int(7));
        assert_eq!(back["ratio"], Value::Float(2.0));
        assert_eq!(back["kind"], Value::Int(1));
        assert_eq!(back["at"], Value::Null);
        let Value::List(features) = &back["features"] else { panic!() };
        let Value::Map(f) = &features[0] else { panic!() };
        assert_eq!(f["box"], map(&[("w", Value::Int(3)), ("h", Value::Int(4))]));
        assert_eq!(f["scores"], Value::list(vec![Value::Float(1.0), Value::Float(0.5)]));
        assert_eq!(back["tags"], map(&[("x", Value::Int(1))]));
    }

    #[test]
    fn several_arguments_fill_fields_in_order_and_the_count_must_match() {
        let req = request(&desc("t.Two"), &[Value::Int(1), "b".into()]).unwrap();
        assert_eq!(message_value(&req), map(&[("a", Value::Int(1)), ("b", "b".into())]));
        let err = request(&desc("t.Two"), &[Value::Int(1)]).unwrap_err().to_string();
        assert!(err.contains("takes 2 argument(s) (a, b)"), "{err}");
        let err = request(&desc("t.Two"), &["x".into(), "b".into()]).unwrap_err().to_string();
        assert!(err.contains("cannot convert string to int32"), "{err}");
        let err = request(&desc("t.Two"), &[Value::Float(1.5), "b".into()]).unwrap_err().to_string();
        assert!(err.contains("t.Two.a"), "{err}");
    }

    #[test]
    fn wrappers_take_scalars_and_single_field_responses_unwrap() {
        let sv = desc("google.protobuf.StringValue");
        let req = request(&sv, &["hello".into()]).unwrap();
        assert_eq!(response(&req), Value::from("hello"));
        // The `self` of a binary stream is a one-entry map of its bytes.
        let bv = desc("google.protobuf.BytesValue");
        let bytes = Value::Bytes(Arc::from(&b"\x00\x01"[..]));
        let req = request(&bv, &[map(&[("self", bytes.clone())])]).unwrap();
        assert_eq!(response(&req), bytes);
        let err = request(&desc("google.protobuf.Int32Value"), &[Value::Int(1 << 40)]).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn timestamps_convert_both_ways() {
        let t = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap();
        let req = request(&desc("t.Req"), &[map(&[("at", Value::utc(t)), ("name", "x".into())])]).unwrap();
        let Value::Map(back) = message_value(&req) else { panic!() };
        assert_eq!(back["at"], Value::utc(t));
    }
}
