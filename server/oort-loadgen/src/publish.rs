//! Throughput through `EventService.Publish`: one client streams pre-built
//! events as fast as the server takes them into a `TYPE="grpc"` stream read by
//! the filter+project rule, in a real `oortd`. The baseline is the same events
//! through a pass-through rule on another stream, in the same run. The same
//! filter at qos 1 (its stream journaled, a checkpoint every second) is
//! measured against the filter at qos 0.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetRuleStatusRequest, PublishRequest, Rule, Value,
};

use crate::control_plane::Server;

/// `count` events in requests of `batch` events each.
fn requests(stream: &str, count: usize, batch: usize) -> Vec<PublishRequest> {
    let events: Vec<Event> = (0..count)
        .map(|i| {
            let fields = [
                ("temperature", Kind::FloatValue((i * 7919 % 4000) as f64 / 100.0)),
                ("humidity", Kind::IntValue((i % 100) as i64)),
                ("deviceId", Kind::StringValue(format!("dev{}", i % 10_000))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value { kind: Some(v) }))
            .collect();
            Event { fields, ..Default::default() }
        })
        .collect();
    events
        .chunks(batch.max(1))
        .map(|chunk| PublishRequest { stream: stream.into(), events: chunk.to_vec(), ..Default::default() })
        .collect()
}

/// Publishes the events into `stream` and waits until rule `rule`'s decoder has seen them all.
/// Returns events/s and the server's CPU time per event in µs.
pub(crate) async fn measure(
    server: &Server,
    stream: &str,
    rule: &str,
    count: usize,
    batch: usize,
) -> Result<(f64, f64)> {
    let channel = server.channel().await?;
    let batch = requests(stream, count, batch);
    let mut rules = RuleServiceClient::new(channel.clone());
    // The counter is the rule's since it started: earlier runs count too.
    let before = decoded(&mut rules, rule).await?;
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    EventServiceClient::new(channel.clone()).publish(tokio_stream::iter(batch)).await?;
    loop {
        let seen = decoded(&mut rules, rule).await? - before;
        if seen >= count as u64 {
            let rate = count as f64 / started.elapsed().as_secs_f64();
            let cpu = (server.cpu_time()? - cpu_before).as_secs_f64() * 1e6 / count as f64;
            return Ok((rate, cpu));
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{rule} saw {seen} of {count} events after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Events rule `rule`'s decoder has received since the rule started.
async fn decoded(rules: &mut RuleServiceClient<crate::control_plane::AuthChannel>, rule: &str) -> Result<u64> {
    let status = rules.get_rule_status(GetRuleStatusRequest { id: rule.into() }).await?.into_inner();
    Ok(status.operators.iter().find(|o| o.name == "op_decoder_0").map_or(0, |o| o.records_in_total))
}

/// Prints events/s through Publish for a pass-through and a filter+project
/// rule, one event a request and `batch` events a request.
pub async fn run(binary: &Path, count: usize, batch: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start(binary, &dir.path().join("data")).await?;
    create_rules(&server).await?;
    let runs = [
        ("pass-through `SELECT * FROM base`, one event a request (baseline)".to_owned(), "base", "pass", 1),
        ("filter + project, one event a request".to_owned(), "demo", "filter", 1),
        (format!("pass-through, {batch} events a request"), "base", "pass", batch),
        (format!("filter + project, {batch} events a request"), "demo", "filter", batch),
        (format!("filter + project at qos 1 (journaled), {batch} events a request"), "journaled", "filter_qos1", batch),
    ];
    let mut rows = Vec::new();
    for (label, stream, rule, batch) in runs {
        rows.push((label, measure(&server, stream, rule, count, batch).await?));
    }
    server.stop()?;
    crate::out!(
        "| through EventService.Publish ({count} events, one client stream) | events/s | ratio to baseline | server CPU a event |"
    );
    crate::out!("|---|---|---|---|");
    let baseline = rows[0].1.0;
    let journaled = rows[4].1.0 / rows[3].1.0;
    for (label, (rate, cpu)) in rows {
        crate::out!("| {label} | {rate:.0} | {:.2} | {cpu:.2} µs |", rate / baseline);
        crate::report::against(format!("Publish: {label}"), rate, "events/s", "pass-through", baseline);
    }
    crate::out!("\nThe filter at qos 1 (journal on) against qos 0, {batch} events a request: {journaled:.2}");
    Ok(())
}

/// The streams `base`, `demo` and `journaled` (`TYPE="grpc"`) and the rules
/// `pass`, `filter` and `filter_qos1` (qos 1: its stream is journaled)
/// reading them, into memory sinks.
pub(crate) async fn create_rules(server: &Server) -> Result<()> {
    let channel = server.channel().await?;
    let mut streams = StreamServiceClient::new(channel.clone());
    let mut rules = RuleServiceClient::new(channel.clone());
    let filter = "SELECT temperature * 1.8 + 32 AS f, deviceId FROM";
    for (stream, rule, sql, qos) in [
        ("base", "pass", "SELECT * FROM base".to_owned(), 0),
        ("demo", "filter", format!("{filter} demo WHERE temperature > 20"), 0),
        ("journaled", "filter_qos1", format!("{filter} journaled WHERE temperature > 20"), 1),
    ] {
        let ddl = format!(
            r#"CREATE STREAM {stream} (temperature FLOAT, humidity BIGINT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="{stream}")"#
        );
        streams.create_stream(CreateStreamRequest { sql: ddl }).await?;
        let props = prost_types::Struct {
            fields: [(
                "topic".to_owned(),
                prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(rule.into())) },
            )]
            .into_iter()
            .collect(),
        };
        let rule = Rule {
            id: rule.into(),
            sql,
            actions: vec![Action { r#type: "memory".into(), props: Some(props) }],
            // Every event is counted: the rule waits rather than drops.
            options: Some(oort_proto::v1::RuleOptions {
                buffer_full: oort_proto::v1::BufferFull::Block as i32,
                qos,
                checkpoint_interval_ms: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        };
        rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    }
    Ok(())
}
