//! The `kafka` source and sink against a real Kafka (KRaft, from the jars of
//! `scripts/install-brokers.sh`, run by `scripts/run-kafka.sh`), started by
//! each test on a free port of 127.0.0.1 and killed at its end.

use std::sync::Arc;
use std::time::Duration;

use oort_connectors::connections::{ConnectionDef, Connections, LinkState};
use oort_connectors::kafka::{KafkaContext, KafkaSinkFactory, KafkaSourceFactory};
use oort_connectors::testing::{KafkaBroker, WAIT, free_port};
use oort_engine::{
    ConnectorError, Guarantee, Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, Value,
};
use oort_policy::{EgressPolicy, FileRoots};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// A context whose connection `cluster` has these brokers.
fn context(brokers: &str) -> KafkaContext {
    let connections = Connections::new();
    let props = serde_json::json!({"brokers": brokers}).as_object().cloned().unwrap();
    connections.put(ConnectionDef { name: "cluster".into(), kind: "kafka".into(), props, declared: true });
    let files = Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap());
    KafkaContext { connections, files, egress: Arc::new(EgressPolicy::allow_all()) }
}

fn source_config(topic: &str, qos: Guarantee, resume: Option<(u64, Vec<u8>)>) -> SourceConfig {
    let options = [("CONF_KEY", "cluster"), ("OFFSET_RESET", "earliest")];
    SourceConfig {
        stream: "s".into(),
        datasource: topic.into(),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rule_id: "r1".into(),
        qos,
        resume_after: resume.as_ref().map(|(after, _)| *after),
        resume_state: resume.map(|(_, state)| state),
        marks_partition_starts: false,
    }
}

struct Running {
    events: mpsc::Receiver<SourceEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConnectorError>>,
}

impl Running {
    fn start(factory: &KafkaSourceFactory, config: &SourceConfig) -> Self {
        let source = factory.build(config).unwrap();
        let (tx, events) = SourceOutput::channel(100);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, cancel.clone()));
        Running { events, cancel, task }
    }

    async fn next(&mut self) -> SourceEvent {
        // The first poll joins the group: it can take a few seconds.
        timeout(Duration::from_secs(30), self.events.recv()).await.expect("an event in time").expect("running")
    }

    async fn stop(self) {
        self.cancel.cancel();
        let ended = timeout(Duration::from_secs(20), self.task).await.expect("stops promptly").unwrap();
        ended.expect("ends without error");
    }
}

fn text(event: &SourceEvent) -> String {
    match &event.payload {
        Payload::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        Payload::Map(m) => panic!("bytes expected, got {m:?}"),
    }
}

async fn produce(broker: &KafkaBroker, topic: &str, payloads: &[&str]) {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", broker.address()).set("acks", "all").create().unwrap();
    for payload in payloads {
        let record = FutureRecord::<str, str>::to(topic).payload(payload).key("k");
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
}

#[tokio::test]
async fn a_consumer_group_reads_a_topic_and_goes_on_where_it_committed() {
    let broker = KafkaBroker::start().await;
    produce(&broker, "orders", &["0", "1", "2"]).await;
    let factory = KafkaSourceFactory::new(context(&broker.address()));
    let config = source_config("orders", Guarantee::AtMostOnce, None);
    let mut source = Running::start(&factory, &config);
    for expected in 0..3 {
        let event = source.next().await;
        assert_eq!(text(&event), expected.to_string());
        let meta = |key: &str| event.meta[key].clone();
        assert_eq!(
            (meta("topic"), meta("partition"), meta("offset"), meta("key")),
            ("orders".into(), "0".into(), expected.to_string(), "k".into())
        );
        assert!(meta("timestamp").parse::<i64>().unwrap() > 0);
        assert_eq!(event.position, None);
    }
    source.stop().await;

    produce(&broker, "orders", &["3"]).await;
    let mut again = Running::start(&factory, &config);
    assert_eq!(text(&again.next().await), "3", "the group committed what the rule had");
    again.stop().await;
}

#[tokio::test]
async fn a_rule_that_replays_reads_exactly_what_followed_its_checkpoint() {
    let broker = KafkaBroker::start().await;
    produce(&broker, "events", &["a", "b", "c", "d", "e"]).await;
    let factory = KafkaSourceFactory::new(context(&broker.address()));
    let fresh = source_config("events", Guarantee::AtLeastOnce, None);
    let hold = factory.positions(&fresh).unwrap().expect("kafka replays");
    assert!(hold.exact());
    let mut source = Running::start(&factory, &fresh);
    for position in 1..=5 {
        assert_eq!(source.next().await.position, Some(position));
    }
    // The checkpoint covers three; the server dies before it commits anything.
    let state = hold.resume_state(3).expect("offsets");
    source.stop().await;
    drop(hold);

    let resumed = source_config("events", Guarantee::AtLeastOnce, Some((3, state)));
    let hold = factory.positions(&resumed).unwrap().unwrap();
    let mut source = Running::start(&factory, &resumed);
    let replayed: Vec<(Option<u64>, String)> =
        [source.next().await, source.next().await].iter().map(|e| (e.position, text(e))).collect();
    assert_eq!(replayed, [(Some(4), "d".into()), (Some(5), "e".into())]);
    produce(&broker, "events", &["f"]).await;
    let event = source.next().await;
    assert_eq!((event.position, text(&event), event.meta["offset"].as_str()), (Some(6), "f".into(), "5"));
    // A saved checkpoint commits its offsets to the group.
    hold.release(6);
    source.stop().await;
    let consumer: StreamConsumer =
        ClientConfig::new().set("bootstrap.servers", broker.address()).set("group.id", "oort-r1").create().unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition("events", 0);
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    assert_eq!(committed.find_partition("events", 0).unwrap().offset(), rdkafka::Offset::Offset(6));
}

fn row(device: &str, n: i64) -> Map {
    [(Arc::from("device"), Value::from(device)), (Arc::from("n"), Value::Int(n))].into_iter().collect()
}

#[tokio::test]
async fn the_sink_produces_keys_and_headers_from_templates_and_result_ids() {
    let broker = KafkaBroker::start().await;
    let factory = KafkaSinkFactory(context(&broker.address()));
    let props = serde_json::json!({
        "connectionSelector": "cluster", "topic": "alerts", "key": "{{.device}}", "sendSingle": true,
        "headers": {"origin": "oort", "device": "{{.device}}"}, "compression": "zstd"
    });
    let serde_json::Value::Object(props) = props else { unreachable!() };
    let mut sink = factory
        .build(&SinkConfig { sink_type: "kafka".into(), props, rule_id: "r1".into(), ..Default::default() })
        .unwrap();
    sink.open().await.unwrap();
    timeout(WAIT, sink.collect_numbered(4, &[row("a", 1), row("b", 2)])).await.unwrap().unwrap();
    sink.close().await.unwrap();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["alerts"]).unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let message = timeout(Duration::from_secs(30), consumer.recv()).await.unwrap().unwrap();
        let headers = message.headers().unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        got.push((
            String::from_utf8_lossy(message.key().unwrap()).into_owned(),
            String::from_utf8_lossy(message.payload().unwrap()).into_owned(),
            header("Idempotency-Key").unwrap(),
            header("origin").unwrap(),
            header("device").unwrap(),
        ));
    }
    let expected = |d: &str, n: i64, i: usize| {
        (
            d.to_string(),
            format!(r#"{{"device":"{d}","n":{n}}}"#),
            format!("r1:4:{i}"),
            "oort".to_string(),
            d.to_string(),
        )
    };
    assert_eq!(got, [expected("a", 1, 0), expected("b", 2, 1)]);
}

#[tokio::test]
async fn an_unreachable_cluster_shows_in_the_connections_state_and_the_sink_fails_in_time() {
    let context = context(&format!("127.0.0.1:{}", free_port()));
    let factory = KafkaSourceFactory::new(context.clone());
    let source = Running::start(&factory, &source_config("t", Guarantee::AtMostOnce, None));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = context.connections.status("cluster");
        if let LinkState::Disconnected(why) = &status.state {
            assert!(why.to_lowercase().contains("connect"), "{why}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!source.task.is_finished(), "the source waits for the cluster");
    source.stop().await;

    let props = serde_json::json!({"connectionSelector": "cluster", "topic": "t"});
    let serde_json::Value::Object(props) = props else { unreachable!() };
    let mut sink = KafkaSinkFactory(context)
        .build(&SinkConfig { sink_type: "kafka".into(), props, ..Default::default() })
        .unwrap();
    let failed =
        timeout(Duration::from_secs(30), sink.collect(&[row("a", 1)])).await.expect("within the delivery timeout");
    assert!(failed.is_err());
}

#[tokio::test]
async fn a_cluster_over_tls_with_scram_logins_is_written_and_read() {
    let certs = tempfile::tempdir().unwrap();
    oort_connectors::testing::certificates(certs.path(), "client");
    let (broker, tls_port) = KafkaBroker::start_tls(certs.path(), "alice", "alice-secret").await;
    let connections = Connections::new();
    let props = serde_json::json!({"brokers": format!("127.0.0.1:{tls_port}"), "saslAuthType": "scram",
        "saslUserName": "alice", "password": "alice-secret", "rootCaPath": "ca.pem"});
    connections.put(ConnectionDef {
        name: "cluster".into(),
        kind: "kafka".into(),
        props: props.as_object().cloned().unwrap(),
        declared: false,
    });
    let context = KafkaContext {
        connections,
        files: Arc::new(FileRoots::create([certs.path().to_path_buf()]).unwrap()),
        egress: Arc::new(EgressPolicy::allow_all()),
    };
    let mut sink = KafkaSinkFactory(context.clone())
        .build(&SinkConfig {
            sink_type: "kafka".into(),
            props: serde_json::json!({"connectionSelector": "cluster", "topic": "secure", "sendSingle": true})
                .as_object()
                .cloned()
                .unwrap(),
            rule_id: "w".into(),
            ..Default::default()
        })
        .unwrap();
    let row: Map = [(Arc::from("n"), Value::Int(1))].into_iter().collect();
    timeout(WAIT, sink.collect(&[row])).await.expect("acknowledged in time").unwrap();
    let mut running = Running::start(
        &KafkaSourceFactory::new(context.clone()),
        &source_config("secure", Guarantee::AtMostOnce, None),
    );
    assert_eq!(text(&running.next().await), r#"{"n":1}"#);
    running.stop().await;
    drop(broker);
}
