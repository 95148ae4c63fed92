//! The catalog shared in etcd (`--catalog etcd://...`), with a real etcd:
//! what one oortd stores, another oortd with its own data directory finds,
//! runs and guards; each rule runs on one of the serving oortd, moves with
//! stop and start, and is taken over when its server dies; a restart through
//! any oortd restarts the rule where it runs (on every oortd for a split
//! rule); schemas reach every server; an unreachable etcd stops the start
//! with the reason.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Oortd, action, action_json, code_of, int};
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::schema_service_client::SchemaServiceClient;
use oort_proto::v1::{
    Connection, CreateConnectionRequest, CreateRuleRequest, CreateSchemaRequest, CreateStreamRequest,
    DeleteRuleRequest, DeleteStreamRequest, Event, GetRuleStatusRequest, GetRuleStatusResponse, ListStreamsRequest,
    PublishRequest, RestartRuleRequest, Rule, RuleState, Schema, StartRuleRequest, StopRuleRequest, TailRuleRequest,
};
use oort_testkit::etcd::EtcdServer;

async fn start(dir: &std::path::Path, catalog: &str) -> Oortd {
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--catalog", catalog, "--data-dir"]).arg(dir);
    Oortd::launch(command, dir).await
}

#[tokio::test]
async fn a_second_oortd_finds_runs_and_guards_what_the_first_stored() {
    let etcd = EtcdServer::start();
    let catalog = format!("etcd://{}/plant", etcd.endpoint);
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let first = start(first_dir.path(), &catalog).await;
    let sql = r#"CREATE STREAM s (v BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#.to_owned();
    first.streams().await.create_stream(CreateStreamRequest { sql }).await.unwrap();
    let rule = Rule {
        id: "double".into(),
        sql: "SELECT v * 2 AS d FROM s".into(),
        actions: vec![action("grpc", &[])],
        ..Default::default()
    };
    first.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    first.terminate().await;
    assert!(!first_dir.path().join("catalog").exists(), "nothing of the catalog is kept locally");

    // Another instance, another data directory: the same catalog.
    let second = start(second_dir.path(), &catalog).await;
    let streams = second.streams().await.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner();
    assert_eq!(streams.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s"]);
    let status =
        second.rules().await.get_rule_status(GetRuleStatusRequest { id: "double".into() }).await.unwrap().into_inner();
    assert_eq!(status.state, RuleState::Running as i32, "the rule runs here too");
    let mut results = second
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "double".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    // The tail subscribes in the background: publish until a result comes.
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = Event { fields: HashMap::from([("v".to_owned(), int(21))]), ..Default::default() };
            let request = PublishRequest { stream: "s".into(), event: Some(event), ..Default::default() };
            EventServiceClient::new(second.channel().await).publish(tokio_stream::iter([request])).await.unwrap();
            if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), results.message()).await {
                break message.unwrap().unwrap();
            }
        }
    })
    .await
    .expect("a result");
    assert_eq!(result.event.unwrap().fields["d"], int(42));

    // The relations hold across instances.
    let (code, message) = code_of(second.streams().await.delete_stream(DeleteStreamRequest { name: "s".into() }).await);
    assert_eq!(code, tonic::Code::FailedPrecondition, "{message}");
    assert!(message.contains("double"), "{message}");
    second.terminate().await;

    // Another prefix is another catalog.
    let elsewhere = start(tempfile::tempdir().unwrap().path(), &format!("etcd://{}/other", etcd.endpoint)).await;
    let streams = elsewhere.streams().await.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner();
    assert!(streams.streams.is_empty());
}

/// Rule `id`'s status on `oortd`.
async fn status(oortd: &Oortd, id: &str) -> GetRuleStatusResponse {
    oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.unwrap().into_inner()
}

/// The server that runs rule `id`, as `oortd` reports it.
async fn owner(oortd: &Oortd, id: &str) -> String {
    status(oortd, id).await.owner
}

/// When `oortd` last started rule `id`, in ms since the epoch (0: it does not run it).
async fn start_time(oortd: &Oortd, id: &str) -> i64 {
    status(oortd, id).await.start_time.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Waits, at most 10 s, until `oortd` has started rule `id` again since `before` (a [`start_time`]).
async fn wait_restarted(oortd: &Oortd, id: &str, before: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let started = start_time(oortd, id).await;
        if started > before {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "rule {id} not restarted: started at {started} ms");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `oortd` runs rule `id` (`Some(true)`), has it stopped
/// (`Some(false)`) or does not know it (`None`).
async fn wait_state(oortd: &Oortd, id: &str, wanted: Option<bool>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await;
        let state = match &status {
            Ok(status) => Some(status.get_ref().state == RuleState::Running as i32),
            Err(_) => None,
        };
        if state == wanted {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "rule {id}: {status:?}, not {wanted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_rule_runs_on_one_oortd_and_another_takes_it_over_when_it_dies() {
    let etcd = EtcdServer::start();
    let catalog = format!("etcd://{}/live", etcd.endpoint);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (start(a_dir.path(), &catalog).await, start(b_dir.path(), &catalog).await);
    let sql = r#"CREATE STREAM s (v BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#.to_owned();
    a.streams().await.create_stream(CreateStreamRequest { sql }).await.unwrap();
    let rule = Rule {
        id: "r".into(),
        sql: "SELECT v FROM s".into(),
        actions: vec![action("grpc", &[])],
        ..Default::default()
    };
    a.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    wait_state(&a, "r", Some(true)).await;
    let a_name = owner(&a, "r").await;
    assert!(a_name.starts_with("oortd-"), "{a_name}");
    // The other server hears of the rule, and leaves it to its owner.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_state(&b, "r", Some(false)).await;
    assert_eq!(owner(&b, "r").await, a_name);
    assert!(!a.logged(&["the shared catalog changed"]), "a server does not apply its own change twice");

    // Stopped through one, started through the other: it runs there.
    a.rules().await.stop_rule(StopRuleRequest { id: "r".into() }).await.unwrap();
    wait_state(&a, "r", Some(false)).await;
    b.rules().await.start_rule(StartRuleRequest { id: "r".into() }).await.unwrap();
    wait_state(&b, "r", Some(true)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_state(&a, "r", Some(false)).await;

    // Its server dies: the other takes it over once the dead one's lease lapses.
    let died = std::time::Instant::now();
    b.kill9();
    wait_state(&a, "r", Some(true)).await;
    assert_eq!(owner(&a, "r").await, a_name);
    assert!(died.elapsed() < Duration::from_secs(15), "taken over in {:?}", died.elapsed());

    a.rules().await.delete_rule(DeleteRuleRequest { id: "r".into() }).await.unwrap();
    wait_state(&a, "r", None).await;
    let b = start(b_dir.path(), &catalog).await;

    // A schema registered through one is compiled into the other's registry,
    // where a stream's SCHEMAID is checked.
    let content = "syntax = \"proto3\"; package plant; message Reading { double t = 1; }".to_owned();
    let schema = Schema { name: "plant".into(), content, ..Default::default() };
    SchemaServiceClient::new(a.channel().await)
        .create_schema(CreateSchemaRequest { schema: Some(schema) })
        .await
        .unwrap();
    let sql =
        r#"CREATE STREAM p () WITH (TYPE="httppush", DATASOURCE="/p", FORMAT="protobuf", SCHEMAID="plant.Reading")"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Err(error) = b.streams().await.create_stream(CreateStreamRequest { sql: sql.to_owned() }).await {
        assert!(tokio::time::Instant::now() < deadline, "the schema did not reach the other server: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restart_through_the_oortd_that_does_not_own_a_rule_restarts_it_on_its_owner() {
    let etcd = EtcdServer::start();
    let catalog = format!("etcd://{}/restart", etcd.endpoint);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (start(a_dir.path(), &catalog).await, start(b_dir.path(), &catalog).await);
    let sql = r#"CREATE STREAM s (v BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#.to_owned();
    a.streams().await.create_stream(CreateStreamRequest { sql }).await.unwrap();
    let rule = common::rule("r", "SELECT v FROM s", vec![action("grpc", &[])]);
    a.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    wait_state(&a, "r", Some(true)).await;
    let a_name = owner(&a, "r").await;

    let before = start_time(&a, "r").await;
    b.rules().await.restart_rule(RestartRuleRequest { id: "r".into() }).await.unwrap();
    wait_restarted(&a, "r", before).await;
    assert!(a.logged(&["rule restarted: another server was asked to"]));
    assert_eq!((owner(&a, "r").await, owner(&b, "r").await), (a_name.clone(), a_name.clone()), "it stays where it ran");
    wait_state(&b, "r", Some(false)).await;

    // Through its owner, it restarts there as before.
    let before = start_time(&a, "r").await;
    a.rules().await.restart_rule(RestartRuleRequest { id: "r".into() }).await.unwrap();
    assert!(start_time(&a, "r").await > before);
    assert_eq!(owner(&a, "r").await, a_name);
    wait_state(&b, "r", Some(false)).await;
}

#[tokio::test]
async fn a_restart_through_any_oortd_restarts_a_split_rule_on_every_oortd() {
    let etcd = EtcdServer::start();
    let catalog = format!("etcd://{}/split_restart", etcd.endpoint);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (start(a_dir.path(), &catalog).await, start(b_dir.path(), &catalog).await);
    // No broker listens there: the rule runs all the same, waiting for one, which is all a restart needs.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let props = action_json("kafka", serde_json::json!({"brokers": format!("127.0.0.1:{port}")})).props;
    let connection = Connection { name: "cluster".into(), r#type: "kafka".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(a.channel().await);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await.unwrap();
    let sql = r#"CREATE STREAM readings (device STRING) WITH (TYPE="kafka", CONF_KEY="cluster",
        DATASOURCE="readings", PARTITION_KEY="device")"#;
    a.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let rule = common::rule("each", "SELECT device FROM readings", vec![action("grpc", &[])]);
    a.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    wait_state(&a, "each", Some(true)).await;
    wait_state(&b, "each", Some(true)).await;
    assert!(status(&a, "each").await.distribution.starts_with("split"));

    let (a_before, b_before) = (start_time(&a, "each").await, start_time(&b, "each").await);
    b.rules().await.restart_rule(RestartRuleRequest { id: "each".into() }).await.unwrap();
    wait_restarted(&b, "each", b_before).await;
    wait_restarted(&a, "each", a_before).await;
}

#[test]
fn an_unreachable_etcd_stops_the_start_with_the_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = Oortd::command()
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--catalog"])
        .arg(format!("etcd://127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot open the shared catalog in etcd 127.0.0.1:{port}")), "{stderr}");
    let bad = Oortd::command().args(["--catalog", "postgres://x"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an etcd:// URL"), "{bad:?}");
}
