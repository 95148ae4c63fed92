//! Checks of what a rule may combine, made while planning it.

use oort_sql::{Position, SqlError, StreamDef, StreamKind};

use super::PlanError;
use crate::analytic::AnalyticCall;
use crate::expr::Expr;
use crate::rule::RuleDefinition;

/// Whether the rule joins streams (rather than tables) to its stream, and
/// whether it may: only within a window, where their rows meet, as in
/// eKuiper; not with tables in the same rule; and without checkpoints, which
/// would keep only the position of the `FROM` stream.
pub(super) fn check_joined_streams(
    joined: &[(StreamDef, String, Option<Position>)],
    query: &oort_sql::RuleQuery,
    def: &RuleDefinition,
) -> Result<bool, PlanError> {
    let Some((stream, _, position)) = joined.iter().find(|(d, _, _)| d.kind == StreamKind::Stream) else {
        return Ok(false);
    };
    if joined.iter().any(|(d, _, _)| d.kind == StreamKind::Table) {
        return Err(PlanError::Unsupported("a rule that joins both streams and tables".into()));
    }
    if query.window.is_none() {
        return Err(PlanError::Sql(SqlError::semantic(
            format!(
                "'{}' is a stream: two streams join within a window, where their rows meet (add one to GROUP BY, e.g. \
                 TUMBLINGWINDOW(ss, 10)), or declare it with CREATE TABLE to join each event to its rows",
                stream.name
            ),
            *position,
        )));
    }
    if def.options.qos != crate::delivery::Guarantee::AtMostOnce {
        return Err(PlanError::Unsupported(
            "qos 1 or 2 for a rule that joins streams: its checkpoints would keep the position of the FROM stream only"
                .into(),
        ));
    }
    Ok(true)
}

/// The clauses evaluated before SELECT, with the arguments of the analytic
/// calls that are evaluated on every event (not the running ones').
pub(super) fn elsewhere_than_select<'a>(
    analytics: &'a [AnalyticCall],
    clauses: [&'a Option<super::Compiled>; 4],
) -> impl Iterator<Item = &'a Expr> {
    let per_event = analytics.iter().filter(|call| !call.kind.running());
    clauses
        .into_iter()
        .flatten()
        .map(|c| &c.expr)
        .chain(per_event.flat_map(|call| call.args.iter().chain(&call.partition).chain(&call.when)))
}

/// The running aggregates (`inc_*`) count the rows a rule without a window
/// projects, so they belong in its SELECT list: not in a rule that groups
/// (or filters each event on its hits), nor in `before_select`.
pub(super) fn check_running<'a>(
    analytics: &[AnalyticCall],
    before_select: impl Iterator<Item = &'a Expr>,
    grouped: bool,
) -> Result<(), PlanError> {
    let Some(first) = analytics.iter().find(|call| call.kind.running()) else { return Ok(()) };
    let name = first.kind.name();
    let refuse = |message: String| Err(PlanError::Sql(SqlError::semantic(message, None)));
    if grouped {
        return refuse(format!(
            "{name} is a running aggregate over the events of a rule without a window (or last_hit_*); in a window \
             or GROUP BY, use {}",
            name.trim_start_matches("inc_")
        ));
    }
    if let Some(over) = analytics.iter().find(|c| c.kind.running() && (!c.partition.is_empty() || c.when.is_some())) {
        return refuse(format!("{} takes no OVER clause", over.kind.name()));
    }
    let mut misplaced = None;
    for expr in before_select {
        expr.walk(&mut |e| {
            if let Expr::Analytic { slot, name, .. } = e
                && analytics.get(*slot).is_some_and(|call| call.kind.running())
            {
                misplaced = Some(*name);
            }
        });
    }
    match misplaced {
        Some(name) => refuse(format!(
            "{name} counts the rows SELECT projects: use it in the SELECT list (not in WHERE, ON, a window's clauses \
             or another analytic function)"
        )),
        None => Ok(()),
    }
}

/// Whether an expression calls `last_hit_*` or `last_agg_hit_*`.
pub(super) fn reads_hits(expr: &Expr) -> bool {
    let mut found = false;
    expr.walk(&mut |e| found |= matches!(e, Expr::LastHit { .. }));
    found
}

/// Where the hit functions may be: `last_hit_*` in a rule without a window
/// (WHERE, SELECT), `last_agg_hit_*` in one with a window (HAVING, SELECT), as
/// eKuiper; not in `others` (the window's clauses, GROUP BY, analytic calls).
pub(super) fn check_hits(main: &[&Expr], others: &[&Expr], grouped: bool) -> Result<(), PlanError> {
    let refuse = |message: String| Err(PlanError::Sql(SqlError::semantic(message, None)));
    if others.iter().any(|e| reads_hits(e)) {
        return refuse(
            "the hit functions (last_hit_*, last_agg_hit_*) are not supported in a window's clauses, GROUP BY or an \
             analytic function"
                .into(),
        );
    }
    let mut misplaced = None;
    for expr in main {
        expr.walk(&mut |e| {
            if let Expr::LastHit { time, aggregate } = e
                && *aggregate != grouped
            {
                misplaced = Some((*time, *aggregate));
            }
        });
    }
    match misplaced {
        None => Ok(()),
        Some((time, true)) => refuse(format!(
            "{} counts the window groups of a rule with a window; without one, use {}",
            crate::expr::last_hit_name(time, true),
            crate::expr::last_hit_name(time, false)
        )),
        Some((time, false)) => refuse(format!(
            "{} counts the events of a rule without a window; with one, use {}",
            crate::expr::last_hit_name(time, false),
            crate::expr::last_hit_name(time, true)
        )),
    }
}
