//! `oort-loadgen`: load generators and end-to-end benchmarks whose figures go
//! into BENCHMARKS.md.
//!
//! - `control-plane` ([`control_plane`]): starts a real `oortd` and measures idle
//!   RSS, start-up time and CreateRule latency, each against a baseline from the
//!   same run.
//! - `engine` ([`engine`]): runs rules in this process on one core and measures
//!   events per second through the real engine, against a pass-through rule.
//! - `publish` ([`publish`]): events/s through `EventService.Publish` into a real
//!   `oortd`, against a pass-through rule.
//! - `native` ([`native`]): the cost of a native plugin function over a built-in
//!   doing the same work, per call, per row in batches, and in a rule.
//! - `portable` ([`portable`]): a portable plugin function (Rust SDK) in
//!   batches and one call at a time, against the same function native and built-in.
//! - `external` ([`external`]): a rule calling an external gRPC function against
//!   a local tonic service, next to a hand-written tonic client of it.
//! - `auth` ([`auth`]): CreateRule latency and Publish throughput with
//!   authentication on, against the same binary with it off.
//! - `latency` ([`latency`]): Publish → TailRule latency through a real `oortd`
//!   at a steady rate, against a GetRule round trip.
//! - `takeover` ([`takeover`]): two `oortd` sharing a catalog in etcd; the time
//!   from the death of a rule's server to the rule running on the other.
//! - `split` ([`split`]): a rule split over a Kafka topic's partitions: the CPU
//!   per event of one of two `oortd` against one alone, and the time from the
//!   death of one to its partitions producing again.
//! - `compare` ([`report::compare`]): one of the benchmarks above that takes
//!   `--oortd`, on two builds alternately, each figure against the other's.
//!
//! With `--json`, the tables go to stderr and stdout gets the run's figures as
//! one JSON document ([`report`]).

#[macro_use]
mod report;

mod auth;
mod clients;
mod control_plane;
mod engine;
mod external;
mod file_sink;
mod file_source;
mod isolation;
mod latency;
mod native;
mod portable;
mod publish;
mod split;
mod takeover;
mod tonic_floor;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generators and end-to-end benchmarks of Oort")]
struct Args {
    /// Print the figures as one JSON document on stdout (the tables go to stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Idle RSS, start-up time and CreateRule latency of the control plane.
    ControlPlane {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// How many rules to create.
        #[arg(long, default_value_t = 10_000)]
        rules: usize,
        /// How many start-ups to time for each catalog size (the median is reported).
        #[arg(long, default_value_t = 5)]
        startups: usize,
        /// Keep the catalog in this (new or empty) directory instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The client scenario (stream, rule, 1,000 events, tail) through the Rust,
    /// Python, Go and TypeScript clients against one oortd.
    Clients {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Rounds on one client: the first is cold, the best of the others
        /// counts, and the median of the last half (Node.js's JIT needs tens of
        /// rounds to settle).
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        /// Passes over all the clients, one after the other; the best warm round of all passes counts.
        #[arg(long, default_value_t = 4)]
        passes: usize,
    },
    /// Publish → TailRule latency through a real oortd at a steady rate.
    Latency {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Events per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Events to send.
        #[arg(long, default_value_t = 50_000)]
        events: usize,
    },
    /// The cost of authentication: CreateRule p99 and Publish throughput, auth on against off.
    Auth {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Rounds of each configuration, interleaved (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Rules to create (CreateRule latency).
        #[arg(long, default_value_t = 2_000)]
        rules: usize,
        /// Events of the batched Publish run (a tenth of it one a request).
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events a request in the batched run.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Events per second through EventService.Publish into a real oortd.
    Publish {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Events per measured run.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events a request in the batched runs (PublishRequest.events).
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// A native plugin function (mathx's mx_abs) against the built-in abs, on one core.
    Native {
        /// The packaged mathx plugin (scripts/package-plugins.sh --release).
        #[arg(long, default_value = "target/plugins/mathx.zip")]
        plugin: PathBuf,
        /// Calls per micro-benchmark.
        #[arg(long, default_value_t = 2_000_000)]
        calls: usize,
        /// Events per rule run.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// A portable plugin function (rsdemo's rs_abs) against native mx_abs and built-in abs.
    Portable {
        /// The packaged portable rsdemo plugin (scripts/package-plugins.sh --release).
        #[arg(long, default_value = "target/plugins/rsdemo-portable.zip")]
        plugin: PathBuf,
        /// The packaged mathx plugin, for the native figure.
        #[arg(long, default_value = "target/plugins/mathx.zip")]
        native: PathBuf,
        /// Rows per batched run.
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// Unbatched calls timed for the latency figure.
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// The packaged Python SDK example (scripts/package-plugins.sh).
        #[arg(long, default_value = "target/plugins/pydemo.zip")]
        python_plugin: PathBuf,
        /// The Python that runs it: one with grpcio (plugins/python/test.sh makes this venv).
        #[arg(long, default_value = "plugins/python/.venv/bin/python")]
        python: String,
        /// JSON events of each rule run.
        #[arg(long, default_value_t = 500_000)]
        events: usize,
    },

    /// Calls per second of an external gRPC function (rule and direct) against a hand-written tonic client.
    External {
        /// Calls per measured run.
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// Rounds of every run, interleaved; the summary pools the calls of all of them.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Events a batch of `Function::call_batch` (the engine takes up to 256 at once).
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Runs only this phase, `rounds` times (to profile it with perf or strace).
        #[arg(long, value_enum)]
        only: Option<external::Phase>,
    },
    /// The file source on a file of JSON lines: events/s and peak RSS, against a previous build.
    FileSource {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Another oortd to measure in the same run, the baseline (the previous build).
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Lines of the file.
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
        /// Runs of each build, interleaved (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The `file` sink against the `memory` sink: the time and CPU to write every result of a file.
    FileSink {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Results (lines of the input file).
        #[arg(long, default_value_t = 200_000)]
        lines: usize,
        /// Runs of each sink, interleaved (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// A rule's throughput alone and beside a rule whose sink answers in 100 ms, on one stream.
    Isolation {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Events per measured run.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events a Publish request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Runs of each case, interleaved (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Two oortd sharing a catalog in a real etcd: the time from kill -9 of a
    /// rule's server to the rule running on the other.
    Takeover {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Takeovers to measure, each with two new servers (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// A rule split over a Kafka topic's partitions by two oortd sharing a
    /// catalog in etcd: CPU per event against one oortd alone, and the time
    /// from kill -9 of one to its partitions producing again.
    Split {
        /// The oortd binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Events in the topic, read by each run.
        #[arg(long, default_value_t = 400_000)]
        events: usize,
        /// Runs of each case, and takeovers (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Runs a benchmark that takes --oortd on two builds, alternately, and sets
    /// the median of each figure of one against the other's.
    #[command(after_help = "Example:\n  \
        oort-loadgen compare --baseline /tmp/oortd-before --rounds 3 -- file-sink --lines 100000")]
    Compare {
        /// The baseline build's oortd (the previous commit's, say).
        #[arg(long)]
        baseline: PathBuf,
        /// The build measured against it.
        #[arg(long, default_value = "target/release/oortd")]
        oortd: PathBuf,
        /// Runs on each build.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The benchmark and its arguments, after `--`, without --oortd.
        #[arg(last = true, required = true)]
        bench: Vec<String>,
    },
    /// Events per second through the engine on one core.
    Engine {
        /// Events per measured run.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Distinct deviceId values (GROUP BY keys).
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.json {
        report::set_json();
    }
    run(args.command)?;
    report::finish()
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Compare { baseline, oortd, rounds, bench } => report::compare(&baseline, &oortd, rounds, &bench),
        Cmd::Takeover { oortd, rounds } => tokio::runtime::Runtime::new()?.block_on(takeover::run(&oortd, rounds)),
        Cmd::Split { oortd, events, rounds } => {
            tokio::runtime::Runtime::new()?.block_on(split::run(&oortd, events, rounds))
        }
        Cmd::ControlPlane { oortd, rules, startups, data_dir } => {
            tokio::runtime::Runtime::new()?.block_on(control_plane::run(&oortd, rules, startups, data_dir))
        }
        Cmd::Auth { oortd, rounds, rules, events, batch } => {
            tokio::runtime::Runtime::new()?.block_on(auth::run(&oortd, rounds, rules, events, batch))
        }
        Cmd::FileSource { oortd, previous, lines, rounds } => {
            tokio::runtime::Runtime::new()?.block_on(file_source::run(&oortd, previous.as_deref(), lines, rounds))
        }
        Cmd::FileSink { oortd, lines, rounds } => {
            tokio::runtime::Runtime::new()?.block_on(file_sink::run(&oortd, lines, rounds))
        }
        Cmd::Isolation { oortd, events, batch, rounds } => {
            tokio::runtime::Runtime::new()?.block_on(isolation::run(&oortd, events, batch, rounds))
        }
        Cmd::Publish { oortd, events, batch } => {
            tokio::runtime::Runtime::new()?.block_on(publish::run(&oortd, events, batch))
        }
        Cmd::Clients { oortd, rounds, passes } => {
            tokio::runtime::Runtime::new()?.block_on(clients::run(&oortd, rounds, passes))
        }
        Cmd::Latency { oortd, rate, events } => {
            tokio::runtime::Runtime::new()?.block_on(latency::run(&oortd, rate, events))
        }
        Cmd::Native { plugin, calls, events } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(native::run(&plugin, calls, events)),
        Cmd::Portable { plugin, native, rows, calls, python_plugin, python, events } => {
            // The plugin runs in its own folder: a relative interpreter path would not resolve
            // there. Made absolute, not canonical: a venv's python is a symlink that must stay one.
            let python = match std::path::absolute(&python) {
                Ok(path) if python.contains('/') => path.display().to_string(),
                _ => python,
            };
            let plugins =
                portable::Plugins { rust: &plugin, native: &native, python: &python_plugin, interpreter: &python };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(portable::run(plugins, rows, calls, events))
        }
        Cmd::External { calls, rounds, batch, only } => external::run(calls, rounds, batch, only),
        // One core: the engine's figures are per core, so its runtime has one thread.
        Cmd::Engine { events, keys } => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(engine::run(events, keys))
        }
    }
}
