//! Per-operator counters, named as eKuiper names them in a rule's status.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Counters of one operator, updated by the rule's task and read by status calls.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// Operator name, e.g. `source_demo_0`, `op_filter_0`, `sink_log_0`.
    pub name: String,
    records_in: AtomicU64,
    records_out: AtomicU64,
    exceptions: AtomicU64,
    dropped: AtomicU64,
    latency_us: AtomicI64,
    buffer_length: AtomicU64,
    last_invocation_ms: AtomicI64,
    last_exception: Mutex<Option<(String, i64)>>,
    /// Where its errors also go ([`OperatorMetrics::forward_errors`]).
    forward: std::sync::OnceLock<Arc<ErrorQueue>>,
}

/// The errors of a rule's operators on their way to its sinks (eKuiper's
/// `sendError`), oldest first. Holds [`ErrorQueue::CAPACITY`] at most: past
/// that, errors are only counted, as without `sendError`.
#[derive(Debug, Default)]
pub struct ErrorQueue(Mutex<Vec<String>>);

impl ErrorQueue {
    /// The most errors waiting for the rule to send them.
    pub const CAPACITY: usize = 1024;

    fn push(&self, message: &str) {
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() < Self::CAPACITY {
            queue.push(message.to_owned());
        }
    }

    /// The errors waiting, oldest first; none wait after.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A copy of an operator's counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorStatus {
    /// Operator name.
    pub name: String,
    /// Events received.
    pub records_in_total: u64,
    /// Events emitted.
    pub records_out_total: u64,
    /// Errors counted.
    pub exceptions_total: u64,
    /// Events dropped because the rule's input buffer was full.
    pub records_dropped_total: u64,
    /// Latency of the last event processed, in microseconds.
    pub process_latency_us: i64,
    /// Events waiting in the operator's buffer.
    pub buffer_length: u64,
    /// Last error message and its time (Unix ms).
    pub last_exception: Option<(String, i64)>,
    /// When it last processed an event (Unix ms), 0 if never.
    pub last_invocation_ms: i64,
}

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl OperatorMetrics {
    /// Fresh counters for an operator.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Default::default() }
    }

    /// Counts `n` events in and stamps the invocation time.
    pub fn record_in(&self, n: u64, now_ms: i64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        self.last_invocation_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Counts `n` events out.
    pub fn record_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` events dropped for want of room in the rule's buffer.
    pub fn record_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the processing latency of the last event.
    pub fn record_latency(&self, micros: i64) {
        self.latency_us.store(micros, Ordering::Relaxed);
    }

    /// Sets how many events wait in the buffer.
    pub fn set_buffer_length(&self, n: u64) {
        self.buffer_length.store(n, Ordering::Relaxed);
    }

    /// Counts an error and keeps its message.
    pub fn record_exception(&self, message: impl Into<String>) {
        self.exceptions.fetch_add(1, Ordering::Relaxed);
        let message = message.into();
        if let Some(queue) = self.forward.get() {
            queue.push(&message);
        }
        *self.last_exception.lock().unwrap_or_else(|p| p.into_inner()) = Some((message, now_ms()));
    }

    /// Also puts its errors in `queue`, for the rule to send them to its sinks.
    pub fn forward_errors(&self, queue: Arc<ErrorQueue>) {
        let _ = self.forward.set(queue);
    }

    /// Errors counted so far.
    pub fn exceptions_total(&self) -> u64 {
        self.exceptions.load(Ordering::Relaxed)
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> OperatorStatus {
        OperatorStatus {
            name: self.name.clone(),
            records_in_total: self.records_in.load(Ordering::Relaxed),
            records_out_total: self.records_out.load(Ordering::Relaxed),
            exceptions_total: self.exceptions.load(Ordering::Relaxed),
            records_dropped_total: self.dropped.load(Ordering::Relaxed),
            process_latency_us: self.latency_us.load(Ordering::Relaxed),
            buffer_length: self.buffer_length.load(Ordering::Relaxed),
            last_exception: self.last_exception.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            last_invocation_ms: self.last_invocation_ms.load(Ordering::Relaxed),
        }
    }
}
