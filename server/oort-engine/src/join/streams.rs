//! Stream–stream joins: the rows a window holds, from the rule's stream and
//! the streams joined to it, meet when the window closes. Each stream's row
//! arrives as a joined row of one part (its reference and its row), so that
//! `s1.a` and `s2.a` stay apart before the join as after it.

use std::sync::Arc;

use super::matches;
use crate::expr::{EvalEnv, EvalError, JoinedRow};
use crate::plan::{JoinKind, RulePlan};
use crate::row::Row;
use crate::value::Value;

/// A row on one side of a join: its parts, and the analytic results of the
/// event its first part came from.
#[derive(Clone)]
struct Side {
    parts: Vec<(Arc<str>, Row)>,
    analytic: Vec<Value>,
}

impl Side {
    /// The parts of `first` then those of `second`, with `first`'s analytic results.
    fn then(&self, second: &Side) -> Side {
        Side { parts: self.parts.iter().chain(&second.parts).cloned().collect(), analytic: self.analytic.clone() }
    }

    /// A row of the join, at the time of its first part.
    fn into_row(self) -> Option<Row> {
        let (_, first) = self.parts.first()?;
        let (timestamp, meta) = (first.timestamp, Arc::clone(&first.meta));
        let joined = Some(Arc::new(JoinedRow { parts: self.parts }));
        Some(Row { fields: Default::default(), timestamp, meta, joined, analytic: self.analytic })
    }
}

/// Joins the rows of a closed window, as eKuiper's join operator does: for
/// each row of the left side (the `FROM` stream, then what the previous joins
/// made), its matches in order; an unmatched row once for a LEFT or FULL
/// join; for a RIGHT join, each right row with its matches (the right row
/// first, so that its unqualified columns win), or alone; for a FULL join,
/// the LEFT join's rows then the right rows nothing matched. An ON condition
/// that fails fails the join, and with it the window.
pub fn join_window(rows: Vec<Row>, plan: &RulePlan, env: &EvalEnv<'_>) -> Result<Vec<Row>, EvalError> {
    let mut by_stream: Vec<Vec<Side>> = vec![Vec::new(); plan.joined_streams.len() + 1];
    for row in rows {
        let Some(joined) = row.joined else { continue };
        let parts = Arc::unwrap_or_clone(joined).parts;
        let Some((reference, _)) = parts.first() else { continue };
        let index = if **reference == *plan.stream_reference {
            Some(0)
        } else {
            plan.joined_streams.iter().position(|j| *j.reference == **reference).map(|i| i + 1)
        };
        if let Some(index) = index {
            by_stream[index].push(Side { parts, analytic: row.analytic });
        }
    }
    let mut streams = by_stream.into_iter();
    let mut joined = streams.next().unwrap_or_default();
    for (join, rights) in plan.joined_streams.iter().zip(streams) {
        let mut next = Vec::new();
        let meets = |candidate: Side| -> Result<Option<Side>, EvalError> {
            let test = JoinedRow { parts: candidate.parts };
            let hit = matches(join, &test, env)?;
            Ok(hit.then_some(Side { parts: test.parts, analytic: candidate.analytic }))
        };
        if join.kind == JoinKind::Right {
            for right in &rights {
                let before = next.len();
                for left in &joined {
                    next.extend(meets(right.then(left))?);
                }
                if next.len() == before {
                    next.push(right.clone());
                }
            }
        } else {
            let mut right_matched = vec![false; rights.len()];
            for left in &joined {
                let before = next.len();
                for (right, matched) in rights.iter().zip(right_matched.iter_mut()) {
                    if let Some(both) = meets(left.then(right))? {
                        *matched = true;
                        next.push(both);
                    }
                }
                if next.len() == before && matches!(join.kind, JoinKind::Left | JoinKind::Full) {
                    next.push(left.clone());
                }
            }
            if join.kind == JoinKind::Full {
                next.extend(rights.iter().zip(&right_matched).filter(|(_, m)| !**m).map(|(r, _)| r.clone()));
            }
        }
        joined = next;
    }
    Ok(joined.into_iter().filter_map(Side::into_row).collect())
}
