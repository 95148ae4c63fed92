//! Evaluation over a batch of rows ([`Expr::eval_batch`],
//! [`Projection::eval_batch`](super::Projection::eval_batch)) or of groups.
//!
//! A function that is not built in (a native or portable plugin, an external
//! service) costs a boundary crossing per call: an FFI round trip, a message
//! to a plugin process, a network request. So such calls are made once per
//! batch through [`Function::call_batch`](crate::Function::call_batch), in
//! two ways:
//!
//! - **Prefetched**: before the rows are evaluated, every such call that the
//!   expression evaluates unconditionally is made for the whole batch,
//!   innermost calls first; the row-by-row evaluation then reads the results.
//! - **Deferred**: a call that only some rows reach (under a `CASE` branch,
//!   the right side of `AND`/`OR`, an `IN` candidate, a dynamic `LIKE`
//!   pattern), and every call of a batch of groups (an aggregate's `HAVING`,
//!   projection and `ORDER BY`, and the calls in an aggregate's arguments,
//!   per row of the group), is noted with its arguments where the
//!   evaluation of a row (or group) reaches it, and that item's evaluation is
//!   set aside. The noted calls are then made as one batch per call site and
//!   the set-aside items evaluated again, reading the answers, until no item
//!   is left: one round per call that waits on the answer of another. An
//!   item's evaluation says it was set aside by its return type
//!   ([`Stop::Pending`]). An item is evaluated again from its start, so its
//!   built-in functions run again (they are pure; `newuuid()` and `tstamp()`
//!   give a new value).
//!
//! A call is thus never made for a row it would not have been made for —
//! except when an earlier part of the same expression fails for that row: a
//! prefetched call has then been made anyway, and the row's error is the same
//! as without batching. The rows of a group go on past a deferred call in an
//! aggregate's arguments (`avg(f(x))`), so that one round notes the calls of
//! every row, and stop at a row's error, as without batching.
//!
//! Which calls are batched is the compiler's decision ([`Call::batched`]),
//! and a call site is known by its [`CallId`]. Every batch is awaited: a
//! function that must block a thread to answer does it in its own future.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::eval::Scope;
use super::projection::Projection;
use super::tree::{BinaryOp, Call, CallId, Expr};
use super::tuple::Tuple;
use super::{EvalEnv, EvalError, Step, Stop};

use crate::function::{BatchAnswers, CallContext, Function};
use crate::value::{Map, Value};

/// The results of the batched calls of a batch of rows or groups (items).
#[derive(Default)]
pub struct Prefetched {
    /// Per prefetched call, one result per item of the batch.
    calls: Vec<(CallId, Vec<Result<Value, EvalError>>)>,
    /// The results of deferred calls, by call, item and row of the item.
    deferred: HashMap<(CallId, usize, usize), Result<Value, EvalError>>,
    /// The deferred calls the items evaluated in this round reached.
    noted: Mutex<Vec<Noted>>,
}

impl std::fmt::Debug for Prefetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetched")
            .field("calls", &self.calls.len())
            .field("deferred", &self.deferred.len())
            .finish_non_exhaustive()
    }
}

/// A deferred call reached by one item's evaluation, with its arguments.
struct Noted {
    id: CallId,
    item: usize,
    row: usize,
    name: Arc<str>,
    function: Arc<dyn Function>,
    args: Vec<Value>,
}

/// What one item's evaluation reads of a [`Prefetched`]: the results and its item.
#[derive(Debug, Clone, Copy)]
pub struct Prefetch<'a> {
    results: &'a Prefetched,
    item: usize,
    /// The row of a group whose aggregate arguments are evaluated (0 elsewhere).
    row: usize,
}

/// One batch of calls of `function`.
async fn call_batch(function: &dyn Function, ctx: &CallContext<'_>, rows: &[&[Value]]) -> BatchAnswers {
    if rows.is_empty() { Vec::new() } else { function.call_batch(ctx, rows).await }
}

impl Prefetched {
    /// Makes the batched `calls` over `rows`, innermost first (post-order), so
    /// that an argument that is itself a batched call reads its result here.
    async fn compute<T: Tuple + Sync>(calls: Vec<&Call>, rows: &[T], env: &EvalEnv<'_>) -> Prefetched {
        let mut prefetched = Prefetched { calls: Vec::with_capacity(calls.len()), ..Prefetched::default() };
        let ctx = CallContext { rule_id: env.rule_id };
        for call in calls {
            let (flat, failed) = prefetched.arguments(call, rows, env);
            let arity = call.args.len();
            let called = failed.iter().filter(|e| e.is_none()).count();
            let arg_rows: Vec<&[Value]> =
                if arity == 0 { vec![&[][..]; called] } else { flat.chunks_exact(arity).collect() };
            let answers = call_batch(call.function.as_ref(), &ctx, &arg_rows).await;
            prefetched.calls.push((call.id, merge(&call.name, failed, answers)));
        }
        prefetched
    }

    /// The environment of item `item`.
    fn env<'a>(&'a self, env: &EvalEnv<'a>, item: usize) -> EvalEnv<'a> {
        EvalEnv { prefetch: Some(Prefetch { results: self, item, row: 0 }), ..*env }
    }

    /// The arguments of `call` for every row that has them, in one buffer (no
    /// allocation per row), and per row the error that stopped its arguments.
    /// They need no deferred call ([`collect_batched`]): none is pending.
    fn arguments<T: Tuple>(&self, call: &Call, rows: &[T], env: &EvalEnv<'_>) -> (Vec<Value>, Vec<Option<EvalError>>) {
        let mut flat: Vec<Value> = Vec::with_capacity(rows.len() * call.args.len());
        let mut failed: Vec<Option<EvalError>> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let row_env = self.env(env, i);
            let start = flat.len();
            let mut error = None;
            for arg in &call.args {
                match arg.eval_in(Scope::Row(row), &row_env) {
                    Ok(value) => flat.push(value),
                    Err(stop) => {
                        error = Some(stop.into_error());
                        break;
                    }
                }
            }
            if error.is_some() {
                flat.truncate(start);
            }
            failed.push(error);
        }
        (flat, failed)
    }

    /// `eval` of items `0..count`, each with its batched results; an item
    /// whose evaluation is pending on a deferred call is evaluated again once
    /// the round's deferred calls are made (module docs). `batched` is how
    /// many batched calls the expressions have: when all are prefetched, each
    /// item is evaluated once.
    async fn eval_items<R>(
        mut self,
        count: usize,
        env: &EvalEnv<'_>,
        batched: usize,
        eval: impl Fn(usize, &EvalEnv<'_>) -> Step<R>,
    ) -> Vec<Result<R, EvalError>> {
        if batched == 0 {
            return (0..count).map(|item| eval(item, env).map_err(Stop::into_error)).collect();
        }
        if batched == self.calls.len() {
            return (0..count).map(|item| eval(item, &self.env(env, item)).map_err(Stop::into_error)).collect();
        }
        let mut results: Vec<Option<Result<R, EvalError>>> = (0..count).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..count).collect();
        while !pending.is_empty() {
            let mut set_aside = Vec::new();
            for item in pending {
                match eval(item, &self.env(env, item)) {
                    Err(Stop::Pending) => set_aside.push(item),
                    done => results[item] = Some(done.map_err(Stop::into_error)),
                }
            }
            self.make_noted(env).await;
            pending = set_aside;
        }
        results.into_iter().map(|r| r.expect("every item was evaluated to the end")).collect()
    }

    /// Makes the round's noted calls, one batch per call site, and keeps their answers.
    async fn make_noted(&mut self, env: &EvalEnv<'_>) {
        let noted = std::mem::take(self.noted.get_mut().unwrap_or_else(PoisonError::into_inner));
        let ctx = CallContext { rule_id: env.rule_id };
        let mut sites: Vec<(CallId, Vec<Noted>)> = Vec::new();
        for call in noted {
            match sites.iter_mut().find(|(id, _)| *id == call.id) {
                Some((_, calls)) => calls.push(call),
                None => sites.push((call.id, vec![call])),
            }
        }
        for (id, calls) in sites {
            let rows: Vec<&[Value]> = calls.iter().map(|c| c.args.as_slice()).collect();
            let answers = call_batch(calls[0].function.as_ref(), &ctx, &rows).await;
            let results = merge(&calls[0].name, vec![None; calls.len()], answers);
            for (call, result) in calls.iter().zip(results) {
                self.deferred.insert((id, call.item, call.row), result);
            }
        }
    }
}

/// One result per row: its argument's error, or the function's next answer.
fn merge(name: &str, failed: Vec<Option<EvalError>>, answers: BatchAnswers) -> Vec<Result<Value, EvalError>> {
    let mut answers = answers.into_iter();
    failed
        .into_iter()
        .map(|error| match error {
            Some(e) => Err(e),
            None => answers.next().map_or_else(
                || Err(EvalError::Invalid(format!("{name} returned fewer results than rows"))),
                |answer| answer.map_err(EvalError::from),
            ),
        })
        .collect()
}

impl Prefetch<'_> {
    /// The batched result of `call` for this item, if it was made.
    pub(crate) fn get(&self, call: &Call) -> Option<Result<Value, EvalError>> {
        match self.results.calls.iter().find(|(id, _)| *id == call.id) {
            Some((_, results)) => results.get(self.item).cloned(),
            None => self.results.deferred.get(&(call.id, self.item, self.row)).cloned(),
        }
    }

    /// This item's row `row`, for the arguments of an aggregate over its rows.
    pub(crate) fn in_row(self, row: usize) -> Self {
        Prefetch { row, ..self }
    }

    /// Notes that this item's evaluation reached `call` with `args`: the item
    /// is pending, to be evaluated again once the call is made.
    pub(crate) fn defer(&self, call: &Call, args: Vec<Value>) -> Stop {
        let noted = Noted {
            id: call.id,
            item: self.item,
            row: self.row,
            name: Arc::clone(&call.name),
            function: Arc::clone(&call.function),
            args,
        };
        self.results.noted.lock().unwrap_or_else(PoisonError::into_inner).push(noted);
        Stop::Pending
    }
}

/// How many calls made once per batch `exprs` have, anywhere.
fn batched_total<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> usize {
    exprs.into_iter().map(|e| batched_count(std::slice::from_ref(e))).sum()
}

/// How many calls made once per batch `exprs` have, anywhere.
fn batched_count(exprs: &[Expr]) -> usize {
    let mut count = 0;
    for expr in exprs {
        expr.walk(&mut |e| count += usize::from(matches!(e, Expr::Call(call) if call.batched)));
    }
    count
}
/// The batched calls of `exprs`, innermost first.
fn batched_calls<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> Vec<&'e Call> {
    let mut calls = Vec::new();
    for expr in exprs {
        collect_batched(expr, &mut calls);
    }
    calls
}

/// The batched calls `expr` evaluates unconditionally, innermost first.
fn collect_batched<'e>(expr: &'e Expr, out: &mut Vec<&'e Call>) {
    match expr {
        Expr::Field(base, _) => collect_batched(base, out),
        Expr::Index(base, index) => {
            collect_batched(base, out);
            collect_batched(index, out);
        }
        Expr::Slice { base, start, end } => {
            collect_batched(base, out);
            for bound in [start, end].into_iter().flatten() {
                collect_batched(bound, out);
            }
        }
        Expr::Unary(_, e)
        | Expr::IsNull { expr: e, .. }
        | Expr::InList { expr: e, .. }
        | Expr::Like { expr: e, .. } => collect_batched(e, out),
        Expr::Binary(op, left, right) => {
            collect_batched(left, out);
            if !matches!(op, BinaryOp::And | BinaryOp::Or) {
                collect_batched(right, out);
            }
        }
        Expr::Case { operand, branches, .. } => match operand {
            Some(operand) => collect_batched(operand, out),
            None => {
                if let Some((when, _)) = branches.first() {
                    collect_batched(when, out);
                }
            }
        },
        Expr::Between { expr, low, high, .. } => {
            for e in [expr, low, high] {
                collect_batched(e, out);
            }
        }
        Expr::InArray { expr, array, .. } => {
            collect_batched(expr, out);
            collect_batched(array, out);
        }
        Expr::Call(call) if !call.aggregate => {
            let before = out.len();
            for arg in &call.args {
                collect_batched(arg, out);
            }
            // Prefetched only if its arguments need no deferred call: the
            // prefetch computes them once, before any round.
            if call.batched && out.len() - before == batched_count(&call.args) {
                out.push(call);
            }
        }
        Expr::Call(_)
        | Expr::Literal(_)
        | Expr::Column { .. }
        | Expr::Meta { .. }
        | Expr::MetaAll
        | Expr::WindowStart
        | Expr::WindowEnd
        | Expr::EventTime
        | Expr::SelfRow
        | Expr::Wildcard { .. }
        | Expr::CountStar
        | Expr::LastHit { .. }
        | Expr::Analytic { .. } => {}
    }
}

/// `eval` of each row of a batch, `exprs` being the expressions it
/// evaluates, with their batched calls made once for the batch (module docs).
/// One result per row, in order.
pub(crate) async fn eval_rows<T: Tuple + Sync, R>(
    exprs: &[&Expr],
    rows: &[T],
    env: &EvalEnv<'_>,
    eval: impl Fn(&T, &EvalEnv<'_>) -> Step<R>,
) -> Vec<Result<R, EvalError>> {
    let prefetched = Prefetched::compute(batched_calls(exprs.iter().copied()), rows, env).await;
    prefetched.eval_items(rows.len(), env, batched_total(exprs.iter().copied()), |i, env| eval(&rows[i], env)).await
}

/// `eval` of each group of a batch of groups, `exprs` being the expressions
/// it evaluates: their batched calls are all deferred (module docs). One
/// result per group, in order.
async fn eval_groups<T: Tuple + Sync, R>(
    exprs: &[&Expr],
    groups: &[&[T]],
    env: &EvalEnv<'_>,
    eval: impl Fn(&[T], &EvalEnv<'_>) -> Step<R>,
) -> Vec<Result<R, EvalError>> {
    Prefetched::default()
        .eval_items(groups.len(), env, batched_total(exprs.iter().copied()), |i, env| eval(groups[i], env))
        .await
}

impl Expr {
    /// Evaluates the expression for each row of a batch, making each batched
    /// call once for the batch (module docs). One result per row, in order.
    pub async fn eval_batch<T: Tuple + Sync>(&self, rows: &[T], env: &EvalEnv<'_>) -> Vec<Result<Value, EvalError>> {
        eval_rows(&[self], rows, env, |row, env| self.eval_step(row, env)).await
    }

    /// [`Expr::eval_group`] of each group, making each batched call once for
    /// the groups (module docs). One result per group, in order.
    pub async fn eval_groups<T: Tuple + Sync>(
        &self,
        groups: &[&[T]],
        env: &EvalEnv<'_>,
    ) -> Vec<Result<Value, EvalError>> {
        eval_groups(&[self], groups, env, |group, env| self.eval_group_step(group, env)).await
    }
}

impl Projection {
    /// The output map of each row of a batch, making each batched call once
    /// for the batch (module docs). One result per row, in order.
    pub async fn eval_batch<T: Tuple + Sync>(&self, rows: &[T], env: &EvalEnv<'_>) -> Vec<Result<Map, EvalError>> {
        let exprs: Vec<&Expr> = self.exprs().map(|(_, e)| e).collect();
        eval_rows(&exprs, rows, env, |row, env| self.eval_step(row, env)).await
    }

    /// [`Projection::eval_group`] of each group, making each batched call
    /// once for the groups (module docs). One result per group, in order.
    pub async fn eval_groups<T: Tuple + Sync>(
        &self,
        groups: &[&[T]],
        env: &EvalEnv<'_>,
    ) -> Vec<Result<Map, EvalError>> {
        let exprs: Vec<&Expr> = self.exprs().map(|(_, e)| e).collect();
        eval_groups(&exprs, groups, env, |group, env| self.eval_group_step(group, env)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::expr::test_util::{env, first_expr, registry, row_of, select_items};
    use crate::expr::{CompileContext, SourceSchema, compile, compile_projection};
    use crate::function::{Function, FunctionError, FunctionKind, FunctionMeta, FunctionRegistry};
    use crate::row::Row;

    /// `plus1(x)` of a plugin: counts its per-row and per-batch calls; fails on 13.
    struct Plus1 {
        meta: FunctionMeta,
        calls: AtomicUsize,
        batches: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl Function for Plus1 {
        fn meta(&self) -> &FunctionMeta {
            &self.meta
        }
        fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match args[0].as_i64() {
                Some(13) => Err(FunctionError::failed("plus1", "unlucky")),
                Some(x) => Ok(Value::Int(x + 1)),
                None => Ok(Value::Null),
            }
        }
        fn call_batch(&self, ctx: &CallContext<'_>, rows: &[&[Value]]) -> crate::function::BatchCall {
            self.batches.lock().unwrap().push(rows.len());
            let results: BatchAnswers = rows.iter().map(|args| self.call(ctx, args)).collect();
            self.calls.fetch_sub(rows.len(), Ordering::Relaxed);
            Box::pin(std::future::ready(results))
        }
    }

    struct Fixture {
        registry: FunctionRegistry,
        plus1: Arc<Plus1>,
    }

    impl Fixture {
        fn new() -> Self {
            let registry = registry();
            let meta = FunctionMeta {
                origin: crate::function::FunctionOrigin::Native,
                owner: "testplugin".into(),
                calling: crate::function::Calling::Batched,
                ..FunctionMeta::builtin("plus1", FunctionKind::Scalar, 1, Some(1), "x + 1")
            };
            let plus1 = Arc::new(Plus1 { meta, calls: AtomicUsize::new(0), batches: Arc::default() });
            registry.register(Arc::clone(&plus1) as Arc<dyn Function>);
            Self { registry, plus1 }
        }

        fn expr(&self, expr: &str) -> Expr {
            let sources = [SourceSchema::schemaless("demo")];
            let ctx =
                CompileContext { sources: &sources, registry: &self.registry, rule_id: "test_rule", analytics: None };
            compile(&first_expr(&format!("SELECT {expr} FROM demo")), &ctx).unwrap()
        }

        /// (per-row calls, sizes of the batched calls).
        fn counts(&self) -> (usize, Vec<usize>) {
            (self.plus1.calls.load(Ordering::Relaxed), self.plus1.batches.lock().unwrap().clone())
        }
    }

    /// The output of an evaluation whose calls all answer at once.
    fn now<T>(evaluation: impl std::future::Future<Output = T>) -> T {
        futures::FutureExt::now_or_never(evaluation).expect("the test's functions answer at once")
    }

    fn rows(xs: &[i64]) -> Vec<Row> {
        xs.iter().map(|x| row_of(&[("x", *x)])).collect()
    }

    fn values(results: Vec<Result<Value, EvalError>>) -> Vec<Result<i64, String>> {
        results.into_iter().map(|r| r.map(|v| v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())).collect()
    }

    #[test]
    fn a_plugin_call_is_made_once_per_batch_and_nested_calls_innermost_first() {
        let f = Fixture::new();
        let out = now(f.expr("plus1(plus1(x)) * 10").eval_batch(&rows(&[1, 2, 3]), &env()));
        assert_eq!(values(out), vec![Ok(30), Ok(40), Ok(50)]);
        assert_eq!(f.counts(), (0, vec![3, 3]));
    }

    #[test]
    fn errors_stay_with_their_row() {
        let f = Fixture::new();
        // Row 2's argument fails before the call; row 3's call fails in the function.
        let out = now(f.expr("plus1(10 / x)").eval_batch(&rows(&[5, 0, 1, 10]), &env()));
        let out = values(out);
        assert_eq!(out[0], Ok(3));
        assert_eq!(out[1], Err("divided by zero".into()));
        assert_eq!(out[2], Ok(11));
        assert!(out[3].as_ref().is_ok_and(|v| *v == 2));
        // Only the rows whose arguments could be computed reached the function.
        assert_eq!(f.counts(), (0, vec![3]));
        let out = values(now(f.expr("plus1(x)").eval_batch(&rows(&[1, 13, 2]), &env())));
        assert_eq!(out, vec![Ok(2), Err("plus1: unlucky".into()), Ok(3)]);
    }

    #[test]
    fn conditional_calls_are_batched_over_the_rows_that_reach_them() {
        let f = Fixture::new();
        let out = now(f.expr("CASE WHEN x > 1 THEN plus1(x) ELSE 0 END").eval_batch(&rows(&[1, 2, 3]), &env()));
        assert_eq!(values(out), vec![Ok(0), Ok(3), Ok(4)]);
        assert_eq!(f.counts(), (0, vec![2]));
        let out = now(f.expr("x > 100 AND plus1(x) > 0").eval_batch(&rows(&[1, 2]), &env()));
        assert!(out.iter().all(|r| matches!(r, Ok(Value::Bool(false)))));
        assert_eq!(f.counts(), (0, vec![2]), "the right side of AND was not needed");
        // The first WHEN is always evaluated: prefetched.
        let out = now(f.expr("CASE WHEN plus1(x) > 2 THEN 1 ELSE 0 END").eval_batch(&rows(&[1, 2]), &env()));
        assert_eq!(values(out), vec![Ok(0), Ok(1)]);
        assert_eq!(f.counts(), (0, vec![2, 2]));
    }

    #[test]
    fn a_call_that_needs_another_deferred_call_waits_a_round() {
        let f = Fixture::new();
        let out = now(f.expr("CASE WHEN x > 1 THEN plus1(plus1(x)) ELSE x END").eval_batch(&rows(&[1, 2, 3]), &env()));
        assert_eq!(values(out), vec![Ok(1), Ok(4), Ok(5)]);
        assert_eq!(f.counts(), (0, vec![2, 2]), "two rounds of the two rows that reach them");
        // Evaluated unconditionally, but its argument has a conditional call: not prefetched.
        let out = now(f.expr("plus1(CASE WHEN x > 1 THEN plus1(x) ELSE x END)").eval_batch(&rows(&[1, 2, 3]), &env()));
        assert_eq!(values(out), vec![Ok(2), Ok(4), Ok(5)]);
        // Row 1 reaches the outer call in the first round, rows 2 and 3 in the second.
        assert_eq!(f.counts(), (0, vec![2, 2, 1, 2, 2]));
    }

    #[test]
    fn a_deferred_call_keeps_its_error_with_its_row() {
        let f = Fixture::new();
        let out = now(f.expr("CASE WHEN x > 0 THEN plus1(x) END").eval_batch(&rows(&[13, 0, 2]), &env()));
        assert_eq!(values(out), vec![Err("plus1: unlucky".into()), Ok(-1), Ok(3)]);
        assert_eq!(f.counts(), (0, vec![2]));
    }

    #[test]
    fn groups_batch_their_calls_and_the_calls_in_their_aggregates() {
        let f = Fixture::new();
        let (a, b) = (rows(&[1, 2]), rows(&[10, 20, 30]));
        let groups: Vec<&[Row]> = vec![&a, &b];
        let over_groups = |expr: &str| values(now(f.expr(expr).eval_groups(&groups, &env())));
        assert_eq!(over_groups("plus1(mysum(x))"), vec![Ok(4), Ok(61)]);
        assert_eq!(f.counts(), (0, vec![2]), "one batch for the two groups");
        assert_eq!(over_groups("mysum(plus1(x))"), vec![Ok(5), Ok(63)]);
        assert_eq!(f.counts(), (0, vec![2, 5]), "inside an aggregate: one batch of every row of every group");
        assert_eq!(over_groups("mysum(plus1(plus1(x))) + plus1(mysum(x))"), vec![Ok(7 + 4), Ok(66 + 61)]);
        // The inner plus1, the outer one, then the right side, which the
        // evaluation reaches only once the left side has its answers.
        assert_eq!(f.counts(), (0, vec![2, 5, 5, 5, 2]), "a round per call that waits on another");
    }

    #[test]
    fn an_error_in_an_aggregate_argument_stops_its_group_there() {
        let f = Fixture::new();
        let (a, b) = (rows(&[1, 13, 2]), rows(&[3]));
        let groups: Vec<&[Row]> = vec![&a, &b];
        let out = now(f.expr("mysum(plus1(x)) + mysum(x / (x - 2))").eval_groups(&groups, &env()));
        assert_eq!(values(out), vec![Err("plus1: unlucky".into()), Ok(4 + 3)]);
        // Rows 1 and 13 of the first group and the second group's row reach
        // plus1; 13 fails, so the first group's evaluation stops at it.
        assert_eq!(f.counts(), (0, vec![4]));
        let out = now(f.expr("mysum(x / (x - 2)) + mysum(plus1(x))").eval_groups(&groups, &env()));
        assert_eq!(values(out), vec![Err("divided by zero".into()), Ok(3 + 4)]);
        assert_eq!(f.counts(), (0, vec![4, 1]), "the first group never reaches plus1");
    }

    #[test]
    fn a_projection_batches_every_column() {
        let f = Fixture::new();
        let sources = [SourceSchema::schemaless("demo")];
        let ctx = CompileContext { sources: &sources, registry: &f.registry, rule_id: "test_rule", analytics: None };
        let projection =
            compile_projection(&select_items("SELECT plus1(x) AS a, x, plus1(x) + 1 AS b FROM demo"), &ctx).unwrap();
        let out = now(projection.eval_batch(&rows(&[1, 2]), &env()));
        let b: Vec<i64> = out.iter().map(|m| m.as_ref().unwrap()["b"].as_i64().unwrap()).collect();
        assert_eq!(b, vec![3, 4]);
        assert_eq!(f.counts(), (0, vec![2, 2]));
        // Built-ins only: the row-by-row path, same results as eval.
        let upper = compile_projection(&select_items("SELECT x + 1 AS y FROM demo"), &ctx).unwrap();
        let batch = now(upper.eval_batch(&rows(&[7]), &env()));
        assert_eq!(batch[0].as_ref().unwrap(), &upper.eval(&rows(&[7])[0], &env()).unwrap());
    }
}
