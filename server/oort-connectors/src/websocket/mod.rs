//! The `websocket` source and sink, as eKuiper's, in its two modes.
//!
//! # Oort as the client
//!
//! A named connection of type `websocket` says where the server is; a
//! stream's `DATASOURCE`, or an action's `path`, is the URL path:
//!
//! ```sql
//! CREATE STREAM ticks () WITH (TYPE="websocket", CONF_KEY="feed", DATASOURCE="/api/ticks")
//! ```
//!
//! ```json
//! {"websocket": {"connectionSelector": "feed", "path": "/api/results"}}
//! ```
//!
//! | property | meaning |
//! |---|---|
//! | `addr` | `host:port` of the server. |
//! | `scheme` | `ws` (default) or `wss`. |
//! | `rootCaPath`, `certificationPath`, `privateKeyPath`, `insecureSkipVerify` | TLS for `wss`, as for MQTT: the files inside the file roots. |
//!
//! An action may give `addr`, `scheme` and the TLS properties itself instead
//! of `connectionSelector`. A server named by a client passes the egress
//! policy at every connection attempt. Each text or binary message received
//! is one event, decoded per the stream's FORMAT; a lost connection is
//! retried with backoff (1 s doubling to 30 s), each failure counted as an
//! exception of the source. The sink sends each payload as one message (text
//! when it is UTF-8), and a failed send fails the result, which the engine
//! retries on a new connection.
//!
//! # Oort as the server
//!
//! Without `CONF_KEY` (a stream) or `addr` and `connectionSelector` (an
//! action), the endpoint is served on the server's HTTP push address
//! (`http_push_listen`, `127.0.0.1:10081` by default) at the path:
//! `ws://127.0.0.1:10081/api/data`. Messages that clients send there are
//! events of the streams with that `DATASOURCE` (journaled for rules at
//! `qos` ≥ 1, as `httppush` events are); results of actions with that `path`
//! are sent to every client connected at the time (binary messages for the
//! `binary` and `protobuf` formats, else text), as `TailRule` does (none
//! connected: they reach no one). A path that no running rule reads or
//! writes answers 404. A message is at most 4 MiB. A client that reads more
//! slowly than results come (1024 behind) is disconnected with close code
//! 1008, and the server logs it.

mod client;
mod hub;
mod sink;
mod source;

use std::sync::Arc;

use oort_engine::ConnectorError;
use oort_policy::{EgressPolicy, FileRoots};
use serde::Deserialize;

use crate::connections::{Connections, Origin};
use crate::tls::TlsProps;

pub use hub::{WebsocketHub, serve};
pub use sink::WebsocketSinkFactory;
pub use source::WebsocketSourceFactory;

/// The largest message received, in either mode.
pub const MAX_MESSAGE: usize = crate::httppush::MAX_BODY;

/// The properties a named `websocket` connection may hold.
pub const CONNECTION_PROPS: &[&str] =
    &["addr", "scheme", "rootCaPath", "certificationPath", "privateKeyPath", "insecureSkipVerify"];

/// Where a websocket server is, with eKuiper's property names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebsocketConfig {
    /// `host:port`.
    pub addr: String,
    /// `ws` or `wss`.
    pub scheme: Option<String>,
    /// TLS, for `wss`.
    #[serde(flatten)]
    pub tls: TlsProps,
}

impl WebsocketConfig {
    /// The settings of a named connection's properties; an unknown property is refused.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        let config = crate::connections::settings::<Self>(props, CONNECTION_PROPS, "websocket")?;
        config.host_port()?;
        config.secure()?;
        Ok(config)
    }

    /// Whether the scheme is `wss`.
    fn secure(&self) -> Result<bool, ConnectorError> {
        match self.scheme.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "ws") if !self.tls.any() => Ok(false),
            None | Some("" | "ws") => {
                Err(ConnectorError::Config("websocket: TLS properties need scheme \"wss\"".into()))
            }
            Some("wss") => Ok(true),
            Some(other) => Err(ConnectorError::Config(format!("websocket: scheme is ws or wss, not {other:?}"))),
        }
    }

    fn host_port(&self) -> Result<(String, u16), ConnectorError> {
        crate::connections::host_port(&self.addr, "websocket")
    }
}

/// Checks a named connection's properties, reading its TLS files.
pub(crate) fn check_connection(
    props: &serde_json::Map<String, serde_json::Value>,
    files: &Arc<FileRoots>,
) -> Result<(), ConnectorError> {
    let config = WebsocketConfig::from_connection(props)?;
    if config.secure()? {
        config.tls.client_config(files, "websocket", &config.addr)?;
    }
    Ok(())
}

/// Checks a URL path: `/` and then no spaces, queries or fragments.
fn check_path(path: &str, what: &str) -> Result<(), ConnectorError> {
    if path.starts_with('/') && !path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!("websocket: {what} {path:?} must be a URL path starting with '/'")))
    }
}

/// What the websocket source and sink share.
#[derive(Clone)]
pub struct WebsocketContext {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// Where TLS files may be read from.
    pub files: Arc<FileRoots>,
    /// What servers a client named may be.
    pub egress: Arc<EgressPolicy>,
    /// The endpoints served on the HTTP push address.
    pub hub: Arc<WebsocketHub>,
}

impl WebsocketContext {
    /// The settings of connection `name` (of type websocket), and where they come from.
    fn connection(&self, name: &str) -> Result<(WebsocketConfig, Origin), ConnectorError> {
        let def = self.connections.lookup(name, "websocket")?;
        Ok((WebsocketConfig::from_connection(&def.props)?, Origin::of(&def)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn connections_are_checked() {
        let ok = WebsocketConfig::from_connection(&props(serde_json::json!({"addr": "feed:8080"}))).unwrap();
        assert_eq!(ok.host_port().unwrap(), ("feed".to_owned(), 8080));
        for (json, message) in [
            (serde_json::json!({"addr": "feed"}), "host:port"),
            (serde_json::json!({"addr": "a/b:1"}), "host:port"),
            (serde_json::json!({"addr": "h:1", "scheme": "http"}), "ws or wss"),
            (serde_json::json!({"addr": "h:1", "insecureSkipVerify": true}), "need scheme \"wss\""),
            (serde_json::json!({"addr": "h:1", "path": "/x"}), "unknown property \"path\""),
        ] {
            let error = WebsocketConfig::from_connection(&props(json.clone())).unwrap_err().to_string();
            assert!(error.contains(message), "{json}: {error}");
        }
        assert!(check_path("/api/data", "path").is_ok());
        assert!(check_path("api", "path").is_err());
        assert!(check_path("/a?b", "path").is_err());
    }
}
