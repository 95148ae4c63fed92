//! The `mqtt` sink: publishes each result to a topic and waits for the broker's
//! acknowledgement.
//!
//! The sink owns its connection and drives it only while it works (connect in
//! `open`, publish in `collect`, disconnect in `close`). A connection that died
//! while idle (broker restarted, idle timeout) shows on the next publish: the
//! sink then reconnects once and publishes again before reporting a failure.
//!
//! With `protocolVersion` 5, every message carries the user property
//! `Idempotency-Key: <rule id>:<result number>:<message of the result>`, the
//! same for a result replayed after a restart (as the `rest` sink's header):
//! a subscriber that keeps the keys it has seen drops the repeats. MQTT 3.1.1
//! has no properties to carry it.

use std::time::Duration;

use async_trait::async_trait;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory};
use serde::Deserialize;

use std::sync::Arc;

use super::client::{Connection, Event};
use super::{CONNECTION_PROPS, MqttConfig, MqttContext, Origin, Settings};
use crate::connections::{self, ClientLink};
use crate::encode::{DynamicProp, Progress, SinkEncoder};

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the broker may take to acknowledge one message.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The properties of an `mqtt` action, with eKuiper's names. The payloads are
/// made by [`SinkEncoder`] from the common sink properties (`sendSingle`,
/// `dataTemplate`, `fields`, `dataField`, `format`, `omitIfEmpty`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttSinkProps {
    /// The named connection whose broker the results go to; the action may
    /// then set no broker property but `qos`.
    #[serde(default)]
    pub connection_selector: Option<String>,
    /// The connection: `server`, `clientId`, `username`, `password`, `qos`,
    /// `keepAlive`, `cleanSession`, `protocolVersion`, TLS files. Without
    /// `server` nor `connectionSelector`, the `default` connection's.
    #[serde(flatten)]
    pub connection: MqttConfig,
    /// Topic the results are published to (required), without wildcards: a
    /// plain topic, or a template per payload such as `devices/{{.id}}/alerts`.
    #[serde(default)]
    pub topic: String,
    /// Whether the broker keeps the last message of the topic for new subscribers.
    #[serde(default)]
    pub retained: bool,
}

/// Builds `mqtt` sinks, connected per their action's connection.
pub struct MqttSinkFactory(pub MqttContext);

impl MqttSinkFactory {
    /// An action's properties over those of the connection they name, and
    /// where the connection comes from.
    fn connection_props(&self, props: &JsonMap) -> Result<(JsonMap, Origin), ConnectorError> {
        let (name, base) = match props.get("connectionSelector") {
            Some(selector) => {
                let name = selector.as_str().ok_or_else(|| {
                    ConnectorError::Config("mqtt action: connectionSelector must be a connection's name".into())
                })?;
                if let Some(key) = props.keys().find(|k| *k != "qos" && CONNECTION_PROPS.contains(&k.as_str())) {
                    return Err(ConnectorError::Config(format!(
                        "mqtt action: {key:?} belongs to the connection {name:?}: set it there, or leave out \
                         connectionSelector"
                    )));
                }
                (name, self.0.connections.lookup(name, "mqtt")?)
            }
            None if props.contains_key("server") => {
                // A broker of the action's own: none of the default connection's
                // credentials, and the egress policy unless it is the same broker.
                let default = self.0.connections.lookup(connections::DEFAULT, "mqtt")?;
                let trusted = props.get("server") == default.props.get("server");
                return Ok((props.clone(), Origin { connection: String::new(), trusted }));
            }
            None => (connections::DEFAULT, self.0.connections.lookup(connections::DEFAULT, "mqtt")?),
        };
        MqttConfig::from_connection(&base.props)?;
        let mut merged = base.props.clone();
        merged.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok((merged, Origin { connection: name.to_owned(), trusted: base.declared }))
    }
}

/// The mqtt sink's own properties (module documentation); the common ones
/// are the encoder's.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "topic",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The topic results are published to, no wildcards; a template such as devices/{{.id}} for a topic per payload.",
    },
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "default",
        description: "The named connection (ConnectionService) of the broker; the action then sets no broker property but qos.",
    },
    ConnectorOption {
        key: "server",
        kind: OptionKind::Text,
        default: "",
        description: "Broker URL of the action's own, tcp://host:port or ssl://host:port (egress policy applies); \
                      default: the default connection.",
    },
    ConnectorOption {
        key: "clientId",
        kind: OptionKind::Text,
        default: "",
        description: "Client id; empty: oort-<rule id>-<random>.",
    },
    ConnectorOption {
        key: "username",
        kind: OptionKind::Text,
        default: "",
        description: "User name, if the broker wants one.",
    },
    ConnectorOption { key: "password", kind: OptionKind::Text, default: "", description: "Password, with username." },
    ConnectorOption {
        key: "qos",
        kind: OptionKind::OneOf(&["0", "1", "2"]),
        default: "1",
        description: "QoS of the published messages.",
    },
    ConnectorOption {
        key: "keepAlive",
        kind: OptionKind::Count,
        default: "60",
        description: "Keep-alive interval in seconds.",
    },
    ConnectorOption {
        key: "cleanSession",
        kind: OptionKind::Bool,
        default: "true",
        description: "Whether the broker drops the session on disconnect.",
    },
    ConnectorOption {
        key: "protocolVersion",
        kind: OptionKind::OneOf(&["3.1.1", "5"]),
        default: "3.1.1",
        description: "MQTT protocol version.",
    },
    ConnectorOption {
        key: "rootCaPath",
        kind: OptionKind::Text,
        default: "",
        description: "TLS: CA certificates (PEM) inside the file roots; default: the system's.",
    },
    ConnectorOption {
        key: "certificationPath",
        kind: OptionKind::Text,
        default: "",
        description: "TLS: client certificate (PEM) inside the file roots.",
    },
    ConnectorOption {
        key: "privateKeyPath",
        kind: OptionKind::Text,
        default: "",
        description: "TLS: the client certificate's key (PEM) inside the file roots.",
    },
    ConnectorOption {
        key: "insecureSkipVerify",
        kind: OptionKind::Bool,
        default: "false",
        description: "TLS: accept any broker certificate (tests only).",
    },
    ConnectorOption {
        key: "retained",
        kind: OptionKind::Bool,
        default: "false",
        description: "Whether the broker keeps the last message for new subscribers.",
    },
];

impl SinkFactory for MqttSinkFactory {
    fn description(&self) -> &'static str {
        "Publishes results to an MQTT topic (3.1.1 or 5), on a named connection or the action's own broker."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(crate::connections::with_connection_props(
            [OPTIONS, crate::encode::COMMON_OPTIONS].concat(),
            super::config::CONNECTION_PROPS,
        ))
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let (merged, origin) = self.connection_props(&config.props)?;
        let props: MqttSinkProps = serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| ConnectorError::Config(format!("mqtt action: {e}")))?;
        let topic = props.topic;
        if topic.is_empty() {
            return Err(ConnectorError::Config("an mqtt action needs the property `topic`".into()));
        }
        let topic = DynamicProp::new("topic", &topic)?;
        if !topic.is_dynamic() {
            check_topic(topic.text()).map_err(ConnectorError::Config)?;
        }
        let encoder = SinkEncoder::of(config)?;
        let operator = format!("sink_mqtt_{}", config.index);
        let settings = props.connection.resolve(&self.0, &origin, &config.rule_id, &operator)?;
        Ok(Box::new(MqttSink {
            settings,
            link: None,
            topic,
            retained: props.retained,
            encoder,
            rule_id: config.rule_id.clone(),
            conn: None,
            progress: Progress::default(),
            sequence: None,
        }))
    }
}

struct MqttSink {
    settings: Settings,
    /// Its entry among the clients of its connection, from the first
    /// attempt to connect until it closes.
    link: Option<Arc<ClientLink>>,
    topic: DynamicProp,
    retained: bool,
    encoder: SinkEncoder,
    rule_id: String,
    /// The live connection, if any: dropped after any failure.
    conn: Option<Connection>,
    /// How far the current result got, so that a retry sends only the rest.
    progress: Progress,
    /// The number of the result being sent, for its payloads' keys.
    sequence: Option<u64>,
}

impl MqttSink {
    /// Connects, replacing any connection held.
    async fn connect(&mut self) -> Result<(), ConnectorError> {
        self.conn = None;
        let server = &self.settings.server;
        if self.link.is_none() {
            self.link = Some(self.settings.link()?);
        }
        let mut conn = Connection::new(&self.settings, self.link.clone());
        match tokio::time::timeout(CONNECT_TIMEOUT, conn.poll()).await {
            Ok(Ok(Event::Connected { .. })) => {
                tracing::debug!(rule = %self.rule_id, server, "mqtt sink connected");
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Ok(other)) => {
                Err(ConnectorError::External(format!("mqtt: unexpected {other:?} from {server} while connecting")))
            }
            Ok(Err(e)) => Err(ConnectorError::External(format!("mqtt: cannot connect to {server}: {e}"))),
            Err(_) => Err(ConnectorError::External(format!(
                "mqtt: cannot connect to {server}: no answer within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// Publishes payload `index` of the current result and waits for its
    /// acknowledgement, connecting if needed; a connection found dead is
    /// replaced once.
    async fn send(&mut self, index: usize, topic: &str, payload: &[u8]) -> Result<(), ConnectorError> {
        let reused = self.conn.is_some();
        if !reused {
            self.connect().await?;
        }
        match self.publish(index, topic, payload).await {
            Err(e) if reused => {
                tracing::debug!(rule = %self.rule_id, error = %e, "mqtt sink: connection lost; reconnecting");
                self.connect().await?;
                self.publish(index, topic, payload).await
            }
            result => result,
        }
    }

    /// Publishes on the current connection; drops it on failure.
    async fn publish(&mut self, index: usize, topic: &str, payload: &[u8]) -> Result<(), ConnectorError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(ConnectorError::External("mqtt: not connected".into()));
        };
        let key = self.sequence.map(|sequence| format!("{}:{sequence}:{index}", self.rule_id));
        let message = Message { topic, retain: self.retained, payload, key };
        let result = publish_and_wait(conn, &self.settings, message).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// One message to publish.
struct Message<'a> {
    topic: &'a str,
    retain: bool,
    payload: &'a [u8],
    /// Its `Idempotency-Key` (MQTT 5 only).
    key: Option<String>,
}

/// Requests the publish, then drives the connection until the broker has
/// acknowledged it (QoS 0: until it is written).
async fn publish_and_wait(
    conn: &mut Connection,
    settings: &Settings,
    message: Message<'_>,
) -> Result<(), ConnectorError> {
    let server = &settings.server;
    let qos = settings.qos;
    let topic = message.topic;
    conn.publish(topic, qos, message.retain, message.payload.to_vec(), message.key)
        .await
        .map_err(|e| ConnectorError::External(format!("mqtt: cannot publish to {server}: {e}")))?;
    let refused =
        |why: String| ConnectorError::External(format!("mqtt: {server} refused the message to {topic:?}: {why}"));
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    let mut sent = None;
    loop {
        let event = match tokio::time::timeout_at(deadline, conn.poll()).await {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => return Err(ConnectorError::External(format!("mqtt: publishing to {server} failed: {e}"))),
            Err(_) => {
                return Err(ConnectorError::External(format!(
                    "mqtt: {server} did not acknowledge the message within {ACK_TIMEOUT:?}"
                )));
            }
        };
        match event {
            Event::PublishSent(pkid) if sent.is_none() => {
                if qos == 0 {
                    return Ok(());
                }
                sent = Some(pkid);
            }
            Event::PubAck { pkid, refused: why } if qos == 1 && sent == Some(pkid) => {
                return why.map_or(Ok(()), |why| Err(refused(why)));
            }
            Event::PubRec { pkid, refused: Some(why) } if qos == 2 && sent == Some(pkid) => {
                return Err(refused(why));
            }
            Event::PubComp { pkid, refused: why } if qos == 2 && sent == Some(pkid) => {
                return why.map_or(Ok(()), |why| Err(refused(why)));
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Sink for MqttSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        Ok(())
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let payloads = self.encoder.encode_with(rows, &[&self.topic])?;
        // The engine retries a failed result until it succeeds: skip what already went out.
        let done = self.progress.start(payloads.iter().map(|(payload, _)| payload.as_slice()));
        for (i, (payload, topic)) in payloads.iter().enumerate().skip(done) {
            let topic = &topic[0];
            if self.topic.is_dynamic()
                && let Err(why) = check_topic(topic)
            {
                return Err(ConnectorError::External(why));
            }
            if let Err(e) = self.send(i, topic, payload).await {
                self.progress.failed_at(i);
                return Err(e);
            }
        }
        self.progress.done();
        Ok(())
    }

    async fn collect_numbered(&mut self, sequence: u64, rows: &[Map]) -> Result<(), ConnectorError> {
        self.sequence = Some(sequence);
        let sent = self.collect(rows).await;
        self.sequence = None;
        sent
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(conn) = self.conn.take() {
            conn.disconnect().await;
        }
        self.link = None;
        Ok(())
    }
}

/// Checks a topic to publish to: not empty, no wildcards.
fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("mqtt action: the topic is empty".into());
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(format!("mqtt action: the topic {topic:?} cannot hold wildcards ('+', '#') when publishing"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(props: serde_json::Value) -> Result<Box<dyn Sink>, ConnectorError> {
        let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
        let context = MqttContext::for_tests(super::super::DEFAULT_SERVER);
        context.connections.put(connections::ConnectionDef {
            name: "plant".into(),
            kind: "mqtt".into(),
            props: serde_json::json!({"server": "tcp://10.1.1.1:1883", "username": "u", "password": "p"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            declared: false,
        });
        MqttSinkFactory(context).build(&SinkConfig {
            sink_type: "mqtt".into(),
            props,
            rule_id: "r".into(),
            ..Default::default()
        })
    }

    fn config_error(props: serde_json::Value) -> String {
        match build(props) {
            Err(ConnectorError::Config(m)) => m,
            Err(e) => panic!("expected a config error, got {e:?}"),
            Ok(_) => panic!("expected a config error, got a sink"),
        }
    }

    #[test]
    fn properties_are_checked() {
        use serde_json::json;
        assert!(build(json!({"topic": "a/b"})).is_ok());
        assert!(
            build(json!({"server": "tcp://h:1", "topic": "a", "qos": 2, "retained": true, "sendSingle": true,
                "clientId": "c", "username": "u", "password": "p", "format": "JSON", "protocolVersion": "5",
                "bufferLength": 1024}))
            .is_ok()
        );
        assert!(config_error(json!({})).contains("`topic`"));
        assert!(config_error(json!({"topic": "a/+"})).contains("wildcards"));
        assert!(build(json!({"topic": "a/{{.x}}"})).is_ok());
        assert!(config_error(json!({"topic": "a/{{.x"})).contains("topic"));
        assert!(config_error(json!({"topic": "a", "qos": 3})).contains("qos"));
        assert!(config_error(json!({"topic": "a", "qos": "1"})).contains("invalid type"));
        assert!(config_error(json!({"topic": "a", "server": "ws://h"})).contains("not supported yet"));
        assert!(
            config_error(json!({"topic": "a", "server": "tcp://h", "rootCaPath": "ca.pem"})).contains("TLS server")
        );
        assert!(build(json!({"topic": "a", "connectionSelector": "plant", "qos": 0})).is_ok());
        let error = config_error(json!({"topic": "a", "connectionSelector": "plant", "password": "x"}));
        assert!(error.contains("\"password\" belongs to the connection \"plant\""), "{error}");
        assert!(config_error(json!({"topic": "a", "connectionSelector": "nope"})).contains("no connection"));
        // The encoder's properties are checked too.
        assert!(config_error(json!({"topic": "a", "format": "custom"})).contains("not supported yet"));
        assert!(config_error(json!({"topic": "a", "dataTemplate": "{% if %}"})).contains("dataTemplate"));
    }
}
