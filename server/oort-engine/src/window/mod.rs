//! Windows: a pure, synchronous state machine that groups rows into the
//! windows of a rule's `GROUP BY` window function ([`WindowSpec`]).
//!
//! [`WindowOperator`] holds no clock and no task: the runtime passes the time
//! in. It calls [`WindowOperator::on_event`] for each row,
//! [`WindowOperator::on_tick`] from a timer, and asks
//! [`WindowOperator::next_deadline`] when to tick next. Both calls return the
//! windows ([`WindowBatch`]) that closed, oldest first. Tests drive time exactly.
//!
//! # Time
//!
//! - [`TimeMode::Processing`]: a row belongs to the windows of `now`, the
//!   processing time at which it arrived (its `timestamp` is not read). Time
//!   never goes back: a `now` earlier than one already seen counts as the
//!   latest seen.
//! - [`TimeMode::Event`]: a row belongs to the windows of its `timestamp`.
//!   The watermark is the greatest timestamp seen minus `late_tolerance_ms`
//!   (eKuiper's `lateTolerance`). A row older than the watermark is late: it
//!   is dropped and counted ([`WindowOperator::late_dropped`]). Rows are
//!   reordered by timestamp and handed to the windows once the watermark
//!   reaches them, so rows of a window are in timestamp order (ties in arrival
//!   order), as eKuiper's watermark operator does. A window closes when the
//!   watermark reaches its end. The watermark moves only with events:
//!   [`WindowOperator::on_tick`] does nothing and
//!   [`WindowOperator::next_deadline`] is `None` in this mode, so the last
//!   windows of a stream that goes quiet wait for its next event (as in
//!   eKuiper; there is no idle advancement).
//!
//! # Windows
//!
//! | window | rows of a window | when it is emitted | `start`, `end` |
//! |---|---|---|---|
//! | `TUMBLINGWINDOW(u, n)` | `[k*n, (k+1)*n)` | time reaches its end | as the interval |
//! | `HOPPINGWINDOW(u, n, i)` | `[k*i - n, k*i)` | time reaches its end | as the interval |
//! | `SLIDINGWINDOW(u, n)` | `(t - n, t]`, `t` a row's time | on that row | `t - n`, `t` |
//! | `SLIDINGWINDOW(u, n, d)` | `(t - n, t + d]` | time reaches `t + d` | `t - n`, `t + d` |
//! | `SESSIONWINDOW(u, n, o)` | rows no more than `o` apart | `o` after the last row, or at a cut | first row or cut, close |
//! | `COUNTWINDOW(n [, i])` | the last `n` rows | every `i` rows (default `n`), once `n` are in | first and last row's time |
//! | `STATEWINDOW(c)` | from a row where `c` holds, up to the next (excluded) | on that next row | first row's time, that row's |
//! | `STATEWINDOW(b, e)` | from a row where `b` holds to one where `e` does (included) | on that row | first and last row's time |
//!
//! A sliding window's `OVER (WHEN …)` and a state window's conditions and
//! partitions (`OVER (PARTITION BY …)`, a state per partition) come from the
//! rule as [`WindowConditions`] (module `state`).
//!
//! Time windows align to natural time, as eKuiper's do: boundaries are
//! multiples of the length (tumbling), of the interval (hopping: windows *end*
//! at multiples of the interval, as eKuiper aligns its first hopping window
//! end to the interval) and of the maximum length (session cuts), counted from
//! the Unix epoch in UTC. [`WindowOperator::with_utc_offset`] shifts them to a
//! local time (eKuiper ends a day window at 24:00 local time).
//!
//! Sliding windows are left-open and right-closed, as in eKuiper 2's sliding
//! window; for them `start` is exclusive and `end` inclusive. Count windows do
//! not look at time; their `start` and `end` are the times (see above) of their
//! first and last rows, both inclusive.
//!
//! A session starts with a row. It closes `timeout` after its last row (window
//! `[first row, last row + timeout)`), and a row that arrives exactly then
//! starts a new session. While rows keep coming, the session is cut at the
//! first multiple `b` of the maximum length with `b - start >= length`
//! (eKuiper checks the maximum duration at `t = 0, length, 2*length, ...`):
//! window `[start, b)`. The session then goes on from `b` (its next cut is at
//! `b + length`), still closing `timeout` after its last row.
//!
//! Empty windows are not emitted by default. eKuiper does emit empty tumbling
//! and hopping windows in processing time (a `SELECT count(*)` with no other
//! group key then yields 0); [`WindowOperator::with_emit_empty`] turns that
//! on. Sliding, session and count windows are never empty.
//!
//! Rows are released as soon as no pending window needs them, so the buffer
//! holds at most a window's worth of rows (plus, in event time, the rows not
//! yet reached by the watermark). [`WindowOperator::with_max_bytes`] bounds
//! that in bytes: past it, the oldest rows are dropped and counted.

mod aligned;
mod count;
mod partitioned;
mod rows;
mod session;
mod sliding;
mod state;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use oort_sql::{TimeUnit, WindowSpec};

use crate::row::Row;

use aligned::AlignedWindows;
use count::CountWindows;
use partitioned::Partitions;
use rows::{Keyed, Rows, row_bytes};
use session::SessionWindows;
use sliding::SlidingWindows;
use state::StateWindows;
pub use state::Verdict;

/// A window operator's state at one moment ([`WindowOperator::snapshot`]).
#[derive(Debug)]
pub struct WindowSnapshot(WindowOperator);

impl WindowSnapshot {
    /// The state, encoded for [`WindowOperator::restore`].
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(&self.0).map_err(|e| format!("the window state could not be encoded: {e}"))
    }
}

/// One closed window: its bounds and its rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowBatch {
    /// Start, in Unix milliseconds (inclusive, except for sliding windows).
    pub start: i64,
    /// End, in Unix milliseconds (exclusive, except for sliding and count windows).
    pub end: i64,
    /// The rows, in arrival order (processing time) or timestamp order (event time).
    pub rows: Vec<Row>,
}

/// Which time decides the windows of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeMode {
    /// The processing time at which the row arrives (`now`).
    #[default]
    Processing,
    /// The row's `timestamp`, with a watermark that lags the greatest
    /// timestamp seen by `late_tolerance_ms` (negative counts as 0).
    Event {
        /// How late, in milliseconds, a row may arrive behind the greatest
        /// timestamp seen (eKuiper's `lateTolerance`).
        late_tolerance_ms: i64,
    },
}

/// The window state machine of one rule. See the [module](self) documentation.
///
/// Its serialized form ([`save`](Self::save)) is its state, not its
/// configuration: the time mode and byte budget come from the rule.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowOperator {
    windows: Windows,
    #[serde(skip)]
    mode: TimeMode,
    /// Processing time: the latest `now` seen. Event time: the watermark.
    clock: Option<i64>,
    /// Event time: the greatest timestamp seen.
    max_timestamp: Option<i64>,
    /// Event time over several streams: the greatest timestamp seen of each.
    #[serde(default)]
    stream_max: Vec<Option<i64>>,
    /// Event time: accepted rows not yet reached by the watermark, by timestamp.
    pending: VecDeque<Row>,
    /// About how many bytes the rows of `pending` take.
    pending_bytes: usize,
    late_dropped: u64,
    /// The most bytes of rows held; the oldest past it are dropped.
    #[serde(skip)]
    max_bytes: usize,
    evicted: u64,
    /// The conditions of a sliding window's `OVER (WHEN …)` or of a state window.
    #[serde(skip)]
    conditions: Option<WindowConditions>,
    /// Windows per partition of the source ([`with_partitions`](Self::with_partitions)):
    /// this operator then only dispatches.
    #[serde(skip)]
    partitions: Option<Box<Partitions>>,
}

/// What the rule's conditions say of a row: whether it triggers a sliding
/// window, or begins or closes a state window, and in which partition
/// ([`WindowOperator::with_conditions`]).
#[derive(Clone)]
pub struct WindowConditions(pub Arc<dyn Fn(&Row) -> Verdict + Send + Sync>);

impl std::fmt::Debug for WindowConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowConditions")
    }
}

impl WindowOperator {
    /// A window operator for `spec`, with no rows.
    pub fn new(spec: &WindowSpec, mode: TimeMode) -> Self {
        let windows = match *spec {
            WindowSpec::Tumbling { unit, length } => {
                let length = millis(unit, length);
                Windows::Aligned(AlignedWindows::new(length, length))
            }
            WindowSpec::Hopping { unit, length, interval } => {
                Windows::Aligned(AlignedWindows::new(millis(unit, length), millis(unit, interval)))
            }
            WindowSpec::Sliding { unit, length, delay } => {
                Windows::Sliding(SlidingWindows::new(millis(unit, length), delay.map_or(0, |d| millis(unit, d))))
            }
            WindowSpec::Session { unit, length, timeout } => {
                Windows::Session(SessionWindows::new(millis(unit, length), millis(unit, timeout)))
            }
            WindowSpec::State { begin_and_emit } => Windows::State(StateWindows::new(begin_and_emit)),
            WindowSpec::Count { length, interval } => {
                let length = usize::try_from(length).unwrap_or(usize::MAX).max(1);
                let interval = interval.map_or(length, |i| usize::try_from(i).unwrap_or(usize::MAX).max(1));
                Windows::Count(CountWindows::new(length, interval))
            }
        };
        Self::of(windows, mode)
    }

    /// The rows of a rule without a window in event time, one at a time, in
    /// the order of their timestamps once the watermark passes them; late
    /// ones dropped and counted ([`late_dropped`](Self::late_dropped)), as
    /// eKuiper's watermark does. Each comes out as a batch of its own.
    pub fn event_order(late_tolerance_ms: i64) -> Self {
        Self::of(Windows::Each, TimeMode::Event { late_tolerance_ms })
    }

    fn of(windows: Windows, mode: TimeMode) -> Self {
        let mode = match mode {
            TimeMode::Event { late_tolerance_ms } => TimeMode::Event { late_tolerance_ms: late_tolerance_ms.max(0) },
            TimeMode::Processing => TimeMode::Processing,
        };
        Self {
            windows,
            mode,
            clock: None,
            max_timestamp: None,
            stream_max: Vec::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            late_dropped: 0,
            max_bytes: usize::MAX,
            evicted: 0,
            conditions: None,
            partitions: None,
        }
    }

    /// Rows from `streams` streams (a rule that joins streams), each numbered
    /// in [`on_event_from`](Self::on_event_from): in event time, the
    /// watermark follows the slowest of them, as eKuiper's does, and moves
    /// only once each has sent an event.
    pub fn with_streams(mut self, streams: usize) -> Self {
        self.stream_max = if streams > 1 { vec![None; streams] } else { Vec::new() };
        self
    }

    /// The conditions of the windows: only the rows whose [`Verdict::first`]
    /// is true trigger a sliding window (eKuiper's `SLIDINGWINDOW(...) OVER
    /// (WHEN condition)`; the others are still in the windows of those that
    /// do), and a state window begins and closes by them. Evaluated as a row
    /// enters its window (in event time, once the watermark reaches it).
    pub fn with_conditions(mut self, conditions: WindowConditions) -> Self {
        self.conditions = Some(conditions);
        self
    }

    /// Windows of their own for each partition of the source, named by the
    /// rows' metadata `meta_key` (module `partitioned`); set last, once the
    /// operator is otherwise configured.
    pub fn with_partitions(mut self, meta_key: &str) -> Self {
        self.partitions = Some(Box::new(Partitions::new(meta_key, self.clone())));
        self
    }

    /// Whether it keeps windows per partition ([`with_partitions`](Self::with_partitions)).
    pub fn is_partitioned(&self) -> bool {
        self.partitions.is_some()
    }

    /// Drops what it holds of `partition`, whose events are read again.
    pub fn restart_partition(&mut self, partition: &str) {
        self.retain_partitions(|p| p != partition);
    }

    /// Forgets the partitions `keep` says no longer come here, and the rows
    /// of their open windows (another server has them now).
    pub fn retain_partitions(&mut self, keep: impl Fn(&str) -> bool) {
        if let Some(partitions) = self.partitions.as_deref_mut() {
            partitions.retain(keep);
        }
    }

    /// Puts a row into its windows at `key`, with its conditions' verdict.
    fn insert(&mut self, row: Row, key: i64, out: &mut Vec<WindowBatch>) {
        let verdict = match (&self.windows, &self.conditions) {
            (Windows::Sliding(_) | Windows::State(_), Some(conditions)) => (conditions.0)(&row),
            _ => Verdict { first: true, ..Verdict::default() },
        };
        self.windows.insert(row, key, verdict, out);
    }

    /// Emit tumbling and hopping windows even when they hold no row, as
    /// eKuiper does. In processing time they start with the first window that
    /// ends after the first call; in event time, with the first row's window.
    /// Other windows are never empty. Off by default.
    pub fn with_emit_empty(mut self, emit_empty: bool) -> Self {
        if let Windows::Aligned(w) = &mut self.windows {
            w.emit_empty = emit_empty;
        }
        self
    }

    /// Align tumbling and hopping boundaries and session cuts to a local time
    /// `offset_ms` ahead of UTC (`8 * 3_600_000` for UTC+8), so that a day
    /// window ends at local midnight. Default 0 (UTC).
    pub fn with_utc_offset(mut self, offset_ms: i64) -> Self {
        match &mut self.windows {
            Windows::Aligned(w) => w.offset = offset_ms,
            Windows::Session(w) => w.offset = offset_ms,
            Windows::Sliding(_) | Windows::Count(_) | Windows::State(_) | Windows::Each => {}
        }
        self
    }

    /// A row arrives at processing time `now` (Unix ms). Returns the windows
    /// that closed, oldest first: count and sliding windows it triggers, and in
    /// event time the windows the watermark passed.
    pub fn on_event(&mut self, row: Row, now: i64) -> Vec<WindowBatch> {
        self.on_event_from(0, row, now)
    }

    /// A row of stream `stream` (see [`with_streams`](Self::with_streams))
    /// arrives at processing time `now`: as [`on_event`](Self::on_event).
    pub fn on_event_from(&mut self, stream: usize, row: Row, now: i64) -> Vec<WindowBatch> {
        if let Some(partitions) = self.partitions.as_deref_mut() {
            return partitions.on_event(row, now);
        }
        let mut out = Vec::new();
        match self.mode {
            TimeMode::Processing => {
                let now = self.processing_now(now);
                self.insert(row, now, &mut out);
                self.windows.advance(now, &mut out);
            }
            TimeMode::Event { late_tolerance_ms } => {
                let timestamp = row.timestamp;
                if self.clock.is_some_and(|watermark| timestamp < watermark) {
                    self.late_dropped += 1;
                    return out;
                }
                let at = self.pending.partition_point(|r| r.timestamp <= timestamp);
                self.pending_bytes += row_bytes(&row);
                self.pending.insert(at, row);
                self.advance_watermark(stream, timestamp, late_tolerance_ms, &mut out);
            }
        }
        self.enforce_budget();
        out
    }

    /// Every row a window still needs, and every row the watermark has not
    /// reached yet: what a restart from the source must read again.
    pub fn held_rows(&self) -> Box<dyn Iterator<Item = &Row> + '_> {
        match self.partitions.as_deref() {
            Some(partitions) => Box::new(partitions.rows()),
            None => Box::new(self.windows.rows().chain(&self.pending)),
        }
    }

    /// Whether it runs in event time.
    pub fn is_event_time(&self) -> bool {
        matches!(self.mode, TimeMode::Event { .. })
    }

    /// An event of event time `timestamp` reached the rule, whether or not it
    /// passed WHERE (or found its join): in event time the watermark moves
    /// with it, as eKuiper's moves at the source. Returns the windows that
    /// closed. Nothing in processing time.
    pub fn observe(&mut self, stream: usize, timestamp: i64) -> Vec<WindowBatch> {
        let mut out = Vec::new();
        if let (TimeMode::Event { late_tolerance_ms }, None) = (self.mode, &self.partitions) {
            self.advance_watermark(stream, timestamp, late_tolerance_ms, &mut out);
        }
        out
    }

    /// Moves the watermark for an event at `timestamp`: the rows it passes go
    /// from pending into their windows, and the windows it passes close.
    fn advance_watermark(&mut self, stream: usize, timestamp: i64, late_tolerance_ms: i64, out: &mut Vec<WindowBatch>) {
        let max = self.max_timestamp.map_or(timestamp, |m| m.max(timestamp));
        self.max_timestamp = Some(max);
        if let Some(seen) = self.stream_max.get_mut(stream) {
            *seen = Some(seen.map_or(timestamp, |m| m.max(timestamp)));
        }
        let slowest = match self.stream_max.as_slice() {
            [] => Some(max),
            streams => streams.iter().copied().min().flatten(),
        };
        let Some(slowest) = slowest else { return };
        let watermark = slowest.saturating_sub(late_tolerance_ms);
        let watermark = self.clock.map_or(watermark, |w| w.max(watermark));
        self.clock = Some(watermark);
        while self.pending.front().is_some_and(|r| r.timestamp <= watermark) {
            let Some(row) = self.pending.pop_front() else { break };
            self.pending_bytes -= row_bytes(&row);
            let key = row.timestamp;
            self.insert(row, key, out);
        }
        self.windows.advance(watermark, out);
    }

    /// The input has ended (a bounded source finished): every row waiting for
    /// the watermark enters its windows, and every window holding rows
    /// closes, oldest first. Count and state windows, which close on rows
    /// rather than on time, keep theirs, as eKuiper's do.
    pub fn finish(&mut self) -> Vec<WindowBatch> {
        if let Some(partitions) = self.partitions.as_deref_mut() {
            return partitions.finish();
        }
        let mut out = Vec::new();
        while let Some(row) = self.pending.pop_front() {
            self.pending_bytes -= row_bytes(&row);
            let key = row.timestamp;
            self.insert(row, key, &mut out);
        }
        if let Windows::Aligned(w) = &mut self.windows {
            // Only the windows that hold rows: there is no time after this.
            w.emit_empty = false;
        }
        self.windows.advance(i64::MAX, &mut out);
        out
    }

    /// Processing time has reached `now` (Unix ms). Returns the windows that
    /// closed by then, oldest first. Does nothing in event time, where only
    /// events move the watermark.
    pub fn on_tick(&mut self, now: i64) -> Vec<WindowBatch> {
        if let Some(partitions) = self.partitions.as_deref_mut() {
            return partitions.on_tick(now);
        }
        let mut out = Vec::new();
        if self.mode == TimeMode::Processing {
            let now = self.processing_now(now);
            self.windows.advance(now, &mut out);
        }
        out
    }

    /// When (processing time, Unix ms) the runtime should call
    /// [`on_tick`](Self::on_tick) next: the end of the earliest pending window
    /// that holds rows (any pending window, with
    /// [`with_emit_empty`](Self::with_emit_empty)), the next delayed sliding
    /// window, or the timeout or cut of the open session. `None` when nothing
    /// waits for time: no rows, count windows, sliding windows without delay,
    /// and event time.
    pub fn next_deadline(&self) -> Option<i64> {
        if let Some(partitions) = self.partitions.as_deref() {
            return partitions.next_deadline();
        }
        match self.mode {
            TimeMode::Processing => self.windows.deadline(),
            TimeMode::Event { .. } => None,
        }
    }

    /// Its state (the rows it holds, its windows, its clock), for a
    /// checkpoint: see [`restore`](Self::restore).
    pub fn save(&self) -> Result<Vec<u8>, String> {
        self.snapshot().encode()
    }

    /// Its state now, to be encoded elsewhere: the rows of its windows are
    /// shared with it, not copied (those not yet reached by the event-time
    /// watermark, a few, are).
    pub fn snapshot(&self) -> WindowSnapshot {
        WindowSnapshot(self.clone())
    }

    /// Takes the state that [`save`](Self::save) returned, keeping its own
    /// time mode and byte budget. Refuses the state of another window kind.
    pub fn restore(&mut self, saved: &[u8]) -> Result<(), String> {
        let saved: Self =
            postcard::from_bytes(saved).map_err(|e| format!("the saved window state could not be read: {e}"))?;
        if std::mem::discriminant(&saved.windows) != std::mem::discriminant(&self.windows) {
            return Err("the saved window state is of another window kind".to_owned());
        }
        *self = Self { mode: self.mode, max_bytes: self.max_bytes, conditions: self.conditions.take(), ..saved };
        Ok(())
    }

    /// Rows dropped because their timestamp was behind the watermark.
    pub fn late_dropped(&self) -> u64 {
        self.partitions.as_deref().map_or(self.late_dropped, Partitions::late_dropped)
    }

    /// Rows held now, waiting for their windows to close.
    pub fn buffered(&self) -> usize {
        match self.partitions.as_deref() {
            Some(partitions) => partitions.sum(WindowOperator::buffered),
            None => self.windows.held().0 + self.pending.len(),
        }
    }

    /// Keeps the rows held within `max_bytes` (estimated in memory): past it,
    /// the oldest rows are dropped and counted ([`evicted`](Self::evicted)).
    /// Unbounded by default.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Rows dropped, oldest first, to keep the rows held within the byte budget.
    pub fn evicted(&self) -> u64 {
        self.partitions.as_deref().map_or(self.evicted, Partitions::evicted)
    }

    /// About how many bytes the rows held take.
    pub fn held_bytes(&self) -> usize {
        match self.partitions.as_deref() {
            Some(partitions) => partitions.sum(WindowOperator::held_bytes),
            None => self.windows.held().1 + self.pending_bytes,
        }
    }

    /// Drops the oldest rows held until they fit the byte budget: first those
    /// of the windows, then (event time) those the watermark has not reached.
    fn enforce_budget(&mut self) {
        while self.held_bytes() > self.max_bytes {
            if !self.windows.evict_oldest() {
                let Some(row) = self.pending.pop_front() else { break };
                self.pending_bytes -= row_bytes(&row);
            }
            self.evicted += 1;
        }
    }

    /// Event time: the watermark (greatest timestamp seen minus the late
    /// tolerance). Processing time: the latest `now` seen. `None` before the
    /// first call.
    pub fn watermark(&self) -> Option<i64> {
        self.partitions.as_deref().map_or(self.clock, Partitions::watermark)
    }

    /// The processing time to use for `now`: never before one already seen.
    /// The first call anchors windows that emit even when empty.
    fn processing_now(&mut self, now: i64) -> i64 {
        match self.clock {
            Some(clock) if clock >= now => clock,
            Some(_) => {
                self.clock = Some(now);
                now
            }
            None => {
                self.clock = Some(now);
                if let Windows::Aligned(w) = &mut self.windows {
                    w.anchor(now);
                }
                now
            }
        }
    }
}

/// The window kinds. Each gets rows with non-decreasing keys (their time) via
/// `insert`, and time via `advance`, where every key inserted so far is at or
/// before the time advanced to, and later keys are at or after it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Windows {
    Aligned(AlignedWindows),
    Sliding(SlidingWindows),
    Session(SessionWindows),
    Count(CountWindows),
    State(StateWindows),
    /// No window: each row on its own ([`WindowOperator::event_order`]).
    Each,
}

impl Windows {
    fn insert(&mut self, row: Row, key: i64, verdict: Verdict, out: &mut Vec<WindowBatch>) {
        match self {
            Windows::Aligned(w) => w.insert(row, key),
            Windows::Sliding(w) => w.insert(row, key, verdict.first),
            Windows::Session(w) => w.insert(row, key, out),
            Windows::Count(w) => w.insert(row, key, out),
            Windows::State(w) => w.insert(row, key, verdict, out),
            Windows::Each => out.push(WindowBatch { start: key, end: key, rows: vec![row] }),
        }
    }

    fn advance(&mut self, now: i64, out: &mut Vec<WindowBatch>) {
        match self {
            Windows::Aligned(w) => w.advance(now, out),
            Windows::Sliding(w) => w.advance(now, out),
            Windows::Session(w) => w.advance(now, out),
            Windows::Count(_) | Windows::State(_) | Windows::Each => {}
        }
    }

    fn deadline(&self) -> Option<i64> {
        match self {
            Windows::Aligned(w) => w.deadline(),
            Windows::Sliding(w) => w.deadline(),
            Windows::Session(w) => w.deadline(),
            Windows::Count(_) | Windows::State(_) | Windows::Each => None,
        }
    }

    /// How many rows it holds, and about how many bytes.
    fn held(&self) -> (usize, usize) {
        let rows = match self {
            Windows::Aligned(w) => &w.rows,
            Windows::Sliding(w) => &w.rows,
            Windows::Session(w) => &w.rows,
            Windows::Count(w) => &w.rows,
            Windows::State(w) => return w.held(),
            Windows::Each => return (0, 0),
        };
        (rows.len(), rows.bytes())
    }

    /// Every row it holds, in no particular order.
    fn rows(&self) -> Box<dyn Iterator<Item = &Row> + '_> {
        let rows = match self {
            Windows::Aligned(w) => &w.rows,
            Windows::Sliding(w) => &w.rows,
            Windows::Session(w) => &w.rows,
            Windows::Count(w) => &w.rows,
            Windows::State(w) => return Box::new(w.rows()),
            Windows::Each => return Box::new(std::iter::empty()),
        };
        Box::new(rows.iter().map(|k| k.row.as_ref()))
    }

    /// Drops the oldest row it holds; false when it holds none.
    fn evict_oldest(&mut self) -> bool {
        let rows = match self {
            Windows::Aligned(w) => &mut w.rows,
            Windows::Sliding(w) => &mut w.rows,
            Windows::Session(w) => &mut w.rows,
            Windows::Count(w) => &mut w.rows,
            Windows::State(w) => return w.evict_oldest(),
            Windows::Each => return false,
        };
        rows.pop_front().is_some()
    }
}

/// `count` units in milliseconds, at least 1, saturating at `i64::MAX`.
fn millis(unit: TimeUnit, count: u64) -> i64 {
    i64::try_from(count.saturating_mul(unit.millis())).unwrap_or(i64::MAX).max(1)
}

/// The first boundary strictly after `t`; boundaries are the times `b` where
/// `b + offset` is a multiple of `step`.
fn boundary_after(t: i64, step: i64, offset: i64) -> i64 {
    let step = i128::from(step);
    let shifted = i128::from(t) + i128::from(offset);
    clamp((shifted.div_euclid(step) + 1) * step - i128::from(offset))
}

/// The first boundary at or after `t` (see [`boundary_after`]).
fn boundary_at_or_after(t: i64, step: i64, offset: i64) -> i64 {
    boundary_after(t.saturating_sub(1), step, offset)
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}
