//! JSON in and out of [`Value`]s: decoding events of `FORMAT="json"` (straight
//! into values, without an intermediate `serde_json::Value`) and encoding results.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::value::{Map, Value};

/// Decodes one JSON object into a row's fields.
pub fn decode_object(bytes: &[u8]) -> Result<Map, String> {
    match serde_json::from_slice::<JsonValue>(bytes) {
        Ok(JsonValue(Value::Map(map))) => Ok(Arc::unwrap_or_clone(map)),
        Ok(JsonValue(other)) => Err(format!("expected a JSON object, got {}", other.type_name())),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Decodes a JSON object (one row's fields) or an array of objects (rows).
pub fn decode_objects(bytes: &[u8]) -> Result<Vec<Map>, String> {
    let into_map = |value: Value| match value {
        Value::Map(map) => Ok(Arc::unwrap_or_clone(map)),
        other => Err(other.type_name()),
    };
    match serde_json::from_slice::<JsonValue>(bytes) {
        Ok(JsonValue(Value::List(values))) => (Arc::unwrap_or_clone(values).into_iter().enumerate())
            .map(|(i, value)| into_map(value).map_err(|kind| format!("element {i} is {kind}, not a JSON object")))
            .collect(),
        Ok(JsonValue(value)) => into_map(value)
            .map(|map| vec![map])
            .map_err(|kind| format!("expected a JSON object or an array of objects, got {kind}")),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Decodes the fields called `names` of one JSON object, in that order (`None`
/// for a field the object lacks). Other fields are skipped without building
/// values for them; of a key given twice, the last wins.
pub fn decode_fields(bytes: &[u8], names: &[Arc<str>]) -> Result<Vec<Option<Value>>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let values =
        de::DeserializeSeed::deserialize(FieldsSeed(names), &mut de).map_err(|e| format!("invalid JSON: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(values)
}

/// Reads a JSON object into the slots of the declared field names.
struct FieldsSeed<'a>(&'a [Arc<str>]);

impl<'de> de::DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut slots = vec![None; self.0.len()];
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            // Schemas are short: a linear scan beats hashing the key.
            match self.0.iter().position(|name| name.as_ref() == key.as_ref()) {
                Some(i) => slots[i] = Some(access.next_value::<JsonValue>()?.0),
                None => {
                    access.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(slots)
    }
}

/// A [`Value`] read from JSON: integers stay BIGINT, other numbers FLOAT.
pub struct JsonValue(pub Value);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(JsonValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(JsonValue(v)) = seq.next_element()? {
            values.push(v);
        }
        Ok(Value::list(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, JsonValue(v))) = access.next_entry::<std::borrow::Cow<'de, str>, JsonValue>()? {
            map.insert(Arc::from(key.as_ref()), v);
        }
        Ok(Value::map(map))
    }
}

/// FLOAT values that JSON could not carry (NaN, ±infinity), since the start.
static NON_FINITE: AtomicU64 = AtomicU64::new(0);

/// How many NaN and infinite values were written to JSON as null since the
/// server started (`oort_json_non_finite_total` in /metrics).
pub fn non_finite_encoded() -> u64 {
    NON_FINITE.load(Ordering::Relaxed)
}

/// Converts a value to JSON. Bytes become base64 text and datetimes RFC 3339
/// text, as eKuiper's JSON encoding does. JSON has no NaN or infinity: they
/// become null, and are counted ([`non_finite_encoded`]).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or_else(|| {
            NON_FINITE.fetch_add(1, Ordering::Relaxed);
            J::Null
        }),
        Value::String(s) => J::String(s.to_string()),
        Value::Bytes(b) => J::String(BASE64_STANDARD.encode(b)),
        Value::Timestamp(t) => J::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Value::List(values) => J::Array(values.iter().map(value_to_json).collect()),
        Value::Map(map) => map_to_json(map),
    }
}

/// Converts a row's fields to a JSON object.
pub fn map_to_json(map: &Map) -> serde_json::Value {
    serde_json::Value::Object(map.iter().map(|(k, v)| (k.to_string(), value_to_json(v))).collect())
}

/// Converts JSON to a value: integers stay BIGINT, other numbers FLOAT.
pub fn json_to_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n.as_i64().map(Value::Int).unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
        J::String(s) => Value::String(s.as_str().into()),
        J::Array(values) => Value::list(values.iter().map(json_to_value).collect()),
        J::Object(map) => Value::map(map.iter().map(|(k, v)| (Arc::from(k.as_str()), json_to_value(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinities_are_null_and_counted() {
        let before = non_finite_encoded();
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(value_to_json(&Value::Float(f)), serde_json::Value::Null);
        }
        assert_eq!(value_to_json(&Value::Float(1.5)), serde_json::json!(1.5));
        // Other tests may encode at the same time: at least these three.
        assert!(non_finite_encoded() >= before + 3);
    }

    #[test]
    fn decodes_objects_keeping_integers() {
        let map = decode_object(br#"{"a": 1, "b": 1.5, "c": [true, null], "d": {"e": "x"}}"#).unwrap();
        assert_eq!(map["a"], Value::Int(1));
        assert_eq!(map["b"], Value::Float(1.5));
        assert_eq!(
            value_to_json(&Value::map(map)),
            serde_json::json!({"a": 1, "b": 1.5, "c": [true, null], "d": {"e": "x"}})
        );
        assert!(decode_object(b"[1]").unwrap_err().contains("object"));
        assert!(decode_object(b"{nope").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn decodes_an_object_or_an_array_of_objects() {
        let rows = decode_objects(br#"[{"a": 1}, {"a": 2.5, "b": "x"}]"#).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (&rows[0]["a"], &rows[1]["a"], &rows[1]["b"]),
            (&Value::Int(1), &Value::Float(2.5), &Value::String("x".into()))
        );
        assert_eq!(decode_objects(br#"{"a": true}"#).unwrap()[0]["a"], Value::Bool(true));
        assert!(decode_objects(b"[]").unwrap().is_empty());
        assert!(decode_objects(br#"[{"a": 1}, 2]"#).unwrap_err().contains("element 1"));
        assert!(decode_objects(b"\"a\"").unwrap_err().contains("array of objects"));
        let err = decode_objects(b"[{\"a\": 1},\n {\"a\" 2}]").unwrap_err();
        assert!(err.contains("line 2 column"), "{err}");
    }

    #[test]
    fn bytes_encode_as_base64() {
        assert_eq!(value_to_json(&Value::Bytes(b"hello"[..].into())), serde_json::json!("aGVsbG8="));
    }
}
