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

/// `bypass(x, ...)`: its first argument, NULL included (eKuiper's, to pass
/// a value through a rule unchanged).
fn bypass(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(args[0].clone())
}

/// The properties `props(key)` reads: the environment variables
/// `OORT_PROPS_<KEY>` (and eKuiper's `KUIPER_PROPS_<KEY>`), keys in lower
/// case, read once.
fn properties() -> &'static std::collections::HashMap<String, String> {
    static PROPS: std::sync::OnceLock<std::collections::HashMap<String, String>> = std::sync::OnceLock::new();
    PROPS.get_or_init(|| {
        let mut props = std::collections::HashMap::new();
        // eKuiper's prefix first, so that Oort's wins.
        for prefix in ["KUIPER_PROPS_", "OORT_PROPS_"] {
            for (key, value) in std::env::vars() {
                if let Some(key) = key.strip_prefix(prefix) {
                    props.insert(key.to_ascii_lowercase(), value);
                }
            }
        }
        props
    })
}

/// A server property set in the environment (`OORT_PROPS_<KEY>`, or eKuiper's
/// `KUIPER_PROPS_<KEY>`), by its lower-case key: what `props(key)` and the
/// sinks' templates (`prop`) read.
pub fn property(key: &str) -> Option<&'static str> {
    properties().get(key).map(String::as_str)
}

/// `props(key)`: a property of the server, as eKuiper's: `et` the time now in
/// Unix ms, `snowflake` a unique id, else `OORT_PROPS_<KEY>` ([`properties`]).
fn props(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let Value::String(key) = &args[0] else {
        return Err(FunctionError::argument_type(name, 1, "string", &args[0]));
    };
    match &**key {
        "et" => Ok(Value::string(Utc::now().timestamp_millis().to_string())),
        "snowflake" => Ok(Value::string(snowflake().to_string())),
        key => properties().get(key).map(|v| Value::string(v.as_str())).ok_or_else(|| {
            FunctionError::failed(name, format!("no property `{key}` (set OORT_PROPS_{})", key.to_ascii_uppercase()))
        }),
    }
}

/// A unique, increasing id in the layout of Twitter's snowflake (as eKuiper's,
/// node 1): milliseconds since 2010-11-04, 10 bits of node, 12 of sequence.
fn snowflake() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    const EPOCH_MS: i64 = 1_288_834_974_657;
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = (Utc::now().timestamp_millis() - EPOCH_MS) << 22 | 1 << 12;
    // The next id after the last, at least `now`: unique within the process.
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
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
        Builtin::scalar("bypass", 1, None, "bypass(x, ...): its first argument, unchanged.", bypass)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "props",
            1,
            Some(1),
            "props(key): a server property: \"et\" the time now in Unix ms, \"snowflake\" a unique id, else the \
             environment variable OORT_PROPS_<KEY> (or eKuiper's KUIPER_PROPS_<KEY>).",
            props,
        )
        .kinds(&[super::Kind::Str])
        .build(),
        Arc::new(Delay::new()),
        Builtin::scalar(
            "window_trigger",
            0,
            Some(0),
            "The time that triggered the current window in Unix milliseconds (its end; per event, the event's \
             time); evaluated by the planner.",
            by_planner,
        )
        .build(),
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
            "row_number() [OVER (PARTITION BY e, ... ORDER BY e [ASC|DESC] [NULLS FIRST|LAST], ...)]: the row's \
             number in a window's result, from 1 (per event, 1); NULLs last unless NULLS FIRST; a whole SELECT \
             item; evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "last_hit_count",
            0,
            Some(0),
            "How many earlier events of the rule passed its WHERE (a rule without a window); evaluated by the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "last_hit_time",
            0,
            Some(0),
            "The time of the last earlier event that passed the rule's WHERE, in Unix ms (0 before any); evaluated by \
             the planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "last_agg_hit_count",
            0,
            Some(0),
            "How many earlier window groups of the rule passed its HAVING (a rule with a window); evaluated by the \
             planner.",
            by_planner,
        )
        .build(),
        Builtin::scalar(
            "last_agg_hit_time",
            0,
            Some(0),
            "The end of the window of the last earlier group that passed the rule's HAVING, in Unix ms (0 before \
             any); evaluated by the planner.",
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

/// `delay(ms, value)`: the value, after `ms` milliseconds (eKuiper's: each
/// event in turn, so a rule calling it handles one event per `ms` at most).
/// Its calls are awaited on the rule's task, not slept on a thread.
struct Delay(crate::function::FunctionMeta);

/// The longest one call may wait.
const MAX_DELAY_MS: i64 = 60_000;

impl Delay {
    fn new() -> Self {
        let mut meta = crate::function::FunctionMeta::builtin(
            "delay",
            crate::function::FunctionKind::Scalar,
            2,
            Some(2),
            "delay(ms, value): the value, once ms milliseconds (at most 60,000) have passed; each event in turn.",
        );
        meta.calling = crate::function::Calling::Batched;
        Self(meta)
    }

    /// How long a call waits; none when an argument is NULL (its value is NULL, as eKuiper's).
    fn wait(args: &[Value]) -> Result<i64, FunctionError> {
        if args.iter().any(Value::is_null) {
            return Ok(0);
        }
        let ms = match args.first() {
            Some(Value::Int(ms)) => *ms,
            Some(Value::Float(ms)) => *ms as i64,
            Some(other) => return Err(FunctionError::argument_type("delay", 1, "number", other)),
            None => 0,
        };
        if !(0..=MAX_DELAY_MS).contains(&ms) {
            return Err(FunctionError::failed(
                "delay",
                format!("the delay must be between 0 and {MAX_DELAY_MS} ms, got {ms}"),
            ));
        }
        Ok(ms)
    }
}

impl Delay {
    fn value(args: &[Value]) -> Value {
        if args.iter().any(Value::is_null) { Value::Null } else { args.get(1).cloned().unwrap_or_default() }
    }
}

impl Function for Delay {
    fn meta(&self) -> &crate::function::FunctionMeta {
        &self.0
    }

    fn validate(&self, args: &[crate::function::ArgInfo<'_>]) -> Result<(), String> {
        crate::function::check_arity(&self.0, args.len())?;
        match args[0].literal {
            Some(v @ (Value::String(_) | Value::Bool(_) | Value::Timestamp(_))) => {
                Err(format!("function delay: argument 1 must be number, got {}", v.type_name()))
            }
            _ => Ok(()),
        }
    }

    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        crate::function::check_arity(&self.0, args.len()).map_err(|e| FunctionError::failed("delay", e))?;
        // Outside a batch (no runtime to wait on): no wait, the value.
        Self::wait(args)?;
        Ok(Self::value(args))
    }

    fn call_batch(&self, _: &CallContext<'_>, rows: &[&[Value]]) -> crate::function::BatchCall {
        let arity = |args: &[Value]| {
            crate::function::check_arity(&self.0, args.len()).map_err(|e| FunctionError::failed("delay", e))
        };
        let answers: Vec<Result<(i64, Value), FunctionError>> =
            rows.iter().map(|args| Ok((arity(args).and_then(|()| Self::wait(args))?, Self::value(args)))).collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(answers.len());
            for answer in answers {
                out.push(match answer {
                    Ok((ms, value)) => {
                        tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
                        Ok(value)
                    }
                    Err(e) => Err(e),
                });
            }
            out
        })
    }
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
    fn bypass_props_and_delay() {
        assert_eq!(f("bypass", &[Value::Null, Value::Int(2)]), Value::Null);
        assert_eq!(f("bypass", &[s("x")]), s("x"));
        let Value::String(et) = f("props", &[s("et")]) else { panic!("et is a string") };
        assert!(et.parse::<i64>().is_ok_and(|ms| ms > 1_600_000_000_000), "{et}");
        let Value::String(a) = f("props", &[s("snowflake")]) else { panic!("snowflake is a string") };
        let Value::String(b) = f("props", &[s("snowflake")]) else { panic!("snowflake is a string") };
        assert!(b.parse::<i64>().unwrap() > a.parse::<i64>().unwrap(), "increasing");
        let e = call(&functions(), "props", &[s("nope_not_set")]).unwrap_err();
        assert!(e.to_string().contains("OORT_PROPS_NOPE_NOT_SET"), "{e}");
        assert_eq!(f("delay", &[Value::Int(0), s("v")]), s("v"));
        assert_eq!(f("delay", &[Value::Null, s("v")]), Value::Null);
        assert!(call(&functions(), "delay", &[Value::Int(60_001), s("v")]).is_err(), "bounded");
        assert!(validate(&functions(), "delay", &[Some(s("1")), None]).is_err());
    }

    #[tokio::test]
    async fn delay_waits_in_turn_without_holding_a_thread() {
        let delay = functions().into_iter().find(|f| f.meta().name == "delay").unwrap();
        let ctx = CallContext { rule_id: "r" };
        let rows = [vec![Value::Int(30), Value::Int(1)], vec![Value::Int(30), Value::Int(2)]];
        let rows: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        let started = std::time::Instant::now();
        let answers = delay.call_batch(&ctx, &rows).await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(60), "each event in turn");
        assert_eq!(answers, [Ok(Value::Int(1)), Ok(Value::Int(2))]);
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
