//! The `websocket` source: messages from a server Oort connects to, or from
//! the clients of an endpoint Oort serves. Module documentation: [`super`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use oort_engine::{
    ConnectorError, ConnectorOption, OptionKind, Payload, Source, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, SourcePositions,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::client::Target;
use super::{WebsocketContext, check_path};
use crate::bus::BusSource;
use crate::connections::{Connections, LinkState};

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

const OPTIONS: &[ConnectorOption] = &[ConnectorOption {
    key: "CONF_KEY",
    kind: OptionKind::Text,
    default: "",
    description: "The named connection (type websocket) of the server to connect to; without it, Oort serves the endpoint on its HTTP push address.",
}];

/// Builds `websocket` sources.
pub struct WebsocketSourceFactory(pub WebsocketContext);

impl WebsocketSourceFactory {
    /// The server to connect to, if the stream names one (else Oort serves).
    fn target(&self, config: &SourceConfig) -> Result<Option<Target>, ConnectorError> {
        check_path(&config.datasource, "DATASOURCE")?;
        let Some(name) = config.options.get("CONF_KEY").map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let (server, origin) = self
            .0
            .connection(name)
            .map_err(|e| ConnectorError::Option { key: "CONF_KEY".into(), message: format!("websocket: {e}") })?;
        Target::resolve(&self.0, server, origin).map(Some)
    }
}

impl SourceFactory for WebsocketSourceFactory {
    fn description(&self) -> &'static str {
        "Reads messages from a WebSocket: as a client of the server of CONF_KEY, or as a server on the HTTP push address; DATASOURCE is the path."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.target(config).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        match self.target(config)? {
            None => Ok(BusSource::subscribe(self.0.hub.inbound(), &config.datasource, config)),
            Some(target) => Ok(Box::new(ClientSource {
                target,
                path: config.datasource.clone(),
                registry: Arc::clone(&self.0.connections),
                rule_id: config.rule_id.clone(),
                operator: format!("source_{}_0", config.stream),
            })),
        }
    }

    /// Served endpoints are journaled for rules with qos >= 1, as httppush is.
    fn positions(&self, config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        match self.target(config)? {
            None => self.0.hub.inbound().positions(&config.datasource, config),
            Some(_) => Ok(None),
        }
    }
}

struct ClientSource {
    target: Target,
    path: String,
    registry: Arc<Connections>,
    rule_id: String,
    operator: String,
}

#[async_trait]
impl Source for ClientSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let link = self.target.origin.link(&self.registry, &self.rule_id, &self.operator)?;
        let meta = Arc::new(BTreeMap::from([("url".to_owned(), self.target.url(&self.path))]));
        let mut backoff = Duration::from_secs(1);
        loop {
            let connected = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                connected = self.target.connect(&self.path, &link) => connected,
            };
            let lost = match connected {
                Err(fatal @ ConnectorError::Config(_)) => return Err(fatal),
                Err(error) => error.to_string(),
                Ok(mut socket) => {
                    backoff = Duration::from_secs(1);
                    loop {
                        let received = tokio::select! {
                            () = cancel.cancelled() => {
                                let _ = socket.close(None).await;
                                return Ok(());
                            }
                            received = socket.next() => received,
                        };
                        let payload = match received {
                            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                            Some(Ok(Message::Close(frame))) => {
                                break format!("the server closed the connection: {frame:?}");
                            }
                            Some(Ok(_)) => continue,
                            Some(Err(e)) => break e.to_string(),
                            None => break "the connection ended".to_owned(),
                        };
                        let event = SourceEvent::new(Payload::Bytes(payload), Arc::clone(&meta));
                        if out.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            };
            link.set(LinkState::Disconnected(lost.clone()));
            out.record_error(format!(
                "websocket {}: {lost}; retrying in {} s",
                self.target.url(&self.path),
                backoff.as_secs()
            ));
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
