//! MQTT end to end: a real broker (mosquitto) → a rule in the real oortd →
//! the broker again; named connections to brokers with credentials and TLS.

mod common;

use common::{Oortd, action_json, code_of};
use oort_connectors::testing::{Broker, TestClient};
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Action, Connection, ConnectionState, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest,
    DeleteConnectionRequest, GetConnectionRequest, GetRuleStatusRequest, ListConnectionsRequest, OperatorStatus, Rule,
    UpdateConnectionRequest,
};
use prost_types::value::Kind;
use rumqttc::QoS;
use serde_json::json;
use tonic::Code;

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

/// A server whose default connection is `broker`, with its metrics served.
async fn server_on(broker: &Broker, dir: &std::path::Path) -> Oortd {
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .env("OORT_MQTT_SERVER", broker.url());
    Oortd::launch(command, dir).await
}

fn connection(name: &str, props: serde_json::Value) -> Connection {
    Connection {
        name: name.into(),
        r#type: "mqtt".into(),
        props: action_json("mqtt", props).props,
        ..Default::default()
    }
}

/// Publishes `payload` on `topic` until a message comes to `subscriber`.
async fn publish_until_received(publisher: &TestClient, subscriber: &mut TestClient, topic: &str, payload: &[u8]) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        publisher.publish(topic, payload).await;
        if tokio::time::timeout(std::time::Duration::from_millis(300), subscriber.message()).await.is_ok() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing came through the rule");
    }
}

async fn operator(oortd: &Oortd, rule: &str, name: &str) -> OperatorStatus {
    let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: rule.into() }).await.unwrap();
    status.into_inner().operators.into_iter().find(|o| o.name == name).expect("the operator")
}

#[tokio::test]
async fn a_named_connection_takes_streams_and_actions_to_its_broker_with_its_credentials() {
    let default_broker = Broker::start().await;
    let plant = Broker::start_with_password("gw", "s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = server_on(&default_broker, dir.path()).await;
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);

    let created = connections
        .create_connection(CreateConnectionRequest {
            connection: Some(connection(
                "plant",
                json!({"server": plant.url(), "username": "gw", "password": "s3cret"}),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    let password = |c: &Connection| c.props.as_ref().unwrap().fields["password"].clone();
    assert_eq!(password(&created), prost_types::Value { kind: Some(Kind::StringValue("***".into())) });
    let listed = connections.list_connections(ListConnectionsRequest {}).await.unwrap().into_inner().connections;
    let names: Vec<(&str, bool)> = listed.iter().map(|c| (c.name.as_str(), c.declared)).collect();
    assert_eq!(names, [("default", true), ("plant", false)]);
    assert_eq!(listed[1].status.as_ref().unwrap().state(), ConnectionState::Idle);

    let mut streams = oortd.streams().await;
    let unknown = r#"CREATE STREAM s0 () WITH (TYPE="mqtt", DATASOURCE="in", CONF_KEY="nope")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: unknown.into() }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("no connection \"nope\""), "{message}");
    let sql = r#"CREATE STREAM plant_in () WITH (TYPE="mqtt", DATASOURCE="in", CONF_KEY="plant")"#;
    streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let action = action_json("mqtt", json!({"connectionSelector": "plant", "topic": "out", "sendSingle": true}));
    let rule = common::rule("relay", "SELECT n FROM plant_in", vec![action]);
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    let mut subscriber = TestClient::connect_as(&plant, "gw", "s3cret").await;
    subscriber.subscribe("out", QoS::AtLeastOnce).await;
    let publisher = TestClient::connect_as(&plant, "gw", "s3cret").await;
    publish_until_received(&publisher, &mut subscriber, "in", br#"{"n": 1}"#).await;

    for name in ["source_plant_in_0", "sink_mqtt_0"] {
        let op = operator(&oortd, "relay", name).await;
        assert_eq!((op.connection.as_str(), op.connection_state()), ("plant", ConnectionState::Connected), "{op:?}");
    }
    let got = connections.get_connection(GetConnectionRequest { name: "plant".into() }).await.unwrap().into_inner();
    let status = got.connection.unwrap().status.unwrap();
    assert_eq!((status.state(), status.clients, status.connected), (ConnectionState::Connected, 2, 2));
    let metrics = common::http()
        .get(format!("http://{}/metrics", oortd.metrics_addr.as_ref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"oort_connection_state{connection="plant",state="connected"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"oort_connection_clients{connection="plant"} 2"#), "{metrics}");

    // In use: not deleted. An update that sends the placeholder keeps the password.
    let (code, message) =
        code_of(connections.delete_connection(DeleteConnectionRequest { name: "plant".into() }).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("plant_in") && message.contains("relay"), "{message}");
    let update = connection("plant", json!({"server": plant.url(), "username": "gw", "password": "***"}));
    let updated =
        connections.update_connection(UpdateConnectionRequest { connection: Some(update) }).await.unwrap().into_inner();
    assert_eq!(updated.running_rules, ["relay"]);
    let mut rules = oortd.rules().await;
    rules.restart_rule(oort_proto::v1::RestartRuleRequest { id: "relay".into() }).await.unwrap();
    publish_until_received(&publisher, &mut subscriber, "in", br#"{"n": 2}"#).await;

    // Wrong credentials: the broker's refusal is the client's state, and the rule's error.
    let bad = connection("wrong", json!({"server": plant.url(), "username": "gw", "password": "nope"}));
    connections.create_connection(CreateConnectionRequest { connection: Some(bad) }).await.unwrap();
    let sql = r#"CREATE STREAM wrong_in () WITH (TYPE="mqtt", DATASOURCE="in", CONF_KEY="wrong")"#;
    streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let rule = common::rule("refused", "SELECT * FROM wrong_in", vec![common::action("log", &[])]);
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let got = connections.get_connection(GetConnectionRequest { name: "wrong".into() }).await.unwrap();
        let status = got.into_inner().connection.unwrap().status.unwrap();
        if !status.last_error.is_empty() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "no error: {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        status.last_error.contains("BadUserNamePassword") || status.last_error.contains("NotAuthorized"),
        "{status:?}"
    );

    // Unused again, a connection goes.
    rules.delete_rule(oort_proto::v1::DeleteRuleRequest { id: "refused".into() }).await.unwrap();
    streams.delete_stream(oort_proto::v1::DeleteStreamRequest { name: "wrong_in".into() }).await.unwrap();
    connections.delete_connection(DeleteConnectionRequest { name: "wrong".into() }).await.unwrap();
    let (code, _) = code_of(connections.get_connection(GetConnectionRequest { name: "wrong".into() }).await);
    assert_eq!(code, Code::NotFound);
    let (code, _) = code_of(connections.delete_connection(DeleteConnectionRequest { name: "default".into() }).await);
    assert_eq!(code, Code::FailedPrecondition, "declared connections are read-only");
}

#[tokio::test]
async fn a_connection_over_tls_checks_the_brokers_certificate() {
    let broker = Broker::start_tls().await;
    let plain = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = server_on(&plain, dir.path()).await;
    let files = dir.path().join("files");
    std::fs::write(files.join("ca.pem"), broker.ca_pem()).unwrap();
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    let tls_url = format!("ssl://127.0.0.1:{}", broker.port);

    // A CA file outside the file roots is refused.
    let outside = connection("tls", json!({"server": tls_url, "rootCaPath": "/etc/hostname"}));
    let (code, message) =
        code_of(connections.create_connection(CreateConnectionRequest { connection: Some(outside) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("rootCaPath"), "{message}");
    // Without the broker's CA, the system's CAs do not know it: the handshake fails.
    let untrusted = connection("untrusted", json!({"server": tls_url}));
    connections.create_connection(CreateConnectionRequest { connection: Some(untrusted) }).await.unwrap();
    let trusted = connection("tls", json!({"server": tls_url, "rootCaPath": "ca.pem"}));
    connections.create_connection(CreateConnectionRequest { connection: Some(trusted) }).await.unwrap();

    let mut streams = oortd.streams().await;
    for (stream, conf_key) in [("secure", "tls"), ("doubtful", "untrusted")] {
        let sql = format!(r#"CREATE STREAM {stream} () WITH (TYPE="mqtt", DATASOURCE="t", CONF_KEY="{conf_key}")"#);
        streams.create_stream(CreateStreamRequest { sql }).await.unwrap();
        let action = action_json("mqtt", json!({"server": plain.url(), "topic": format!("from/{stream}")}));
        let rule = common::rule(stream, &format!("SELECT * FROM {stream}"), vec![action]);
        oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    }
    let mut subscriber = TestClient::connect(&plain).await;
    subscriber.subscribe("from/secure", QoS::AtLeastOnce).await;
    let publisher = TestClient::connect_tls(&broker).await;
    publish_until_received(&publisher, &mut subscriber, "t", br#"{"ok": true}"#).await;

    let op = operator(&oortd, "doubtful", "source_doubtful_0").await;
    assert_ne!(op.connection_state(), ConnectionState::Connected, "{op:?}");
    let got = connections.get_connection(GetConnectionRequest { name: "untrusted".into() }).await.unwrap();
    let status = got.into_inner().connection.unwrap().status.unwrap();
    assert!(status.last_error.to_lowercase().contains("certificate"), "{status:?}");
}

#[tokio::test]
async fn the_egress_policy_applies_to_the_brokers_clients_name_not_to_the_servers_own() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Oortd::command();
    command
        .env_remove("OORT_EGRESS_ALLOW")
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"])
        .arg(dir.path())
        .env("OORT_MQTT_SERVER", broker.url());
    let oortd = Oortd::launch(command, dir.path()).await;
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    let named = connection("named", json!({"server": broker.url()}));
    connections.create_connection(CreateConnectionRequest { connection: Some(named) }).await.unwrap();
    let mut streams = oortd.streams().await;
    for (stream, conf_key) in [("own", "default"), ("named", "named")] {
        let sql = format!(r#"CREATE STREAM {stream} () WITH (TYPE="mqtt", DATASOURCE="t", CONF_KEY="{conf_key}")"#);
        streams.create_stream(CreateStreamRequest { sql }).await.unwrap();
        let rule = common::rule(stream, &format!("SELECT * FROM {stream}"), vec![common::action("log", &[])]);
        oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let own = operator(&oortd, "own", "source_own_0").await;
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "named".into() }).await.unwrap();
        let status = status.into_inner();
        if own.connection_state() == ConnectionState::Connected && !status.last_error.is_empty() {
            assert!(status.last_error.contains("loopback"), "{status:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{own:?} {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An action's own broker is a client's choice too.
    let action = action_json("mqtt", json!({"server": format!("tcp://localhost:{}", broker.port), "topic": "x"}));
    let rule = common::rule("own_server", "SELECT * FROM own", vec![action]);
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    let publisher = TestClient::connect(&broker).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        publisher.publish("t", br#"{"a": 1}"#).await;
        let sink = operator(&oortd, "own_server", "sink_mqtt_0").await;
        if sink.connection_error.contains("loopback") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sink:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn connections_declared_in_the_configuration_are_listed_and_read_only() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[connections.default]\ntype = \"mqtt\"\nserver = \"{}\"\n[connections.site]\ntype = \"mqtt\"\nserver = \"{}\"\nusername = \"u\"\npassword = \"p\"\n",
        broker.url(),
        broker.url()
    );
    let oortd = Oortd::start_with_config(dir.path(), &toml).await;
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    let listed = connections.list_connections(ListConnectionsRequest {}).await.unwrap().into_inner().connections;
    let names: Vec<(&str, bool)> = listed.iter().map(|c| (c.name.as_str(), c.declared)).collect();
    assert_eq!(names, [("default", true), ("site", true)]);
    let fields = &listed[1].props.as_ref().unwrap().fields;
    assert_eq!(fields["password"].kind, Some(Kind::StringValue("***".into())));
    let update = connection("site", json!({"server": broker.url()}));
    let (code, message) =
        code_of(connections.update_connection(UpdateConnectionRequest { connection: Some(update) }).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("declared in the server's configuration"), "{message}");
    let again = connection("site", json!({"server": broker.url()}));
    let (code, _) = code_of(connections.create_connection(CreateConnectionRequest { connection: Some(again) }).await);
    assert_eq!(code, Code::AlreadyExists);
    let typo = connection("typo", json!({"sever": broker.url()}));
    let (code, message) =
        code_of(connections.create_connection(CreateConnectionRequest { connection: Some(typo) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("unknown property \"sever\""), "{message}");
}

#[tokio::test]
async fn a_shared_subscription_splits_messages_between_stateless_rules_and_refuses_stateful_ones() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = server_on(&broker, dir.path()).await;
    let sql = r#"CREATE STREAM shared () WITH (TYPE="mqtt", DATASOURCE="$share/workers/jobs")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut rules = oortd.rules().await;
    let windowed = common::rule(
        "counts",
        "SELECT count(*) AS n FROM shared GROUP BY TUMBLINGWINDOW(ss, 1)",
        vec![common::action("log", &[])],
    );
    let (code, message) = code_of(rules.create_rule(CreateRuleRequest { rule: Some(windowed) }).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("shared subscription") && message.contains("stateless rules only"), "{message}");
    for id in ["w1", "w2"] {
        let rule = common::rule(id, "SELECT * FROM shared", vec![common::action("log", &[])]);
        rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    }
    // Both members subscribed: then 40 messages are split between them.
    let publisher = TestClient::connect(&broker).await;
    let received = |op: OperatorStatus| op.records_out_total;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while received(operator(&oortd, "w1", "sink_log_0").await) == 0
        || received(operator(&oortd, "w2", "sink_log_0").await) == 0
    {
        publisher.publish("jobs", br#"{"probe": true}"#).await;
        assert!(tokio::time::Instant::now() < deadline, "a member never got a message");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before =
        received(operator(&oortd, "w1", "sink_log_0").await) + received(operator(&oortd, "w2", "sink_log_0").await);
    for n in 0..40 {
        publisher.publish("jobs", format!(r#"{{"n": {n}}}"#).as_bytes()).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (a, b) = (
            received(operator(&oortd, "w1", "sink_log_0").await),
            received(operator(&oortd, "w2", "sink_log_0").await),
        );
        if a + b >= before + 40 {
            assert_eq!(a + b, before + 40, "each message once, to one member");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{a} + {b} < {before} + 40");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
