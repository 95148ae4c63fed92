//! The `kafka` source: a consumer in a group; at `qos` ≥ 1, each
//! partition's offsets saved with the rule's checkpoints and committed once
//! they are. Module documentation: [`super`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, ConnectorOption, Guarantee, MESSAGE_KEY_META, PARTITION_META, PARTITION_START_META, Partitioning,
    Payload, Source, SourceConfig, SourceEvent, SourceFactory, SourceOutput, SourcePositions,
};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::client::{LinkContext, STATISTICS_INTERVAL_MS};
use super::{KafkaContext, Target};
use crate::holds::{Pending, RuleHolds};

type KafkaConsumer = StreamConsumer<LinkContext>;

/// Builds `kafka` sources.
pub struct KafkaSourceFactory {
    context: KafkaContext,
    /// The holds of rules that replay, by rule id.
    holds: RuleHolds<KafkaHold>,
}

impl KafkaSourceFactory {
    /// Sources whose connections are those of `context`.
    pub fn new(context: KafkaContext) -> Self {
        Self { context, holds: RuleHolds::default() }
    }

    fn hold(&self, rule_id: &str) -> Option<Arc<KafkaHold>> {
        self.holds.get(rule_id)
    }
}

/// A stream's options, checked.
#[derive(Debug, Clone)]
struct StreamOptions {
    connection: String,
    group_id: String,
    protocol: &'static str,
    reset: &'static str,
}

impl StreamOptions {
    fn of(config: &SourceConfig) -> Result<Self, ConnectorError> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &str, message: String| ConnectorError::Option { key: key.into(), message };
        let connection = option("CONF_KEY").ok_or_else(|| {
            invalid("CONF_KEY", "a kafka stream needs CONF_KEY, the named connection (type kafka)".into())
        })?;
        let protocol = match option("GROUP_PROTOCOL").map(str::to_ascii_lowercase).as_deref() {
            None | Some("consumer") => "consumer",
            Some("classic") => "classic",
            Some(other) => return Err(invalid("GROUP_PROTOCOL", format!("kafka: consumer or classic, not {other:?}"))),
        };
        let reset = match option("OFFSET_RESET").map(str::to_ascii_lowercase).as_deref() {
            None | Some("latest") => "latest",
            Some("earliest") => "earliest",
            Some(other) => return Err(invalid("OFFSET_RESET", format!("kafka: latest or earliest, not {other:?}"))),
        };
        let group_id = option("GROUP_ID").map_or_else(|| format!("oort-{}", config.rule_id), str::to_owned);
        Ok(Self { connection: connection.to_owned(), group_id, protocol, reset })
    }
}

/// Checks a topic name as Kafka does.
pub(crate) fn check_topic(topic: &str, what: &str) -> Result<(), ConnectorError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!(
            "kafka: invalid {what} {topic:?}: 1 to 249 letters, digits, '.', '_' or '-'"
        )))
    }
}

impl SourceFactory for KafkaSourceFactory {
    fn description(&self) -> &'static str {
        "Consumes a Kafka topic in a consumer group (GROUP_ID); at qos 1 and 2 the offsets are those of the rule's checkpoints. DATASOURCE is the topic."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(super::SOURCE_OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.build(config).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        check_topic(&config.datasource, "DATASOURCE (the topic)")?;
        let options = StreamOptions::of(config)?;
        let target = self
            .context
            .target(&options.connection)
            .map_err(|e| ConnectorError::Option { key: "CONF_KEY".into(), message: format!("kafka: {e}") })?;
        let hold = (config.qos >= Guarantee::AtLeastOnce).then(|| self.hold(&config.rule_id)).flatten();
        let restored = match (&hold, &config.resume_state) {
            (Some(_), Some(state)) => decode_offsets(state)?,
            _ => BTreeMap::new(),
        };
        Ok(Box::new(KafkaSource {
            target,
            topic: config.datasource.clone(),
            options,
            rule_id: config.rule_id.clone(),
            operator: format!("source_{}_0", config.stream),
            last_position: config.resume_after.unwrap_or(0),
            marks_partition_starts: config.marks_partition_starts,
            restored,
            hold,
            registry: Arc::clone(&self.context.connections),
        }))
    }

    fn partitioning(&self, config: &SourceConfig) -> Option<Partitioning> {
        let key = config.options.get("PARTITION_KEY").map(|k| k.trim()).filter(|k| !k.is_empty());
        Some(key.map_or(Partitioning::ByMessage, |key| Partitioning::ByKey(key.to_owned())))
    }

    fn positions(&self, config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        if config.qos < Guarantee::AtLeastOnce {
            return Ok(None);
        }
        let base = config.resume_state.as_deref().map(decode_offsets).transpose()?.unwrap_or_default();
        let hold = Arc::new(KafkaHold {
            after: config.resume_after.unwrap_or(0),
            state: Mutex::new(HoldState { base, ..HoldState::default() }),
        });
        self.holds.insert(&config.rule_id, &hold);
        Ok(Some(hold))
    }
}

/// A checkpoint's offsets: each partition's next offset to read.
fn decode_offsets(state: &[u8]) -> Result<BTreeMap<i32, i64>, ConnectorError> {
    let pairs: Vec<(i32, i64)> = serde_json::from_slice(state)
        .map_err(|e| ConnectorError::Config(format!("kafka: the checkpoint's offsets do not decode: {e}")))?;
    Ok(pairs.into_iter().collect())
}

/// A rule's hold on its kafka source: which partition offset each position
/// handed to the rule was, so that a checkpoint can save, and then commit,
/// each partition's next offset.
pub(crate) struct KafkaHold {
    after: u64,
    state: Mutex<HoldState>,
}

#[derive(Default)]
struct HoldState {
    /// Each partition's next offset, as of the last released position.
    base: BTreeMap<i32, i64>,
    /// (position, partition, offset) handed to the rule since.
    pending: Pending<(i32, i64)>,
    /// The running consumer, to commit with.
    consumer: Option<(Weak<KafkaConsumer>, String)>,
    /// For a rule that restarts from its source: at a checkpoint's position,
    /// each partition's first offset its windows still hold ([`SourcePositions::hold_back`]).
    held_back: VecDeque<(u64, BTreeMap<i32, i64>)>,
}

impl HoldState {
    fn offsets_at(&self, position: u64) -> BTreeMap<i32, i64> {
        let mut offsets = self.base.clone();
        for &(partition, offset) in self.pending.up_to(position) {
            offsets.insert(partition, offset + 1);
        }
        offsets
    }
}

impl KafkaHold {
    /// Notes what position `position` was. Every one is kept until a checkpoint
    /// covers it (24 bytes each): any of them may end the next checkpoint.
    fn record(&self, position: u64, partition: i32, offset: i64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).pending.push(position, (partition, offset));
    }
}

#[async_trait]
impl SourcePositions for KafkaHold {
    /// The broker keeps the messages: nothing to do.
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The checkpoint is saved: its offsets may be committed to the group,
    /// or, for a rule that restarts from its source, those of the oldest
    /// events its windows held then.
    fn release(&self, position: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut held_back = None;
        while state.held_back.front().is_some_and(|(at, _)| *at <= position) {
            held_back = state.held_back.pop_front().map(|(_, offsets)| offsets);
        }
        state.base = state.offsets_at(position);
        state.pending.release(position);
        let commit = held_back.unwrap_or_else(|| state.base.clone());
        let Some((consumer, topic)) = &state.consumer else { return };
        let Some(consumer) = consumer.upgrade() else { return };
        // Only the partitions the group assigns this consumer now: it may not commit others'.
        let assigned = consumer.assignment().map(|a| a.elements().iter().map(|e| e.partition()).collect::<Vec<_>>());
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in &commit {
            if assigned.as_ref().is_ok_and(|a| !a.contains(&partition)) {
                continue;
            }
            if list.add_partition_offset(topic, partition, Offset::Offset(offset)).is_err() {
                return;
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(%error, topic, "kafka: committing the checkpoint's offsets failed; a restart reads more and drops it");
        }
    }

    fn position(&self) -> Option<u64> {
        Some(self.after)
    }

    fn still_reads(&self, partition: &str) -> bool {
        // Only a partition known to be another consumer's is let go: while the
        // consumer restarts, or its assignment cannot be read, the windows are
        // kept (dropping them while their offsets may yet be committed would
        // lose them); a partition assigned again is marked, and restarts then.
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(consumer) = state.consumer.as_ref().and_then(|(c, _)| c.upgrade()) else { return true };
        let Ok(partition) = partition.parse::<i32>() else { return true };
        consumer.assignment().map_or(true, |a| a.elements().iter().any(|e| e.partition() == partition))
    }

    fn hold_back(&self, position: u64, held: &mut dyn Iterator<Item = &BTreeMap<String, String>>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut offsets = state.offsets_at(position);
        let number = |meta: &BTreeMap<String, String>, key: &str| meta.get(key).and_then(|v| v.parse::<i64>().ok());
        for meta in held {
            let (Some(partition), Some(offset)) = (number(meta, PARTITION_META), number(meta, "offset")) else {
                continue;
            };
            let Ok(partition) = i32::try_from(partition) else { continue };
            offsets.entry(partition).and_modify(|next| *next = (*next).min(offset)).or_insert(offset);
        }
        state.held_back.push_back((position, offsets));
    }

    fn resume_state(&self, position: u64) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let pairs: Vec<(i32, i64)> = state.offsets_at(position).into_iter().collect();
        serde_json::to_vec(&pairs).ok()
    }
}

struct KafkaSource {
    target: Target,
    topic: String,
    options: StreamOptions,
    rule_id: String,
    operator: String,
    /// The position of the last event handed to the rule.
    last_position: u64,
    /// Marks the first message of each partition assigned ([`SourceConfig::marks_partition_starts`]).
    marks_partition_starts: bool,
    /// The checkpoint's offsets: what lies before them the rule has.
    restored: BTreeMap<i32, i64>,
    hold: Option<Arc<KafkaHold>>,
    registry: Arc<crate::connections::Connections>,
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(mut self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        self.target.check_egress().await.map_err(|why| ConnectorError::Config(format!("kafka: {why}")))?;
        let link = self.target.origin.link(&self.registry, &self.rule_id, &self.operator)?;
        let mut config = self.target.client_config();
        config
            .set("group.id", &self.options.group_id)
            .set("group.protocol", self.options.protocol)
            .set("auto.offset.reset", self.options.reset)
            .set("enable.auto.commit", if self.hold.is_some() { "false" } else { "true" })
            .set("enable.auto.offset.store", "false")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let consumer: Arc<KafkaConsumer> = Arc::new(
            config
                .create_with_context(LinkContext::new(link))
                .map_err(|e| ConnectorError::Config(format!("kafka: {e}")))?,
        );
        consumer
            .subscribe(&[&self.topic])
            .map_err(|e| ConnectorError::External(format!("kafka: cannot subscribe to {:?}: {e}", self.topic)))?;
        if let Some(hold) = &self.hold {
            hold.state.lock().unwrap_or_else(|p| p.into_inner()).consumer =
                Some((Arc::downgrade(&consumer), self.topic.clone()));
        }
        let result = self.read(&consumer, &out, &cancel).await;
        // Closing leaves the group (and commits the stored offsets at qos 0): it may block.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        result
    }
}

impl KafkaSource {
    async fn read(
        &mut self,
        consumer: &KafkaConsumer,
        out: &SourceOutput,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        loop {
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                received = consumer.recv() => received,
            };
            let message = match received {
                Ok(message) => message,
                Err(error) => {
                    if let Some(fatal) = consumer.context().fatal() {
                        return Err(ConnectorError::External(format!("kafka {}: {fatal}", self.target.brokers())));
                    }
                    // A fatal error ends this consumer: the source fails, and is started anew.
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Err(ConnectorError::External(format!("kafka {}: {reason}", self.target.brokers())));
                    }
                    out.record_error(format!("kafka {}: {error}", self.target.brokers()));
                    continue;
                }
            };
            let (partition, offset) = (message.partition(), message.offset());
            if self.restored.get(&partition).is_some_and(|next| offset < *next) {
                continue; // the checkpoint already has it
            }
            let mut meta = BTreeMap::from([
                ("topic".to_owned(), message.topic().to_owned()),
                (PARTITION_META.to_owned(), partition.to_string()),
                ("offset".to_owned(), offset.to_string()),
            ]);
            if let Some(key) = message.key() {
                meta.insert(MESSAGE_KEY_META.to_owned(), String::from_utf8_lossy(key).into_owned());
            }
            if let Some(ms) = message.timestamp().to_millis() {
                meta.insert("timestamp".to_owned(), ms.to_string());
            }
            if self.marks_partition_starts && consumer.context().take_fresh(partition) {
                meta.insert(PARTITION_START_META.to_owned(), offset.to_string());
            }
            let payload = message.payload().unwrap_or_default().to_vec();
            drop(message);
            let mut event = SourceEvent::new(Payload::Bytes(payload), Arc::new(meta));
            if let Some(hold) = &self.hold {
                self.last_position += 1;
                event.position = Some(self.last_position);
                hold.record(self.last_position, partition, offset);
            }
            // A topic is read at the rule's pace: wait for room rather than drop.
            let sent = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                sent = out.send_waiting(event) => sent,
            };
            if sent.is_err() {
                return Ok(());
            }
            if self.hold.is_none()
                // librdkafka stores (and commits) the offset after this one.
                && let Err(error) = consumer.store_offset(&self.topic, partition, offset)
            {
                out.record_error(format!("kafka: cannot store offset {offset} of partition {partition}: {error}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_saves_each_partitions_next_offset() {
        let hold = KafkaHold { after: 0, state: Mutex::default() };
        for (position, partition, offset) in [(1, 0, 10), (2, 0, 11), (3, 1, 5), (4, 0, 12), (5, 1, 6)] {
            hold.record(position, partition, offset);
        }
        let at = |p| decode_offsets(&hold.resume_state(p).unwrap()).unwrap();
        assert_eq!(at(2), BTreeMap::from([(0, 12)]));
        assert_eq!(at(3), BTreeMap::from([(0, 12), (1, 6)]));
        assert_eq!(at(5), BTreeMap::from([(0, 13), (1, 7)]));
        hold.release(3);
        assert_eq!(at(3), BTreeMap::from([(0, 12), (1, 6)]), "kept as base");
        assert_eq!(hold.state.lock().unwrap().pending.len(), 2);
        assert_eq!(at(4), BTreeMap::from([(0, 13), (1, 6)]));
        assert_eq!(at(5), BTreeMap::from([(0, 13), (1, 7)]));
    }

    #[test]
    fn a_rule_that_restarts_from_its_source_commits_the_oldest_offsets_its_windows_hold() {
        let hold = KafkaHold { after: 0, state: Mutex::default() };
        for (position, partition, offset) in [(1, 0, 10), (2, 1, 5), (3, 0, 11), (4, 1, 6), (5, 2, 0)] {
            hold.record(position, partition, offset);
        }
        let meta = |partition: i32, offset: i64| {
            BTreeMap::from([("partition".to_owned(), partition.to_string()), ("offset".to_owned(), offset.to_string())])
        };
        // At position 4 the windows still hold partition 1's offset 5; partition 0's are all done.
        let held = [meta(1, 5), meta(1, 6)];
        hold.hold_back(4, &mut held.iter());
        let state = hold.state.lock().unwrap();
        assert_eq!(state.held_back[0], (4, BTreeMap::from([(0, 12), (1, 5)])));
        drop(state);
        hold.release(4);
        let state = hold.state.lock().unwrap();
        assert!(state.held_back.is_empty());
        assert_eq!(state.base, BTreeMap::from([(0, 12), (1, 7)]), "what later positions count from");
    }

    #[test]
    fn options_and_topics_are_checked() {
        let config = |pairs: &[(&str, &str)]| SourceConfig {
            rule_id: "r".into(),
            options: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        assert!(StreamOptions::of(&config(&[])).unwrap_err().to_string().contains("needs CONF_KEY"));
        let options = StreamOptions::of(&config(&[("CONF_KEY", "c")])).unwrap();
        assert_eq!((options.group_id.as_str(), options.protocol, options.reset), ("oort-r", "consumer", "latest"));
        assert!(StreamOptions::of(&config(&[("CONF_KEY", "c"), ("OFFSET_RESET", "first")])).is_err());
        check_topic("orders.v1_a-b", "topic").unwrap();
        for bad in ["", "a b", "a/b", "..", &"x".repeat(250)] {
            assert!(check_topic(bad, "topic").is_err(), "{bad}");
        }
    }
}
