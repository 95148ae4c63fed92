//! State windows (eKuiper's `STATEWINDOW`): not time but conditions on the
//! rows decide them, per partition (`OVER (PARTITION BY …)`).
//!
//! - `STATEWINDOW(begin, emit)`: rows are dropped until one meets `begin`;
//!   from it on they are kept, and the first that meets `emit` (checked from
//!   the row after the beginning one) is kept and closes the window.
//! - `STATEWINDOW(condition)`: rows are dropped until one meets the
//!   condition; the next row that meets it closes the window (without it)
//!   and begins the next one.
//!
//! A window's start and end are the times of its first and closing rows.

use std::collections::BTreeMap;

use super::{Keyed, Rows, WindowBatch};
use crate::row::Row;

/// What a row's conditions say ([`super::WindowConditions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Its partition (the `PARTITION BY` values, encoded); empty without one.
    pub partition: Vec<u8>,
    /// A sliding window's trigger, or a state window's `begin` (or only) condition.
    pub first: bool,
    /// A state window's `emit` condition.
    pub second: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct StateWindows {
    /// `begin, emit` rather than one condition.
    two_conditions: bool,
    partitions: BTreeMap<Vec<u8>, Partition>,
    /// The rows of all partitions, and about how many bytes they take: kept
    /// as they change, since the runtime asks at every event.
    held: (usize, usize),
}

/// One partition's open window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Partition {
    begun: bool,
    rows: Rows,
}

impl StateWindows {
    pub(super) fn new(two_conditions: bool) -> Self {
        Self { two_conditions, partitions: BTreeMap::new(), held: (0, 0) }
    }

    pub(super) fn insert(&mut self, row: Row, key: i64, verdict: Verdict, out: &mut Vec<WindowBatch>) {
        let Verdict { partition: name, first, second } = verdict;
        // A partition without a window is not begun: a row that does not begin one is dropped.
        if !first && !self.partitions.contains_key(&name) {
            return;
        }
        let partition = self.partitions.entry(name.clone()).or_default();
        let before = (partition.rows.len(), partition.rows.bytes());
        let keyed = Keyed::new(key, row);
        match (partition.begun, self.two_conditions) {
            (false, _) if first => {
                partition.begun = true;
                partition.rows.push_back(keyed);
            }
            (false, _) => {}
            (true, true) => {
                partition.rows.push_back(keyed);
                if second {
                    out.push(close(&mut partition.rows, key));
                    partition.begun = false;
                }
            }
            (true, false) if first => {
                out.push(close(&mut partition.rows, key));
                partition.rows.push_back(keyed);
            }
            (true, false) => partition.rows.push_back(keyed),
        }
        let after = (partition.rows.len(), partition.rows.bytes());
        self.held = (self.held.0 + after.0 - before.0, self.held.1 + after.1 - before.1);
        if !partition.begun && partition.rows.is_empty() {
            self.partitions.remove(&name);
        }
    }

    /// The rows of every partition.
    pub(super) fn rows(&self) -> impl Iterator<Item = &Row> {
        self.partitions.values().flat_map(|p| p.rows.iter().map(|k| k.row.as_ref()))
    }

    /// How many rows it holds, and about how many bytes.
    pub(super) fn held(&self) -> (usize, usize) {
        self.held
    }

    /// Drops the oldest row of all its partitions; false when it holds none.
    pub(super) fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .partitions
            .iter()
            .filter_map(|(name, p)| p.rows.front().map(|r| (r.key, name.clone())))
            .min_by_key(|(key, _)| *key);
        let Some((_, name)) = oldest else { return false };
        if let Some(partition) = self.partitions.get_mut(&name)
            && let Some(evicted) = partition.rows.pop_front()
        {
            self.held = (self.held.0 - 1, self.held.1 - evicted.bytes);
            // Its window lost every row: the partition starts again (and holds no entry).
            if partition.rows.is_empty() {
                self.partitions.remove(&name);
            }
        }
        true
    }
}

/// The window of a partition's rows, closed at `end`; the rows are moved out.
fn close(rows: &mut Rows, end: i64) -> WindowBatch {
    let start = rows.front().map_or(end, |r| r.key);
    let count = rows.len();
    let rows = rows.drain_front(count).map(Keyed::into_row).collect();
    WindowBatch { start, end, rows }
}
