//! Joins, as eKuiper makes them: tables joined to each event of the rule's
//! stream ([`tables`], loaded; [`lookups`], queried at join time), or other
//! streams joined to it within each window ([`streams`]).

mod lookups;
mod streams;
mod tables;

pub use lookups::{Found, LookupTable, look_up};
pub use streams::join_window;
pub use tables::{Loaders, TableRows, join_event, start_loaders};

/// What a rule's tables join from, by table index: each loaded table's rows
/// (empty for a lookup table), and each lookup table's store.
pub struct Tables {
    /// The rows of the tables that are loaded.
    pub loaded: Vec<std::sync::Arc<TableRows>>,
    /// The lookup tables queried at join time; `None` for a loaded table.
    pub lookups: Vec<Option<LookupTable>>,
}

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
