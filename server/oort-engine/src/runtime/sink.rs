//! A sink task: delivers a rule's results to one sink, retrying what fails.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Results, STOP_GRACE};
use crate::metrics::{OperatorMetrics, now_ms};
use crate::value::Map;

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

/// Delivers results to one sink, retrying with backoff; what was acknowledged
/// is never sent again, what was not is retried until the rule stops. A
/// checkpoint's marker is acknowledged on `acks` once everything before it is
/// delivered.
pub(super) async fn run_sink(
    mut sink: Box<dyn crate::Sink>,
    mut rx: mpsc::Receiver<ToSink>,
    acks: Acks,
    metrics: Arc<OperatorMetrics>,
    cancel: CancellationToken,
) {
    const RETRY: crate::rule::RestartStrategy = crate::rule::RestartStrategy {
        attempts: u32::MAX,
        delay_ms: 100,
        multiplier: 2.0,
        max_delay_ms: 10_000,
        jitter_factor: 0.0,
    };
    let mut opened = false;
    loop {
        let (first, results) = tokio::select! {
            () = cancel.cancelled() => break,
            item = rx.recv() => match item {
                Some(ToSink::Results(first, results)) => (first, results),
                Some(ToSink::Barrier(id)) => {
                    // Everything before the marker is delivered: made durable, it is acknowledged.
                    let mut attempt = 0;
                    let mark = loop {
                        match flush(sink.as_mut(), &mut opened).await {
                            Ok(mark) => break mark,
                            Err(e) => metrics.record_exception(e.to_string()),
                        }
                        tokio::select! {
                            () = cancel.cancelled() => break None,
                            () = tokio::time::sleep(RETRY.delay(attempt)) => attempt += 1,
                        }
                    };
                    if let Some((acks, sink)) = &acks {
                        let _ = acks.send(Ack { id, sink: *sink, mark });
                    }
                    continue;
                }
                None => break,
            },
        };
        let rows: usize = results.iter().map(Vec::len).sum();
        metrics.record_in(rows as u64, now_ms());
        metrics.set_buffer_length(rx.len() as u64);
        let started = Instant::now();
        let deliver_all = async {
            for (sequence, rows) in (first..).zip(results.iter()) {
                let mut attempt = 0;
                while let Err(e) = deliver(sink.as_mut(), &mut opened, sequence, rows).await {
                    metrics.record_exception(e.to_string());
                    tokio::time::sleep(RETRY.delay(attempt)).await;
                    attempt += 1;
                }
                metrics.record_out(rows.len() as u64);
            }
        };
        // One select a batch, not a result: a sink that hangs (a peer that
        // never answers) must not keep the rule from stopping.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = deliver_all => {}
        }
        // One clock read per batch: the latency reported is the batch's mean per result.
        metrics.record_latency((started.elapsed().as_micros() / results.len().max(1) as u128) as i64);
    }
    if opened {
        let _ = tokio::time::timeout(STOP_GRACE, sink.close()).await;
    }
}

/// Opens the sink if it is not open yet (so that one restarting from a
/// checkpoint takes back what followed it), then makes what it was handed
/// durable; returns its mark.
async fn flush(sink: &mut dyn crate::Sink, opened: &mut bool) -> Result<Option<Vec<u8>>, crate::ConnectorError> {
    if !*opened {
        sink.open().await?;
        *opened = true;
    }
    sink.flush().await
}

/// Opens the sink if it is not open yet, then hands it result `sequence`.
async fn deliver(
    sink: &mut dyn crate::Sink,
    opened: &mut bool,
    sequence: u64,
    rows: &[Map],
) -> Result<(), crate::ConnectorError> {
    if !*opened {
        sink.open().await?;
        *opened = true;
    }
    sink.collect_numbered(sequence, rows).await
}
