//! eKuiper's `changed_cols(prefix, ignore_null, expr, …)`: a SELECT item that
//! outputs, of its expressions, those whose value changed since the rule's
//! previous result, each named `prefix` + its name (`*` stands for every
//! column of the row). It compares with earlier results, so it keeps state:
//! the projection leaves each candidate under [`ChangedCols::key`], and
//! [`Projection::keep_changes`](super::Projection::keep_changes) keeps the
//! changed ones, in output order, against the rule's
//! [`AnalyticState`](crate::analytic::AnalyticState).

use std::sync::Arc;

use oort_sql::SqlError;
use oort_sql::sqlparser::ast::{Function as SqlFunction, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::compile::{Compiler, position};
use super::eval::Scope;
use super::projection::{DEFAULT_FIELD_NAME_PREFIX, derived_name};
use super::tree::Expr;
use super::{EvalEnv, Step};
use crate::value::{Map, Value};

/// The function's name in SQL.
pub(crate) const NAME: &str = "changed_cols";

/// A `changed_cols` SELECT item, compiled.
#[derive(Debug, Clone)]
pub struct ChangedCols {
    /// Its index among the rule's `changed_cols` items: its state's.
    pub slot: usize,
    /// The output key under which the projection leaves its candidates (a
    /// map of name to value, NULLs included), until `keep_changes` replaces
    /// them with the changed ones. Starts with a NUL: no field is named so.
    pub key: Arc<str>,
    /// What each output name starts with.
    pub prefix: Arc<str>,
    /// Whether a NULL is never a change.
    pub ignore_null: bool,
    /// The monitored expressions.
    pub items: Vec<ChangedItem>,
}

/// One monitored expression of `changed_cols`.
#[derive(Debug, Clone)]
pub enum ChangedItem {
    /// An expression, under the name eKuiper gives it (its column or
    /// function name, else `kuiper_field_N`).
    Column {
        /// Its name, before the prefix.
        name: Arc<str>,
        /// The expression.
        expr: Expr,
    },
    /// `*`: every column of the row, each under its own name.
    Wildcard,
}

/// Compiles `changed_cols(...)`, SELECT item `index`, the rule's `slot`-th.
pub(super) fn compile(
    compiler: &mut Compiler<'_>,
    index: usize,
    function: &SqlFunction,
    unnamed: &mut usize,
    slot: usize,
) -> Result<ChangedCols, SqlError> {
    let at = position(function);
    let usage = |what: &str| SqlError::semantic(format!("changed_cols(prefix, ignore_null, expr, ...): {what}"), at);
    let FunctionArguments::List(list) = &function.args else { return Err(usage("arguments are missing")) };
    let [prefix, ignore_null, items @ ..] = list.args.as_slice() else {
        return Err(usage("it takes at least 3 arguments"));
    };
    if items.is_empty() {
        return Err(usage("it takes at least 3 arguments"));
    }
    let literal = |arg: &FunctionArg, compiler: &mut Compiler<'_>| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => match compiler.select_item(index, e)? {
            Expr::Literal(v) => Ok(v),
            _ => Err(usage("the prefix and ignore_null must be literals")),
        },
        _ => Err(usage("the prefix and ignore_null must be literals")),
    };
    let Value::String(prefix) = literal(prefix, compiler)? else {
        return Err(usage("the prefix must be a string"));
    };
    let Value::Bool(ignore_null) = literal(ignore_null, compiler)? else {
        return Err(usage("ignore_null must be a boolean"));
    };
    let mut compiled = Vec::with_capacity(items.len());
    for item in items {
        compiled.push(match item {
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => ChangedItem::Wildcard,
            FunctionArg::Unnamed(FunctionArgExpr::Expr(sql)) => {
                let expr = compiler.select_item(index, sql)?;
                let name = derived_name(sql, &expr).unwrap_or_else(|| {
                    *unnamed += 1;
                    format!("{DEFAULT_FIELD_NAME_PREFIX}{}", *unnamed - 1)
                });
                ChangedItem::Column { name: Arc::from(name), expr }
            }
            _ => return Err(usage("an argument is a named argument or a qualified `*`")),
        });
    }
    Ok(ChangedCols { slot, key: Arc::from(format!("\0{NAME}{slot}")), prefix, ignore_null, items: compiled })
}

impl ChangedCols {
    /// Every monitored value of the row or group, by name (NULLs kept).
    pub(super) fn candidates(&self, scope: Scope<'_>, env: &EvalEnv<'_>) -> Step<Value> {
        let mut out = Map::new();
        for item in &self.items {
            match item {
                ChangedItem::Column { name, expr } => {
                    out.insert(name.clone(), expr.eval_in(scope, env)?);
                }
                ChangedItem::Wildcard => {
                    if let Value::Map(fields) = scope.tuple().to_map() {
                        out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
        }
        Ok(Value::map(out))
    }
}
