//! Evaluation of an [`Expr`] against one row ([`Expr::eval`]) or a group of
//! rows ([`Expr::eval_group`]).

use super::like::compile_like;
use super::ops::{self, describe};
use super::tree::{BinaryOp, Call, Expr, LikePattern};
use super::tuple::{EmptyTuple, Tuple, lookup};
use super::{EvalEnv, EvalError, Step, Stop};
use crate::function::CallContext;
use crate::value::Value;

/// What the expression sees: one row, or a whole group (window / GROUP BY).
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Row(&'a dyn Tuple),
    Group(&'a [&'a dyn Tuple]),
}

impl<'a> Scope<'a> {
    /// The row that columns outside aggregates read: the row, or the group's first row.
    pub(crate) fn tuple(&self) -> &'a dyn Tuple {
        match *self {
            Scope::Row(t) => t,
            Scope::Group(rows) => rows.first().copied().unwrap_or(&EmptyTuple),
        }
    }
}

impl Expr {
    /// Evaluates the expression for one row (WHERE, GROUP BY keys, a per-event SELECT).
    /// An aggregate here sees a group of just this row.
    pub fn eval(&self, row: &dyn Tuple, env: &EvalEnv<'_>) -> Result<Value, EvalError> {
        self.eval_step(row, env).map_err(Stop::into_error)
    }

    /// [`Expr::eval`] as a step of a batch's evaluation: pending on a batched
    /// call whose answer is not there yet.
    pub(crate) fn eval_step(&self, row: &dyn Tuple, env: &EvalEnv<'_>) -> Step<Value> {
        self.eval_in(Scope::Row(row), env)
    }

    /// Evaluates the expression for a group of rows (a window, or one GROUP BY
    /// group of it): aggregate calls see their arguments over every row; any
    /// column outside an aggregate reads the group's first row (eKuiper).
    pub fn eval_group<T: Tuple>(&self, rows: &[T], env: &EvalEnv<'_>) -> Result<Value, EvalError> {
        self.eval_group_step(rows, env).map_err(Stop::into_error)
    }

    /// [`Expr::eval_group`] as a step of a batch's evaluation.
    pub(crate) fn eval_group_step<T: Tuple>(&self, rows: &[T], env: &EvalEnv<'_>) -> Step<Value> {
        let rows: Vec<&dyn Tuple> = rows.iter().map(|r| r as &dyn Tuple).collect();
        self.eval_in(Scope::Group(&rows), env)
    }

    pub(crate) fn eval_in(&self, scope: Scope<'_>, env: &EvalEnv<'_>) -> Step<Value> {
        match self {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Column { qualifier, name } => {
                Ok(scope.tuple().field(qualifier.as_deref(), name).cloned().unwrap_or(Value::Null))
            }
            Expr::Field(base, name) => Ok(match base.eval_in(scope, env)? {
                Value::Map(map) => lookup(&map, name).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            }),
            Expr::Index(base, index) => {
                let base = base.eval_in(scope, env)?;
                let index = index.eval_in(scope, env)?;
                Ok(index_value(&base, &index)?)
            }
            Expr::Slice { base, start, end } => {
                let base = base.eval_in(scope, env)?;
                let start = start.as_ref().map(|e| e.eval_in(scope, env)).transpose()?;
                let end = end.as_ref().map(|e| e.eval_in(scope, env)).transpose()?;
                Ok(slice_value(&base, start.as_ref(), end.as_ref())?)
            }
            Expr::Unary(op, e) => Ok(ops::unary(*op, e.eval_in(scope, env)?)?),
            Expr::Binary(op, left, right) => binary(*op, left, right, scope, env),
            Expr::Case { operand, branches, else_result } => {
                let operand = operand.as_ref().map(|o| o.eval_in(scope, env)).transpose()?;
                for (when, then) in branches {
                    let when = when.eval_in(scope, env)?;
                    let hit = match &operand {
                        Some(value) => ops::compare(BinaryOp::Eq, value, &when)?,
                        None => matches!(when, Value::Bool(true)),
                    };
                    if hit {
                        return then.eval_in(scope, env);
                    }
                }
                else_result.as_ref().map_or(Ok(Value::Null), |e| e.eval_in(scope, env))
            }
            Expr::InList { expr, list, negated } => {
                let value = expr.eval_in(scope, env)?;
                // As eKuiper: a NULL is in no set, IN or NOT IN.
                if value.is_null() {
                    return Ok(Value::Bool(false));
                }
                for candidate in list {
                    if ops::compare(BinaryOp::Eq, &value, &candidate.eval_in(scope, env)?)? {
                        return Ok(Value::Bool(!negated));
                    }
                }
                Ok(Value::Bool(*negated))
            }
            // eKuiper's sets: no array (NULL) holds nothing, a NULL is in none,
            // and a NULL item equals nothing.
            Expr::InArray { expr, array, negated } => {
                let items = match array.eval_in(scope, env)? {
                    Value::Null => return Ok(Value::Bool(*negated)),
                    Value::List(items) => items,
                    other => {
                        let message = format!("IN needs an array on its right, got {}", describe(&other));
                        return Err(EvalError::type_error(message).into());
                    }
                };
                let value = expr.eval_in(scope, env)?;
                if value.is_null() {
                    return Ok(Value::Bool(false));
                }
                for item in items.iter() {
                    if ops::compare(BinaryOp::Eq, &value, item)? {
                        return Ok(Value::Bool(!negated));
                    }
                }
                Ok(Value::Bool(*negated))
            }
            Expr::Between { expr, low, high, negated } => {
                let value = expr.eval_in(scope, env)?;
                let low = low.eval_in(scope, env)?;
                let high = high.eval_in(scope, env)?;
                let inside =
                    ops::compare(BinaryOp::GtEq, &value, &low)? && ops::compare(BinaryOp::LtEq, &value, &high)?;
                Ok(Value::Bool(inside != *negated))
            }
            Expr::Like { expr, pattern, negated } => {
                let text = match expr.eval_in(scope, env)? {
                    Value::Null => return Ok(Value::Null),
                    Value::String(s) => s,
                    other => {
                        let message = format!("LIKE needs a string, got {}", describe(&other));
                        return Err(EvalError::type_error(message).into());
                    }
                };
                let matched = match pattern {
                    LikePattern::Compiled { regex, .. } => regex.is_match(&text),
                    LikePattern::Dynamic { expr, escape, case_insensitive } => match expr.eval_in(scope, env)? {
                        Value::Null => return Ok(Value::Null),
                        Value::String(p) => {
                            compile_like(&p, *escape, *case_insensitive).map_err(EvalError::Invalid)?.is_match(&text)
                        }
                        other => {
                            let message = format!("LIKE pattern must be a string, got {}", describe(&other));
                            return Err(EvalError::type_error(message).into());
                        }
                    },
                };
                Ok(Value::Bool(matched != *negated))
            }
            Expr::IsNull { expr, negated } => Ok(Value::Bool(expr.eval_in(scope, env)?.is_null() != *negated)),
            Expr::Call(call) => call.eval_in(scope, env),
            Expr::Meta { qualifier, key } => {
                Ok(scope.tuple().meta(qualifier.as_deref(), key).map_or(Value::Null, Value::string))
            }
            Expr::MetaAll => Ok(scope.tuple().meta_map()),
            Expr::WindowStart => Ok(env.window.map_or(Value::Null, |(start, _)| Value::Int(start))),
            Expr::WindowEnd => Ok(env.window.map_or(Value::Null, |(_, end)| Value::Int(end))),
            Expr::EventTime => Ok(match (&scope, env.window) {
                (Scope::Group(_), Some((_, end))) => Value::Int(end),
                _ => Value::Int(scope.tuple().timestamp()),
            }),
            Expr::SelfRow | Expr::Wildcard { qualifier: None } => Ok(scope.tuple().to_map()),
            Expr::Wildcard { qualifier: Some(q) } => Ok(scope.tuple().source_map(q).unwrap_or(Value::Null)),
            Expr::CountStar => Ok(Value::Int(1)),
            Expr::LastHit { time, .. } => {
                let hits = env.hits.unwrap_or_default();
                Ok(Value::Int(if *time { hits.time } else { hits.count }))
            }
            Expr::Analytic { slot, .. } => Ok(scope.tuple().analytic(*slot).cloned().unwrap_or(Value::Null)),
        }
    }
}

impl Call {
    fn eval_in(&self, scope: Scope<'_>, env: &EvalEnv<'_>) -> Step<Value> {
        if let Some(result) = env.prefetch.and_then(|p| p.get(self)) {
            return Ok(result?);
        }
        let args = if self.aggregate {
            // Each argument over every row of the group, one list per argument.
            let rows: &[&dyn Tuple] = match &scope {
                Scope::Row(row) => std::slice::from_ref(row),
                Scope::Group(rows) => rows,
            };
            // In a batch, the calls of an argument are deferred row by row (keyed
            // by the row too): every row goes on to note its own, so that one
            // round makes them for all rows; an error of a row stops the
            // evaluation there, as it would without batching.
            let mut pending = false;
            let mut lists = Vec::with_capacity(self.args.len());
            for arg in &self.args {
                // Sized up front: collecting Results would grow the list step by step.
                let mut values = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    let row_env = EvalEnv { prefetch: env.prefetch.map(|p| p.in_row(i)), ..*env };
                    match arg.eval_in(Scope::Row(*row), &row_env) {
                        Ok(value) => values.push(value),
                        Err(Stop::Pending) => pending = true,
                        Err(failed) => return Err(if pending { Stop::Pending } else { failed }),
                    }
                }
                lists.push(Value::list(values));
            }
            if pending {
                return Err(Stop::Pending);
            }
            lists
        } else {
            self.args.iter().map(|arg| arg.eval_in(scope, env)).collect::<Result<Vec<_>, _>>()?
        };
        if let Some(prefetch) = env.prefetch
            && self.batched
        {
            return Err(prefetch.defer(self, args));
        }
        Ok(self.function.call(&CallContext { rule_id: env.rule_id }, &args)?)
    }
}

/// `AND` / `OR` are three-valued and short-circuit; the other operators evaluate both sides.
fn binary(op: BinaryOp, left: &Expr, right: &Expr, scope: Scope<'_>, env: &EvalEnv<'_>) -> Step<Value> {
    match op {
        BinaryOp::And | BinaryOp::Or => {
            let decisive = op == BinaryOp::Or;
            let l = ops::truth(&left.eval_in(scope, env)?, op)?;
            if l == Some(decisive) {
                return Ok(Value::Bool(decisive));
            }
            let r = ops::truth(&right.eval_in(scope, env)?, op)?;
            Ok(match (l, r) {
                (_, Some(r)) if r == decisive => Value::Bool(decisive),
                (Some(_), Some(_)) => Value::Bool(!decisive),
                _ => Value::Null,
            })
        }
        _ => {
            let l = left.eval_in(scope, env)?;
            let r = right.eval_in(scope, env)?;
            Ok(match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                    ops::arithmetic(op, &l, &r)?
                }
                BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => ops::bitwise(op, &l, &r)?,
                BinaryOp::Concat => ops::concat(&l, &r),
                _ => Value::Bool(ops::compare(op, &l, &r)?),
            })
        }
    }
}

/// An array index as i64; NULL gives `None`.
fn index_of(value: &Value, what: &str) -> Result<Option<i64>, EvalError> {
    match value {
        Value::Null => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
        other => Err(EvalError::Invalid(format!("{what} must be a bigint, got {}", describe(other)))),
    }
}

/// Resolves a possibly negative index against `len`; `None` when out of range.
fn resolve(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { index.checked_add(len)? } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

fn index_value(base: &Value, index: &Value) -> Result<Value, EvalError> {
    let Some(index) = index_of(index, "an array index")? else {
        return Ok(Value::Null);
    };
    Ok(match base {
        Value::List(items) => resolve(index, items.len()).map_or(Value::Null, |i| items[i].clone()),
        _ => Value::Null,
    })
}

fn slice_value(base: &Value, start: Option<&Value>, end: Option<&Value>) -> Result<Value, EvalError> {
    let start = start.map(|v| index_of(v, "a slice start")).transpose()?.flatten();
    let end = end.map(|v| index_of(v, "a slice end")).transpose()?.flatten();
    let Value::List(items) = base else {
        return Ok(Value::Null);
    };
    let len = items.len() as i64;
    let clamp = |i: i64| -> usize { (if i < 0 { i.saturating_add(len) } else { i }).clamp(0, len) as usize };
    let from = start.map_or(0, clamp);
    let to = end.map_or(items.len(), clamp);
    Ok(Value::list(if from < to { items[from..to].to_vec() } else { Vec::new() }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::DateTime;

    use super::*;
    use crate::Map;
    use crate::expr::test_util::*;
    use crate::row::Row;

    fn eval_on(sql: &str, row: &Row) -> Result<Value, EvalError> {
        let expr = compile_one(sql);
        expr.eval(row, &env())
    }

    fn eval(sql: &str) -> Value {
        eval_on(sql, &sample_row()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn eval_err(sql: &str) -> EvalError {
        match eval_on(sql, &sample_row()) {
            Ok(v) => panic!("{sql}: expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals_and_columns() {
        assert_eq!(eval("42"), Value::Int(42));
        assert_eq!(eval("-42"), Value::Int(-42));
        assert_eq!(eval("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(eval("1.5"), Value::Float(1.5));
        assert_eq!(eval("1e3"), Value::Float(1000.0));
        assert_eq!(eval(r#""hot""#), Value::from("hot"));
        assert_eq!(eval("'single'"), Value::from("single"));
        assert_eq!(eval("true"), Value::Bool(true));
        assert_eq!(eval("null"), Value::Null);
        assert_eq!(eval("temp"), Value::Int(25));
        assert_eq!(eval("TEMP"), Value::Int(25), "case-insensitive fallback");
        assert_eq!(eval("demo.temp"), Value::Int(25));
        assert_eq!(eval("missing"), Value::Null);
    }

    #[test]
    fn arithmetic_operators() {
        assert_eq!(eval("temp + 1"), Value::Int(26));
        assert_eq!(eval("temp - 30"), Value::Int(-5));
        assert_eq!(eval("temp * 2"), Value::Int(50));
        assert_eq!(eval("temp / 2"), Value::Int(12), "integer division");
        assert_eq!(eval("temp / 2.0"), Value::Float(12.5));
        assert_eq!(eval("temp % 7"), Value::Int(4));
        assert_eq!(eval("hum + 0.5"), Value::Float(61.0));
        assert_eq!(eval("1 + 2 * 3"), Value::Int(7));
        assert_eq!(eval("(1 + 2) * 3"), Value::Int(9));
        assert_eq!(eval("-temp"), Value::Int(-25));
        assert_eq!(eval("missing + 1"), Value::Null);
        assert_eq!(eval("missing / 0"), Value::Null);
        assert_eq!(eval("6 & 3"), Value::Int(2));
        assert_eq!(eval("6 | 3"), Value::Int(7));
        assert_eq!(eval("6 ^ 3"), Value::Int(5));
        assert_eq!(eval(r#"name || "-" || temp"#), Value::from("dev1-25"));
    }

    #[test]
    fn runtime_errors() {
        assert_eq!(eval_err("temp / 0"), EvalError::DivisionByZero);
        assert_eq!(eval_err("temp % 0"), EvalError::DivisionByZero);
        assert_eq!(eval_err("hum / 0"), EvalError::DivisionByZero);
        assert!(matches!(eval_err("big + 1"), EvalError::Overflow { .. }));
        assert!(matches!(eval_err("big * big"), EvalError::Overflow { .. }));
        assert!(matches!(eval_err("-(-9223372036854775807 - 1)"), EvalError::Overflow { .. }));
        let e = eval_err("name * 3");
        assert_eq!(e.to_string(), r#"invalid operation: string("dev1") * bigint(3)"#);
        assert!(matches!(eval_err("name > 3"), EvalError::Type { .. }));
        assert!(matches!(eval_err("temp AND true"), EvalError::Type { .. }));
        assert!(matches!(eval_err("NOT temp"), EvalError::Type { .. }));
        assert!(matches!(eval_err("temp LIKE \"2%\""), EvalError::Type { .. }));
        assert!(matches!(eval_err(r#"tags["x"]"#), EvalError::Invalid(_)));
    }

    #[test]
    fn comparisons_and_null() {
        assert_eq!(eval("temp > 20"), Value::Bool(true));
        assert_eq!(eval("temp >= 25.0"), Value::Bool(true));
        assert_eq!(eval("temp < 25"), Value::Bool(false));
        assert_eq!(eval("temp <= 24"), Value::Bool(false));
        assert_eq!(eval("temp = 25"), Value::Bool(true));
        assert_eq!(eval("temp != 25"), Value::Bool(false));
        assert_eq!(eval("temp <> 26"), Value::Bool(true));
        assert_eq!(eval(r#"name = "dev1""#), Value::Bool(true));
        assert_eq!(eval(r#"name < "dev2""#), Value::Bool(true));
        // eKuiper's NULL comparisons: always a boolean.
        assert_eq!(eval("missing = 1"), Value::Bool(false));
        assert_eq!(eval("missing > 1"), Value::Bool(false));
        assert_eq!(eval("missing != 1"), Value::Bool(false));
        assert_eq!(eval("missing = other_missing"), Value::Bool(false), "NULL = NULL is not true");
        assert_eq!(eval("missing IS NULL"), Value::Bool(true));
        assert_eq!(eval("temp IS NULL"), Value::Bool(false));
        assert_eq!(eval("temp IS NOT NULL"), Value::Bool(true));
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(eval("true AND false"), Value::Bool(false));
        assert_eq!(eval("true OR false"), Value::Bool(true));
        assert_eq!(eval("NOT true"), Value::Bool(false));
        assert_eq!(eval("null AND true"), Value::Null);
        assert_eq!(eval("null AND false"), Value::Bool(false));
        assert_eq!(eval("false AND null"), Value::Bool(false));
        assert_eq!(eval("null OR true"), Value::Bool(true));
        assert_eq!(eval("null OR false"), Value::Null);
        assert_eq!(eval("NOT null"), Value::Null);
        // Short circuit: the right side is not evaluated.
        assert_eq!(eval("false AND temp / 0 > 1"), Value::Bool(false));
        assert_eq!(eval("true OR temp / 0 > 1"), Value::Bool(true));
        assert_eq!(eval("temp > 20 AND name = \"dev1\""), Value::Bool(true));
    }

    #[test]
    fn nested_access() {
        assert_eq!(eval("loc->lat"), Value::Float(1.5));
        assert_eq!(eval("loc->LAT"), Value::Float(1.5));
        assert_eq!(eval("loc.lat"), Value::Float(1.5), "a.b on a non-source is a->b");
        assert_eq!(eval("loc->nope"), Value::Null);
        assert_eq!(eval("name->x"), Value::Null, "not a map");
        assert_eq!(eval("missing->x"), Value::Null);
        assert_eq!(eval("tags[0]"), Value::from("a"));
        assert_eq!(eval("tags[2]"), Value::from("c"));
        assert_eq!(eval("tags[-1]"), Value::from("c"));
        assert_eq!(eval("tags[-3]"), Value::from("a"));
        assert_eq!(eval("tags[3]"), Value::Null);
        assert_eq!(eval("tags[-4]"), Value::Null);
        assert_eq!(eval("tags[missing]"), Value::Null);
        assert_eq!(eval("name[0]"), Value::Null);
        assert_eq!(eval("readings[1]->v"), Value::Int(2));
        assert_eq!(eval("loc->path[1]"), Value::Int(20));
        assert_eq!(eval("tags[1:]"), Value::list(vec![Value::from("b"), Value::from("c")]));
        assert_eq!(eval("tags[:2]"), Value::list(vec![Value::from("a"), Value::from("b")]));
        assert_eq!(eval("tags[0:-1]"), Value::list(vec![Value::from("a"), Value::from("b")]));
        assert_eq!(eval("tags[2:1]"), Value::list(vec![]));
        assert_eq!(eval("tags[1:100]"), Value::list(vec![Value::from("b"), Value::from("c")]));
    }

    #[test]
    fn case_both_forms() {
        let searched = r#"CASE WHEN temp > 30 THEN "hot" WHEN temp > 20 THEN "warm" ELSE "cold" END"#;
        assert_eq!(eval(searched), Value::from("warm"));
        assert_eq!(eval(r#"CASE WHEN temp > 30 THEN "hot" END"#), Value::Null);
        assert_eq!(eval(r#"CASE WHEN missing > 30 THEN "hot" ELSE "no" END"#), Value::from("no"));
        assert_eq!(eval(r#"CASE name WHEN "dev2" THEN 2 WHEN "dev1" THEN 1 ELSE 0 END"#), Value::Int(1));
        assert_eq!(eval(r#"CASE temp WHEN 25.0 THEN "x" END"#), Value::from("x"));
        assert_eq!(eval("CASE missing WHEN 1 THEN 1 ELSE 2 END"), Value::Int(2));
        // A failing branch that is not taken is not evaluated.
        assert_eq!(eval("CASE WHEN true THEN 1 ELSE temp / 0 END"), Value::Int(1));
        assert!(matches!(eval_err(r#"CASE name WHEN 1 THEN 1 END"#), EvalError::Type { .. }));
    }

    #[test]
    fn in_between_like() {
        assert_eq!(eval("temp IN (1, 25, 3)"), Value::Bool(true));
        assert_eq!(eval("temp IN (1, 2)"), Value::Bool(false));
        assert_eq!(eval("temp NOT IN (1, 2)"), Value::Bool(true));
        assert_eq!(eval("temp NOT IN (25)"), Value::Bool(false));
        assert_eq!(eval("temp IN (25.0)"), Value::Bool(true));
        assert_eq!(eval(r#"name IN ("dev0", "dev1")"#), Value::Bool(true));
        assert_eq!(eval("missing IN (1, 2)"), Value::Bool(false), "a NULL is in no set (eKuiper)");
        assert_eq!(eval("missing NOT IN (1, 2)"), Value::Bool(false));
        assert_eq!(eval("temp IN (missing, 25)"), Value::Bool(true));
        assert_eq!(eval("temp BETWEEN 20 AND 30"), Value::Bool(true));
        assert_eq!(eval("temp BETWEEN 25 AND 25"), Value::Bool(true));
        assert_eq!(eval("temp BETWEEN 26 AND 30"), Value::Bool(false));
        assert_eq!(eval("temp NOT BETWEEN 26 AND 30"), Value::Bool(true));
        assert_eq!(eval("hum BETWEEN 60 AND 61"), Value::Bool(true));
        assert_eq!(eval("missing BETWEEN 1 AND 2"), Value::Bool(false));
        assert!(matches!(eval_err(r#"temp BETWEEN "a" AND 3"#), EvalError::Type { .. }));
        assert_eq!(eval(r#"name LIKE "dev%""#), Value::Bool(true));
        assert_eq!(eval(r#"name LIKE "dev_""#), Value::Bool(true));
        assert_eq!(eval(r#"name LIKE "d_v""#), Value::Bool(false));
        assert_eq!(eval(r#"name NOT LIKE "x%""#), Value::Bool(true));
        assert_eq!(eval(r#"name ILIKE "DEV%""#), Value::Bool(true));
        assert_eq!(eval(r#"name LIKE "dev!%" ESCAPE "!""#), Value::Bool(false));
        assert_eq!(eval(r#"missing LIKE "x%""#), Value::Null);
        assert_eq!(eval(r#"name LIKE prefix || "%""#), Value::Bool(true), "dynamic pattern");
        assert_eq!(eval(r#"name LIKE missing"#), Value::Null);
    }

    #[test]
    fn meta_self_and_window_functions() {
        let mut row = sample_row();
        row.meta = Arc::new([("topic".to_owned(), "devices/1".to_owned())].into_iter().collect());
        assert_eq!(eval_on("meta(topic)", &row).unwrap(), Value::from("devices/1"));
        assert_eq!(eval_on("meta(nope)", &row).unwrap(), Value::Null);
        let Value::Map(all) = eval_on("meta(*)", &row).unwrap() else { panic!("not a map") };
        assert_eq!(all.get("topic"), Some(&Value::from("devices/1")));
        let Value::Map(me) = eval_on("self", &row).unwrap() else { panic!("not a map") };
        assert_eq!(me.get("temp"), Some(&Value::Int(25)));
        assert_eq!(eval_on("window_start()", &row).unwrap(), Value::Null);
        let expr = compile_one("window_end() - window_start()");
        let windowed = EvalEnv { rule_id: "r", window: Some((1000, 6000)), prefetch: None, hits: None };
        assert_eq!(expr.eval(&row, &windowed).unwrap(), Value::Int(5000));
    }

    #[test]
    fn datetime_columns_compare() {
        let mut fields = Map::new();
        fields.insert(Arc::from("ts"), Value::utc(DateTime::from_timestamp_millis(1000).unwrap()));
        let row = Row::new(fields, 0);
        assert_eq!(eval_on("ts > 999", &row).unwrap(), Value::Bool(true));
        assert_eq!(eval_on(r#"ts = "1970-01-01T00:00:01Z""#, &row).unwrap(), Value::Bool(true));
    }

    #[test]
    fn scalar_function_calls() {
        assert_eq!(eval(r#"upper(name)"#), Value::from("DEV1"));
        assert_eq!(eval(r#"UPPER(name) = "DEV1""#), Value::Bool(true));
        assert_eq!(eval("upper(missing)"), Value::Null);
        let e = eval_err("upper(temp)");
        assert!(matches!(e, EvalError::Function(_)), "{e:?}");
        assert_eq!(e.to_string(), "upper: argument 1 must be string, got bigint");
    }

    #[test]
    fn aggregates_over_groups_read_the_first_row_outside_aggregates() {
        let rows = vec![row_of(&[("a", 1), ("b", 10)]), row_of(&[("a", 2), ("b", 20)]), row_of(&[("a", 3)])];
        let env = env();
        let g = |sql: &str| compile_one(sql).eval_group(&rows, &env).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(g("mysum(a)"), Value::Int(6));
        assert_eq!(g("mysum(b)"), Value::Int(30), "NULLs are in the list; mysum skips them");
        assert_eq!(g("a"), Value::Int(1), "first row");
        assert_eq!(g("a + mysum(a)"), Value::Int(7));
        assert_eq!(g("mysum(a * 2) / 2"), Value::Int(6));
        assert_eq!(g("count(*)"), Value::Int(3));
        assert_eq!(g("upper(\"x\") || mysum(a)"), Value::from("X6"));
        assert_eq!(g("mysum(a) > 5 AND a = 1"), Value::Bool(true));
        // Works for slices of references and of joined rows too.
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(compile_one("mysum(a)").eval_group(&refs, &env).unwrap(), Value::Int(6));
        let empty: Vec<Row> = Vec::new();
        assert_eq!(compile_one("a").eval_group(&empty, &env).unwrap(), Value::Null);
        assert_eq!(compile_one("count(*)").eval_group(&empty, &env).unwrap(), Value::Int(0));
    }

    #[test]
    fn an_aggregate_in_scalar_context_sees_one_row() {
        let row = row_of(&[("a", 5)]);
        assert_eq!(compile_one("mysum(a)").eval(&row, &env()).unwrap(), Value::Int(5));
        assert_eq!(compile_one("count(*)").eval(&row, &env()).unwrap(), Value::Int(1));
    }

    #[test]
    fn errors_inside_a_group_surface() {
        let rows = vec![row_of(&[("a", 1)]), row_of(&[("a", 0)])];
        let e = compile_one("mysum(10 / a)").eval_group(&rows, &env()).unwrap_err();
        assert_eq!(e, EvalError::DivisionByZero);
    }
}
