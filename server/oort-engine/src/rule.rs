//! What the engine is asked to run: a rule's definition, independent of how the
//! server stores or receives it.

use serde_json::Map as JsonMap;

/// A rule to plan and run.
#[derive(Debug, Clone, Default)]
pub struct RuleDefinition {
    /// Rule id.
    pub id: String,
    /// One eKuiper SELECT statement.
    pub sql: String,
    /// Where results go.
    pub actions: Vec<ActionDefinition>,
    /// Runtime options.
    pub options: RuleOptions,
}

/// One action of a rule.
#[derive(Debug, Clone, Default)]
pub struct ActionDefinition {
    /// Sink type.
    pub sink_type: String,
    /// Sink properties.
    pub props: JsonMap<String, serde_json::Value>,
}

/// Runtime options, with eKuiper's defaults.
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// Use the stream's TIMESTAMP field as event time.
    pub is_event_time: bool,
    /// How late an event may arrive with event time, in ms.
    pub late_tolerance_ms: i64,
    /// Capacity of the buffers between the source, the rule and each sink.
    pub buffer_length: usize,
    /// What happens to an event pushed while the rule's input buffer is full.
    pub buffer_full: crate::connector::BufferFull,
    /// The delivery guarantee its `qos` asks for.
    pub qos: crate::delivery::Guarantee,
    /// How often a rule whose `qos` asks for at least once saves a
    /// checkpoint, in ms (eKuiper's `checkpointInterval`; 300,000 by default).
    pub checkpoint_interval_ms: u64,
    /// Pass source metadata to sinks.
    pub send_meta_to_sink: bool,
    /// Send the errors of its operators to its sinks as `{"error": "..."}`
    /// results (eKuiper's `sendError`), besides counting them.
    pub send_error: bool,
    /// How many batches of events are evaluated at once, on as many threads
    /// (eKuiper's `concurrency`; results keep the order of the events). Only
    /// for a rule that keeps no state between events (no window, no analytic
    /// function). 1 by default.
    pub concurrency: usize,
    /// Log every result of the rule (eKuiper's `debug`), at INFO with the
    /// target `oort::rule_debug`.
    pub debug: bool,
    /// Output SELECT items whose value is NULL, as nulls (eKuiper's
    /// `sendNilField`); by default they are left out.
    pub send_nil_field: bool,
    /// How the source is restarted after it dies.
    pub restart: RestartStrategy,
}

impl Default for RuleOptions {
    fn default() -> Self {
        Self {
            is_event_time: false,
            late_tolerance_ms: 1000,
            buffer_length: 1024,
            buffer_full: crate::connector::BufferFull::Drop,
            qos: crate::delivery::Guarantee::AtMostOnce,
            checkpoint_interval_ms: 300_000,
            send_meta_to_sink: false,
            send_error: false,
            concurrency: 1,
            debug: false,
            send_nil_field: false,
            restart: RestartStrategy::default(),
        }
    }
}

/// Exponential backoff for restarting a dead source.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartStrategy {
    /// Restarts tried before the rule fails; 0 means none.
    pub attempts: u32,
    /// First delay, in ms.
    pub delay_ms: u64,
    /// Factor applied after each attempt.
    pub multiplier: f64,
    /// Upper bound of the delay, in ms.
    pub max_delay_ms: u64,
    /// Random jitter as a fraction of the delay.
    pub jitter_factor: f64,
}

impl Default for RestartStrategy {
    fn default() -> Self {
        Self { attempts: 0, delay_ms: 1000, multiplier: 2.0, max_delay_ms: 30_000, jitter_factor: 0.1 }
    }
}

impl RestartStrategy {
    /// The delay before restart number `attempt` (from 0), without jitter.
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        let factor = self.multiplier.max(1.0).powi(attempt.min(64) as i32);
        let ms = (self.delay_ms as f64 * factor).min(self.max_delay_ms as f64);
        std::time::Duration::from_millis(ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RestartStrategy { attempts: 5, delay_ms: 100, multiplier: 2.0, max_delay_ms: 500, jitter_factor: 0.0 };
        let delays: Vec<u64> = (0..5).map(|a| r.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }
}
