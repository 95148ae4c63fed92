//! The `log` sink: each payload (by default, a result as one JSON array) as
//! a line of the server log, made by the common sink properties
//! (`sendSingle`, `dataTemplate`, `fields`...).

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory};

use crate::encode::SinkEncoder;

/// Builds `log` sinks.
pub struct LogSinkFactory;

struct LogSink {
    rule_id: String,
    encoder: SinkEncoder,
}

impl SinkFactory for LogSinkFactory {
    fn description(&self) -> &'static str {
        "Writes results to the server's log, at info level."
    }

    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(crate::encode::COMMON_OPTIONS.to_vec())
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(LogSink { rule_id: config.rule_id.clone(), encoder: SinkEncoder::of(config)? }))
    }
}

#[async_trait]
impl Sink for LogSink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        for payload in self.encoder.encode(rows)? {
            tracing::info!(rule = %self.rule_id, result = %String::from_utf8_lossy(&payload), "sink log");
        }
        Ok(())
    }
}
