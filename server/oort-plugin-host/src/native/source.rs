//! A plugin source as an engine [`Source`]: the plugin's blocking `read` runs on
//! a thread of tokio's blocking pool, which forwards the events to the rule.

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Payload, Source, SourceConfig, SourceEvent, SourceFactory, SourceOutput};
use oort_plugin::wire;
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::ffi::RawHandle;
use super::slot::{Current, Slot};
use crate::convert;

/// How long one `read` may block: the longest a stop or a reload waits.
const READ_TIMEOUT_MS: u32 = 100;

/// Builds instances of one plugin source type.
pub struct NativeSourceFactory {
    name: String,
    slot: Arc<Slot>,
}

impl NativeSourceFactory {
    /// The source `name` behind `slot`.
    pub fn new(name: &str, slot: Arc<Slot>) -> Self {
        Self { name: name.to_owned(), slot }
    }
}

impl SourceFactory for NativeSourceFactory {
    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let request = wire::OpenSourceRequest {
            source: self.name.clone(),
            datasource: config.datasource.clone(),
            config: Some(convert::options_to_struct(&config.options)),
            rule_id: config.rule_id.clone(),
        };
        let request = request.encode_to_vec();
        // A configuration the plugin refuses fails the rule's creation, not its first read.
        let current = self.slot.current();
        current.library.source_configure(current.index, &request).map_err(ConnectorError::Config)?;
        Ok(Box::new(NativeSource { slot: Arc::clone(&self.slot), request }))
    }
}

struct NativeSource {
    slot: Arc<Slot>,
    request: Vec<u8>,
}

#[async_trait]
impl Source for NativeSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || self.pump(&runtime, &out, &cancel))
            .await
            .map_err(|e| ConnectorError::External(format!("plugin source task failed: {e}")))?
    }
}

impl NativeSource {
    fn open(&self) -> Result<(Current, RawHandle), ConnectorError> {
        let current = self.slot.current();
        let handle = current.library.source_open(current.index, &self.request).map_err(ConnectorError::Config)?;
        Ok((current, handle))
    }

    fn close(current: &Current, handle: RawHandle) {
        if let Err(error) = current.library.source_close(handle) {
            tracing::warn!(plugin = %current.library.name, %error, "closing a plugin source failed");
        }
    }

    /// Reads until the source ends, fails, or `cancel`; switches to a new
    /// library version between two reads.
    fn pump(
        &self,
        runtime: &tokio::runtime::Handle,
        out: &SourceOutput,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let (mut current, mut handle) = self.open()?;
        let result = loop {
            if cancel.is_cancelled() {
                break Ok(());
            }
            if self.slot.read().generation != current.generation {
                Self::close(&current, handle);
                (current, handle) = self.open()?;
                tracing::info!(plugin = %current.library.name, version = %current.library.version, "source switched to the new plugin version");
            }
            let bytes = match current.library.source_read(&mut handle, READ_TIMEOUT_MS) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break Ok(()),
                Err(message) => break Err(ConnectorError::External(message)),
            };
            let response = match wire::OpenSourceResponse::decode(bytes.as_slice()) {
                Ok(response) => response,
                Err(e) => break Err(ConnectorError::External(format!("the plugin source sent a bad batch: {e}"))),
            };
            let mut open = true;
            for event in response.events {
                let timestamp = event
                    .timestamp
                    .map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000));
                let payload = Payload::Map(convert::map_from_proto(&event.fields));
                let meta = Arc::new(event.meta.into_iter().collect());
                let source_event = SourceEvent { timestamp, ..SourceEvent::new(payload, meta) };
                let sent = runtime.block_on(async {
                    tokio::select! {
                        sent = out.send(source_event) => sent.is_ok(),
                        () = cancel.cancelled() => false,
                    }
                });
                if !sent {
                    open = false;
                    break;
                }
            }
            if !open {
                break Ok(());
            }
        };
        Self::close(&current, handle);
        result
    }
}
