//! The SELECT list: [`Projection`], output column naming, and evaluation
//! into the output map.

use std::sync::Arc;

use oort_sql::SqlError;
use oort_sql::sqlparser::ast::{
    Expr as SqlExpr, SelectItem, SelectItemQualifiedWildcardKind, WildcardAdditionalOptions,
};

use super::changed_cols::{self, ChangedCols, ChangedItem};
use super::compile::{Aliases, CompileContext, Compiler, position, unsupported};
use super::eval::Scope;
use super::row_number::{self, RowNumber};
use super::tree::Expr;
use super::tuple::Tuple;
use super::{EvalEnv, EvalError, Step, Stop};
use crate::analytic::AnalyticState;
use crate::value::{Map, Value};

/// eKuiper's prefix for the names of unnamed output columns.
pub const DEFAULT_FIELD_NAME_PREFIX: &str = "kuiper_field_";

/// The SELECT list, compiled.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// The output columns, in SELECT order.
    pub columns: Vec<ProjectionColumn>,
    /// The item that makes several rows of one, if any.
    pub set_returning: Option<SetReturning>,
    /// The `row_number()` item, if any: numbered after the projection.
    pub row_number: Option<RowNumber>,
    /// The items marked `INVISIBLE`: computed, not output.
    pub invisible: Vec<Arc<str>>,
    /// Output items whose value is NULL, as nulls (eKuiper's `sendNilField`);
    /// by default they are left out.
    pub keep_nulls: bool,
}

/// The functions that return a set of rows (eKuiper's "multiple row
/// functions"): a whole SELECT item, at most one per rule.
const SET_RETURNING: [&str; 2] = ["unnest", "extract"];

/// A SELECT item that is a set-returning call: each output row becomes one
/// row per item of the column's array (eKuiper's ProjectSet operator).
#[derive(Debug, Clone)]
pub struct SetReturning {
    /// The item's output column.
    pub column: Arc<str>,
    /// `unnest` or `extract`.
    pub function: Arc<str>,
}

/// One SELECT item.
#[derive(Debug, Clone)]
pub enum ProjectionColumn {
    /// `*` (every field; for a join, the parts merged, earlier parts winning),
    /// or `src.*` (the fields of one source).
    Wildcard {
        /// The source of `src.*`.
        qualifier: Option<Arc<str>>,
        /// The fields left out (`* EXCEPT(a, b)`).
        except: Vec<Arc<str>>,
    },
    /// `changed_cols(prefix, ignore_null, expr, ...)`: the columns that changed.
    ChangedCols(ChangedCols),
    /// An expression and its output name.
    Expr {
        /// The output name: the alias, the column name, the function name, or `kuiper_field_N`.
        name: Arc<str>,
        /// The expression.
        expr: Expr,
        /// Whether the name is an alias given with `AS`.
        alias: bool,
    },
}

/// Compiles the SELECT list. Items may name the aliases of other items
/// (`SELECT a + 1 AS s1, s1 * 2 AS s2`, eKuiper); a cycle is an error.
pub fn compile_projection(items: &[SelectItem], ctx: &CompileContext<'_>) -> Result<Projection, SqlError> {
    let aliases = items
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((alias.value.as_str(), expr)),
            _ => None,
        })
        .collect();
    let mut compiler = Compiler::new(ctx, Aliases::Select { items: aliases, stack: Vec::new() });
    let mut unnamed = 0;
    let mut columns = Vec::with_capacity(items.len());
    let mut set_returning = None;
    let mut row_number = None;
    for (index, item) in items.iter().enumerate() {
        let column = match item {
            SelectItem::UnnamedExpr(SqlExpr::Function(f)) if is_changed_cols(f) => {
                let slot = columns.iter().filter(|c| matches!(c, ProjectionColumn::ChangedCols(_))).count();
                ProjectionColumn::ChangedCols(changed_cols::compile(&mut compiler, index, f, &mut unnamed, slot)?)
            }
            SelectItem::ExprWithAlias { expr: SqlExpr::Function(f), .. } if is_changed_cols(f) => {
                return Err(SqlError::semantic(
                    "changed_cols names its columns with its prefix: it takes no alias",
                    position(item),
                ));
            }
            SelectItem::UnnamedExpr(SqlExpr::Function(f)) if is_named(f, row_number::NAME) => {
                numbered(&mut row_number, row_number::compile(&mut compiler, index, f, Arc::from(row_number::NAME))?)?;
                ProjectionColumn::Expr {
                    name: Arc::from(row_number::NAME),
                    expr: Expr::Literal(Value::Int(1)),
                    alias: false,
                }
            }
            SelectItem::ExprWithAlias { expr: SqlExpr::Function(f), alias } if is_named(f, row_number::NAME) => {
                let name: Arc<str> = Arc::from(alias.value.as_str());
                numbered(&mut row_number, row_number::compile(&mut compiler, index, f, name.clone())?)?;
                ProjectionColumn::Expr { name, expr: Expr::Literal(Value::Int(1)), alias: true }
            }
            SelectItem::UnnamedExpr(sql) => {
                let expr = compiler.select_item(index, sql)?;
                let name = derived_name(sql, &expr).unwrap_or_else(|| {
                    unnamed += 1;
                    format!("{DEFAULT_FIELD_NAME_PREFIX}{}", unnamed - 1)
                });
                ProjectionColumn::Expr { name: Arc::from(name), expr, alias: false }
            }
            SelectItem::ExprWithAlias { expr: sql, alias } => {
                let expr = compiler.select_item(index, sql)?;
                ProjectionColumn::Expr { name: Arc::from(alias.value.as_str()), expr, alias: true }
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(unsupported("several aliases for one item", position(item)));
            }
            SelectItem::Wildcard(options) => {
                let except = wildcard_options(options, &mut compiler, index, &mut columns)?;
                ProjectionColumn::Wildcard { qualifier: None, except }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), options) => {
                let qualifier = Some(compiler.qualifier(name)?);
                let except = wildcard_options(options, &mut compiler, index, &mut columns)?;
                ProjectionColumn::Wildcard { qualifier, except }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(expr), _) => {
                return Err(unsupported(format!("`{expr}.*`"), position(expr)));
            }
        };
        if let ProjectionColumn::Expr { name, expr: Expr::Call(call), .. } = &column
            && SET_RETURNING.contains(&&*call.name)
        {
            if set_returning.is_some() {
                return Err(SqlError::semantic(
                    "only one set-returning function (unnest, extract) is allowed in the SELECT list",
                    call.position,
                ));
            }
            set_returning = Some(SetReturning { column: name.clone(), function: call.name.clone() });
        }
        columns.push(column);
    }
    let projection = Projection { columns, set_returning, row_number, invisible: Vec::new(), keep_nulls: false };
    for (_, expr) in projection.exprs() {
        let top = matches!(expr, Expr::Call(call) if SET_RETURNING.contains(&&*call.name));
        let inner =
            if let (true, Expr::Call(call)) = (top, expr) { &call.args[..] } else { std::slice::from_ref(expr) };
        inner.iter().try_for_each(check_no_set_returning)?;
    }
    Ok(projection)
}

fn is_named(f: &oort_sql::sqlparser::ast::Function, name: &str) -> bool {
    matches!(f.name.0.as_slice(), [part] if part.to_string().eq_ignore_ascii_case(name))
}

fn is_changed_cols(f: &oort_sql::sqlparser::ast::Function) -> bool {
    is_named(f, changed_cols::NAME)
}

/// Keeps the rule's one `row_number()`.
fn numbered(slot: &mut Option<RowNumber>, compiled: RowNumber) -> Result<(), SqlError> {
    if slot.is_some() {
        return Err(unsupported("a second row_number() in one SELECT list", None));
    }
    *slot = Some(compiled);
    Ok(())
}

/// Refuses a set-returning call anywhere but as a whole SELECT item.
pub(crate) fn check_no_set_returning(expr: &Expr) -> Result<(), SqlError> {
    let mut found = None;
    expr.walk(&mut |e| {
        if let (None, Expr::Call(call)) = (&found, e)
            && SET_RETURNING.contains(&&*call.name)
        {
            found = Some((call.name.clone(), call.position));
        }
    });
    match found {
        None => Ok(()),
        Some((name, position)) => Err(SqlError::semantic(
            format!("{name} returns rows: it can only be a whole SELECT item, as in SELECT {name}(x), y FROM s"),
            position,
        )),
    }
}

/// The fields `* EXCEPT(...)` leaves out; the items of `* REPLACE(expr AS
/// name, ...)` go to `columns`, where they override the wildcard's fields.
fn wildcard_options(
    options: &WildcardAdditionalOptions,
    compiler: &mut Compiler<'_>,
    index: usize,
    columns: &mut Vec<ProjectionColumn>,
) -> Result<Vec<Arc<str>>, SqlError> {
    let at = oort_sql::Position::from_location(options.wildcard_token.0.span.start);
    if options.opt_alias.is_some() {
        return Err(SqlError::semantic("alias is not supported for *", at));
    }
    if options.opt_ilike.is_some() || options.opt_exclude.is_some() || options.opt_rename.is_some() {
        return Err(unsupported("`*` with EXCLUDE/RENAME/ILIKE (eKuiper has EXCEPT and REPLACE)", at));
    }
    if let Some(replace) = &options.opt_replace {
        for item in &replace.items {
            let expr = compiler.select_item(index, &item.expr)?;
            columns.push(ProjectionColumn::Expr {
                name: Arc::from(item.column_name.value.as_str()),
                expr,
                alias: true,
            });
        }
    }
    let except =
        options.opt_except.iter().flat_map(|e| std::iter::once(&e.first_element).chain(&e.additional_elements));
    Ok(except.map(|ident| Arc::from(ident.value.as_str())).collect())
}

/// eKuiper's name for an unaliased item: a column's name, a function's name,
/// or none (then `kuiper_field_N`). Nested access (`a->b`, `a.b` when `a` is
/// not a source) and every other expression have none.
pub(super) fn derived_name(sql: &SqlExpr, expr: &Expr) -> Option<String> {
    match (sql, expr) {
        (SqlExpr::Identifier(ident), e) if !matches!(e, Expr::SelfRow) => Some(ident.value.clone()),
        (SqlExpr::CompoundIdentifier(idents), Expr::Column { .. }) => idents.last().map(|i| i.value.clone()),
        (SqlExpr::Function(_), Expr::Call(call)) => Some(call.name.to_string()),
        (SqlExpr::Function(_), Expr::Analytic { name, .. }) => Some((*name).to_owned()),
        (SqlExpr::Function(_), Expr::Meta { .. } | Expr::MetaAll) => Some("meta".to_owned()),
        // The name as called: event_time() and window_trigger() are one expression.
        (SqlExpr::Function(f), Expr::WindowStart | Expr::WindowEnd | Expr::EventTime | Expr::LastHit { .. }) => {
            Some(f.name.to_string().to_ascii_lowercase())
        }
        _ => None,
    }
}

impl Projection {
    /// The output map for one row.
    pub fn eval(&self, row: &dyn Tuple, env: &EvalEnv<'_>) -> Result<Map, EvalError> {
        self.eval_step(row, env).map_err(Stop::into_error)
    }

    /// [`Projection::eval`] as a step of a batch's evaluation.
    pub(crate) fn eval_step(&self, row: &dyn Tuple, env: &EvalEnv<'_>) -> Step<Map> {
        self.eval_in(Scope::Row(row), env)
    }

    /// The output map for a group: aggregates over all rows, everything else
    /// (including `*`) from the first row.
    pub fn eval_group<T: Tuple>(&self, rows: &[T], env: &EvalEnv<'_>) -> Result<Map, EvalError> {
        self.eval_group_step(rows, env).map_err(Stop::into_error)
    }

    /// [`Projection::eval_group`] as a step of a batch's evaluation.
    pub(crate) fn eval_group_step<T: Tuple>(&self, rows: &[T], env: &EvalEnv<'_>) -> Step<Map> {
        let rows: Vec<&dyn Tuple> = rows.iter().map(|r| r as &dyn Tuple).collect();
        self.eval_in(Scope::Group(&rows), env)
    }

    fn eval_in(&self, scope: Scope<'_>, env: &EvalEnv<'_>) -> Step<Map> {
        let mut out = Map::new();
        for column in &self.columns {
            if let ProjectionColumn::Wildcard { qualifier, except } = column {
                let fields = match qualifier {
                    None => scope.tuple().to_map(),
                    Some(q) => scope.tuple().source_map(q).unwrap_or_default(),
                };
                match fields {
                    // The first `*` without EXCEPT: its map is the output (no copy when the row's map is not shared).
                    Value::Map(fields) if out.is_empty() && except.is_empty() => out = Arc::unwrap_or_clone(fields),
                    Value::Map(fields) => {
                        for (k, v) in fields.iter().filter(|(k, _)| !except.contains(k)) {
                            out.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        for column in &self.columns {
            match column {
                ProjectionColumn::Expr { name, expr, .. } => {
                    let value = expr.eval_in(scope, env)?;
                    if self.keep_nulls || !value.is_null() {
                        out.insert(name.clone(), value);
                    }
                }
                ProjectionColumn::ChangedCols(changed) => {
                    out.insert(changed.key.clone(), changed.candidates(scope, env)?);
                }
                ProjectionColumn::Wildcard { .. } => {}
            }
        }
        for name in &self.invisible {
            out.remove(name);
        }
        Ok(out)
    }

    /// The rows an output row becomes: itself, or with a set-returning item,
    /// one per item of that column's array (a struct item's fields become
    /// columns, over those of the same name), none for an empty array.
    pub fn expand(&self, mut row: Map) -> Result<Vec<Map>, EvalError> {
        let Some(srf) = &self.set_returning else { return Ok(vec![row]) };
        let items = match row.remove(&srf.column) {
            Some(Value::List(items)) => items,
            Some(map @ Value::Map(_)) => Arc::new(vec![map]),
            _ => {
                return Err(EvalError::Invalid(format!(
                    "the argument for the {} function should be {}",
                    srf.function,
                    if &*srf.function == "extract" { "a struct" } else { "an array" }
                )));
            }
        };
        Ok(items
            .iter()
            .map(|item| {
                let mut out = row.clone();
                match item {
                    Value::Map(fields) => out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    Value::Null => {}
                    other => {
                        out.insert(srf.column.clone(), other.clone());
                    }
                }
                out
            })
            .collect())
    }

    /// Marks the items of these aliases `INVISIBLE`; refuses a name that is no alias.
    pub fn hide(&mut self, aliases: &[String]) -> Result<(), SqlError> {
        for alias in aliases {
            let found = self
                .columns
                .iter()
                .any(|c| matches!(c, ProjectionColumn::Expr { name, alias: true, .. } if **name == **alias));
            if !found {
                return Err(SqlError::semantic(format!("INVISIBLE: no SELECT item has the alias `{alias}`"), None));
            }
            self.invisible.push(Arc::from(alias.as_str()));
        }
        Ok(())
    }

    /// How many `changed_cols` items it has: the states they keep.
    pub fn changed_cols(&self) -> usize {
        self.columns.iter().filter(|c| matches!(c, ProjectionColumn::ChangedCols(_))).count()
    }

    /// Replaces the candidates of each `changed_cols` item of an output row
    /// with those that changed since the previous row, under their prefixed
    /// names. Call it on every output row, in output order.
    pub fn keep_changes(&self, state: &mut AnalyticState, row: &mut Map) -> Result<(), EvalError> {
        for column in &self.columns {
            let ProjectionColumn::ChangedCols(changed) = column else { continue };
            let Some(Value::Map(candidates)) = row.remove(&changed.key) else { continue };
            for (name, value) in candidates.iter() {
                if changed.ignore_null && value.is_null() {
                    continue;
                }
                if state.column_changed(changed.slot, name, value)? && !value.is_null() {
                    row.insert(Arc::from(format!("{}{name}", changed.prefix)), value.clone());
                }
            }
        }
        Ok(())
    }

    /// Whether any output column calls an aggregate function.
    pub fn has_aggregate(&self) -> bool {
        self.exprs().any(|(_, e)| e.contains_aggregate())
    }

    /// Whether the list has `*` or `src.*`.
    pub fn has_wildcard(&self) -> bool {
        self.columns.iter().any(|c| matches!(c, ProjectionColumn::Wildcard { .. }))
    }

    /// The named output columns and their expressions, in SELECT order.
    pub fn exprs(&self) -> impl Iterator<Item = (&str, &Expr)> {
        self.columns.iter().flat_map(|c| -> Box<dyn Iterator<Item = (&str, &Expr)>> {
            match c {
                ProjectionColumn::Expr { name, expr, .. } => Box::new(std::iter::once((&**name, expr))),
                ProjectionColumn::ChangedCols(changed) => {
                    Box::new(changed.items.iter().filter_map(|item| match item {
                        ChangedItem::Column { name, expr } => Some((&**name, expr)),
                        ChangedItem::Wildcard => None,
                    }))
                }
                ProjectionColumn::Wildcard { .. } => Box::new(std::iter::empty()),
            }
        })
    }

    /// The output column names, in SELECT order (duplicates included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.exprs().map(|(name, _)| name)
    }

    /// The expression of the item aliased `name` (`expr AS name`); the last
    /// one when several are.
    pub fn alias_expr(&self, name: &str) -> Option<&Expr> {
        let mut aliased = self.columns.iter().filter_map(|c| match c {
            ProjectionColumn::Expr { name: n, expr, alias: true } if **n == *name => Some(expr),
            _ => None,
        });
        aliased.next_back()
    }

    /// The expression of the output column `name`; the last one when several
    /// share the name, as that one is what the output holds.
    pub fn output_expr(&self, name: &str) -> Option<&Expr> {
        self.exprs().filter(|(n, _)| *n == name).last().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests;
