//! [`Tuple`]: what an expression reads from a row, for one stream ([`Row`])
//! or for the parts of a join ([`JoinedRow`]).

use std::sync::Arc;

use crate::row::Row;
use crate::value::{Map, Value};

/// The data an expression is evaluated against.
///
/// `qualifier` is the source name or alias written before a column
/// (`demo.temp`), or `None` for an unqualified one. Field names are matched
/// exactly first, then case-insensitively (eKuiper's lookup).
pub trait Tuple {
    /// The value of a column, `None` when absent (evaluated as NULL).
    fn field(&self, qualifier: Option<&str>, name: &str) -> Option<&Value>;

    /// Every column as one map: `self`, `*` as a function argument, `SELECT *`.
    fn to_map(&self) -> Value;

    /// The columns of one source (`src.*`); `None` when it has no part here.
    fn source_map(&self, qualifier: &str) -> Option<Value>;

    /// A metadata value (`meta(key)`, or `meta(src.key)` with a qualifier).
    fn meta(&self, qualifier: Option<&str>, key: &str) -> Option<&str>;

    /// All metadata as a map of strings (`meta(*)`).
    fn meta_map(&self) -> Value;

    /// Event time in Unix milliseconds.
    fn timestamp(&self) -> i64;

    /// The result of the rule's analytic call in `slot` for this event
    /// ([`crate::analytic`]); `None` where none was evaluated.
    fn analytic(&self, slot: usize) -> Option<&Value> {
        let _ = slot;
        None
    }
}

impl<T: Tuple + ?Sized> Tuple for &T {
    fn field(&self, qualifier: Option<&str>, name: &str) -> Option<&Value> {
        (**self).field(qualifier, name)
    }
    fn to_map(&self) -> Value {
        (**self).to_map()
    }
    fn source_map(&self, qualifier: &str) -> Option<Value> {
        (**self).source_map(qualifier)
    }
    fn meta(&self, qualifier: Option<&str>, key: &str) -> Option<&str> {
        (**self).meta(qualifier, key)
    }
    fn meta_map(&self) -> Value {
        (**self).meta_map()
    }
    fn timestamp(&self) -> i64 {
        (**self).timestamp()
    }
    fn analytic(&self, slot: usize) -> Option<&Value> {
        (**self).analytic(slot)
    }
}

/// Looks `name` up exactly, then ignoring ASCII case.
pub(crate) fn lookup<'m>(map: &'m Map, name: &str) -> Option<&'m Value> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A single stream's row: the qualifier is ignored (the compiler has checked it).
impl Tuple for Row {
    fn field(&self, qualifier: Option<&str>, name: &str) -> Option<&Value> {
        match &self.joined {
            Some(joined) => joined.field(qualifier, name),
            None => lookup(&self.fields, name),
        }
    }

    fn to_map(&self) -> Value {
        match &self.joined {
            Some(joined) => joined.to_map(),
            None => Value::map(self.fields.clone()),
        }
    }

    fn source_map(&self, qualifier: &str) -> Option<Value> {
        match &self.joined {
            Some(joined) => joined.source_map(qualifier),
            None => Some(self.to_map()),
        }
    }

    fn meta(&self, qualifier: Option<&str>, key: &str) -> Option<&str> {
        if let Some(joined) = &self.joined {
            return joined.meta(qualifier, key);
        }
        self.meta
            .get(key)
            .or_else(|| self.meta.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
            .map(String::as_str)
    }

    fn meta_map(&self) -> Value {
        if let Some(joined) = &self.joined {
            return joined.meta_map();
        }
        Value::map(self.meta.iter().map(|(k, v)| (Arc::from(k.as_str()), Value::string(v.as_str()))).collect())
    }

    fn timestamp(&self) -> i64 {
        self.timestamp
    }

    fn analytic(&self, slot: usize) -> Option<&Value> {
        self.analytic.get(slot)
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JoinedRow {
    /// Each source's name (its alias if it has one) and its row.
    pub parts: Vec<(Arc<str>, Row)>,
}

impl JoinedRow {
    fn part(&self, qualifier: &str) -> Option<&Row> {
        self.parts
            .iter()
            .find(|(name, _)| &**name == qualifier)
            .or_else(|| self.parts.iter().find(|(name, _)| name.eq_ignore_ascii_case(qualifier)))
            .map(|(_, row)| row)
    }
}

/// Qualified names read that source's part; unqualified names read the first
/// part that has the field. `to_map` merges the parts, earlier parts winning.
impl Tuple for JoinedRow {
    fn field(&self, qualifier: Option<&str>, name: &str) -> Option<&Value> {
        match qualifier {
            Some(q) => self.part(q)?.field(None, name),
            None => self.parts.iter().find_map(|(_, row)| row.field(None, name)),
        }
    }

    fn to_map(&self) -> Value {
        let mut merged = Map::new();
        for (_, row) in &self.parts {
            for (k, v) in &row.fields {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Value::map(merged)
    }

    fn source_map(&self, qualifier: &str) -> Option<Value> {
        self.part(qualifier).map(Row::to_map)
    }

    fn meta(&self, qualifier: Option<&str>, key: &str) -> Option<&str> {
        match qualifier {
            Some(q) => self.part(q)?.meta(None, key),
            None => self.parts.iter().find_map(|(_, row)| row.meta(None, key)),
        }
    }

    fn meta_map(&self) -> Value {
        let mut merged = Map::new();
        for (_, row) in &self.parts {
            for (k, v) in row.meta.iter() {
                merged.entry(Arc::from(k.as_str())).or_insert_with(|| Value::string(v.as_str()));
            }
        }
        Value::map(merged)
    }

    fn timestamp(&self) -> i64 {
        self.parts.first().map_or(0, |(_, row)| row.timestamp)
    }
}

/// A tuple with nothing in it: the "first row" of an empty group.
pub(crate) struct EmptyTuple;

impl Tuple for EmptyTuple {
    fn field(&self, _: Option<&str>, _: &str) -> Option<&Value> {
        None
    }
    fn to_map(&self) -> Value {
        Value::map(Map::new())
    }
    fn source_map(&self, _: &str) -> Option<Value> {
        None
    }
    fn meta(&self, _: Option<&str>, _: &str) -> Option<&str> {
        None
    }
    fn meta_map(&self) -> Value {
        Value::map(Map::new())
    }
    fn timestamp(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn row(fields: &[(&str, Value)], meta: &[(&str, &str)]) -> Row {
        let mut r = Row::new(fields.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect(), 7);
        r.meta = Arc::new(meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        r
    }

    #[test]
    fn row_lookup_is_exact_then_case_insensitive() {
        let r = row(&[("temp", Value::Int(1)), ("Temp", Value::Int(2)), ("hum", Value::Int(3))], &[("topic", "t/1")]);
        assert_eq!(r.field(None, "Temp"), Some(&Value::Int(2)));
        assert_eq!(r.field(Some("ignored"), "HUM"), Some(&Value::Int(3)));
        assert_eq!(r.field(None, "missing"), None);
        assert_eq!(r.meta(None, "TOPIC"), Some("t/1"));
        assert_eq!(r.timestamp(), 7);
        let Value::Map(meta) = r.meta_map() else { panic!("not a map") };
        assert_eq!(meta.get("topic"), Some(&Value::from("t/1")));
    }

    #[test]
    fn joined_row_qualifies_and_merges_with_earlier_parts_winning() {
        let joined = JoinedRow {
            parts: vec![
                (Arc::from("demo"), row(&[("id", Value::Int(1)), ("a", Value::Int(10))], &[("topic", "x")])),
                (Arc::from("t"), row(&[("id", Value::Int(2)), ("b", Value::Int(20))], &[("topic", "y"), ("k", "v")])),
            ],
        };
        assert_eq!(joined.field(Some("t"), "id"), Some(&Value::Int(2)));
        assert_eq!(joined.field(Some("T"), "id"), Some(&Value::Int(2)));
        assert_eq!(joined.field(None, "id"), Some(&Value::Int(1)));
        assert_eq!(joined.field(None, "b"), Some(&Value::Int(20)));
        assert_eq!(joined.field(Some("nope"), "id"), None);
        let Value::Map(all) = joined.to_map() else { panic!("not a map") };
        assert_eq!(all.get("id"), Some(&Value::Int(1)));
        assert_eq!(all.len(), 3);
        let Some(Value::Map(t)) = joined.source_map("t") else { panic!("no part") };
        assert_eq!(t.get("id"), Some(&Value::Int(2)));
        assert_eq!(joined.meta(None, "topic"), Some("x"));
        assert_eq!(joined.meta(Some("t"), "topic"), Some("y"));
        assert_eq!(joined.meta(None, "k"), Some("v"));
        assert_eq!(joined.timestamp(), 7);
    }
}
