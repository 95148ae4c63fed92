//! What a kafka client reports: librdkafka's statistics (every second) say
//! whether a broker is up, its error callback why not; both go to the
//! client's entry among its connection's clients. An authentication failure
//! is kept apart: retrying will not fix it, so the source fails on it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::connections::{AssignedPartition, ClientLink, LinkState};

/// How often librdkafka reports its statistics, in milliseconds.
pub(crate) const STATISTICS_INTERVAL_MS: &str = "1000";

/// The context of a kafka client: its link, and the failure that should stop it.
pub(crate) struct LinkContext {
    link: Arc<ClientLink>,
    last_error: Mutex<Option<String>>,
    fatal: Mutex<Option<String>>,
    /// A consumer's partitions assigned since their last message was read.
    fresh: Mutex<HashSet<i32>>,
}

impl LinkContext {
    pub(crate) fn new(link: Arc<ClientLink>) -> Self {
        link.set(LinkState::Connecting);
        Self { link, last_error: Mutex::default(), fatal: Mutex::default(), fresh: Mutex::default() }
    }

    /// Whether `partition` was assigned to the consumer since its last
    /// message was read (the first call after the assignment says so).
    pub(crate) fn take_fresh(&self, partition: i32) -> bool {
        self.fresh.lock().unwrap_or_else(|p| p.into_inner()).remove(&partition)
    }

    /// A failure that retrying will not fix (credentials), if one happened.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The part of librdkafka's statistics this reads.
#[derive(serde::Deserialize)]
struct Statistics {
    #[serde(default)]
    brokers: HashMap<String, Broker>,
    #[serde(default)]
    topics: HashMap<String, Topic>,
}

#[derive(serde::Deserialize)]
struct Broker {
    state: String,
}

#[derive(serde::Deserialize)]
struct Topic {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(serde::Deserialize)]
struct PartitionStatistics {
    partition: i32,
    /// Whether the consumer is assigned it (not only knows of it).
    #[serde(default)]
    desired: bool,
    /// -1 while unknown.
    #[serde(default = "unknown")]
    consumer_lag: i64,
}

fn unknown() -> i64 {
    -1
}

impl Statistics {
    /// The partitions this consumer is assigned, by topic and number.
    fn assigned(&self) -> Vec<AssignedPartition> {
        let mut assigned: Vec<AssignedPartition> = (self.topics.iter())
            .flat_map(|(topic, t)| t.partitions.values().map(move |p| (topic, p)))
            // -1 is librdkafka's own entry for messages not yet given a partition.
            .filter(|(_, p)| p.desired && p.partition >= 0)
            .map(|(topic, p)| AssignedPartition {
                topic: topic.clone(),
                partition: p.partition,
                lag: (p.consumer_lag >= 0).then_some(p.consumer_lag),
            })
            .collect();
        assigned.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        assigned
    }
}

impl ClientContext for LinkContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(statistics) = serde_json::from_slice::<Statistics>(statistics) else { return };
        self.link.set_partitions(statistics.assigned());
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.link.set(LinkState::Connected);
        } else {
            let why = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            self.link.set(why.map_or(LinkState::Connecting, LinkState::Disconnected));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        let message = format!("{error}: {reason}");
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        ) {
            *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        self.link.set(LinkState::Disconnected(message));
    }
}

impl ConsumerContext for LinkContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
            fresh.extend(assigned.elements().iter().map(|e| e.partition()));
        }
    }
}
