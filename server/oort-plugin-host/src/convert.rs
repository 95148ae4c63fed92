//! Engine values ↔ the `oort.v1` messages (`Value`, `Event`, and
//! `google.protobuf.Struct` for configuration): the one conversion of the
//! native ABI, of portable plugins and of the API, which all carry them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use oort_engine::{Map, Value};
use oort_proto::v1 as pb;

/// An engine value → an `oort.v1.Value`.
pub fn to_proto(value: &Value) -> pb::Value {
    use pb::value::Kind as K;
    let kind = match value {
        Value::Null => K::NullValue(0),
        Value::Bool(b) => K::BoolValue(*b),
        Value::Int(i) => K::IntValue(*i),
        Value::Float(f) => K::FloatValue(*f),
        Value::String(s) => K::StringValue(s.to_string()),
        Value::Bytes(b) => K::BytesValue(b.to_vec()),
        Value::Timestamp(t) => K::TimestampValue(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        }),
        Value::List(values) => K::ListValue(pb::ListValue { values: values.iter().map(to_proto).collect() }),
        Value::Map(map) => K::MapValue(pb::MapValue { fields: map_to_proto(map) }),
    };
    pb::Value { kind: Some(kind) }
}

/// Row fields → message fields.
pub fn map_to_proto(map: &Map) -> HashMap<String, pb::Value> {
    map.iter().map(|(k, v)| (k.to_string(), to_proto(v))).collect()
}

/// An `oort.v1.Value` → an engine value.
pub fn from_proto(value: &pb::Value) -> Value {
    use pb::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::IntValue(i)) => Value::Int(*i),
        Some(K::FloatValue(f)) => Value::Float(*f),
        Some(K::StringValue(s)) => Value::String(s.as_str().into()),
        Some(K::BytesValue(b)) => Value::Bytes(b.as_slice().into()),
        Some(K::TimestampValue(t)) => timestamp(t.seconds, t.nanos),
        Some(K::ListValue(l)) => Value::list(l.values.iter().map(from_proto).collect()),
        Some(K::MapValue(m)) => Value::map(map_from_proto(&m.fields)),
    }
}

/// Message fields → row fields.
pub fn map_from_proto(fields: &HashMap<String, pb::Value>) -> Map {
    fields.iter().map(|(k, v)| (Arc::from(k.as_str()), from_proto(v))).collect()
}

/// A timestamp from seconds and nanoseconds; NULL out of range.
pub fn timestamp(seconds: i64, nanos: i32) -> Value {
    DateTime::<Utc>::from_timestamp(seconds, nanos.clamp(0, 999_999_999) as u32).map(Value::utc).unwrap_or_default()
}

/// A timestamp from nanoseconds since the epoch.
pub fn timestamp_ns(ns: i64) -> Value {
    timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as i32)
}

/// A row → an `oort.v1.Event`.
pub fn event_to_proto(row: &Map) -> pb::Event {
    pb::Event { fields: map_to_proto(row), ..Default::default() }
}

fn json_to_prost(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind as K;
    let kind = match value {
        serde_json::Value::Null => K::NullValue(0),
        serde_json::Value::Bool(b) => K::BoolValue(*b),
        serde_json::Value::Number(n) => K::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => K::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            K::ListValue(prost_types::ListValue { values: a.iter().map(json_to_prost).collect() })
        }
        serde_json::Value::Object(o) => K::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// JSON properties (a rule action's) → a `Struct`.
pub fn json_to_struct(props: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: props.iter().map(|(k, v)| (k.clone(), json_to_prost(v))).collect() }
}

/// String options (a stream's WITH) → a `Struct` of strings.
pub fn options_to_struct(options: &BTreeMap<String, String>) -> prost_types::Struct {
    let string = |s: &String| prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(s.clone())) };
    prost_types::Struct { fields: options.iter().map(|(k, v)| (k.clone(), string(v))).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn values_round_trip() {
        let mut map = Map::new();
        map.insert("t".into(), timestamp(1_700_000_000, 5));
        map.insert("l".into(), Value::list(vec![Value::Int(-1), Value::string("é"), Value::Null, Value::Float(0.5)]));
        map.insert("b".into(), Value::Bytes(vec![0u8, 255].into()));
        map.insert("max".into(), Value::Int(i64::MAX));
        map.insert("yes".into(), Value::Bool(true));
        let value = Value::map(map);
        let bytes = to_proto(&value).encode_to_vec();
        assert_eq!(from_proto(&pb::Value::decode(bytes.as_slice()).unwrap()).to_string(), value.to_string());
    }
}
