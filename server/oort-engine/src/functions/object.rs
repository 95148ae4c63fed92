//! Object (STRUCT) functions, as eKuiper's: `keys`, `values`, `object`,
//! `zip`, `items`, `object_concat`, `object_construct`, `erase`,
//! `object_size`, `object_pick`, `obj_to_kvpair_array`.
//!
//! An object's keys come out in their order (eKuiper's come in Go's random
//! map order): `keys`, `values` and `items` are deterministic.

use std::sync::Arc;

use super::Builtin;
use super::array::{PAIR_KEY, PAIR_VALUE, array};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::{Map, Value};

/// The argument as an object.
fn object_arg<'a>(name: &str, index: usize, value: &'a Value) -> Result<&'a Map, FunctionError> {
    match value {
        Value::Map(map) => Ok(map),
        other => Err(FunctionError::argument_type(name, index + 1, "struct", other)),
    }
}

fn keys(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let keys = object_arg(name, 0, &args[0])?.keys().map(|k| Value::String(Arc::clone(k))).collect();
    Ok(Value::list(keys))
}

fn values(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::list(object_arg(name, 0, &args[0])?.values().cloned().collect()))
}

/// `object(keys, values)`: the object of these keys and values; NULL when empty.
fn object(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (keys, values) = (array(name, 0, &args[0])?, array(name, 1, &args[1])?);
    if keys.len() != values.len() {
        return Err(FunctionError::failed(
            name,
            format!("{} keys and {} values: they must be as many", keys.len(), values.len()),
        ));
    }
    if keys.is_empty() {
        return Ok(Value::Null);
    }
    let mut object = Map::new();
    for (key, value) in keys.iter().zip(values) {
        let Value::String(key) = key else {
            return Err(FunctionError::argument_type(name, 1, "array of strings", key));
        };
        object.insert(Arc::clone(key), value.clone());
    }
    Ok(Value::map(object))
}

/// `zip([[k, v], ...])`: the object of these pairs; NULL pairs are left out, NULL when empty.
fn zip(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let pairs = array(name, 0, &args[0])?;
    if pairs.is_empty() {
        return Ok(Value::Null);
    }
    let mut object = Map::new();
    for pair in pairs.iter().filter(|p| !p.is_null()) {
        match pair {
            Value::List(pair) if pair.len() == 2 => match &pair[0] {
                Value::String(key) => {
                    object.insert(Arc::clone(key), pair[1].clone());
                }
                other => return Err(FunctionError::failed(name, format!("a key must be a string, not {other}"))),
            },
            _ => return Err(FunctionError::failed(name, "each item must be a [key, value] array")),
        }
    }
    Ok(Value::map(object))
}

/// `items(object)`: its `[key, value]` pairs; NULL when empty.
fn items(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let object = object_arg(name, 0, &args[0])?;
    if object.is_empty() {
        return Ok(Value::Null);
    }
    let pair = |(k, v): (&Arc<str>, &Value)| Value::list(vec![Value::String(Arc::clone(k)), v.clone()]);
    Ok(Value::list(object.iter().map(pair).collect()))
}

/// The objects merged, a later key replacing an earlier one; NULL ones left out.
fn object_concat(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut merged = Map::new();
    for (i, arg) in args.iter().enumerate().filter(|(_, a)| !a.is_null()) {
        merged.extend(object_arg(name, i, arg)?.iter().map(|(k, v)| (Arc::clone(k), v.clone())));
    }
    Ok(Value::map(merged))
}

/// `object_construct(k1, v1, k2, v2, ...)`: pairs with a NULL key are left out.
fn object_construct(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut object = Map::new();
    for (i, pair) in args.chunks(2).enumerate() {
        match pair {
            [Value::Null, _] => {}
            [Value::String(key), value] => {
                object.insert(Arc::clone(key), value.clone());
            }
            [key, _] => return Err(FunctionError::argument_type(name, 2 * i + 1, "string", key)),
            _ => return Err(FunctionError::failed(name, "the arguments must be key-value pairs")),
        }
    }
    Ok(Value::map(object))
}

/// Keys of `object_construct` must be strings: a literal of another type is
/// refused when the rule is created.
fn keys_are_strings(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!("function {name}: the arguments must be key-value pairs, got {}", args.len()));
    }
    for (i, arg) in args.iter().enumerate().step_by(2) {
        if let Some(literal) = arg.literal.filter(|l| !l.is_null() && !matches!(l, Value::String(_))) {
            return Err(format!(
                "function {name}: argument {} (a key) must be a string, got {}",
                i + 1,
                literal.type_name()
            ));
        }
    }
    Ok(())
}

/// `erase(object, key)` or `erase(object, [keys])`: the object without them.
fn erase(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let mut object = object_arg(name, 0, &args[0])?.clone();
    match &args[1] {
        Value::String(key) => {
            object.remove(key);
        }
        Value::List(keys) => {
            for key in keys.iter() {
                object.remove(key.to_string().as_str());
            }
        }
        other => return Err(FunctionError::argument_type(name, 2, "string or array", other)),
    }
    Ok(Value::map(object))
}

fn object_size(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Int(0));
    }
    Ok(Value::Int(object_arg(name, 0, &args[0])?.len() as i64))
}

/// `object_pick(object, key, ...)` or `object_pick(object, [keys])`: the
/// object of these keys only; `a.b` picks `b` inside `a`, kept nested.
fn object_pick(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    let object = object_arg(name, 0, &args[0])?;
    let keys: Vec<&Value> = match &args[1] {
        Value::List(keys) => keys.iter().collect(),
        _ => args[1..].iter().collect(),
    };
    let mut picked = Map::new();
    for key in keys {
        if let Value::String(path) = key {
            pick(&mut picked, object, path);
        }
    }
    Ok(Value::map(picked))
}

/// Copies the value at `path` (`a.b.c`) of `from` into `into`, at the same path.
fn pick(into: &mut Map, from: &Map, path: &str) {
    match path.split_once('.') {
        None => {
            if let Some((key, value)) = from.get_key_value(path) {
                into.insert(Arc::clone(key), value.clone());
            }
        }
        Some((head, rest)) => {
            let Some((key, Value::Map(inner))) = from.get_key_value(head) else { return };
            let mut nested = match into.remove(head) {
                Some(Value::Map(existing)) => Arc::unwrap_or_clone(existing),
                _ => Map::new(),
            };
            pick(&mut nested, inner, rest);
            if !nested.is_empty() {
                into.insert(Arc::clone(key), Value::map(nested));
            }
        }
    }
}

/// `obj_to_kvpair_array(object)`: `{"key": k, "value": v}` for each of its entries.
fn obj_to_kvpair_array(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (key, value): (Arc<str>, Arc<str>) = (Arc::from(PAIR_KEY), Arc::from(PAIR_VALUE));
    let pairs = object_arg(name, 0, &args[0])?.iter().map(|(k, v)| {
        let pair: Map = [(Arc::clone(&key), Value::String(Arc::clone(k))), (Arc::clone(&value), v.clone())].into();
        Value::map(pair)
    });
    Ok(Value::list(pairs.collect()))
}

/// The object functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Builtin::scalar("keys", 1, Some(1), "The keys of an object, in order.", keys).build(),
        Builtin::scalar("values", 1, Some(1), "The values of an object, in the order of its keys.", values).build(),
        Builtin::scalar("object", 2, Some(2), "The object of an array of keys and an array of values.", object).build(),
        Builtin::scalar("zip", 1, Some(1), "The object of an array of [key, value] arrays.", zip).build(),
        Builtin::scalar("items", 1, Some(1), "The [key, value] arrays of an object.", items).build(),
        Builtin::scalar(
            "object_concat",
            2,
            None,
            "The objects merged; a later key replaces an earlier one, NULL objects are left out.",
            object_concat,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "object_construct",
            0,
            None,
            "The object of key-value argument pairs; a pair with a NULL key is left out.",
            object_construct,
        )
        .pass_nulls()
        .validate(keys_are_strings)
        .build(),
        Builtin::scalar("erase", 2, Some(2), "The object without a key, or without an array of keys.", erase).build(),
        Builtin::scalar("object_size", 1, Some(1), "The number of keys of an object; 0 for NULL.", object_size)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "object_pick",
            2,
            None,
            "The object of the given keys only (or an array of them); `a.b` picks inside `a`.",
            object_pick,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "obj_to_kvpair_array",
            1,
            Some(1),
            "The entries of an object as {\"key\", \"value\"} objects.",
            obj_to_kvpair_array,
        )
        .build(),
    ]
}

#[cfg(test)]
mod tests;
