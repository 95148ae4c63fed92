//! Analytic functions, as eKuiper has them: `lag`, `latest`, `changed_col`,
//! `had_changed` and the accumulators `acc_sum`, `acc_min`, `acc_max`,
//! `acc_count`, `acc_avg`, each with an optional
//! `OVER ([PARTITION BY e, …] [WHEN condition])`.
//!
//! They keep state from one event to the next, so they are not computed
//! where they are written: every call is evaluated once per event, in
//! arrival order, right after decoding (and the joins), before `WHERE` and
//! the window, as eKuiper's analytic operator does, whatever clause it is
//! in. Its result is stored in the row ([`crate::Row::analytic`]) and read there
//! by [`Expr::Analytic`]. So `SELECT lag(a) … WHERE b > 1` sees the `a` of
//! the previous event even when `WHERE` dropped it, and over a window, the
//! results are those of each row when it arrived.
//!
//! `PARTITION BY` keeps one state per value of its expressions. `WHEN`
//! decides whether the event updates the state; an event that does not
//! still gets a result (the state's). The state is part of the rule's
//! checkpoints ([`AnalyticState::save`]).
//!
//! | module  | what                                                           |
//! |---------|----------------------------------------------------------------|
//! | (here)  | [`AnalyticKind`], [`AnalyticCall`], the compiler's [`AnalyticCalls`], the registry entries |
//! | `state` | [`AnalyticState`]: each call's state per partition, and its steps |

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use crate::expr::Expr;
use crate::function::{Function, FunctionError};
use crate::functions::{Builtin, Kind};
use crate::value::Value;

mod running;
mod state;
#[cfg(test)]
mod tests;

pub use state::{AnalyticState, Hits};

/// Which analytic function a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AnalyticKind {
    /// `lag(expr [, offset [, default [, ignore_null]]])`: the value `offset` events back.
    Lag,
    /// `latest(expr [, default])`: the last non-NULL value.
    Latest,
    /// `changed_col(ignore_null, expr)`: the value when it changed, else NULL.
    ChangedCol,
    /// `had_changed(ignore_null, expr, …)`: whether any value changed.
    HadChanged,
    /// `acc_sum(expr [, begin, reset])`.
    AccSum,
    /// `acc_min(expr [, begin, reset])`.
    AccMin,
    /// `acc_max(expr [, begin, reset])`.
    AccMax,
    /// `acc_count(expr [, begin, reset])`.
    AccCount,
    /// `acc_avg(expr [, begin, reset])`.
    AccAvg,
    /// `inc_count(expr)`: the events so far ([`running`](Self::running)).
    IncCount,
    /// `inc_sum(expr)`.
    IncSum,
    /// `inc_avg(expr)`.
    IncAvg,
    /// `inc_min(expr)`.
    IncMin,
    /// `inc_max(expr)`.
    IncMax,
    /// `inc_collect(expr)`.
    IncCollect,
    /// `inc_merge_agg(expr)`.
    IncMergeAgg,
    /// `inc_last_value(expr, ignore_null)`.
    IncLastValue,
}

impl AnalyticKind {
    const ALL: [AnalyticKind; 17] = [
        AnalyticKind::Lag,
        AnalyticKind::Latest,
        AnalyticKind::ChangedCol,
        AnalyticKind::HadChanged,
        AnalyticKind::AccSum,
        AnalyticKind::AccMin,
        AnalyticKind::AccMax,
        AnalyticKind::AccCount,
        AnalyticKind::AccAvg,
        AnalyticKind::IncCount,
        AnalyticKind::IncSum,
        AnalyticKind::IncAvg,
        AnalyticKind::IncMin,
        AnalyticKind::IncMax,
        AnalyticKind::IncCollect,
        AnalyticKind::IncMergeAgg,
        AnalyticKind::IncLastValue,
    ];

    /// The function's name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            AnalyticKind::Lag => "lag",
            AnalyticKind::Latest => "latest",
            AnalyticKind::ChangedCol => "changed_col",
            AnalyticKind::HadChanged => "had_changed",
            AnalyticKind::AccSum => "acc_sum",
            AnalyticKind::AccMin => "acc_min",
            AnalyticKind::AccMax => "acc_max",
            AnalyticKind::AccCount => "acc_count",
            AnalyticKind::AccAvg => "acc_avg",
            AnalyticKind::IncCount => "inc_count",
            AnalyticKind::IncSum => "inc_sum",
            AnalyticKind::IncAvg => "inc_avg",
            AnalyticKind::IncMin => "inc_min",
            AnalyticKind::IncMax => "inc_max",
            AnalyticKind::IncCollect => "inc_collect",
            AnalyticKind::IncMergeAgg => "inc_merge_agg",
            AnalyticKind::IncLastValue => "inc_last_value",
        }
    }

    /// Whether it is one of eKuiper's `inc_*` running aggregates
    /// ([`running`](self::running)): evaluated on the rows SELECT projects,
    /// after `WHERE`, rather than on every event before it.
    pub fn running(self) -> bool {
        matches!(
            self,
            AnalyticKind::IncCount
                | AnalyticKind::IncSum
                | AnalyticKind::IncAvg
                | AnalyticKind::IncMin
                | AnalyticKind::IncMax
                | AnalyticKind::IncCollect
                | AnalyticKind::IncMergeAgg
                | AnalyticKind::IncLastValue
        )
    }

    /// The analytic function of this (lower-case) name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every name, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

/// One analytic call of a rule, compiled: evaluated for each event before
/// `WHERE` ([`AnalyticState::apply`]), its result read by [`Expr::Analytic`].
#[derive(Debug, Clone)]
pub struct AnalyticCall {
    /// The function.
    pub kind: AnalyticKind,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// `PARTITION BY`: one state per value of these; none for one state.
    pub partition: Vec<Expr>,
    /// `WHEN`: the events that update the state; all without it.
    pub when: Option<Expr>,
}

impl fmt::Display for AnalyticCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |exprs: &[Expr]| exprs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        write!(f, "{}({})", self.kind.name(), list(&self.args))?;
        if self.partition.is_empty() && self.when.is_none() {
            return Ok(());
        }
        f.write_str(" OVER (")?;
        if !self.partition.is_empty() {
            write!(f, "PARTITION BY {}", list(&self.partition))?;
        }
        if let Some(when) = &self.when {
            let space = if self.partition.is_empty() { "" } else { " " };
            write!(f, "{space}WHEN {when}")?;
        }
        f.write_str(")")
    }
}

/// The analytic calls found while compiling a rule, in the order they are
/// evaluated: an inner call (in another's arguments) before the outer one.
#[derive(Debug, Default)]
pub struct AnalyticCalls(RefCell<Vec<AnalyticCall>>);

impl AnalyticCalls {
    /// Adds a call; the expression that reads its result.
    pub(crate) fn add(&self, call: AnalyticCall) -> Expr {
        let mut calls = self.0.borrow_mut();
        let (name, text) = (call.kind.name(), Arc::from(call.to_string()));
        calls.push(call);
        Expr::Analytic { slot: calls.len() - 1, name, text }
    }

    /// The calls, in evaluation order.
    pub fn into_calls(self) -> Vec<AnalyticCall> {
        self.0.into_inner()
    }
}

/// Plan-time checks beyond the registry's (which sees literals only): eKuiper
/// refuses a column as `lag`'s offset, which sizes the state once.
pub(crate) fn check_call(kind: AnalyticKind, args: &[Expr]) -> Result<(), String> {
    if kind == AnalyticKind::Lag
        && let Some(offset @ (Expr::Column { .. } | Expr::Field(..))) = args.get(1)
    {
        return Err(format!("function lag: the offset must be a non-negative bigint, not the column {offset}"));
    }
    Ok(())
}

const ANALYTIC_NOTE: &str = "evaluated on each event in arrival order, before WHERE";

/// The registry's entries: their arity, literal checks and descriptions. They
/// are never called as functions; the compiler makes [`AnalyticCall`]s of them.
pub(crate) fn functions() -> Vec<Arc<dyn Function>> {
    let never = |name: &str, _: &crate::function::CallContext<'_>, _: &[Value]| {
        Err(FunctionError::failed(name, "an analytic function is only evaluated by the rule's analytic stage"))
    };
    let accumulator = |kind: AnalyticKind, what: &str| {
        Builtin::scalar(
            kind.name(),
            1,
            Some(3),
            &format!(
                "{what} of the expression over every event so far (with `begin, reset` conditions: since the last \
                 event where begin was true, until one where reset is); {ANALYTIC_NOTE}"
            ),
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Any, Kind::Bool, Kind::Bool])
        .validate(|name, args| match args.len() {
            1 | 3 => Ok(()),
            n => Err(format!("function {name} takes 1 or 3 arguments (expr, begin, reset), got {n}")),
        })
        .build()
    };
    let mut all = vec![
        Builtin::scalar(
            "lag",
            1,
            Some(4),
            &format!(
                "lag(expr, offset = 1, default = NULL, ignore_null = true): the value of expr `offset` events \
                 before; {ANALYTIC_NOTE}"
            ),
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Any, Kind::BigInt, Kind::Any, Kind::Bool])
        .validate(|_, args| match args.get(1).and_then(|a| a.literal) {
            Some(Value::Int(n)) if *n < 0 => Err("function lag: the offset must not be negative".to_owned()),
            _ => Ok(()),
        })
        .build(),
        Builtin::scalar(
            "latest",
            1,
            Some(2),
            &format!("latest(expr, default = NULL): the last non-NULL value of expr; {ANALYTIC_NOTE}"),
            never,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "changed_col",
            2,
            Some(2),
            &format!(
                "changed_col(ignore_null, expr): expr when it differs from its last value, else NULL; {ANALYTIC_NOTE}"
            ),
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Bool, Kind::Any])
        .build(),
        Builtin::scalar(
            "had_changed",
            2,
            None,
            &format!(
                "had_changed(ignore_null, expr, ...): whether any expr differs from its last value; {ANALYTIC_NOTE}"
            ),
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Bool, Kind::Any])
        .build(),
        Builtin::scalar(
            "changed_cols",
            3,
            None,
            "changed_cols(prefix, ignore_null, expr, ...): a whole SELECT item; the expressions (`*`: every column) \
             whose value changed since the rule's previous result, each named prefix + its name",
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Str, Kind::Bool, Kind::Any])
        .build(),
    ];
    all.extend([
        accumulator(AnalyticKind::AccSum, "The sum"),
        accumulator(AnalyticKind::AccMin, "The least value"),
        accumulator(AnalyticKind::AccMax, "The greatest value"),
        accumulator(AnalyticKind::AccCount, "The number of non-NULL values"),
        accumulator(AnalyticKind::AccAvg, "The mean"),
    ]);
    let running = |kind: AnalyticKind, what: &str, number: bool| {
        let function = Builtin::scalar(
            kind.name(),
            1,
            Some(1),
            &format!(
                "{what} of the expression over the events the rule has projected so far (a running aggregate of a \
                 rule without a window, in its SELECT list; a NULL argument gives NULL)"
            ),
            never,
        )
        .pass_nulls();
        // As eKuiper: a literal string or boolean is no number.
        if number { function.kinds(&[Kind::Number]).build() } else { function.build() }
    };
    all.extend([
        running(AnalyticKind::IncCount, "The number of non-NULL values", false),
        running(AnalyticKind::IncSum, "The sum", true),
        running(AnalyticKind::IncAvg, "The mean", true),
        running(AnalyticKind::IncMin, "The least value (numbers or strings)", false),
        running(AnalyticKind::IncMax, "The greatest value (numbers or strings)", false),
        running(AnalyticKind::IncCollect, "The array of the values", false),
        running(AnalyticKind::IncMergeAgg, "The struct merging the structs", false),
        Builtin::scalar(
            "inc_last_value",
            2,
            Some(2),
            "inc_last_value(expr, ignore_null): the last value of the expression over the events the rule has \
             projected so far (a running aggregate of a rule without a window, in its SELECT list)",
            never,
        )
        .pass_nulls()
        .kinds(&[Kind::Any, Kind::Bool])
        .build(),
    ]);
    all
}
