//! The built-in SQL functions, with eKuiper's names and semantics.
//!
//! Each family lives in its own file and exposes `functions()`; [`register_builtins`]
//! walks them all. A function is a [`Builtin`]: its [`FunctionMeta`], a closure that
//! computes it, and optional plan-time checks of its literal arguments.
//!
//! Conventions shared by the families (eKuiper's):
//! - most scalar functions return NULL when any argument is NULL (functions that
//!   say otherwise opt out with [`Builtin::pass_nulls`]);
//! - a value of the wrong type is a [`FunctionError::ArgumentType`], never a panic;
//! - aggregates get one `Value::List` per argument, one item per row of the group,
//!   and ignore NULL items unless they say otherwise.

use std::sync::Arc;

use crate::function::{
    ArgInfo, CallContext, Function, FunctionError, FunctionKind, FunctionMeta, FunctionRegistry, check_arity,
};
use crate::value::Value;

pub mod aggregate;
pub mod array;
pub mod compression;
pub mod conversion;
pub mod datetime;
pub mod hashing;
pub mod json;
pub mod keyed_state;
pub mod math;
pub mod object;
pub mod other;
pub mod signatures;
pub mod string;

/// Registers every built-in function in `registry`.
pub fn register_builtins(registry: &FunctionRegistry) {
    for function in all() {
        registry.register(function);
    }
}

/// A family's list of functions.
type Family = fn() -> Vec<Arc<dyn Function>>;

/// Every built-in function, family by family.
pub fn all() -> Vec<Arc<dyn Function>> {
    let families: [Family; 12] = [
        math::functions,
        string::functions,
        array::functions,
        object::functions,
        conversion::functions,
        compression::functions,
        hashing::functions,
        datetime::functions,
        json::functions,
        aggregate::functions,
        other::functions,
        crate::analytic::functions,
    ];
    families.iter().flat_map(|family| family()).collect()
}

type CallFn = dyn Fn(&str, &CallContext<'_>, &[Value]) -> Result<Value, FunctionError> + Send + Sync;
type ValidateFn = dyn Fn(&str, &[ArgInfo<'_>]) -> Result<(), String> + Send + Sync;

/// What a NULL argument does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nulls {
    /// Any NULL argument makes the result NULL without calling the function.
    Propagate,
    /// The function sees NULL arguments and decides.
    Pass,
}

/// The type a literal argument must have at plan time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Anything.
    Any,
    /// BIGINT or FLOAT.
    Number,
    /// BIGINT (or a FLOAT with no fraction).
    Int,
    /// BIGINT only: a FLOAT literal is refused, as eKuiper refuses `bitand(1.0, 1)`.
    BigInt,
    /// STRING.
    Str,
    /// BOOLEAN.
    Bool,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Any => true,
            Kind::Number => matches!(value, Value::Int(_) | Value::Float(_)),
            Kind::Int => value.as_i64().is_some(),
            Kind::BigInt => matches!(value, Value::Int(_)),
            Kind::Str => matches!(value, Value::String(_)),
            Kind::Bool => matches!(value, Value::Bool(_)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Any => "any value",
            Kind::Number => "number",
            Kind::Int | Kind::BigInt => "bigint",
            Kind::Str => "string",
            Kind::Bool => "boolean",
        }
    }
}

/// A built-in function: its description, how to compute it and what to check at plan time.
pub(crate) struct Builtin {
    meta: FunctionMeta,
    nulls: Nulls,
    kinds: &'static [Kind],
    validate: Option<Box<ValidateFn>>,
    wants_rows: bool,
    call: Box<CallFn>,
}

impl Builtin {
    fn new(
        kind: FunctionKind,
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        description: &str,
        call: impl Fn(&str, &CallContext<'_>, &[Value]) -> Result<Value, FunctionError> + Send + Sync + 'static,
    ) -> Self {
        let nulls = if kind == FunctionKind::Scalar { Nulls::Propagate } else { Nulls::Pass };
        Self {
            meta: FunctionMeta::builtin(name, kind, min_args, max_args, description),
            nulls,
            kinds: &[],
            validate: None,
            wants_rows: false,
            call: Box::new(call),
        }
    }

    /// A scalar function; NULL in gives NULL out unless [`Builtin::pass_nulls`] says otherwise.
    pub(crate) fn scalar(
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        description: &str,
        call: impl Fn(&str, &CallContext<'_>, &[Value]) -> Result<Value, FunctionError> + Send + Sync + 'static,
    ) -> Self {
        Self::new(FunctionKind::Scalar, name, min_args, max_args, description, call)
    }

    /// An aggregate function: each argument arrives as a list with one item per row.
    pub(crate) fn aggregate(
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        description: &str,
        call: impl Fn(&str, &CallContext<'_>, &[Value]) -> Result<Value, FunctionError> + Send + Sync + 'static,
    ) -> Self {
        Self::new(FunctionKind::Aggregate, name, min_args, max_args, description, call)
    }

    /// The function sees NULL arguments instead of returning NULL for them.
    pub(crate) fn pass_nulls(mut self) -> Self {
        self.nulls = Nulls::Pass;
        self
    }

    /// The types literal arguments must have; the last one applies to any further arguments.
    pub(crate) fn kinds(mut self, kinds: &'static [Kind]) -> Self {
        self.kinds = kinds;
        self
    }

    /// A plan-time check run after the arity and kind checks.
    pub(crate) fn validate(
        mut self,
        validate: impl Fn(&str, &[ArgInfo<'_>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validate = Some(Box::new(validate));
        self
    }

    /// The finished function.
    /// The aggregate also gets the group's rows, as a last argument.
    pub(crate) fn with_rows(mut self) -> Self {
        self.wants_rows = true;
        self
    }

    pub(crate) fn build(self) -> Arc<dyn Function> {
        Arc::new(self)
    }

    fn kind_of(&self, index: usize) -> Kind {
        self.kinds.get(index).or(self.kinds.last()).copied().unwrap_or(Kind::Any)
    }
}

impl Function for Builtin {
    fn meta(&self) -> &FunctionMeta {
        &self.meta
    }

    fn wants_rows(&self) -> bool {
        self.wants_rows
    }

    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        check_arity(&self.meta, args.len())?;
        // Aggregates get lists at run time, but a literal argument is still one value.
        for (index, arg) in args.iter().enumerate() {
            let Some(literal) = arg.literal else { continue };
            let kind = self.kind_of(index);
            if !literal.is_null() && !kind.accepts(literal) {
                return Err(format!(
                    "function {}: argument {} must be {}, got {}",
                    self.meta.name,
                    index + 1,
                    kind.name(),
                    literal.type_name()
                ));
            }
        }
        match &self.validate {
            Some(validate) => validate(&self.meta.name, args),
            None => Ok(()),
        }
    }

    fn call(&self, ctx: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        // The planner checks arity, but a wrong count must not make the function index out of bounds.
        // The rows an aggregate asked for come after the arguments written in SQL.
        let written = args.len() - usize::from(self.wants_rows && !args.is_empty());
        check_arity(&self.meta, written).map_err(|e| FunctionError::failed(&self.meta.name, e))?;
        if self.nulls == Nulls::Propagate && args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        (self.call)(&self.meta.name, ctx, args)
    }
}

// ---------------------------------------------------------------------------
// Argument helpers shared by the families. `index` counts from 0; errors count from 1.
// ---------------------------------------------------------------------------

/// The argument as f64, if it is a number.
pub(crate) fn num(name: &str, index: usize, value: &Value) -> Result<f64, FunctionError> {
    value.as_f64().ok_or_else(|| FunctionError::argument_type(name, index + 1, "number", value))
}

/// The argument as i64, if it is an integer (or a float with no fraction).
pub(crate) fn int(name: &str, index: usize, value: &Value) -> Result<i64, FunctionError> {
    value.as_i64().ok_or_else(|| FunctionError::argument_type(name, index + 1, "bigint", value))
}

/// The argument as &str, if it is a string.
pub(crate) fn text<'a>(name: &str, index: usize, value: &'a Value) -> Result<&'a str, FunctionError> {
    value.as_str().ok_or_else(|| FunctionError::argument_type(name, index + 1, "string", value))
}

/// The argument as bool, if it is a boolean.
pub(crate) fn boolean(name: &str, index: usize, value: &Value) -> Result<bool, FunctionError> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(FunctionError::argument_type(name, index + 1, "boolean", other)),
    }
}

/// The argument of an aggregate: the list of its values, one per row.
pub(crate) fn rows<'a>(name: &str, index: usize, value: &'a Value) -> Result<&'a [Value], FunctionError> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(FunctionError::argument_type(name, index + 1, "array", other)),
    }
}

/// A float result, NULL when it is not a number (eKuiper returns nil for NaN).
pub(crate) fn float_or_null(x: f64) -> Value {
    if x.is_nan() { Value::Null } else { Value::Float(x) }
}

/// The literal string at `index`, if the argument is a string literal.
pub(crate) fn literal_str<'a>(args: &[ArgInfo<'a>], index: usize) -> Option<&'a str> {
    args.get(index).and_then(|a| a.literal).and_then(Value::as_str)
}

/// The literal value at `index`, if the argument is a non-null literal.
pub(crate) fn literal<'a>(args: &[ArgInfo<'a>], index: usize) -> Option<&'a Value> {
    args.get(index).and_then(|a| a.literal).filter(|v| !v.is_null())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the families' unit tests.

    use super::*;

    /// Defines `f(name, args)`, the value of function `name` of the family
    /// `$functions()`, and `e(name, args)`, its error: the shorthands of each
    /// family's tests.
    macro_rules! shorthands {
        ($functions:path) => {
            #[allow(dead_code)]
            fn f(name: &str, args: &[$crate::value::Value]) -> $crate::value::Value {
                $crate::functions::testing::ok(&$functions(), name, args)
            }

            #[allow(dead_code)]
            fn e(name: &str, args: &[$crate::value::Value]) -> $crate::function::FunctionError {
                $crate::functions::testing::err(&$functions(), name, args)
            }
        };
    }
    pub(crate) use shorthands;

    /// The function named `name` in `functions`.
    pub(crate) fn find(functions: &[Arc<dyn Function>], name: &str) -> Arc<dyn Function> {
        match functions.iter().find(|f| f.meta().name == name) {
            Some(f) => f.clone(),
            None => panic!("no function {name}"),
        }
    }

    /// Calls `name` from `functions` with `args`.
    pub(crate) fn call(functions: &[Arc<dyn Function>], name: &str, args: &[Value]) -> Result<Value, FunctionError> {
        let ctx = CallContext { rule_id: "rule1" };
        find(functions, name).call(&ctx, args)
    }

    /// Calls `name` and expects success.
    pub(crate) fn ok(functions: &[Arc<dyn Function>], name: &str, args: &[Value]) -> Value {
        match call(functions, name, args) {
            Ok(v) => v,
            Err(e) => panic!("{name}({args:?}) failed: {e}"),
        }
    }

    /// Calls `name` and expects an error; returns its message.
    pub(crate) fn err(functions: &[Arc<dyn Function>], name: &str, args: &[Value]) -> FunctionError {
        match call(functions, name, args) {
            Ok(v) => panic!("{name}({args:?}) returned {v:?}, expected an error"),
            Err(e) => e,
        }
    }

    /// Validates a call of `name` whose arguments are these literals (`None`: not a literal).
    pub(crate) fn validate(
        functions: &[Arc<dyn Function>],
        name: &str,
        literals: &[Option<Value>],
    ) -> Result<(), String> {
        let infos: Vec<ArgInfo<'_>> = literals.iter().map(|l| ArgInfo { literal: l.as_ref() }).collect();
        find(functions, name).validate(&infos)
    }

    /// A string value.
    pub(crate) fn s(text: &str) -> Value {
        Value::string(text)
    }

    /// A list value.
    pub(crate) fn list(values: Vec<Value>) -> Value {
        Value::list(values)
    }

    /// Asserts that `value` is a float close to `expected`.
    pub(crate) fn assert_close(value: &Value, expected: f64) {
        match value {
            Value::Float(x) => assert!((x - expected).abs() < 1e-9, "{x} is not close to {expected}"),
            other => panic!("expected a float close to {expected}, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::function::FunctionOrigin;

    const AGGREGATES: &[&str] = &[
        "avg",
        "count",
        "max",
        "min",
        "sum",
        "collect",
        "deduplicate",
        "last_value",
        "merge_agg",
        "stddev",
        "stddevs",
        "var",
        "vars",
        "median",
        "percentile_cont",
        "percentile_disc",
    ];

    #[test]
    fn register_builtins_registers_every_family() {
        let registry = FunctionRegistry::new();
        register_builtins(&registry);
        let listed = registry.list();
        assert!(listed.len() >= 70, "only {} functions", listed.len());
        assert_eq!(listed.len(), all().len(), "names are unique across families");

        let mut names = HashSet::new();
        for meta in &listed {
            assert_eq!(meta.origin, FunctionOrigin::Builtin, "{}", meta.name);
            assert!(meta.owner.is_empty(), "{}", meta.name);
            assert_eq!(meta.name, meta.name.to_ascii_lowercase(), "{} is not lower-case", meta.name);
            assert!(!meta.description.is_empty(), "{} has no description", meta.name);
            assert!(names.insert(meta.name.clone()), "{} is registered twice", meta.name);
            assert!(meta.max_args.is_none_or(|max| max >= meta.min_args), "{}", meta.name);
            let expected =
                if AGGREGATES.contains(&meta.name.as_str()) { FunctionKind::Aggregate } else { FunctionKind::Scalar };
            assert_eq!(meta.kind, expected, "{}", meta.name);
        }
        for name in AGGREGATES {
            assert!(names.contains(*name), "aggregate {name} is missing");
        }
        for name in ["abs", "concat", "cast", "md5", "format_time", "json_path_query", "isnull", "meta"] {
            assert!(registry.get(name).is_some(), "{name} is missing");
        }
        assert!(registry.get("ABS").is_some(), "lookups ignore case");
    }

    #[test]
    fn wrong_argument_counts_fail_instead_of_panicking() {
        let ctx = CallContext { rule_id: "r" };
        for f in all() {
            let meta = f.meta().clone();
            let too_many = meta.max_args.map(|max| vec![Value::Int(1); max + 1]);
            if let Some(args) = too_many {
                assert!(f.call(&ctx, &args).is_err(), "{} accepted too many arguments", meta.name);
                assert!(f.validate(&vec![ArgInfo { literal: None }; args.len()]).is_err(), "{}", meta.name);
            }
            if meta.min_args > 0 {
                let args = vec![Value::Int(1); meta.min_args - 1];
                assert!(f.call(&ctx, &args).is_err(), "{} accepted too few arguments", meta.name);
            }
        }
    }

    /// Scalars that return something other than NULL for NULL arguments, as eKuiper's do.
    const NULL_AWARE: &[&str] = &[
        "concat",
        "endswith",
        "startswith",
        "indexof",
        "length",
        "numbytes",
        "regexp_matches",
        "isnull",
        "coalesce",
        "json_path_exists",
        "meta",
        "mqtt",
        "array_position",
        "array_last_position",
        "array_contains",
        "array_contains_any",
        "array_union",
        "array_cardinality",
        "cardinality",
        "array_concat",
        "object_concat",
        "object_construct",
        "object_size",
        "changed_cols",
    ];

    #[test]
    fn null_in_gives_null_out_for_scalars() {
        let ctx = CallContext { rule_id: "r" };
        for f in all() {
            let meta = f.meta();
            let analytic = crate::analytic::AnalyticKind::from_name(&meta.name).is_some();
            if meta.kind != FunctionKind::Scalar
                || meta.min_args == 0
                || analytic
                || NULL_AWARE.contains(&meta.name.as_str())
            {
                continue;
            }
            let args = vec![Value::Null; meta.min_args];
            assert_eq!(f.call(&ctx, &args), Ok(Value::Null), "{}", meta.name);
        }
    }

    #[test]
    fn no_function_panics_on_any_combination_of_value_types() {
        let mut map = BTreeMap::new();
        map.insert(Arc::from("a"), Value::Int(1));
        let timestamp = Utc.with_ymd_and_hms(2024, 2, 29, 13, 4, 5).single().map(Value::utc);
        let samples = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Int(i64::MIN),
            Value::Float(2.5),
            Value::Float(f64::NAN),
            Value::string("a,b"),
            Value::Bytes(Arc::from(&b"\xff\x00"[..])),
            timestamp.unwrap_or(Value::Null),
            Value::list(vec![Value::Int(1), Value::Null, Value::Float(2.0)]),
            Value::map(map),
        ];
        let ctx = CallContext { rule_id: "r" };
        for f in all() {
            let meta = f.meta();
            let max = meta.max_args.unwrap_or(meta.min_args + 1).min(3);
            for arity in meta.min_args..=max {
                let mut indices = vec![0usize; arity];
                loop {
                    let args: Vec<Value> = indices.iter().map(|&i| samples[i].clone()).collect();
                    let _ = f.call(&ctx, &args);
                    // Aggregates also get each sample wrapped as a one-row group.
                    if meta.kind == FunctionKind::Aggregate {
                        let wrapped: Vec<Value> = args.iter().map(|a| Value::list(vec![a.clone()])).collect();
                        let _ = f.call(&ctx, &wrapped);
                    }
                    // Next combination.
                    let mut pos = 0;
                    while pos < arity {
                        indices[pos] += 1;
                        if indices[pos] < samples.len() {
                            break;
                        }
                        indices[pos] = 0;
                        pos += 1;
                    }
                    if pos == arity {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn literal_kinds_are_checked_at_plan_time() {
        let functions = all();
        let wrong = Some(Value::string("x"));
        assert!(testing::validate(&functions, "abs", std::slice::from_ref(&wrong)).is_err());
        assert!(testing::validate(&functions, "abs", &[Some(Value::Int(1))]).is_ok());
        assert!(testing::validate(&functions, "abs", &[None]).is_ok(), "columns are checked at run time");
        assert!(testing::validate(&functions, "abs", &[Some(Value::Null)]).is_ok(), "NULL is any type");
        let err = testing::validate(&functions, "abs", &[]).unwrap_err();
        assert!(err.contains("takes 1 argument"), "{err}");
    }
}
