//! The joins of a rule: tables joined to each event of its stream, or other
//! streams joined to it within each window, as eKuiper joins them.

use oort_sql::sqlparser::ast::{JoinConstraint, JoinOperator, Select, Spanned};
use oort_sql::{Position, SqlError, StreamDef};

use std::sync::Arc;

use super::{Compiled, PlanError, compile_over_aliases};
use crate::expr::{BinaryOp, CompileContext, Expr, Projection};

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
    /// For a lookup table queried at join time: the columns it is queried by
    /// and the values each event gives them.
    pub lookup: Option<LookupKeys>,
}

/// What a lookup table is queried by: the table's columns that `ON` equates
/// with expressions over the stream (`ON s.kind = t.id AND s.site = t.site`).
#[derive(Debug, Clone)]
pub struct LookupKeys {
    /// The table's columns.
    pub fields: Vec<Arc<str>>,
    /// Each column's value, over the stream's event.
    pub values: Vec<Expr>,
}

impl LookupKeys {
    /// The keys of `on` for the table named `reference`, if it has any:
    /// equalities, joined by AND, between one of its columns and an
    /// expression that names none of `tables`.
    pub(super) fn of(on: &Expr, reference: &str, tables: &[&str]) -> Option<Self> {
        let mut keys = LookupKeys { fields: Vec::new(), values: Vec::new() };
        keys.collect(on, reference, tables);
        (!keys.fields.is_empty()).then_some(keys)
    }

    fn collect(&mut self, on: &Expr, reference: &str, tables: &[&str]) {
        match on {
            Expr::Binary(BinaryOp::And, left, right) => {
                self.collect(left, reference, tables);
                self.collect(right, reference, tables);
            }
            Expr::Binary(BinaryOp::Eq, left, right) => {
                for (column, value) in [(left, right), (right, left)] {
                    if let Expr::Column { qualifier: Some(q), name } = column.as_ref()
                        && q.as_ref() == reference
                        && !names_a_table(value, tables)
                    {
                        self.fields.push(Arc::clone(name));
                        self.values.push(value.as_ref().clone());
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `expr` names a column of one of `tables` (a column without a
/// qualifier is taken as the stream's).
fn names_a_table(expr: &Expr, tables: &[&str]) -> bool {
    let mut found = false;
    expr.walk(&mut |e| {
        if let Expr::Column { qualifier, .. } = e {
            found |= qualifier.as_deref().is_some_and(|q| tables.contains(&q));
        }
    });
    found
}

impl Join {
    /// `LEFT JOIN table t ON …`, for EXPLAIN.
    pub(super) fn explain(&self, what: &str) -> String {
        let on = self.on.as_ref().map(|c| format!(" ON {}", c.sql)).unwrap_or_default();
        format!("{} {what} {} AS {}{on}", self.kind.sql(), self.source.name, self.reference)
    }
}

/// Sets the lookup keys of the tables that are queried at join time (lookup
/// tables whose connector can be queried); refuses one whose ON gives none.
pub(super) fn plan_lookups(
    tables: &mut [Join],
    connectors: &crate::connector::ConnectorRegistry,
) -> Result<(), PlanError> {
    let references: Vec<String> = tables.iter().map(|t| t.reference.clone()).collect();
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    for join in tables.iter_mut() {
        let queried = join.source.is_lookup_table()
            && connectors.source(join.source.source_type()).is_some_and(|f| f.supports_lookup());
        if !queried {
            // Accepted only where it does something: a loaded table has no cache.
            if let Some(option) =
                ["CACHE", "CACHE_TTL", "CACHE_MISSING_KEY"].iter().find(|k| join.source.options.contains_key(**k))
            {
                return Err(PlanError::Unsupported(format!(
                    "table {}: {option} applies to lookup tables queried at join time (TYPE=\"redis\", \
                     KIND=\"lookup\"); this one is loaded whole",
                    join.source.name
                )));
            }
            continue;
        }
        let keys = join.on.as_ref().and_then(|on| LookupKeys::of(&on.expr, &join.reference, &references));
        join.lookup = Some(keys.ok_or_else(|| {
            PlanError::Unsupported(format!(
                "lookup table {} is queried by its columns: its ON condition must equate some with the stream's \
                 (ON s.kind = {}.id)",
                join.source.name, join.reference
            ))
        })?);
    }
    Ok(())
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
            Ok(Join { source, reference, kind, on, lookup: None })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn column(qualifier: &str, name: &str) -> Box<Expr> {
        Box::new(Expr::Column { qualifier: Some(Arc::from(qualifier)), name: Arc::from(name) })
    }

    fn eq(left: Box<Expr>, right: Box<Expr>) -> Expr {
        Expr::Binary(BinaryOp::Eq, left, right)
    }

    #[test]
    fn lookup_keys_are_the_equalities_with_the_tables_columns() {
        let on = Expr::Binary(
            BinaryOp::And,
            Box::new(eq(column("s", "kind"), column("t", "id"))),
            Box::new(Expr::Binary(
                BinaryOp::And,
                Box::new(eq(column("t", "site"), Box::new(Expr::Literal(Value::from("paris"))))),
                Box::new(Expr::Binary(BinaryOp::Gt, column("s", "v"), column("t", "alarm"))),
            )),
        );
        let keys = LookupKeys::of(&on, "t", &["t"]).expect("keys");
        assert_eq!(keys.fields, [Arc::from("id"), Arc::from("site")]);
        assert_eq!(keys.values.len(), 2);
        // A column equated with another table's is no key; an OR gives none.
        assert!(LookupKeys::of(&eq(column("t", "id"), column("u", "id")), "t", &["t", "u"]).is_none());
        let or = Expr::Binary(BinaryOp::Or, Box::new(eq(column("s", "a"), column("t", "a"))), column("s", "b"));
        assert!(LookupKeys::of(&or, "t", &["t"]).is_none());
    }
}
