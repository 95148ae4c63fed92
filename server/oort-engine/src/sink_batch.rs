//! eKuiper's sink batching: with `batchSize`, a sink gets the rows of a
//! rule's results `batchSize` at a time, as one result; with
//! `lingerInterval`, what it holds goes at the latest that long after its
//! first row came; with both, whichever comes first. A checkpoint and the
//! rule's stop send what is held.

use std::time::Duration;

use serde_json::{Map as JsonMap, Value as JsonValue};

use crate::connector::{ConnectorError, ConnectorOption, OptionKind};
use crate::sink_cache::config::{count, millis};
use crate::value::Map;

/// The largest `batchSize`: the rows a sink holds are in memory.
pub const MAX_BATCH_SIZE: usize = 100_000;

/// The longest `lingerInterval`: an hour.
pub const MAX_LINGER: Duration = Duration::from_secs(3600);

/// The batching properties every sink takes.
pub const BATCH_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "batchSize",
        kind: OptionKind::Count,
        default: "0",
        description: "Send the rows of the results this many at a time, as one result (0: each result as it \
                      comes); at most 100,000.",
    },
    ConnectorOption {
        key: "lingerInterval",
        kind: OptionKind::Millis,
        default: "0",
        description: "Send the rows held at the latest this long (ms) after the first of them came (0: no limit \
                      besides batchSize).",
    },
];

/// A sink's batching, from its action's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Rows a batch; 0: no size, only the linger.
    pub size: usize,
    /// How long the first row held may wait; `None`: until the batch is full.
    pub linger: Option<Duration>,
}

impl BatchConfig {
    /// The batching an action asks for; `None` when it asks for none.
    pub fn from_props(props: &JsonMap<String, JsonValue>) -> Result<Option<Self>, ConnectorError> {
        let get = |key: &str| props.get(key).filter(|v| !v.is_null());
        let size = get("batchSize").map_or(Ok(0), |v| count("batchSize", v))?;
        if size > MAX_BATCH_SIZE {
            return Err(ConnectorError::Config(format!(
                "the sink property `batchSize` is at most {MAX_BATCH_SIZE}, got {size}"
            )));
        }
        let linger = get("lingerInterval").map(|v| millis("lingerInterval", v)).transpose()?.filter(|d| !d.is_zero());
        if linger.is_some_and(|d| d > MAX_LINGER) {
            return Err(ConnectorError::Config("the sink property `lingerInterval` is at most an hour".into()));
        }
        Ok((size > 0 || linger.is_some()).then_some(Self { size, linger }))
    }
}

/// The rows a sink holds for its next batch.
#[derive(Debug)]
pub(crate) struct Batch {
    config: BatchConfig,
    rows: Vec<Map>,
    /// The number of the result the first row held came in.
    first: u64,
    /// When what is held goes, with a linger.
    deadline: Option<tokio::time::Instant>,
}

impl Batch {
    pub(crate) fn new(config: BatchConfig) -> Self {
        Self { config, rows: Vec::new(), first: 0, deadline: None }
    }

    /// Takes result `sequence`; returns the batches it fills, each with the
    /// number of the result its first row came in.
    pub(crate) fn push(&mut self, sequence: u64, rows: &[Map]) -> Vec<(u64, Vec<Map>)> {
        let mut full = Vec::new();
        for row in rows {
            if self.rows.is_empty() {
                self.first = sequence;
                self.deadline = self.config.linger.map(|linger| tokio::time::Instant::now() + linger);
            }
            self.rows.push(row.clone());
            if self.config.size > 0 && self.rows.len() >= self.config.size {
                full.extend(self.take());
            }
        }
        full
    }

    /// What is held, as one batch; `None` when nothing is.
    pub(crate) fn take(&mut self) -> Option<(u64, Vec<Map>)> {
        self.deadline = None;
        (!self.rows.is_empty()).then(|| (self.first, std::mem::take(&mut self.rows)))
    }

    /// When what is held must go; `None` without a linger or rows.
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::value::Value;

    fn rows(ns: &[i64]) -> Vec<Map> {
        ns.iter().map(|n| Map::from([(Arc::from("n"), Value::Int(*n))])).collect()
    }

    fn config(props: JsonValue) -> Result<Option<BatchConfig>, ConnectorError> {
        let JsonValue::Object(props) = props else { panic!() };
        BatchConfig::from_props(&props)
    }

    #[test]
    fn batches_take_rows_across_results_and_split_them() {
        let mut batch = Batch::new(BatchConfig { size: 3, linger: None });
        assert!(batch.push(7, &rows(&[1, 2])).is_empty());
        let full = batch.push(8, &rows(&[3, 4, 5, 6, 7]));
        assert_eq!(full, [(7, rows(&[1, 2, 3])), (8, rows(&[4, 5, 6]))]);
        assert_eq!(batch.take(), Some((8, rows(&[7]))));
        assert_eq!(batch.take(), None);
    }

    #[tokio::test]
    async fn a_linger_sets_a_deadline_from_the_first_row() {
        let mut batch = Batch::new(BatchConfig { size: 0, linger: Some(Duration::from_millis(50)) });
        assert_eq!(batch.deadline(), None);
        assert!(batch.push(1, &rows(&[1])).is_empty());
        let deadline = batch.deadline().expect("a deadline");
        batch.push(2, &rows(&[2]));
        assert_eq!(batch.deadline(), Some(deadline), "the first row's");
        assert_eq!(batch.take(), Some((1, rows(&[1, 2]))));
        assert_eq!(batch.deadline(), None);
    }

    #[test]
    fn the_properties_are_checked() {
        assert_eq!(config(json!({})).unwrap(), None);
        assert_eq!(config(json!({"batchSize": 0, "lingerInterval": 0})).unwrap(), None);
        assert_eq!(config(json!({"batchSize": 10})).unwrap(), Some(BatchConfig { size: 10, linger: None }));
        let both = config(json!({"batchSize": 10, "lingerInterval": "1s"})).unwrap();
        assert_eq!(both, Some(BatchConfig { size: 10, linger: Some(Duration::from_secs(1)) }));
        assert!(config(json!({"batchSize": -1})).is_err());
        assert!(config(json!({"batchSize": 100_001})).is_err());
        assert!(config(json!({"lingerInterval": "soon"})).is_err());
        assert!(config(json!({"lingerInterval": 3_600_001})).is_err());
    }
}
