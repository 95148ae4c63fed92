//! Tumbling and hopping windows: `[e - length, e)` for every boundary `e`
//! (a multiple of `step`, shifted by `offset`). Tumbling windows have
//! `step == length`.

use super::{Keyed, Rows, WindowBatch, boundary_after};
use crate::row::Row;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct AlignedWindows {
    length: i64,
    step: i64,
    pub(super) offset: i64,
    pub(super) emit_empty: bool,
    /// Rows by key; none is before the start of the next window to emit.
    pub(super) rows: Rows,
    /// Every window that ends before this has been emitted (or skipped).
    next_end: Option<i64>,
}

impl AlignedWindows {
    pub(super) fn new(length: i64, step: i64) -> Self {
        Self { length, step, offset: 0, emit_empty: false, rows: Rows::default(), next_end: None }
    }

    /// Time starts at `t`: with `emit_empty`, windows are emitted from the
    /// first one that ends after `t`.
    pub(super) fn anchor(&mut self, t: i64) {
        if self.next_end.is_none() {
            self.next_end = Some(self.end_after(t));
        }
    }

    pub(super) fn insert(&mut self, row: Row, key: i64) {
        self.anchor(key);
        // With an interval longer than the length, a row may fall between windows.
        if self.end_after(key).saturating_sub(self.length) > key {
            return;
        }
        debug_assert!(self.rows.back().is_none_or(|last| last.key <= key), "keys must not decrease");
        self.rows.push_back(Keyed::new(key, row));
    }

    pub(super) fn advance(&mut self, now: i64, out: &mut Vec<WindowBatch>) {
        while let Some(end) = self.next_due() {
            if end > now {
                break;
            }
            self.emit(end, out);
            if end == i64::MAX {
                // The end of time: nothing can come after this window.
                self.rows.clear();
                break;
            }
            self.next_end = Some(end.saturating_add(self.step));
        }
    }

    pub(super) fn deadline(&self) -> Option<i64> {
        self.next_due()
    }

    /// The end of the next window to emit: the next one with rows, or simply
    /// the next one with `emit_empty`.
    fn next_due(&self) -> Option<i64> {
        if self.emit_empty {
            return self.next_end;
        }
        let first = self.end_after(self.rows.front()?.key);
        Some(self.next_end.map_or(first, |next| next.max(first)))
    }

    fn end_after(&self, t: i64) -> i64 {
        boundary_after(t, self.step, self.offset)
    }

    /// Emits the window `[end - length, end)` and releases the rows that no
    /// later window needs (moving them into the batch rather than cloning).
    fn emit(&mut self, end: i64, out: &mut Vec<WindowBatch>) {
        let start = end.saturating_sub(self.length);
        let stale = self.rows.partition_point(|r| r.key < start);
        self.rows.drain_front(stale);
        let next_start = end.saturating_add(self.step).saturating_sub(self.length);
        let released = self.rows.partition_point(|r| r.key < end.min(next_start));
        let mut rows: Vec<Row> = self.rows.drain_front(released).map(Keyed::into_row).collect();
        rows.extend(self.rows.iter().take_while(|r| r.key < end).map(|r| Row::clone(&r.row)));
        if !rows.is_empty() || self.emit_empty {
            out.push(WindowBatch { start, end, rows });
        }
    }
}
