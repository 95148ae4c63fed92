//! What a closed window becomes: its rows grouped by the GROUP BY keys,
//! HAVING applied, each group projected, the results ordered.

use std::collections::HashMap;

use super::hits;
use super::pipeline::{RuleMetrics, filter_rows};
use super::project;
use crate::analytic::AnalyticState;
use crate::expr::{EvalEnv, EvalError, Expr, RowNumber, SortOrder, Step, eval_rows};
use crate::group::GroupKey;
use crate::metrics::now_ms;
use crate::plan::RulePlan;
use crate::row::Row;
use crate::value::{Map, Value};
use crate::window::WindowBatch;

/// Groups each closed window by the GROUP BY keys, applies HAVING, projects
/// each group, and orders the results: one result set per window.
pub(super) async fn process_windows(
    plan: &RulePlan,
    metrics: &RuleMetrics,
    batches: Vec<WindowBatch>,
    mut analytic: Option<&mut AnalyticState>,
) -> Vec<Vec<Map>> {
    if plan.window.is_none() {
        // A rule without a window in event time: its rows in event-time order.
        let env = EvalEnv { rule_id: &plan.rule_id, window: None, prefetch: None, hits: None };
        let rows: Vec<Row> = batches.into_iter().flat_map(|b| b.rows).collect();
        return project::events(plan, metrics, rows, analytic, &env, now_ms()).await;
    }
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        if let Some(m) = &metrics.window {
            m.record_out(1);
        }
        let env =
            EvalEnv { rule_id: &plan.rule_id, window: Some((batch.start, batch.end)), prefetch: None, hits: None };
        // As eKuiper's, an error while computing a window fails the whole window.
        let errors_before = window_errors(metrics);
        let mut rows = batch.rows;
        if !plan.joined_streams.is_empty() {
            let m = metrics.join.as_ref().unwrap_or(&metrics.project);
            m.record_in(rows.len() as u64, now_ms());
            match crate::join::join_window(rows, plan, &env) {
                Ok(joined) => {
                    m.record_out(joined.len() as u64);
                    rows = joined;
                }
                Err(e) => {
                    // The window fails; with sendError, its error in its place.
                    m.record_exception(e.to_string());
                    metrics.send_errors(&mut results);
                    continue;
                }
            }
        }
        if plan.filters_after_window() {
            let condition = (plan.filter.as_ref(), metrics.filter.as_ref());
            rows = filter_rows(condition, rows, &mut Vec::new(), &env, now_ms()).await;
        }
        let groups = group_rows(plan, rows, &env, metrics).await;
        // A rule that reads its hits takes its groups through HAVING one by one.
        let (groups, group_hits) = match analytic.as_deref_mut().filter(|_| plan.reads_hits) {
            Some(state) => hits::groups(plan, metrics, groups, &mut state.hits, &env, batch.end, now_ms()).await,
            None => (having_groups(plan, metrics, groups, &env).await, Vec::new()),
        };
        // eKuiper: a window with no aggregate and no GROUP BY key emits every row;
        // otherwise each group gives one row.
        let per_row = plan.dimensions.is_empty() && !plan.projection.has_aggregate();
        let units: Vec<&[Row]> = if per_row {
            groups.iter().flat_map(|group| group.chunks(1)).collect()
        } else {
            groups.iter().map(Vec::as_slice).collect()
        };
        // Per row, the projection runs over each group as a batch of rows; per
        // group, over the groups as a batch: either way, its plugin and
        // external calls are made once for the batch.
        let projected = if !group_hits.is_empty() {
            let mut projected = Vec::with_capacity(units.len());
            for (group, hits) in groups.iter().zip(&group_hits) {
                let env = EvalEnv { hits: Some(*hits), ..env };
                if per_row {
                    projected.extend(plan.projection.eval_batch(group, &env).await);
                } else {
                    projected.extend(plan.projection.eval_groups(&[group.as_slice()], &env).await);
                }
            }
            projected
        } else if per_row {
            let mut projected = Vec::with_capacity(units.len());
            for group in &groups {
                projected.extend(plan.projection.eval_batch(group, &env).await);
            }
            projected
        } else {
            plan.projection.eval_groups(&units, &env).await
        };
        let mut keyed: Vec<_> = order_keys(plan, &units, &env).await.into_iter().zip(projected).collect();
        if let Some(numbering) = &plan.projection.row_number {
            keyed = number_rows(numbering, keyed, &units, &env).await;
        }
        let mut out: Vec<(Vec<Value>, Map)> = Vec::with_capacity(units.len());
        for (keys, projected) in keyed {
            match projected {
                Ok(row) => {
                    metrics.project.record_out(1);
                    out.push((keys, row));
                }
                Err(e) => metrics.project.record_exception(e.to_string()),
            }
        }
        if let Some(m) = &metrics.order {
            m.record_in(out.len() as u64, now_ms());
            m.record_out(out.len() as u64);
        }
        if !plan.order_by.is_empty() {
            let orders: Vec<SortOrder> = plan.order_by.iter().map(|(_, order)| *order).collect();
            if let Err(e) = sort_by_keys(&mut out, &orders) {
                metrics.order.as_ref().unwrap_or(&metrics.project).record_exception(e);
            }
        }
        if window_errors(metrics) > errors_before {
            // With sendError, the window's error in its place.
            metrics.send_errors(&mut results);
            continue;
        }
        let mut rows: Vec<Map> = Vec::with_capacity(out.len());
        for (_, mut row) in out {
            if let Some(state) = analytic.as_deref_mut()
                && let Err(e) = plan.projection.keep_changes(state, &mut row)
            {
                metrics.project.record_exception(e.to_string());
                continue;
            }
            if plan.projection.set_returning.is_none() {
                rows.push(row);
                continue;
            }
            match plan.projection.expand(row) {
                Ok(expanded) => rows.extend(expanded),
                Err(e) => metrics.project.record_exception(e.to_string()),
            }
        }
        if let Some(limit) = plan.limit {
            let before = rows.len();
            rows.truncate(limit as usize);
            if let Some(m) = &metrics.limit {
                m.record_in(before as u64, now_ms());
                m.record_out(rows.len() as u64);
            }
        }
        // A window whose groups HAVING filtered out sends nothing.
        if !rows.is_empty() {
            results.push(rows);
        }
    }
    results
}

/// The errors counted so far by the operators that compute a window's result.
fn window_errors(metrics: &RuleMetrics) -> u64 {
    [&metrics.aggregate, &metrics.having, &metrics.order]
        .into_iter()
        .flatten()
        .chain([&metrics.project])
        .map(|m| m.exceptions_total())
        .sum()
}

/// ORDER BY as eKuiper sorts: NULLs last whatever the direction, unless a
/// key says `NULLS FIRST`; the values of a key must be comparable (numbers,
/// strings, booleans or datetimes, one kind a key), else the sort fails.
fn sort_by_keys<T>(out: &mut [(Vec<Value>, T)], orders: &[SortOrder]) -> Result<(), String> {
    for column in 0..orders.len() {
        let mut kinds = out.iter().map(|(keys, _)| &keys[column]).filter(|v| !v.is_null()).map(order_kind);
        if let Some(first) = kinds.next() {
            if let Some(other) = kinds.find(|k| *k != first) {
                return Err(format!("ORDER BY: incompatible types for comparison: {} and {}", first.1, other.1));
            }
            if !first.0 {
                return Err(format!("ORDER BY: {} values cannot be ordered", first.1));
            }
        }
    }
    out.sort_by(|(a, _), (b, _)| {
        a.iter()
            .zip(b)
            .zip(orders)
            .map(|((x, y), order)| order.compare(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(())
}

/// Whether values of this kind can be ordered, and the kind's name.
fn order_kind(value: &Value) -> (bool, &'static str) {
    match value {
        Value::Int(_) | Value::Float(_) => (true, "number"),
        other => (matches!(other, Value::String(_) | Value::Bool(_) | Value::Timestamp(_)), other.type_name()),
    }
}

/// How many rows of a window [`group_rows`] computes the keys of at a time
/// (and so the batch of the calls the keys make).
const GROUPING_CHUNK: usize = 4096;

/// Splits a window's rows by the GROUP BY keys, keeping the order in which groups first appear.
async fn group_rows(plan: &RulePlan, rows: Vec<Row>, env: &EvalEnv<'_>, metrics: &RuleMetrics) -> Vec<Vec<Row>> {
    let Some(counters) = metrics.aggregate.as_ref().filter(|_| !plan.dimensions.is_empty()) else {
        return if rows.is_empty() { Vec::new() } else { vec![rows] };
    };
    counters.record_in(rows.len() as u64, now_ms());
    let dimensions: Vec<&Expr> = plan.dimensions.iter().map(|d| &d.expr).collect();
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    let mut groups: Vec<Vec<Row>> = Vec::new();
    let mut owned = rows.into_iter();
    // The keys of a chunk at a time, not of the whole window (up to millions
    // of rows) at once: the memory held stays bounded.
    while !owned.as_slice().is_empty() {
        let chunk = &owned.as_slice()[..owned.len().min(GROUPING_CHUNK)];
        let keys = eval_rows(&dimensions, chunk, env, |row, env| {
            dimensions.iter().map(|d| d.eval_step(row, env)).collect::<Step<Vec<Value>>>()
        })
        .await;
        // Keys first: zip takes from its first iterator before it finds the
        // second one empty, and a row taken past the chunk would be lost.
        for (key, row) in keys.into_iter().zip(owned.by_ref()) {
            match key {
                Ok(key) => {
                    let slot = *index.entry(GroupKey(key)).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[slot].push(row);
                }
                // A row whose key cannot be computed belongs to no group.
                Err(e) => counters.record_exception(e.to_string()),
            }
        }
    }
    counters.record_out(groups.len() as u64);
    groups
}

/// The groups that pass HAVING (all of them with no HAVING), in order; counts
/// each group in.
async fn having_groups(
    plan: &RulePlan,
    metrics: &RuleMetrics,
    groups: Vec<Vec<Row>>,
    env: &EvalEnv<'_>,
) -> Vec<Vec<Row>> {
    for group in &groups {
        metrics.project.record_in(group.len() as u64, now_ms());
    }
    let (Some(having), Some(counters)) = (&plan.having, &metrics.having) else { return groups };
    counters.record_in(groups.len() as u64, now_ms());
    let refs: Vec<&[Row]> = groups.iter().map(Vec::as_slice).collect();
    let verdicts = having.expr.eval_groups(&refs, env).await;
    let kept: Vec<Vec<Row>> = groups
        .into_iter()
        .zip(verdicts)
        .filter_map(|(group, verdict)| match verdict {
            Ok(Value::Bool(true)) => Some(group),
            Ok(_) => None,
            Err(e) => {
                counters.record_exception(e.to_string());
                None
            }
        })
        .collect();
    counters.record_out(kept.len() as u64);
    kept
}

/// `row_number()`: the units reordered by its partitions and its ORDER BY,
/// each row's number set in its column.
async fn number_rows<T>(
    numbering: &RowNumber,
    keyed: Vec<(T, Result<Map, EvalError>)>,
    units: &[&[Row]],
    env: &EvalEnv<'_>,
) -> Vec<(T, Result<Map, EvalError>)> {
    let mut keys: Vec<Vec<Value>> = vec![Vec::new(); units.len()];
    for expr in numbering.keys() {
        for (key, value) in keys.iter_mut().zip(expr.eval_groups(units, env).await) {
            key.push(value.unwrap_or(Value::Null));
        }
    }
    let mut slots: Vec<Option<(T, Result<Map, EvalError>)>> = keyed.into_iter().map(Some).collect();
    numbering
        .number(&keys)
        .into_iter()
        .filter_map(|(unit, number)| {
            let (keys, projected) = slots[unit].take()?;
            let projected = projected.map(|mut row| {
                row.insert(numbering.column.clone(), Value::Int(number));
                row
            });
            Some((keys, projected))
        })
        .collect()
}

/// The ORDER BY keys of each unit (a group, or a row of a window that emits
/// rows); a key that cannot be computed is NULL.
async fn order_keys(plan: &RulePlan, units: &[&[Row]], env: &EvalEnv<'_>) -> Vec<Vec<Value>> {
    let mut keys: Vec<Vec<Value>> = (0..units.len()).map(|_| Vec::with_capacity(plan.order_by.len())).collect();
    for (order, _) in &plan.order_by {
        for (key, value) in keys.iter_mut().zip(order.expr.eval_groups(units, env).await) {
            key.push(value.unwrap_or(Value::Null));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows' keys, as `sort_by_keys` leaves them, for keys in these orders.
    fn sorted(keys: &[Option<i64>], orders: &[SortOrder]) -> Vec<Option<i64>> {
        let value = |k: &Option<i64>| k.map_or(Value::Null, Value::Int);
        let mut rows: Vec<(Vec<Value>, usize)> = keys.iter().enumerate().map(|(i, k)| (vec![value(k)], i)).collect();
        sort_by_keys(&mut rows, orders).unwrap();
        rows.into_iter().map(|(_, i)| keys[i]).collect()
    }

    #[test]
    fn order_by_puts_nulls_last_unless_a_key_says_nulls_first() {
        let keys = [Some(2), None, Some(1), None, Some(3)];
        let order = |ascending, nulls_first| [SortOrder { ascending, nulls_first }];
        assert_eq!(sorted(&keys, &order(true, false)), [Some(1), Some(2), Some(3), None, None]);
        assert_eq!(sorted(&keys, &order(false, false)), [Some(3), Some(2), Some(1), None, None]);
        assert_eq!(sorted(&keys, &order(true, true)), [None, None, Some(1), Some(2), Some(3)]);
        assert_eq!(sorted(&keys, &order(false, true)), [None, None, Some(3), Some(2), Some(1)]);
    }

    #[test]
    fn a_later_key_orders_the_rows_an_earlier_key_holds_equal_including_nulls() {
        let orders =
            [SortOrder { ascending: true, nulls_first: true }, SortOrder { ascending: false, nulls_first: false }];
        let mut rows = vec![
            (vec![Value::Int(1), Value::Int(1)], "a"),
            (vec![Value::Null, Value::Null], "b"),
            (vec![Value::Null, Value::Int(5)], "c"),
            (vec![Value::Int(1), Value::Int(2)], "d"),
        ];
        sort_by_keys(&mut rows, &orders).unwrap();
        let order: Vec<&str> = rows.iter().map(|(_, name)| *name).collect();
        assert_eq!(order, ["c", "b", "d", "a"]);
    }
}
