//! [`TopicBus`]: in-process publish/subscribe by exact topic name.
//!
//! Each subscriber has its own bounded queue. A publisher moves an event into
//! the queue of a topic's only subscriber (and clones it for the others), and
//! waits while a queue is full: backpressure, never loss. A broadcast channel
//! would clone every event for every reader, and could only drop what a slow
//! reader has not taken yet.
//!
//! A bus may keep [`Journals`]: then, while a rule whose `qos` asks for at
//! least once reads a topic, what is published on it is journaled first, and
//! that rule's [`BusSource`] replays the journal from its checkpoint before it
//! reads live events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oort_engine::{ConnectorError, Guarantee, SourceConfig, SourceEvent, SourceOutput, SourcePositions};
use tokio::sync::mpsc;

use crate::journal::{Journal, JournalError, Journals};

/// Events a subscriber's queue holds before its publishers wait.
const CAPACITY: usize = 4096;

/// Most events a bus source takes from its queue at once.
const FORWARD_BATCH: usize = 256;

/// Topics, each with its subscribers, created on first use.
#[derive(Default)]
pub struct TopicBus {
    topics: Mutex<HashMap<String, Arc<Subscribers>>>,
    /// Where topics read by rules with qos >= 1 are journaled; `None`: never.
    journals: Option<Arc<Journals>>,
}

/// The queues of one topic's subscribers, by subscription id. `version`
/// changes whenever the list does, so that publishers can keep a copy and
/// refresh it only then.
#[derive(Default)]
struct Subscribers {
    queues: Mutex<Vec<(u64, mpsc::Sender<SourceEvent>)>>,
    next_id: AtomicU64,
    version: AtomicU64,
}

impl Subscribers {
    fn add(&self, queue: mpsc::Sender<SourceEvent>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.queues.lock().unwrap_or_else(|p| p.into_inner()).push((id, queue));
        self.version.fetch_add(1, Ordering::Release);
        id
    }

    fn remove(&self, id: u64) {
        self.queues.lock().unwrap_or_else(|p| p.into_inner()).retain(|(i, _)| *i != id);
        self.version.fetch_add(1, Ordering::Release);
    }

    fn snapshot(&self) -> (u64, Vec<mpsc::Sender<SourceEvent>>) {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        (self.version.load(Ordering::Acquire), queues.iter().map(|(_, q)| q.clone()).collect())
    }
}

/// A subscriber's queue; dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<SourceEvent>,
    topic: Arc<Subscribers>,
    id: u64,
}

impl Subscription {
    /// The next event, or `None` if the bus is gone.
    pub async fn recv(&mut self) -> Option<SourceEvent> {
        self.rx.recv().await
    }

    /// Up to `limit` events into `buffer`, waiting for the first; 0 if the bus is gone.
    pub async fn recv_many(&mut self, buffer: &mut Vec<SourceEvent>, limit: usize) -> usize {
        self.rx.recv_many(buffer, limit).await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.topic.remove(self.id);
    }
}

impl TopicBus {
    /// Deletes `topic`'s journal from disk, if this bus keeps journals and no
    /// rule holds it (its stream was deleted).
    pub fn forget_journal(&self, topic: &str) -> std::io::Result<bool> {
        self.journals.as_ref().map_or(Ok(false), |journals| journals.forget(topic))
    }

    /// A bus that journals the topics that rules with qos >= 1 read.
    pub fn journaled(journals: Journals) -> Self {
        Self { topics: Mutex::default(), journals: Some(Arc::new(journals)) }
    }

    fn topic(&self, topic: &str) -> Arc<Subscribers> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(topics.entry(topic.to_owned()).or_default())
    }

    /// Subscribes to a topic: events published from now on queue up for the
    /// subscription, which must be drained (or dropped, which unsubscribes).
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let topic = self.topic(topic);
        let id = topic.add(tx);
        Subscription { rx, topic, id }
    }

    /// Publishes to a topic, with backpressure: see [`Publisher::send`].
    pub async fn send(&self, topic: &str, event: SourceEvent) -> usize {
        self.publisher(topic).send(event).await
    }

    /// A handle that publishes to one topic, for a publisher of many events:
    /// it looks the topic up once, not once per event.
    pub fn publisher(&self, topic: &str) -> Publisher {
        Publisher {
            topic: self.topic(topic),
            name: topic.to_owned(),
            journals: self.journals.clone(),
            version: u64::MAX,
            queues: Vec::new(),
        }
    }

    /// The hold of the rule of `config` on `topic`'s journal, for a rule whose
    /// qos asks for at least once on a journaled bus ([`SourceFactory::positions`](oort_engine::SourceFactory::positions)).
    pub(crate) fn positions(
        &self,
        topic: &str,
        config: &SourceConfig,
    ) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        let Some(journals) = self.journals.as_ref().filter(|_| config.qos >= Guarantee::AtLeastOnce) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(journals.hold(topic, &config.rule_id, config.resume_after)?)))
    }

    /// Whether anyone listens on a topic.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.get(topic).is_some_and(|s| !s.queues.lock().unwrap_or_else(|p| p.into_inner()).is_empty())
    }
}

/// Publishes to one topic of a [`TopicBus`]; keeps a copy of its subscribers'
/// queues, refreshed when they change.
pub struct Publisher {
    topic: Arc<Subscribers>,
    name: String,
    journals: Option<Arc<Journals>>,
    version: u64,
    queues: Vec<mpsc::Sender<SourceEvent>>,
}

/// Events journaled by [`Publisher::publish`], not yet known to be on disk.
pub struct Journaled {
    journal: Arc<Journal>,
    position: u64,
}

impl Journaled {
    /// Waits until they are on disk: then the publisher may be told they
    /// were accepted.
    pub async fn durable(&self) -> Result<(), JournalError> {
        self.journal.sync(self.position).await
    }
}

impl Publisher {
    /// Publishes events in order: journaled first if a rule with qos >= 1
    /// reads the topic (then returned as [`Journaled`], to wait for before
    /// acknowledging them), then sent as [`send`](Self::send) does. A full
    /// journal refuses them all.
    pub async fn publish(&mut self, events: Vec<SourceEvent>) -> Result<Option<Journaled>, JournalError> {
        let Some(journal) = self.journals.as_ref().and_then(|j| j.active(&self.name)) else {
            for event in events {
                self.send(event).await;
            }
            return Ok(None);
        };
        let _in_order = journal.publishing().await;
        let events = journal.append(events)?;
        let position = events.last().and_then(|e| e.position);
        for event in events {
            self.send(event).await;
        }
        Ok(position.map(|position| Journaled { journal: Arc::clone(&journal), position }))
    }

    /// Publishes to every current subscriber, waiting while a subscriber's
    /// queue is full: backpressure for publishers that can wait (a gRPC or
    /// HTTP client, a rule's sink), so that no event is lost. Returns how many
    /// subscribers received it.
    pub async fn send(&mut self, event: SourceEvent) -> usize {
        if self.topic.version.load(Ordering::Acquire) != self.version {
            (self.version, self.queues) = self.topic.snapshot();
        }
        let Some((last, others)) = self.queues.split_last() else { return 0 };
        let mut delivered = 0;
        // A queue whose subscription was dropped meanwhile refuses the event;
        // the next send sees the list without it.
        for queue in others {
            delivered += usize::from(queue.send(event.clone()).await.is_ok());
        }
        delivered + usize::from(last.send(event).await.is_ok())
    }
}

/// A source that reads one topic of a bus. It subscribes when it is built, so
/// that events published as soon as its rule is created reach it. For a rule
/// that holds the topic's journal, it first replays the journal from the
/// rule's hold, then reads live events it did not replay.
pub(crate) struct BusSource {
    subscription: Subscription,
    /// The journal to replay and where the rule holds it.
    replay: Option<(Arc<Journal>, u64)>,
}

impl BusSource {
    /// Subscribes to `topic` now, for the rule of `config`.
    pub(crate) fn subscribe(bus: &TopicBus, topic: &str, config: &SourceConfig) -> Box<Self> {
        let subscription = bus.subscribe(topic);
        let journal =
            bus.journals.as_ref().filter(|_| config.qos >= Guarantee::AtLeastOnce).and_then(|j| j.active(topic));
        // From where the rule is: its checkpoint, or what a previous source of
        // the running rule sent; else where the rule's hold started.
        let replay = journal.and_then(|journal| {
            let after = config.resume_after.or_else(|| journal.held_at(&config.rule_id))?;
            Some((Arc::clone(&journal), after))
        });
        Box::new(Self { subscription, replay })
    }

    /// Hands the rule what the journal holds after its hold; returns the
    /// position of the last event replayed.
    async fn replay(journal: &Arc<Journal>, mut after: u64, out: &SourceOutput) -> Result<Option<u64>, ConnectorError> {
        let mut replayed = 0u64;
        loop {
            let reading = Arc::clone(journal);
            let events = tokio::task::spawn_blocking(move || reading.read_after(after))
                .await
                .map_err(|e| ConnectorError::External(e.to_string()))??;
            let Some(last) = events.last().and_then(|e| e.position) else { break };
            replayed += events.len() as u64;
            for event in events {
                if out.send_waiting(event).await.is_err() {
                    return Ok(None);
                }
                out.record_replayed(1);
            }
            after = last;
        }
        if replayed > 0 {
            tracing::info!(events = replayed, until = after, "replayed the journal");
        }
        Ok(Some(after))
    }
}

#[async_trait::async_trait]
impl oort_engine::Source for BusSource {
    /// Forwards the subscription into the rule until cancelled, a batch at a time.
    async fn run(
        mut self: Box<Self>,
        out: SourceOutput,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(), oort_engine::ConnectorError> {
        let mut replayed = None;
        if let Some((journal, after)) = self.replay.take() {
            match Self::replay(&journal, after, &out).await? {
                Some(last) => replayed = Some(last),
                None => return Ok(()),
            }
        }
        // Grown by recv_many as events come: an idle subscription costs no buffer.
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                received = self.subscription.recv_many(&mut batch, FORWARD_BATCH) => {
                    if received == 0 {
                        return Ok(());
                    }
                    for event in batch.drain(..) {
                        // Published while the journal was replayed: sent already.
                        if event.position.zip(replayed).is_some_and(|(p, last)| p <= last) {
                            continue;
                        }
                        if out.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use oort_engine::{Map, Payload, Value};

    use super::*;

    fn event(n: i64) -> SourceEvent {
        SourceEvent::map(Map::from([(Arc::from("n"), Value::Int(n))]))
    }

    fn n(event: &SourceEvent) -> i64 {
        match &event.payload {
            Payload::Map(map) => map["n"].as_i64().unwrap(),
            Payload::Bytes(_) => panic!("a map was published"),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order_and_the_gone_are_forgotten() {
        let bus = TopicBus::default();
        let mut a = bus.subscribe("t");
        let mut publisher = bus.publisher("t");
        assert_eq!(publisher.send(event(1)).await, 1);
        let b = bus.subscribe("t");
        assert_eq!(publisher.send(event(2)).await, 2, "a new subscriber is seen by an existing publisher");
        assert_eq!((n(&a.recv().await.unwrap()), n(&a.recv().await.unwrap())), (1, 2));
        drop(b);
        assert!(bus.has_subscribers("t"));
        assert_eq!(publisher.send(event(3)).await, 1);
        drop(a);
        assert_eq!(publisher.send(event(4)).await, 0);
        assert!(!bus.has_subscribers("t"));
        assert_eq!(bus.publisher("other").send(event(5)).await, 0);
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_publisher_back() {
        let bus = Arc::new(TopicBus::default());
        let mut rx = bus.subscribe("t");
        let publishing = {
            let bus = Arc::clone(&bus);
            tokio::spawn(async move {
                let mut publisher = bus.publisher("t");
                for i in 0..(CAPACITY as i64 + 10) {
                    publisher.send(event(i)).await;
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!publishing.is_finished(), "the publisher waits for room");
        for i in 0..(CAPACITY as i64 + 10) {
            assert_eq!(n(&rx.recv().await.unwrap()), i);
        }
        publishing.await.unwrap();
    }
}
