//! The `file` source through a real oortd: events/s and peak RSS reading a
//! file of JSON lines, for this build and, in the same run, another (the
//! previous one), each on a fresh server.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::median;
use anyhow::{Result, bail};
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{Action, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest, Rule};

use tempfile::TempDir;

use crate::control_plane::{AuthChannel, Server};

/// What one server did with the file.
struct Reading {
    events_per_second: f64,
    /// Peak RSS above the idle server's, in MiB.
    peak_growth_mib: f64,
}

/// Writes `lines` JSON lines (about 80 bytes each) to `path`.
pub(crate) fn write_events(path: &Path, lines: usize) -> Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (i, event) in crate::engine::events(lines, 10_000).into_iter().enumerate() {
        out.write_all(&event)?;
        writeln!(out, "{}", if i % 2 == 0 { "" } else { " " })?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// A fresh server of `binary` whose stream `f` reads `content` (its
/// `files/events.jsonl`), its data directory, and a rule client.
pub(crate) async fn serve_file(
    binary: &Path,
    content: &Path,
) -> Result<(TempDir, Server, RuleServiceClient<AuthChannel>)> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("files"))?;
    std::fs::hard_link(content, data.join("files/events.jsonl"))
        .or_else(|_| std::fs::copy(content, data.join("files/events.jsonl")).map(drop))?;
    let (server, _) = Server::start(binary, &data).await?;
    let channel = server.channel().await?;
    let ddl = r#"CREATE STREAM f (temperature FLOAT, humidity BIGINT, deviceId STRING) WITH (TYPE="file", DATASOURCE="events.jsonl")"#;
    StreamServiceClient::new(channel.clone()).create_stream(CreateStreamRequest { sql: ddl.into() }).await?;
    Ok((dir, server, RuleServiceClient::new(channel)))
}

/// Starts `binary`, reads the file with a filter rule, returns its figures.
async fn read_with(binary: &Path, lines: usize, content: &Path) -> Result<Reading> {
    let (_dir, server, mut rules) = serve_file(binary, content).await?;
    let idle = server.rss_kib()?;
    let rule = Rule {
        id: "read".into(),
        sql: "SELECT temperature * 1.8 + 32 AS f, deviceId FROM f WHERE temperature > 20".into(),
        actions: vec![Action { r#type: "memory".into(), props: Some(topic("out")) }],
        ..Default::default()
    };
    let started = Instant::now();
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    loop {
        let status = rules.get_rule_status(GetRuleStatusRequest { id: "read".into() }).await?.into_inner();
        let seen = status.operators.iter().find(|o| o.name == "op_filter_0").map_or(0, |o| o.records_in_total);
        if seen >= lines as u64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the filter saw {seen} of {lines} events after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let peak = server.peak_rss_kib()?;
    server.stop()?;
    Ok(Reading {
        events_per_second: lines as f64 / elapsed.as_secs_f64(),
        peak_growth_mib: peak.saturating_sub(idle) as f64 / 1024.0,
    })
}

fn topic(name: &str) -> prost_types::Struct {
    let value = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(name.into())) };
    prost_types::Struct { fields: [("topic".to_owned(), value)].into() }
}

/// Prints the figures of `binary` and of `previous` (if given), `rounds`
/// runs each interleaved, as a markdown table (medians).
pub async fn run(binary: &Path, previous: Option<&Path>, lines: usize, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let content = dir.path().join("events.jsonl");
    let bytes = write_events(&content, lines)?;
    let builds: Vec<(&str, &Path)> =
        previous.map(|p| ("previous build (baseline)", p)).into_iter().chain([("this build", binary)]).collect();
    let mut figures: Vec<Vec<Reading>> = builds.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((_, path), runs) in builds.iter().zip(&mut figures) {
            runs.push(read_with(path, lines, &content).await?);
        }
    }
    crate::out!(
        "| file source, {lines} JSON lines ({:.0} MB), filter rule, median of {rounds} | events/s | ratio | peak RSS growth |",
        bytes as f64 / 1e6
    );
    crate::out!("|---|---|---|---|");
    let medians: Vec<(f64, f64)> = figures
        .iter_mut()
        .map(|runs| {
            let mut rates: Vec<f64> = runs.iter().map(|r| r.events_per_second).collect();
            let mut growths: Vec<f64> = runs.iter().map(|r| r.peak_growth_mib).collect();
            (median(&mut rates), median(&mut growths))
        })
        .collect();
    for ((label, _), (rate, growth)) in builds.iter().zip(&medians) {
        crate::out!("| {label} | {rate:.0} | {:.2} | {growth:.0} MiB |", rate / medians[0].0);
        crate::report::figure(format!("file source, {lines} JSON lines: {label}"), *rate, "events/s");
        crate::report::figure(format!("file source, {lines} JSON lines: {label}, peak RSS growth"), *growth, "MiB");
    }
    Ok(())
}
