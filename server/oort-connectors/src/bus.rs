//! [`TopicBus`]: in-process publish/subscribe by exact topic name.

use std::collections::HashMap;
use std::sync::Mutex;

use oort_engine::SourceEvent;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it loses some.
const CAPACITY: usize = 4096;

/// Topics, each a broadcast channel created on first use.
#[derive(Default)]
pub struct TopicBus {
    topics: Mutex<HashMap<String, broadcast::Sender<SourceEvent>>>,
}

impl TopicBus {
    fn sender(&self, topic: &str) -> broadcast::Sender<SourceEvent> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.entry(topic.to_owned()).or_insert_with(|| broadcast::channel(CAPACITY).0).clone()
    }

    /// Subscribes to a topic.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<SourceEvent> {
        self.sender(topic).subscribe()
    }

    /// Publishes to a topic without waiting; returns how many subscribers
    /// received it. A subscriber more than `CAPACITY` events behind loses the
    /// oldest: use [`TopicBus::send`] where the publisher can wait.
    pub fn publish(&self, topic: &str, event: SourceEvent) -> usize {
        self.sender(topic).send(event).unwrap_or(0)
    }

    /// Publishes to a topic, with backpressure: see [`Publisher::send`].
    pub async fn send(&self, topic: &str, event: SourceEvent) -> usize {
        self.publisher(topic).send(event).await
    }

    /// A handle that publishes to one topic, for a publisher of many events:
    /// it looks the topic up once, not once per event.
    pub fn publisher(&self, topic: &str) -> Publisher {
        Publisher(self.sender(topic))
    }

    /// Whether anyone listens on a topic.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.get(topic).is_some_and(|s| s.receiver_count() > 0)
    }
}

/// Publishes to one topic of a [`TopicBus`].
#[derive(Clone)]
pub struct Publisher(broadcast::Sender<SourceEvent>);

impl Publisher {
    /// Publishes, first waiting while the topic's slowest subscriber is more
    /// than half the buffer behind: backpressure for publishers that can wait
    /// (a gRPC or HTTP client, a rule's sink), so that no event is lost to lag.
    /// Returns how many subscribers received it.
    pub async fn send(&self, event: SourceEvent) -> usize {
        let mut spins = 0u32;
        while self.0.len() >= CAPACITY / 2 && self.0.receiver_count() > 0 {
            spins += 1;
            if spins < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        self.0.send(event).unwrap_or(0)
    }
}

/// A source that reads one topic of a bus. It subscribes when it is built, so
/// that events published as soon as its rule is created reach it.
pub(crate) struct BusSource {
    rx: broadcast::Receiver<SourceEvent>,
    topic: String,
}

impl BusSource {
    /// Subscribes to `topic` now.
    pub(crate) fn subscribe(bus: &TopicBus, topic: &str) -> Box<Self> {
        Box::new(Self { rx: bus.subscribe(topic), topic: topic.to_owned() })
    }
}

#[async_trait::async_trait]
impl oort_engine::Source for BusSource {
    async fn run(
        self: Box<Self>,
        out: tokio::sync::mpsc::Sender<SourceEvent>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(), oort_engine::ConnectorError> {
        forward(self.rx, out, cancel, &self.topic).await;
        Ok(())
    }
}

/// Forwards a subscription into a source's output until cancelled; events lost
/// to lag are reported in the log, the source goes on.
async fn forward(
    mut rx: broadcast::Receiver<SourceEvent>,
    out: tokio::sync::mpsc::Sender<SourceEvent>,
    cancel: tokio_util::sync::CancellationToken,
    what: &str,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            received = rx.recv() => match received {
                Ok(event) => {
                    if out.send(event).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => tracing::warn!(source = what, lost, "subscriber fell behind; events lost"),
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
