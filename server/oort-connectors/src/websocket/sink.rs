//! The `websocket` sink: payloads sent to a server Oort connects to, or to
//! the clients of an endpoint Oort serves. Module documentation: [`super`].

use std::sync::Arc;

use async_trait::async_trait;
use futures::SinkExt;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory};
use tokio_tungstenite::tungstenite::Message;

use super::client::{Socket, Target};
use super::hub::HubSink;
use super::{CONNECTION_PROPS, WebsocketConfig, WebsocketContext, check_path};
use crate::connections::{ClientLink, LinkState, Origin};
use crate::encode::{Format, SinkEncoder};

const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "",
        description: "The named connection (type websocket) of the server to connect to.",
    },
    ConnectorOption {
        key: "addr",
        kind: OptionKind::Text,
        default: "",
        description: "host:port of the action's own server; without it and connectionSelector, Oort serves the path.",
    },
    ConnectorOption {
        key: "scheme",
        kind: OptionKind::OneOf(&["ws", "wss"]),
        default: "ws",
        description: "ws or wss.",
    },
    ConnectorOption { key: "path", kind: OptionKind::Text, default: "/", description: "The URL path." },
];

/// Builds `websocket` sinks.
pub struct WebsocketSinkFactory(pub WebsocketContext);

impl SinkFactory for WebsocketSinkFactory {
    fn description(&self) -> &'static str {
        "Sends results over a WebSocket: as a client of a server, or to every client of a path served on the HTTP push address."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(crate::connections::with_connection_props(
            [OPTIONS, crate::encode::COMMON_OPTIONS].concat(),
            CONNECTION_PROPS,
        ))
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let props = &config.props;
        let text = |key: &str| props.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|v| !v.is_empty());
        let path = text("path").unwrap_or("/").to_owned();
        check_path(&path, "path")?;
        let encoder = SinkEncoder::of(config)?;
        let own = props.keys().find(|k| CONNECTION_PROPS.contains(&k.as_str()));
        let server = match (text("connectionSelector"), own) {
            (Some(name), Some(key)) => {
                return Err(ConnectorError::Config(format!(
                    "websocket action: {key:?} belongs to the connection {name:?}: set it there, or leave out connectionSelector"
                )));
            }
            (Some(name), None) => Some(self.0.connection(name)?),
            (None, Some(_)) => {
                let own = crate::encode::props_subset::<WebsocketConfig>(props, CONNECTION_PROPS)?;
                Some((own, Origin { connection: String::new(), trusted: false }))
            }
            (None, None) => None,
        };
        let mode = match server {
            None => Mode::Serve(self.0.hub.open_sink(&path)),
            Some((server, origin)) => {
                let target = Target::resolve(&self.0, server, origin)?;
                let operator = format!("sink_websocket_{}", config.index);
                let link = target.origin.link(&self.0.connections, &config.rule_id, &operator)?;
                Mode::Connect { target, link, socket: None }
            }
        };
        Ok(Box::new(WebsocketSink { mode, path, encoder }))
    }
}

enum Mode {
    /// To the clients of the endpoint Oort serves.
    Serve(HubSink),
    /// To a server, over one connection made again after a failure.
    Connect { target: Target, link: Arc<ClientLink>, socket: Option<Box<Socket>> },
}

struct WebsocketSink {
    mode: Mode,
    path: String,
    encoder: SinkEncoder,
}

/// A payload as a message: binary for a binary format, else text when it is UTF-8.
fn message(payload: Vec<u8>, binary: bool) -> Message {
    if binary {
        return Message::binary(payload);
    }
    match String::from_utf8(payload) {
        Ok(text) => Message::text(text),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

#[async_trait]
impl Sink for WebsocketSink {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let payloads = self.encoder.encode(rows)?;
        let binary = matches!(self.encoder.format(), Format::Binary | Format::Protobuf(_));
        match &mut self.mode {
            Mode::Serve(hub) => {
                for payload in payloads {
                    hub.send(payload, binary);
                }
                Ok(())
            }
            Mode::Connect { target, link, socket } => {
                let connected = match socket {
                    Some(socket) => socket,
                    None => socket.insert(Box::new(target.connect(&self.path, link).await?)),
                };
                for payload in payloads {
                    if let Err(e) = connected.feed(message(payload, binary)).await {
                        return Err(lost(socket, link, target, &self.path, e));
                    }
                }
                match connected.flush().await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(lost(socket, link, target, &self.path, e)),
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Mode::Connect { socket: Some(socket), .. } = &mut self.mode {
            let _ = Socket::close(socket.as_mut(), None).await;
        }
        Ok(())
    }
}

/// Drops a connection that failed; the engine retries the result on a new one.
fn lost(
    socket: &mut Option<Box<Socket>>,
    link: &ClientLink,
    target: &Target,
    path: &str,
    error: tokio_tungstenite::tungstenite::Error,
) -> ConnectorError {
    *socket = None;
    link.set(LinkState::Disconnected(error.to_string()));
    ConnectorError::External(format!("websocket {}: {error}", target.url(path)))
}
