//! Session windows: rows no more than `timeout` apart, cut at multiples of
//! the maximum `length` once a session has lasted that long.

use super::{Keyed, Rows, WindowBatch, boundary_at_or_after};
use crate::row::Row;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SessionWindows {
    length: i64,
    timeout: i64,
    pub(super) offset: i64,
    /// The rows of the open session since its start (or last cut).
    pub(super) rows: Rows,
    open: Option<Session>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Session {
    /// The first row's time, or the last cut.
    start: i64,
    /// The last row's time.
    last: i64,
}

/// How an open session ends next.
enum Close {
    /// `timeout` after the last row: the session is over.
    Timeout(i64),
    /// At a multiple of the maximum length: the session goes on from there.
    Cut(i64),
}

impl SessionWindows {
    pub(super) fn new(length: i64, timeout: i64) -> Self {
        Self { length, timeout, offset: 0, rows: Rows::default(), open: None }
    }

    pub(super) fn insert(&mut self, row: Row, key: i64, out: &mut Vec<WindowBatch>) {
        // eKuiper: a gap ends a session only when it is longer than the timeout,
        // so a row exactly `timeout` after the last one still belongs to it.
        self.close_until(key, true, out);
        match &mut self.open {
            Some(session) => session.last = key,
            None => self.open = Some(Session { start: key, last: key }),
        }
        self.rows.push_back(Keyed::new(key, row));
    }

    pub(super) fn advance(&mut self, now: i64, out: &mut Vec<WindowBatch>) {
        self.close_until(now, false, out);
    }

    /// Closes what ends by `now`; with `arriving`, a row arrives at `now` and a
    /// timeout falling exactly then does not close the session.
    fn close_until(&mut self, now: i64, arriving: bool, out: &mut Vec<WindowBatch>) {
        while let Some(session) = self.open {
            match self.next_close(session) {
                Close::Timeout(at) if at < now || (at == now && !arriving) => {
                    self.flush(session.start, at, out);
                    self.open = None;
                }
                Close::Cut(at) if at <= now => {
                    self.flush(session.start, at, out);
                    // The cuts after this one and before `now` and the timeout
                    // would emit nothing: go on from the last of them.
                    let timeout = session.last.saturating_add(self.timeout);
                    let limit = now.min(timeout.saturating_sub(1));
                    let skipped = (i128::from(limit) - i128::from(at)).max(0) / i128::from(self.length);
                    let start = super::clamp(i128::from(at) + skipped * i128::from(self.length));
                    self.open = Some(Session { start, last: session.last });
                }
                _ => break,
            }
        }
    }

    /// When the open session must be looked at again, if it holds rows. (An
    /// open session without rows, after a cut, emits nothing when it ends.)
    pub(super) fn deadline(&self) -> Option<i64> {
        let session = self.open.filter(|_| !self.rows.is_empty())?;
        match self.next_close(session) {
            Close::Timeout(at) | Close::Cut(at) => Some(at),
        }
    }

    fn next_close(&self, session: Session) -> Close {
        let timeout = session.last.saturating_add(self.timeout);
        let cut = boundary_at_or_after(session.start.saturating_add(self.length), self.length, self.offset);
        // A tie with a cut closes the session at the timeout.
        if timeout <= cut { Close::Timeout(timeout) } else { Close::Cut(cut) }
    }

    fn flush(&mut self, start: i64, end: i64, out: &mut Vec<WindowBatch>) {
        if !self.rows.is_empty() {
            out.push(WindowBatch {
                start,
                end,
                rows: self.rows.drain_front(self.rows.len()).map(Keyed::into_row).collect(),
            });
        }
    }
}
