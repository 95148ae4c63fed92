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
//! eKuiper takes a stream's connection settings from the conf file
//! `mqtt_source.yaml`, by the stream's `CONF_KEY` (default: `default`). Oort
//! has no profiles yet (they come with named connections): every `mqtt`
//! stream connects to the server's broker, `mqtt_server` in `oort.toml`
//! (`--mqtt-server`, `OORT_MQTT_SERVER`; default [`DEFAULT_SERVER`]), which
//! is also the broker of an `mqtt` action without `server`. A stream naming
//! a `CONF_KEY` other than `default` is refused rather than silently
//! connected to the wrong broker. A stream sets the rest of its connection
//! in `WITH (...)` ([`SOURCE_OPTIONS`]):
//!
//! | option | meaning |
//! |---|---|
//! | `CLIENT_ID` | Client id of the connection; default `oort-<rule id>-<random>`, new at each rule start. |
//! | `QOS` | QoS of the subscription: `0`, `1` (default) or `2`. |
//! | `KEEP_ALIVE` | Keep-alive interval in seconds; default `60`. |
//! | `CLEAN_SESSION` | Whether the broker drops the session on disconnect; default `true` (with `false`, give a `CLIENT_ID`). |
//! | `PROTOCOL_VERSION` | `3.1.1` (default) or `5`. |
//!
//! A broker of a stream's own, and credentials, wait for named connections:
//! a credential written in a stream's definition would be returned by
//! `GetStream`, and a broker named by a client must pass the egress policy.
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
//! TLS (`ssl://`, `tls://`, `mqtts://`: certificationPath, privateKeyPath,
//! rootCaPath, insecureSkipVerify), websockets, several `servers`,
//! `connectionSelector` (a connection shared by streams), shared subscriptions,
//! dynamic topics in the sink (`{{.field}}` templates), `compression`, and MQTT
//! 3.1 (`protocolVersion: "3.1"` is served as 3.1.1, which every current broker
//! speaks).

mod client;
mod sink;
mod source;

use std::time::Duration;

use std::collections::BTreeMap;

use oort_engine::{ConnectorError, ConnectorOption, OptionKind};
use serde::Deserialize;

pub use sink::{MqttSinkFactory, MqttSinkProps};
pub use source::MqttSourceFactory;

/// The broker used when nothing else is configured, as eKuiper's default.
pub const DEFAULT_SERVER: &str = "tcp://127.0.0.1:1883";

/// The options of an `mqtt` stream (module documentation).
pub const SOURCE_OPTIONS: &[ConnectorOption] = &[
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

/// Largest MQTT packet sent or received: the protocol's own limit (256 MiB).
const MAX_PACKET: u32 = 268_435_455;

/// The settings of one connection to a broker, with eKuiper's property names:
/// what a `mqtt_source.yaml` conf key holds, and the connection part of an
/// `mqtt` action's properties.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MqttConfig {
    /// Broker URL, `tcp://host:port` or `mqtt://host:port` (port 1883 when left
    /// out). Default: the server's `mqtt_server`, else [`DEFAULT_SERVER`].
    pub server: String,
    /// Client id of the connection. Empty (the default): `oort-<rule id>-<random>`,
    /// new for each connection of a rule start.
    #[serde(alias = "clientid")]
    pub client_id: String,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password, if the broker wants one.
    pub password: Option<String>,
    /// QoS of the subscription (source) or of the published messages (sink): 0, 1
    /// or 2. Default 1.
    pub qos: u8,
    /// Keep-alive interval in seconds (default 60; 0 turns pings off with MQTT
    /// 3.1.1; MQTT 5 needs at least 5).
    pub keep_alive: u64,
    /// Whether the broker drops the session (subscriptions, queued messages) on
    /// disconnect. Default true. With false, give a fixed `clientId`, or the
    /// session is never found again.
    pub clean_session: bool,
    /// MQTT protocol version: `3.1.1` (default; `4` and `3.1` are taken as 3.1.1)
    /// or `5`.
    pub protocol_version: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.to_owned(),
            client_id: String::new(),
            username: None,
            password: None,
            qos: 1,
            keep_alive: 60,
            clean_session: true,
            protocol_version: "3.1.1".to_owned(),
        }
    }
}

impl MqttConfig {
    /// The defaults, with this broker.
    pub fn with_server(server: &str) -> Self {
        Self { server: server.trim().to_owned(), ..Self::default() }
    }

    /// These settings with a stream's options ([`SOURCE_OPTIONS`]) applied.
    pub fn with_stream_options(&self, options: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let mut config = self.clone();
        let option = |key: &str| options.get(key).map(|v| v.trim());
        let invalid = |key: &str, what: &str| ConnectorError::Option {
            key: key.to_owned(),
            message: format!("mqtt: option {key} must be {what}"),
        };
        if let Some(id) = option("CLIENT_ID") {
            config.client_id = id.to_owned();
        }
        if let Some(qos) = option("QOS") {
            config.qos = qos.parse().map_err(|_| invalid("QOS", "0, 1 or 2"))?;
        }
        if let Some(seconds) = option("KEEP_ALIVE") {
            config.keep_alive = seconds.parse().map_err(|_| invalid("KEEP_ALIVE", "a number of seconds"))?;
        }
        if let Some(clean) = option("CLEAN_SESSION") {
            config.clean_session = clean.eq_ignore_ascii_case("true");
        }
        if let Some(version) = option("PROTOCOL_VERSION") {
            config.protocol_version = version.to_owned();
        }
        Ok(config)
    }

    /// Checks the settings and resolves them for one rule's connection.
    pub(crate) fn resolve(&self, rule_id: &str) -> Result<Settings, ConnectorError> {
        let (host, port) = parse_server(&self.server)?;
        let qos = check_qos(self.qos)?;
        let version = match self.protocol_version.trim() {
            "3.1.1" | "4" | "3.1" | "" => Version::V4,
            "5" | "5.0" => Version::V5,
            other => {
                return Err(ConnectorError::Config(format!(
                    "mqtt: unknown protocolVersion {other:?}; use \"3.1.1\" or \"5\""
                )));
            }
        };
        if self.keep_alive > u64::from(u16::MAX) {
            return Err(ConnectorError::Config(format!(
                "mqtt: keepAlive is at most 65535 seconds (got {})",
                self.keep_alive
            )));
        }
        if version == Version::V5 && self.keep_alive < 5 {
            return Err(ConnectorError::Config(format!(
                "mqtt: with protocolVersion 5, keepAlive must be at least 5 seconds (got {})",
                self.keep_alive
            )));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConnectorError::Config("mqtt: a password needs a username".into()));
        }
        let client_id = if self.client_id.is_empty() {
            format!("oort-{rule_id}-{:08x}", fastrand::u32(..))
        } else {
            self.client_id.clone()
        };
        Ok(Settings {
            server: self.server.clone(),
            host,
            port,
            client_id,
            username: self.username.clone(),
            password: self.password.clone(),
            qos,
            keep_alive: Duration::from_secs(self.keep_alive),
            clean_session: self.clean_session,
            version,
            manual_acks: false,
        })
    }
}

/// Checks a QoS level.
fn check_qos(qos: u8) -> Result<u8, ConnectorError> {
    if qos > 2 {
        return Err(ConnectorError::Config(format!("mqtt: qos is 0, 1 or 2 (got {qos})")));
    }
    Ok(qos)
}

/// Splits a broker URL into host and port.
fn parse_server(server: &str) -> Result<(String, u16), ConnectorError> {
    let bad = |why: &str| ConnectorError::Config(format!("mqtt: invalid server {server:?}: {why}"));
    let (scheme, rest) = server.split_once("://").ok_or_else(|| bad("expected tcp://host:port"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => {}
        "ssl" | "tls" | "mqtts" | "ws" | "wss" => {
            return Err(bad(&format!("{scheme}:// is not supported yet; only tcp:// (or mqtt://)")));
        }
        _ => return Err(bad(&format!("unknown scheme {scheme:?}; use tcp://"))),
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad("expected only host and port after the scheme"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(|| bad("expected ':' after ']'"))?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => 1883,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad(&format!("bad port {p:?}")))?,
    };
    Ok((host.to_owned(), port))
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.
    V5,
}

/// Checked settings of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub server: String,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub qos: u8,
    pub keep_alive: Duration,
    pub clean_session: bool,
    pub version: Version,
    /// Received messages are acknowledged by the source when a checkpoint
    /// covers them, not on receipt.
    pub manual_acks: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(result: Result<Settings, ConnectorError>) -> String {
        match result {
            Err(ConnectorError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn servers_parse() {
        assert_eq!(parse_server("tcp://127.0.0.1:1883").unwrap(), ("127.0.0.1".into(), 1883));
        assert_eq!(parse_server("mqtt://broker.local").unwrap(), ("broker.local".into(), 1883));
        assert_eq!(parse_server("TCP://h:18830/").unwrap(), ("h".into(), 18830));
        assert_eq!(parse_server("tcp://[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert_eq!(parse_server("tcp://[::1]").unwrap(), ("::1".into(), 1883));
        for (bad, why) in [
            ("127.0.0.1:1883", "expected tcp://"),
            ("ssl://h:8883", "not supported yet"),
            ("http://h", "unknown scheme"),
            ("tcp://:1883", "no host"),
            ("tcp://h:port", "bad port"),
            ("tcp://h:0", "bad port"),
            ("tcp://h:70000", "bad port"),
            ("tcp://h:1883/x", "only host and port"),
            ("tcp://[::1", "unclosed"),
        ] {
            match parse_server(bad) {
                Err(ConnectorError::Config(m)) => assert!(m.contains(why), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_streams_options_set_its_connection() {
        let base = MqttConfig::with_server(" tcp://10.0.0.1:1883 ");
        assert_eq!(base.server, "tcp://10.0.0.1:1883");
        let options: BTreeMap<String, String> = [
            ("CLIENT_ID", "gw-1"),
            ("QOS", "2"),
            ("KEEP_ALIVE", "30"),
            ("CLEAN_SESSION", "FALSE"),
            ("PROTOCOL_VERSION", "5"),
            ("DATASOURCE", "t/#"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = base.with_stream_options(&options).unwrap();
        let expected = MqttConfig {
            client_id: "gw-1".into(),
            qos: 2,
            keep_alive: 30,
            clean_session: false,
            protocol_version: "5".into(),
            ..base.clone()
        };
        assert_eq!(config, expected);
        let bad: BTreeMap<String, String> = [("KEEP_ALIVE".to_owned(), "soon".to_owned())].into();
        assert!(
            matches!(base.with_stream_options(&bad), Err(ConnectorError::Option { key, .. }) if key == "KEEP_ALIVE")
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = MqttConfig::default().resolve("r1").unwrap();
        assert_eq!((ok.host.as_str(), ok.port, ok.qos, ok.version), ("127.0.0.1", 1883, 1, Version::V4));
        assert!(ok.client_id.starts_with("oort-r1-"), "{}", ok.client_id);
        let other = MqttConfig::default().resolve("r1").unwrap();
        assert_ne!(ok.client_id, other.client_id);
        let fixed = MqttConfig { client_id: "me".into(), ..Default::default() }.resolve("r1").unwrap();
        assert_eq!(fixed.client_id, "me");

        assert!(config_error(MqttConfig { qos: 3, ..Default::default() }.resolve("r")).contains("qos"));
        assert!(
            config_error(MqttConfig { protocol_version: "6".into(), ..Default::default() }.resolve("r"))
                .contains("protocolVersion")
        );
        let v5 = MqttConfig { protocol_version: "5".into(), keep_alive: 2, ..Default::default() };
        assert!(config_error(v5.resolve("r")).contains("at least 5"));
        assert!(config_error(MqttConfig { keep_alive: 70_000, ..Default::default() }.resolve("r")).contains("65535"));
        let password_only = MqttConfig { password: Some("x".into()), ..Default::default() };
        assert!(config_error(password_only.resolve("r")).contains("username"));
    }

    #[test]
    fn config_takes_ekuiper_names() {
        let json = serde_json::json!({"server": "tcp://h:1", "clientid": "c", "qos": 0, "keepAlive": 30,
            "cleanSession": false, "protocolVersion": "5", "username": "u", "password": "p"});
        let config: MqttConfig = serde_json::from_value(json).unwrap();
        assert_eq!(
            config,
            MqttConfig {
                server: "tcp://h:1".into(),
                client_id: "c".into(),
                username: Some("u".into()),
                password: Some("p".into()),
                qos: 0,
                keep_alive: 30,
                clean_session: false,
                protocol_version: "5".into(),
            }
        );
    }
}
