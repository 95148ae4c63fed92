//! The client scenario of issue 7, timed through each client against the same
//! `oortd`: CreateStream, CreateRule, TailRule, 1,000 events in one Publish,
//! until the 1,000th result comes back. Rust (`oort-proto`, in process) is the
//! baseline; Python, Go and TypeScript run `clients/bench/`'s programs, which
//! print their own elapsed milliseconds per round (so interpreter start-up is
//! not counted), several rounds on one client.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, DeleteRuleRequest, DeleteStreamRequest, Event, PublishRequest,
    Rule, TailRuleRequest, Value,
};

use crate::control_plane::Server;

const EVENTS: i64 = 1000;

/// The scenario with the Rust client; milliseconds.
async fn rust(server: &Server, name: &str) -> Result<f64> {
    let channel = server.channel().await?;
    let started = Instant::now();
    let sql = format!(r#"CREATE STREAM {name} (t BIGINT) WITH (TYPE="grpc", DATASOURCE="{name}")"#);
    StreamServiceClient::new(channel.clone()).create_stream(CreateStreamRequest { sql }).await?;
    let mut rules = RuleServiceClient::new(channel.clone());
    let rule = Rule {
        id: name.into(),
        sql: format!("SELECT t FROM {name}"),
        actions: vec![Action { r#type: "grpc".into(), props: None }],
        // Every event is counted: the rule waits rather than drops.
        options: Some(oort_proto::v1::RuleOptions {
            buffer_full: oort_proto::v1::BufferFull::Block as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    // As the other clients do: up to 256 events a message, both ways.
    let mut tail =
        rules.tail_rule(TailRuleRequest { id: name.into(), max_batch: 256, ..Default::default() }).await?.into_inner();
    let events: Vec<Event> = (0..EVENTS)
        .map(|i| {
            let fields = [("t".to_owned(), Value { kind: Some(Kind::IntValue(i)) })].into_iter().collect();
            Event { fields, ..Default::default() }
        })
        .collect();
    let requests: Vec<PublishRequest> = events
        .chunks(256)
        .map(|batch| PublishRequest {
            stream: name.into(),
            event: Some(batch[0].clone()),
            events: batch[1..].to_vec(),
            ..Default::default()
        })
        .collect();
    EventServiceClient::new(channel.clone()).publish(tokio_stream::iter(requests)).await?;
    let mut i = 0;
    while i < EVENTS {
        for event in tail.message().await?.context("the tail ended")?.events {
            let t = event.fields.get("t").cloned().and_then(|v| v.kind);
            if t != Some(Kind::IntValue(i)) {
                bail!("result {i}: {t:?}");
            }
            i += 1;
        }
    }
    let elapsed = started.elapsed();
    // Untimed: every round starts from the same catalog.
    drop(tail);
    rules.delete_rule(DeleteRuleRequest { id: name.into() }).await?;
    StreamServiceClient::new(channel).delete_stream(DeleteStreamRequest { name: name.into() }).await?;
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// Runs one client program; the milliseconds of each round it printed.
fn program(command: &mut Command) -> Result<Vec<f64>> {
    let output = command
        .env("OORT_TOKEN", crate::control_plane::TOKEN)
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().map(|line| line.trim().parse().with_context(|| format!("{command:?} printed {text:?}"))).collect()
}

/// The names of the clients, in the order they run.
const CLIENTS: [&str; 4] = [
    "Rust (oort-proto, tonic)",
    "Python (oort-client, grpcio)",
    "Go (clients/go, grpc-go)",
    "TypeScript (connect-node)",
];

/// Prints the table: per client, its first round (cold: it connects and loads
/// its code), the best of the other rounds (warm) over all passes, the warm
/// ratio to Rust, and that ratio in each pass; then the median of the last
/// half of each pass's rounds (steady: a JIT, V8's or Python's caches, has
/// had the first half to settle) and its ratio. A pass runs every client in
/// turn, `rounds` rounds each, so a disturbance of the machine during one
/// client's rounds shows as one pass out of line rather than as the figure.
pub async fn run(binary: &Path, rounds: usize, passes: usize) -> Result<()> {
    anyhow::ensure!(rounds >= 2, "--rounds must be at least 2: a cold round, then warm ones");
    anyhow::ensure!(passes >= 1, "--passes must be at least 1");
    let root = std::env::current_dir()?;
    let bench = root.join("clients/bench");
    let python = root.join("clients/python/.venv/bin/python");
    let go = bench.join("go/scenario");
    let status = Command::new("go").args(["build", "-o"]).arg(&go).arg(".").current_dir(bench.join("go")).status()?;
    anyhow::ensure!(status.success(), "go build of clients/bench/go failed");
    let typescript = root.join("clients/typescript");
    let status = Command::new("npm").args(["run", "--silent", "build"]).current_dir(&typescript).status()?;
    anyhow::ensure!(status.success(), "npm run build in clients/typescript failed (run npm ci there first)");
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start(binary, &dir.path().join("data")).await?;
    let addr = server.addr().to_owned();
    let n = rounds.to_string();

    // times[pass][client][round]
    let mut times: Vec<[Vec<f64>; 4]> = Vec::with_capacity(passes);
    for pass in 0..passes {
        let mut rust_rounds = Vec::with_capacity(rounds);
        for round in 0..rounds {
            rust_rounds.push(rust(&server, &format!("rs{pass}_{round}")).await?);
        }
        let name = |client: &str| format!("{client}{pass}");
        let python = program(Command::new(&python).arg(bench.join("scenario.py")).args([&addr, &name("py"), &n]))?;
        let go = program(Command::new(&go).args([&addr, &name("go"), &n]))?;
        let ts = program(Command::new("node").arg(bench.join("scenario.mjs")).args([&addr, &name("ts"), &n]))?;
        for (client, rounds_of) in CLIENTS.iter().zip([&rust_rounds, &python, &go, &ts]) {
            anyhow::ensure!(rounds_of.len() == rounds, "{client}: {} rounds, not {rounds}", rounds_of.len());
        }
        times.push([rust_rounds, python, go, ts]);
    }
    let warm = |times: &[f64]| times[1..].iter().copied().fold(f64::MAX, f64::min);
    let best = |client: usize| times.iter().map(|pass| warm(&pass[client])).fold(f64::MAX, f64::min);
    let steady = |client: usize| {
        let mut last_halves: Vec<f64> = times.iter().flat_map(|pass| pass[client][rounds / 2..].to_vec()).collect();
        last_halves.sort_by(f64::total_cmp);
        last_halves[last_halves.len() / 2]
    };
    let (baseline, steady_baseline) = (best(0), steady(0));
    crate::out!(
        "| client | first round (cold) | best warm round of {passes} passes × {} | warm ratio to Rust | ratio in each pass | \
         median of the last {} rounds of each pass | its ratio to Rust | goal |",
        rounds - 1,
        rounds - rounds / 2
    );
    crate::out!("|---|---|---|---|---|---|---|---|");
    for (client, name) in CLIENTS.iter().enumerate() {
        let each: Vec<String> =
            times.iter().map(|pass| format!("{:.2}", warm(&pass[client]) / warm(&pass[0]))).collect();
        crate::out!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} | {} | {:.1} ms | {:.2} | ≤ 2 |",
            times[0][client][0],
            best(client),
            best(client) / baseline,
            each.join(" · "),
            steady(client),
            steady(client) / steady_baseline,
        );
        let figure = format!("clients scenario, {name}: median of the last rounds");
        crate::report::against(figure, steady(client), "ms", "Rust client", steady_baseline);
    }
    Ok(())
}
