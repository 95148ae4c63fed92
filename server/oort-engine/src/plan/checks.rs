//! Checks of what a rule may combine, made while planning it.

use oort_sql::{Position, SqlError, StreamDef, StreamKind};

use super::PlanError;
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
