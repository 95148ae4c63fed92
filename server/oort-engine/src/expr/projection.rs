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
    let projection = Projection { columns, set_returning };
    for (_, expr) in projection.exprs() {
        let top = matches!(expr, Expr::Call(call) if SET_RETURNING.contains(&&*call.name));
        let inner =
            if let (true, Expr::Call(call)) = (top, expr) { &call.args[..] } else { std::slice::from_ref(expr) };
        inner.iter().try_for_each(check_no_set_returning)?;
    }
    Ok(projection)
}

fn is_changed_cols(f: &oort_sql::sqlparser::ast::Function) -> bool {
    matches!(f.name.0.as_slice(), [part] if part.to_string().eq_ignore_ascii_case(changed_cols::NAME))
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
        (SqlExpr::Function(_), Expr::WindowStart) => Some("window_start".to_owned()),
        (SqlExpr::Function(_), Expr::WindowEnd) => Some("window_end".to_owned()),
        (SqlExpr::Function(_), Expr::EventTime) => Some("event_time".to_owned()),
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
                    if !value.is_null() {
                        out.insert(name.clone(), value);
                    }
                }
                ProjectionColumn::ChangedCols(changed) => {
                    out.insert(changed.key.clone(), changed.candidates(scope, env)?);
                }
                ProjectionColumn::Wildcard { .. } => {}
            }
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

    /// The expression of the output column `name`; the last one when several
    /// share the name, as that one is what the output holds.
    pub fn output_expr(&self, name: &str) -> Option<&Expr> {
        self.exprs().filter(|(n, _)| *n == name).last().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use oort_sql::{Field, FieldType, Position};

    use super::*;
    use crate::expr::compile::SourceSchema;
    use crate::expr::test_util::*;
    use crate::expr::{JoinedRow, compile_with_aliases};
    use crate::row::Row;

    fn project(sql: &str, sources: &[SourceSchema]) -> Result<Projection, SqlError> {
        let registry = registry();
        let ctx = CompileContext { sources, registry: &registry, rule_id: "r", analytics: None };
        compile_projection(&select_items(sql), &ctx)
    }

    fn schemaless(sql: &str) -> Projection {
        project(sql, &[SourceSchema::schemaless("demo")]).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn names(p: &Projection) -> Vec<&str> {
        p.columns
            .iter()
            .map(|c| match c {
                ProjectionColumn::Wildcard { qualifier: None, .. } => "*",
                ProjectionColumn::Wildcard { qualifier: Some(q), .. } => q,
                ProjectionColumn::ChangedCols(_) => "changed_cols",
                ProjectionColumn::Expr { name, .. } => name,
            })
            .collect()
    }

    fn out(entries: &[(&str, Value)]) -> Map {
        entries.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
    }

    #[test]
    fn naming_follows_ekuiper() {
        let p = schemaless(
            "SELECT temp, demo.hum, temp AS t, upper(name), UPPER(name) AS u, temp + 1, \"x\", loc->lat, loc.lat, \
             tags[0], meta(topic), window_start(), self, mysum(temp), (temp) FROM demo",
        );
        assert_eq!(
            names(&p),
            [
                "temp",
                "hum",
                "t",
                "upper",
                "u",
                "kuiper_field_0",
                "kuiper_field_1",
                "kuiper_field_2",
                "kuiper_field_3",
                "kuiper_field_4",
                "meta",
                "window_start",
                "kuiper_field_5",
                "mysum",
                "kuiper_field_6",
            ]
        );
        assert!(p.has_aggregate());
        assert!(!schemaless("SELECT temp FROM demo").has_aggregate());
    }

    #[test]
    fn eval_builds_the_output_map_and_leaves_nulls_out() {
        let p = schemaless(r#"SELECT temp, temp * 2 AS double, missing, upper(name), "k" FROM demo"#);
        let got = p.eval(&sample_row(), &env()).unwrap();
        assert_eq!(
            got,
            out(&[
                ("temp", Value::Int(25)),
                ("double", Value::Int(50)),
                ("upper", Value::from("DEV1")),
                ("kuiper_field_0", Value::from("k"))
            ])
        );
        let e = schemaless("SELECT temp / 0 AS x FROM demo").eval(&sample_row(), &env()).unwrap_err();
        assert_eq!(e, EvalError::DivisionByZero);
    }

    #[test]
    fn later_duplicates_win_and_columns_override_the_wildcard() {
        let row = row_of(&[("a", 1), ("b", 2)]);
        let p = schemaless("SELECT a AS x, b AS x FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("x", Value::Int(2))]));
        assert_eq!(p.output_expr("x").unwrap().to_string(), "b");
        let p = schemaless("SELECT b AS x, nope AS x FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("x", Value::Int(2))]), "a NULL does not overwrite");
        let p = schemaless("SELECT a * 10 AS a, * FROM demo");
        assert!(p.has_wildcard());
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("a", Value::Int(10)), ("b", Value::Int(2))]));
        let p = schemaless("SELECT * FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), row.fields);
    }

    #[test]
    fn select_items_may_use_the_aliases_of_others() {
        let row = row_of(&[("a", 1)]);
        let p = schemaless("SELECT a + 1 AS sum1, sum1 + 1 AS sum2 FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("sum1", Value::Int(2)), ("sum2", Value::Int(3))]));
        // An item's own alias is the column inside it, the alias elsewhere (eKuiper's example).
        let p = schemaless("SELECT a + 1 AS a, a + 2 AS sum2 FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("a", Value::Int(2)), ("sum2", Value::Int(4))]));
        // Forward references work too.
        let p = schemaless("SELECT s1 * 10 AS s2, a + 1 AS s1 FROM demo");
        assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("s1", Value::Int(2)), ("s2", Value::Int(20))]));
        let e = project("SELECT y + 1 AS x, x + 1 AS y FROM demo", &[SourceSchema::schemaless("demo")]).unwrap_err();
        assert!(e.message().contains("refers to itself"), "{e}");
        // Nested aggregates through an alias are caught.
        let e =
            project("SELECT mysum(a) AS s, mysum(s) AS t FROM demo", &[SourceSchema::schemaless("demo")]).unwrap_err();
        assert!(e.message().contains("cannot be used inside aggregate function"), "{e}");
        // An alias shadows a declared column of the same name without a schema error.
        let declared = [SourceSchema::new("demo", vec![Field::new("a", FieldType::Bigint)])];
        assert!(project("SELECT a * 2 AS twice, twice + 1 AS more FROM demo", &declared).is_ok());
    }

    #[test]
    fn having_and_order_by_see_output_columns() {
        let sources =
            [SourceSchema::new("demo", vec![Field::new("a", FieldType::Bigint), Field::new("g", FieldType::String)])];
        let registry = registry();
        let ctx = CompileContext { sources: &sources, registry: &registry, rule_id: "r", analytics: None };
        let p = compile_projection(&select_items("SELECT mysum(a) AS total, g, count(*) FROM demo"), &ctx).unwrap();
        let having = first_expr("SELECT total > 3 AND count > 1 FROM demo");
        let having = compile_with_aliases(&having, &ctx, &p).unwrap();
        assert_eq!(having.to_string(), "((mysum(a) > 3) AND (count(*) > 1))");
        let rows = vec![row_of(&[("a", 2)]), row_of(&[("a", 3)])];
        assert_eq!(having.eval_group(&rows, &env()).unwrap(), Value::Bool(true));
        // Without the projection, `total` is an unknown field of the declared stream.
        assert!(crate::expr::compile(&first_expr("SELECT total FROM demo"), &ctx).is_err());
        let e = compile_with_aliases(&first_expr("SELECT mysum(total) FROM demo"), &ctx, &p).unwrap_err();
        assert!(e.message().contains("cannot be used inside"), "{e}");
        assert_eq!(e.position(), Some(Position::new(1, 14)));
    }

    #[test]
    fn eval_group_reads_the_first_row_outside_aggregates() {
        let p = schemaless("SELECT g, mysum(a) AS total, a, count(*) AS n, * FROM demo");
        let mut rows = vec![row_of(&[("a", 1)]), row_of(&[("a", 2)]), row_of(&[("a", 4)])];
        rows[0].fields.insert(Arc::from("g"), Value::from("x"));
        let env = EvalEnv { rule_id: "r", window: Some((0, 10)), prefetch: None };
        let got = p.eval_group(&rows, &env).unwrap();
        assert_eq!(
            got,
            out(&[("g", Value::from("x")), ("total", Value::Int(7)), ("a", Value::Int(1)), ("n", Value::Int(3)),])
        );
        let windowed = schemaless("SELECT window_start() AS s, window_end() AS e FROM demo");
        assert_eq!(windowed.eval_group(&rows, &env).unwrap(), out(&[("s", Value::Int(0)), ("e", Value::Int(10))]));
    }

    #[test]
    fn joined_rows_with_qualifiers_and_wildcards() {
        let sources = [
            SourceSchema::schemaless("demo"),
            SourceSchema::new(
                "lookup",
                vec![Field::new("id", FieldType::Bigint), Field::new("label", FieldType::String)],
            )
            .with_alias("t"),
        ];
        let sql = "SELECT demo.id AS did, t.id AS tid, label, temp, t.*, mysum(temp) AS s FROM demo JOIN lookup AS t ON demo.id = t.id";
        let p = project(sql, &sources).unwrap();
        let mut left = row_of(&[("id", 1), ("temp", 20)]);
        left.meta = Arc::new(BTreeMap::from([("topic".to_owned(), "a".to_owned())]));
        let mut right = Row::new(Map::new(), 0);
        right.fields.insert(Arc::from("id"), Value::Int(9));
        right.fields.insert(Arc::from("label"), Value::from("nine"));
        let joined = JoinedRow { parts: vec![(Arc::from("demo"), left), (Arc::from("t"), right)] };
        let got = p.eval(&joined, &env()).unwrap();
        assert_eq!(
            got,
            out(&[
                ("did", Value::Int(1)),
                ("tid", Value::Int(9)),
                ("label", Value::from("nine")),
                ("temp", Value::Int(20)),
                ("id", Value::Int(9)),
                ("s", Value::Int(20)),
            ])
        );
        let star = project("SELECT * FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap();
        let merged = star.eval(&joined, &env()).unwrap();
        assert_eq!(merged.get("id"), Some(&Value::Int(1)), "earlier parts win");
        assert_eq!(merged.get("label"), Some(&Value::from("nine")));
        let e = project("SELECT x.* FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap_err();
        assert!(e.message().starts_with("unknown source `x`"), "{e}");
        assert_eq!(e.position(), Some(Position::new(1, 8)));
        let meta =
            project("SELECT meta(demo.topic) AS tp FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap();
        assert_eq!(meta.eval(&joined, &env()).unwrap(), out(&[("tp", Value::from("a"))]));
    }

    #[test]
    fn a_set_returning_item_expands_rows_and_is_refused_elsewhere() {
        let registry = crate::FunctionRegistry::new();
        crate::register_builtins(&registry);
        let sources = [SourceSchema::schemaless("demo")];
        let ctx = CompileContext { sources: &sources, registry: &registry, rule_id: "r", analytics: None };
        let project = |sql: &str| compile_projection(&select_items(sql), &ctx);
        let p = project("SELECT unnest(xs) AS v, a FROM demo").unwrap();
        let list = |items: Vec<Value>| Value::list(items);
        let row = out(&[
            ("a", Value::Int(1)),
            ("v", list(vec![Value::Int(5), Value::Null, Value::map([(Arc::from("a"), Value::Int(2))].into())])),
        ]);
        let rows = p.expand(row).unwrap();
        assert_eq!(
            rows,
            [
                out(&[("a", Value::Int(1)), ("v", Value::Int(5))]),
                out(&[("a", Value::Int(1))]),
                out(&[("a", Value::Int(2))])
            ]
        );
        assert_eq!(p.expand(out(&[("a", Value::Int(1)), ("v", list(vec![]))])).unwrap(), Vec::<Map>::new());
        let e = p.expand(out(&[("a", Value::Int(1))])).unwrap_err();
        assert_eq!(e.to_string(), "the argument for the unnest function should be an array");
        for (sql, message) in [
            ("SELECT unnest(xs), extract(m) FROM demo", "only one set-returning function"),
            ("SELECT upper(unnest(xs)) FROM demo", "unnest returns rows: it can only be a whole SELECT item"),
            ("SELECT unnest(unnest(xs)) FROM demo", "it can only be a whole SELECT item"),
        ] {
            let e = project(sql).unwrap_err();
            assert!(e.message().contains(message), "{sql}: {e}");
            assert!(e.position().is_some(), "{sql}");
        }
    }
}
