//! [`Value`], what a plugin sees of a column, an argument or a result, and its
//! conversions to and from the wire messages.

use std::collections::{BTreeMap, HashMap};

use crate::wire;

/// A row: column name → value.
pub type Row = BTreeMap<String, Value>;

/// A dynamically typed value, as in Oort's SQL.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// BIGINT.
    Int(i64),
    /// FLOAT.
    Float(f64),
    /// STRING.
    String(String),
    /// BYTEA.
    Bytes(Vec<u8>),
    /// DATETIME: nanoseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// ARRAY (also each argument of an aggregate: the group's values).
    List(Vec<Value>),
    /// STRUCT.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The value as f64, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as i64, if it is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The eKuiper name of the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "bigint",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytea",
            Value::Timestamp(_) => "datetime",
            Value::List(_) => "array",
            Value::Map(_) => "struct",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// One event of a source: its row, and optionally a time and metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// The columns.
    pub row: Row,
    /// Event time in Unix milliseconds, if the source knows it.
    pub timestamp_ms: Option<i64>,
    /// Metadata, read in SQL with `meta()`.
    pub meta: BTreeMap<String, String>,
}

impl Event {
    /// An event with this row and nothing else.
    pub fn new(row: Row) -> Self {
        Self { row, ..Default::default() }
    }
}

const NANOS: i64 = 1_000_000_000;

/// A wire value → a value (a missing oneof is NULL).
pub fn from_wire(value: &wire::Value) -> Value {
    use wire::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::IntValue(i)) => Value::Int(*i),
        Some(K::FloatValue(f)) => Value::Float(*f),
        Some(K::StringValue(s)) => Value::String(s.clone()),
        Some(K::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(K::TimestampValue(t)) => {
            Value::Timestamp(t.seconds.saturating_mul(NANOS).saturating_add(i64::from(t.nanos)))
        }
        Some(K::ListValue(l)) => Value::List(l.values.iter().map(from_wire).collect()),
        Some(K::MapValue(m)) => Value::Map(map_from_wire(&m.fields)),
    }
}

/// Wire fields → a row.
pub fn map_from_wire(fields: &HashMap<String, wire::Value>) -> Row {
    fields.iter().map(|(k, v)| (k.clone(), from_wire(v))).collect()
}

/// A value → a wire value (taken, so that nothing is copied).
pub fn to_wire(value: Value) -> wire::Value {
    use wire::value::Kind as K;
    let kind = match value {
        Value::Null => K::NullValue(0),
        Value::Bool(b) => K::BoolValue(b),
        Value::Int(i) => K::IntValue(i),
        Value::Float(f) => K::FloatValue(f),
        Value::String(s) => K::StringValue(s),
        Value::Bytes(b) => K::BytesValue(b),
        Value::Timestamp(ns) => K::TimestampValue(prost_types::Timestamp {
            seconds: ns.div_euclid(NANOS),
            nanos: ns.rem_euclid(NANOS) as i32,
        }),
        Value::List(l) => K::ListValue(wire::ListValue { values: l.into_iter().map(to_wire).collect() }),
        Value::Map(m) => K::MapValue(wire::MapValue { fields: map_to_wire(m) }),
    };
    wire::Value { kind: Some(kind) }
}

/// A row → wire fields.
pub fn map_to_wire(row: Row) -> HashMap<String, wire::Value> {
    row.into_iter().map(|(k, v)| (k, to_wire(v))).collect()
}

/// An event → a wire event.
pub fn event_to_wire(event: Event) -> wire::Event {
    wire::Event {
        fields: map_to_wire(event.row),
        timestamp: event.timestamp_ms.map(|ms| prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
        meta: event.meta.into_iter().collect(),
    }
}

/// A wire event → an event.
pub fn event_from_wire(event: &wire::Event) -> Event {
    Event {
        row: map_from_wire(&event.fields),
        timestamp_ms: event
            .timestamp
            .as_ref()
            .map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)),
        meta: event.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// A `google.protobuf.Struct` (stream options, action properties) → values.
pub fn config_from_struct(config: Option<&prost_types::Struct>) -> BTreeMap<String, Value> {
    fn json(value: &prost_types::Value) -> Value {
        use prost_types::value::Kind as K;
        match &value.kind {
            None | Some(K::NullValue(_)) => Value::Null,
            Some(K::BoolValue(b)) => Value::Bool(*b),
            // JSON numbers: whole ones become BIGINT, as eKuiper reads them.
            Some(K::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::Int(*n as i64),
            Some(K::NumberValue(n)) => Value::Float(*n),
            Some(K::StringValue(s)) => Value::String(s.clone()),
            Some(K::ListValue(l)) => Value::List(l.values.iter().map(json).collect()),
            Some(K::StructValue(s)) => Value::Map(s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
        }
    }
    config.map(|c| c.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_wire() {
        let mut map = BTreeMap::new();
        map.insert("a".to_owned(), Value::List(vec![Value::Int(1), Value::Null, Value::Bytes(vec![1, 2])]));
        for value in [Value::Bool(true), Value::Float(-1.5), Value::Timestamp(-1_500_000_000), Value::Map(map)] {
            assert_eq!(from_wire(&to_wire(value.clone())), value);
        }
        let event = Event { row: Row::new(), timestamp_ms: Some(-1), meta: BTreeMap::new() };
        assert_eq!(event_from_wire(&event_to_wire(event.clone())), event);
    }
}
