//! The native plugin benchmark: mathx's `mx_abs` against the built-in `abs`
//! (the same work), in one run, on one core:
//!
//! - per call, as the engine calls a scalar function today (one row a call);
//! - per row through `Function::call_batch`, [`BATCH`] rows a call (the native
//!   function crosses the ABI once per batch; the built-in calls itself per row);
//! - in a rule, `SELECT abs(temperature) ...` against `SELECT mx_abs(temperature) ...`,
//!   through the engine benchmark's generator source and counting sink.
//!
//! The plugin is installed by the real host (unpacked, dlopen'd, registered), as
//! `InstallPlugin` does.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use oort_engine::{CallContext, FunctionRegistry, Value};
use oort_plugin_host::PluginHost;

use crate::engine;

/// Rows per batch in the batch figure.
const BATCH: usize = 1024;

fn per_call(f: &dyn oort_engine::Function, args: &[Value]) -> Result<f64> {
    let ctx = CallContext { rule_id: "bench" };
    let started = Instant::now();
    for v in args {
        black_box(f.call(&ctx, std::slice::from_ref(v))?);
    }
    Ok(started.elapsed().as_nanos() as f64 / args.len() as f64)
}

/// Nanoseconds per row through `Function::call_batch`, [`BATCH`] rows a call.
async fn per_batch(f: &dyn oort_engine::Function, rows: &[&[Value]]) -> f64 {
    let ctx = CallContext { rule_id: "bench" };
    let started = Instant::now();
    for chunk in rows.chunks(BATCH) {
        black_box(f.call_batch(&ctx, chunk).await);
    }
    started.elapsed().as_nanos() as f64 / rows.len() as f64
}

/// Runs the benchmark and prints a markdown table.
pub async fn run(plugin: &Path, calls: usize, events: usize) -> Result<()> {
    let archive = std::fs::read(plugin)
        .with_context(|| format!("reading {} (run scripts/package-plugins.sh --release)", plugin.display()))?;
    let root = tempfile::tempdir()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let host = PluginHost::new(root.path().to_owned(), Arc::clone(&functions), Arc::default());
    let staged = host.unpack("mathx", &archive)?;
    host.install(staged)?;
    let builtin = functions.get("abs").context("abs")?;
    let native = functions.get("mx_abs").context("mx_abs")?;

    let args: Vec<Value> = (0..calls).map(|i| Value::Float(i as f64 * if i % 2 == 0 { -0.5 } else { 0.25 })).collect();
    // Warm up both, then alternate and keep each one's best of three.
    per_call(builtin.as_ref(), &args[..calls.min(10_000)])?;
    per_call(native.as_ref(), &args[..calls.min(10_000)])?;
    let (mut builtin_ns, mut native_ns) = (f64::MAX, f64::MAX);
    let (mut builtin_batch_ns, mut native_batch_ns) = (f64::MAX, f64::MAX);
    let rows: Vec<&[Value]> = args.iter().map(std::slice::from_ref).collect();
    for _ in 0..3 {
        builtin_ns = builtin_ns.min(per_call(builtin.as_ref(), &args)?);
        native_ns = native_ns.min(per_call(native.as_ref(), &args)?);
        builtin_batch_ns = builtin_batch_ns.min(per_batch(builtin.as_ref(), &rows).await);
        native_batch_ns = native_batch_ns.min(per_batch(native.as_ref(), &rows).await);
    }
    // The answers agree.
    let ctx = CallContext { rule_id: "bench" };
    for v in &args[..1000] {
        anyhow::ensure!(builtin.call(&ctx, std::slice::from_ref(v))? == native.call(&ctx, std::slice::from_ref(v))?);
    }
    anyhow::ensure!(builtin.call_batch(&ctx, &rows[..BATCH]).await == native.call_batch(&ctx, &rows[..BATCH]).await);

    let payloads = Arc::new(engine::events(events, 1000));
    let (mut rule_builtin, mut rule_native) = (0f64, 0f64);
    for _ in 0..2 {
        let sql = |f: &str| format!("SELECT {f}(temperature) AS a, deviceId FROM demo");
        rule_builtin = rule_builtin
            .max(engine::measure_with(Arc::clone(&functions), &sql("abs"), &payloads, "op_project_0").await?);
        rule_native = rule_native
            .max(engine::measure_with(Arc::clone(&functions), &sql("mx_abs"), &payloads, "op_project_0").await?);
    }

    crate::out!("| native mx_abs vs built-in abs (one core) | built-in | native | extra per row | ratio | goal |");
    crate::out!("|---|---|---|---|---|---|");
    crate::out!(
        "| one call per row ({calls} calls) | {builtin_ns:.1} ns | {native_ns:.1} ns | {:.1} ns | | < 50 ns |",
        native_ns - builtin_ns
    );
    crate::out!(
        "| `call_batch`, {BATCH} rows a call (native: one ABI crossing a batch) | {builtin_batch_ns:.1} ns | {native_batch_ns:.1} ns | {:.1} ns | | < 50 ns |",
        native_batch_ns - builtin_batch_ns
    );
    crate::out!(
        "| rule `SELECT f(temperature) AS a, deviceId FROM demo`, {events} JSON events | {rule_builtin:.0} events/s | {rule_native:.0} events/s | | {:.2} | ≥ 0.90 |",
        rule_native / rule_builtin
    );
    let builtin = "built-in abs";
    crate::report::against("native mx_abs, one call per row", native_ns, "ns", builtin, builtin_ns);
    crate::report::against("native mx_abs, call_batch", native_batch_ns, "ns", builtin, builtin_batch_ns);
    crate::report::against("native mx_abs in a rule", rule_native, "events/s", builtin, rule_builtin);
    Ok(())
}
