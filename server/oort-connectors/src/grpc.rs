//! The `grpc` source and sink. A `TYPE="grpc"` stream receives the events that
//! clients send with `EventService.Publish` (the server publishes them on a bus
//! keyed by stream name). The `grpc` sink delivers to `RuleService.TailRule`
//! readers: the runtime copies every result of a rule to its tail channel, so
//! the sink itself has nothing more to do.

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceFactory};

use crate::bus::{BusSource, TopicBus};

/// Builds `grpc` sources.
pub struct GrpcSourceFactory(pub Arc<TopicBus>);

impl SourceFactory for GrpcSourceFactory {
    fn description(&self) -> &'static str {
        "Takes the events clients send with EventService.Publish (and `oort publish`); DATASOURCE is the name they publish to."
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
        Ok(BusSource::subscribe(&self.0, &config.stream, config))
    }

    /// With a journaled bus, what is published for a rule with qos >= 1 is
    /// journaled and replayed after a restart.
    fn positions(
        &self,
        config: &SourceConfig,
    ) -> Result<Option<Arc<dyn oort_engine::SourcePositions>>, ConnectorError> {
        self.0.positions(&config.stream, config)
    }
}

/// Builds `grpc` sinks.
pub struct GrpcSinkFactory;

struct GrpcSink;

impl SinkFactory for GrpcSinkFactory {
    fn description(&self) -> &'static str {
        "Hands results to the clients of RuleService.TailRule (and `oort rule tail`)."
    }

    /// None: it takes the rows as they are.
    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(Vec::new())
    }

    fn build(&self, _config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(GrpcSink))
    }
}

#[async_trait]
impl Sink for GrpcSink {
    async fn collect(&mut self, _rows: &[Map]) -> Result<(), ConnectorError> {
        Ok(())
    }
}
