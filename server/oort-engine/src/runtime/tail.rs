//! [`Tail`]: the live copies of a rule's results that `TailRule` readers
//! read, each reader's queue bounded in bytes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Results;

/// The live copies of a rule's results that `TailRule` readers read, each
/// its own queue bounded in bytes. Nothing is queued while no one reads.
pub struct Tail {
    /// Each reader's queue and state. The queues' senders live here only, so
    /// that a reader's stream ends when the rule (and so its tail) goes.
    readers: Mutex<Vec<(Queue, Arc<ReaderState>)>>,
    /// Results that readers fell too far behind to get, since the rule started.
    pub(super) missed: Arc<AtomicU64>,
    /// The most bytes of results one reader may have waiting.
    max_bytes: usize,
}

/// A reader's queue: batches of results with their size in bytes.
type Queue = mpsc::UnboundedSender<(Results, usize)>;

/// What a rule's task and one reader share.
struct ReaderState {
    /// Bytes of the results queued and not read yet.
    queued: AtomicUsize,
    /// Results this reader missed; once above 0, nothing more is queued for it.
    lost: AtomicU64,
}

/// What a TailRule reader gets next.
#[derive(Debug)]
pub enum TailEvent {
    /// The next batch of results.
    Results(Results),
    /// The reader fell more than its byte budget behind and missed this many
    /// results (counted in the rule's status); it gets nothing more.
    Missed(u64),
    /// The rule stopped.
    Closed,
}

/// One reader of a rule's results.
pub struct TailReader {
    rx: mpsc::UnboundedReceiver<(Results, usize)>,
    state: Arc<ReaderState>,
    /// The rule's count, not the tail itself: a reader must not keep the
    /// tail alive, or its stream would not end when the rule stops.
    missed: Arc<AtomicU64>,
    /// The byte budget, for messages.
    pub max_bytes: usize,
}

impl TailReader {
    /// The next results; what was queued before a loss comes first, then the loss.
    pub async fn recv(&mut self) -> TailEvent {
        let next = match self.rx.try_recv() {
            Ok(next) => Some(next),
            Err(empty_or_closed) => {
                let lost = self.state.lost.load(Ordering::Relaxed);
                if lost > 0 {
                    self.missed.fetch_add(lost, Ordering::Relaxed);
                    return TailEvent::Missed(lost);
                }
                match empty_or_closed {
                    mpsc::error::TryRecvError::Disconnected => None,
                    // A loss needs something queued, so none can happen while this waits.
                    mpsc::error::TryRecvError::Empty => self.rx.recv().await,
                }
            }
        };
        match next {
            Some((results, bytes)) => {
                self.state.queued.fetch_sub(bytes, Ordering::Relaxed);
                TailEvent::Results(results)
            }
            None => TailEvent::Closed,
        }
    }
}

impl Tail {
    /// A tail whose readers may each have `max_bytes` of results waiting.
    pub(super) fn new(max_bytes: usize) -> Self {
        Self { readers: Mutex::default(), missed: Arc::default(), max_bytes }
    }

    /// A new reader of the results.
    pub fn subscribe(&self) -> TailReader {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(ReaderState { queued: AtomicUsize::new(0), lost: AtomicU64::new(0) });
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push((tx, Arc::clone(&state)));
        TailReader { rx, state, missed: Arc::clone(&self.missed), max_bytes: self.max_bytes }
    }

    /// Queues a batch of results for every reader with room for it (one with
    /// nothing queued always has); a reader without room misses them, and
    /// everything after. Readers that are gone are forgotten.
    pub(super) fn send(&self, results: &Results) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.is_empty() {
            return;
        }
        let bytes: usize = results.iter().flatten().map(crate::value::map_approx_bytes).sum();
        readers.retain(|(tx, reader)| {
            let queued = reader.queued.load(Ordering::Relaxed);
            let behind = reader.lost.load(Ordering::Relaxed) > 0 || (queued > 0 && queued + bytes > self.max_bytes);
            if behind {
                reader.lost.fetch_add(results.len() as u64, Ordering::Relaxed);
                return !tx.is_closed();
            }
            reader.queued.fetch_add(bytes, Ordering::Relaxed);
            tx.send((Arc::clone(results), bytes)).is_ok()
        });
    }
}
