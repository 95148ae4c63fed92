//! A portable plugin's sink as an engine [`Sink`]: one `OpenSink` stream per
//! rule. Each `collect` sends one `SinkBatch` and waits (at most
//! `call_timeout`) for its acknowledgement. A batch acknowledged with an error,
//! or lost with a broken stream, makes `collect` fail, and the engine sends the
//! same rows again (with backoff) on a reopened stream: what was not
//! acknowledged is re-sent, what was is not. The stream is reopened after a
//! restart and, between two batches, after an update.

use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory};
use oort_proto::plugin::v1::{OpenSinkRequest, OpenSinkResponse, SinkBatch, SinkOpen, open_sink_request};
use oort_runtimes::IoRuntime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::source::is_refusal;
use super::supervisor::{Lease, Supervisor, Target};

/// Builds instances of one portable sink type.
pub struct PortableSinkFactory {
    name: String,
    target: Arc<Target>,
    io: Arc<IoRuntime>,
}

impl PortableSinkFactory {
    /// The sink `name` behind `target`.
    pub fn new(name: &str, target: Arc<Target>, io: Arc<IoRuntime>) -> Self {
        Self { name: name.to_owned(), target, io }
    }
}

struct Opened {
    supervisor: Arc<Supervisor>,
    generation: u64,
    tx: mpsc::Sender<OpenSinkRequest>,
    rx: tonic::Streaming<OpenSinkResponse>,
}

async fn open(target: &Target, request: SinkOpen) -> Result<Opened, ConnectorError> {
    let supervisor = target.get();
    let running = supervisor.acquire(true).await.map_err(|e| ConnectorError::External(e.to_string()))?;
    let timeout = supervisor.config().call_timeout;
    let (tx, rx) = mpsc::channel(4);
    let first = OpenSinkRequest { message: Some(open_sink_request::Message::Open(request)) };
    tx.send(first).await.map_err(|_| ConnectorError::External("the sink stream closed".into()))?;
    let mut client = running.process.client.clone();
    let opening = async {
        let mut acks = client.open_sink(ReceiverStream::new(rx)).await?.into_inner();
        // The plugin acknowledges the open sink as batch 0.
        match acks.message().await? {
            Some(ack) if ack.batch_id == 0 && ack.error.is_empty() => Ok(acks),
            Some(ack) if ack.batch_id == 0 => Err(tonic::Status::unavailable(ack.error)),
            Some(ack) => Err(tonic::Status::internal(format!(
                "the plugin acknowledged batch {} before the open sink (batch 0)",
                ack.batch_id
            ))),
            None => Err(tonic::Status::unavailable("the plugin ended the sink stream at once")),
        }
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok(acks)) => Ok(Opened { supervisor, generation: running.generation, tx, rx: acks }),
        Ok(Err(status)) if is_refusal(status.code()) => Err(ConnectorError::Config(status.message().to_owned())),
        Ok(Err(status)) => Err(ConnectorError::External(format!("OpenSink failed: {}", status.message()))),
        Err(_) => Err(ConnectorError::External(format!(
            "the plugin did not acknowledge OpenSink within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl SinkFactory for PortableSinkFactory {
    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let request = SinkOpen {
            sink: self.name.clone(),
            config: Some(crate::convert::json_to_struct(&config.props)),
            rule_id: config.rule_id.clone(),
        };
        let lease = Lease::new(self.target.get().usage());
        let (target, first) = (Arc::clone(&self.target), request.clone());
        // Opened now so that a configuration the plugin refuses fails the rule's creation.
        let opened = match self.io.block(async move { open(&target, first).await }) {
            Some(Ok(opened)) => Some(opened),
            Some(Err(ConnectorError::Config(message))) => return Err(ConnectorError::Config(message)),
            Some(Err(error)) => {
                tracing::warn!(sink = %self.name, rule = %config.rule_id, %error, "portable sink not open yet");
                None
            }
            None => None,
        };
        Ok(Box::new(PortableSink { target: Arc::clone(&self.target), request, opened, batch: 0, _lease: lease }))
    }
}

struct PortableSink {
    target: Arc<Target>,
    request: SinkOpen,
    opened: Option<Opened>,
    batch: u64,
    _lease: Lease,
}

impl PortableSink {
    async fn send(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let current = self.target.get();
        let stale = self.opened.as_ref().is_none_or(|o| {
            !Arc::ptr_eq(&o.supervisor, &current) || current.live().is_none_or(|r| r.generation != o.generation)
        });
        if stale {
            if let Some(old) = self.opened.take() {
                drop(old.tx);
            }
            self.opened = Some(open(&self.target, self.request.clone()).await?);
        }
        let Some(opened) = self.opened.as_mut() else { return Err(ConnectorError::External("sink not open".into())) };
        self.batch += 1;
        let batch_id = self.batch;
        let events = rows.iter().map(crate::convert::event_to_proto).collect();
        let request =
            OpenSinkRequest { message: Some(open_sink_request::Message::Batch(SinkBatch { batch_id, events })) };
        let timeout = opened.supervisor.config().call_timeout;
        let acked = tokio::time::timeout(timeout, async {
            opened.tx.send(request).await.map_err(|_| "the plugin closed the sink stream".to_owned())?;
            match opened.rx.message().await {
                Ok(Some(ack)) if ack.batch_id == batch_id => Ok(ack),
                Ok(Some(ack)) => Err(format!("the plugin acknowledged batch {} instead of {batch_id}", ack.batch_id)),
                Ok(None) => Err("the plugin closed the sink stream".to_owned()),
                Err(status) => Err(format!("the sink stream failed: {}", status.message())),
            }
        })
        .await;
        match acked {
            Ok(Ok(ack)) if ack.error.is_empty() => Ok(()),
            Ok(Ok(ack)) => {
                Err(ConnectorError::External(format!("the plugin sink did not write the batch: {}", ack.error)))
            }
            Ok(Err(message)) => {
                self.opened = None;
                Err(ConnectorError::External(message))
            }
            Err(_) => {
                let message = format!(
                    "the sink did not acknowledge a batch within {} ms; the plugin process was restarted",
                    timeout.as_millis()
                );
                if let Some(opened) = self.opened.take()
                    && let Some(running) = opened.supervisor.live().filter(|r| r.generation == opened.generation)
                {
                    opened.supervisor.fail(&running, message.clone());
                }
                Err(ConnectorError::External(message))
            }
        }
    }
}

#[async_trait]
impl Sink for PortableSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        if self.opened.is_none() {
            self.opened = Some(open(&self.target, self.request.clone()).await?);
        }
        Ok(())
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        self.send(rows).await
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(mut opened) = self.opened.take() {
            drop(opened.tx);
            // The plugin closes the instance when the stream ends; wait for it a little.
            let grace = opened.supervisor.config().shutdown_grace;
            let _ = tokio::time::timeout(grace, async { while let Ok(Some(_)) = opened.rx.message().await {} }).await;
        }
        Ok(())
    }
}
