//! A plugin sink as an engine [`Sink`].

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory};
use oort_plugin::wire;
use prost::Message;

use super::ffi::RawHandle;
use super::slot::{Current, Slot};
use crate::convert;

/// Builds instances of one plugin sink type.
pub struct NativeSinkFactory {
    name: String,
    slot: Arc<Slot>,
}

impl NativeSinkFactory {
    /// The sink `name` behind `slot`.
    pub fn new(name: &str, slot: Arc<Slot>) -> Self {
        Self { name: name.to_owned(), slot }
    }
}

impl SinkFactory for NativeSinkFactory {
    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let request = wire::SinkOpen {
            sink: self.name.clone(),
            config: Some(convert::json_to_struct(&config.props)),
            rule_id: config.rule_id.clone(),
        };
        let request = request.encode_to_vec();
        // A configuration the plugin refuses fails the rule's creation, not its first result.
        let current = self.slot.current();
        current.library.sink_configure(current.index, &request).map_err(ConnectorError::Config)?;
        Ok(Box::new(NativeSink { slot: Arc::clone(&self.slot), request, open: None, batch: 0 }))
    }
}

struct NativeSink {
    slot: Arc<Slot>,
    request: Vec<u8>,
    open: Option<(Current, RawHandle)>,
    batch: u64,
}

/// Runs a blocking plugin call without stalling other tasks where the runtime allows.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl NativeSink {
    fn connect(&mut self) -> Result<(), ConnectorError> {
        let current = self.slot.current();
        let handle =
            blocking(|| current.library.sink_open(current.index, &self.request)).map_err(ConnectorError::Config)?;
        self.open = Some((current, handle));
        Ok(())
    }

    fn disconnect(&mut self) -> Result<(), ConnectorError> {
        match self.open.take() {
            Some((current, handle)) => {
                blocking(|| current.library.sink_close(handle)).map_err(ConnectorError::External)
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Sink for NativeSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.connect()
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let generation = self.slot.read().generation;
        if self.open.as_ref().is_some_and(|(current, _)| current.generation != generation)
            && let Err(error) = self.disconnect()
        {
            tracing::warn!(%error, "closing the old version of a plugin sink failed");
        }
        if self.open.is_none() {
            self.connect()?;
        }
        self.batch += 1;
        let batch =
            wire::SinkBatch { batch_id: self.batch, events: rows.iter().map(convert::event_to_proto).collect() }
                .encode_to_vec();
        let Some((current, handle)) = self.open.as_mut() else {
            return Err(ConnectorError::External("sink not open".into()));
        };
        blocking(|| current.library.sink_collect(handle, &batch)).map_err(ConnectorError::External)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.disconnect()
    }
}
