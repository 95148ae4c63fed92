//! The settings of one MQTT connection: eKuiper's properties
//! ([`MqttConfig`]), where they come from (a named connection, an action's
//! own), and their checked form ([`Settings`]) that a client connects with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oort_engine::ConnectorError;
use oort_policy::EgressPolicy;
use serde::Deserialize;

use super::{DEFAULT_SERVER, MqttContext};
use crate::connections::{ClientOwner, Connections, Origin};
use crate::tls::TlsProps;

/// Largest MQTT packet sent or received: the protocol's own limit (256 MiB).
pub(crate) const MAX_PACKET: u32 = 268_435_455;

/// The properties a named `mqtt` connection may hold: those of a broker, not
/// of a subscription or a message (QoS is one of those but serves as their default).
pub const CONNECTION_PROPS: &[&str] = &[
    "server",
    "clientId",
    "clientid",
    "username",
    "password",
    "qos",
    "keepAlive",
    "cleanSession",
    "protocolVersion",
    "certificationPath",
    "privateKeyPath",
    "rootCaPath",
    "insecureSkipVerify",
];

/// The settings of one connection to a broker, with eKuiper's property names:
/// what a named connection holds, and the connection part of an `mqtt`
/// action's properties.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MqttConfig {
    /// Broker URL: `tcp://host:port` or `mqtt://host:port` (port 1883 when
    /// left out); `ssl://`, `tls://` or `mqtts://` for TLS (port 8883).
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
    /// TLS, for an `ssl://` server.
    #[serde(flatten)]
    pub tls: TlsProps,
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
            tls: TlsProps::default(),
        }
    }
}

impl MqttConfig {
    /// The defaults, with this broker.
    pub fn with_server(server: &str) -> Self {
        Self { server: server.trim().to_owned(), ..Self::default() }
    }

    /// The settings of a named connection's properties; an unknown property is
    /// refused, as a typo would otherwise be silently ignored.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        crate::connections::settings(props, CONNECTION_PROPS, "mqtt")
    }

    /// These settings with a stream's options ([`super::SOURCE_OPTIONS`]) applied.
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

    /// Checks the settings and resolves them for one client of a rule's
    /// operator: its TLS files read, its egress policy and registry entry set.
    pub(crate) fn resolve(
        &self,
        context: &MqttContext,
        origin: &Origin,
        rule_id: &str,
        operator: &str,
    ) -> Result<Settings, ConnectorError> {
        let server = parse_server(&self.server)?;
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
        let tls = if server.tls {
            Some(self.tls.client_config(&context.files, "mqtt", &self.server)?)
        } else if self.tls.any() {
            return Err(ConnectorError::Config(format!(
                "mqtt: TLS properties need a TLS server (ssl://, tls:// or mqtts://), not {:?}",
                self.server
            )));
        } else {
            None
        };
        let client_id = if self.client_id.is_empty() {
            format!("oort-{rule_id}-{:08x}", fastrand::u32(..))
        } else {
            self.client_id.clone()
        };
        Ok(Settings {
            server: self.server.clone(),
            host: server.host,
            port: server.port,
            client_id,
            username: self.username.clone(),
            password: self.password.clone(),
            qos,
            keep_alive: Duration::from_secs(self.keep_alive),
            clean_session: self.clean_session,
            version,
            manual_acks: false,
            tls,
            egress: (!origin.trusted).then(|| Arc::clone(&context.egress)),
            registry: Arc::clone(&context.connections),
            owner: ClientOwner {
                connection: origin.connection.clone(),
                rule_id: rule_id.to_owned(),
                operator: operator.to_owned(),
            },
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

/// A broker URL, split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Server {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Splits a broker URL into host, port and whether it speaks TLS.
pub(crate) fn parse_server(server: &str) -> Result<Server, ConnectorError> {
    let bad = |why: &str| ConnectorError::Config(format!("mqtt: invalid server {server:?}: {why}"));
    let (scheme, rest) = server.split_once("://").ok_or_else(|| bad("expected tcp://host:port"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => false,
        "ssl" | "tls" | "mqtts" => true,
        "ws" | "wss" => return Err(bad(&format!("{scheme}:// is not supported yet; use tcp:// or ssl://"))),
        _ => return Err(bad(&format!("unknown scheme {scheme:?}; use tcp:// or ssl://"))),
    };
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
        None if tls => 8883,
        None => 1883,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad(&format!("bad port {p:?}")))?,
    };
    Ok(Server { host: host.to_owned(), port, tls })
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.
    V5,
}

/// Checked settings of one client.
#[derive(Clone)]
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
    /// For a TLS server.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The policy every address the server resolves to must pass; `None`
    /// for a broker the server's configuration names.
    pub egress: Option<Arc<EgressPolicy>>,
    /// Where the client's state is shown.
    pub registry: Arc<Connections>,
    /// Whose client it is.
    pub owner: ClientOwner,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("client_id", &self.client_id)
            .field("qos", &self.qos)
            .field("version", &self.version)
            .field("tls", &self.tls.is_some())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(config: MqttConfig) -> Result<Settings, ConnectorError> {
        let origin = Origin { connection: String::new(), trusted: true };
        config.resolve(&MqttContext::for_tests(DEFAULT_SERVER), &origin, "r1", "sink_mqtt_0")
    }

    fn server(host: &str, port: u16, tls: bool) -> Server {
        Server { host: host.into(), port, tls }
    }

    fn config_error(result: Result<Settings, ConnectorError>) -> String {
        match result {
            Err(ConnectorError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn servers_parse() {
        assert_eq!(parse_server("tcp://127.0.0.1:1883").unwrap(), server("127.0.0.1", 1883, false));
        assert_eq!(parse_server("mqtt://broker.local").unwrap(), server("broker.local", 1883, false));
        assert_eq!(parse_server("TCP://h:18830/").unwrap(), server("h", 18830, false));
        assert_eq!(parse_server("tcp://[::1]:1884").unwrap(), server("::1", 1884, false));
        assert_eq!(parse_server("tcp://[::1]").unwrap(), server("::1", 1883, false));
        assert_eq!(parse_server("ssl://h").unwrap(), server("h", 8883, true));
        assert_eq!(parse_server("mqtts://h:8884").unwrap(), server("h", 8884, true));
        for (bad, why) in [
            ("127.0.0.1:1883", "expected tcp://"),
            ("ws://h:8883", "not supported yet"),
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
        let ok = resolve(MqttConfig::default()).unwrap();
        assert_eq!((ok.host.as_str(), ok.port, ok.qos, ok.version), ("127.0.0.1", 1883, 1, Version::V4));
        assert!(ok.client_id.starts_with("oort-r1-"), "{}", ok.client_id);
        let other = resolve(MqttConfig::default()).unwrap();
        assert_ne!(ok.client_id, other.client_id);
        let fixed = resolve(MqttConfig { client_id: "me".into(), ..Default::default() }).unwrap();
        assert_eq!(fixed.client_id, "me");

        assert!(config_error(resolve(MqttConfig { qos: 3, ..Default::default() })).contains("qos"));
        assert!(
            config_error(resolve(MqttConfig { protocol_version: "6".into(), ..Default::default() }))
                .contains("protocolVersion")
        );
        let v5 = MqttConfig { protocol_version: "5".into(), keep_alive: 2, ..Default::default() };
        assert!(config_error(resolve(v5)).contains("at least 5"));
        assert!(config_error(resolve(MqttConfig { keep_alive: 70_000, ..Default::default() })).contains("65535"));
        let password_only = MqttConfig { password: Some("x".into()), ..Default::default() };
        assert!(config_error(resolve(password_only)).contains("username"));
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
                ..Default::default()
            }
        );
    }
}
