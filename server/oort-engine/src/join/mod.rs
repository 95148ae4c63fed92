//! Joins, as eKuiper makes them: tables joined to each event of the rule's
//! stream ([`tables`]), or other streams joined to it within each window
//! ([`streams`]).

mod streams;
mod tables;

pub use streams::join_window;
pub use tables::{Loaders, TableRows, join_event, start_loaders};

use crate::expr::{EvalEnv, EvalError, JoinedRow};
use crate::plan::Join;
use crate::value::Value;

/// Whether joined parts meet the join's ON condition (any do without one).
fn matches(join: &Join, candidate: &JoinedRow, env: &EvalEnv<'_>) -> Result<bool, EvalError> {
    match &join.on {
        None => Ok(true),
        Some(on) => Ok(matches!(on.expr.eval(candidate, env)?, Value::Bool(true))),
    }
}
