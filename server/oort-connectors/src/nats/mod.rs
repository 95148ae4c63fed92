//! The `nats` source and sink: core NATS subjects, and JetStream streams.
//!
//! ```sql
//! CREATE STREAM orders () WITH (TYPE="nats", CONF_KEY="bus", DATASOURCE="orders.>", STREAM="ORDERS")
//! ```
//!
//! ```json
//! {"nats": {"connectionSelector": "bus", "subject": "alerts", "jetstream": true}}
//! ```
//!
//! # The connection
//!
//! A `nats` stream or action names a named connection of type `nats`
//! ([`crate::connections`]): `CONF_KEY` for a stream, `connectionSelector`
//! for an action. Its properties ([`CONNECTION_PROPS`]) are `server`
//! (`nats://host:port`, or `tls://host:port` for TLS; port 4222), `username`
//! and `password` or `token`, and the TLS files of [`crate::tls::TlsProps`].
//! Each rule opens its own client; the client reconnects by itself after a
//! loss, and its state is the connection's ([`crate::connections`]). For a
//! connection a client created, the server's address passes the egress
//! policy before each connection, and the other servers a NATS cluster
//! announces are not used (they did not pass it).
//!
//! # Source
//!
//! Options ([`SOURCE_OPTIONS`]): `DATASOURCE` is the subject (wildcards `*`
//! and `>` allowed). Each message is an event with the meta `subject` (and,
//! from JetStream, `stream` and `sequence`).
//!
//! - Core NATS (no `STREAM`): a subscription, or a queue subscription with
//!   `QUEUE_GROUP` (each message to one member: stateless rules only). What
//!   is published while the rule does not run is not seen. Core NATS has no
//!   flow control: when the rule reads slower than the subject is published,
//!   the client drops what its buffer (65,536 messages) cannot hold; each
//!   drop is counted in the source operator's `records_dropped_total`, with
//!   an exception that says why. Use JetStream to lose nothing.
//! - JetStream (`STREAM` names an existing stream whose subjects cover
//!   `DATASOURCE`):
//!   - a rule with `qos` 0 reads through a durable pull consumer (`DURABLE`,
//!     default `oort-<rule id>`), each message acknowledged once handed to
//!     the rule: after a restart it goes on where the consumer was;
//!   - a rule with `qos` 1 or 2 reads through an ordered consumer from the
//!     stream sequence after its checkpoint's: the sequence is the source's
//!     position, so a restart replays exactly what followed the checkpoint
//!     (as long as the stream still keeps it, per its retention limits).
//!   - `DELIVER` says where a consumer without a position starts: `all` (the
//!     default), `new` or `last`.
//!
//! # Sink
//!
//! Properties: `connectionSelector` (required), `subject` (required),
//! `jetstream` (default false) and `msgId`. Each payload made by
//! [`SinkEncoder`](crate::encode::SinkEncoder) is published with the header
//! `Nats-Msg-Id: <rule id>:<result number>:<payload of the result>`, the
//! same for a result replayed after a restart (for a rule that restores its
//! checkpoints), which JetStream uses to drop duplicates within its stream's
//! duplicate window. `msgId`, a template of the payload such as
//! `{{.device}}@{{.start}}`, gives the id instead: the same for a window's
//! result whichever server or run emits it (a rule split over partitions);
//! a constant is refused. With `jetstream`, each
//! publish waits for the stream's acknowledgement; without it, a flush (a
//! round trip to the server) ends each result.

mod sink;
mod source;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use oort_engine::{ConnectorError, ConnectorOption, OptionKind};
use oort_policy::{EgressPolicy, FileRoots};
use serde::Deserialize;

pub use sink::NatsSinkFactory;
pub use source::NatsSourceFactory;

use crate::connections::{self, ClientLink, Connections, LinkState, Origin};
use crate::tls::TlsProps;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The properties a named `nats` connection may hold.
pub const CONNECTION_PROPS: &[&str] = &[
    "server",
    "username",
    "password",
    "token",
    "certificationPath",
    "privateKeyPath",
    "rootCaPath",
    "insecureSkipVerify",
];

/// The options of a `nats` stream (module documentation).
pub const SOURCE_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "CONF_KEY",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The named connection (type nats) of the server.",
    },
    ConnectorOption {
        key: "STREAM",
        kind: OptionKind::Text,
        default: "",
        description: "A JetStream stream to read DATASOURCE from; without it, core NATS.",
    },
    ConnectorOption {
        key: "DURABLE",
        kind: OptionKind::Text,
        default: "",
        description: "JetStream, qos 0: the durable consumer's name; default oort-<rule id>.",
    },
    ConnectorOption {
        key: "DELIVER",
        kind: OptionKind::OneOf(&["all", "new", "last"]),
        default: "all",
        description: "JetStream: where a consumer without a position starts.",
    },
    ConnectorOption {
        key: "QUEUE_GROUP",
        kind: OptionKind::Text,
        default: "",
        description: "Core NATS: subscribe in this queue group (each message to one member; stateless rules only).",
    },
];

/// The settings of a `nats` connection, with eKuiper-style names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NatsConfig {
    /// `nats://host:port` or `tls://host:port` (port 4222 when left out).
    pub server: String,
    /// User name, with `password`.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// A token, instead of a user name and password.
    pub token: Option<String>,
    /// TLS files, for a `tls://` server or one that asks for TLS.
    #[serde(flatten)]
    pub tls: TlsProps,
}

/// A server address, split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    host: String,
    port: u16,
    tls: bool,
}

impl NatsConfig {
    /// The settings of a named connection's properties; an unknown property is refused.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        crate::connections::settings(props, CONNECTION_PROPS, "nats")
    }

    /// Checks the settings, the TLS files among them, without connecting.
    pub(crate) fn check(&self, files: &FileRoots) -> Result<(), ConnectorError> {
        self.resolve(files).map(drop)
    }

    fn server(&self) -> Result<Server, ConnectorError> {
        let bad = |why: &str| ConnectorError::Config(format!("nats: invalid server {:?}: {why}", self.server));
        let (scheme, authority) = self.server.split_once("://").ok_or_else(|| bad("expected nats://host:port"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "nats" => false,
            "tls" => true,
            other => return Err(bad(&format!("unknown scheme {other:?}; use nats:// or tls://"))),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#', '@', ',']) {
            return Err(bad("expected one host and port after the scheme (credentials go in username and password)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                (host, port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("bad port"))?)
            }
            _ => (authority, 4222),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Server { host: host.to_owned(), port, tls })
    }

    /// The checked settings a client connects with.
    fn resolve(&self, files: &FileRoots) -> Result<Resolved, ConnectorError> {
        let server = self.server()?;
        if self.password.is_some() != self.username.is_some() {
            return Err(ConnectorError::Config("nats: username and password go together".into()));
        }
        if self.token.is_some() && self.username.is_some() {
            return Err(ConnectorError::Config("nats: give a token or a username, not both".into()));
        }
        let tls = match (server.tls, self.tls.any()) {
            (true, _) => Some(self.tls.client_config(files, "nats", &self.server)?),
            (false, true) => {
                return Err(ConnectorError::Config(format!(
                    "nats: TLS properties need a tls:// server, not {:?}",
                    self.server
                )));
            }
            (false, false) => None,
        };
        Ok(Resolved { config: self.clone(), server, tls })
    }
}

/// Settings checked, TLS configuration built.
#[derive(Clone)]
struct Resolved {
    config: NatsConfig,
    server: Server,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// What the nats source and sink share.
#[derive(Clone)]
pub struct NatsContext {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// Where TLS files may be read from.
    pub files: Arc<FileRoots>,
    /// What servers a client named may be.
    pub egress: Arc<EgressPolicy>,
}

/// A connection's checked settings, where they come from, and what it may reach.
#[derive(Clone)]
pub(crate) struct Target {
    resolved: Resolved,
    origin: Origin,
    egress: Option<Arc<EgressPolicy>>,
    registry: Arc<Connections>,
}

/// Why connecting failed.
pub(crate) enum ConnectFailure {
    /// For a reason retrying will not fix: credentials, the egress policy.
    Refused(String),
    /// The server cannot be reached now.
    Unreachable(String),
}

impl NatsContext {
    /// The checked settings of connection `name` (of type nats).
    pub(crate) fn target(&self, name: &str) -> Result<Target, ConnectorError> {
        let def = self.connections.lookup(name, "nats")?;
        let resolved = NatsConfig::from_connection(&def.props)?.resolve(&self.files)?;
        let origin = Origin::of(&def);
        let egress = (!origin.trusted).then(|| Arc::clone(&self.egress));
        Ok(Target { resolved, origin, egress, registry: Arc::clone(&self.connections) })
    }
}

impl Target {
    /// The server, for messages.
    pub(crate) fn server(&self) -> &str {
        &self.resolved.config.server
    }

    /// Registers a client of `rule_id`'s `operator`, whose state its connection shows.
    pub(crate) fn link(&self, rule_id: &str, operator: &str) -> Result<Arc<ClientLink>, ConnectorError> {
        self.origin.link(&self.registry, rule_id, operator)
    }

    /// Connects; the client reconnects by itself afterwards, reporting its
    /// state to `link`, and counting in `dropped` the messages it drops
    /// because a subscription's buffer is full (a slow consumer).
    pub(crate) async fn connect(
        &self,
        link: &Arc<ClientLink>,
        dropped: &Arc<AtomicU64>,
    ) -> Result<async_nats::Client, ConnectFailure> {
        let Resolved { config, server, tls } = &self.resolved;
        link.set(LinkState::Connecting);
        let refuse = |why: String| {
            link.set(LinkState::Disconnected(why.clone()));
            ConnectFailure::Refused(why)
        };
        if let Some(policy) = &self.egress {
            connections::check_egress(policy, &server.host, server.port).await.map_err(refuse)?;
        }
        let (events, drops) = (Arc::clone(link), Arc::clone(dropped));
        let mut options = ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .event_callback(move |event| {
                let (link, drops) = (Arc::clone(&events), Arc::clone(&drops));
                async move {
                    match event {
                        // One event per message the client dropped.
                        Event::SlowConsumer(_) => {
                            drops.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::Connected => link.set(LinkState::Connected),
                        Event::Disconnected => link.set(LinkState::Disconnected("disconnected".into())),
                        Event::ClientError(e) => link.set(LinkState::Disconnected(e.to_string())),
                        Event::ServerError(e) => link.set(LinkState::Disconnected(e.to_string())),
                        _ => {}
                    }
                }
            });
        if self.egress.is_some() {
            options = options.ignore_discovered_servers();
        }
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(tls) = tls {
            options = options.require_tls(true).tls_client_config(tls.as_ref().clone());
        }
        let scheme = if server.tls { "tls" } else { "nats" };
        let host = if server.host.contains(':') { format!("[{}]", server.host) } else { server.host.clone() };
        match options.connect(format!("{scheme}://{host}:{}", server.port)).await {
            Ok(client) => {
                link.set(LinkState::Connected);
                Ok(client)
            }
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", config.server);
                match e.kind() {
                    ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => Err(refuse(why)),
                    _ => {
                        link.set(LinkState::Disconnected(why.clone()));
                        Err(ConnectFailure::Unreachable(why))
                    }
                }
            }
        }
    }
}

/// Checks a subject to subscribe to or publish on.
fn check_subject(subject: &str, wildcards: bool, what: &str) -> Result<(), ConnectorError> {
    let bad = |why: &str| ConnectorError::Config(format!("nats: invalid {what} {subject:?}: {why}"));
    if subject.is_empty() {
        return Err(bad("it is empty"));
    }
    if subject.contains(|c: char| c.is_whitespace() || c == '\0') {
        return Err(bad("no spaces"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(bad("empty token"));
        }
        let wildcard = *token == "*" || (*token == ">" && i + 1 == tokens.len());
        if (token.contains(['*', '>']) && !wildcard) || (wildcard && !wildcards) {
            return Err(bad(if wildcards { "'*' and '>' are whole tokens, '>' the last" } else { "no wildcards" }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(server: &str) -> NatsConfig {
        NatsConfig { server: server.into(), ..Default::default() }
    }

    #[test]
    fn servers_parse() {
        let server = |s: &str| config(s).server();
        assert_eq!(server("nats://h").unwrap(), Server { host: "h".into(), port: 4222, tls: false });
        assert_eq!(server("tls://10.0.0.1:4333").unwrap(), Server { host: "10.0.0.1".into(), port: 4333, tls: true });
        assert_eq!(server("nats://[::1]:4222").unwrap(), Server { host: "::1".into(), port: 4222, tls: false });
        for (bad, why) in [
            ("h:4222", "expected nats://"),
            ("ws://h", "unknown scheme"),
            ("nats://u:p@h", "one host"),
            ("nats://a,b", "one host"),
            ("nats://h:0", "bad port"),
            ("nats://", "no host"),
        ] {
            let error = server(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn subjects_are_checked() {
        for ok in ["a", "a.b", "a.*.c", "a.>", ">"] {
            check_subject(ok, true, "DATASOURCE").unwrap();
        }
        for bad in ["", "a..b", "a b", "a.>.c", "a*", "a.b>"] {
            assert!(check_subject(bad, true, "DATASOURCE").is_err(), "{bad}");
        }
        assert!(check_subject("a.*", false, "subject").unwrap_err().to_string().contains("no wildcards"));
    }

    #[test]
    fn connection_properties_are_checked() {
        let props = |json: serde_json::Value| json.as_object().cloned().unwrap();
        let error = NatsConfig::from_connection(&props(serde_json::json!({"sever": "nats://h"}))).unwrap_err();
        assert!(error.to_string().contains("unknown property \"sever\""), "{error}");
        let files = FileRoots::create([std::env::temp_dir()]).unwrap();
        let half = NatsConfig { username: Some("u".into()), ..config("nats://h") };
        assert!(half.check(&files).unwrap_err().to_string().contains("go together"));
        let tls_plain =
            NatsConfig { tls: TlsProps { insecure_skip_verify: true, ..Default::default() }, ..config("nats://h") };
        assert!(tls_plain.check(&files).unwrap_err().to_string().contains("tls://"));
        config("tls://h").check(&files).unwrap();
    }
}
