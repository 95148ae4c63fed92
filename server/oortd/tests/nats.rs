//! NATS end to end: a JetStream stream → a rule with qos 1 in the real oortd
//! → a JetStream stream again, through a named connection; the server is
//! killed with `kill -9` between two batches, and nothing is lost or
//! written twice.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::{Oortd, action_json};
use oort_connectors::testing::NatsServer;
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Connection, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, DeleteConnectionRequest, RuleOptions,
};
use serde_json::json;

async fn stream(js: &jetstream::Context, name: &str, subjects: &str) {
    let config = jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
}

async fn publish(js: &jetstream::Context, range: std::ops::Range<i64>) {
    for n in range {
        js.publish(format!("orders.{n}"), json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
    }
}

/// The `n` of every message in stream OUT, in order.
async fn written(js: &jetstream::Context, expected: usize) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut out = js.get_stream("OUT").await.unwrap();
        let count = out.info().await.unwrap().state.messages as usize;
        if count >= expected {
            let mut values = Vec::new();
            for sequence in 1..=out.info().await.unwrap().state.last_sequence {
                let message = out.get_raw_message(sequence).await.unwrap();
                let row: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
                values.push(row["n"].as_i64().unwrap());
            }
            return values;
        }
        assert!(tokio::time::Instant::now() < deadline, "{count} of {expected} results");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rule_between_jetstream_streams_loses_and_repeats_nothing_through_kill_9() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    stream(&js, "ORDERS", "orders.>").await;
    stream(&js, "OUT", "big.orders").await;
    publish(&js, 0..10).await;

    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let props = action_json("nats", json!({"server": nats.url()})).props;
    let connection = Connection { name: "bus".into(), r#type: "nats".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await.unwrap();
    let sql =
        r#"CREATE STREAM orders (n BIGINT) WITH (TYPE="nats", CONF_KEY="bus", DATASOURCE="orders.>", STREAM="ORDERS")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let action = action_json(
        "nats",
        json!({"connectionSelector": "bus", "subject": "big.orders", "jetstream": true, "sendSingle": true}),
    );
    let mut rule = common::rule("big", "SELECT n FROM orders WHERE n % 2 = 0", vec![action]);
    rule.options = Some(RuleOptions { qos: 1, checkpoint_interval_ms: Some(200), ..Default::default() });
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    assert_eq!(written(&js, 5).await, [0, 2, 4, 6, 8]);
    let deleting = connections.delete_connection(DeleteConnectionRequest { name: "bus".into() }).await;
    let refused = deleting.expect_err("in use").message().to_owned();
    assert!(refused.contains("streams [\"orders\"]") && refused.contains("rules [\"big\"]"), "{refused}");

    // A checkpoint covers the first ten; then the server dies while more come.
    tokio::time::sleep(Duration::from_millis(600)).await;
    publish(&js, 10..14).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    oortd.kill9();
    publish(&js, 14..20).await;
    let again = Oortd::start(dir.path()).await;
    let values = written(&js, 10).await;
    assert_eq!(values, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18], "each result once, in order");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(written(&js, 10).await.len(), 10, "and nothing after");
    again.terminate().await;
}
