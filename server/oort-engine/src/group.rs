//! [`GroupKey`]: the GROUP BY values of a row, hashable, with the equality
//! eKuiper uses for groups (1 and 1.0 are one group; NaN is one group).

use std::hash::{Hash, Hasher};

use crate::value::Value;

/// A `PARTITION BY` key (of an analytic call, of a state window) as bytes: no
/// two different lists of values have the same, and bytes save as they are in
/// checkpoints.
pub(crate) fn partition_key<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let values: Vec<&Value> = values.into_iter().collect();
    // A list of values always encodes (every map key is a string).
    postcard::to_stdvec(&values).unwrap_or_default()
}

/// The values of the GROUP BY expressions for one row.
#[derive(Debug, Clone)]
pub struct GroupKey(pub Vec<Value>);

fn hash_value<H: Hasher>(value: &Value, state: &mut H) {
    match value {
        Value::Null => state.write_u8(0),
        Value::Bool(b) => {
            state.write_u8(1);
            b.hash(state);
        }
        Value::Int(_) | Value::Float(_) => {
            state.write_u8(2);
            match value.as_i64() {
                Some(i) => i.hash(state),
                None => value.as_f64().unwrap_or(f64::NAN).to_bits().hash(state),
            }
        }
        Value::String(s) => {
            state.write_u8(3);
            s.hash(state);
        }
        Value::Bytes(b) => {
            state.write_u8(4);
            b.hash(state);
        }
        Value::Timestamp(t) => {
            state.write_u8(5);
            t.hash(state);
        }
        Value::List(values) => {
            state.write_u8(6);
            state.write_usize(values.len());
            values.iter().for_each(|v| hash_value(v, state));
        }
        Value::Map(map) => {
            state.write_u8(7);
            state.write_usize(map.len());
            for (k, v) in map.iter() {
                k.hash(state);
                hash_value(v, state);
            }
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) if x.is_nan() && y.is_nan() => true,
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        self.0.iter().for_each(|v| hash_value(v, state));
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| same(a, b))
    }
}

impl Eq for GroupKey {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn equal_numbers_and_nans_group_together() {
        let keys: HashSet<GroupKey> = [
            GroupKey(vec![Value::Int(1), Value::from("a")]),
            GroupKey(vec![Value::Float(1.0), Value::from("a")]),
            GroupKey(vec![Value::Float(f64::NAN), Value::Null]),
            GroupKey(vec![Value::Float(f64::NAN), Value::Null]),
            GroupKey(vec![Value::Float(1.5), Value::from("a")]),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys.len(), 3);
    }
}
