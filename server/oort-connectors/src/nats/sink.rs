//! The `nats` sink: each payload published on a subject, with its result's
//! `Nats-Msg-Id`; through JetStream, acknowledged by the stream. Module
//! documentation: [`super`].

use std::sync::Arc;

use async_nats::HeaderMap;
use async_trait::async_trait;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory};
use serde::Deserialize;

use super::{ConnectFailure, NatsContext, Target, check_subject};
use crate::connections::ClientLink;
use crate::encode::{DynamicProp, Progress, SinkEncoder};

/// Builds `nats` sinks.
pub struct NatsSinkFactory(pub NatsContext);

/// The nats sink's own properties; the common ones are the encoder's.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The named connection (type nats) of the server.",
    },
    ConnectorOption {
        key: "subject",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The subject results are published on, no wildcards; a template such as alerts.{{.site}} for a subject per payload.",
    },
    ConnectorOption {
        key: "jetstream",
        kind: OptionKind::Bool,
        default: "false",
        description: "Publish through JetStream and wait for the stream's acknowledgement of each payload.",
    },
    ConnectorOption {
        key: "msgId",
        kind: OptionKind::Text,
        default: "",
        description: "A template of each payload's Nats-Msg-Id, such as {{.device}}@{{.start}}: the same for a window's result whichever server or run emits it, so a JetStream stream keeps it once (within its duplicate window). Default: <rule id>:<result number>:<payload>, for a rule that restores its checkpoints.",
    },
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Props {
    #[serde(default)]
    connection_selector: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    jetstream: bool,
    #[serde(default)]
    msg_id: String,
}

impl SinkFactory for NatsSinkFactory {
    fn description(&self) -> &'static str {
        "Publishes results to a NATS subject, with a message id JetStream drops replayed duplicates by; with jetstream, waits for each acknowledgement."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some([OPTIONS, crate::encode::COMMON_OPTIONS].concat())
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let props: Props = serde_json::from_value(serde_json::Value::Object(config.props.clone()))
            .map_err(|e| ConnectorError::Config(format!("nats action: {e}")))?;
        if props.connection_selector.is_empty() {
            return Err(ConnectorError::Config(
                "a nats action needs connectionSelector, the named connection (type nats)".into(),
            ));
        }
        let subject = DynamicProp::new("subject", &props.subject)?;
        if !subject.is_dynamic() {
            check_subject(subject.text(), false, "subject")?;
        }
        let msg_id = (!props.msg_id.is_empty()).then(|| DynamicProp::new("msgId", &props.msg_id)).transpose()?;
        if msg_id.as_ref().is_some_and(|id| !id.is_dynamic()) {
            return Err(ConnectorError::Config(
                "nats action: msgId must be a template of the result (such as {{.device}}@{{.start}}): one id for \
                 every payload would make JetStream keep only the first"
                    .into(),
            ));
        }
        Ok(Box::new(NatsSink {
            target: self.0.target(&props.connection_selector)?,
            subject,
            msg_id,
            jetstream: props.jetstream,
            encoder: SinkEncoder::of(config)?,
            rule_id: config.rule_id.clone(),
            operator: format!("sink_nats_{}", config.index),
            link: None,
            client: None,
            progress: Progress::default(),
            sequence: None,
        }))
    }
}

struct NatsSink {
    target: Target,
    subject: DynamicProp,
    /// The template of each payload's `Nats-Msg-Id`, if the action gives one.
    msg_id: Option<DynamicProp>,
    jetstream: bool,
    encoder: SinkEncoder,
    rule_id: String,
    operator: String,
    link: Option<Arc<ClientLink>>,
    /// The client, once connected; it reconnects by itself.
    client: Option<async_nats::Client>,
    /// How far the current result got, so that a retry sends only the rest.
    progress: Progress,
    /// The number of the result being sent, for its payloads' ids.
    sequence: Option<u64>,
}

impl NatsSink {
    async fn client(&mut self) -> Result<async_nats::Client, ConnectorError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let link = match &self.link {
            Some(link) => Arc::clone(link),
            None => Arc::clone(self.link.insert(self.target.link(&self.rule_id, &self.operator)?)),
        };
        // A sink subscribes to nothing: no message of its can be dropped.
        let client = self.target.connect(&link, &Arc::default()).await.map_err(|failure| match failure {
            ConnectFailure::Refused(why) | ConnectFailure::Unreachable(why) => {
                ConnectorError::External(format!("nats: {why}"))
            }
        })?;
        Ok(self.client.insert(client).clone())
    }

    async fn send(&mut self, index: usize, props: &[String], payload: &[u8]) -> Result<(), ConnectorError> {
        let client = self.client().await?;
        let subject = &props[0];
        let mut headers = HeaderMap::new();
        match (props.get(1), self.sequence) {
            (Some(id), _) => headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str()),
            (None, Some(sequence)) => headers
                .insert(async_nats::header::NATS_MESSAGE_ID, format!("{}:{sequence}:{index}", self.rule_id).as_str()),
            (None, None) => {}
        }
        let subject = subject.to_owned();
        let failed = |e: &dyn std::fmt::Display| {
            ConnectorError::External(format!("nats: publishing on {subject:?} to {}: {e}", self.target.server()))
        };
        if self.jetstream {
            let context = async_nats::jetstream::new(client);
            let ack = context
                .publish_with_headers(subject.clone(), headers, payload.to_vec().into())
                .await
                .map_err(|e| failed(&e))?;
            ack.await.map_err(|e| failed(&e))?;
        } else {
            client
                .publish_with_headers(subject.clone(), headers, payload.to_vec().into())
                .await
                .map_err(|e| failed(&e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for NatsSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.client().await.map(drop)
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let props: Vec<&DynamicProp> = std::iter::once(&self.subject).chain(&self.msg_id).collect();
        let payloads = self.encoder.encode_with(rows, &props)?;
        let done = self.progress.start(payloads.iter().map(|(payload, _)| payload.as_slice()));
        for (i, (payload, props)) in payloads.iter().enumerate().skip(done) {
            if self.subject.is_dynamic() {
                check_subject(&props[0], false, "subject")?;
            }
            if let Err(e) = self.send(i, props, payload).await {
                self.progress.failed_at(i);
                return Err(e);
            }
        }
        if !self.jetstream {
            // Core NATS has no acknowledgement: a round trip says the server has it all.
            let client = self.client().await?;
            if let Err(e) = client.flush().await {
                // Whether any of them arrived is not known: send them all again.
                self.progress.failed_at(0);
                return Err(ConnectorError::External(format!("nats: flushing to {}: {e}", self.target.server())));
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
        if let Some(client) = self.client.take() {
            let _ = client.drain().await;
        }
        self.link = None;
        Ok(())
    }
}
