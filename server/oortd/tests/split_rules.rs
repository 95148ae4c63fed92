//! Rules split over a Kafka topic's partitions (docs/scaling.md), with a real
//! etcd and a real Kafka (KRaft): two oortd sharing the catalog both run a
//! rule grouped by the stream's partition key, each on the partitions the
//! consumer group gives it, and together count every key's windows once;
//! `GetRuleStatus` shows each partition's server; when one oortd is killed,
//! the other takes its partitions over. A rule grouped otherwise runs on one.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Oortd, action_json};
use oort_connectors::testing::KafkaBroker;
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Connection, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest,
    GetRuleStatusResponse, RuleOptions,
};
use oort_testkit::etcd::EtcdServer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::json;

const DEVICES: [&str; 8] = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"];

async fn start(dir: &std::path::Path, catalog: &str) -> Oortd {
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--catalog", catalog, "--data-dir"]).arg(dir);
    Oortd::launch(command, dir).await
}

async fn create_topic(broker: &KafkaBroker, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker.address()).create().unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let created = admin.create_topics([&topic], &AdminOptions::new()).await.unwrap();
    created.into_iter().for_each(|r| r.map(drop).unwrap());
}

/// Readings of every device at `times` (ms) into `topic`, in time order, keyed by device.
async fn produce(broker: &KafkaBroker, topic: &str, times: impl Iterator<Item = i64>) {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", broker.address()).set("acks", "all").create().unwrap();
    for ts in times {
        for device in DEVICES {
            let payload = json!({"device": device, "ts": ts}).to_string();
            let record = FutureRecord::to(topic).payload(&payload).key(device);
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        }
    }
}

async fn status(oortd: &Oortd, id: &str) -> GetRuleStatusResponse {
    oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.unwrap().into_inner()
}

/// Waits until `oortd` shows rule `id`'s `partitions` partitions assigned to
/// `servers` servers; returns the servers, by partition.
async fn wait_partitions(oortd: &Oortd, id: &str, partitions: usize, servers: usize) -> BTreeMap<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // UNAVAILABLE while etcd elects a leader (a member died) is tried again.
        let status = match oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await {
            Ok(status) => status.into_inner(),
            Err(error) if error.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(error) => panic!("{error}"),
        };
        let owners: BTreeMap<i32, String> = status.partitions.iter().map(|p| (p.partition, p.owner.clone())).collect();
        let distinct: std::collections::BTreeSet<&String> = owners.values().collect();
        if status.partitions.len() == partitions && owners.len() == partitions && distinct.len() == servers {
            return owners;
        }
        assert!(Instant::now() < deadline, "{:?}", status.partitions);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Counts = BTreeMap<(String, i64), Vec<i64>>;

/// Reads the results of `topic`, (device, window start) → counts in the
/// order they came, until `done` says they are all in.
async fn results(broker: &KafkaBroker, topic: &str, group: &str, done: impl Fn(&Counts) -> bool) -> Counts {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut results = Counts::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&results) {
        assert!(Instant::now() < deadline, "{results:?}");
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else { continue };
        let row: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let key = (row["device"].as_str().unwrap().to_owned(), row["start"].as_i64().unwrap());
        results.entry(key).or_default().push(row["c"].as_i64().unwrap());
    }
    results
}

/// A real etcd and Kafka, a topic `readings` of four partitions, two oortd
/// sharing a catalog in that etcd, the stream `readings` keyed by `device`,
/// and the rule `per_device` counting each device's readings per second
/// (event time) into the topic `counts`, with `options`.
struct Cluster {
    _etcd: EtcdServer,
    broker: KafkaBroker,
    a: Oortd,
    b: Oortd,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Cluster {
    async fn start(options: RuleOptions) -> Self {
        let etcd = EtcdServer::start();
        let broker = KafkaBroker::start().await;
        create_topic(&broker, "readings", 4).await;
        let catalog = format!("etcd://{}/split", etcd.endpoint);
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (start(dirs.0.path(), &catalog).await, start(dirs.1.path(), &catalog).await);
        declare(&a, &broker, "readings", "counts", options).await;
        Cluster { _etcd: etcd, broker, a, b, _dirs: dirs }
    }
}

/// Through `oortd`: the connection `cluster`, the stream `readings` of topic
/// `input` keyed by `device`, and the rule `per_device` counting each
/// device's readings per second (event time) into the topic `output`.
async fn declare(oortd: &Oortd, broker: &KafkaBroker, input: &str, output: &str, options: RuleOptions) {
    let props = action_json("kafka", json!({"brokers": broker.address()})).props;
    let connection = Connection { name: "cluster".into(), r#type: "kafka".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await.unwrap();
    let sql = format!(
        r#"CREATE STREAM readings (device STRING, ts BIGINT) WITH (TYPE="kafka", CONF_KEY="cluster",
        DATASOURCE="{input}", OFFSET_RESET="earliest", PARTITION_KEY="device", TIMESTAMP="ts")"#
    );
    oortd.streams().await.create_stream(CreateStreamRequest { sql }).await.unwrap();
    let action = action_json(
        "kafka",
        json!({"connectionSelector": "cluster", "topic": output, "key": "{{.device}}", "sendSingle": true}),
    );
    let sql = "SELECT device, window_start() AS start, count(*) AS c FROM readings \
               GROUP BY device, TUMBLINGWINDOW(ss, 1)";
    let mut rule = common::rule("per_device", sql, vec![action]);
    rule.options = Some(options);
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
}

/// The servers once the group has shared the partitions between them: the
/// one that reads partition 0 (to be killed), and the other.
async fn victim_and_survivor(a: Oortd, b: Oortd) -> (Oortd, Oortd) {
    let owners = wait_partitions(&a, "per_device", 4, 2).await;
    if a.logged(&["this server's name among those sharing the catalog", &owners[&0]]) { (a, b) } else { (b, a) }
}

/// Kills `victim` and waits until `survivor` reads every partition; returns
/// how long that took.
async fn kill_and_take_over(victim: Oortd, survivor: &Oortd) -> Duration {
    let killed = Instant::now();
    victim.kill9();
    wait_partitions(survivor, "per_device", 4, 1).await;
    killed.elapsed()
}

#[tokio::test]
async fn a_rule_grouped_by_the_partition_key_runs_on_every_oortd_each_on_its_partitions() {
    let options = RuleOptions { is_event_time: true, late_tolerance_ms: Some(10_000), ..Default::default() };
    let cluster = Cluster::start(options.clone()).await;
    // Counting over every device needs them all on one server.
    let sql = "SELECT count(*) AS c FROM readings GROUP BY TUMBLINGWINDOW(ss, 1)";
    let mut whole = common::rule("all_devices", sql, vec![action_json("log", json!({}))]);
    whole.options = Some(options);
    cluster.a.rules().await.create_rule(CreateRuleRequest { rule: Some(whole) }).await.unwrap();

    // Both servers run it, the group shares the four partitions between them.
    wait_partitions(&cluster.b, "per_device", 4, 2).await;
    let status_a = status(&cluster.a, "per_device").await;
    assert_eq!(status_a.distribution, "split over its source's partitions, by device");
    assert_eq!(status_a.owner, "", "no one server owns it");
    assert_eq!(status(&cluster.b, "per_device").await.state, status_a.state);
    let whole = status(&cluster.b, "all_devices").await;
    assert!(whole.distribution.starts_with("one server: its GROUP BY does not have"), "{}", whole.distribution);
    assert!(!whole.owner.is_empty());

    // Ten readings a second per device for 2 s, then one at 30 s that
    // closes both windows (10 s of late tolerance).
    let broker = &cluster.broker;
    produce(broker, "readings", (0..20).map(|i| i * 100)).await;
    produce(broker, "readings", std::iter::once(30_000)).await;
    let counted = results(broker, "counts", "check", |r| r.values().map(Vec::len).sum::<usize>() >= 16).await;
    let expected: Counts =
        DEVICES.iter().flat_map(|d| [((d.to_string(), 0), vec![10]), ((d.to_string(), 1000), vec![10])]).collect();
    assert_eq!(counted, expected, "every device's windows, each once, whichever server had its partition");
    // Keyed by device, as PARTITION_KEY says: no message counted as keyed otherwise.
    for oortd in [&cluster.a, &cluster.b] {
        let status = status(oortd, "per_device").await;
        let decoder = status.operators.iter().find(|o| o.name == "op_decoder_0").expect("a decoder");
        assert_eq!(decoder.exceptions_total, 0, "{}", decoder.last_exception);
    }

    // One server dies: its partitions go to the other, which counts on.
    let Cluster { broker, a, b, _etcd, _dirs } = cluster;
    let (victim, survivor) = victim_and_survivor(a, b).await;
    let moved = kill_and_take_over(victim, &survivor).await;
    eprintln!("the partitions moved {:.1} s after the kill", moved.as_secs_f64());
    produce(&broker, "readings", (0..10).map(|i| 40_000 + i * 100)).await;
    produce(&broker, "readings", std::iter::once(70_000)).await;
    // What the dead server had in its open windows is read again (qos 0
    // commits what was handed to the rule): counted here only after the kill.
    let after_kill = |r: &Counts| DEVICES.iter().all(|d| r.contains_key(&(d.to_string(), 40_000)));
    let counted = results(&broker, "counts", "check-after", after_kill).await;
    for device in DEVICES {
        assert_eq!(counted[&(device.to_string(), 40_000)], [10], "{counted:?}");
    }
}

/// qos 1, a checkpoint (and so a commit) every 200 ms, event time with no
/// lateness (each partition in time order).
fn exact_windows() -> RuleOptions {
    RuleOptions {
        qos: 1,
        checkpoint_interval_ms: Some(200),
        is_event_time: true,
        late_tolerance_ms: Some(0),
        ..Default::default()
    }
}

#[tokio::test]
async fn at_qos_1_a_split_rule_s_windows_are_exact_across_the_death_of_a_server() {
    let options = exact_windows();
    let Cluster { broker, a, b, _etcd, _dirs } = Cluster::start(options).await;
    let (victim, survivor) = victim_and_survivor(a, b).await;
    assert_eq!(status(&survivor, "per_device").await.distribution, "split over its source's partitions, by device");

    // Each partition in time order (its own watermark, no tolerance needed):
    // 2.5 s of readings close two windows per device, half of the third is in.
    produce(&broker, "readings", (0..25).map(|i| i * 100)).await;
    let counted = results(&broker, "counts", "before", |r| r.values().map(Vec::len).sum::<usize>() >= 16).await;
    assert!(counted.values().all(|c| *c == [10]), "{counted:?}");
    // Positions are committed after each checkpoint (200 ms): let a few pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let moved = kill_and_take_over(victim, &survivor).await;
    eprintln!("the partitions moved {:.1} s after the kill", moved.as_secs_f64());

    // The rest of the third window, and a reading that closes it.
    produce(&broker, "readings", (25..30).map(|i| i * 100)).await;
    produce(&broker, "readings", std::iter::once(3_000)).await;
    let done = |r: &Counts| DEVICES.iter().all(|d| r.contains_key(&(d.to_string(), 2_000)));
    let counted = results(&broker, "counts", "after", done).await;
    // The dead server's half windows were read again by the other: whole,
    // never part of one (windows it had emitted may come twice, alike).
    for device in DEVICES {
        for start in [0, 1_000, 2_000] {
            let counts = &counted[&(device.to_string(), start)];
            assert!(!counts.is_empty() && counts.iter().all(|c| *c == 10), "{device} at {start}: {counted:?}");
        }
    }
}

/// What an upsert sink keyed by (device, window start) holds: the last count of each.
fn upserted(counts: &Counts) -> BTreeMap<(String, i64), i64> {
    counts.iter().map(|(key, values)| (key.clone(), *values.last().expect("a count"))).collect()
}

#[tokio::test]
async fn three_oortd_on_a_three_member_etcd_lose_a_server_and_a_member_and_upsert_what_one_server_alone_does() {
    let options = exact_windows();
    let broker = KafkaBroker::start().await;
    // Six seconds of readings, ten a second per device, in two halves, then a
    // reading at 10 s that closes the sixth window.
    let (first_half, second_half) = ((0..30).map(|i| i * 100), (30..60).map(|i| i * 100));
    let closing = || std::iter::once(10_000);
    let all_windows = |r: &Counts| DEVICES.iter().all(|d| (0..6).all(|w| r.contains_key(&(d.to_string(), w * 1000))));

    // The reference: one oortd alone (its own catalog) on the same readings.
    create_topic(&broker, "alone-in", 4).await;
    let alone_dir = tempfile::tempdir().unwrap();
    let alone = Oortd::start(alone_dir.path()).await;
    declare(&alone, &broker, "alone-in", "alone-out", options.clone()).await;
    produce(&broker, "alone-in", first_half.clone().chain(second_half.clone()).chain(closing())).await;
    let reference = upserted(&results(&broker, "alone-out", "alone", all_windows).await);
    alone.terminate().await;
    assert!(reference.values().all(|c| *c == 10), "{reference:?}");

    // Three oortd sharing a catalog in a three-member etcd.
    let mut etcd = oort_testkit::etcd::EtcdCluster::start(3);
    let catalog = format!("etcd://{}/chaos", etcd.endpoints());
    create_topic(&broker, "cluster-in", 4).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    for dir in &dirs {
        servers.push(start(dir.path(), &catalog).await);
    }
    declare(&servers[0], &broker, "cluster-in", "cluster-out", options).await;
    let owners = wait_partitions(&servers[2], "per_device", 4, 3).await;

    // Half of the readings: windows close, the third is open everywhere.
    produce(&broker, "cluster-in", first_half).await;
    results(&broker, "cluster-out", "before", |r| r.len() >= 16).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Mid-window, the server reading partition 0 and an etcd member die.
    let victim = servers
        .iter()
        .position(|s| s.logged(&["this server's name among those sharing the catalog", &owners[&0]]))
        .expect("partition 0's server");
    servers.remove(victim).kill9();
    etcd.kill(0);
    produce(&broker, "cluster-in", second_half.chain(closing())).await;
    let survivor = &servers[0];
    wait_partitions(survivor, "per_device", 4, 2).await;
    let counted = results(&broker, "cluster-out", "after", all_windows).await;
    assert_eq!(upserted(&counted), reference, "what an upsert sink holds, as with one server alone: {counted:?}");
}
