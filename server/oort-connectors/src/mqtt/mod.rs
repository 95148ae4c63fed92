//! The `mqtt` source and sink, as eKuiper's: a stream subscribes to a topic
//! filter of an MQTT broker, a rule action publishes its results to a topic.
//!
//! ```sql
//! CREATE STREAM demo (temperature FLOAT) WITH (TYPE="mqtt", DATASOURCE="devices/+/messages", FORMAT="json")
//! ```
//!
//! ```json
//! {"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "analysis/result", "qos": 1}}
//! ```
//!
//! # Which broker, and the stream's options
//!
//! A stream's connection is the named connection its `CONF_KEY` names
//! ([`crate::connections`]; eKuiper's conf key and `connectionSelector` in
//! one), or `default` without one: the server's `mqtt_server` in `oort.toml`
//! (`--mqtt-server`, `OORT_MQTT_SERVER`; default [`DEFAULT_SERVER`]), unless
//! `oort.toml` declares a connection named `default` itself. A connection
//! holds [`CONNECTION_PROPS`]: the broker (`tcp://`, or `ssl://` for TLS with
//! `rootCaPath`, `certificationPath`, `privateKeyPath`, `insecureSkipVerify`,
//! files inside the server's file roots), credentials (write-only through
//! the API), client id, protocol, keep-alive, clean session. A stream sets
//! the rest in `WITH (...)` ([`SOURCE_OPTIONS`]), which wins over the
//! connection:
//!
//! | option | meaning |
//! |---|---|
//! | `CONF_KEY` | The named connection; default `default`. |
//! | `CLIENT_ID` | Client id of the connection; default `oort-<rule id>-<random>`, new at each rule start. |
//! | `QOS` | QoS of the subscription: `0`, `1` (default) or `2`. |
//! | `KEEP_ALIVE` | Keep-alive interval in seconds; default `60`. |
//! | `CLEAN_SESSION` | Whether the broker drops the session on disconnect; default `true` (with `false`, give a `CLIENT_ID`). |
//! | `PROTOCOL_VERSION` | `3.1.1` (default) or `5`. |
//!
//! An action names its connection with `connectionSelector` (eKuiper's
//! property) and may then not set the broker's properties itself; without
//! one, it uses `default`, or the broker of its own `server` property with
//! the credentials it gives (never the default connection's).
//!
//! A broker that a client named (a connection created through the API, an
//! action's `server`) passes the server's egress policy at every connection
//! attempt, as the `rest` sink's URLs: loopback, private and link-local
//! addresses only when `egress_allow` names them. Brokers of the server's own
//! configuration do not.
//!
//! # Behaviour
//!
//! - Source: each message becomes one event with the payload's bytes (decoded
//!   per the stream's FORMAT) and the metadata `topic`, `qos` and `messageId`
//!   (read with `meta(topic)`), as in eKuiper. Connection loss is not an error:
//!   the source reconnects with backoff (warning each time, and counting it as
//!   an exception of its source operator, so the rule's status says why it
//!   gets nothing) and subscribes again, for as long as the rule runs. It fails only when the broker refuses the
//!   connection (bad credentials, client id, protocol version) or the
//!   subscription, as those are configuration errors that retrying won't fix.
//! - Sink: each result is encoded by [`SinkEncoder`](crate::encode::SinkEncoder)
//!   per the common sink properties (default: one JSON array per result; one
//!   JSON object per row with `sendSingle`) and each payload published;
//!   `collect` returns only when every payload is acknowledged by the broker
//!   (QoS 1: PUBACK, QoS 2: PUBCOMP; QoS 0: written to the connection). Any
//!   failure is `ConnectorError::External`, and the engine retries the result
//!   with backoff; payloads of a result already acknowledged are not sent again
//!   on that retry. The sink's QoS defaults to 1 (eKuiper's to 0).
//!
//! # Not supported yet
//!
//! Websockets (`ws://`), several `servers`, one socket shared by the rules
//! of a connection (each client is a rule's own), `compression`, and MQTT
//! 3.1 (`protocolVersion: "3.1"` is served as 3.1.1, which every current broker
//! speaks).

mod client;
mod config;
mod sink;
mod source;

use std::sync::Arc;

use oort_engine::{ConnectorError, ConnectorOption, OptionKind};
use oort_policy::{EgressPolicy, FileRoots};

pub(crate) use crate::connections::Origin;
pub use config::{CONNECTION_PROPS, MqttConfig};
pub(crate) use config::{MAX_PACKET, Settings, Version};
pub use sink::{MqttSinkFactory, MqttSinkProps};
pub use source::MqttSourceFactory;

use crate::connections::{self, Connections};

/// The broker used when nothing else is configured, as eKuiper's default.
pub const DEFAULT_SERVER: &str = "tcp://127.0.0.1:1883";

/// The options of an `mqtt` stream (module documentation).
pub const SOURCE_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "CONF_KEY",
        kind: OptionKind::Text,
        default: "default",
        description: "The named connection (ConnectionService) of the broker.",
    },
    ConnectorOption {
        key: "CLIENT_ID",
        kind: OptionKind::Text,
        default: "",
        description: "Client id of the connection; empty: oort-<rule id>-<random>, new at each rule start.",
    },
    ConnectorOption {
        key: "QOS",
        kind: OptionKind::OneOf(&["0", "1", "2"]),
        default: "1",
        description: "QoS of the subscription.",
    },
    ConnectorOption {
        key: "KEEP_ALIVE",
        kind: OptionKind::Count,
        default: "60",
        description: "Keep-alive interval in seconds (MQTT 5: at least 5).",
    },
    ConnectorOption {
        key: "CLEAN_SESSION",
        kind: OptionKind::Bool,
        default: "true",
        description: "Whether the broker drops the session on disconnect; with false, give a CLIENT_ID.",
    },
    ConnectorOption {
        key: "PROTOCOL_VERSION",
        kind: OptionKind::OneOf(&["3.1.1", "4", "3.1", "5", "5.0"]),
        default: "3.1.1",
        description: "MQTT protocol version: 3.1.1 or 5.",
    },
];

/// What the mqtt source and sink share: the named connections, and the
/// server's policies for what a client names.
#[derive(Clone)]
pub struct MqttContext {
    /// The named connections, with `default` among them.
    pub connections: Arc<Connections>,
    /// Where TLS files may be read from.
    pub files: Arc<FileRoots>,
    /// What brokers a client named may be.
    pub egress: Arc<EgressPolicy>,
}

impl MqttContext {
    /// The settings of connection `name` (of type mqtt), and where they come from.
    pub(crate) fn connection(&self, name: &str) -> Result<(MqttConfig, Origin), ConnectorError> {
        let def = self.connections.lookup(name, "mqtt")?;
        let config = MqttConfig::from_connection(&def.props)?;
        Ok((config, Origin { connection: def.name.clone(), trusted: def.declared }))
    }

    /// A context whose `default` connection is `server`, with files under
    /// the system's temporary directory and any broker allowed: for tests.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(server: &str) -> Self {
        let connections = Connections::new();
        connections.put(default_connection(server));
        let files = FileRoots::create([std::env::temp_dir()]).unwrap_or_else(|e| panic!("temp dir: {e}"));
        Self { connections, files: Arc::new(files), egress: Arc::new(EgressPolicy::allow_all()) }
    }
}

/// Checks a named connection's settings, its TLS files among them.
pub(crate) fn check_connection(
    props: &serde_json::Map<String, serde_json::Value>,
    files: &Arc<FileRoots>,
) -> Result<(), ConnectorError> {
    let context = MqttContext {
        connections: Connections::new(),
        files: Arc::clone(files),
        egress: Arc::new(EgressPolicy::allow_all()),
    };
    let origin = Origin { connection: String::new(), trusted: true };
    MqttConfig::from_connection(props)?.resolve(&context, &origin, "check", "").map(drop)
}

/// The `default` connection of a server whose `mqtt_server` is `server`.
pub fn default_connection(server: &str) -> connections::ConnectionDef {
    let props = serde_json::Map::from_iter([("server".to_owned(), serde_json::Value::from(server.trim()))]);
    connections::ConnectionDef { name: connections::DEFAULT.into(), kind: "mqtt".into(), props, declared: true }
}
