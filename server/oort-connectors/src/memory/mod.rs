//! The `memory` source and sink: topics inside the server, so that one rule's
//! output can be another stream's input (`TYPE="memory"`, `DATASOURCE="topic"`).

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, Map, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceEvent, SourceFactory,
};

use crate::bus::{BusSource, Publisher, TopicBus};

/// Builds `memory` sources.
pub struct MemorySourceFactory(pub Arc<TopicBus>);

impl SourceFactory for MemorySourceFactory {
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

struct MemorySink(Publisher);

impl SinkFactory for MemorySinkFactory {
    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(vec![oort_engine::ConnectorOption {
            key: "topic",
            kind: oort_engine::OptionKind::Text,
            default: "",
            description: "Required. The topic the rows are published to, read by memory streams.",
        }])
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let topic = config
            .props
            .get("topic")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::Config("a memory action needs the property `topic`".into()))?;
        Ok(Box::new(MemorySink(self.0.publisher(topic))))
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        for row in rows {
            self.0.send(SourceEvent::map(row.clone())).await;
        }
        Ok(())
    }
}
