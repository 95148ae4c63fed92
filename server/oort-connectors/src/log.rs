//! The `log` sink: each result as one JSON line in the server log.

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory};

/// Builds `log` sinks.
pub struct LogSinkFactory;

struct LogSink {
    rule_id: String,
}

impl SinkFactory for LogSinkFactory {
    /// None: it takes the rows as they are.
    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(Vec::new())
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(LogSink { rule_id: config.rule_id.clone() }))
    }
}

#[async_trait]
impl Sink for LogSink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let json: Vec<serde_json::Value> = rows.iter().map(oort_engine::json::map_to_json).collect();
        tracing::info!(rule = %self.rule_id, result = %serde_json::Value::Array(json), "sink log");
        Ok(())
    }
}
