//! The source task: runs a rule's source and restarts it per the rule's strategy.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{RuleState, Shared};
use crate::connector::{SourceConfig, SourceOutput};
use crate::metrics::OperatorMetrics;

/// Runs the source; when it dies, restarts it per the strategy, then marks the rule failed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn supervise_source(
    source: Box<dyn crate::Source>,
    factory: Arc<dyn crate::SourceFactory>,
    mut config: SourceConfig,
    tx: SourceOutput,
    shared: Arc<Shared>,
    metrics: Arc<OperatorMetrics>,
    restart: crate::rule::RestartStrategy,
    cancel: CancellationToken,
) {
    let mut attempt = 0;
    let mut next = Some(source);
    loop {
        // The first run uses the source built at start; each restart builds a fresh one.
        let source = match next.take() {
            Some(source) => source,
            None => {
                // A source that replays goes on after what the rule already has.
                if let Some(position) = tx.last_position() {
                    config.resume_after = Some(position);
                }
                match factory.build(&config) {
                    Ok(source) => source,
                    Err(e) => {
                        metrics.record_exception(e.to_string());
                        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                        *state = (RuleState::Failed, Some(e.to_string()), state.2);
                        break;
                    }
                }
            }
        };
        let result = source.run(tx.clone(), cancel.clone()).await;
        if cancel.is_cancelled() {
            break;
        }
        let message = match result {
            // A bounded source has given every event: the rule finishes (its
            // task emits the open windows once the buffer is drained), it is not
            // restarted to read the same events again.
            Ok(()) => {
                tracing::info!(rule = %config.rule_id, "source ended; the rule finishes");
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                state.0 = RuleState::Finished;
                break;
            }
            Err(e) => e.to_string(),
        };
        metrics.record_exception(message.clone());
        if attempt >= restart.attempts {
            tracing::error!(rule = %config.rule_id, error = %message, "source stopped; rule failed");
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            *state = (RuleState::Failed, Some(message), state.2);
            break;
        }
        let delay = restart.delay(attempt);
        attempt += 1;
        tracing::warn!(rule = %config.rule_id, error = %message, ?delay, attempt, "source died; restarting");
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1 = Some(message);
            state.2 += 1;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
