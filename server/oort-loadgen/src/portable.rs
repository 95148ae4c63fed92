//! The portable plugin benchmark: rsdemo's `rs_abs` (Rust SDK, its own process,
//! over the Unix socket) against mathx's native `mx_abs` and the built-in
//! `abs` (the same work), in one run:
//!
//! - rows per second through `Function::call_batch`, [`BATCH`] rows a call
//!   (the portable function sends one `InvokeBatch` per call);
//! - the round trip of one unbatched call (one row), p50 and p99.
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

/// Rows per batch.
const BATCH: usize = 1024;

/// Rows per second through `call_batch`, best of three.
fn rows_per_second(f: &dyn Function, rows: &[&[Value]]) -> f64 {
    let ctx = CallContext { rule_id: "bench" };
    let mut best = 0f64;
    for _ in 0..3 {
        let started = Instant::now();
        for chunk in rows.chunks(BATCH) {
            black_box(f.call_batch(&ctx, chunk));
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

/// Runs the benchmark and prints a markdown table.
pub async fn run(portable_zip: &Path, native_zip: &Path, rows: usize, calls: usize) -> Result<()> {
    let read = |p: &Path| {
        std::fs::read(p).with_context(|| format!("reading {} (run scripts/package-plugins.sh --release)", p.display()))
    };
    let (portable_archive, native_archive) = (read(portable_zip)?, read(native_zip)?);
    let root = tempfile::tempdir()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let native_host = PluginHost::new(root.path().to_owned(), Arc::clone(&functions), Arc::default());
    native_host.install(native_host.unpack("mathx", &native_archive)?)?;
    let portable_host =
        PortableHost::new(root.path().to_owned(), Arc::clone(&functions), Arc::default(), PortableConfig::default())?;
    portable_host.install(portable_host.stage("rsdemo", &portable_archive)?).await?;
    let builtin = functions.get("abs").context("abs")?;
    let native = functions.get("mx_abs").context("mx_abs")?;
    let portable = functions.get("rs_abs").context("rs_abs")?;

    let measured = tokio::spawn(async move {
        let args: Vec<Value> =
            (0..rows).map(|i| Value::Float(i as f64 * if i % 2 == 0 { -0.5 } else { 0.25 })).collect();
        let all: Vec<&[Value]> = args.iter().map(std::slice::from_ref).collect();
        // The answers agree.
        let ctx = CallContext { rule_id: "bench" };
        let reference = builtin.call_batch(&ctx, &all[..BATCH]);
        anyhow::ensure!(native.call_batch(&ctx, &all[..BATCH]) == reference, "native disagrees");
        anyhow::ensure!(portable.call_batch(&ctx, &all[..BATCH]) == reference, "portable disagrees");
        let builtin_rate = rows_per_second(builtin.as_ref(), &all);
        let native_rate = rows_per_second(native.as_ref(), &all);
        let portable_rate = rows_per_second(portable.as_ref(), &all);
        round_trips(portable.as_ref(), calls.min(2000)); // warm-up
        let portable_times = round_trips(portable.as_ref(), calls);
        let native_times = round_trips(native.as_ref(), calls);
        Ok((builtin_rate, native_rate, portable_rate, portable_times, native_times))
    });
    let (builtin_rate, native_rate, portable_rate, portable_times, native_times) = measured.await??;
    portable_host.shutdown().await;

    println!(
        "| rs_abs (portable, Rust SDK) vs mx_abs (native) vs abs (built-in) | built-in | native | portable | goal |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| `call_batch`, {BATCH} rows a call, {rows} rows | {builtin_rate:.0} rows/s | {native_rate:.0} rows/s | {portable_rate:.0} rows/s | portable ≥ 1,000,000 rows/s |"
    );
    println!(
        "| one unbatched call, round trip p50 / p99 ({calls} calls) | | {:.2} µs / {:.2} µs | {:.1} µs / {:.1} µs | portable p50 < 50 µs |",
        percentile(&native_times, 0.5).as_secs_f64() * 1e6,
        percentile(&native_times, 0.99).as_secs_f64() * 1e6,
        percentile(&portable_times, 0.5).as_secs_f64() * 1e6,
        percentile(&portable_times, 0.99).as_secs_f64() * 1e6,
    );
    Ok(())
}
