//! Where a file read once resumes after a restart. Its events are numbered in
//! the order read (their position). While it reads, the source notes seek
//! points: before the event numbered `before + 1` it was at byte `offset` of
//! `file`, the start of a record (a file's start; a line of JSON lines or a
//! CSV record, when no lines are ignored). A checkpoint saves the last seek
//! point at or before its position, and a restart opens that file at that
//! offset and skips the few events up to the position, instead of reading
//! the whole input again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use oort_engine::ConnectorError;

/// Most seek points kept between two checkpoints; past it, every other one
/// is forgotten (a restart then skips more events, never reads wrong ones).
const MAX_POINTS: usize = 1024;

/// Before the event numbered `before + 1`, the source was at byte `offset`
/// of `file`, where a record starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SeekPoint {
    /// Events read before it.
    pub before: u64,
    /// The file, as its path.
    pub file: String,
    /// The byte in it.
    pub offset: u64,
}

impl SeekPoint {
    /// The seek point a checkpoint saved, if it is one.
    pub(crate) fn decode(state: Option<&[u8]>) -> Option<Self> {
        postcard::from_bytes(state?).ok()
    }
}

/// The seek points of the events not yet covered by a checkpoint, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SeekIndex {
    points: Mutex<VecDeque<SeekPoint>>,
}

impl SeekIndex {
    /// Notes a seek point, after those noted before.
    pub(crate) fn record(&self, point: SeekPoint) {
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        if points.back().is_some_and(|last| last.before > point.before) {
            points.clear(); // a new read of the input numbers its events again
        }
        points.push_back(point);
        if points.len() > MAX_POINTS {
            let mut keep = false;
            points.retain(|_| {
                keep = !keep;
                keep
            });
        }
    }

    /// The last seek point at or before `position`.
    fn at(&self, position: u64) -> Option<SeekPoint> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        points.iter().rev().find(|p| p.before <= position).cloned()
    }

    /// Forgets the seek points before the last one at or before `position`.
    fn release(&self, position: u64) {
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        while points.len() > 1 && points[1].before <= position {
            points.pop_front();
        }
    }
}

/// Where a rule is in a file read once: the ordinal of the last event its
/// checkpoint covers, and the seek points its source notes.
pub(crate) struct ReadOnce {
    pub(crate) after: u64,
    pub(crate) index: Arc<SeekIndex>,
}

#[async_trait]
impl oort_engine::SourcePositions for ReadOnce {
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn release(&self, position: u64) {
        self.index.release(position);
    }

    fn position(&self) -> Option<u64> {
        Some(self.after)
    }

    fn resume_state(&self, position: u64) -> Option<Vec<u8>> {
        postcard::to_stdvec(&self.index.at(position)?).ok()
    }
}

/// The seek index of each rule that reads a file once, by rule id: its
/// checkpointer ([`ReadOnce`]) and its source share it.
#[derive(Default)]
pub(crate) struct Reads(Mutex<HashMap<String, Weak<SeekIndex>>>);

impl Reads {
    /// A new index for a rule that starts.
    pub(crate) fn start(&self, rule_id: &str) -> Arc<SeekIndex> {
        let index = Arc::new(SeekIndex::default());
        let mut reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reads.retain(|_, index| index.strong_count() > 0);
        reads.insert(rule_id.to_owned(), Arc::downgrade(&index));
        index
    }

    /// The index of a rule that started, if it keeps one.
    pub(crate) fn get(&self, rule_id: &str) -> Option<Arc<SeekIndex>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(rule_id)?.upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(before: u64, offset: u64) -> SeekPoint {
        SeekPoint { before, file: "a.json".into(), offset }
    }

    #[test]
    fn a_checkpoint_gets_the_last_point_at_or_before_it() {
        let index = SeekIndex::default();
        for (before, offset) in [(0, 0), (256, 4000), (512, 8100)] {
            index.record(point(before, offset));
        }
        assert_eq!(index.at(300), Some(point(256, 4000)));
        assert_eq!(index.at(256), Some(point(256, 4000)));
        index.release(300);
        assert_eq!(index.at(0), None, "released");
        assert_eq!(index.at(600), Some(point(512, 8100)));
    }

    #[test]
    fn many_points_are_thinned_not_dropped_at_the_end() {
        let index = SeekIndex::default();
        for n in 0..5_000 {
            index.record(point(n, n * 10));
        }
        let points = index.points.lock().unwrap().len();
        assert!(points <= MAX_POINTS, "{points}");
        assert_eq!(index.at(0), Some(point(0, 0)), "the first is kept");
        assert!(index.at(4_999).unwrap().before > 4_000);
    }
}
