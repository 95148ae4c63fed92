//! Conversions between the API's protobuf messages and the engine's types.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use oort_engine::{ActionDefinition, Map, RestartStrategy, RuleDefinition, RuleOptions, Value};
use oort_proto::v1 as pb;
use prost_types::value::Kind;

/// An API value → an engine value.
pub fn value_from_proto(value: &pb::Value) -> Value {
    use pb::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::IntValue(i)) => Value::Int(*i),
        Some(K::FloatValue(f)) => Value::Float(*f),
        Some(K::StringValue(s)) => Value::String(s.as_str().into()),
        Some(K::BytesValue(b)) => Value::Bytes(b.as_slice().into()),
        Some(K::TimestampValue(t)) => DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
        Some(K::ListValue(l)) => Value::list(l.values.iter().map(value_from_proto).collect()),
        Some(K::MapValue(m)) => Value::map(map_from_proto(&m.fields)),
    }
}

/// API fields → a row's fields.
pub fn map_from_proto(fields: &std::collections::HashMap<String, pb::Value>) -> Map {
    fields.iter().map(|(k, v)| (Arc::from(k.as_str()), value_from_proto(v))).collect()
}

/// An engine value → an API value.
pub fn value_to_proto(value: &Value) -> pb::Value {
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
        Value::List(values) => K::ListValue(pb::ListValue { values: values.iter().map(value_to_proto).collect() }),
        Value::Map(map) => K::MapValue(pb::MapValue { fields: map_to_proto(map) }),
    };
    pb::Value { kind: Some(kind) }
}

/// A row's fields → API fields.
pub fn map_to_proto(map: &Map) -> std::collections::HashMap<String, pb::Value> {
    map.iter().map(|(k, v)| (k.to_string(), value_to_proto(v))).collect()
}

/// A `google.protobuf.Struct` (action properties) → JSON.
pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields.iter().map(|(k, v)| (k.clone(), prost_value_to_json(v))).collect()
}

fn prost_value_to_json(value: &prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        // Struct numbers are doubles; give integral ones back as integers, as
        // eKuiper's JSON props would have been.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => J::from(*n as i64),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map(J::Number).unwrap_or(J::Null),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(prost_value_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(struct_to_json(s)),
    }
}

/// A stored rule → what the engine runs.
pub fn rule_definition(rule: &pb::Rule) -> RuleDefinition {
    let defaults = RuleOptions::default();
    let options = rule.options.unwrap_or_default();
    let restart_defaults = RestartStrategy::default();
    let restart = options.restart_strategy.unwrap_or_default();
    RuleDefinition {
        id: rule.id.clone(),
        sql: rule.sql.clone(),
        actions: rule
            .actions
            .iter()
            .map(|a| ActionDefinition {
                sink_type: a.r#type.clone(),
                props: a.props.as_ref().map(struct_to_json).unwrap_or_default(),
            })
            .collect(),
        options: RuleOptions {
            is_event_time: options.is_event_time,
            late_tolerance_ms: options.late_tolerance_ms.unwrap_or(defaults.late_tolerance_ms),
            buffer_length: options.buffer_length.map(|b| b as usize).unwrap_or(defaults.buffer_length),
            send_meta_to_sink: options.send_meta_to_sink,
            restart: RestartStrategy {
                attempts: restart.attempts,
                delay_ms: restart.delay_ms.map(|d| d as u64).unwrap_or(restart_defaults.delay_ms),
                multiplier: restart.multiplier.unwrap_or(restart_defaults.multiplier),
                max_delay_ms: restart.max_delay_ms.map(|d| d as u64).unwrap_or(restart_defaults.max_delay_ms),
                jitter_factor: restart.jitter_factor.unwrap_or(restart_defaults.jitter_factor),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let value = Value::list(vec![
            Value::Int(i64::MAX),
            Value::Float(1.5),
            Value::from("x"),
            Value::Bytes(vec![0u8, 255].into()),
            Value::map(Map::from([(Arc::from("k"), Value::Bool(true))])),
            Value::Null,
        ]);
        assert_eq!(value_from_proto(&value_to_proto(&value)), value);
    }
}
