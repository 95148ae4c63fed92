//! Other functions, as eKuiper's: `isnull`, `coalesce`, `newuuid`, `tstamp`, `rule_id`,
//! the set-returning `unnest` and `extract`, and the functions that read the row or the window rather than their arguments.
//!
//! `meta(key)` (and `mqtt(key)`), `window_start()`, `window_end()`, `event_time()` and
//! `rule_start()` are evaluated by the
//! expression evaluator, which has the row's metadata and time and the window's bounds:
//! it must handle them itself before looking functions up. They are registered so that
//! function listings show them and their arity is checked at plan time; calling them
//! through the registry is an error.

use std::sync::Arc;

use chrono::Utc;

use super::Builtin;
use crate::function::{CallContext, Function, FunctionError};
use crate::value::Value;

/// The message of a call to a function the expression evaluator computes itself.
pub const EVALUATED_BY_PLANNER: &str = "evaluated by the planner";

fn by_planner(name: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Err(FunctionError::failed(name, EVALUATED_BY_PLANNER))
}

fn isnull(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Bool(args[0].is_null()))
}

fn coalesce(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(args.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null))
}

fn newuuid(_: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(uuid::Uuid::new_v4().to_string()))
}

fn tstamp(_: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(Utc::now().timestamp_millis()))
}

fn rule_id(_: &str, ctx: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(ctx.rule_id))
}

/// `unnest(array)`: the array, which the projection turns into rows
/// ([`crate::expr::SetReturning`]).
fn unnest(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    match &args[0] {
        array @ Value::List(_) => Ok(array.clone()),
        other => Err(FunctionError::argument_type(name, 1, "array", other)),
    }
}

/// `extract(map)`: the map, whose fields the projection makes columns.
fn extract(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    match &args[0] {
        map @ Value::Map(_) => Ok(map.clone()),
        other => Err(FunctionError::argument_type(name, 1, "struct", other)),
    }
}

/// The other functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Builtin::scalar("isnull", 1, Some(1), "Whether the argument is NULL.", isnull).pass_nulls().build(),
        Builtin::scalar("coalesce", 1, None, "The first non-NULL argument, or NULL.", coalesce).pass_nulls().build(),
        Builtin::scalar("newuuid", 0, Some(0), "A random (version 4) UUID.", newuuid).build(),
        Builtin::scalar("tstamp", 0, Some(0), "The current time in Unix milliseconds.", tstamp).build(),
        Builtin::scalar("rule_id", 0, Some(0), "The id of the rule that calls it.", rule_id).build(),
        Builtin::scalar(
            "unnest",
            1,
            Some(1),
            "unnest(array): one output row per item (a struct item's fields become columns); a whole SELECT item, \
             one per rule.",
            unnest,
        )
        .build(),
        Builtin::scalar(
            "extract",
            1,
            Some(1),
            "extract(struct): the struct's fields become output columns; a whole SELECT item, one per rule.",
            extract,
        )
        .build(),
        Builtin::scalar(
            "meta",
            1,
            Some(1),
            "The source metadata of a key, such as meta(topic); evaluated by the planner.",
            by_planner,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "window_start",
            0,
            Some(0),
            "The start of the current window in Unix milliseconds (0 without a window); evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "window_end",
            0,
            Some(0),
            "The end of the current window in Unix milliseconds (0 without a window); evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "event_time",
            0,
            Some(0),
            "The time of the current event in Unix milliseconds (over a window, its end); evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "mqtt",
            1,
            Some(1),
            "The metadata of an MQTT message, such as mqtt(topic): meta() under eKuiper's other name; evaluated by \
             the planner.",
            by_planner,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "row_number",
            0,
            Some(0),
            "row_number() [OVER (PARTITION BY e, ... ORDER BY e, ...)]: the row's number in a window's result, from 1 \
             (per event, 1); a whole SELECT item; evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "rule_start",
            0,
            Some(0),
            "When the rule started, in Unix milliseconds; evaluated by the planner.",
            by_planner,
        )
        .build(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{call, s, validate};

    crate::functions::testing::shorthands!(functions);

    #[test]
    fn isnull_and_coalesce() {
        assert_eq!(f("isnull", &[Value::Null]), Value::Bool(true));
        assert_eq!(f("isnull", &[Value::Int(0)]), Value::Bool(false));
        assert_eq!(f("isnull", &[s("")]), Value::Bool(false));
        assert_eq!(f("coalesce", &[Value::Null, Value::Int(2), Value::Int(3)]), Value::Int(2));
        assert_eq!(f("coalesce", &[Value::Null, Value::Null]), Value::Null);
        assert!(validate(&functions(), "coalesce", &[]).is_err());
        assert!(validate(&functions(), "isnull", &[None, None]).is_err());
    }

    #[test]
    fn generated_values() {
        let Value::String(a) = f("newuuid", &[]) else { panic!("newuuid is not a string") };
        let Value::String(b) = f("newuuid", &[]) else { panic!("newuuid is not a string") };
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.chars().nth(14), Some('4'), "version 4");
        let before = Utc::now().timestamp_millis();
        let Value::Int(now) = f("tstamp", &[]) else { panic!("tstamp is not an int") };
        assert!(now >= before && now - before < 60_000);
        assert_eq!(f("rule_id", &[]), s("rule1"));
        assert!(validate(&functions(), "tstamp", &[None]).is_err());
        assert!(validate(&functions(), "newuuid", &[Some(Value::Int(1))]).is_err());
    }

    #[test]
    fn planner_functions_exist_but_cannot_be_called() {
        for (name, args) in [
            ("meta", vec![s("topic")]),
            ("mqtt", vec![s("topic")]),
            ("window_start", vec![]),
            ("window_end", vec![]),
            ("event_time", vec![]),
            ("rule_start", vec![]),
        ] {
            let e = call(&functions(), name, &args).unwrap_err();
            assert_eq!(e, FunctionError::failed(name, EVALUATED_BY_PLANNER), "{name}");
            let literals: Vec<Option<Value>> = args.into_iter().map(|_| None).collect();
            assert!(validate(&functions(), name, &literals).is_ok(), "{name}");
        }
        assert!(validate(&functions(), "meta", &[]).is_err());
        assert!(validate(&functions(), "window_start", &[None]).is_err());
        assert!(call(&functions(), "meta", &[Value::Null]).is_err(), "meta never returns through the registry");
    }
}
