//! The projection of a rule without a window: each event's row through
//! SELECT, one result each (with `unnest`, one per unnested row), in order.

use super::hits;
use super::pipeline::RuleMetrics;
use crate::analytic::AnalyticState;
use crate::expr::{EvalEnv, EvalError};
use crate::plan::RulePlan;
use crate::row::Row;
use crate::value::Map;

/// The results of a batch of rows that passed WHERE (a rule that reads its
/// hits filters them here, one at a time: `hits::events`).
pub(super) async fn events(
    plan: &RulePlan,
    m: &RuleMetrics,
    rows: Vec<Row>,
    mut analytic: Option<&mut AnalyticState>,
    env: &EvalEnv<'_>,
    now: i64,
) -> Vec<Vec<Map>> {
    if let Some(analytic) = analytic.as_deref_mut().filter(|_| plan.reads_hits) {
        return hits::events(plan, m, rows, analytic, env, now).await;
    }
    let mut results = Vec::with_capacity(rows.len());
    m.project.record_in(rows.len() as u64, now);
    let mut rows = rows;
    // The running aggregates (`inc_*`) take the rows that reach SELECT; a row
    // one fails gives its error instead of a result.
    if let Some(analytic) = analytic.as_deref_mut().filter(|_| plan.has_running_aggregates()) {
        let failures = analytic.apply(&plan.analytics, &mut rows, env, true).await;
        let mut keep = failures.iter().map(Option::is_none);
        rows.retain(|_| keep.next().unwrap_or(false));
        for e in failures.into_iter().flatten() {
            m.project.record_exception(e.to_string());
            m.send_errors(&mut results);
        }
    }
    for out in plan.projection.eval_batch(&rows, env).await {
        match out.and_then(|out| finish(plan, out, analytic.as_deref_mut(), &mut results)) {
            Ok(()) => m.project.record_out(1),
            Err(e) => {
                m.project.record_exception(e.to_string());
                // In its event's place among the results.
                m.send_errors(&mut results);
            }
        }
    }
    results
}

/// A projected row's last steps: `changed_cols`, then `unnest` (each
/// unnested row a result of its own, as eKuiper's), into `results`.
pub(super) fn finish(
    plan: &RulePlan,
    mut out: Map,
    analytic: Option<&mut AnalyticState>,
    results: &mut Vec<Vec<Map>>,
) -> Result<(), EvalError> {
    let projection = &plan.projection;
    if let Some(analytic) = analytic {
        projection.keep_changes(analytic, &mut out)?;
    }
    if projection.set_returning.is_none() {
        results.push(vec![out]);
    } else {
        results.extend(projection.expand(out)?.into_iter().map(|row| vec![row]));
    }
    Ok(())
}
