//! End-to-end latency: events published with `EventService.Publish` at a
//! steady rate, read back with `RuleService.TailRule`, through a real `oortd`.
//! Each event carries the time it was sent; the latency is the time its result
//! arrives. The baseline is a GetRule round trip measured in the same run.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetRuleRequest, PublishRequest, Rule, TailRuleRequest, Value,
};

use crate::control_plane::{Server, percentiles};

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Publishes `events` at `rate` events/s and prints latency percentiles.
pub async fn run(binary: &Path, rate: u64, events: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start(binary, &dir.path().join("data")).await?;
    let channel = server.channel().await?;
    StreamServiceClient::new(channel.clone())
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM demo (temperature FLOAT, deviceId STRING, sent BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#.into(),
        })
        .await?;
    let mut rules = RuleServiceClient::new(channel.clone());
    let rule = Rule {
        id: "latency".into(),
        sql: "SELECT temperature * 1.8 + 32 AS f, deviceId, sent FROM demo WHERE temperature > 20".into(),
        actions: vec![Action { r#type: "grpc".into(), props: None }],
        // Every event is counted: the rule waits rather than drops.
        options: Some(oort_proto::v1::RuleOptions {
            buffer_full: oort_proto::v1::BufferFull::Block as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    let mut tail = rules.tail_rule(TailRuleRequest { id: "latency".into(), ..Default::default() }).await?.into_inner();

    let receiver = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(events);
        while samples.len() < events {
            let Ok(Some(message)) = tail.message().await else { break };
            let received = now_ns();
            let sent = message.event.and_then(|e| e.fields.get("sent").cloned()).and_then(|v| match v.kind {
                Some(Kind::IntValue(ns)) => Some(ns),
                _ => None,
            });
            if let Some(sent) = sent {
                samples.push(Duration::from_nanos((received - sent).max(0) as u64));
            }
        }
        samples
    });

    // One long client stream, paced: an event every 1/rate seconds.
    let (tx, rx) = tokio::sync::mpsc::channel::<PublishRequest>(1024);
    let mut publisher = EventServiceClient::new(channel.clone());
    let publishing =
        tokio::spawn(async move { publisher.publish(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let started = Instant::now();
    for i in 0..events {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let fields = [
            ("temperature", Kind::FloatValue(25.0)),
            ("deviceId", Kind::StringValue(format!("dev{}", i % 100))),
            ("sent", Kind::IntValue(now_ns())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value { kind: Some(v) }))
        .collect();
        let event = Event { fields, ..Default::default() };
        tx.send(PublishRequest { stream: "demo".into(), event: Some(event), ..Default::default() })
            .await
            .context("publish stream closed")?;
    }
    drop(tx);
    publishing.await??;
    let mut samples =
        tokio::time::timeout(Duration::from_secs(30), receiver).await.context("results within 30 s")??;

    let mut baseline = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        rules.get_rule(GetRuleRequest { id: "latency".into() }).await?;
        baseline.push(t.elapsed());
    }
    server.stop()?;
    let (lat, base) = (percentiles(&mut samples), percentiles(&mut baseline));
    crate::out!(
        "| Publish → TailRule at {rate} events/s ({} results) | value | baseline: GetRule round trip | ratio |",
        samples.len()
    );
    crate::out!("|---|---|---|---|");
    crate::out!("| p50 | {:.0} µs | {:.0} µs | {:.2} |", lat.p50, base.p50, lat.p50 / base.p50);
    crate::out!("| p99 | {:.0} µs | {:.0} µs | {:.2} |", lat.p99, base.p99, lat.p99 / base.p99);
    crate::out!("| max | {:.0} µs | {:.0} µs | |", lat.max, base.max);
    crate::report::against(
        format!("Publish → TailRule p50 at {rate} events/s"),
        lat.p50,
        "µs",
        "GetRule p50",
        base.p50,
    );
    crate::report::against(
        format!("Publish → TailRule p99 at {rate} events/s"),
        lat.p99,
        "µs",
        "GetRule p99",
        base.p99,
    );
    Ok(())
}
