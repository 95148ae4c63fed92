//! [`Row`]: one event as it flows through a rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::expr::JoinedRow;
use crate::value::{Map, Value};

/// One event: its columns, its time and the metadata of the source it came from.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Columns by name.
    pub fields: Map,
    /// Event time (with `isEventTime`) or processing time, in Unix milliseconds.
    pub timestamp: i64,
    /// Source metadata (for example the MQTT topic), read in SQL with `meta(key)`.
    pub meta: Arc<BTreeMap<String, String>>,
    /// For an event joined with tables: the stream's row and each table's row,
    /// by reference name. Expressions then read `fields` of the parts, not of
    /// this row, so that `demo.id` and `t.id` stay apart.
    pub joined: Option<Arc<JoinedRow>>,
    /// The results of the rule's analytic calls for this event, by call
    /// ([`crate::analytic`]); empty for a rule without them.
    pub analytic: Vec<Value>,
}

impl Row {
    /// A row with these columns, at `timestamp` (Unix milliseconds), with no metadata.
    pub fn new(fields: Map, timestamp: i64) -> Self {
        Self { fields, timestamp, meta: Arc::default(), joined: None, analytic: Vec::new() }
    }

    /// The value of a column, or `None` when the row has no such column.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }
}
