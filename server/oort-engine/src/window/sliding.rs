//! Sliding windows: each row at time `t` triggers the window
//! `(t - length, t + delay]`, emitted when time reaches `t + delay`.

use std::collections::VecDeque;

use super::{Keyed, Rows, WindowBatch};
use crate::row::Row;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SlidingWindows {
    length: i64,
    delay: i64,
    /// Rows by key; none is too old for a pending or future window.
    pub(super) rows: Rows,
    /// The times of the rows whose window is not emitted yet, in order.
    triggers: VecDeque<i64>,
}

impl SlidingWindows {
    pub(super) fn new(length: i64, delay: i64) -> Self {
        Self { length, delay, rows: Rows::default(), triggers: VecDeque::new() }
    }

    /// Adds a row; `triggers` when it opens a window (eKuiper's `OVER (WHEN …)`).
    pub(super) fn insert(&mut self, row: Row, key: i64, triggers: bool) {
        debug_assert!(self.rows.back().is_none_or(|last| last.key <= key), "keys must not decrease");
        self.rows.push_back(Keyed::new(key, row));
        if triggers {
            self.triggers.push_back(key);
        }
    }

    pub(super) fn advance(&mut self, now: i64, out: &mut Vec<WindowBatch>) {
        while let Some(&t) = self.triggers.front() {
            let end = t.saturating_add(self.delay);
            if end > now {
                break;
            }
            self.triggers.pop_front();
            let start = t.saturating_sub(self.length);
            let first = self.rows.partition_point(|r| r.key <= start);
            let rows = self.rows.iter().skip(first).take_while(|r| r.key <= end).map(|r| Row::clone(&r.row)).collect();
            out.push(WindowBatch { start, end, rows });
        }
        // Pending windows start after their trigger's time minus the length;
        // windows of rows still to come, after `now` minus the length.
        let oldest = self.triggers.front().map_or(now, |&t| t.min(now)).saturating_sub(self.length);
        let stale = self.rows.partition_point(|r| r.key <= oldest);
        self.rows.drain_front(stale);
    }

    pub(super) fn deadline(&self) -> Option<i64> {
        self.triggers.front().map(|t| t.saturating_add(self.delay))
    }
}
