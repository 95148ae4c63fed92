//! A portable plugin's source as an engine [`Source`]: one `OpenSource`
//! stream per rule. The factory opens it when the rule starts, so that a
//! configuration the plugin refuses (INVALID_ARGUMENT, NOT_FOUND) fails the
//! rule's creation; while the rule runs, a stream broken by a restart or an
//! update is reopened on the current process by the source itself, and a
//! stream the plugin ends with an error status ends the source (the rule's
//! restart strategy applies).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::{ConnectorError, Payload, Source, SourceConfig, SourceEvent, SourceFactory, SourceOutput};
use oort_proto::plugin::v1::{OpenSourceRequest, OpenSourceResponse};
use oort_runtimes::IoRuntime;
use tokio_util::sync::CancellationToken;

use super::supervisor::{Lease, Supervisor, Target};

/// Builds instances of one portable source type.
pub struct PortableSourceFactory {
    name: String,
    target: Arc<Target>,
    io: Arc<IoRuntime>,
}

impl PortableSourceFactory {
    /// The source `name` behind `target`.
    pub fn new(name: &str, target: Arc<Target>, io: Arc<IoRuntime>) -> Self {
        Self { name: name.to_owned(), target, io }
    }
}

/// An open stream and the version it was opened on.
struct Opened {
    supervisor: Arc<Supervisor>,
    stream: tonic::Streaming<OpenSourceResponse>,
}

/// Why opening failed: the plugin refused (final) or could not be reached (retry).
enum OpenError {
    Refused(String),
    Unavailable(String),
}

/// Whether a status is the plugin's own answer rather than a broken connection.
pub(crate) fn is_refusal(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition
            | tonic::Code::PermissionDenied
            | tonic::Code::Unimplemented
            | tonic::Code::OutOfRange
    )
}

async fn open(target: &Target, request: OpenSourceRequest, wait_backoff: bool) -> Result<Opened, OpenError> {
    let supervisor = target.get();
    let running = supervisor.acquire(wait_backoff).await.map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let mut client = running.process.client.clone();
    let timeout = supervisor.config().call_timeout;
    let opening = async {
        let mut stream = client.open_source(request).await?.into_inner();
        // The plugin acknowledges the open source with a response without events.
        match stream.message().await? {
            Some(ack) if ack.events.is_empty() => Ok(stream),
            Some(_) => Err(tonic::Status::internal(
                "the plugin sent events before it acknowledged the open source (a response without events)",
            )),
            None => Err(tonic::Status::unavailable("the plugin ended the source stream at once")),
        }
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok(stream)) => Ok(Opened { supervisor, stream }),
        Ok(Err(status)) if is_refusal(status.code()) => Err(OpenError::Refused(status.message().to_owned())),
        Ok(Err(status)) => Err(OpenError::Unavailable(status.message().to_owned())),
        Err(_) => Err(OpenError::Unavailable(format!(
            "the plugin did not acknowledge OpenSource within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl SourceFactory for PortableSourceFactory {
    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let request = OpenSourceRequest {
            source: self.name.clone(),
            datasource: config.datasource.clone(),
            config: Some(crate::convert::options_to_struct(&config.options)),
            rule_id: config.rule_id.clone(),
        };
        let lease = Lease::new(self.target.get().usage());
        let target = Arc::clone(&self.target);
        let first = request.clone();
        let opened = self.io.block(async move { open(&target, first, true).await });
        let opened = match opened {
            Some(Ok(opened)) => Some(opened),
            Some(Err(OpenError::Refused(message))) => return Err(ConnectorError::Config(message)),
            // Not reachable now: the source retries when it runs.
            Some(Err(OpenError::Unavailable(message))) => {
                tracing::warn!(source = %self.name, rule = %config.rule_id, error = %message, "portable source not open yet");
                None
            }
            None => None,
        };
        Ok(Box::new(PortableSource { target: Arc::clone(&self.target), request, opened, _lease: lease }))
    }
}

struct PortableSource {
    target: Arc<Target>,
    request: OpenSourceRequest,
    opened: Option<Opened>,
    _lease: Lease,
}

/// Pause between two attempts to reopen a broken stream.
const REOPEN_DELAY: Duration = Duration::from_millis(100);

#[async_trait]
impl Source for PortableSource {
    async fn run(mut self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let mut opened = self.opened.take();
        loop {
            let mut current = match opened.take() {
                Some(o) => o,
                None => {
                    let attempt = tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        attempt = open(&self.target, self.request.clone(), true) => attempt,
                    };
                    match attempt {
                        Ok(o) => o,
                        Err(OpenError::Refused(message)) => return Err(ConnectorError::Config(message)),
                        Err(OpenError::Unavailable(message)) => {
                            tracing::debug!(source = %self.request.source, error = %message, "portable source reopen failed");
                            tokio::select! {
                                () = cancel.cancelled() => return Ok(()),
                                () = tokio::time::sleep(REOPEN_DELAY) => {}
                            }
                            continue;
                        }
                    }
                }
            };
            let ended = loop {
                let message = tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    message = current.stream.message() => message,
                };
                match message {
                    Ok(Some(response)) => {
                        for event in response.events {
                            let timestamp = event
                                .timestamp
                                .map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000));
                            let payload = Payload::Map(crate::convert::map_from_proto(&event.fields));
                            let meta = Arc::new(event.meta.into_iter().collect());
                            let event = SourceEvent { timestamp, ..SourceEvent::new(payload, meta) };
                            tokio::select! {
                                () = cancel.cancelled() => return Ok(()),
                                sent = out.send(event) => if sent.is_err() { return Ok(()) },
                            }
                        }
                    }
                    Ok(None) => break None,
                    Err(status) => break Some(status),
                }
            };
            let swapped = !Arc::ptr_eq(&current.supervisor, &self.target.get());
            match ended {
                Some(status) if is_refusal(status.code()) && !swapped => {
                    return Err(ConnectorError::External(format!("the plugin source failed: {}", status.message())));
                }
                None if !swapped && current.supervisor.live().is_some() => {
                    // The plugin ended the stream although its process runs.
                    tokio::time::sleep(REOPEN_DELAY).await;
                    if current.supervisor.live().is_some() && Arc::ptr_eq(&current.supervisor, &self.target.get()) {
                        return Err(ConnectorError::External("the plugin source ended its stream".into()));
                    }
                }
                _ => {}
            }
            tracing::info!(source = %self.request.source, rule = %self.request.rule_id, "portable source stream broken; reopening");
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(REOPEN_DELAY) => {}
            }
        }
    }
}
