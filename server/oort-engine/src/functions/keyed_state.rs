//! `get_keyed_state(key, type, default)`: a value stored ahead of time under
//! a key (through the server's `StateService`), read by rules, as eKuiper
//! reads its keyed state from SQLite or Redis.

use std::sync::Arc;

use super::Builtin;
use super::conversion::cast_value;
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::Value;

/// The types `get_keyed_state` converts a value to, as eKuiper names them.
const TYPES: [&str; 5] = ["bigint", "float", "string", "boolean", "datetime"];

/// Where keyed values are kept.
pub trait KeyedStateStore: Send + Sync {
    /// The value of `key`, `None` when it has none; `Err` when the store failed.
    fn get(&self, key: &str) -> Result<Option<Value>, String>;
}

/// `get_keyed_state`, reading `store`: the key's value converted to the
/// type, or the default when the key has no value or the store fails (as
/// eKuiper's). The type, when literal, is checked at creation.
pub fn keyed_state_function(store: Arc<dyn KeyedStateStore>) -> Arc<dyn Function> {
    Builtin::scalar(
        "get_keyed_state",
        3,
        Some(3),
        "The value stored under a key (StateService, `oort state put`), converted to the type (bigint, float, \
         string, boolean or datetime); the default when the key has none.",
        move |name, _: &CallContext<'_>, args| {
            let Value::String(key) = &args[0] else {
                return Err(FunctionError::argument_type(name, 1, "string", &args[0]));
            };
            match store.get(key) {
                Ok(Some(value)) => cast_value(name, &value, &type_name(name, &args[1])?),
                Ok(None) => Ok(args[2].clone()),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "get_keyed_state: the store failed; the default is used");
                    Ok(args[2].clone())
                }
            }
        },
    )
    .pass_nulls()
    .validate(validate)
    .build()
}

fn type_name(name: &str, value: &Value) -> Result<String, FunctionError> {
    match value {
        Value::String(t) if TYPES.contains(&t.to_ascii_lowercase().as_str()) => Ok(t.to_ascii_lowercase()),
        other => {
            Err(FunctionError::failed(name, format!("{other} is not a type; expected one of {}", TYPES.join(", "))))
        }
    }
}

fn validate(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match args.get(1).and_then(|a| a.literal) {
        None => Ok(()),
        Some(literal) => type_name(name, literal).map(|_| ()).map_err(|_| {
            format!("function {name}: expect one of following value for the 2nd parameter: {}", TYPES.join(", "))
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::functions::testing::{call, s, validate};

    struct Map(HashMap<&'static str, Value>);

    impl KeyedStateStore for Map {
        fn get(&self, key: &str) -> Result<Option<Value>, String> {
            match key {
                "broken" => Err("disk on fire".into()),
                _ => Ok(self.0.get(key).cloned()),
            }
        }
    }

    fn functions() -> Vec<Arc<dyn Function>> {
        let store = Map(HashMap::from([("limit", s("42")), ("ratio", Value::Float(0.5))]));
        vec![keyed_state_function(Arc::new(store))]
    }

    #[test]
    fn reads_converts_and_falls_back_to_the_default() {
        let get = |args: &[Value]| call(&functions(), "get_keyed_state", args);
        assert_eq!(get(&[s("limit"), s("bigint"), Value::Int(0)]), Ok(Value::Int(42)));
        assert_eq!(get(&[s("ratio"), s("string"), Value::Null]), Ok(s("0.5")));
        assert_eq!(get(&[s("missing"), s("float"), Value::Float(20.0)]), Ok(Value::Float(20.0)));
        assert_eq!(get(&[s("broken"), s("float"), Value::Float(1.0)]), Ok(Value::Float(1.0)));
        assert!(get(&[Value::Int(1), s("float"), Value::Null]).is_err(), "the key must be a string");
        assert!(get(&[s("ratio"), s("bigint"), Value::Null]).is_ok(), "0.5 as bigint is 0, as cast says");
    }

    #[test]
    fn the_type_is_checked_at_creation() {
        let check = |literals: &[Option<Value>]| validate(&functions(), "get_keyed_state", literals);
        assert!(check(&[Some(s("k")), Some(s("bigint")), Some(s("x"))]).is_ok());
        let err = check(&[Some(s("k")), Some(s("barz")), None]).unwrap_err();
        assert!(err.contains("bigint, float, string, boolean, datetime"), "{err}");
        assert!(check(&[Some(s("k")), None]).is_err(), "three arguments");
    }
}
