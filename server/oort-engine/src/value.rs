//! [`Value`]: what a column, a function argument or a result holds.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};

/// A map from names to values (a STRUCT, a JSON object, a whole row as `self`).
pub type Map = BTreeMap<Arc<str>, Value>;

/// About how many bytes of memory a row takes: its keys, values and tree nodes.
pub fn map_approx_bytes(map: &Map) -> usize {
    map.iter().map(|(key, value)| 32 + key.len() + value.approx_bytes()).sum()
}

/// A dynamically typed value. Strings, lists and maps are shared (`Arc`) so
/// that copying a row between operators does not copy its contents.
///
/// `Serialize` and `Deserialize` are the encoding of checkpoints and stream
/// journals (postcard, tagged by variant); JSON is read and written by
/// [`crate::json`] and the sinks' encoders, not through these.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL NULL, also a missing field.
    #[default]
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// BIGINT.
    Int(i64),
    /// FLOAT.
    Float(f64),
    /// STRING.
    String(Arc<str>),
    /// BYTEA.
    Bytes(Arc<[u8]>),
    /// DATETIME: an instant, with the offset it is shown in (UTC, unless
    /// `convert_tz` gave another). Two datetimes are equal when their
    /// instants are.
    Timestamp(DateTime<FixedOffset>),
    /// ARRAY.
    List(Arc<Vec<Value>>),
    /// STRUCT.
    Map(Arc<Map>),
}

impl Value {
    /// The eKuiper name of this value's type, for error messages.
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

    /// About how many bytes of memory the value takes, for byte budgets
    /// (shared parts counted as if owned).
    pub fn approx_bytes(&self) -> usize {
        const SLOT: usize = std::mem::size_of::<Value>();
        SLOT + match self {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(items) => items.iter().map(Value::approx_bytes).sum(),
            Value::Map(map) => map_approx_bytes(map),
            _ => 0,
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A datetime shown in UTC.
    pub fn utc(t: DateTime<Utc>) -> Value {
        Value::Timestamp(t.fixed_offset())
    }

    /// A string value.
    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    /// A list value.
    pub fn list(values: Vec<Value>) -> Value {
        Value::List(Arc::new(values))
    }

    /// A map value.
    pub fn map(map: Map) -> Value {
        Value::Map(Arc::new(map))
    }

    /// The value as f64, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as i64, if it is an integer, or a float with no fraction.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        }
    }

    /// The value as &str, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Equality as SQL sees it for non-null values: 1 = 1.0; NaN is not equal to itself.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => self.as_f64() == other.as_f64(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    /// Text form as eKuiper prints values in string contexts (concat, format).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "{} bytes", b.len()),
            Value::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Value::List(values) => {
                f.write_str("[")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_int_and_float() {
        assert_eq!(Value::Int(1), Value::Float(1.0));
        assert_ne!(Value::Int(1), Value::string("1"));
        assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }

    #[test]
    fn display_is_plain_text() {
        let list = Value::list(vec![Value::Int(1), Value::from("a")]);
        assert_eq!(list.to_string(), "[1,a]");
        assert_eq!(Value::Null.to_string(), "null");
    }
}
