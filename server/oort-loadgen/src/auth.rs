//! The cost of authentication: CreateRule latency and Publish throughput of
//! the same `oortd` binary with authentication on (a bearer token checked on
//! every call, as it ships) and off (`auth = false`), in interleaved rounds of
//! the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::median;
use anyhow::Result;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{Action, CreateRuleRequest, CreateStreamRequest, Rule};

use crate::control_plane::{Server, percentiles};
use crate::publish;

/// The figures measured, with their units; a server's samples are in this order.
const FIGURES: [(&str, &str); 4] = [
    ("CreateRule p50", "µs"),
    ("CreateRule p99", "µs"),
    ("Publish, 1 event a request", "events/s"),
    ("Publish, batched", "events/s"),
];

/// One configuration's samples of each figure, one per round.
type Figures = [Vec<f64>; FIGURES.len()];

/// CreateRule p50/p99 over `rules` rules, then events/s through Publish one
/// event a request and `batch` a request.
async fn measure(
    binary: &Path,
    auth: bool,
    rules: usize,
    events: usize,
    batch: usize,
    into: &mut Figures,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start_with(binary, &dir.path().join("data"), auth).await?;
    let channel = server.channel().await?;
    let sql = r#"CREATE STREAM rules_in (temperature FLOAT) WITH (DATASOURCE="rules_in", TYPE="memory")"#;
    StreamServiceClient::new(channel.clone()).create_stream(CreateStreamRequest { sql: sql.into() }).await?;
    let mut client = RuleServiceClient::new(channel);
    let mut samples: Vec<Duration> = Vec::with_capacity(rules);
    for i in 0..rules {
        let rule = Rule {
            id: format!("r{i:05}"),
            sql: format!("SELECT temperature FROM rules_in WHERE temperature > {i}"),
            actions: vec![Action { r#type: "log".into(), props: None }],
            ..Default::default()
        };
        let started = Instant::now();
        client.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
        samples.push(started.elapsed());
    }
    let create = percentiles(&mut samples);
    publish::create_rules(&server).await?;
    let single = publish::measure(&server, "base", "pass", events / 10, 1).await?.0;
    let batched = publish::measure(&server, "base", "pass", events, batch).await?.0;
    for (samples, value) in into.iter_mut().zip([create.p50, create.p99, single, batched]) {
        samples.push(value);
    }
    server.stop()
}

/// Prints one table: auth on against auth off, medians over `rounds`.
pub async fn run(binary: &Path, rounds: usize, rules: usize, events: usize, batch: usize) -> Result<()> {
    let (mut on, mut off) = (Figures::default(), Figures::default());
    for round in 0..rounds {
        // Alternate which goes first, so that drift in the machine hits both alike.
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for auth in order {
            let figures = if auth { &mut on } else { &mut off };
            measure(binary, auth, rules, events, batch, figures).await?;
        }
    }
    crate::out!("| figure (median of {rounds} rounds) | auth on | auth off (baseline) | ratio |");
    crate::out!("|---|---|---|---|");
    for (i, (label, unit)) in FIGURES.into_iter().enumerate() {
        let (a, b) = (median(&mut on[i]), median(&mut off[i]));
        crate::out!("| {label} | {a:.0} {unit} | {b:.0} {unit} | {:.3} |", a / b);
        crate::report::against(format!("{label}, auth on"), a, unit, "auth off", b);
    }
    Ok(())
}
