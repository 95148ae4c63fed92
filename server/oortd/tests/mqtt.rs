//! MQTT end to end: a real broker (mosquitto) → a rule in the real oortd →
//! the broker again.

mod common;

use common::Oortd;
use oort_connectors::testing::{Broker, TestClient};
use oort_proto::v1::{Action, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest, Rule};
use rumqttc::QoS;

#[tokio::test]
async fn events_flow_from_broker_through_a_rule_back_to_the_broker() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"])
        .arg(dir.path())
        .env("OORT_MQTT_SERVER", broker.url());
    let oortd = Oortd::launch(command, dir.path()).await;

    oortd
        .streams()
        .await
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM sensors (temperature FLOAT, deviceId STRING) WITH (TYPE="mqtt", DATASOURCE="sensors/+")"#.into(),
        })
        .await
        .unwrap();
    let props = serde_json::json!({"topic": "alerts", "sendSingle": true});
    let props = prost_types::Struct {
        fields: props
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let kind = match v {
                    serde_json::Value::Bool(b) => prost_types::value::Kind::BoolValue(*b),
                    other => prost_types::value::Kind::StringValue(other.as_str().unwrap().to_owned()),
                };
                (k.clone(), prost_types::Value { kind: Some(kind) })
            })
            .collect(),
    };
    let rule = Rule {
        id: "alerts".into(),
        sql: "SELECT deviceId, temperature, meta(topic) AS topic FROM sensors WHERE temperature > 30".into(),
        actions: vec![Action { r#type: "mqtt".into(), props: Some(props) }],
        ..Default::default()
    };
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("alerts", QoS::AtLeastOnce).await;
    let publisher = TestClient::connect(&broker).await;
    // The rule's subscription is made in the background: publish until a result comes.
    let result = loop {
        publisher.publish("sensors/a", br#"{"temperature": 20, "deviceId": "a"}"#).await;
        publisher.publish("sensors/b", br#"{"temperature": 35.5, "deviceId": "b"}"#).await;
        match tokio::time::timeout(std::time::Duration::from_millis(500), subscriber.message()).await {
            Ok(message) => break message,
            Err(_) => continue,
        }
    };
    let (topic, payload, _) = result;
    assert_eq!(topic, "alerts");
    let row: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(row, serde_json::json!({"deviceId": "b", "temperature": 35.5, "topic": "sensors/b"}));

    let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "alerts".into() }).await.unwrap();
    let sink = status.into_inner().operators.into_iter().find(|o| o.name == "sink_mqtt_0").unwrap();
    assert!(sink.records_out_total >= 1 && sink.exceptions_total == 0, "{sink:?}");
}
