//! The portable plugin benchmark: rsdemo's `rs_abs` (Rust SDK, its own process,
//! over the Unix socket) against mathx's native `mx_abs` and the built-in
//! `abs` (the same work), in one run:
//!
//! - rows per second through `Function::call_batch`, [`BATCH`] rows a call
//!   (the portable function sends one `InvokeBatch` per call);
//! - the round trip of one unbatched call (one row), p50 and p99, and the same
//!   exchange with bare tonic on both sides ([`crate::tonic_floor`]);
//! - events per second of a rule `SELECT f(temperature) AS a, deviceId FROM demo`
//!   over JSON events (the engine calls `call_batch` once per batch of events).
//!
//! And the same for the Python SDK: pydemo's `py_upper` against the built-in
//! `upper`, run by the interpreter given (one with grpcio, as
//! `plugins/python/test.sh` makes).
//!
//! Both plugins are installed by the real hosts (unpacked, started or
//! dlopen'd, checked, registered), as `InstallPlugin` does. The calls run on a
//! worker of a multi-threaded runtime, as a rule's do in oortd.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use oort_engine::{CallContext, Function, FunctionRegistry, Value};
use oort_plugin_host::{PluginHost, PortableConfig, PortableHost};

use crate::engine;

/// Rows per batch.
const BATCH: usize = 1024;

/// The figures measured on one thread: rates in rows per second, sorted round trips.
struct Measured {
    builtin_rate: f64,
    native_rate: f64,
    portable_rate: f64,
    upper_rate: f64,
    py_rate: f64,
    portable_times: Vec<Duration>,
    native_times: Vec<Duration>,
    py_times: Vec<Duration>,
    floor_times: Vec<Duration>,
}

/// Rows per second through `call_batch`, best of three.
async fn rows_per_second(f: &dyn Function, rows: &[&[Value]]) -> f64 {
    let ctx = CallContext { rule_id: "bench" };
    let mut best = 0f64;
    for _ in 0..3 {
        let started = Instant::now();
        for chunk in rows.chunks(BATCH) {
            black_box(f.call_batch(&ctx, chunk).await);
        }
        best = best.max(rows.len() as f64 / started.elapsed().as_secs_f64());
    }
    best
}

/// Sorted round trips of `n` one-row calls.
fn round_trips(f: &dyn Function, n: usize) -> Vec<Duration> {
    let ctx = CallContext { rule_id: "bench-single" };
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let arg = [Value::Float(-(i as f64))];
            let started = Instant::now();
            black_box(f.call(&ctx, &arg).ok());
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Events per second of `SELECT {f}({arg}) AS a, deviceId FROM demo`, best of two.
async fn rule_rate(functions: &Arc<FunctionRegistry>, f: &str, arg: &str, payloads: &Arc<Vec<Vec<u8>>>) -> Result<f64> {
    let sql = format!("SELECT {f}({arg}) AS a, deviceId FROM demo");
    let mut best = 0f64;
    for _ in 0..2 {
        best = best.max(engine::measure_with(Arc::clone(functions), &sql, payloads, "op_project_0").await?);
    }
    Ok(best)
}

/// What to measure.
pub struct Plugins<'a> {
    /// rsdemo, packaged as a portable plugin.
    pub rust: &'a Path,
    /// mathx, the native plugin.
    pub native: &'a Path,
    /// pydemo, the Python SDK's example.
    pub python: &'a Path,
    /// The interpreter that runs pydemo.
    pub interpreter: &'a str,
}

/// Runs the benchmark and prints markdown tables.
pub async fn run(plugins: Plugins<'_>, rows: usize, calls: usize, events: usize) -> Result<()> {
    let (portable_zip, native_zip) = (plugins.rust, plugins.native);
    let read = |p: &Path| {
        std::fs::read(p).with_context(|| format!("reading {} (run scripts/package-plugins.sh --release)", p.display()))
    };
    let (portable_archive, native_archive) = (read(portable_zip)?, read(native_zip)?);
    let root = tempfile::tempdir()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let native_host = PluginHost::new(root.path().to_owned(), Arc::clone(&functions), Arc::default());
    native_host.install(native_host.unpack("mathx", &native_archive)?)?;
    let python_archive = read(plugins.python)?;
    let config = PortableConfig { python: plugins.interpreter.to_owned(), ..PortableConfig::default() };
    let portable_host = PortableHost::new(root.path().to_owned(), Arc::clone(&functions), Arc::default(), config)?;
    portable_host.install(portable_host.stage("rsdemo", &portable_archive)?).await?;
    portable_host.install(portable_host.stage("pydemo", &python_archive)?).await?;
    let builtin = functions.get("abs").context("abs")?;
    let native = functions.get("mx_abs").context("mx_abs")?;
    let portable = functions.get("rs_abs").context("rs_abs")?;

    let (upper, py_upper) = (functions.get("upper").context("upper")?, functions.get("py_upper").context("py_upper")?);
    let measured = tokio::spawn(async move {
        let args: Vec<Value> =
            (0..rows).map(|i| Value::Float(i as f64 * if i % 2 == 0 { -0.5 } else { 0.25 })).collect();
        let all: Vec<&[Value]> = args.iter().map(std::slice::from_ref).collect();
        let words: Vec<Value> = (0..rows / 4).map(|i| Value::string(format!("dev{}", i % 100))).collect();
        let all_words: Vec<&[Value]> = words.iter().map(std::slice::from_ref).collect();
        // The answers agree.
        let ctx = CallContext { rule_id: "bench" };
        let reference = builtin.call_batch(&ctx, &all[..BATCH]).await;
        anyhow::ensure!(native.call_batch(&ctx, &all[..BATCH]).await == reference, "native disagrees");
        anyhow::ensure!(portable.call_batch(&ctx, &all[..BATCH]).await == reference, "portable disagrees");
        let reference = upper.call_batch(&ctx, &all_words[..BATCH]).await;
        anyhow::ensure!(py_upper.call_batch(&ctx, &all_words[..BATCH]).await == reference, "py_upper disagrees");
        // Struct fields are evaluated in the order written: the warm-up comes
        // first, and the floor runs from the same kind of thread as the calls.
        Ok(Measured {
            builtin_rate: rows_per_second(builtin.as_ref(), &all).await,
            native_rate: rows_per_second(native.as_ref(), &all).await,
            portable_rate: rows_per_second(portable.as_ref(), &all).await,
            upper_rate: rows_per_second(upper.as_ref(), &all_words).await,
            py_rate: rows_per_second(py_upper.as_ref(), &all_words).await,
            portable_times: {
                round_trips(portable.as_ref(), calls.min(2000)); // warm-up
                round_trips(portable.as_ref(), calls)
            },
            native_times: round_trips(native.as_ref(), calls),
            py_times: round_trips(py_upper.as_ref(), calls.min(5000)),
            floor_times: crate::tonic_floor::round_trips(calls)?,
        })
    });
    let Measured {
        builtin_rate,
        native_rate,
        portable_rate,
        portable_times,
        native_times,
        upper_rate,
        py_rate,
        py_times,
        floor_times,
    } = measured.await??;

    let payloads = Arc::new(engine::events(events, 1000));
    let rule_builtin = rule_rate(&functions, "abs", "temperature", &payloads).await?;
    let rule_native = rule_rate(&functions, "mx_abs", "temperature", &payloads).await?;
    let rule_portable = rule_rate(&functions, "rs_abs", "temperature", &payloads).await?;
    let rule_upper = rule_rate(&functions, "upper", "deviceId", &payloads).await?;
    let rule_py = rule_rate(&functions, "py_upper", "deviceId", &payloads).await?;
    portable_host.shutdown().await;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    crate::out!(
        "| rs_abs (portable, Rust SDK) vs mx_abs (native) vs abs (built-in) | built-in | native | portable | goal |"
    );
    crate::out!("|---|---|---|---|---|");
    crate::out!(
        "| `call_batch`, {BATCH} rows a call, {rows} rows | {builtin_rate:.0} rows/s | {native_rate:.0} rows/s | {portable_rate:.0} rows/s | portable ≥ 1,000,000 rows/s |"
    );
    crate::out!(
        "| one unbatched call, round trip p50 / p99 ({calls} calls) | | {:.2} µs / {:.2} µs | {:.1} µs / {:.1} µs | portable p50 < 50 µs |",
        us(percentile(&native_times, 0.5)),
        us(percentile(&native_times, 0.99)),
        us(percentile(&portable_times, 0.5)),
        us(percentile(&portable_times, 0.99)),
    );
    crate::out!(
        "| the same exchange with bare tonic on both sides (`tonic_floor`), p50 / p99 | | | {:.1} µs / {:.1} µs | |",
        us(percentile(&floor_times, 0.5)),
        us(percentile(&floor_times, 0.99)),
    );
    crate::out!(
        "| rule `SELECT f(temperature) AS a, deviceId FROM demo`, {events} JSON events | {rule_builtin:.0} events/s | {rule_native:.0} events/s ({:.2}) | {rule_portable:.0} events/s ({:.2}) | |",
        rule_native / rule_builtin,
        rule_portable / rule_builtin
    );
    crate::out!();
    crate::out!("| py_upper (portable, Python SDK) vs upper (built-in) | built-in | portable | goal |");
    crate::out!("|---|---|---|---|");
    crate::out!(
        "| `call_batch`, {BATCH} rows a call, {} rows | {upper_rate:.0} rows/s | {py_rate:.0} rows/s | ≥ 200,000 rows/s |",
        rows / 4
    );
    crate::out!(
        "| one unbatched call, round trip p50 / p99 | | {:.1} µs / {:.1} µs | |",
        us(percentile(&py_times, 0.5)),
        us(percentile(&py_times, 0.99)),
    );
    crate::out!(
        "| rule `SELECT f(deviceId) AS a, deviceId FROM demo`, {events} JSON events | {rule_upper:.0} events/s | {rule_py:.0} events/s ({:.2}) | |",
        rule_py / rule_upper
    );
    let (abs, upper) = ("built-in abs", "built-in upper");
    crate::report::against("portable rs_abs (Rust SDK), call_batch", portable_rate, "rows/s", abs, builtin_rate);
    let p50 = |times: &[std::time::Duration]| us(percentile(times, 0.5));
    crate::report::against(
        "portable rs_abs, one call p50",
        p50(&portable_times),
        "µs",
        "native mx_abs",
        p50(&native_times),
    );
    crate::report::against("portable rs_abs in a rule", rule_portable, "events/s", abs, rule_builtin);
    crate::report::against("portable py_upper (Python SDK), call_batch", py_rate, "rows/s", upper, upper_rate);
    crate::report::against("portable py_upper in a rule", rule_py, "events/s", upper, rule_upper);
    Ok(())
}
