//! A sink task: delivers a rule's results to one sink, retrying what fails.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Results, STOP_GRACE};

/// What goes down a sink's queue: results, and the markers of checkpoints.
pub(super) enum ToSink {
    /// Results to deliver.
    Results(Results),
    /// Checkpoint `id` was taken after the results before this: acknowledged
    /// once they are all delivered.
    Barrier(u64),
}
use crate::metrics::{OperatorMetrics, now_ms};
use crate::value::Map;

/// Delivers results to one sink, retrying with backoff; what was acknowledged
/// is never sent again, what was not is retried until the rule stops. A
/// checkpoint's marker is acknowledged on `acks` once everything before it is
/// delivered.
pub(super) async fn run_sink(
    mut sink: Box<dyn crate::Sink>,
    mut rx: mpsc::Receiver<ToSink>,
    acks: Option<mpsc::UnboundedSender<u64>>,
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
        let results = tokio::select! {
            () = cancel.cancelled() => break,
            item = rx.recv() => match item {
                Some(ToSink::Results(results)) => results,
                Some(ToSink::Barrier(id)) => {
                    // Everything before the marker is delivered: made durable, it is acknowledged.
                    let mut attempt = 0;
                    while let Err(e) = flush(sink.as_mut(), opened).await {
                        metrics.record_exception(e.to_string());
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(RETRY.delay(attempt)) => attempt += 1,
                        }
                    }
                    if let Some(acks) = &acks {
                        let _ = acks.send(id);
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
            for rows in results.iter() {
                let mut attempt = 0;
                while let Err(e) = deliver(sink.as_mut(), &mut opened, rows).await {
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

/// Makes what an open sink was handed durable.
async fn flush(sink: &mut dyn crate::Sink, opened: bool) -> Result<(), crate::ConnectorError> {
    if opened { sink.flush().await } else { Ok(()) }
}

/// Opens the sink if it is not open yet, then hands it the rows.
async fn deliver(sink: &mut dyn crate::Sink, opened: &mut bool, rows: &[Map]) -> Result<(), crate::ConnectorError> {
    if !*opened {
        sink.open().await?;
        *opened = true;
    }
    sink.collect(rows).await
}
