//! Array functions, as eKuiper's: `array_create`, `array_position`,
//! `element_at`, `array_contains`, set operations, `sequence`, `array_map`...
//!
//! Elements compare as SQL does (`1 = 1.0`). Where eKuiper's NULL handling
//! differs from the family's default (NULL in, NULL out), the function says
//! so: `array_position(NULL, x)` is -1, `array_contains(NULL, x)` false,
//! `array_cardinality(NULL)` 0.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{Builtin, Kind, int, text};
use crate::function::{CallContext, Function, FunctionError, FunctionKind};
use crate::value::{Map, Value};

/// The key and value names of eKuiper's key-value pairs (`kvpair_array_to_obj`).
pub(crate) const PAIR_KEY: &str = "key";
pub(crate) const PAIR_VALUE: &str = "value";

/// The argument as a list.
pub(crate) fn array<'a>(name: &str, index: usize, value: &'a Value) -> Result<&'a [Value], FunctionError> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(FunctionError::argument_type(name, index + 1, "array", other)),
    }
}

/// A list, or (eKuiper) NULL when `null_if_empty` and there is nothing in it.
fn list_or_null(items: Vec<Value>, null_if_empty: bool) -> Value {
    if null_if_empty && items.is_empty() { Value::Null } else { Value::list(items) }
}

/// Whether `item` is in `items`, as SQL compares.
fn holds(items: &[Value], item: &Value) -> bool {
    items.iter().any(|v| v == item)
}

/// The items in order, each once (as SQL compares; arrays and objects are
/// never merged, as eKuiper).
fn distinct(items: impl IntoIterator<Item = Value>, seen: &mut Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for item in items {
        if matches!(item, Value::List(_) | Value::Map(_)) {
            out.push(item);
        } else if !holds(seen, &item) {
            seen.push(item.clone());
            out.push(item);
        }
    }
    out
}

fn array_create(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let items: Vec<Value> = args.iter().filter(|v| !v.is_null()).cloned().collect();
    Ok(list_or_null(items, true))
}

fn array_position(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Int(-1));
    }
    let found = array(name, 0, &args[0])?.iter().position(|v| *v == args[1]);
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn array_last_position(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Int(-1));
    }
    let found = array(name, 0, &args[0])?.iter().rposition(|v| *v == args[1]);
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn element_at(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    match &args[0] {
        Value::List(items) => {
            let index = int(name, 1, &args[1])?;
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            if !(0..len).contains(&at) {
                return Err(FunctionError::failed(name, format!("index {index} out of range (length {len})")));
            }
            Ok(items[at as usize].clone())
        }
        Value::Map(map) => Ok(map.get(text(name, 1, &args[1])?).cloned().unwrap_or(Value::Null)),
        other => Err(FunctionError::argument_type(name, 1, "array or struct", other)),
    }
}

fn array_contains(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(holds(array(name, 0, &args[0])?, &args[1])))
}

fn array_contains_any(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Bool(false));
    }
    let (items, wanted) = (array(name, 0, &args[0])?, array(name, 1, &args[1])?);
    Ok(Value::Bool(wanted.iter().any(|w| holds(items, w))))
}

fn array_remove(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    let kept = array(name, 0, &args[0])?.iter().filter(|v| **v != args[1]).cloned().collect();
    Ok(Value::list(kept))
}

/// The items of the second array that are in the first, each once, in the second's order.
fn array_intersect(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (first, second) = (array(name, 0, &args[0])?, array(name, 1, &args[1])?);
    let mut seen = Vec::new();
    let common = second.iter().filter(|v| holds(first, v)).cloned();
    Ok(Value::list(distinct(common, &mut seen)))
}

/// The items of both arrays, each once, in order; NULL counts as empty.
fn array_union(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let side = |i: usize| if args[i].is_null() { Ok(&[][..]) } else { array(name, i, &args[i]) };
    let (first, second) = (side(0)?, side(1)?);
    let mut seen = Vec::new();
    Ok(Value::list(distinct(first.iter().chain(second).cloned(), &mut seen)))
}

/// The items of the first array that are not in the second, each once.
fn array_except(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    let first = array(name, 0, &args[0])?;
    let mut seen = if args[1].is_null() { Vec::new() } else { array(name, 1, &args[1])?.to_vec() };
    let rest = first.iter().filter(|v| matches!(v, Value::List(_) | Value::Map(_)) || !holds(&seen, v));
    let rest: Vec<Value> = rest.cloned().collect();
    Ok(Value::list(distinct(rest, &mut seen)))
}

/// `array_max`, `array_min` as eKuiper's: the first item that is not NULL
/// sets the type (a BIGINT makes FLOAT items count as truncated: the max of
/// `[1, 3.2, 4.1]` is 4), and an item of another kind is an error.
fn array_extreme(name: &str, args: &[Value], keep: std::cmp::Ordering) -> Result<Value, FunctionError> {
    let items = array(name, 0, &args[0])?;
    let present = || items.iter().filter(|v| !v.is_null());
    let Some(first) = present().next() else { return Ok(Value::Null) };
    let wrong = |v: &Value, expected| {
        FunctionError::failed(name, format!("requires {expected} but found {} ({v})", v.type_name()))
    };
    let best = |a: Value, b: Value, order: std::cmp::Ordering| if order == keep { b } else { a };
    match first {
        Value::Int(_) => present().try_fold(first.clone(), |acc, v| {
            let b = match v {
                Value::Int(b) => *b,
                Value::Float(x) => x.trunc() as i64,
                _ => return Err(wrong(v, "bigint")),
            };
            let order = acc.as_i64().map_or(std::cmp::Ordering::Greater, |a| b.cmp(&a));
            Ok(best(acc, Value::Int(b), order))
        }),
        Value::Float(_) => present().try_fold(first.clone(), |acc, v| {
            let (Some(a), Value::Int(_) | Value::Float(_)) = (acc.as_f64(), v) else { return Err(wrong(v, "float")) };
            let b = v.as_f64().unwrap_or(f64::NAN);
            Ok(best(acc, Value::Float(b), b.total_cmp(&a)))
        }),
        Value::String(_) => present().try_fold(first.clone(), |acc, v| {
            let (Value::String(a), Value::String(b)) = (&acc, v) else { return Err(wrong(v, "string")) };
            let order = b.cmp(a);
            Ok(best(acc, v.clone(), order))
        }),
        other => Err(wrong(other, "numbers or strings")),
    }
}

fn repeat(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let count = int(name, 1, &args[1])?;
    let count = usize::try_from(count).map_err(|_| FunctionError::failed(name, "the count cannot be negative"))?;
    if count > MAX_ITEMS {
        return Err(FunctionError::failed(name, format!("at most {MAX_ITEMS} items")));
    }
    Ok(Value::list(vec![args[0].clone(); count]))
}

/// Most items `repeat` and `sequence` make: a call cannot take the server's memory.
const MAX_ITEMS: usize = 1 << 20;

/// `sequence(start, stop[, step])`: the integers from `start` to `stop`,
/// both included, `step` apart (1 or -1 by default).
fn sequence(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (start, stop) = (int(name, 0, &args[0])?, int(name, 1, &args[1])?);
    let step = match args.get(2) {
        Some(step) => int(name, 2, step)?,
        None if start <= stop => 1,
        None => -1,
    };
    if step == 0 {
        return Err(FunctionError::failed(name, "the step cannot be zero"));
    }
    if (stop - start).signum() * step.signum() < 0 {
        return Err(FunctionError::failed(name, format!("a step of {step} never goes from {start} to {stop}")));
    }
    let count = (stop as i128 - start as i128) / step as i128 + 1;
    if count > MAX_ITEMS as i128 {
        return Err(FunctionError::failed(name, format!("at most {MAX_ITEMS} items")));
    }
    Ok(Value::list((0..count as i64).map(|i| Value::Int(start + i * step)).collect()))
}

fn array_cardinality(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Int(0));
    }
    Ok(Value::Int(array(name, 0, &args[0])?.iter().filter(|v| !v.is_null()).count() as i64))
}

/// One level: the items of the arrays among the items, and the other items.
fn array_flatten(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut out = Vec::new();
    for item in array(name, 0, &args[0])? {
        match item {
            Value::List(inner) => out.extend(inner.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    Ok(Value::list(out))
}

fn array_distinct(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut seen = Vec::new();
    Ok(Value::list(distinct(array(name, 0, &args[0])?.iter().cloned(), &mut seen)))
}

/// The built-in scalar functions by name, for `array_map`.
fn scalars() -> &'static HashMap<String, Arc<dyn Function>> {
    static SCALARS: OnceLock<HashMap<String, Arc<dyn Function>>> = OnceLock::new();
    SCALARS.get_or_init(|| {
        let scalar = |f: &Arc<dyn Function>| f.meta().kind == FunctionKind::Scalar;
        super::all().into_iter().filter(scalar).map(|f| (f.meta().name.clone(), f)).collect()
    })
}

/// `array_map(function, array)`: a built-in scalar function of one argument
/// applied to each item.
fn array_map(name: &str, ctx: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let function = text(name, 0, &args[0])?;
    let items = array(name, 1, &args[1])?;
    let function = mappable(function).map_err(|e| FunctionError::failed(name, e))?;
    let mapped = items.iter().map(|item| function.call(ctx, std::slice::from_ref(item))).collect::<Result<_, _>>()?;
    Ok(Value::list(mapped))
}

/// The built-in scalar function `array_map` can apply: one of one argument.
fn mappable(function: &str) -> Result<&'static Arc<dyn Function>, String> {
    let found = scalars().get(&function.to_ascii_lowercase());
    let function = found.ok_or_else(|| format!("{function} is not a built-in scalar function"))?;
    let meta = function.meta();
    if meta.min_args > 1 || meta.max_args == Some(0) {
        return Err(format!("{} does not take one argument", meta.name));
    }
    Ok(function)
}

/// `array_join(array, delimiter[, null_replacement])`: the items as text;
/// NULL items are replaced, or left out without a replacement.
fn array_join(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let items = array(name, 0, &args[0])?;
    let delimiter = text(name, 1, &args[1])?;
    let replacement = args.get(2).map(|r| text(name, 2, r)).transpose()?.filter(|r| !r.is_empty());
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null => parts.extend(replacement.map(str::to_owned)),
            Value::List(_) | Value::Map(_) | Value::Bytes(_) => {
                return Err(FunctionError::argument_type(name, 1, "array of scalars", item));
            }
            other => parts.push(other.to_string()),
        }
    }
    Ok(Value::string(parts.join(delimiter)))
}

fn array_shuffle(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut items = array(name, 0, &args[0])?.to_vec();
    fastrand::shuffle(&mut items);
    Ok(Value::list(items))
}

/// Sorted ascending: numbers by value, then text by code point, then the
/// other items by their text (eKuiper sorts everything by its text, which
/// puts `10` before `9`; for numbers and text apart, the orders agree).
fn array_sort(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let class = |v: &Value| match v {
        Value::Int(_) | Value::Float(_) => 0,
        Value::String(_) => 1,
        _ => 2,
    };
    let mut items = array(name, 0, &args[0])?.to_vec();
    items.sort_by(|a, b| {
        class(a).cmp(&class(b)).then_with(|| match (a, b) {
            (Value::Int(_) | Value::Float(_), _) => {
                a.as_f64().unwrap_or(f64::NAN).total_cmp(&b.as_f64().unwrap_or(f64::NAN))
            }
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ => a.to_string().cmp(&b.to_string()),
        })
    });
    Ok(Value::list(items))
}

/// The arrays one after another; NULL arguments are left out.
fn array_concat(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if !arg.is_null() {
            out.extend(array(name, i, arg)?.iter().cloned());
        }
    }
    Ok(list_or_null(out, true))
}

/// An array of `{"key": k, "value": v}` objects as one object.
fn kvpair_array_to_obj(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut object = Map::new();
    for item in array(name, 0, &args[0])? {
        let pair = match item {
            Value::Map(pair) if pair.len() == 2 => pair,
            _ => return Err(FunctionError::failed(name, "each item must be a {\"key\", \"value\"} object")),
        };
        let (Some(Value::String(key)), Some(value)) = (pair.get(PAIR_KEY), pair.get(PAIR_VALUE)) else {
            return Err(FunctionError::failed(name, "each item must be a {\"key\": string, \"value\"} object"));
        };
        object.insert(Arc::clone(key), value.clone());
    }
    Ok(Value::map(object))
}

/// `cardinality(x)`: the length of an array; 0 for anything else and NULL.
fn cardinality(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(match &args[0] {
        Value::List(items) => items.len() as i64,
        _ => 0,
    }))
}

/// The array functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    use std::cmp::Ordering::{Greater, Less};
    vec![
        Builtin::scalar("array_create", 0, None, "An array of the arguments that are not NULL.", array_create)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "array_position",
            2,
            Some(2),
            "The index (from 0) of the first item equal to the value, or -1.",
            array_position,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "array_last_position",
            2,
            Some(2),
            "The index (from 0) of the last item equal to the value, or -1.",
            array_last_position,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "element_at",
            2,
            Some(2),
            "The item at an index of an array (from 0; negative from the end), or the value of a key of an object.",
            element_at,
        )
        .build(),
        Builtin::scalar("array_contains", 2, Some(2), "Whether an item equals the value.", array_contains)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "array_contains_any",
            2,
            Some(2),
            "Whether an item equals one of the items of the second array.",
            array_contains_any,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar("array_remove", 2, Some(2), "The array without the items equal to the value.", array_remove)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "array_intersect",
            2,
            Some(2),
            "The items of the second array that are in the first, each once.",
            array_intersect,
        )
        .build(),
        Builtin::scalar("array_union", 2, Some(2), "The items of both arrays, each once, in order.", array_union)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "array_except",
            2,
            Some(2),
            "The items of the first array that are not in the second, each once.",
            array_except,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar("array_max", 1, Some(1), "The largest item that is not NULL.", |n, _, a| {
            array_extreme(n, a, Greater)
        })
        .build(),
        Builtin::scalar("array_min", 1, Some(1), "The smallest item that is not NULL.", |n, _, a| {
            array_extreme(n, a, Less)
        })
        .build(),
        Builtin::scalar("repeat", 2, Some(2), "An array of the value repeated a number of times.", repeat)
            .kinds(&[Kind::Any, Kind::Int])
            .build(),
        Builtin::scalar(
            "sequence",
            2,
            Some(3),
            "The integers from start to stop, both included, step apart (1 or -1 by default).",
            sequence,
        )
        .kinds(&[Kind::Int])
        .build(),
        Builtin::scalar("array_cardinality", 1, Some(1), "The number of items that are not NULL.", array_cardinality)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "array_flatten",
            1,
            Some(1),
            "The array with the arrays in it opened, one level.",
            array_flatten,
        )
        .build(),
        Builtin::scalar("array_distinct", 1, Some(1), "The items, each once, in order.", array_distinct).build(),
        Builtin::scalar(
            "array_map",
            2,
            Some(2),
            "A built-in scalar function of one argument, named by a string, applied to each item.",
            array_map,
        )
        .kinds(&[Kind::Str, Kind::Any])
        .validate(|_, args| match super::literal_str(args, 0) {
            Some(function) => mappable(function).map(drop),
            None => Ok(()),
        })
        .build(),
        Builtin::scalar(
            "array_join",
            2,
            Some(3),
            "The items as text joined by a delimiter; NULL items replaced by the third argument, or left out.",
            array_join,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .build(),
        Builtin::scalar("array_shuffle", 1, Some(1), "The items in a random order.", array_shuffle).build(),
        Builtin::scalar("array_sort", 1, Some(1), "The items sorted ascending.", array_sort).build(),
        Builtin::scalar("array_concat", 1, None, "The arrays one after another; NULL ones left out.", array_concat)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "kvpair_array_to_obj",
            1,
            Some(1),
            "An array of {\"key\", \"value\"} objects as one object.",
            kvpair_array_to_obj,
        )
        .build(),
        Builtin::scalar("cardinality", 1, Some(1), "The length of an array; 0 for anything else.", cardinality)
            .pass_nulls()
            .build(),
    ]
}

#[cfg(test)]
mod tests;
