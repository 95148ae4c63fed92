//! The rows a window kind holds: each with the time that places it
//! ([`Keyed`]), in key order, with the bytes they take ([`Rows`]).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::row::Row;

/// A buffered row and the time that places it in windows. The row is shared
/// so that a checkpoint's [`WindowSnapshot`] copies pointers, not rows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Keyed {
    pub(super) key: i64,
    pub(super) row: Arc<Row>,
    /// About how many bytes the row takes.
    pub(super) bytes: usize,
}

impl Keyed {
    pub(super) fn new(key: i64, row: Row) -> Self {
        let bytes = row_bytes(&row);
        Self { key, row: Arc::new(row), bytes }
    }

    /// The row, moved out unless a snapshot still shares it.
    pub(super) fn into_row(self) -> Row {
        Arc::unwrap_or_clone(self.row)
    }
}

/// About how many bytes a buffered row takes.
pub(super) fn row_bytes(row: &Row) -> usize {
    std::mem::size_of::<Row>()
        + crate::value::map_approx_bytes(&row.fields)
        + row.analytic.iter().map(crate::value::Value::approx_bytes).sum::<usize>()
}

/// The rows a window kind holds, in key order, with the bytes they take.
/// Reading goes through `Deref`; every change goes through these methods,
/// which keep the count.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Rows {
    rows: VecDeque<Keyed>,
    bytes: usize,
}

impl Rows {
    pub(super) fn push_back(&mut self, keyed: Keyed) {
        self.bytes += keyed.bytes;
        self.rows.push_back(keyed);
    }

    pub(super) fn pop_front(&mut self) -> Option<Keyed> {
        let keyed = self.rows.pop_front()?;
        self.bytes -= keyed.bytes;
        Some(keyed)
    }

    /// Removes the first `n` rows.
    pub(super) fn drain_front(&mut self, n: usize) -> std::collections::vec_deque::Drain<'_, Keyed> {
        self.bytes -= self.rows.range(..n).map(|k| k.bytes).sum::<usize>();
        self.rows.drain(..n)
    }

    /// About how many bytes its rows take.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.bytes = 0;
    }
}

impl std::ops::Deref for Rows {
    type Target = VecDeque<Keyed>;

    fn deref(&self) -> &VecDeque<Keyed> {
        &self.rows
    }
}
