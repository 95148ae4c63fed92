//! The `memory` source and sink: topics inside the server, so that one rule's
//! output can be another stream's input (`TYPE="memory"`, `DATASOURCE="topic"`).
//!
//! A table over a topic (`CREATE TABLE t () WITH (TYPE="memory",
//! DATASOURCE="topic", KIND="lookup", KEY="id")`) keeps the rows by KEY, and
//! a `memory` action with `rowkindField` updates it as eKuiper's updatable
//! memory sink: a row whose kind is `delete` removes the row of its key.

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, Map, Payload, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceEvent, SourceFactory,
    Value,
};

use crate::bus::{BusSource, Publisher, TopicBus};
use crate::rowkind::RowKind;

/// Builds `memory` sources.
pub struct MemorySourceFactory(pub Arc<TopicBus>);

impl SourceFactory for MemorySourceFactory {
    fn description(&self) -> &'static str {
        "Reads a topic of the server's in-memory bus, which memory sinks of other rules write to; a TABLE over it is kept up to date by key. DATASOURCE is the topic, with MQTT wildcards."
    }

    /// Its events are rows already: the payload formats do not apply.
    fn formats(&self) -> &'static [&'static str] {
        &["json", "binary"]
    }

    /// None besides every stream's own.
    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(Vec::new())
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        if config.datasource.is_empty() {
            return Err(ConnectorError::Config("a memory stream needs DATASOURCE, the topic to read".into()));
        }
        Ok(BusSource::subscribe(&self.0, &config.datasource, config))
    }
}

/// Builds `memory` sinks.
pub struct MemorySinkFactory(pub Arc<TopicBus>);

struct MemorySink {
    publisher: Publisher,
    /// The field whose value tells a table reading the topic what to do
    /// with the row (eKuiper's updatable memory sink): `delete` removes the
    /// row of its KEY, anything else inserts or replaces it.
    rowkind_field: Option<String>,
    /// With `rowkind_field`, the field a row to update or delete must have.
    key_field: Option<String>,
}

impl SinkFactory for MemorySinkFactory {
    fn description(&self) -> &'static str {
        "Writes results to a topic of the server's in-memory bus, for other rules' memory streams and tables."
    }

    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(vec![
            oort_engine::ConnectorOption {
                key: "topic",
                kind: oort_engine::OptionKind::Text,
                default: "",
                description: "Required. The topic the rows are published to, read by memory streams.",
            },
            oort_engine::ConnectorOption {
                key: "rowkindField",
                kind: oort_engine::OptionKind::Text,
                default: "",
                description: "A field saying insert, update, upsert or delete: a table with KEY reading the topic \
                              removes the row of its key on delete, and keeps the others by key.",
            },
            oort_engine::ConnectorOption {
                key: "keyField",
                kind: oort_engine::OptionKind::Text,
                default: "",
                description: "The key field of the rows (eKuiper's): a row to update or delete must have it.",
            },
        ])
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let topic = config
            .props
            .get("topic")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::Config("a memory action needs the property `topic`".into()))?;
        let text = |key: &str| config.props.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        Ok(Box::new(MemorySink {
            publisher: self.0.publisher(topic),
            rowkind_field: text("rowkindField").map(str::to_owned),
            key_field: text("keyField").map(str::to_owned),
        }))
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        for row in rows {
            let event = match &self.rowkind_field {
                None => SourceEvent::map(row.clone()),
                Some(field) => {
                    let kind = RowKind::of(row, field, "memory")?.unwrap_or(RowKind::Insert);
                    if let Some(key) = &self.key_field
                        && kind != RowKind::Insert
                        && row.get(key.as_str()).is_none_or(|v| matches!(v, Value::Null))
                    {
                        let kind = kind.as_str();
                        return Err(ConnectorError::External(format!("memory: a row to {kind} has no {key:?}")));
                    }
                    let kind = kind.as_str().to_owned();
                    let meta = std::collections::BTreeMap::from([(oort_engine::ROWKIND_META.to_owned(), kind)]);
                    SourceEvent::new(Payload::Map(row.clone()), Arc::new(meta))
                }
            };
            self.publisher.send(event).await;
        }
        Ok(())
    }
}
