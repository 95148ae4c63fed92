//! The joins of a rule: tables joined to each event of its stream, or other
//! streams joined to it within each window, as eKuiper joins them.

use oort_sql::sqlparser::ast::{JoinConstraint, JoinOperator, Select, Spanned};
use oort_sql::{Position, SqlError, StreamDef};

use super::{Compiled, PlanError, compile_over_aliases};
use crate::expr::{CompileContext, Expr, Projection};

/// How rows meet in a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only rows with a match go on (a `CROSS JOIN` is one without `ON`).
    Inner,
    /// Every row of the left side goes on; without a match the right side's columns are NULL.
    Left,
    /// Every row of the right side goes on (streams only).
    Right,
    /// Every row of either side goes on (streams only).
    Full,
}

impl JoinKind {
    fn sql(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER JOIN",
            JoinKind::Left => "LEFT JOIN",
            JoinKind::Right => "RIGHT JOIN",
            JoinKind::Full => "FULL JOIN",
        }
    }
}

/// A table joined to the rule's stream, or a stream joined within the window.
#[derive(Debug)]
pub struct Join {
    /// The joined table's or stream's definition.
    pub source: StreamDef,
    /// The name expressions use for it (its alias, or its name).
    pub reference: String,
    /// How its rows meet the others.
    pub kind: JoinKind,
    /// The ON condition; `None` for a CROSS join.
    pub on: Option<Compiled>,
}

impl Join {
    /// `LEFT JOIN table t ON …`, for EXPLAIN.
    pub(super) fn explain(&self, what: &str) -> String {
        let on = self.on.as_ref().map(|c| format!(" ON {}", c.sql)).unwrap_or_default();
        format!("{} {what} {} AS {}{on}", self.kind.sql(), self.source.name, self.reference)
    }
}

/// Pairs each joined source (tables, or `streams`) with its kind and ON
/// condition, from the FROM clause. With `table_first` (`FROM table JOIN
/// stream`), the first join is the table's, seen from the stream: `table
/// RIGHT JOIN stream` is the stream's LEFT JOIN. Tables join each event with
/// INNER, LEFT or CROSS joins (RIGHT and FULL would emit table rows without
/// events); streams meet within a window with any kind. ON may name the
/// aliases of the SELECT list, but not one of an analytic call's (those come
/// after table joins, and are per event).
pub(super) fn plan_joins(
    select: &Select,
    joined: Vec<(StreamDef, String)>,
    ctx: &CompileContext<'_>,
    projection: &Projection,
    table_first: bool,
    streams: bool,
) -> Result<Vec<Join>, PlanError> {
    let joins = select.from.first().map(|f| f.joins.as_slice()).unwrap_or_default();
    joined
        .into_iter()
        .zip(joins)
        .enumerate()
        .map(|(i, ((source, reference), join))| {
            let mirrored = table_first && i == 0;
            let refuse = |message: &str| {
                Err(PlanError::Sql(SqlError::semantic(message, Position::from_location(join.span().start))))
            };
            let (kind, constraint) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) if !mirrored => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) if mirrored => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) if streams => (JoinKind::Right, Some(c)),
                JoinOperator::FullOuter(c) if streams => (JoinKind::Full, Some(c)),
                _ if mirrored => {
                    return refuse(
                        "a table first in FROM joins its stream with INNER JOIN, or RIGHT JOIN to keep every event \
                         (LEFT and FULL would emit table rows without events)",
                    );
                }
                _ => {
                    return refuse(
                        "a stream joins tables with INNER, LEFT or CROSS JOIN (RIGHT and FULL would emit table rows \
                         without events)",
                    );
                }
            };
            let on = match constraint {
                Some(JoinConstraint::On(e)) => {
                    let compiled = compile_over_aliases(e, ctx, projection)?;
                    if let Some((name, position)) = compiled.expr.first_aggregate() {
                        let message = format!("aggregate function {name} is not allowed in ON");
                        return Err(SqlError::semantic(message, position).into());
                    }
                    let mut analytic = false;
                    compiled.expr.walk(&mut |e| analytic |= matches!(e, Expr::Analytic { .. } | Expr::LastHit { .. }));
                    if analytic {
                        return Err(SqlError::semantic(
                            "ON cannot use an analytic or hit function (evaluated per event, not per joined row), \
                             nor an alias of one",
                            Position::from_location(e.span().start),
                        )
                        .into());
                    }
                    Some(compiled)
                }
                _ => None,
            };
            Ok(Join { source, reference, kind, on })
        })
        .collect()
}
