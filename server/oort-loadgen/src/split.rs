//! `split`: a rule split over a Kafka topic's partitions (docs/scaling.md),
//! with a real etcd and a real Kafka (KRaft, `scripts/install-brokers.sh`).
//!
//! - CPU per event: one `oortd` alone (its own catalog) reads a topic of
//!   four partitions through a keyed window rule; then two `oortd` sharing a
//!   catalog in etcd read the same topic through the same rule (a new
//!   consumer group), each on the partitions the group gives it. Each one's
//!   CPU time per event it read is set against the single server's.
//! - Takeover: while events are produced, one of two `oortd` running a split
//!   rule is killed (`kill -9`); the time until events of its partitions,
//!   produced after its death, come out of the other.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oort_connectors::testing::KafkaBroker;
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{
    Action, Connection, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest, Rule,
};
use prost_types::value::Kind;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use crate::control_plane::Server;
use crate::report::median;

const PARTITIONS: i32 = 4;
const DEVICES: usize = 64;
/// The rule measured: a keyed window, grouped by the stream's partition key.
const WINDOW_RULE: &str = "SELECT device, count(*) AS c, avg(v) AS mean FROM readings \
                           GROUP BY device, TUMBLINGWINDOW(ss, 1)";

/// Measures the CPU per event `rounds` times over `events` events, then
/// `rounds` takeovers.
pub async fn run(binary: &Path, events: usize, rounds: usize) -> Result<()> {
    let etcd = oort_testkit::etcd::EtcdServer::start();
    let broker = KafkaBroker::start().await;

    let (mut single, mut split) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        single.push(cpu_alone(binary, &broker, events, round).await?);
        split.push(cpu_split(binary, &broker, &etcd.endpoint, events, round).await?);
    }
    let mut takeovers = Vec::new();
    for round in 0..rounds {
        takeovers.push(takeover(binary, &broker, &etcd.endpoint, round).await?);
    }
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / events as f64;
    let single_ns = median(&mut single.iter().map(|d| ns(*d)).collect::<Vec<_>>());
    let per_instance: Vec<f64> =
        split.iter().flatten().map(|(cpu, read)| cpu.as_secs_f64() * 1e9 / *read as f64).collect();
    let split_ns = median(&mut per_instance.clone());
    let taken = median(&mut takeovers.clone());
    crate::out!(
        "| a keyed window rule over a topic of {PARTITIONS} partitions, {events} events, {rounds} rounds | value |"
    );
    crate::out!("|---|---|");
    crate::out!("| one oortd alone, CPU per event (median) | {single_ns:.0} ns |");
    crate::out!("| one of two oortd splitting the topic, CPU per event it read (median) | {split_ns:.0} ns |");
    crate::out!(
        "| each instance | {} |",
        per_instance.iter().map(|n| format!("{n:.0} ns")).collect::<Vec<_>>().join(" · ")
    );
    crate::out!("| from `kill -9` of one of two to its partitions producing again (median) | {taken:.2} s |");
    crate::out!("| each round | {} |", takeovers.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(" · "));
    crate::report::against(
        "CPU per event of one of two oortd splitting a topic",
        split_ns,
        "ns",
        "one oortd alone on the same input",
        single_ns,
    );
    crate::report::against(
        "kill -9 of one of two oortd to its partitions producing again",
        taken,
        "s",
        "the goal",
        10.0,
    );
    Ok(())
}

async fn create_topic(broker: &KafkaBroker, name: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker.address()).create()?;
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    for created in admin.create_topics([&topic], &AdminOptions::new()).await? {
        created.map_err(|(topic, e)| anyhow::anyhow!("cannot create {topic}: {e}"))?;
    }
    Ok(())
}

/// Produces readings `range` keyed by device, each with `sent` (ms since the
/// Unix epoch), queued at once and then awaited.
async fn produce(broker: &KafkaBroker, topic: &str, range: std::ops::Range<usize>, sent: i64) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()?;
    let mut deliveries = Vec::with_capacity(range.len());
    for i in range {
        let (key, payload) = reading(i, sent);
        let mut record = FutureRecord::to(topic).payload(&payload).key(&key);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                // The producer's queue is full: let it drain.
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await.context("the producer went away")?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Reading `i`: its key (the device) and its payload.
fn reading(i: usize, sent: i64) -> (String, String) {
    let device = format!("d{}", i % DEVICES);
    let payload = format!(r#"{{"device":"{device}","v":{i},"sent":{sent}}}"#);
    (device, payload)
}

/// The connection `cluster`, the stream `readings` of `topic` keyed by device, and rule
/// `id` with `sql` and `action`, created through `server`.
async fn declare(
    server: &Server,
    broker: &KafkaBroker,
    topic: &str,
    id: &str,
    sql: &str,
    action: Action,
) -> Result<()> {
    let props = props(&[("brokers", Kind::StringValue(broker.address()))]);
    let connection = Connection { name: "cluster".into(), r#type: "kafka".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(server.channel().await?);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await?;
    let stream = format!(
        r#"CREATE STREAM readings (device STRING, v BIGINT, sent BIGINT) WITH (TYPE="kafka",
        CONF_KEY="cluster", DATASOURCE="{topic}", OFFSET_RESET="earliest", PARTITION_KEY="device")"#
    );
    StreamServiceClient::new(server.channel().await?).create_stream(CreateStreamRequest { sql: stream }).await?;
    let rule = Rule { id: id.into(), sql: sql.into(), actions: vec![action], ..Default::default() };
    RuleServiceClient::new(server.channel().await?).create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    Ok(())
}

/// Action or connection properties, strings and booleans.
fn props(pairs: &[(&str, Kind)]) -> Option<prost_types::Struct> {
    let fields = pairs.iter().map(|(k, v)| ((*k).to_owned(), prost_types::Value { kind: Some(v.clone()) }));
    Some(prost_types::Struct { fields: fields.collect() })
}

fn memory_action() -> Action {
    Action { r#type: "memory".into(), props: props(&[("topic", Kind::StringValue("counts".into()))]) }
}

/// Events rule `id`'s source has read on `server`.
async fn read_by(server: &Server, id: &str) -> Result<u64> {
    let mut rules = RuleServiceClient::new(server.channel().await?);
    let status = rules.get_rule_status(GetRuleStatusRequest { id: id.into() }).await?.into_inner();
    Ok(status.operators.first().map_or(0, |op| op.records_in_total))
}

/// One oortd alone reads every event: its CPU time from the first event
/// produced to the last one read.
async fn cpu_alone(binary: &Path, broker: &KafkaBroker, events: usize, round: usize) -> Result<Duration> {
    let (topic, id) = (format!("alone{round}"), format!("alone{round}"));
    create_topic(broker, &topic).await?;
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start_with_args(binary, dir.path(), true, &["--http-push-listen", "off"]).await?;
    declare(&server, broker, &topic, &id, WINDOW_RULE, memory_action()).await?;
    wait_until(Duration::from_secs(60), || async { Ok(partitions(&server, &id).await?.len() == PARTITIONS as usize) })
        .await?;
    let before = server.cpu_time()?;
    produce(broker, &topic, 0..events, 0).await?;
    wait_until(Duration::from_secs(300), || async { Ok(read_by(&server, &id).await? >= events as u64) }).await?;
    let cpu = server.cpu_time()? - before;
    server.stop()?;
    Ok(cpu)
}

/// Two oortd sharing a catalog split the events: each one's CPU time and
/// events read, from the first event produced to the last one read.
async fn cpu_split(
    binary: &Path,
    broker: &KafkaBroker,
    etcd: &str,
    events: usize,
    round: usize,
) -> Result<Vec<(Duration, u64)>> {
    let (topic, id) = (format!("split{round}"), format!("split{round}"));
    create_topic(broker, &topic).await?;
    let (servers, _dirs) = two_servers(binary, etcd, &format!("cpu{round}")).await?;
    declare(&servers[0], broker, &topic, &id, WINDOW_RULE, memory_action()).await?;
    wait_split(&servers[0], &id).await?;
    let before = [servers[0].cpu_time()?, servers[1].cpu_time()?];
    produce(broker, &topic, 0..events, 0).await?;
    let mut read = [0, 0];
    let deadline = Instant::now() + Duration::from_secs(300);
    while read.iter().sum::<u64>() < events as u64 {
        if Instant::now() > deadline {
            bail!("the two servers read {read:?} of {events} events");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        read = [read_by(&servers[0], &id).await?, read_by(&servers[1], &id).await?];
    }
    let cpu = [servers[0].cpu_time()? - before[0], servers[1].cpu_time()? - before[1]];
    for server in servers {
        server.stop()?;
    }
    Ok(cpu.into_iter().zip(read).collect())
}

/// Waits until the group has shared rule `id`'s partitions between two servers.
async fn wait_split(server: &Server, id: &str) -> Result<()> {
    wait_until(Duration::from_secs(60), || async {
        let all = partitions(server, id).await?;
        let owners: BTreeSet<&String> = all.iter().map(|p| &p.owner).collect();
        Ok(all.len() == PARTITIONS as usize && owners.len() == 2)
    })
    .await
}

/// Two oortd sharing the catalog `etcd://<etcd>/<prefix>`.
async fn two_servers(binary: &Path, etcd: &str, prefix: &str) -> Result<(Vec<Server>, Vec<tempfile::TempDir>)> {
    let catalog = format!("etcd://{etcd}/{prefix}");
    let flags = ["--catalog", &catalog, "--http-push-listen", "off"];
    let dirs = vec![tempfile::tempdir()?, tempfile::tempdir()?];
    let mut servers = Vec::new();
    for dir in &dirs {
        servers.push(Server::start_with_args(binary, dir.path(), true, &flags).await?.0);
    }
    Ok((servers, dirs))
}

/// Two oortd run a stateless split rule from the topic into the topic `out`
/// while events are produced; one is killed: the seconds until an event of
/// one of its partitions, produced after its death, comes out.
async fn takeover(binary: &Path, broker: &KafkaBroker, etcd: &str, round: usize) -> Result<f64> {
    let (topic, out) = (format!("live{round}"), format!("out{round}"));
    create_topic(broker, &topic).await?;
    create_topic(broker, &out).await?;
    let (mut servers, _dirs) = two_servers(binary, etcd, &format!("takeover{round}")).await?;
    let id = format!("pass{round}");
    let sql = "SELECT device, sent, meta(partition) AS p FROM readings";
    let action = Action {
        r#type: "kafka".into(),
        props: props(&[
            ("connectionSelector", Kind::StringValue("cluster".into())),
            ("topic", Kind::StringValue(out.clone())),
            ("sendSingle", Kind::BoolValue(true)),
        ]),
    };
    declare(&servers[0], broker, &topic, &id, sql, action).await?;
    wait_split(&servers[0], &id).await?;
    // The victim: the first server (its name is the owner of a rule only it ran), and its partitions.
    let victim_name = name_of(&servers[0]).await?;
    let victim_partitions: BTreeSet<String> = partitions(&servers[0], &id)
        .await?
        .into_iter()
        .filter(|p| p.owner == victim_name)
        .map(|p| p.partition.to_string())
        .collect();
    if victim_partitions.is_empty() {
        bail!("{victim_name} reads no partition");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", format!("watch{round}"))
        .set("auto.offset.reset", "latest")
        .create()?;
    consumer.subscribe(&[&out])?;
    // Production goes on in the background: 2,000 events a second.
    let producing = {
        let (address, topic) = (broker.address(), topic.clone());
        tokio::spawn(async move {
            let producer: FutureProducer =
                ClientConfig::new().set("bootstrap.servers", &address).set("linger.ms", "1").create().ok()?;
            for i in 0.. {
                let (key, payload) = reading(i, chrono::Utc::now().timestamp_millis());
                let record = FutureRecord::to(&topic).payload(&payload).key(&key);
                let _ = producer.send(record, Duration::from_secs(5)).await;
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            Some(())
        })
    };
    // Results flow before the kill: the watcher has joined its group.
    wait_until(Duration::from_secs(60), || async {
        Ok(matches!(tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await, Ok(Ok(_))))
    })
    .await
    .context("no result before the kill")?;
    let victim = servers.remove(0);
    let killed = Instant::now();
    let killed_ms = chrono::Utc::now().timestamp_millis();
    victim.kill9();
    let result = loop {
        if killed.elapsed() > Duration::from_secs(60) {
            break Err(anyhow::anyhow!("no event of partitions {victim_partitions:?} came out within 60 s"));
        }
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else { continue };
        let row: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default())?;
        let from_victim = row["p"].as_str().is_some_and(|p| victim_partitions.contains(p));
        if from_victim && row["sent"].as_i64().is_some_and(|sent| sent > killed_ms) {
            break Ok(killed.elapsed().as_secs_f64());
        }
    };
    producing.abort();
    for server in servers {
        server.stop()?;
    }
    result
}

/// The partitions of rule `id` and the servers they are assigned to.
async fn partitions(server: &Server, id: &str) -> Result<Vec<oort_proto::v1::PartitionStatus>> {
    let mut rules = RuleServiceClient::new(server.channel().await?);
    Ok(rules.get_rule_status(GetRuleStatusRequest { id: id.into() }).await?.into_inner().partitions)
}

/// The name a server goes by among those sharing its catalog: the owner of a
/// rule it creates (it claims the rule as it creates it).
async fn name_of(server: &Server) -> Result<String> {
    let sql = r#"CREATE STREAM who (v BIGINT) WITH (TYPE="grpc", DATASOURCE="who")"#;
    StreamServiceClient::new(server.channel().await?).create_stream(CreateStreamRequest { sql: sql.into() }).await?;
    let rule = Rule {
        id: "who".into(),
        sql: "SELECT v FROM who".into(),
        actions: vec![Action { r#type: "log".into(), props: None }],
        ..Default::default()
    };
    let mut rules = RuleServiceClient::new(server.channel().await?);
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    let status = rules.get_rule_status(GetRuleStatusRequest { id: "who".into() }).await?.into_inner();
    if status.owner.is_empty() {
        bail!("the rule who has no owner");
    }
    Ok(status.owner)
}

async fn wait_until<F, Fut>(within: Duration, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("not done within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
