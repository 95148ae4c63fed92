//! The `kafka` sink: each payload produced to a topic, with a key and
//! headers from templates, acknowledged by Kafka before the result counts as
//! delivered. Module documentation: [`super`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use super::client::{LinkContext, STATISTICS_INTERVAL_MS};
use super::source::check_topic;
use super::{CONNECTION_PROPS, KafkaConfig, KafkaContext, Target};
use crate::connections::Origin;
use crate::encode::{DynamicProp, Progress, SinkEncoder};

/// How long Kafka may take to acknowledge a message.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The header each message carries its result's key in.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Builds `kafka` sinks.
pub struct KafkaSinkFactory(pub KafkaContext);

/// The kafka sink's own properties; the common ones are the encoder's.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "",
        description: "The named connection (type kafka); else brokers and the SASL properties.",
    },
    ConnectorOption {
        key: "brokers",
        kind: OptionKind::Text,
        default: "",
        description: "Bootstrap servers host:port,host:port of the action's own (egress policy applies).",
    },
    ConnectorOption {
        key: "topic",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The topic results are produced to.",
    },
    ConnectorOption {
        key: "key",
        kind: OptionKind::Text,
        default: "",
        description: "The message key: a template such as {{.deviceId}}, or a constant.",
    },
    ConnectorOption {
        key: "headers",
        kind: OptionKind::Text,
        default: "",
        description: "A map of header name to value (templates allowed).",
    },
    ConnectorOption {
        key: "requiredACKs",
        kind: OptionKind::OneOf(&["-1", "1", "0"]),
        default: "-1",
        description: "-1: every in-sync replica (idempotent producer); 1: the leader; 0: none.",
    },
    ConnectorOption {
        key: "compression",
        kind: OptionKind::OneOf(&["none", "gzip", "snappy", "lz4", "zstd"]),
        default: "none",
        description: "Compression of the produced batches.",
    },
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Props {
    #[serde(default)]
    connection_selector: Option<String>,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "all_replicas", rename = "requiredACKs")]
    required_acks: i64,
    #[serde(default)]
    compression: Option<String>,
}

fn all_replicas() -> i64 {
    -1
}

impl SinkFactory for KafkaSinkFactory {
    fn description(&self) -> &'static str {
        "Produces results to a Kafka topic, with a key and headers, over TLS and SASL when the connection says."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(crate::connections::with_connection_props(
            [OPTIONS, crate::encode::COMMON_OPTIONS].concat(),
            CONNECTION_PROPS,
        ))
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let props: Props = serde_json::from_value(serde_json::Value::Object(config.props.clone()))
            .map_err(|e| ConnectorError::Config(format!("kafka action: {e}")))?;
        let target = match &props.connection_selector {
            Some(name) => {
                if let Some(key) = config.props.keys().find(|k| CONNECTION_PROPS.contains(&k.as_str())) {
                    return Err(ConnectorError::Config(format!(
                        "kafka action: {key:?} belongs to the connection {name:?}: set it there, or leave out \
                         connectionSelector"
                    )));
                }
                self.0.target(name)?
            }
            None if config.props.contains_key("brokers") => {
                let own = KafkaConfig::from_props(&config.props, &[], "kafka action")?;
                self.0.target_of(own, Origin { connection: String::new(), trusted: false })?
            }
            None => {
                return Err(ConnectorError::Config(
                    "a kafka action needs connectionSelector (a named connection) or brokers".into(),
                ));
            }
        };
        check_topic(&props.topic, "topic")?;
        let acks = match props.required_acks {
            -1 => "all",
            1 => "1",
            0 => "0",
            other => {
                return Err(ConnectorError::Config(format!("kafka action: requiredACKs is -1, 1 or 0, not {other}")));
            }
        };
        let compression = match props.compression.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "none") => "none",
            Some(c @ ("gzip" | "snappy" | "lz4" | "zstd")) => match c {
                "gzip" => "gzip",
                "snappy" => "snappy",
                "lz4" => "lz4",
                _ => "zstd",
            },
            Some(other) => {
                return Err(ConnectorError::Config(format!(
                    "kafka action: compression is none, gzip, snappy, lz4 or zstd, not {other:?}"
                )));
            }
        };
        let mut templates = vec![DynamicProp::new("key", props.key.as_deref().unwrap_or_default())?];
        let mut header_names = Vec::new();
        for (name, value) in &props.headers {
            header_names.push(name.clone());
            templates.push(DynamicProp::new("headers", value)?);
        }
        Ok(Box::new(KafkaSink {
            target,
            topic: props.topic,
            has_key: props.key.is_some_and(|k| !k.is_empty()),
            templates,
            header_names,
            acks,
            compression,
            // `compression` is Kafka's here, not the encoder's (which refuses it).
            encoder: SinkEncoder::of(&SinkConfig { props: without(&config.props, "compression"), ..config.clone() })?,
            rule_id: config.rule_id.clone(),
            operator: format!("sink_kafka_{}", config.index),
            producer: None,
            progress: Progress::default(),
            sequence: None,
        }))
    }
}

fn without(
    props: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> serde_json::Map<String, serde_json::Value> {
    props.iter().filter(|(k, _)| k.as_str() != key).map(|(k, v)| (k.clone(), v.clone())).collect()
}

struct KafkaSink {
    target: Target,
    topic: String,
    has_key: bool,
    /// The key's template, then each header's.
    templates: Vec<DynamicProp>,
    header_names: Vec<String>,
    acks: &'static str,
    compression: &'static str,
    encoder: SinkEncoder,
    rule_id: String,
    operator: String,
    producer: Option<FutureProducer<LinkContext>>,
    progress: Progress,
    sequence: Option<u64>,
}

impl KafkaSink {
    async fn producer(&mut self) -> Result<&FutureProducer<LinkContext>, ConnectorError> {
        if self.producer.is_none() {
            self.target.check_egress().await.map_err(|why| ConnectorError::External(format!("kafka: {why}")))?;
            let link = self.target.origin.link(&self.target.registry, &self.rule_id, &self.operator)?;
            let mut config = self.target.client_config();
            config
                .set("acks", self.acks)
                .set("enable.idempotence", if self.acks == "all" { "true" } else { "false" })
                .set("compression.type", self.compression)
                .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
                .set("linger.ms", "5")
                .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
            let producer = config
                .create_with_context(LinkContext::new(link))
                .map_err(|e| ConnectorError::Config(format!("kafka: {e}")))?;
            self.producer = Some(producer);
        }
        self.producer.as_ref().ok_or_else(|| ConnectorError::External("kafka: no producer".into()))
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.producer().await.map(drop)
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let props: Vec<&DynamicProp> = self.templates.iter().collect();
        let payloads = self.encoder.encode_with(rows, &props)?;
        let done = self.progress.start(payloads.iter().map(|(payload, _)| payload.as_slice()));
        let ids: Vec<Option<String>> = (0..payloads.len())
            .map(|i| self.sequence.map(|sequence| format!("{}:{sequence}:{i}", self.rule_id)))
            .collect();
        let (topic, has_key, names) = (self.topic.clone(), self.has_key, self.header_names.clone());
        let producer = self.producer().await?;
        // Every payload of the result is in flight at once; each is acknowledged on its own.
        let sends = payloads.iter().zip(&ids).enumerate().skip(done).map(|(i, ((payload, values), id))| {
            let mut headers = OwnedHeaders::new();
            if let Some(id) = id {
                headers = headers.insert(Header { key: IDEMPOTENCY_KEY, value: Some(id.as_bytes()) });
            }
            for (name, value) in names.iter().zip(&values[1..]) {
                headers = headers.insert(Header { key: name, value: Some(value.as_bytes()) });
            }
            let mut record = FutureRecord::to(&topic).payload(payload.as_slice()).headers(headers);
            if has_key {
                record = record.key(values[0].as_bytes());
            }
            async move { (i, producer.send(record, DELIVERY_TIMEOUT).await) }
        });
        let results = join_all(sends).await;
        if let Some((i, Err((error, _)))) = results.into_iter().find(|(_, r)| r.is_err()) {
            self.progress.failed_at(i);
            return Err(ConnectorError::External(format!(
                "kafka: producing to {:?} on {}: {error}",
                self.topic,
                self.target.brokers()
            )));
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
        if let Some(producer) = self.producer.take() {
            // Flushing and closing may block on the network.
            let _ = tokio::task::spawn_blocking(move || {
                let _ = rdkafka::producer::Producer::flush(&producer, DELIVERY_TIMEOUT);
            })
            .await;
        }
        Ok(())
    }
}
