//! Engine values ↔ the generated `oort.v1` messages that portable plugins
//! speak, and the API too (oortd uses these).

use std::collections::HashMap;
use std::sync::Arc;

use oort_engine::{Map, Value};
use oort_proto::v1 as pb;

/// An engine value → a wire value.
pub fn to_pb(value: &Value) -> pb::Value {
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
        Value::List(values) => K::ListValue(pb::ListValue { values: values.iter().map(to_pb).collect() }),
        Value::Map(map) => K::MapValue(pb::MapValue { fields: map_to_pb(map) }),
    };
    pb::Value { kind: Some(kind) }
}

/// Row fields → wire fields.
pub fn map_to_pb(map: &Map) -> HashMap<String, pb::Value> {
    map.iter().map(|(k, v)| (k.to_string(), to_pb(v))).collect()
}

/// A wire value → an engine value.
pub fn from_pb(value: &pb::Value) -> Value {
    use pb::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::IntValue(i)) => Value::Int(*i),
        Some(K::FloatValue(f)) => Value::Float(*f),
        Some(K::StringValue(s)) => Value::String(s.as_str().into()),
        Some(K::BytesValue(b)) => Value::Bytes(b.as_slice().into()),
        Some(K::TimestampValue(t)) => crate::convert::timestamp(t.seconds, t.nanos),
        Some(K::ListValue(l)) => Value::list(l.values.iter().map(from_pb).collect()),
        Some(K::MapValue(m)) => Value::map(map_from_pb(&m.fields)),
    }
}

/// Wire fields → row fields.
pub fn map_from_pb(fields: &HashMap<String, pb::Value>) -> Map {
    fields.iter().map(|(k, v)| (Arc::from(k.as_str()), from_pb(v))).collect()
}

/// A row → a wire event.
pub fn event_to_pb(row: &Map) -> pb::Event {
    pb::Event { fields: map_to_pb(row), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let mut map = Map::new();
        map.insert("t".into(), crate::convert::timestamp(1_700_000_000, 5));
        map.insert("l".into(), Value::list(vec![Value::Int(-1), Value::string("é"), Value::Null, Value::Float(0.5)]));
        map.insert("b".into(), Value::Bytes(vec![0u8, 255].into()));
        map.insert("max".into(), Value::Int(i64::MAX));
        map.insert("yes".into(), Value::Bool(true));
        let value = Value::map(map);
        assert_eq!(from_pb(&to_pb(&value)).to_string(), value.to_string());
    }
}
