//! Evaluation over a batch of rows: [`Expr::eval_batch`] and
//! [`Projection::eval_batch`](super::Projection::eval_batch).
//!
//! A function that is not built in (a native or portable plugin, an external
//! service) costs a boundary crossing per call: an FFI round trip, a message
//! to a plugin process, a network request. So before a batch of rows is
//! evaluated row by row, every such call that the expression evaluates
//! unconditionally is made once for the whole batch through
//! [`Function::call_batch`](crate::Function::call_batch), innermost calls
//! first; the row-by-row evaluation then reads the results ([`Prefetch`]).
//! Where the function has an asynchronous form and the caller awaits the
//! evaluation ([`CallMode::Awaited`]: a rule's task), the batch is awaited
//! rather than blocked on.
//!
//! Calls under a condition (a `CASE` branch, the right side of `AND`/`OR`, an
//! `IN` candidate, a dynamic `LIKE` pattern) and aggregate calls are left to
//! the row-by-row evaluation, so a call is never made for a row it would not
//! have been made for — except when an earlier part of the same expression
//! fails for that row: the batched call has then been made anyway, and the
//! row's error is the same as without batching.

use super::eval::Scope;
use super::projection::Projection;
use super::tree::{BinaryOp, Call, Expr};
use super::tuple::Tuple;
use super::{EvalEnv, EvalError};
use futures::FutureExt;

use crate::function::{BatchAnswers, CallContext, FunctionOrigin};
use crate::value::{Map, Value};

/// The results of the batched calls of a batch of rows.
#[derive(Debug, Default)]
pub struct Prefetched {
    /// Per call (identified by its node's address in the plan, which outlives
    /// the batch), one result per row of the batch.
    calls: Vec<(usize, Vec<Result<Value, EvalError>>)>,
}

/// What one row's evaluation reads of a [`Prefetched`]: the results and its row.
#[derive(Debug, Clone, Copy)]
pub struct Prefetch<'a> {
    results: &'a Prefetched,
    row: usize,
}

/// How the batched calls of a batch are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallMode {
    /// [`Function::call_batch`](crate::Function::call_batch), which blocks the
    /// thread until the answers.
    Blocking,
    /// Awaited, where the function has an asynchronous form
    /// ([`Function::as_async`](crate::Function::as_async)); blocking elsewhere.
    Awaited,
}

impl Prefetched {
    /// Makes the batched `calls` over `rows`, innermost first (post-order), so
    /// that an argument that is itself a batched call reads its result here.
    async fn compute<T: Tuple + Sync>(calls: Vec<&Call>, rows: &[T], env: &EvalEnv<'_>, mode: CallMode) -> Prefetched {
        let mut prefetched = Prefetched { calls: Vec::with_capacity(calls.len()) };
        for call in calls {
            let (flat, failed) = prefetched.arguments(call, rows, env);
            let arity = call.args.len();
            let called = failed.iter().filter(|e| e.is_none()).count();
            let arg_rows: Vec<&[Value]> =
                if arity == 0 { vec![&[][..]; called] } else { flat.chunks_exact(arity).collect() };
            let ctx = CallContext { rule_id: env.rule_id };
            let answers = match (called, mode, call.function.as_async()) {
                (0, _, _) => Vec::new(),
                (_, CallMode::Awaited, Some(function)) => function.call_batch_async(&ctx, &arg_rows).await,
                _ => call.function.call_batch(&ctx, &arg_rows),
            };
            prefetched.calls.push((key(call), merge(call, failed, answers)));
        }
        prefetched
    }

    /// Whether the expressions had no batched call.
    fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The environment of row `row`.
    fn env<'a>(&'a self, env: &EvalEnv<'a>, row: usize) -> EvalEnv<'a> {
        EvalEnv { prefetch: Some(Prefetch { results: self, row }), ..*env }
    }

    /// The arguments of `call` for every row that has them, in one buffer (no
    /// allocation per row), and per row the error that stopped its arguments.
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
                    Err(e) => {
                        error = Some(e);
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
}

/// The output of an evaluation whose calls all block: it never waits.
pub(crate) fn blocking<T>(evaluation: impl std::future::Future<Output = T>) -> T {
    evaluation.now_or_never().expect("blocking calls leave nothing to await")
}

/// One result per row: its argument's error, or the function's next answer.
fn merge(call: &Call, failed: Vec<Option<EvalError>>, answers: BatchAnswers) -> Vec<Result<Value, EvalError>> {
    let mut answers = answers.into_iter();
    failed
        .into_iter()
        .map(|error| match error {
            Some(e) => Err(e),
            None => answers.next().map_or_else(
                || Err(EvalError::Invalid(format!("{} returned fewer results than rows", call.name))),
                |answer| answer.map_err(EvalError::from),
            ),
        })
        .collect()
}

impl Prefetch<'_> {
    /// The batched result of `call` for this row, if it was batched.
    pub(crate) fn get(&self, call: &Call) -> Option<Result<Value, EvalError>> {
        let address = key(call);
        let (_, results) = self.results.calls.iter().find(|(k, _)| *k == address)?;
        results.get(self.row).cloned()
    }
}

/// A call node's identity: its address in the plan.
fn key(call: &Call) -> usize {
    std::ptr::from_ref(call) as usize
}

/// Whether a call is made once per batch rather than once per row.
fn is_batched(call: &Call) -> bool {
    !call.aggregate && call.function.meta().origin != FunctionOrigin::Builtin
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
        Expr::Call(call) if !call.aggregate => {
            for arg in &call.args {
                collect_batched(arg, out);
            }
            if is_batched(call) {
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
        | Expr::SelfRow
        | Expr::Wildcard { .. }
        | Expr::CountStar => {}
    }
}

impl Expr {
    /// Evaluates the expression for each row of a batch, making each batched
    /// call once for the batch (module docs). One result per row, in order.
    pub fn eval_batch<T: Tuple + Sync>(&self, rows: &[T], env: &EvalEnv<'_>) -> Vec<Result<Value, EvalError>> {
        blocking(self.eval_batch_with(rows, env, CallMode::Blocking))
    }

    /// [`Expr::eval_batch`], its batched calls made as `mode` says.
    pub(crate) async fn eval_batch_with<T: Tuple + Sync>(
        &self,
        rows: &[T],
        env: &EvalEnv<'_>,
        mode: CallMode,
    ) -> Vec<Result<Value, EvalError>> {
        let prefetched = Prefetched::compute(batched_calls([self]), rows, env, mode).await;
        prefetched.per_row(rows, env, |row, env| self.eval(row, env))
    }
}

impl Projection {
    /// The output map of each row of a batch, making each batched call once
    /// for the batch (module docs). One result per row, in order.
    pub fn eval_batch<T: Tuple + Sync>(&self, rows: &[T], env: &EvalEnv<'_>) -> Vec<Result<Map, EvalError>> {
        blocking(self.eval_batch_with(rows, env, CallMode::Blocking))
    }

    /// [`Projection::eval_batch`], its batched calls made as `mode` says.
    pub(crate) async fn eval_batch_with<T: Tuple + Sync>(
        &self,
        rows: &[T],
        env: &EvalEnv<'_>,
        mode: CallMode,
    ) -> Vec<Result<Map, EvalError>> {
        let calls = batched_calls(self.exprs().map(|(_, e)| e));
        let prefetched = Prefetched::compute(calls, rows, env, mode).await;
        prefetched.per_row(rows, env, |row, env| self.eval(row, env))
    }
}

impl Prefetched {
    /// `eval` of each row, with the row's batched results.
    fn per_row<T: Tuple, R>(&self, rows: &[T], env: &EvalEnv<'_>, eval: impl Fn(&T, &EvalEnv<'_>) -> R) -> Vec<R> {
        if self.is_empty() {
            return rows.iter().map(|row| eval(row, env)).collect();
        }
        rows.iter().enumerate().map(|(i, row)| eval(row, &self.env(env, i))).collect()
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
        fn call_batch(&self, ctx: &CallContext<'_>, rows: &[&[Value]]) -> Vec<Result<Value, FunctionError>> {
            self.batches.lock().unwrap().push(rows.len());
            let results = rows.iter().map(|args| self.call(ctx, args)).collect();
            self.calls.fetch_sub(rows.len(), Ordering::Relaxed);
            results
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
                origin: FunctionOrigin::Native,
                owner: "testplugin".into(),
                ..FunctionMeta::builtin("plus1", FunctionKind::Scalar, 1, Some(1), "x + 1")
            };
            let plus1 = Arc::new(Plus1 { meta, calls: AtomicUsize::new(0), batches: Arc::default() });
            registry.register(Arc::clone(&plus1) as Arc<dyn Function>);
            Self { registry, plus1 }
        }

        fn expr(&self, expr: &str) -> Expr {
            let sources = [SourceSchema::schemaless("demo")];
            let ctx = CompileContext { sources: &sources, registry: &self.registry, rule_id: "test_rule" };
            compile(&first_expr(&format!("SELECT {expr} FROM demo")), &ctx).unwrap()
        }

        /// (per-row calls, sizes of the batched calls).
        fn counts(&self) -> (usize, Vec<usize>) {
            (self.plus1.calls.load(Ordering::Relaxed), self.plus1.batches.lock().unwrap().clone())
        }
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
        let out = f.expr("plus1(plus1(x)) * 10").eval_batch(&rows(&[1, 2, 3]), &env());
        assert_eq!(values(out), vec![Ok(30), Ok(40), Ok(50)]);
        assert_eq!(f.counts(), (0, vec![3, 3]));
    }

    #[test]
    fn errors_stay_with_their_row() {
        let f = Fixture::new();
        // Row 2's argument fails before the call; row 3's call fails in the function.
        let out = f.expr("plus1(10 / x)").eval_batch(&rows(&[5, 0, 1, 10]), &env());
        let out = values(out);
        assert_eq!(out[0], Ok(3));
        assert_eq!(out[1], Err("divided by zero".into()));
        assert_eq!(out[2], Ok(11));
        assert!(out[3].as_ref().is_ok_and(|v| *v == 2));
        // Only the rows whose arguments could be computed reached the function.
        assert_eq!(f.counts(), (0, vec![3]));
        let out = values(f.expr("plus1(x)").eval_batch(&rows(&[1, 13, 2]), &env()));
        assert_eq!(out, vec![Ok(2), Err("plus1: unlucky".into()), Ok(3)]);
    }

    #[test]
    fn conditional_calls_are_made_per_row_only_where_evaluated() {
        let f = Fixture::new();
        let out = f.expr("CASE WHEN x > 1 THEN plus1(x) ELSE 0 END").eval_batch(&rows(&[1, 2, 3]), &env());
        assert_eq!(values(out), vec![Ok(0), Ok(3), Ok(4)]);
        assert_eq!(f.counts(), (2, vec![]));
        let out = f.expr("x > 100 AND plus1(x) > 0").eval_batch(&rows(&[1, 2]), &env());
        assert!(out.iter().all(|r| matches!(r, Ok(Value::Bool(false)))));
        assert_eq!(f.counts(), (2, vec![]), "the right side of AND was not needed");
        // The first WHEN is always evaluated: batched.
        let out = f.expr("CASE WHEN plus1(x) > 2 THEN 1 ELSE 0 END").eval_batch(&rows(&[1, 2]), &env());
        assert_eq!(values(out), vec![Ok(0), Ok(1)]);
        assert_eq!(f.counts(), (2, vec![2]));
    }

    #[test]
    fn a_projection_batches_every_column() {
        let f = Fixture::new();
        let sources = [SourceSchema::schemaless("demo")];
        let ctx = CompileContext { sources: &sources, registry: &f.registry, rule_id: "test_rule" };
        let projection =
            compile_projection(&select_items("SELECT plus1(x) AS a, x, plus1(x) + 1 AS b FROM demo"), &ctx).unwrap();
        let out = projection.eval_batch(&rows(&[1, 2]), &env());
        let b: Vec<i64> = out.iter().map(|m| m.as_ref().unwrap()["b"].as_i64().unwrap()).collect();
        assert_eq!(b, vec![3, 4]);
        assert_eq!(f.counts(), (0, vec![2, 2]));
        // Built-ins only: the row-by-row path, same results as eval.
        let upper = compile_projection(&select_items("SELECT x + 1 AS y FROM demo"), &ctx).unwrap();
        let batch = upper.eval_batch(&rows(&[7]), &env());
        assert_eq!(batch[0].as_ref().unwrap(), &upper.eval(&rows(&[7])[0], &env()).unwrap());
    }
}
