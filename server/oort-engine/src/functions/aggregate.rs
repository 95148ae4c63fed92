//! Aggregate functions, as eKuiper's. Each argument arrives as a `Value::List` holding
//! that argument's value for every row of the group, in arrival order; a constant
//! argument (`last_value(a, true)`) is that constant repeated.
//!
//! NULLs are ignored, except by `collect` and `last_value(col, false)`. A group with no
//! non-NULL value gives NULL (`count` gives 0). `sum` of integers is an integer (an
//! overflow is an error); `avg` and the statistics are floats.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use super::json::to_json_string;
use super::{Builtin, Kind, boolean, literal, rows};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::{Map, Value};

/// The non-NULL items of an argument.
fn present(items: &[Value]) -> impl Iterator<Item = &Value> {
    items.iter().filter(|v| !v.is_null())
}

/// The non-NULL items of an argument that must be numbers, as f64 (NaN dropped).
fn numbers(name: &str, items: &[Value]) -> Result<Vec<f64>, FunctionError> {
    let mut out = Vec::with_capacity(items.len());
    for v in present(items) {
        match v.as_f64() {
            Some(x) if x.is_nan() => {}
            Some(x) => out.push(x),
            None => return Err(FunctionError::argument_type(name, 1, "number", v)),
        }
    }
    Ok(out)
}

/// The constant of an argument such as `last_value`'s second: its first non-NULL item.
fn constant<'a>(name: &str, index: usize, arg: &'a Value) -> Result<Option<&'a Value>, FunctionError> {
    Ok(present(rows(name, index, arg)?).next())
}

fn count(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(present(rows(name, 0, &args[0])?).count() as i64))
}

/// Sums as i128 while every item is an integer, so that only the total can overflow.
struct Total {
    ints: i128,
    floats: f64,
    all_ints: bool,
    count: usize,
}

fn total(name: &str, items: &[Value]) -> Result<Total, FunctionError> {
    let mut t = Total { ints: 0, floats: 0.0, all_ints: true, count: 0 };
    for v in present(items) {
        match v {
            Value::Int(i) => t.ints += i128::from(*i),
            Value::Float(x) => {
                t.floats += x;
                t.all_ints = false;
            }
            other => return Err(FunctionError::argument_type(name, 1, "number", other)),
        }
        t.count += 1;
    }
    Ok(t)
}

fn sum(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = total(name, rows(name, 0, &args[0])?)?;
    if t.count == 0 {
        return Ok(Value::Null);
    }
    if t.all_ints {
        return i64::try_from(t.ints)
            .map(Value::Int)
            .map_err(|_| FunctionError::failed(name, "the sum overflows bigint"));
    }
    Ok(Value::Float(t.ints as f64 + t.floats))
}

fn avg(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = total(name, rows(name, 0, &args[0])?)?;
    if t.count == 0 {
        return Ok(Value::Null);
    }
    if t.all_ints {
        // eKuiper divides integers as integers: avg(1, 2, 4) = 2, a bigint.
        return Ok(Value::Int((t.ints / t.count as i128) as i64));
    }
    Ok(Value::Float((t.ints as f64 + t.floats) / t.count as f64))
}

/// Orders two non-NULL values of the same kind: numbers, strings, datetimes or booleans.
fn compare(name: &str, a: &Value, b: &Value) -> Result<Option<Ordering>, FunctionError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => {
            return Err(FunctionError::failed(
                name,
                format!("cannot compare {} with {}", a.type_name(), b.type_name()),
            ));
        }
    })
}

fn extreme(name: &str, items: &[Value], keep: Ordering) -> Result<Value, FunctionError> {
    let mut best: Option<&Value> = None;
    for v in present(items) {
        if let Value::List(_) | Value::Map(_) | Value::Bytes(_) = v {
            return Err(FunctionError::argument_type(name, 1, "number, string or datetime", v));
        }
        if matches!(v, Value::Float(x) if x.is_nan()) {
            continue;
        }
        best = match best {
            None => Some(v),
            Some(b) if compare(name, v, b)? == Some(keep) => Some(v),
            Some(b) => Some(b),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn collect(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::list(rows(name, 0, &args[0])?.to_vec()))
}

/// `deduplicate(col, all)`, as eKuiper's: with `all`, the rows of the group whose
/// `col` was not seen in an earlier row, in order; without, the last row if its
/// `col` is new, else NULL. The planner passes the rows as a third argument.
fn deduplicate(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let keys = rows(name, 0, &args[0])?;
    let all = match constant(name, 1, &args[1])? {
        Some(v) => boolean(name, 1, v)?,
        None => true,
    };
    // Present whenever the planner compiled the call; absent only for a direct call.
    let Some(records) = args.get(2) else {
        return Err(FunctionError::failed(name, "the group's rows were not passed"));
    };
    let records = rows(name, 2, records)?;
    let mut seen = HashSet::new();
    if all {
        let distinct = keys.iter().zip(records).filter(|(k, _)| seen.insert(to_json_string(k))).map(|(_, r)| r.clone());
        return Ok(Value::list(distinct.collect()));
    }
    let (Some((last, earlier)), Some(record)) = (keys.split_last(), records.last()) else { return Ok(Value::Null) };
    let key = to_json_string(last);
    Ok(if earlier.iter().any(|v| to_json_string(v) == key) { Value::Null } else { record.clone() })
}

fn last_value(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let items = rows(name, 0, &args[0])?;
    let ignore_null = match constant(name, 1, &args[1])? {
        Some(v) => boolean(name, 1, v)?,
        None => false,
    };
    let last = if ignore_null { items.iter().rev().find(|v| !v.is_null()) } else { items.last() };
    Ok(last.cloned().unwrap_or(Value::Null))
}

fn merge_agg(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut merged = Map::new();
    for v in rows(name, 0, &args[0])? {
        if let Value::Map(map) = v {
            merged.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    // As eKuiper: nothing merged is NULL.
    Ok(if merged.is_empty() { Value::Null } else { Value::map(merged) })
}

/// The variance of `xs`, dividing by n (population) or n - 1 (sample); `None` when undefined.
fn variance(xs: &[f64], sample: bool) -> Option<f64> {
    let n = xs.len();
    let divisor = if sample { n.checked_sub(1)? } else { n };
    if divisor == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    Some(xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / divisor as f64)
}

fn statistic(name: &str, description: &str, sample: bool, root: bool) -> Arc<dyn Function> {
    Builtin::aggregate(name, 1, Some(1), description, move |name, _, args| {
        let xs = numbers(name, rows(name, 0, &args[0])?)?;
        Ok(variance(&xs, sample).map_or(Value::Null, |v| Value::Float(if root { v.sqrt() } else { v })))
    })
    .kinds(&[Kind::Number])
    .build()
}

/// The continuous percentile of sorted `xs`: linear interpolation between the closest ranks.
fn percentile_cont(xs: &[f64], p: f64) -> Option<f64> {
    let last = xs.len().checked_sub(1)?;
    let rank = p * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(xs[lo] + (rank - lo as f64) * (xs[hi.min(last)] - xs[lo]))
}

/// The discrete percentile of sorted `xs`: the first value whose cumulative share reaches `p`.
fn percentile_disc(xs: &[f64], p: f64) -> Option<f64> {
    let last = xs.len().checked_sub(1)?;
    let index = ((p * xs.len() as f64).ceil() as usize).saturating_sub(1).min(last);
    Some(xs[index])
}

fn sorted_numbers(name: &str, arg: &Value) -> Result<Vec<f64>, FunctionError> {
    let mut xs = numbers(name, rows(name, 0, arg)?)?;
    xs.sort_by(f64::total_cmp);
    Ok(xs)
}

fn percentile(name: &str, description: &str, f: fn(&[f64], f64) -> Option<f64>) -> Arc<dyn Function> {
    Builtin::aggregate(name, 2, Some(2), description, move |name, _, args| {
        let Some(p) = constant(name, 1, &args[1])? else { return Ok(Value::Null) };
        let p = p.as_f64().ok_or_else(|| FunctionError::argument_type(name, 2, "number", p))?;
        if !(0.0..=1.0).contains(&p) {
            return Err(FunctionError::failed(name, format!("the percentile must be between 0 and 1, got {p}")));
        }
        Ok(f(&sorted_numbers(name, &args[0])?, p).map_or(Value::Null, Value::Float))
    })
    .kinds(&[Kind::Number])
    .validate(validate_percentile)
    .build()
}

fn validate_percentile(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal(args, 1).and_then(Value::as_f64) {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(format!("function {name}: the percentile must be between 0 and 1")),
        _ => Ok(()),
    }
}

/// The aggregate functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    let flag = &[Kind::Any, Kind::Bool];
    vec![
        Builtin::aggregate(
            "avg",
            1,
            Some(1),
            "The average of the non-NULL values of a group: a bigint (integer division) when they all are, else a float.",
            avg,
        )
            .kinds(&[Kind::Number])
            .build(),
        Builtin::aggregate(
            "count",
            1,
            Some(1),
            "The number of non-NULL values of a group; count(*) counts rows.",
            count,
        )
        .build(),
        Builtin::aggregate("max", 1, Some(1), "The largest non-NULL value of a group.", |name, _, args| {
            extreme(name, rows(name, 0, &args[0])?, Ordering::Greater)
        })
        .build(),
        Builtin::aggregate("min", 1, Some(1), "The smallest non-NULL value of a group.", |name, _, args| {
            extreme(name, rows(name, 0, &args[0])?, Ordering::Less)
        })
        .build(),
        Builtin::aggregate(
            "sum",
            1,
            Some(1),
            "The sum of the non-NULL values of a group; integers stay integers.",
            sum,
        )
        .kinds(&[Kind::Number])
        .build(),
        Builtin::aggregate(
            "collect",
            1,
            Some(1),
            "An array of the values of a group (collect(*): of its rows).",
            collect,
        )
        .build(),
        Builtin::aggregate(
            "deduplicate",
            2,
            Some(2),
            "deduplicate(col, true): the rows of a group with a col value not seen before; (col, false): the last row if its col value is new, else NULL.",
            deduplicate,
        )
        .kinds(flag)
        .with_rows()
        .build(),
        Builtin::aggregate(
            "last_value",
            2,
            Some(2),
            "The last value of a group: last_value(col, ignore_null).",
            last_value,
        )
        .kinds(flag)
        .validate(|name, args| match args.get(1) {
            // eKuiper refuses `last_value(foo, bar)`: whether NULLs count is fixed when the rule is made.
            Some(arg) if arg.literal.is_none() => {
                Err(format!("function {name}: argument 2 must be true or false, not a column or an expression"))
            }
            _ => Ok(()),
        })
        .build(),
        Builtin::aggregate(
            "merge_agg",
            1,
            Some(1),
            "Merges the structs of a group into one (later keys win); other values are ignored; NULL without any.",
            merge_agg,
        )
        .build(),
        statistic("stddev", "The population standard deviation of a group.", false, true),
        statistic("stddevs", "The sample standard deviation of a group.", true, true),
        statistic("var", "The population variance of a group.", false, false),
        statistic("vars", "The sample variance of a group.", true, false),
        Builtin::aggregate("median", 1, Some(1), "The median of a group (interpolated).", |name, _, args| {
            Ok(percentile_cont(&sorted_numbers(name, &args[0])?, 0.5).map_or(Value::Null, Value::Float))
        })
        .kinds(&[Kind::Number])
        .build(),
        percentile(
            "percentile_cont",
            "The percentile (0 to 1) of a group, interpolated: percentile_cont(col, 0.9).",
            percentile_cont,
        ),
        percentile(
            "percentile_disc",
            "The percentile (0 to 1) of a group, as one of its values: percentile_disc(col, 0.9).",
            percentile_disc,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::functions::testing::{assert_close, list, s, validate};

    crate::functions::testing::shorthands!(functions);

    fn ints(values: &[i64]) -> Value {
        list(values.iter().map(|&i| Value::Int(i)).collect())
    }

    /// A constant argument repeated for `n` rows.
    fn repeat(value: Value, n: usize) -> Value {
        list(vec![value; n])
    }

    fn nulls(n: usize) -> Value {
        repeat(Value::Null, n)
    }

    #[test]
    fn count_ignores_nulls() {
        assert_eq!(f("count", &[list(vec![Value::Int(1), Value::Null, s("a")])]), Value::Int(2));
        assert_eq!(f("count", &[repeat(Value::Bool(true), 3)]), Value::Int(3), "count(*) gets markers");
        assert_eq!(f("count", &[list(vec![])]), Value::Int(0));
        assert_eq!(f("count", &[nulls(2)]), Value::Int(0));
        assert!(matches!(e("count", &[Value::Int(1)]), FunctionError::ArgumentType { .. }), "not a list");
    }

    #[test]
    fn sum_keeps_integers_and_checks_overflow() {
        assert!(matches!(f("sum", &[ints(&[1, 2, 3])]), Value::Int(6)));
        assert!(
            matches!(f("sum", &[list(vec![Value::Int(1), Value::Float(0.5), Value::Null])]), Value::Float(x) if x == 1.5)
        );
        assert_eq!(f("sum", &[nulls(2)]), Value::Null);
        assert_eq!(f("sum", &[list(vec![])]), Value::Null);
        assert!(matches!(f("sum", &[ints(&[i64::MAX, 1, -2])]), Value::Int(x) if x == i64::MAX - 1), "only the total");
        assert!(matches!(e("sum", &[ints(&[i64::MAX, 1])]), FunctionError::Failed { .. }));
        assert!(matches!(e("sum", &[list(vec![Value::Int(1), s("2")])]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn avg_of_integers_divides_as_integers_else_is_a_float() {
        assert_eq!(f("avg", &[ints(&[1, 2, 4])]), Value::Int(2));
        assert_eq!(f("avg", &[ints(&[-1, -2])]), Value::Int(-1), "truncates toward zero, as Go does");
        assert_close(&f("avg", &[list(vec![Value::Int(1), Value::Null, Value::Float(2.0)])]), 1.5);
        assert_eq!(f("avg", &[ints(&[i64::MAX, i64::MAX])]), Value::Int(i64::MAX), "no overflow on the way");
        assert_eq!(f("avg", &[nulls(3)]), Value::Null);
        assert!(matches!(e("avg", &[list(vec![Value::Bool(true)])]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn max_and_min_of_numbers_strings_and_datetimes() {
        assert!(matches!(f("max", &[ints(&[3, 9, -1])]), Value::Int(9)));
        assert!(matches!(f("min", &[ints(&[3, 9, -1])]), Value::Int(-1)));
        assert!(matches!(f("max", &[list(vec![Value::Int(3), Value::Float(3.5), Value::Null])]), Value::Float(_)));
        assert_eq!(f("max", &[list(vec![Value::Float(f64::NAN), Value::Float(1.0)])]), Value::Float(1.0));
        assert_eq!(f("max", &[list(vec![s("b"), s("c"), s("a")])]), s("c"));
        assert_eq!(f("min", &[list(vec![s("b"), Value::Null, s("a")])]), s("a"));
        let (t1, t2) = (Utc.timestamp_millis_opt(1).single(), Utc.timestamp_millis_opt(2).single());
        let times = list(vec![t2.map(Value::utc).unwrap_or_default(), t1.map(Value::utc).unwrap_or_default()]);
        assert_eq!(f("min", &[times]), t1.map(Value::utc).unwrap_or_default());
        for name in ["max", "min"] {
            assert_eq!(f(name, &[nulls(2)]), Value::Null);
            assert_eq!(f(name, &[list(vec![])]), Value::Null);
            assert!(matches!(e(name, &[list(vec![Value::Int(1), s("a")])]), FunctionError::Failed { .. }));
            assert!(matches!(e(name, &[list(vec![list(vec![])])]), FunctionError::ArgumentType { .. }));
        }
    }

    #[test]
    fn collect_keeps_every_row() {
        let values = list(vec![Value::Int(1), Value::Null, s("a")]);
        assert_eq!(f("collect", std::slice::from_ref(&values)), values);
        assert_eq!(f("collect", &[list(vec![])]), list(vec![]));
        assert_eq!(f("collect", &[nulls(1)]), nulls(1));
        assert!(matches!(e("collect", &[s("a")]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn deduplicate_gives_the_rows_of_new_values() {
        let values = ints(&[1, 2, 1, 3]);
        let records = |n: usize| list((0..n).map(|i| s(&format!("row{i}"))).collect());
        let dedup = |keys: &Value, all: bool| {
            let n = match keys {
                Value::List(k) => k.len(),
                _ => 0,
            };
            f("deduplicate", &[keys.clone(), repeat(Value::Bool(all), n), records(n)])
        };
        assert_eq!(dedup(&values, true), list(vec![s("row0"), s("row1"), s("row3")]));
        assert_eq!(dedup(&values, false), s("row3"), "the last row's value is new");
        assert_eq!(dedup(&ints(&[1, 2, 1]), false), Value::Null);
        assert_eq!(dedup(&list(vec![]), true), list(vec![]));
        assert_eq!(dedup(&list(vec![Value::Null, Value::Null]), true), list(vec![s("row0")]));
        assert!(matches!(
            e("deduplicate", &[ints(&[1]), repeat(s("yes"), 1), list(vec![s("row0")])]),
            FunctionError::ArgumentType { index: 2, .. }
        ));
        assert!(validate(&functions(), "deduplicate", &[None, Some(Value::Int(1))]).is_err());
        assert!(validate(&functions(), "deduplicate", &[None, Some(Value::Bool(false))]).is_ok());
    }

    #[test]
    fn last_value_with_or_without_nulls() {
        let values = list(vec![Value::Int(1), Value::Int(2), Value::Null]);
        assert_eq!(f("last_value", &[values.clone(), repeat(Value::Bool(true), 3)]), Value::Int(2));
        assert_eq!(f("last_value", &[values, repeat(Value::Bool(false), 3)]), Value::Null);
        assert_eq!(f("last_value", &[list(vec![]), list(vec![])]), Value::Null);
        assert_eq!(f("last_value", &[nulls(2), repeat(Value::Bool(true), 2)]), Value::Null);
        assert!(matches!(e("last_value", &[ints(&[1]), ints(&[1])]), FunctionError::ArgumentType { index: 2, .. }));
        assert!(validate(&functions(), "last_value", &[None, Some(s("true"))]).is_err());
        let column = validate(&functions(), "last_value", &[None, None]).unwrap_err();
        assert!(column.contains("argument 2 must be true or false"), "{column}");
        assert!(validate(&functions(), "last_value", &[None, Some(Value::Bool(false))]).is_ok());
    }

    #[test]
    fn merge_agg_merges_structs() {
        let object = |pairs: &[(&str, Value)]| {
            Value::map(pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect::<Map>())
        };
        let rows = list(vec![
            object(&[("a", Value::Int(1)), ("b", Value::Int(2))]),
            Value::Null,
            Value::Int(7),
            object(&[("b", Value::Int(5)), ("c", Value::Int(6))]),
        ]);
        let merged = object(&[("a", Value::Int(1)), ("b", Value::Int(5)), ("c", Value::Int(6))]);
        assert_eq!(f("merge_agg", &[rows]), merged);
        assert_eq!(f("merge_agg", &[ints(&[1, 2])]), Value::Null, "no struct: NULL, as eKuiper");
        assert_eq!(f("merge_agg", &[nulls(1)]), Value::Null);
        assert!(matches!(e("merge_agg", &[Value::Null]), FunctionError::ArgumentType { .. }));
    }

    #[test]
    fn variance_and_standard_deviation() {
        let values = list(vec![
            Value::Int(2),
            Value::Int(4),
            Value::Int(4),
            Value::Int(4),
            Value::Null,
            Value::Int(5),
            Value::Int(5),
            Value::Int(7),
            Value::Float(9.0),
        ]);
        assert_close(&f("var", std::slice::from_ref(&values)), 4.0);
        assert_close(&f("stddev", std::slice::from_ref(&values)), 2.0);
        assert_close(&f("vars", std::slice::from_ref(&values)), 32.0 / 7.0);
        assert_close(&f("stddevs", &[values]), (32.0f64 / 7.0).sqrt());
        assert_close(&f("var", &[ints(&[5])]), 0.0);
        for name in ["stddev", "stddevs", "var", "vars"] {
            assert_eq!(f(name, &[nulls(2)]), Value::Null, "{name}");
            assert!(matches!(e(name, &[list(vec![s("1")])]), FunctionError::ArgumentType { .. }), "{name}");
        }
        assert_eq!(f("vars", &[ints(&[5])]), Value::Null, "a sample needs two values");
        assert_eq!(f("stddevs", &[ints(&[5])]), Value::Null);
    }

    #[test]
    fn percentiles_and_median() {
        let values = list(vec![Value::Int(4), Value::Int(1), Value::Null, Value::Int(3), Value::Int(2)]);
        assert_close(&f("median", std::slice::from_ref(&values)), 2.5);
        assert_close(&f("median", &[ints(&[5, 1, 3])]), 3.0);
        assert_close(&f("percentile_cont", &[values.clone(), repeat(Value::Float(0.25), 5)]), 1.75);
        assert_close(&f("percentile_cont", &[values.clone(), repeat(Value::Int(1), 5)]), 4.0);
        assert_close(&f("percentile_disc", &[values.clone(), repeat(Value::Float(0.25), 5)]), 1.0);
        assert_close(&f("percentile_disc", &[values.clone(), repeat(Value::Float(0.5), 5)]), 2.0);
        assert_close(&f("percentile_disc", &[values.clone(), repeat(Value::Float(0.51), 5)]), 3.0);
        assert_close(&f("percentile_disc", &[values.clone(), repeat(Value::Int(0), 5)]), 1.0);
        assert_eq!(f("median", &[nulls(2)]), Value::Null);
        for name in ["percentile_cont", "percentile_disc"] {
            assert_eq!(f(name, &[nulls(2), repeat(Value::Float(0.5), 2)]), Value::Null, "{name}");
            assert_eq!(f(name, &[list(vec![]), list(vec![])]), Value::Null, "{name}");
            let e1 = e(name, &[values.clone(), repeat(Value::Float(1.5), 5)]);
            assert!(matches!(e1, FunctionError::Failed { .. }), "{name}");
            let e2 = e(name, &[list(vec![s("x")]), repeat(Value::Float(0.5), 1)]);
            assert!(matches!(e2, FunctionError::ArgumentType { .. }), "{name}");
            assert!(validate(&functions(), name, &[None, Some(Value::Float(0.9))]).is_ok());
            assert!(validate(&functions(), name, &[None, Some(Value::Float(1.1))]).is_err());
            assert!(validate(&functions(), name, &[None, Some(s("0.5"))]).is_err());
        }
        assert!(matches!(e("median", &[list(vec![Value::Bool(true)])]), FunctionError::ArgumentType { .. }));
    }
}
