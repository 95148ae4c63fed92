//! Kafka end to end: a topic → a windowed rule with qos 1 in the real oortd →
//! a topic again, through a named connection; the server is killed with
//! `kill -9` between two batches, and the window counts every event once.

mod common;

use std::time::Duration;

use common::{Oortd, action_json};
use oort_connectors::testing::KafkaBroker;
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Connection, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest, RuleOptions,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::json;

async fn produce(broker: &KafkaBroker, range: std::ops::Range<i64>) {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", broker.address()).set("acks", "all").create().unwrap();
    for n in range {
        let payload = json!({"n": n, "device": if n % 2 == 0 { "a" } else { "b" }}).to_string();
        let record = FutureRecord::<str, str>::to("readings").payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
}

#[tokio::test]
async fn a_windowed_rule_over_a_topic_counts_each_event_once_through_kill_9() {
    let broker = KafkaBroker::start().await;
    produce(&broker, 0..10).await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let props = action_json("kafka", json!({"brokers": broker.address()})).props;
    let connection = Connection { name: "cluster".into(), r#type: "kafka".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await.unwrap();
    let sql = r#"CREATE STREAM readings (n BIGINT, device STRING) WITH (TYPE="kafka", CONF_KEY="cluster", DATASOURCE="readings", OFFSET_RESET="earliest")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let action = action_json(
        "kafka",
        json!({"connectionSelector": "cluster", "topic": "counts", "key": "{{.device}}", "sendSingle": true}),
    );
    // A count window of 20 events: it closes only once the second batch is in.
    let sql = "SELECT device, count(*) AS c, sum(n) AS total FROM readings GROUP BY device, COUNTWINDOW(20)";
    let mut rule = common::rule("counts", sql, vec![action]);
    rule.options = Some(RuleOptions { qos: 1, checkpoint_interval_ms: Some(200), ..Default::default() });
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    // The first ten are in the window (and a checkpoint) before the server dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "counts".into() }).await.unwrap();
        let status = status.into_inner();
        let source = status.operators.iter().find(|o| o.name == "source_readings_0").unwrap();
        let checkpointed =
            status.checkpoints.as_ref().and_then(|c| c.last.as_ref()).is_some_and(|c| c.source_position >= 10);
        if source.records_out_total >= 10 && checkpointed {
            assert_eq!(source.connection, "cluster");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    oortd.kill9();
    produce(&broker, 10..20).await;
    let again = Oortd::start(dir.path()).await;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["counts"]).unwrap();
    let mut results = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while results.len() < 2 {
        if tokio::time::Instant::now() > deadline {
            let status = again.rules().await.get_rule_status(GetRuleStatusRequest { id: "counts".into() }).await;
            panic!("{results:?}: {status:?}");
        }
        // Until the rule produces, the topic does not exist.
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let row: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
        results.push((key, row["c"].as_i64().unwrap(), row["total"].as_i64().unwrap()));
    }
    results.sort();
    // Twenty events, ten per device: none lost, none counted twice.
    assert_eq!(results, [("a".to_string(), 10, 90), ("b".to_string(), 10, 100)]);
    again.terminate().await;
}
