//! Rules that read their hits (eKuiper's `last_hit_*` per event,
//! `last_agg_hit_*` per window group): what WHERE (HAVING) lets through
//! changes what the next event (group) reads, so these go one at a time,
//! each seeing the hits before it ([`Hits`]).

use super::pipeline::RuleMetrics;
use super::project;
use crate::analytic::{AnalyticState, Hits};
use crate::expr::EvalEnv;
use crate::plan::RulePlan;
use crate::row::Row;
use crate::value::{Map, Value};

/// A per-event rule's rows, one at a time through WHERE and SELECT; an event
/// that passes WHERE is a hit, at its time. Returns the results.
pub(super) async fn events(
    plan: &RulePlan,
    m: &RuleMetrics,
    rows: Vec<Row>,
    analytic: &mut AnalyticState,
    env: &EvalEnv<'_>,
    now: i64,
) -> Vec<Vec<Map>> {
    let mut results = Vec::new();
    for row in rows {
        let env = EvalEnv { hits: Some(analytic.hits), ..*env };
        let one = [row];
        if let (Some(filter), Some(fm)) = (&plan.filter, &m.filter) {
            fm.record_in(1, now);
            match filter.expr.eval_batch(&one, &env).await.pop() {
                Some(Ok(Value::Bool(true))) => fm.record_out(1),
                Some(Err(e)) => {
                    fm.record_exception(e.to_string());
                    continue;
                }
                _ => continue,
            }
        }
        analytic.hits.hit(one[0].timestamp);
        m.project.record_in(1, now);
        let out = plan.projection.eval_batch(&one, &env).await.pop();
        match out.map(|out| out.and_then(|out| project::finish(plan, out, Some(analytic), &mut results))) {
            Some(Ok(())) => m.project.record_out(1),
            Some(Err(e)) => m.project.record_exception(e.to_string()),
            None => {}
        }
    }
    results
}

/// A window's groups, one at a time through HAVING: the hits each group that
/// passes sees (a group that passes is a hit, at the window's end), in order.
pub(super) async fn groups(
    plan: &RulePlan,
    m: &RuleMetrics,
    groups: Vec<Vec<Row>>,
    hits: &mut Hits,
    env: &EvalEnv<'_>,
    end: i64,
    now: i64,
) -> (Vec<Vec<Row>>, Vec<Hits>) {
    let mut kept = Vec::with_capacity(groups.len());
    let mut seen = Vec::with_capacity(groups.len());
    for group in groups {
        m.project.record_in(group.len() as u64, now);
        let env = EvalEnv { hits: Some(*hits), ..*env };
        if let (Some(having), Some(hm)) = (&plan.having, &m.having) {
            hm.record_in(1, now);
            match having.expr.eval_groups(&[group.as_slice()], &env).await.pop() {
                Some(Ok(Value::Bool(true))) => hm.record_out(1),
                Some(Err(e)) => {
                    hm.record_exception(e.to_string());
                    continue;
                }
                _ => continue,
            }
        }
        seen.push(*hits);
        hits.hit(end);
        kept.push(group);
    }
    (kept, seen)
}
