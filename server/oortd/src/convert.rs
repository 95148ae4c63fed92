//! Conversions between the API's protobuf messages and the engine's types.

use oort_engine::{ActionDefinition, BufferFull, Guarantee, RestartStrategy, RuleDefinition, RuleOptions};
use oort_proto::v1 as pb;
use prost_types::value::Kind;

// Values and rows ↔ `oort.v1` messages: one conversion for the API and for
// portable plugins, which speak the same messages.
pub use oort_plugin_host::convert::{map_from_proto, map_to_proto};

/// A `google.protobuf.Struct` (action properties) → JSON.
pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields.iter().map(|(k, v)| (k.clone(), prost_value_to_json(v))).collect()
}

/// JSON (a declared connection's settings) → a `google.protobuf.Struct`.
pub fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_prost_value(v))).collect() }
}

fn json_to_prost_value(value: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(json_to_prost_value).collect() })
        }
        J::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
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

/// What a rule does when its input buffer is full: as it says, else what its
/// qos asks (a rule that asks for at-least-once must not drop).
fn buffer_full(options: &pb::RuleOptions) -> BufferFull {
    match options.buffer_full() {
        pb::BufferFull::Drop => BufferFull::Drop,
        pb::BufferFull::Block => BufferFull::Block,
        pb::BufferFull::Unspecified if options.qos == 0 => BufferFull::Drop,
        pb::BufferFull::Unspecified => BufferFull::Block,
    }
}

/// A stored rule → what the engine runs.
pub fn rule_definition(rule: &pb::Rule) -> RuleDefinition {
    let defaults = RuleOptions::default();
    let options = rule.options.clone().unwrap_or_default();
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
            buffer_full: buffer_full(&options),
            qos: Guarantee::from_qos(options.qos),
            checkpoint_interval_ms: options
                .checkpoint_interval_ms
                .map(|ms| ms.max(1) as u64)
                .unwrap_or(defaults.checkpoint_interval_ms),
            send_meta_to_sink: options.send_meta_to_sink,
            send_error: options.send_error,
            concurrency: options.concurrency.map_or(1, |c| c.max(1) as usize),
            debug: options.debug,
            send_nil_field: options.send_nil_field,
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

/// A delivery guarantee → its message.
pub fn guarantee_to_proto(guarantee: Guarantee) -> pb::DeliveryGuarantee {
    match guarantee {
        Guarantee::AtMostOnce => pb::DeliveryGuarantee::AtMostOnce,
        Guarantee::AtLeastOnce => pb::DeliveryGuarantee::AtLeastOnce,
        Guarantee::ExactlyOnce => pb::DeliveryGuarantee::ExactlyOnce,
    }
}

/// Unix milliseconds → a timestamp; `None` for 0 or before (never set).
pub fn timestamp_ms(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// A rule's checkpoints → their message.
pub fn checkpoints_to_proto(status: &oort_engine::runtime::CheckpointStatus) -> pb::Checkpoints {
    let checkpoint = |c: &oort_engine::runtime::SavedCheckpoint| pb::Checkpoint {
        id: c.id,
        taken_time: timestamp_ms(c.taken_ms),
        size_bytes: c.bytes,
        duration_ms: c.duration_ms,
        source_position: c.position.unwrap_or_default(),
    };
    pb::Checkpoints {
        enabled: status.enabled,
        last: status.last.as_ref().map(checkpoint),
        restored: status.restored.as_ref().map(checkpoint),
        failures_total: status.failures,
        last_error: status.last_error.clone().unwrap_or_default(),
        replayed_events: status.replayed,
    }
}

/// What a rule asks for and gets → its message.
pub fn delivery_to_proto(delivery: &oort_engine::Delivery) -> pb::Delivery {
    pb::Delivery {
        requested: guarantee_to_proto(delivery.requested) as i32,
        provided: guarantee_to_proto(delivery.provided) as i32,
        reason: delivery.shortfall.clone().unwrap_or_default(),
    }
}
