//! Engine values ↔ the wire messages of the ABI (`oort.v1.Value`, `Event`, and
//! `google.protobuf.Struct` for configuration).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use oort_engine::{Map, Value};
use oort_plugin::wire;

/// An engine value → a wire value.
pub fn to_wire(value: &Value) -> wire::Value {
    use wire::value::Kind as K;
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
        Value::List(values) => K::ListValue(wire::ListValue { values: values.iter().map(to_wire).collect() }),
        Value::Map(map) => K::MapValue(wire::MapValue { fields: map_to_wire(map) }),
    };
    wire::Value { kind: Some(kind) }
}

/// Row fields → wire fields.
pub fn map_to_wire(map: &Map) -> HashMap<String, wire::Value> {
    map.iter().map(|(k, v)| (k.to_string(), to_wire(v))).collect()
}

/// A wire value → an engine value.
pub fn from_wire(value: &wire::Value) -> Value {
    use wire::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::IntValue(i)) => Value::Int(*i),
        Some(K::FloatValue(f)) => Value::Float(*f),
        Some(K::StringValue(s)) => Value::String(s.as_str().into()),
        Some(K::BytesValue(b)) => Value::Bytes(b.as_slice().into()),
        Some(K::TimestampValue(t)) => timestamp(t.seconds, t.nanos),
        Some(K::ListValue(l)) => Value::list(l.values.iter().map(from_wire).collect()),
        Some(K::MapValue(m)) => Value::map(map_from_wire(&m.fields)),
    }
}

/// Wire fields → row fields.
pub fn map_from_wire(fields: &HashMap<String, wire::Value>) -> Map {
    fields.iter().map(|(k, v)| (Arc::from(k.as_str()), from_wire(v))).collect()
}

/// A timestamp from seconds and nanoseconds; NULL out of range.
pub fn timestamp(seconds: i64, nanos: i32) -> Value {
    DateTime::<Utc>::from_timestamp(seconds, nanos.clamp(0, 999_999_999) as u32)
        .map(Value::Timestamp)
        .unwrap_or_default()
}

/// A timestamp from nanoseconds since the epoch.
pub fn timestamp_ns(ns: i64) -> Value {
    timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as i32)
}

/// A row → a wire event.
pub fn event_to_wire(row: &Map) -> wire::Event {
    wire::Event { fields: map_to_wire(row), ..Default::default() }
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

    /// The SDK's hand-written messages and the generated ones read each other's bytes.
    #[test]
    fn sdk_messages_are_wire_compatible_with_oort_proto() {
        let mut map = Map::new();
        map.insert("t".into(), timestamp(1_700_000_000, 5));
        map.insert(
            "l".into(),
            Value::list(vec![Value::Int(-1), Value::string("é"), Value::Bytes(vec![0u8, 1].into())]),
        );
        let value = Value::map(map);
        let sdk = to_wire(&value).encode_to_vec();
        let generated = oort_proto::v1::Value::decode(sdk.as_slice()).unwrap();
        let back = wire::Value::decode(generated.encode_to_vec().as_slice()).unwrap();
        assert_eq!(from_wire(&back).to_string(), value.to_string());

        let batch = oort_proto::plugin::v1::SinkBatch { batch_id: 7, events: vec![Default::default()] };
        let decoded = wire::SinkBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
        assert_eq!((decoded.batch_id, decoded.events.len()), (7, 1));
        let symbol = wire::Symbol {
            name: "f".into(),
            kind: wire::symbol_kind::FUNCTION,
            aggregate: true,
            description: "d".into(),
        };
        let generated = oort_proto::plugin::v1::Symbol::decode(symbol.encode_to_vec().as_slice()).unwrap();
        assert_eq!(generated.kind, oort_proto::plugin::v1::SymbolKind::Function as i32);
        assert!(generated.aggregate);
    }
}
