//! [`Tail`]: the live copies of a rule's results that `TailRule` readers
//! read, each reader's queue bounded in bytes, and, once a reader came, the
//! last results retained (bounded in bytes too) so that a reader that
//! reconnects resumes where it left off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Results;

/// Where a row is among a rule's results: its result's number (counted from
/// the rule's first, across restarts for a rule with checkpoints) and its
/// index in that result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TailPosition {
    /// The result's number.
    pub result: u64,
    /// The row's index in it.
    pub row: usize,
}

/// Results in order, numbered: `results[0]` is result `first`, and its rows
/// before `first_row` are not part of the batch (a reader resumed after them).
#[derive(Debug, Clone)]
pub struct TailBatch {
    /// The number of the first result.
    pub first: u64,
    /// The index, in the first result, of its first row here.
    pub first_row: usize,
    /// The results.
    pub results: Results,
}

impl TailBatch {
    /// Each row with its position, in order.
    pub fn rows(&self) -> impl Iterator<Item = (TailPosition, &crate::value::Map)> {
        (self.first..).zip(self.results.iter()).enumerate().flat_map(move |(i, (result, rows))| {
            let skip = if i == 0 { self.first_row } else { 0 };
            rows.iter().enumerate().skip(skip).map(move |(row, map)| (TailPosition { result, row }, map))
        })
    }

    /// The position after the last row of result `position.result` or, if the
    /// row at `position` is not its result's last, the next row's.
    pub fn after(&self, position: TailPosition) -> TailPosition {
        let index = (position.result - self.first) as usize;
        let rows = self.results.get(index).map_or(0, Vec::len);
        if position.row + 1 < rows {
            TailPosition { result: position.result, row: position.row + 1 }
        } else {
            TailPosition { result: position.result + 1, row: 0 }
        }
    }
}

/// The live copies of a rule's results that `TailRule` readers read, each
/// its own queue bounded in bytes, and the last results retained for readers
/// that resume.
pub struct Tail {
    inner: Mutex<Inner>,
    /// Results that readers fell too far behind to get, since the rule started.
    pub(super) missed: Arc<AtomicU64>,
    /// The most bytes of results one reader may have waiting.
    max_bytes: usize,
    /// The most bytes of results retained.
    retain_bytes: usize,
}

/// What the rule's task and new readers change together: a reader that
/// resumes gets what was retained and then every batch after, none twice.
#[derive(Default)]
struct Inner {
    /// Each reader's queue and state. The queues' senders live here only, so
    /// that a reader's stream ends when the rule (and so its tail) goes.
    readers: Vec<(Queue, Arc<ReaderState>)>,
    /// The last batches, oldest first, with their size in bytes.
    retained: VecDeque<(TailBatch, usize)>,
    retained_bytes: usize,
    /// Whether a reader ever subscribed: results are retained from then on,
    /// so that a rule no one reads costs nothing.
    retaining: bool,
    /// The number of the next result.
    next: u64,
}

/// A reader's queue: batches of results with their size in bytes.
type Queue = mpsc::UnboundedSender<(TailBatch, usize)>;

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
    Results(TailBatch),
    /// The reader fell more than its byte budget behind and missed this many
    /// results (counted in the rule's status); it gets nothing more.
    Missed(u64),
    /// The rule stopped.
    Closed,
}

/// Why a reader cannot resume where it asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The rule no longer retains that result.
    #[error(
        "result {asked} is no longer retained: the oldest retained is result {oldest} (the server's \
         tail_retain_bytes bounds what a rule retains, and a restart retains nothing)"
    )]
    Gone {
        /// The result asked for.
        asked: u64,
        /// The oldest retained (or the next, if none is).
        oldest: u64,
    },
    /// The rule has not produced that result yet.
    #[error("result {asked} does not exist yet: the rule's next result is number {next}")]
    NotYet {
        /// The result asked for.
        asked: u64,
        /// The next result's number.
        next: u64,
    },
}

/// One reader of a rule's results.
pub struct TailReader {
    rx: mpsc::UnboundedReceiver<(TailBatch, usize)>,
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
            Some((batch, bytes)) => {
                self.state.queued.fetch_sub(bytes, Ordering::Relaxed);
                TailEvent::Results(batch)
            }
            None => TailEvent::Closed,
        }
    }
}

impl Tail {
    /// A tail whose readers may each have `max_bytes` of results waiting,
    /// retaining the last `retain_bytes` of results, numbered from `next`.
    pub(super) fn new(max_bytes: usize, retain_bytes: usize, next: u64) -> Self {
        let inner = Inner { next, ..Inner::default() };
        Self { inner: Mutex::new(inner), missed: Arc::default(), max_bytes, retain_bytes }
    }

    /// A new reader of the results: of the live ones, or (`from`) of the
    /// retained ones from that position, then the live ones.
    pub fn subscribe(&self, from: Option<TailPosition>) -> Result<TailReader, ResumeError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(ReaderState { queued: AtomicUsize::new(0), lost: AtomicU64::new(0) });
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(from) = from {
            let oldest = inner.retained.front().map_or(inner.next, |(batch, _)| batch.first);
            if from.result > inner.next {
                return Err(ResumeError::NotYet { asked: from.result, next: inner.next });
            }
            if from.result < oldest {
                return Err(ResumeError::Gone { asked: from.result, oldest });
            }
            let end = |(batch, _): &&(TailBatch, usize)| batch.first + batch.results.len() as u64;
            for (batch, bytes) in inner.retained.iter().filter(|b| end(b) > from.result) {
                let batch = match from.result.checked_sub(batch.first) {
                    Some(skip) if skip > 0 || from.row > 0 => TailBatch {
                        first: from.result,
                        first_row: from.row,
                        results: Arc::new(batch.results[skip as usize..].to_vec()),
                    },
                    _ => batch.clone(),
                };
                state.queued.fetch_add(*bytes, Ordering::Relaxed);
                let _ = tx.send((batch, *bytes));
            }
        }
        inner.readers.push((tx, Arc::clone(&state)));
        inner.retaining = self.retain_bytes > 0;
        Ok(TailReader { rx, state, missed: Arc::clone(&self.missed), max_bytes: self.max_bytes })
    }

    /// Queues a batch of results, the first numbered `first`, for every
    /// reader with room for it (one with nothing queued always has); a reader
    /// without room misses them, and everything after. Readers that are gone
    /// are forgotten. The batch is retained, and the oldest retained
    /// forgotten past the bound.
    pub(super) fn send(&self, first: u64, results: &Results) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next = first + results.len() as u64;
        if inner.readers.is_empty() && !inner.retaining {
            return;
        }
        let bytes: usize = results.iter().flatten().map(crate::value::map_approx_bytes).sum();
        let batch = TailBatch { first, first_row: 0, results: Arc::clone(results) };
        inner.readers.retain(|(tx, reader)| {
            let queued = reader.queued.load(Ordering::Relaxed);
            let behind = reader.lost.load(Ordering::Relaxed) > 0 || (queued > 0 && queued + bytes > self.max_bytes);
            if behind {
                reader.lost.fetch_add(results.len() as u64, Ordering::Relaxed);
                return !tx.is_closed();
            }
            reader.queued.fetch_add(bytes, Ordering::Relaxed);
            tx.send((batch.clone(), bytes)).is_ok()
        });
        if inner.retaining {
            inner.retained.push_back((batch, bytes));
            inner.retained_bytes += bytes;
            while inner.retained_bytes > self.retain_bytes {
                let Some((_, bytes)) = inner.retained.pop_front() else { break };
                inner.retained_bytes -= bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Map, Value};

    fn results(names: &[&[&str]]) -> Results {
        let row = |name: &&str| -> Map { [(Arc::from("n"), Value::String(Arc::from(*name)))].into_iter().collect() };
        Arc::new(names.iter().map(|rows| rows.iter().map(row).collect()).collect())
    }

    /// The names of the rows a reader has queued, with their positions.
    fn read(reader: &mut TailReader) -> Vec<(u64, usize, String)> {
        let mut rows = Vec::new();
        while let Ok((batch, _)) = reader.rx.try_recv() {
            for (p, row) in batch.rows() {
                let Value::String(name) = &row["n"] else { panic!() };
                rows.push((p.result, p.row, name.to_string()));
            }
        }
        rows
    }

    fn at(result: u64, row: usize) -> Option<TailPosition> {
        Some(TailPosition { result, row })
    }

    #[test]
    fn a_reader_resumes_at_a_row_of_a_retained_result_then_reads_live_ones() {
        let tail = Tail::new(1 << 20, 1 << 20, 10);
        drop(tail.subscribe(None).unwrap()); // retaining starts with the first reader
        tail.send(10, &results(&[&["a"], &["b1", "b2", "b3"]]));
        tail.send(12, &results(&[&["c"]]));
        let mut reader = tail.subscribe(at(11, 1)).unwrap();
        tail.send(13, &results(&[&["d"]]));
        let expected = [(11, 1, "b2"), (11, 2, "b3"), (12, 0, "c"), (13, 0, "d")];
        assert_eq!(read(&mut reader), expected.map(|(r, i, n)| (r, i, n.to_owned())));
        let batch = TailBatch { first: 11, first_row: 1, results: results(&[&["b1", "b2", "b3"]]) };
        assert_eq!(batch.after(TailPosition { result: 11, row: 1 }), TailPosition { result: 11, row: 2 });
        assert_eq!(batch.after(TailPosition { result: 11, row: 2 }), TailPosition { result: 12, row: 0 });
    }

    #[test]
    fn a_position_no_longer_retained_or_not_reached_is_refused() {
        let tail = Tail::new(1 << 20, 1, 0);
        tail.send(0, &results(&[&["before any reader"]]));
        assert_eq!(tail.subscribe(at(0, 0)).err(), Some(ResumeError::Gone { asked: 0, oldest: 1 }));
        drop(tail.subscribe(None).unwrap());
        tail.send(1, &results(&[&["a"]]));
        tail.send(2, &results(&[&["b"]]));
        assert_eq!(
            tail.subscribe(at(1, 0)).err(),
            Some(ResumeError::Gone { asked: 1, oldest: 3 }),
            "1 byte: none retained"
        );
        assert_eq!(tail.subscribe(at(4, 0)).err(), Some(ResumeError::NotYet { asked: 4, next: 3 }));
        let mut reader = tail.subscribe(at(3, 0)).unwrap();
        assert!(read(&mut reader).is_empty());
    }
}
