//! eKuiper's dynamic alerting scenario, end to end with a real redis-server:
//! one rule keeps alert thresholds in Redis through the `redis` sink (upserts
//! and deletes by `rowkindField`); another joins each event with the Redis
//! lookup table at join time, so a threshold changed mid-stream applies to
//! the next event.

mod common;

use std::time::Duration;

use common::{Oortd, action_json};
use oort_connectors::testing::RedisServer;
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Connection, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, Event, GetRuleStatusRequest,
    PublishRequest, TailRuleRequest, Value,
};
use serde_json::json;

fn event(fields: &[(&str, i64)]) -> Event {
    let value = |n: i64| Value { kind: Some(Kind::IntValue(n)) };
    Event { fields: fields.iter().map(|(k, v)| (k.to_string(), value(*v))).collect(), ..Default::default() }
}

async fn publish(oortd: &Oortd, stream: &str, events: Vec<Event>) {
    let requests: Vec<PublishRequest> = events
        .into_iter()
        .map(|e| PublishRequest { stream: stream.into(), event: Some(e), ..Default::default() })
        .collect();
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::iter(requests)).await.unwrap();
}

fn int(event: &Event, field: &str) -> i64 {
    match event.fields.get(field).and_then(|v| v.kind.as_ref()) {
        Some(Kind::IntValue(n)) => *n,
        other => panic!("{field}: {other:?}"),
    }
}

/// Waits until the alert rule's lookups have seen `n` thresholds in Redis.
async fn thresholds_written(redis: &RedisServer, n: usize) {
    let client = redis::Client::open(format!("redis://{}/", redis.addr())).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
        if keys.len() == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_meet_the_thresholds_redis_holds_at_join_time() {
    let redis = RedisServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let props = action_json("redis", json!({"addr": redis.addr()})).props;
    let connection = Connection { name: "cache".into(), r#type: "redis".into(), props, ..Default::default() };
    ConnectionServiceClient::new(oortd.channel().await)
        .create_connection(CreateConnectionRequest { connection: Some(connection) })
        .await
        .unwrap();
    let mut streams = oortd.streams().await;
    for sql in [
        r#"CREATE STREAM alertStream () WITH (TYPE="grpc", DATASOURCE="alertStream")"#,
        r#"CREATE STREAM demoStream (device BIGINT, deviceKind BIGINT, value BIGINT) WITH (TYPE="grpc", DATASOURCE="demoStream")"#,
        r#"CREATE TABLE alertTable () WITH (TYPE="redis", KIND="lookup", CONF_KEY="cache", DATASOURCE="0")"#,
    ] {
        streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    }
    let mut rules = oortd.rules().await;
    let sink = action_json(
        "redis",
        json!({"connectionSelector": "cache", "field": "id", "rowkindField": "action", "sendSingle": true}),
    );
    let update = common::rule("ruleUpdateAlert", "SELECT * FROM alertStream", vec![sink]);
    rules.create_rule(CreateRuleRequest { rule: Some(update) }).await.unwrap();
    let sql = "SELECT device, value, alertTable.alarm AS alarm FROM demoStream INNER JOIN alertTable \
               ON demoStream.deviceKind = alertTable.id WHERE demoStream.value > alertTable.alarm";
    let alert = common::rule("ruleAlert", sql, vec![common::action("grpc", &[])]);
    rules.create_rule(CreateRuleRequest { rule: Some(alert) }).await.unwrap();
    let mut alerts =
        rules.tail_rule(TailRuleRequest { id: "ruleAlert".into(), ..Default::default() }).await.unwrap().into_inner();

    // eKuiper's commands: kind 1 at 50, 2 at 80, 3 at 20; 4 set then deleted.
    let commands = [(1, 50), (2, 80), (3, 20), (4, 50)];
    let upserts = commands.iter().map(|(id, alarm)| event(&[("id", *id), ("alarm", *alarm)])).collect();
    publish(&oortd, "alertStream", upserts).await;
    thresholds_written(&redis, 4).await;
    // The rule's rows have no `action`: the sink inserts. A delete needs the field.
    let delete = Event {
        fields: [
            ("id".to_string(), Value { kind: Some(Kind::IntValue(4)) }),
            ("action".to_string(), Value { kind: Some(Kind::StringValue("delete".into())) }),
        ]
        .into(),
        ..Default::default()
    };
    publish(&oortd, "alertStream", vec![delete]).await;
    thresholds_written(&redis, 3).await;

    let readings = [(1, 1, 54), (2, 2, 54), (3, 3, 54), (4, 4, 54), (5, 1, 49)];
    let events = readings.iter().map(|(d, k, v)| event(&[("device", *d), ("deviceKind", *k), ("value", *v)])).collect();
    publish(&oortd, "demoStream", events).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(20), alerts.message()).await.expect("an alert in time");
        let response = response.unwrap().expect("the tail is open");
        got.extend(response.event.iter().chain(&response.events).map(|e| (int(e, "device"), int(e, "alarm"))));
    }
    // Device 1 (54 > 50) and 3 (54 > 20); not 2 (80), not 4 (deleted), not 5 (49).
    assert_eq!(got, [(1, 50), (3, 20)]);

    // A threshold changed mid-stream applies to the next event: no cache by default.
    publish(&oortd, "alertStream", vec![event(&[("id", 2), ("alarm", 10)])]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&oortd, "demoStream", vec![event(&[("device", 6), ("deviceKind", 2), ("value", 54)])]).await;
    let response = tokio::time::timeout(Duration::from_secs(20), alerts.message()).await.unwrap().unwrap().unwrap();
    let next: Vec<(i64, i64)> =
        response.event.iter().chain(&response.events).map(|e| (int(e, "device"), int(e, "alarm"))).collect();
    assert_eq!(next, [(6, 10)]);

    let status = rules.get_rule_status(GetRuleStatusRequest { id: "ruleAlert".into() }).await.unwrap().into_inner();
    let table = status.operators.iter().find(|o| o.name == "source_alertTable_0").expect("the table's operator");
    assert_eq!(table.connection, "cache", "{table:?}");
}

#[tokio::test]
async fn a_cache_on_a_table_that_is_loaded_whole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut streams = oortd.streams().await;
    for sql in [
        r#"CREATE STREAM events (kind BIGINT) WITH (TYPE="grpc", DATASOURCE="events")"#,
        r#"CREATE TABLE kinds (id BIGINT) WITH (TYPE="memory", DATASOURCE="kinds", KIND="lookup", KEY="id", CACHE="true")"#,
    ] {
        streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    }
    let sql = "SELECT * FROM events INNER JOIN kinds ON events.kind = kinds.id";
    let rule = common::rule("r", sql, vec![common::action("log", &[])]);
    let refused = oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap_err();
    assert!(refused.message().contains("CACHE applies to lookup tables queried at join time"), "{refused:?}");
}

#[tokio::test]
async fn a_memory_table_is_updated_and_deleted_from_by_an_updatable_memory_sink() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut streams = oortd.streams().await;
    for sql in [
        r#"CREATE STREAM alertStream () WITH (TYPE="grpc", DATASOURCE="alertStream")"#,
        r#"CREATE STREAM demoStream (device BIGINT, deviceKind BIGINT, value BIGINT) WITH (TYPE="grpc", DATASOURCE="demoStream")"#,
        r#"CREATE TABLE alertTable () WITH (TYPE="memory", DATASOURCE="alerts", KIND="lookup", KEY="id")"#,
    ] {
        streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    }
    let mut rules = oortd.rules().await;
    let sql = "SELECT device, alertTable.alarm AS alarm FROM demoStream INNER JOIN alertTable \
               ON demoStream.deviceKind = alertTable.id WHERE demoStream.value > alertTable.alarm";
    let alert = common::rule("ruleAlert", sql, vec![common::action("grpc", &[])]);
    rules.create_rule(CreateRuleRequest { rule: Some(alert) }).await.unwrap();
    let sink = action_json("memory", json!({"topic": "alerts", "rowkindField": "action", "keyField": "id"}));
    let update = common::rule("ruleUpdateAlert", "SELECT * FROM alertStream", vec![sink]);
    rules.create_rule(CreateRuleRequest { rule: Some(update) }).await.unwrap();
    let mut alerts =
        rules.tail_rule(TailRuleRequest { id: "ruleAlert".into(), ..Default::default() }).await.unwrap().into_inner();

    let upserts =
        [(1, 50), (2, 80), (4, 50)].iter().map(|(id, alarm)| event(&[("id", *id), ("alarm", *alarm)])).collect();
    publish(&oortd, "alertStream", upserts).await;
    let delete = Event {
        fields: [
            ("id".to_string(), Value { kind: Some(Kind::IntValue(4)) }),
            ("action".to_string(), Value { kind: Some(Kind::StringValue("delete".into())) }),
        ]
        .into(),
        ..Default::default()
    };
    publish(&oortd, "alertStream", vec![delete]).await;
    // The table holds ids 1 and 2 once the loader has taken the four rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = rules.get_rule_status(GetRuleStatusRequest { id: "ruleAlert".into() }).await.unwrap().into_inner();
        let table = status.operators.iter().find(|o| o.name == "source_alertTable_0").unwrap();
        if table.records_out_total == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{table:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let readings = [(1, 1, 54), (2, 2, 54), (4, 4, 54)];
    let events = readings.iter().map(|(d, k, v)| event(&[("device", *d), ("deviceKind", *k), ("value", *v)])).collect();
    publish(&oortd, "demoStream", events).await;
    let response = tokio::time::timeout(Duration::from_secs(20), alerts.message()).await.unwrap().unwrap().unwrap();
    let got: Vec<(i64, i64)> =
        response.event.iter().chain(&response.events).map(|e| (int(e, "device"), int(e, "alarm"))).collect();
    // Device 1 (54 > 50); not 2 (80), not 4 (its threshold deleted).
    assert_eq!(got, [(1, 50)]);
    let more = tokio::time::timeout(Duration::from_millis(500), alerts.message()).await;
    assert!(more.is_err(), "no alert for the deleted threshold: {more:?}");
}
