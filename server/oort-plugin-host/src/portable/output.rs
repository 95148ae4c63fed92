//! What a plugin process writes on stdout and stderr goes to the server's log,
//! within a budget: a burst of [`BURST`] lines, then [`PER_SECOND`] lines a
//! second. Lines over the budget are dropped and counted, and the count is
//! logged ("suppressed N lines") when the plugin is back within its budget or
//! its stream ends. A plugin that floods its output (hundreds of MiB in
//! seconds) then costs the server a counter, not its disk.

use std::sync::Mutex;
use std::time::Instant;

/// Lines a plugin may write at once.
pub const BURST: f64 = 200.0;
/// Lines a plugin may write a second, steadily.
pub const PER_SECOND: f64 = 100.0;

/// One plugin process's budget, shared by its stdout and stderr.
pub struct LogBudget(Mutex<Bucket>);

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were dropped since the last one logged.
    Log { suppressed: u64 },
    /// Drop it (counted).
    Drop,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::starting(Instant::now())
    }
}

impl LogBudget {
    /// A full budget at `now`.
    pub fn starting(now: Instant) -> Self {
        Self(Mutex::new(Bucket { tokens: BURST, last: now, suppressed: 0 }))
    }

    /// Whether a line written at `now` is logged.
    pub fn admit(&self, now: Instant) -> Verdict {
        let mut bucket = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Log { suppressed: std::mem::take(&mut bucket.suppressed) }
        } else {
            bucket.suppressed += 1;
            Verdict::Drop
        }
    }

    /// The lines dropped and not yet reported, now reported.
    pub fn take_suppressed(&self) -> u64 {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()).suppressed)
    }
}

/// Logs `line` of `plugin`'s `stream` if the budget allows, saying first how
/// many lines were suppressed before it.
pub fn log_line(budget: &LogBudget, plugin: &str, pid: u32, stream: &'static str, line: &str) {
    match budget.admit(Instant::now()) {
        Verdict::Log { suppressed } => {
            report_suppressed(plugin, pid, suppressed);
            tracing::info!(target: "oort_plugin", plugin = %plugin, pid, stream, "{line}");
        }
        Verdict::Drop => {}
    }
}

/// Logs how many lines were dropped, if any.
pub fn report_suppressed(plugin: &str, pid: u32, suppressed: u64) {
    if suppressed > 0 {
        tracing::warn!(
            target: "oort_plugin",
            plugin = %plugin,
            pid,
            suppressed,
            "suppressed {suppressed} lines of the plugin's output (over {PER_SECOND} lines a second)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate_and_the_rest_counted() {
        let start = Instant::now();
        let budget = LogBudget::starting(start);
        let logged = (0..1_000).filter(|_| matches!(budget.admit(start), Verdict::Log { .. })).count();
        assert_eq!(logged, BURST as usize);
        // A second later, a second's worth more, and the first says what was dropped.
        let later = start + Duration::from_secs(1);
        assert_eq!(budget.admit(later), Verdict::Log { suppressed: 800 });
        let logged = 1 + (0..1_000).filter(|_| matches!(budget.admit(later), Verdict::Log { .. })).count();
        assert_eq!(logged, PER_SECOND as usize);
        assert_eq!(budget.take_suppressed(), 1_000 - (PER_SECOND as u64 - 1));
        assert_eq!(budget.take_suppressed(), 0);
    }
}
