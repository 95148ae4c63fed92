//! The `nats` source: a core subscription, a JetStream durable consumer
//! (`qos` 0) or a JetStream ordered consumer from the checkpoint's stream
//! sequence (`qos` ≥ 1). Module documentation: [`super`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_trait::async_trait;
use futures::StreamExt;
use oort_engine::{
    ConnectorError, ConnectorOption, Guarantee, Payload, Source, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, SourcePositions,
};
use tokio_util::sync::CancellationToken;

use super::{ConnectFailure, NatsContext, Target, check_subject};

/// First wait before connecting again.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Builds `nats` sources.
pub struct NatsSourceFactory(pub NatsContext);

/// Where a JetStream consumer without a position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deliver {
    All,
    New,
    Last,
}

/// A stream's options, checked.
#[derive(Debug, Clone)]
struct StreamOptions {
    connection: String,
    queue_group: Option<String>,
    jetstream: Option<String>,
    durable: String,
    deliver: Deliver,
}

impl StreamOptions {
    fn of(config: &SourceConfig) -> Result<Self, ConnectorError> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &str, message: String| ConnectorError::Option { key: key.into(), message };
        let connection = option("CONF_KEY").ok_or_else(|| {
            invalid("CONF_KEY", "a nats stream needs CONF_KEY, the named connection (type nats)".into())
        })?;
        let deliver = match option("DELIVER").map(str::to_ascii_lowercase).as_deref() {
            None | Some("all") => Deliver::All,
            Some("new") => Deliver::New,
            Some("last") => Deliver::Last,
            Some(other) => return Err(invalid("DELIVER", format!("nats: DELIVER is all, new or last, not {other:?}"))),
        };
        let options = StreamOptions {
            connection: connection.to_owned(),
            queue_group: option("QUEUE_GROUP").map(str::to_owned),
            jetstream: option("STREAM").map(str::to_owned),
            durable: option("DURABLE").map_or_else(|| format!("oort-{}", config.rule_id), str::to_owned),
            deliver,
        };
        if options.queue_group.is_some() && options.jetstream.is_some() {
            return Err(invalid("QUEUE_GROUP", "nats: QUEUE_GROUP is for core NATS, not with STREAM".into()));
        }
        let name_ok = |name: &str| !name.contains(['.', '*', '>', ' ', '/', '\\']);
        if let Some(bad) =
            [options.jetstream.as_deref(), Some(options.durable.as_str())].into_iter().flatten().find(|n| !name_ok(n))
        {
            return Err(invalid(
                "STREAM",
                format!("nats: {bad:?} cannot name a stream or consumer ('.', '*', '>', spaces)"),
            ));
        }
        Ok(options)
    }
}

impl SourceFactory for NatsSourceFactory {
    fn description(&self) -> &'static str {
        "Subscribes to a NATS subject: core NATS, with QUEUE_GROUP for a queue group (stateless rules only), or a JetStream STREAM, which replays from its checkpoint at qos 1 and 2."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(super::SOURCE_OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.build(config).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        check_subject(&config.datasource, true, "DATASOURCE")?;
        let options = StreamOptions::of(config)?;
        let target = self
            .0
            .target(&options.connection)
            .map_err(|e| ConnectorError::Option { key: "CONF_KEY".into(), message: format!("nats: {e}") })?;
        let replay = config.qos >= Guarantee::AtLeastOnce && options.jetstream.is_some();
        Ok(Box::new(NatsSource {
            target,
            subject: config.datasource.clone(),
            options,
            rule_id: config.rule_id.clone(),
            operator: format!("source_{}_0", config.stream),
            resume_after: replay.then_some(config.resume_after).flatten(),
            replay,
        }))
    }

    fn splits_input(&self, config: &SourceConfig) -> Option<String> {
        let group = config.options.get("QUEUE_GROUP").map(|g| g.trim()).filter(|g| !g.is_empty())?;
        Some(format!("a NATS queue group hands each message to one member of group {group:?}"))
    }

    fn positions(&self, config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        let options = StreamOptions::of(config)?;
        if config.qos < Guarantee::AtLeastOnce || options.jetstream.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(StreamSequences { after: config.resume_after.unwrap_or(0) })))
    }
}

/// A rule's hold on a JetStream stream: the stream keeps its messages (as
/// its retention allows), so the checkpoint's sequence is all it takes.
struct StreamSequences {
    after: u64,
}

#[async_trait]
impl SourcePositions for StreamSequences {
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn release(&self, _: u64) {}

    fn position(&self) -> Option<u64> {
        Some(self.after)
    }
}

struct NatsSource {
    target: Target,
    subject: String,
    options: StreamOptions,
    rule_id: String,
    operator: String,
    /// Read from just after this stream sequence (qos ≥ 1 over JetStream).
    resume_after: Option<u64>,
    /// Whether events carry their stream sequence as position.
    replay: bool,
}

/// How reading ended.
enum Ended {
    /// The rule stopped it.
    Cancelled,
    /// The subscription or consumer failed: read again after a pause.
    Failed(String),
}

#[async_trait]
impl Source for NatsSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let link = self.target.link(&self.rule_id, &self.operator)?;
        let dropped = Arc::new(AtomicU64::new(0));
        let server = self.target.server().to_owned();
        let mut backoff = FIRST_BACKOFF;
        let mut client = None;
        loop {
            let ended = match &client {
                None => match self.target.connect(&link, &dropped).await {
                    Ok(connected) => {
                        client = Some(connected);
                        continue;
                    }
                    Err(ConnectFailure::Refused(why)) => return Err(ConnectorError::External(format!("nats: {why}"))),
                    Err(ConnectFailure::Unreachable(why)) => Ended::Failed(why),
                },
                Some(client) => self.read(client, &out, &cancel, &dropped).await,
            };
            match ended {
                Ended::Cancelled => return Ok(()),
                Ended::Failed(why) => {
                    tracing::warn!(rule = %self.rule_id, server, error = %why, retry_in = ?backoff, "nats source: reading failed; trying again");
                    out.record_error(format!("nats {server}: {why}; trying again"));
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl NatsSource {
    /// Reads until the rule stops or reading fails.
    async fn read(
        &self,
        client: &async_nats::Client,
        out: &SourceOutput,
        cancel: &CancellationToken,
        dropped: &AtomicU64,
    ) -> Ended {
        let Some(stream) = &self.options.jetstream else { return self.read_core(client, out, cancel, dropped).await };
        let context = jetstream::new(client.clone());
        let stream = match context.get_stream(stream).await {
            Ok(stream) => stream,
            Err(e) => return Ended::Failed(format!("JetStream stream {stream:?}: {e}")),
        };
        let deliver = |after: Option<u64>| match (after, self.options.deliver) {
            (Some(after), _) => consumer::DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
            (None, Deliver::All) => consumer::DeliverPolicy::All,
            (None, Deliver::New) => consumer::DeliverPolicy::New,
            (None, Deliver::Last) => consumer::DeliverPolicy::Last,
        };
        if self.replay {
            // After a failure, from what the rule already has.
            let after = out.last_position().or(self.resume_after);
            let config = consumer::pull::OrderedConfig {
                filter_subject: self.subject.clone(),
                deliver_policy: deliver(after),
                ..Default::default()
            };
            let messages = match stream.create_consumer(config).await {
                Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match messages {
                Ok(messages) => self.forward(messages, out, cancel, false).await,
                Err(e) => Ended::Failed(format!("ordered consumer: {e}")),
            }
        } else {
            let config = consumer::pull::Config {
                durable_name: Some(self.options.durable.clone()),
                filter_subject: self.subject.clone(),
                ack_policy: consumer::AckPolicy::Explicit,
                deliver_policy: deliver(None),
                ..Default::default()
            };
            let messages = match stream.get_or_create_consumer(&self.options.durable, config).await {
                Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match messages {
                Ok(messages) => self.forward(messages, out, cancel, true).await,
                Err(e) => Ended::Failed(format!("durable consumer {:?}: {e}", self.options.durable)),
            }
        }
    }

    async fn read_core(
        &self,
        client: &async_nats::Client,
        out: &SourceOutput,
        cancel: &CancellationToken,
        dropped: &AtomicU64,
    ) -> Ended {
        let subscribed = match &self.options.queue_group {
            Some(group) => client.queue_subscribe(self.subject.clone(), group.clone()).await,
            None => client.subscribe(self.subject.clone()).await,
        };
        let mut subscriber = match subscribed {
            Ok(subscriber) => subscriber,
            Err(e) => return Ended::Failed(format!("cannot subscribe to {:?}: {e}", self.subject)),
        };
        loop {
            let message = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ended::Cancelled,
                message = subscriber.next() => message,
            };
            let Some(message) = message else { return Ended::Failed("the subscription ended".into()) };
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                out.record_dropped(lost);
                out.record_error(format!(
                    "nats: the client dropped {lost} message(s) of {:?}: the rule reads slower than they are published",
                    self.subject
                ));
            }
            let meta = BTreeMap::from([("subject".to_owned(), message.subject.to_string())]);
            let event = SourceEvent::new(Payload::Bytes(message.payload.to_vec()), Arc::new(meta));
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ended::Cancelled,
                sent = out.send(event) => if sent.is_err() {
                    return Ended::Cancelled;
                },
            }
        }
    }

    /// Hands a JetStream consumer's messages to the rule: with their stream
    /// sequence as position when replaying, acknowledged once handed when `ack`.
    async fn forward<S, E>(&self, mut messages: S, out: &SourceOutput, cancel: &CancellationToken, ack: bool) -> Ended
    where
        S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
        E: std::fmt::Display,
    {
        loop {
            let message = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ended::Cancelled,
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Ended::Failed(format!("JetStream: {e}")),
                None => return Ended::Failed("the JetStream consumer ended".into()),
            };
            let sequence = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => return Ended::Failed(format!("JetStream message without metadata: {e}")),
            };
            let meta = BTreeMap::from([
                ("subject".to_owned(), message.subject.to_string()),
                ("stream".to_owned(), self.options.jetstream.clone().unwrap_or_default()),
                ("sequence".to_owned(), sequence.to_string()),
            ]);
            let mut event = SourceEvent::new(Payload::Bytes(message.payload.to_vec()), Arc::new(meta));
            if self.replay {
                event.position = Some(sequence);
            }
            // A file or a stream reads at the rule's pace: wait for room rather than drop.
            let sent = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ended::Cancelled,
                sent = out.send_waiting(event) => sent,
            };
            if sent.is_err() {
                return Ended::Cancelled;
            }
            if ack && let Err(e) = message.ack().await {
                return Ended::Failed(format!("cannot acknowledge stream sequence {sequence}: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<StreamOptions, ConnectorError> {
        let config = SourceConfig {
            rule_id: "r1".into(),
            options: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        StreamOptions::of(&config)
    }

    #[test]
    fn stream_options_are_checked() {
        let error = options(&[]).unwrap_err().to_string();
        assert!(error.contains("needs CONF_KEY"), "{error}");
        let durable = options(&[("CONF_KEY", "bus"), ("STREAM", "ORDERS")]).unwrap();
        assert_eq!((durable.durable.as_str(), durable.deliver), ("oort-r1", Deliver::All));
        let new = options(&[("CONF_KEY", "bus"), ("STREAM", "S"), ("DELIVER", "NEW"), ("DURABLE", "d")]).unwrap();
        assert_eq!((new.durable.as_str(), new.deliver), ("d", Deliver::New));
        assert!(options(&[("CONF_KEY", "bus"), ("DELIVER", "first")]).is_err());
        assert!(options(&[("CONF_KEY", "bus"), ("STREAM", "S"), ("QUEUE_GROUP", "g")]).is_err());
        assert!(options(&[("CONF_KEY", "bus"), ("STREAM", "a.b")]).is_err());
    }
}
