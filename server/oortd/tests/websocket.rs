//! Websocket endpoints served by the real oortd on its HTTP push address: a
//! client sends events to a stream's path and another reads a rule's results
//! at its action's path, with tungstenite's client.

mod common;

use std::time::Duration;

use common::{Oortd, action_json};
use futures::{SinkExt, StreamExt};
use oort_proto::v1::{CreateRuleRequest, CreateStreamRequest};
use serde_json::json;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn clients_send_events_and_read_results_at_the_paths_of_streams_and_actions() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let push = oortd.push_addr.clone().expect("http push serves");
    let sql = r#"CREATE STREAM readings (t BIGINT) WITH (TYPE="websocket", DATASOURCE="/ws/readings")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();

    // No rule reads or writes there yet: 404.
    let refused = tokio_tungstenite::connect_async(format!("ws://{push}/ws/readings")).await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");

    let action = action_json("websocket", json!({"path": "/ws/hot", "sendSingle": true}));
    let rule = common::rule("hot", "SELECT t FROM readings WHERE t > 20", vec![action]);
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    let (mut results, _) = tokio_tungstenite::connect_async(format!("ws://{push}/ws/hot")).await.unwrap();
    let (mut readings, _) = tokio_tungstenite::connect_async(format!("ws://{push}/ws/readings")).await.unwrap();
    for t in [10, 25, 15, 30] {
        readings.send(Message::text(json!({"t": t}).to_string())).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = timeout(Duration::from_secs(20), results.next()).await.expect("a result in time");
        if let Message::Text(text) = message.unwrap().unwrap() {
            got.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        }
    }
    assert_eq!(got, [json!({"t": 25}), json!({"t": 30})]);
}
