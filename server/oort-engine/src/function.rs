//! The [`Function`] trait and the [`FunctionRegistry`].
//!
//! Every SQL function, whoever provides it, is a `Function` in one registry,
//! so a rule cannot tell a built-in from a plugin or an external service.
//! Lookup follows eKuiper's order: built-in, then native, then portable, then
//! external; a built-in name cannot be shadowed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;

use crate::value::Value;

/// Scalar or aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    /// One result per row.
    Scalar,
    /// One result per group or window. Each argument arrives as a `Value::List`
    /// of that argument's value for every row of the group, in arrival order
    /// (eKuiper's convention, also the plugin protocol's).
    Aggregate,
}

/// Who provides a function, in lookup order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunctionOrigin {
    /// Built into the engine.
    Builtin,
    /// A native plugin.
    Native,
    /// A portable plugin.
    Portable,
    /// An external service.
    External,
}

impl FunctionOrigin {
    /// Every origin, in lookup order.
    pub const ALL: [FunctionOrigin; 4] =
        [FunctionOrigin::Builtin, FunctionOrigin::Native, FunctionOrigin::Portable, FunctionOrigin::External];
}

/// How a function's calls are best made, as its provider declares it: what
/// the expression compiler and the rule runtime plan by. Neither looks at
/// who provides a function ([`FunctionOrigin`] is for listing and ownership).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Calling {
    /// Row by row, computed in the server's threads ([`Function::call`]).
    PerRow,
    /// Once per batch of rows ([`Function::call_batch`]): each call crosses a
    /// boundary (a native plugin's FFI) but computes in the server's process.
    Batched,
    /// Once per batch, answered by another process or a service: the rule
    /// overlaps the next batches with the wait, awaited on its own task.
    Remote,
    /// As [`Calling::Remote`], but the call holds the thread that makes it
    /// until the answer (a portable plugin's client drives its connection
    /// from the waiting thread): the rule evaluates each batch on a blocking
    /// thread of its own, so that the wait holds no runtime worker.
    Blocking,
}

impl Calling {
    /// Whether calls are made once per batch rather than once per row.
    pub fn is_batched(self) -> bool {
        self != Calling::PerRow
    }

    /// Whether the answer comes from another process or a service.
    pub fn is_remote(self) -> bool {
        matches!(self, Calling::Remote | Calling::Blocking)
    }
}

/// What the registry and the planner know of a function without calling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionMeta {
    /// Name as called in SQL, lower-case (lookups are case-insensitive).
    pub name: String,
    /// Scalar or aggregate.
    pub kind: FunctionKind,
    /// Who provides it.
    pub origin: FunctionOrigin,
    /// The plugin or service that provides it; empty for built-ins.
    pub owner: String,
    /// How its calls are best made.
    pub calling: Calling,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments; `None` for variadic functions.
    pub max_args: Option<usize>,
    /// One-line description.
    pub description: String,
}

impl FunctionMeta {
    /// A built-in function's description.
    pub fn builtin(
        name: &str,
        kind: FunctionKind,
        min_args: usize,
        max_args: Option<usize>,
        description: &str,
    ) -> Self {
        Self {
            name: name.to_ascii_lowercase(),
            kind,
            origin: FunctionOrigin::Builtin,
            owner: String::new(),
            calling: Calling::PerRow,
            min_args,
            max_args,
            description: description.to_owned(),
        }
    }

    /// How it is called, for the reference and the API: a built-in's own
    /// signature (`round(x [, digits])`); for a function from a plugin or a
    /// service, which names no arguments, `arg1`, `arg2`, ... by its arity.
    pub fn signature(&self) -> String {
        if self.origin == FunctionOrigin::Builtin
            && let Some(signature) = crate::functions::signatures::signature(&self.name)
        {
            return signature.to_owned();
        }
        let names: Vec<String> = (1..=self.min_args).map(|i| format!("arg{i}")).collect();
        let mut args = names.join(", ");
        let optional = self.max_args.map_or(0, |max| max.saturating_sub(self.min_args));
        for i in 0..optional {
            let comma = if args.is_empty() && i == 0 { "" } else { ", " };
            args.push_str(&format!(" [{comma}arg{}", self.min_args + i + 1));
        }
        args.push_str(&"]".repeat(optional));
        if self.max_args.is_none() {
            args.push_str(if args.is_empty() { "..." } else { ", ..." });
        }
        format!("{}({})", self.name, args.trim_start())
    }
}

/// What the planner knows of one argument when it validates a call.
#[derive(Debug, Clone, Copy)]
pub struct ArgInfo<'a> {
    /// The argument's value if it is a literal, so functions can check it early
    /// (a date format, a regular expression, a hash algorithm).
    pub literal: Option<&'a Value>,
}

/// What a function sees of the call besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// Id of the rule that calls it.
    pub rule_id: &'a str,
}

/// Why a call failed. The rule counts it as an error on that event and goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    /// An argument has a type the function does not take.
    #[error("{function}: argument {index} must be {expected}, got {got}")]
    ArgumentType { function: String, index: usize, expected: &'static str, got: &'static str },
    /// The call failed for another reason (a bad format, an overflow...).
    #[error("{function}: {message}")]
    Failed { function: String, message: String },
}

impl FunctionError {
    /// A failure with a message.
    pub fn failed(function: &str, message: impl Into<String>) -> Self {
        FunctionError::Failed { function: function.to_owned(), message: message.into() }
    }

    /// An argument of the wrong type (`index` counts from 1, as users do).
    pub fn argument_type(function: &str, index: usize, expected: &'static str, got: &Value) -> Self {
        FunctionError::ArgumentType { function: function.to_owned(), index, expected, got: got.type_name() }
    }
}

/// A SQL function.
pub trait Function: Send + Sync + 'static {
    /// Name, kind, arity and description.
    fn meta(&self) -> &FunctionMeta;

    /// Checks a call at plan time, so that a rule that cannot work is refused at
    /// creation. The default checks the number of arguments.
    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        check_arity(self.meta(), args.len())
    }

    /// Computes the result of one call. Aggregates get one `Value::List` per argument.
    fn call(&self, ctx: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError>;

    /// Computes many calls at once, one answer per row of arguments, in order:
    /// the one entry point of the calls made per batch ([`Calling::is_batched`]).
    /// The arguments are read before it returns; the future owns all it needs.
    ///
    /// The default calls [`Function::call`] for each row, at once. A function
    /// that waits on the network returns a future that the rule's task awaits;
    /// one whose client must block a thread keeps that bridge inside its own
    /// future (a blocking thread), so that the rule's task never blocks.
    fn call_batch(&self, ctx: &CallContext<'_>, rows: &[&[Value]]) -> BatchCall {
        let answers: BatchAnswers = rows.iter().map(|args| self.call(ctx, args)).collect();
        Box::pin(std::future::ready(answers))
    }

    /// Whether an aggregate also needs the group's whole rows: the planner then
    /// passes them as one more argument after those written in SQL (eKuiper's
    /// `deduplicate` returns rows, not column values).
    fn wants_rows(&self) -> bool {
        false
    }
}

/// The answers of a batch of calls, one per row, in order.
pub type BatchAnswers = Vec<Result<Value, FunctionError>>;

/// A batch of calls under way ([`Function::call_batch`]).
pub type BatchCall = BoxFuture<'static, BatchAnswers>;

/// The default arity check, for `validate` implementations that add their own checks.
pub fn check_arity(meta: &FunctionMeta, count: usize) -> Result<(), String> {
    let too_few = count < meta.min_args;
    let too_many = meta.max_args.is_some_and(|max| count > max);
    if !(too_few || too_many) {
        return Ok(());
    }
    let expected = match meta.max_args {
        Some(max) if max == meta.min_args => format!("{max}"),
        Some(max) => format!("{} to {max}", meta.min_args),
        None => format!("at least {}", meta.min_args),
    };
    Err(format!("function {} takes {expected} argument(s), got {count}", meta.name))
}

type ByName = BTreeMap<String, Arc<dyn Function>>;

/// Every function a rule can call, by origin. Shared by all rules; plugins and
/// services add and remove theirs while the server runs.
#[derive(Default)]
pub struct FunctionRegistry {
    by_origin: RwLock<BTreeMap<FunctionOrigin, ByName>>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a function under its origin; returns the one it replaced.
    pub fn register(&self, function: Arc<dyn Function>) -> Option<Arc<dyn Function>> {
        let meta = function.meta();
        let (origin, name) = (meta.origin, meta.name.to_ascii_lowercase());
        let mut by_origin = self.by_origin.write().unwrap_or_else(|p| p.into_inner());
        by_origin.entry(origin).or_default().insert(name, function)
    }

    /// Removes a function of an origin; returns it.
    pub fn unregister(&self, origin: FunctionOrigin, name: &str) -> Option<Arc<dyn Function>> {
        let mut by_origin = self.by_origin.write().unwrap_or_else(|p| p.into_inner());
        by_origin.get_mut(&origin)?.remove(&name.to_ascii_lowercase())
    }

    /// Finds a function by name (case-insensitive) in lookup order.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Function>> {
        let name = name.to_ascii_lowercase();
        let by_origin = self.by_origin.read().unwrap_or_else(|p| p.into_inner());
        FunctionOrigin::ALL.iter().find_map(|origin| by_origin.get(origin)?.get(&name).cloned())
    }

    /// Every registered function, ordered by name then origin.
    pub fn list(&self) -> Vec<FunctionMeta> {
        let by_origin = self.by_origin.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<FunctionMeta> =
            by_origin.values().flat_map(|m| m.values().map(|f| f.meta().clone())).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.origin.cmp(&b.origin)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Constant(FunctionMeta, i64);

    impl Function for Constant {
        fn meta(&self) -> &FunctionMeta {
            &self.0
        }
        fn call(&self, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
            Ok(Value::Int(self.1))
        }
    }

    #[test]
    fn a_function_that_names_no_arguments_gets_them_numbered_by_its_arity() {
        let signature = |min, max| {
            let mut meta = FunctionMeta::builtin("f", FunctionKind::Scalar, min, max, "");
            meta.origin = FunctionOrigin::Native;
            meta.signature()
        };
        assert_eq!(signature(0, Some(0)), "f()");
        assert_eq!(signature(1, Some(1)), "f(arg1)");
        assert_eq!(signature(1, Some(3)), "f(arg1 [, arg2 [, arg3]])");
        assert_eq!(signature(0, Some(1)), "f([arg1])");
        assert_eq!(signature(2, None), "f(arg1, arg2, ...)");
        assert_eq!(signature(0, None), "f(...)");
        let round = FunctionMeta::builtin("round", FunctionKind::Scalar, 1, Some(2), "");
        assert_eq!(round.signature(), crate::functions::signatures::signature("round").unwrap());
    }

    fn constant(name: &str, origin: FunctionOrigin, value: i64) -> Arc<dyn Function> {
        let mut meta = FunctionMeta::builtin(name, FunctionKind::Scalar, 0, Some(0), "a constant");
        meta.origin = origin;
        Arc::new(Constant(meta, value))
    }

    #[test]
    fn lookup_follows_the_origin_order_and_ignores_case() {
        let registry = FunctionRegistry::new();
        assert!(registry.register(constant("f", FunctionOrigin::External, 4)).is_none());
        assert!(registry.register(constant("F", FunctionOrigin::Native, 2)).is_none());
        let ctx = CallContext { rule_id: "r" };
        assert_eq!(registry.get("f").unwrap().call(&ctx, &[]).unwrap(), Value::Int(2));
        assert!(registry.register(constant("f", FunctionOrigin::Native, 3)).is_some(), "returns the replaced entry");
        registry.unregister(FunctionOrigin::Native, "f");
        assert_eq!(registry.get("F").unwrap().call(&ctx, &[]).unwrap(), Value::Int(4));
        assert_eq!(registry.list().len(), 1);
    }

    #[test]
    fn the_default_batch_call_is_one_call_per_row() {
        let f = constant("f", FunctionOrigin::Builtin, 7);
        let ctx = CallContext { rule_id: "r" };
        let results = futures::FutureExt::now_or_never(f.call_batch(&ctx, &[&[], &[]])).expect("answered at once");
        assert_eq!(results, [Ok(Value::Int(7)), Ok(Value::Int(7))]);
    }

    #[test]
    fn arity_errors_say_what_is_expected() {
        let meta = FunctionMeta::builtin("substring", FunctionKind::Scalar, 2, Some(3), "");
        assert!(check_arity(&meta, 2).is_ok());
        assert_eq!(check_arity(&meta, 1).unwrap_err(), "function substring takes 2 to 3 argument(s), got 1");
        let variadic = FunctionMeta::builtin("concat", FunctionKind::Scalar, 1, None, "");
        assert_eq!(check_arity(&variadic, 0).unwrap_err(), "function concat takes at least 1 argument(s), got 0");
    }
}
