//! The `kafka` source and sink, over librdkafka (the `rdkafka` crate).
//!
//! ```sql
//! CREATE STREAM orders () WITH (TYPE="kafka", CONF_KEY="cluster", DATASOURCE="orders")
//! ```
//!
//! ```json
//! {"kafka": {"connectionSelector": "cluster", "topic": "alerts", "key": "{{.deviceId}}", "compression": "zstd"}}
//! ```
//!
//! # The connection
//!
//! A named connection of type `kafka` ([`crate::connections`]) holds eKuiper's
//! properties ([`CONNECTION_PROPS`]): `brokers` (`host:port,host:port`, the
//! bootstrap servers), `saslAuthType` (`none`, `plain`, or `scram` for
//! SCRAM-SHA-512, as eKuiper), `saslUserName` and `password`, and TLS:
//! `rootCaPath` (default: the system's CAs), `certificationPath` and
//! `privateKeyPath` (a client certificate), `insecureSkipVerify`, each file
//! inside the file roots (unless the connection is declared in `oort.toml`).
//! Any of them, or Oort's `tls: true`, turns TLS on (`ssl`, or `sasl_ssl`
//! with SASL). A stream names it with `CONF_KEY`, an action with
//! `connectionSelector` (or gives `brokers` and SASL properties itself). Each
//! rule's source or sink is a client of its own. Its state is the
//! connection's: connected while librdkafka has a broker up, with the last
//! error librdkafka reported. For a connection a client created, the
//! bootstrap servers pass the egress policy before the client starts; the
//! brokers the cluster then announces are connected to by librdkafka itself,
//! unchecked.
//!
//! # Source
//!
//! `DATASOURCE` is the topic. The source is a consumer in the group `GROUP_ID`
//! (default `oort-<rule id>`), with the group protocol of KIP-848
//! (`GROUP_PROTOCOL`, `consumer` by default; `classic` for brokers before
//! 4.0), starting at `OFFSET_RESET` (`latest` by default, or `earliest`)
//! when the group has no committed offset. Each message is an event with the
//! meta `topic`, `partition`, `offset`, `key` and `timestamp` (ms).
//!
//! - At `qos` 0, offsets are committed (every 5 s) once the message is handed
//!   to the rule.
//! - At `qos` 1 and 2, the source numbers what it hands to the rule, and a
//!   checkpoint saves, with its position, each partition's next offset. Only
//!   after the checkpoint is saved are those offsets committed to the group.
//!   After a crash the group resumes from its committed offsets, at or before
//!   the checkpoint's, and the source drops what the checkpoint already
//!   covers: the rule replays exactly what followed it. Until a checkpoint
//!   covers them, the source keeps 24 bytes per event to know each
//!   position's offsets.
//!
//! `PARTITION_KEY` names the field the topic's messages are keyed by (so
//! each value's messages are in one partition). On servers sharing a catalog,
//! every server runs a rule that groups by it (or keeps no state), each on
//! the partitions the group assigns it (`docs/scaling.md`). Each client
//! reports its assigned partitions and their lag from librdkafka's statistics
//! (every second), for `GetRuleStatus`.
//!
//! A rule split over the partitions that keeps windows at `qos` 1 restarts
//! from the topic rather than from a checkpoint ([`oort_engine::RulePlan::replays_from_source`]):
//! at each checkpoint the source is told the offsets the windows still hold
//! (`hold_back`), and commits, for each partition it is assigned, the first
//! of them. It marks the first message of each partition the group assigns
//! it (`partition_start`), so the rule drops what it held of it before.
//!
//! After a crash, the rule's partitions come back to it once the broker has
//! expired its old member's session (`group.consumer.session.timeout.ms`, 45 s
//! by default; the tests' broker uses 6 s). Static membership
//! (`group.instance.id`) does not shorten this with the `consumer` protocol:
//! the broker refuses an instance id whose old member is still in session.
//!
//! # Sink
//!
//! Properties: `topic` (required), `key` (a template per payload, such as
//! `{{.deviceId}}`, or a constant), `headers` (a map of header to template),
//! `requiredACKs` (`-1`, all in-sync replicas, the default; `1`, the leader;
//! `0`, none), `compression` (`none`, `gzip`, `snappy`, `lz4`, `zstd`). The
//! producer is idempotent at `requiredACKs` -1. `collect` returns once
//! Kafka acknowledged every payload of the result. Each message carries the
//! header `Idempotency-Key: <rule id>:<result number>:<payload of the
//! result>`, the same for a result replayed after a restart.

mod client;
mod sink;
mod source;

use std::sync::Arc;

use oort_engine::{ConnectorError, ConnectorOption, OptionKind};
use oort_policy::{EgressPolicy, FileRoots};
use serde::Deserialize;

pub use sink::KafkaSinkFactory;
pub use source::KafkaSourceFactory;

use crate::connections::{Connections, Origin};

/// The properties a named `kafka` connection may hold.
pub const CONNECTION_PROPS: &[&str] = &[
    "brokers",
    "saslAuthType",
    "saslUserName",
    "password",
    "tls",
    "rootCaPath",
    "certificationPath",
    "privateKeyPath",
    "insecureSkipVerify",
];

/// The options of a `kafka` stream (module documentation).
pub const SOURCE_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "CONF_KEY",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The named connection (type kafka) of the cluster.",
    },
    ConnectorOption {
        key: "GROUP_ID",
        kind: OptionKind::Text,
        default: "",
        description: "The consumer group; default oort-<rule id>.",
    },
    ConnectorOption {
        key: "GROUP_PROTOCOL",
        kind: OptionKind::OneOf(&["consumer", "classic"]),
        default: "consumer",
        description: "The group protocol: consumer (KIP-848, brokers 4.0 and later) or classic.",
    },
    ConnectorOption {
        key: "PARTITION_KEY",
        kind: OptionKind::Text,
        default: "",
        description: "The field the topic's messages are keyed by (so partitioned by): on servers sharing a catalog, \
                      a rule that groups by it runs on every one, each on the partitions the group gives it.",
    },
    ConnectorOption {
        key: "OFFSET_RESET",
        kind: OptionKind::OneOf(&["latest", "earliest"]),
        default: "latest",
        description: "Where a group without a committed offset starts.",
    },
];

/// The settings of a cluster, with eKuiper's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KafkaConfig {
    /// The bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// `none` (the default), `plain` or `scram` (SCRAM-SHA-512).
    pub sasl_auth_type: String,
    /// SASL user name.
    pub sasl_user_name: Option<String>,
    /// SASL password.
    pub password: Option<String>,
    /// TLS with the system's CAs, when no TLS file says so already.
    pub tls: bool,
    /// TLS files and verification.
    #[serde(flatten)]
    pub tls_files: crate::tls::TlsProps,
}

impl KafkaConfig {
    /// The settings of a named connection's properties; an unknown property is refused.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        Self::from_props(props, CONNECTION_PROPS, "kafka connection")
    }

    /// The settings among an action's `props` (its other properties are
    /// checked elsewhere).
    fn from_props(
        props: &serde_json::Map<String, serde_json::Value>,
        known: &[&str],
        what: &str,
    ) -> Result<Self, ConnectorError> {
        let _ = what;
        let config: Self = if known.is_empty() {
            crate::encode::props_subset(props, CONNECTION_PROPS)?
        } else {
            crate::connections::settings(props, known, "kafka")?
        };
        config.check()?;
        Ok(config)
    }

    /// Checks the settings without connecting.
    pub(crate) fn check(&self) -> Result<(), ConnectorError> {
        self.brokers()?;
        match self.sasl_auth_type.to_ascii_lowercase().as_str() {
            "" | "none" if self.sasl_user_name.is_none() => Ok(()),
            "" | "none" => Err(ConnectorError::Config("kafka: saslUserName needs saslAuthType plain".into())),
            "plain" | "scram" if self.sasl_user_name.is_some() && self.password.is_some() => Ok(()),
            kind @ ("plain" | "scram") => {
                Err(ConnectorError::Config(format!("kafka: saslAuthType {kind} needs saslUserName and password")))
            }
            other => {
                Err(ConnectorError::Config(format!("kafka: unknown saslAuthType {other:?}; use none, plain or scram")))
            }
        }
    }

    /// The bootstrap servers as (host, port).
    fn brokers(&self) -> Result<Vec<(String, u16)>, ConnectorError> {
        let bad = |why: String| ConnectorError::Config(format!("kafka: invalid brokers {:?}: {why}", self.brokers));
        let mut brokers = Vec::new();
        for broker in self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let (host, port) = broker.rsplit_once(':').ok_or_else(|| bad(format!("{broker:?} is not host:port")))?;
            let port =
                port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad(format!("bad port in {broker:?}")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains(['/', '@', ' ']) {
                return Err(bad(format!("bad host in {broker:?}")));
            }
            brokers.push((host.to_owned(), port));
        }
        if brokers.is_empty() {
            return Err(bad("none given".into()));
        }
        Ok(brokers)
    }

    /// librdkafka's configuration for these settings, the TLS files found
    /// in `files` (none for a trusted connection: its paths are used as given).
    fn client_config(&self, files: Option<&FileRoots>) -> Result<rdkafka::ClientConfig, ConnectorError> {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        let tls = self.tls || self.tls_files.any();
        let mechanism = match self.sasl_auth_type.to_ascii_lowercase().as_str() {
            "plain" => Some("PLAIN"),
            "scram" => Some("SCRAM-SHA-512"),
            _ => None,
        };
        let protocol = match (tls, mechanism) {
            (false, None) => "plaintext",
            (true, None) => "ssl",
            (false, Some(_)) => "sasl_plaintext",
            (true, Some(_)) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let (Some(mechanism), Some(user), Some(password)) = (mechanism, &self.sasl_user_name, &self.password) {
            config.set("sasl.mechanisms", mechanism).set("sasl.username", user).set("sasl.password", password);
        }
        if tls {
            let path = |key: &str, path: &str| -> Result<String, ConnectorError> {
                match files {
                    Some(files) => files
                        .resolve(path, oort_policy::PathUse::ReadFile)
                        .map(|p| p.display().to_string())
                        .map_err(|e| ConnectorError::Config(format!("kafka: {key}: {e}"))),
                    None => Ok(path.to_owned()),
                }
            };
            let tls_files = &self.tls_files;
            if let Some(ca) = &tls_files.root_ca_path {
                config.set("ssl.ca.location", path("rootCaPath", ca)?);
            }
            match (&tls_files.certification_path, &tls_files.private_key_path) {
                (Some(cert), Some(key)) => {
                    config.set("ssl.certificate.location", path("certificationPath", cert)?);
                    config.set("ssl.key.location", path("privateKeyPath", key)?);
                }
                (None, None) => {}
                _ => {
                    return Err(ConnectorError::Config(
                        "kafka: a client certificate needs both certificationPath and privateKeyPath".into(),
                    ));
                }
            }
            if tls_files.insecure_skip_verify {
                tracing::warn!(brokers = %self.brokers, "kafka: insecureSkipVerify: the brokers' certificates are not checked");
                config
                    .set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        Ok(config)
    }
}

/// Checks a named connection's properties, finding its TLS files (inside
/// the file roots unless it is declared).
pub(crate) fn check_connection(
    def: &crate::connections::ConnectionDef,
    files: &FileRoots,
) -> Result<(), ConnectorError> {
    KafkaConfig::from_connection(&def.props)?.client_config((!def.declared).then_some(files)).map(drop)
}

/// What the kafka source and sink share.
#[derive(Clone)]
pub struct KafkaContext {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// Where TLS files may be read from.
    pub files: Arc<FileRoots>,
    /// What brokers a client named may be.
    pub egress: Arc<EgressPolicy>,
}

/// A cluster's settings, where they come from, and what they may reach.
#[derive(Clone)]
pub(crate) struct Target {
    config: KafkaConfig,
    /// librdkafka's settings of `config`.
    client: rdkafka::ClientConfig,
    origin: Origin,
    egress: Option<Arc<EgressPolicy>>,
    registry: Arc<Connections>,
}

impl KafkaContext {
    /// The settings of connection `name` (of type kafka).
    pub(crate) fn target(&self, name: &str) -> Result<Target, ConnectorError> {
        let def = self.connections.lookup(name, "kafka")?;
        let config = KafkaConfig::from_connection(&def.props)?;
        self.target_of(config, Origin::of(&def))
    }

    /// The target of `config`, its TLS files found now (a trusted
    /// connection's as given; a client's inside the file roots).
    fn target_of(&self, config: KafkaConfig, origin: Origin) -> Result<Target, ConnectorError> {
        let client = config.client_config((!origin.trusted).then_some(self.files.as_ref()))?;
        let egress = (!origin.trusted).then(|| Arc::clone(&self.egress));
        Ok(Target { config, client, origin, egress, registry: Arc::clone(&self.connections) })
    }
}

impl Target {
    /// librdkafka's settings, for a new client.
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        self.client.clone()
    }

    /// The bootstrap servers, for messages.
    pub(crate) fn brokers(&self) -> &str {
        &self.config.brokers
    }

    /// Checks the bootstrap servers against the egress policy, if it applies.
    pub(crate) async fn check_egress(&self) -> Result<(), String> {
        let Some(policy) = &self.egress else { return Ok(()) };
        for (host, port) in self.config.brokers().map_err(|e| e.to_string())? {
            crate::connections::check_egress(policy, &host, port).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().cloned().unwrap()
    }

    #[test]
    fn connection_properties_are_checked() {
        let ok = KafkaConfig::from_connection(&props(serde_json::json!({"brokers": "a:9092, b:9093"}))).unwrap();
        assert_eq!(ok.brokers().unwrap(), [("a".to_string(), 9092), ("b".to_string(), 9093)]);
        for (json, why) in [
            (serde_json::json!({"brokers": ""}), "none given"),
            (serde_json::json!({"brokers": "a"}), "not host:port"),
            (serde_json::json!({"brokers": "a:0"}), "bad port"),
            (serde_json::json!({"brokers": "a:1", "sever": 1}), "unknown property"),
            (serde_json::json!({"brokers": "a:1", "saslAuthType": "scram"}), "needs saslUserName"),
            (serde_json::json!({"brokers": "a:1", "saslAuthType": "plain"}), "needs saslUserName"),
            (serde_json::json!({"brokers": "a:1", "saslAuthType": "kerberos"}), "unknown saslAuthType"),
        ] {
            let error = KafkaConfig::from_connection(&props(json.clone())).unwrap_err().to_string();
            assert!(error.contains(why), "{json}: {error}");
        }
        let plain =
            serde_json::json!({"brokers": "a:1", "saslAuthType": "plain", "saslUserName": "u", "password": "p"});
        let config = KafkaConfig::from_connection(&props(plain)).unwrap().client_config(None).unwrap();
        assert_eq!(config.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(config.get("security.protocol"), Some("sasl_plaintext"));
        let scram = serde_json::json!({"brokers": "a:1", "saslAuthType": "scram", "saslUserName": "u", "password": "p",
                                       "rootCaPath": "/etc/ca.pem"});
        let config = KafkaConfig::from_connection(&props(scram)).unwrap().client_config(None).unwrap();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/ca.pem"));
        let roots = FileRoots::create([std::env::temp_dir().join("oort-kafka-tls-test")]).unwrap();
        let outside = serde_json::json!({"brokers": "a:1", "rootCaPath": "/etc/ssl/certs/ca-certificates.crt"});
        let error = KafkaConfig::from_connection(&props(outside)).unwrap().client_config(Some(&roots)).unwrap_err();
        assert!(error.to_string().contains("rootCaPath"), "{error}");
    }
}
