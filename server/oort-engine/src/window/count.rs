//! Count windows: every `interval` rows, the last `length` rows, once at
//! least `length` rows have arrived.

use super::{Keyed, Rows, WindowBatch};
use crate::row::Row;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct CountWindows {
    length: usize,
    interval: usize,
    /// The rows the next window may hold.
    pub(super) rows: Rows,
    /// Rows since the last trigger.
    since_trigger: usize,
}

impl CountWindows {
    pub(super) fn new(length: usize, interval: usize) -> Self {
        Self { length, interval, rows: Rows::default(), since_trigger: 0 }
    }

    pub(super) fn insert(&mut self, row: Row, key: i64, out: &mut Vec<WindowBatch>) {
        self.rows.push_back(Keyed::new(key, row));
        self.since_trigger += 1;
        if self.since_trigger < self.interval {
            return;
        }
        self.since_trigger = 0;
        // Like eKuiper, a trigger with fewer than `length` rows emits nothing
        // and keeps them.
        if self.rows.len() < self.length {
            return;
        }
        let excess = self.rows.len() - self.length;
        self.rows.drain_front(excess);
        // The next window, `interval` rows later, keeps the last `length - interval`.
        let kept = self.length.saturating_sub(self.interval);
        let released = self.length - kept;
        let (Some(start), Some(end)) = (self.rows.front().map(|r| r.key), self.rows.back().map(|r| r.key)) else {
            return;
        };
        let mut rows: Vec<Row> = self.rows.drain_front(released).map(Keyed::into_row).collect();
        rows.extend(self.rows.iter().map(|r| Row::clone(&r.row)));
        out.push(WindowBatch { start, end, rows });
    }
}
