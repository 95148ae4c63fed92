//! A sink task: delivers a rule's results to one sink. Without a cache, a
//! result that fails is retried until it is delivered, and the results after
//! it wait (the rule slows down to its sink); with one (`enableCache`), it
//! waits in the [`SinkCache`] and is sent again from there, while the rule
//! goes on.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Results, STOP_GRACE};
use crate::metrics::{OperatorMetrics, now_ms};
use crate::rule::RestartStrategy;
use crate::sink_batch::Batch;
use crate::sink_cache::{CachedResult, ResendPriority, SinkCache, SinkCacheConfig, SinkCacheError};
use crate::value::{Map, Value};

/// What goes down a sink's queue: results, and the markers of checkpoints.
pub(super) enum ToSink {
    /// Results to deliver, the first of them with this sequence number.
    Results(u64, Results),
    /// Checkpoint `id` was taken after the results before this: acknowledged
    /// once they are all delivered.
    Barrier(u64),
}

/// A sink has delivered, durably, every result before checkpoint `id`.
pub(super) struct Ack {
    pub(super) id: u64,
    /// Which of the rule's sinks.
    pub(super) sink: usize,
    /// Where it can be taken back to ([`crate::Sink::flush`]).
    pub(super) mark: Option<Vec<u8>>,
}

/// Where a sink acknowledges checkpoints: the channel and its index.
pub(super) type Acks = Option<(mpsc::UnboundedSender<Ack>, usize)>;

/// What the sink's exceptions say when its cache drops results.
const FULL: &str = "the sink cache is full (maxDiskCache, or the server's max_sink_cache_bytes): its oldest results \
                    were dropped";

/// The backoff between two attempts at a result that fails.
const RETRY: RestartStrategy =
    RestartStrategy { attempts: u32::MAX, delay_ms: 100, multiplier: 2.0, max_delay_ms: 10_000, jitter_factor: 0.0 };

/// A sink's cache and when to try it next.
pub(super) struct Resend {
    /// `None` only while a blocking thread works on it.
    cache: Option<SinkCache>,
    config: SinkCacheConfig,
    next_try: tokio::time::Instant,
    /// Failures in a row of the last results sent.
    failures: u32,
}

impl Resend {
    pub(super) fn new(cache: SinkCache, config: SinkCacheConfig) -> Self {
        Self { cache: Some(cache), config, next_try: tokio::time::Instant::now(), failures: 0 }
    }

    fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, SinkCache::len)
    }

    /// Runs `f` on the cache on a blocking thread: it may write and sync files.
    async fn on_disk<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut SinkCache) -> Result<T, SinkCacheError> + Send + 'static,
    ) -> Result<T, SinkCacheError> {
        let Some(mut cache) = self.cache.take() else { return Err(SinkCacheError::Abandoned) };
        let (cache, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = f(&mut cache);
            (cache, outcome)
        })
        .await
        .expect("a sink cache operation panicked");
        self.cache = Some(cache);
        outcome
    }

    /// The next result was sent, or failed: when to try the cache again.
    fn schedule(&mut self, delivered: bool) {
        let wait = if delivered {
            self.failures = 0;
            self.config.resend_interval
        } else {
            self.failures = self.failures.saturating_add(1);
            RETRY.delay(self.failures - 1)
        };
        self.next_try = tokio::time::Instant::now() + wait;
    }
}

/// Delivers a rule's results to one sink until the rule stops.
pub(super) struct SinkTask {
    pub(super) sink: Box<dyn crate::Sink>,
    pub(super) acks: Acks,
    pub(super) metrics: Arc<OperatorMetrics>,
    pub(super) cancel: CancellationToken,
    pub(super) resend: Option<Resend>,
    /// With `batchSize` or `lingerInterval`: the rows held for the next batch.
    pub(super) batch: Option<Batch>,
    pub(super) opened: bool,
    /// Whether a result keeps its number when replayed (the rule restores
    /// its checkpoints): only then is the number handed to the sink, which
    /// makes an idempotency key of it. Numbers that start again at each run,
    /// or on each server, would make a receiver drop new results as repeats.
    pub(super) stable_numbers: bool,
}

/// What the sink task does next.
enum Next {
    /// Sends the oldest cached result.
    Resend,
    /// Results or a checkpoint's marker from the rule.
    Item(ToSink),
    /// Sends the batch held, its linger over.
    Linger,
}

impl SinkTask {
    /// Takes results and checkpoint markers from `rx`, and sends from the
    /// cache when it is time, until the rule stops.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<ToSink>) {
        let cancel = self.cancel.clone();
        loop {
            let resend_at = self.resend_at(&rx);
            let linger_at = self.batch.as_ref().and_then(Batch::deadline);
            let takes_new = self.takes_new();
            let next = tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(resend_at.unwrap_or_else(tokio::time::Instant::now)),
                    if resend_at.is_some() => Next::Resend,
                () = tokio::time::sleep_until(linger_at.unwrap_or_else(tokio::time::Instant::now)),
                    if linger_at.is_some() => Next::Linger,
                item = rx.recv(), if takes_new => match item {
                    Some(item) => Next::Item(item),
                    None => break,
                },
            };
            // One select a batch, not a result: a sink that hangs (a peer that
            // never answers) must not keep the rule from stopping.
            let work = async {
                match next {
                    Next::Resend => self.resend_one().await,
                    Next::Linger => self.send_held().await,
                    Next::Item(ToSink::Results(first, results)) => self.deliver(first, results).await,
                    Next::Item(ToSink::Barrier(id)) => {
                        self.send_held().await;
                        self.barrier(id).await
                    }
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = work => {}
            }
            let cached = self.resend.as_ref().map_or(0, Resend::len);
            self.metrics.set_buffer_length((rx.len() + cached) as u64);
        }
        self.stop().await;
    }

    /// When to send from the cache next; `None` when it is empty, or (new
    /// results first) while new results wait.
    fn resend_at(&self, rx: &mpsc::Receiver<ToSink>) -> Option<tokio::time::Instant> {
        let resend = self.resend.as_ref().filter(|r| r.len() > 0)?;
        let new_first = resend.config.alter_queue && resend.config.priority == ResendPriority::NewFirst;
        (!new_first || rx.is_empty()).then_some(resend.next_try)
    }

    /// Whether to take new results now: not while cached results go first
    /// and the sink delivers.
    fn takes_new(&self) -> bool {
        let Some(resend) = &self.resend else { return true };
        let cache_first = resend.config.alter_queue && resend.config.priority == ResendPriority::CacheFirst;
        !(cache_first && resend.len() > 0 && resend.failures == 0)
    }

    /// Delivers a batch of results: without a cache, each until it is
    /// delivered; with one, each once, into the cache if it fails (or,
    /// without the alternate queue, at once while the cache holds older ones).
    async fn deliver(&mut self, first: u64, results: Results) {
        let rows: usize = results.iter().map(Vec::len).sum();
        self.metrics.record_in(rows as u64, now_ms());
        let started = Instant::now();
        for (sequence, rows) in (first..).zip(results.iter()) {
            match self.batch.as_mut() {
                Some(batch) => {
                    for (sequence, rows) in batch.push(sequence, rows) {
                        self.deliver_one(sequence, &rows).await;
                    }
                }
                None => self.deliver_one(sequence, rows).await,
            }
        }
        // One clock read per batch: the latency reported is the batch's mean per result.
        self.metrics.record_latency((started.elapsed().as_micros() / results.len().max(1) as u128) as i64);
    }

    /// Delivers one result: without a cache, until it is delivered; with
    /// one, once, into the cache if it fails.
    async fn deliver_one(&mut self, sequence: u64, rows: &[Map]) {
        let Some(resend) = &self.resend else {
            let mut attempt = 0;
            while let Err(e) = self.send(sequence, rows).await {
                self.metrics.record_exception(e.to_string());
                tokio::time::sleep(RETRY.delay(attempt)).await;
                attempt += 1;
            }
            return;
        };
        if !resend.config.alter_queue && resend.len() > 0 {
            self.cache(sequence, rows).await;
        } else if let Err(e) = self.send(sequence, rows).await {
            self.metrics.record_exception(e.to_string());
            self.cache(sequence, rows).await;
            if let Some(resend) = &mut self.resend {
                resend.schedule(false);
            }
        }
    }

    /// Delivers the batch held, if any (its linger is over, a checkpoint
    /// comes, or the rule stops).
    async fn send_held(&mut self) {
        if let Some((sequence, rows)) = self.batch.as_mut().and_then(Batch::take) {
            self.deliver_one(sequence, &rows).await;
        }
    }

    /// Puts a result in the cache; what that drops is counted.
    async fn cache(&mut self, sequence: u64, rows: &[Map]) {
        let Some(resend) = &mut self.resend else { return };
        let result = CachedResult { sequence, rows: rows.to_vec() };
        match resend.on_disk(move |cache| cache.push(result)).await {
            Ok(0) => {}
            Ok(dropped) => self.dropped(dropped, FULL),
            Err(e) => {
                self.metrics.record_exception(e.to_string());
                self.dropped(1, "the sink cache failed");
            }
        }
    }

    /// Sends the oldest cached result once.
    async fn resend_one(&mut self) {
        let Some(resend) = &mut self.resend else { return };
        let front = resend.on_disk(|cache| Ok(cache.front()?.cloned())).await;
        let mut result = match front {
            Ok(Some(result)) => result,
            Ok(None) => return,
            Err(e) => {
                let lost = match &e {
                    SinkCacheError::Damaged { lost, .. } => *lost,
                    SinkCacheError::Io { .. } | SinkCacheError::Abandoned => 0,
                };
                self.metrics.record_exception(e.to_string());
                self.metrics.record_dropped(lost as u64);
                resend.schedule(false);
                return;
            }
        };
        if let Some(field) = resend.config.indicator_field.clone().filter(|_| resend.config.alter_queue) {
            for row in &mut result.rows {
                row.insert(Arc::clone(&field), Value::Bool(true));
            }
        }
        let sent = self.send(result.sequence, &result.rows).await;
        let Some(resend) = &mut self.resend else { return };
        resend.schedule(sent.is_ok());
        match sent {
            Ok(()) => {
                if let Err(e) = resend.on_disk(SinkCache::pop).await {
                    self.metrics.record_exception(e.to_string());
                }
            }
            Err(e) => self.metrics.record_exception(e.to_string()),
        }
    }

    /// Everything before checkpoint `id` is delivered or in the cache: made
    /// durable, it is acknowledged.
    async fn barrier(&mut self, id: u64) {
        let mut attempt = 0;
        let mark = loop {
            match self.make_durable().await {
                Ok(mark) => break mark,
                Err(e) => self.metrics.record_exception(e),
            }
            tokio::time::sleep(RETRY.delay(attempt)).await;
            attempt += 1;
        };
        if let Some((acks, sink)) = &self.acks {
            let _ = acks.send(Ack { id, sink: *sink, mark });
        }
    }

    /// Writes the cache to disk and flushes the sink ([`crate::Sink::flush`]);
    /// returns its mark. A sink with a cache has none: what it sends from
    /// the cache after a checkpoint belongs before it.
    async fn make_durable(&mut self) -> Result<Option<Vec<u8>>, String> {
        if let Some(resend) = &mut self.resend {
            let dropped = resend.on_disk(SinkCache::persist).await.map_err(|e| e.to_string())?;
            if dropped > 0 {
                self.dropped(dropped, FULL);
            }
        }
        self.open().await.map_err(|e| e.to_string())?;
        let mark = self.sink.flush().await.map_err(|e| e.to_string())?;
        Ok(mark.filter(|_| self.resend.is_none()))
    }

    /// Opens the sink if it is not open yet (so that one restarting from a
    /// checkpoint takes back what followed it first).
    async fn open(&mut self) -> Result<(), crate::ConnectorError> {
        if !self.opened {
            self.sink.open().await?;
            self.opened = true;
        }
        Ok(())
    }

    /// Hands result `sequence` to the sink once.
    async fn send(&mut self, sequence: u64, rows: &[Map]) -> Result<(), crate::ConnectorError> {
        self.open().await?;
        if self.stable_numbers {
            self.sink.collect_numbered(sequence, rows).await?;
        } else {
            self.sink.collect(rows).await?;
        }
        self.metrics.record_out(rows.len() as u64);
        Ok(())
    }

    fn dropped(&self, n: usize, why: &str) {
        self.metrics.record_dropped(n as u64);
        self.metrics.record_exception(format!("{why} ({n})"));
    }

    /// The rule stops: the cache is kept on disk for its next start, or
    /// dropped (`cleanCacheAtStop`); the sink is closed.
    async fn stop(mut self) {
        // The batch held goes once, as far as the sink takes it in the grace.
        if let Some((sequence, rows)) = self.batch.as_mut().and_then(Batch::take) {
            match tokio::time::timeout(STOP_GRACE, self.send(sequence, &rows)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.dropped(rows.len(), &format!("the batch held at the stop was not sent: {e}")),
                Err(_) => self.dropped(rows.len(), "the batch held at the stop was not sent in time"),
            }
        }
        if let Some(mut resend) = self.resend.take() {
            let clean = resend.config.clean_at_stop;
            let outcome = resend.on_disk(move |cache| if clean { cache.clear() } else { cache.persist() });
            match tokio::time::timeout(STOP_GRACE, outcome).await {
                Ok(Ok(0)) => {}
                Ok(Ok(dropped)) if clean => tracing::info!(dropped, "the sink cache was cleaned as the rule stopped"),
                Ok(Ok(dropped)) => tracing::warn!(dropped, "{FULL}"),
                Ok(Err(e)) => tracing::warn!(error = %e, "the sink cache could not be kept as the rule stopped"),
                Err(_) => tracing::warn!("the sink cache took too long to keep as the rule stopped"),
            }
        }
        if self.opened {
            let _ = tokio::time::timeout(STOP_GRACE, self.sink.close()).await;
        }
    }
}
