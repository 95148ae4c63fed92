//! Rules that run, end to end: events published over gRPC, results read with
//! TailRule, status and plans, windows, chaining through memory topics, and the
//! errors of bad rules and bad events.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Oortd, code_of};
use common::{action, float, int, rule, string};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::function_service_client::FunctionServiceClient;
use oort_proto::v1::{
    CreateRuleRequest, CreateStreamRequest, Event, ExplainRuleRequest, FunctionOrigin, GetRuleStatusRequest,
    ListFunctionsRequest, PublishRequest, Rule, RuleState, StopRuleRequest, TailEncoding, TailRuleRequest,
    TailRuleResponse, Value,
};
use tonic::{Code, Streaming};

/// A rule that waits rather than drops when its input buffer is full.
fn lossless(mut rule: Rule) -> Rule {
    rule.options = Some(oort_proto::v1::RuleOptions {
        buffer_full: oort_proto::v1::BufferFull::Block as i32,
        ..Default::default()
    });
    rule
}

fn event(fields: &[(&str, Value)]) -> Event {
    Event { fields: fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), ..Default::default() }
}

async fn create_stream(oortd: &Oortd, sql: &str) {
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
}

async fn create_rule(oortd: &Oortd, rule: Rule) {
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
}

async fn tail(oortd: &Oortd, id: &str) -> Streaming<TailRuleResponse> {
    tail_batches(oortd, id, 0).await
}

async fn tail_batches(oortd: &Oortd, id: &str, max_batch: u32) -> Streaming<TailRuleResponse> {
    oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: id.into(), max_batch, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
}

async fn publish(oortd: &Oortd, stream: &str, events: Vec<Event>) -> u64 {
    let requests: Vec<PublishRequest> = events
        .into_iter()
        .map(|e| PublishRequest { stream: stream.into(), event: Some(e), ..Default::default() })
        .collect();
    let mut client = EventServiceClient::new(oortd.channel().await);
    client.publish(tokio_stream::iter(requests)).await.unwrap().into_inner().accepted
}

/// The responses of a tail until they carried `count` results, each within 10 s.
async fn read_responses(results: &mut Streaming<TailRuleResponse>, count: usize) -> Vec<TailRuleResponse> {
    let mut responses = Vec::new();
    let mut carried = 0;
    while carried < count {
        let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await;
        let response = next.unwrap_or_else(|_| panic!("{count} results within 10 s each, got {carried}"));
        let response = response.unwrap().expect("the tail stream is open");
        carried += usize::from(response.event.is_some()) + response.events.len() + json_rows(&response).len();
        responses.push(response);
    }
    responses
}

/// The rows of a JSON response (none in a typed one).
fn json_rows(response: &TailRuleResponse) -> Vec<serde_json::Value> {
    if response.json.is_empty() { Vec::new() } else { serde_json::from_slice(&response.json).expect("a JSON array") }
}

/// The `n` column of results, in the order they came.
fn column_n<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Value> {
    events.into_iter().map(|e| e.fields["n"].clone()).collect()
}

/// Publishes `n` = `range`, 256 events a request.
async fn publish_range(oortd: &Oortd, stream: &str, range: std::ops::Range<i64>) {
    let events: Vec<Event> = range.clone().map(|i| event(&[("n", int(i))])).collect();
    let requests: Vec<PublishRequest> = events
        .chunks(256)
        .map(|batch| PublishRequest { stream: stream.into(), events: batch.to_vec(), ..Default::default() })
        .collect();
    let mut client = EventServiceClient::new(oortd.channel().await);
    let accepted = client.publish(tokio_stream::iter(requests)).await.unwrap().into_inner().accepted;
    assert_eq!(accepted, range.count() as u64);
}

/// The next result row, or a panic after 10 s.
async fn next_row(results: &mut Streaming<TailRuleResponse>) -> HashMap<String, Value> {
    let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("a result within 10 s");
    next.unwrap().expect("the tail stream is open").event.unwrap().fields
}

#[tokio::test]
async fn publish_takes_batches_in_order_and_refuses_a_request_without_events() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    create_rule(&oortd, rule("all", "SELECT n FROM demo", vec![action("grpc", &[])])).await;
    let mut results = tail(&oortd, "all").await;

    let n = |i: i64| event(&[("n", int(i))]);
    let requests = vec![
        PublishRequest {
            stream: "demo".into(),
            event: Some(n(0)),
            events: (1..100).map(n).collect(),
            ..Default::default()
        },
        PublishRequest { stream: "demo".into(), events: (100..250).map(n).collect(), ..Default::default() },
    ];
    let mut client = EventServiceClient::new(oortd.channel().await);
    let accepted = client.publish(tokio_stream::iter(requests)).await.unwrap().into_inner().accepted;
    assert_eq!(accepted, 250);
    for i in 0..250 {
        assert_eq!(next_row(&mut results).await["n"], int(i), "events arrive in order");
    }

    let empty = vec![PublishRequest { stream: "demo".into(), ..Default::default() }];
    let error = client.publish(tokio_stream::iter(empty)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("no event"), "{}", error.message());
}

#[tokio::test]
async fn filter_and_project_from_publish_to_tail() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(
        &oortd,
        r#"CREATE STREAM demo (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="demo")"#,
    )
    .await;
    create_rule(
        &oortd,
        rule(
            "f2c",
            "SELECT temperature * 1.8 + 32 AS f, deviceId FROM demo WHERE temperature > 20",
            vec![action("grpc", &[]), action("log", &[])],
        ),
    )
    .await;
    let mut results = tail(&oortd, "f2c").await;

    let accepted = publish(
        &oortd,
        "demo",
        vec![
            event(&[("temperature", float(25.0)), ("deviceId", string("a"))]),
            event(&[("temperature", float(10.0)), ("deviceId", string("b"))]),
            event(&[("temperature", string("hot")), ("deviceId", string("c"))]),
            event(&[("temperature", int(30)), ("deviceId", string("d"))]),
        ],
    )
    .await;
    assert_eq!(accepted, 4);

    let first = next_row(&mut results).await;
    assert_eq!(first["f"], float(77.0));
    assert_eq!(first["deviceId"], string("a"));
    let second = next_row(&mut results).await;
    assert_eq!(second["f"], float(86.0), "an int for a FLOAT field is converted");
    assert_eq!(second["deviceId"], string("d"));

    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "f2c".into() }).await.unwrap().into_inner();
    assert_eq!(status.state, RuleState::Running as i32);
    let op =
        |name: &str| status.operators.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{name} in {status:?}"));
    assert_eq!(op("source_demo_0").records_out_total, 4);
    assert_eq!(op("op_decoder_0").exceptions_total, 1, "the malformed event is counted and dropped");
    assert!(op("op_decoder_0").last_exception.contains("temperature"), "{:?}", op("op_decoder_0"));
    assert_eq!(op("op_filter_0").records_in_total, 3);
    assert_eq!(op("op_filter_0").records_out_total, 2);
    assert_eq!(op("op_project_0").records_out_total, 2);

    let plan =
        oortd.rules().await.explain_rule(ExplainRuleRequest { id: "f2c".into() }).await.unwrap().into_inner().plan;
    assert!(plan.contains("op_filter_0: WHERE temperature > 20"), "{plan}");
    assert!(plan.contains("sink_grpc_0"), "{plan}");

    oortd.rules().await.stop_rule(StopRuleRequest { id: "f2c".into() }).await.unwrap();
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "f2c".into() }).await.unwrap().into_inner();
    assert_eq!(status.state, RuleState::Stopped as i32);
    let ended = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("the tail ends");
    assert!(matches!(ended, Ok(None)), "the tail stream ends when the rule stops: {ended:?}");
}

#[tokio::test]
async fn count_window_aggregates_by_group() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM s (k STRING, v BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(
        &oortd,
        rule(
            "agg",
            "SELECT k, count(*) AS n, sum(v) AS total, max(v) AS top FROM s GROUP BY k, COUNTWINDOW(4) HAVING count(*) > 1 ORDER BY k DESC",
            vec![action("grpc", &[])],
        ),
    )
    .await;
    let mut results = tail(&oortd, "agg").await;
    let events = [("a", 1), ("b", 5), ("a", 3), ("c", 9)].map(|(k, v)| event(&[("k", string(k)), ("v", int(v))]));
    publish(&oortd, "s", events.to_vec()).await;
    let only = next_row(&mut results).await;
    assert_eq!(only["k"], string("a"), "b and c have one row each: HAVING drops them");
    assert_eq!(only["n"], int(2));
    assert_eq!(only["total"], int(4));
    assert_eq!(only["top"], int(3));
}

#[tokio::test]
async fn rules_chain_through_memory_topics() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM raw () WITH (TYPE="grpc", DATASOURCE="raw")"#).await;
    create_stream(&oortd, r#"CREATE STREAM hot () WITH (TYPE="memory", DATASOURCE="alerts/hot")"#).await;
    create_rule(&oortd, rule("second", "SELECT id, t * 10 AS t10 FROM hot", vec![action("grpc", &[])])).await;
    create_rule(
        &oortd,
        rule("first", "SELECT id, t FROM raw WHERE t > 50", vec![action("memory", &[("topic", "alerts/hot")])]),
    )
    .await;
    let mut results = tail(&oortd, "second").await;
    publish(&oortd, "raw", vec![event(&[("id", int(1)), ("t", int(40))]), event(&[("id", int(2)), ("t", int(60))])])
        .await;
    let row = next_row(&mut results).await;
    assert_eq!(row["id"], int(2));
    assert_eq!(row["t10"], int(600));
}

#[tokio::test]
async fn bad_rules_are_refused_with_positions_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (temperature FLOAT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    create_stream(&oortd, r#"CREATE STREAM far () WITH (TYPE="edgex", DATASOURCE="far")"#).await;
    let mut rules = oortd.rules().await;
    let cases = [
        ("SELECT humidity FROM demo", Code::InvalidArgument, "line 1, column 8"),
        ("SELECT nosuchfn(temperature) FROM demo", Code::InvalidArgument, "nosuchfn"),
        ("SELECT avg(temperature) FROM demo", Code::InvalidArgument, "window"),
        ("SELECT * FROM far", Code::InvalidArgument, "edgex"),
    ];
    for (sql, expected_code, expected_text) in cases {
        let (code, message) = code_of(
            rules.create_rule(CreateRuleRequest { rule: Some(rule("bad", sql, vec![action("log", &[])])) }).await,
        );
        assert_eq!(code, expected_code, "{sql}: {message}");
        assert!(message.contains(expected_text), "{sql}: {message:?} should mention {expected_text:?}");
    }
    let (code, message) = code_of(
        rules
            .create_rule(CreateRuleRequest {
                rule: Some(rule("bad", "SELECT * FROM demo", vec![action("nosink", &[])])),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("nosink"), "{message}");
    let (code, _) = code_of(
        rules
            .create_rule(CreateRuleRequest {
                rule: Some(rule("bad", "SELECT * FROM demo", vec![action("memory", &[])])),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument, "a memory sink without a topic cannot start");
    let listed = rules.list_rules(oort_proto::v1::ListRulesRequest::default()).await.unwrap().into_inner().rules;
    assert!(listed.is_empty(), "nothing stored: {listed:?}");
}

#[tokio::test]
async fn functions_are_listed_with_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut client = FunctionServiceClient::new(oortd.channel().await);
    let functions = client.list_functions(ListFunctionsRequest::default()).await.unwrap().into_inner().functions;
    assert!(functions.len() >= 60, "{} functions", functions.len());
    let avg = functions.iter().find(|f| f.name == "avg").expect("avg");
    assert!(avg.aggregate);
    assert_eq!(avg.origin, FunctionOrigin::Builtin as i32);
    let abs = functions.iter().find(|f| f.name == "abs").expect("abs");
    assert!(!abs.aggregate);
}

#[tokio::test]
async fn running_rules_come_back_after_a_restart_and_stopped_ones_stay_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("on", "SELECT * FROM s", vec![action("grpc", &[])])).await;
    create_rule(&oortd, Rule { triggered: Some(false), ..rule("off", "SELECT * FROM s", vec![action("grpc", &[])]) })
        .await;
    oortd.kill9();

    let oortd = Oortd::start(dir.path()).await;
    let state = |id: &'static str| {
        let oortd = &oortd;
        async move {
            oortd
                .rules()
                .await
                .get_rule_status(GetRuleStatusRequest { id: id.into() })
                .await
                .unwrap()
                .into_inner()
                .state
        }
    };
    assert_eq!(state("on").await, RuleState::Running as i32);
    assert_eq!(state("off").await, RuleState::Stopped as i32);
    let mut results = tail(&oortd, "on").await;
    publish(&oortd, "s", vec![event(&[("x", int(1))])]).await;
    assert_eq!(next_row(&mut results).await["x"], int(1));
}

/// Waits until a rule's operator has emitted `count` records.
async fn wait_records_out(oortd: &Oortd, rule: &str, operator: &str, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: rule.into() }).await.unwrap();
        let out = status.into_inner().operators.iter().find(|o| o.name == operator).map(|o| o.records_out_total);
        if out >= Some(count) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rule}/{operator} emitted {out:?} of {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn events_join_a_table_kept_by_a_memory_topic() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM dev_in () WITH (TYPE="grpc", DATASOURCE="dev_in")"#).await;
    create_stream(
        &oortd,
        r#"CREATE TABLE devices (id BIGINT, name STRING) WITH (TYPE="memory", DATASOURCE="devices", KEY="id")"#,
    )
    .await;
    create_stream(&oortd, r#"CREATE STREAM readings (id BIGINT, v FLOAT) WITH (TYPE="grpc", DATASOURCE="readings")"#)
        .await;
    create_rule(&oortd, rule("feed", "SELECT * FROM dev_in", vec![action("memory", &[("topic", "devices")])])).await;
    create_rule(
        &oortd,
        rule(
            "inner",
            "SELECT r.id, d.name, r.v FROM readings AS r INNER JOIN devices AS d ON r.id = d.id",
            vec![action("grpc", &[])],
        ),
    )
    .await;
    create_rule(
        &oortd,
        rule(
            "left",
            "SELECT readings.id, devices.name FROM readings LEFT JOIN devices ON readings.id = devices.id",
            vec![action("grpc", &[])],
        ),
    )
    .await;
    // eKuiper's TestSingleSQLRule12: a table first in FROM, and ON naming the SELECT's aliases.
    create_rule(
        &oortd,
        rule(
            "table_first",
            "SELECT readings.id AS rid, devices.name AS dname FROM devices INNER JOIN readings ON rid = devices.id",
            vec![action("grpc", &[])],
        ),
    )
    .await;
    let plan =
        oortd.rules().await.explain_rule(ExplainRuleRequest { id: "inner".into() }).await.unwrap().into_inner().plan;
    assert!(plan.contains("op_join_0: INNER JOIN table devices AS d"), "{plan}");
    let plan = oortd
        .rules()
        .await
        .explain_rule(ExplainRuleRequest { id: "table_first".into() })
        .await
        .unwrap()
        .into_inner()
        .plan;
    assert!(plan.starts_with("source_readings_0"), "the stream is the rule's: {plan}");
    for (sql, message) in [
        ("SELECT * FROM devices LEFT JOIN readings ON readings.id = devices.id", "a table first in FROM joins"),
        ("SELECT lag(v) AS l FROM readings INNER JOIN devices ON l = devices.id", "ON cannot use an analytic"),
    ] {
        let bad = rule("bad", sql, vec![action("grpc", &[])]);
        let (code, text) = code_of(oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(bad) }).await);
        assert_eq!(code, tonic::Code::InvalidArgument, "{sql}");
        assert!(text.contains(message), "{sql}: {text}");
    }

    // Device 1 is renamed: with KEY="id" the table keeps the latest row only.
    let devices =
        [(1, "pump"), (2, "fan"), (1, "big pump")].map(|(id, name)| event(&[("id", int(id)), ("name", string(name))]));
    publish(&oortd, "dev_in", devices.to_vec()).await;
    wait_records_out(&oortd, "inner", "source_devices_0", 3).await;

    let mut inner = tail(&oortd, "inner").await;
    let mut left = tail(&oortd, "left").await;
    let mut table_first = tail(&oortd, "table_first").await;
    publish(
        &oortd,
        "readings",
        vec![event(&[("id", int(1)), ("v", float(1.5))]), event(&[("id", int(3)), ("v", float(2.0))])],
    )
    .await;
    let row = next_row(&mut inner).await;
    assert_eq!((row["id"].clone(), row["name"].clone(), row["v"].clone()), (int(1), string("big pump"), float(1.5)));
    let row = next_row(&mut table_first).await;
    assert_eq!((row["rid"].clone(), row["dname"].clone()), (int(1), string("big pump")));
    let first = next_row(&mut left).await;
    assert_eq!(first["name"], string("big pump"));
    let second = next_row(&mut left).await;
    assert_eq!(second["id"], int(3));
    assert!(!second.contains_key("name"), "no device 3: its name is NULL, and NULL columns are omitted: {second:?}");
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "inner".into() }).await.unwrap().into_inner();
    let join = status.operators.iter().find(|o| o.name == "op_join_0").unwrap();
    assert_eq!((join.records_in_total, join.records_out_total), (2, 1), "the unmatched reading leaves the inner join");
}

#[tokio::test]
async fn events_posted_over_http_reach_httppush_streams() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let push = oortd.push_addr.clone().expect("the harness enables HTTP push");
    create_stream(&oortd, r#"CREATE STREAM pushed (t BIGINT) WITH (TYPE="httppush", DATASOURCE="/api/data")"#).await;
    create_rule(
        &oortd,
        rule("http", "SELECT t, meta(path) AS path FROM pushed WHERE t > 1", vec![action("grpc", &[])]),
    )
    .await;
    let mut results = tail(&oortd, "http").await;

    let http = common::http();
    let url = format!("http://{push}/api/data");
    for body in [r#"{"t": 1}"#, "not json", r#"{"t": 5}"#] {
        let response = http.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{body}");
    }
    let row = next_row(&mut results).await;
    assert_eq!(row["t"], int(5));
    assert_eq!(row["path"], string("/api/data"));

    let nobody = http.post(format!("http://{push}/nobody")).body("{}").send().await.unwrap();
    assert_eq!(nobody.status(), 404, "no rule reads that path");
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "http".into() }).await.unwrap().into_inner();
    let decoder = status.operators.iter().find(|o| o.name == "op_decoder_0").unwrap();
    assert_eq!(decoder.exceptions_total, 1, "the body that is not JSON is counted");
}

#[tokio::test]
async fn delimited_payloads_are_read_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    let push = oortd.push_addr.clone().expect("the harness enables HTTP push");
    let sql = r#"CREATE STREAM lines (id BIGINT, t FLOAT, site STRING) WITH (TYPE="httppush", DATASOURCE="/lines", FORMAT="delimited", DELIMITER="|")"#;
    create_stream(&oortd, sql).await;
    let props = serde_json::json!({"path": "hot.csv", "format": "delimited", "sendSingle": true, "fields": ["site", "id", "t"], "interval": 0});
    // A second action writes a file per site: a path template.
    let by_site = serde_json::json!({"path": "sites/{{.site}}.jsonl", "sendSingle": true, "interval": 0});
    let actions = vec![common::action_json("file", props), common::action_json("file", by_site)];
    create_rule(&oortd, rule("hot", "SELECT * FROM lines WHERE t > 20", actions)).await;
    let http = common::http();
    for body in ["1|19.5|north", "2|21|south\n", "3|x|east", "4|22.5|"] {
        http.post(format!("http://{push}/lines")).body(body).send().await.unwrap();
    }
    let out = dir.path().join("data/files/hot.csv");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&out).unwrap_or_default().lines().count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", std::fs::read_to_string(&out));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "south,2,21\n,4,22.5\n");
    let south = std::fs::read_to_string(dir.path().join("data/files/sites/south.jsonl")).unwrap();
    assert_eq!(south, "{\"id\":2,\"site\":\"south\",\"t\":21.0}\n");
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "hot".into() }).await.unwrap().into_inner();
    let decoder = status.operators.iter().find(|o| o.name == "op_decoder_0").unwrap();
    assert!(decoder.last_exception.contains("\"x\" is not a FLOAT"), "{decoder:?}");
}

#[tokio::test]
async fn events_join_a_table_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    // Relative to <data_dir>/files, the root of file connectors.
    let lookup = dir.path().join("data/files/devices.jsonl");
    std::fs::write(&lookup, "{\"id\": 1, \"name\": \"pump\"}\n{\"id\": 2, \"name\": \"fan\"}\n").unwrap();
    let table = r#"CREATE TABLE devices (id BIGINT, name STRING) WITH (TYPE="file", DATASOURCE="devices.jsonl", FORMAT="json")"#;
    create_stream(&oortd, table).await;
    create_stream(&oortd, r#"CREATE STREAM readings (id BIGINT, v FLOAT) WITH (TYPE="grpc", DATASOURCE="readings")"#)
        .await;
    let sql = "SELECT readings.v, devices.name FROM readings INNER JOIN devices ON readings.id = devices.id";
    create_rule(&oortd, rule("file_join", sql, vec![action("grpc", &[])])).await;
    wait_records_out(&oortd, "file_join", "source_devices_0", 2).await;
    let mut results = tail(&oortd, "file_join").await;
    publish(&oortd, "readings", vec![event(&[("id", int(2)), ("v", float(0.5))])]).await;
    let row = next_row(&mut results).await;
    assert_eq!((row["name"].clone(), row["v"].clone()), (string("fan"), float(0.5)));
}

#[tokio::test]
async fn a_fast_publisher_is_held_back_by_a_lossless_rule_and_a_dropping_rule_counts_its_drops() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM fast (n BIGINT) WITH (TYPE="grpc", DATASOURCE="fast")"#).await;
    create_rule(&oortd, lossless(rule("fast", "SELECT n FROM fast WHERE n < 0", vec![action("log", &[])]))).await;
    create_rule(&oortd, rule("dropping", "SELECT n FROM fast WHERE n < 0", vec![action("log", &[])])).await;
    // Far more than the bus buffers (4096): without backpressure most would be lost.
    let count = 20_000;
    let accepted = publish(&oortd, "fast", (0..count).map(|n| event(&[("n", int(n))])).collect()).await;
    assert_eq!(accepted, count as u64);
    wait_records_out(&oortd, "fast", "op_decoder_0", count as u64).await;
    // Whatever the dropping rule did not take, it counted: nothing is lost unseen.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "dropping".into() }).await;
        let source = status.unwrap().into_inner().operators.remove(0);
        if source.records_in_total + source.records_dropped_total == count as u64 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{source:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tail_rule_without_max_batch_sends_one_result_a_response() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    // The window hands its 1,000 rows to the tail in one batch.
    create_rule(&oortd, rule("window", "SELECT n FROM demo GROUP BY COUNTWINDOW(1000)", vec![action("log", &[])]))
        .await;
    let mut results = tail(&oortd, "window").await;
    publish_range(&oortd, "demo", 0..1000).await;

    let responses = read_responses(&mut results, 1000).await;
    assert_eq!(responses.len(), 1000);
    assert!(responses.iter().all(|r| r.events.is_empty()), "results come in `event` only");
    assert_eq!(column_n(responses.iter().filter_map(|r| r.event.as_ref())), (0..1000).map(int).collect::<Vec<_>>());
}

#[tokio::test]
async fn tail_rule_with_max_batch_sends_up_to_n_results_a_response_in_order_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    create_rule(&oortd, rule("each", "SELECT n FROM demo", vec![action("log", &[])])).await;
    create_rule(&oortd, rule("window", "SELECT n FROM demo GROUP BY COUNTWINDOW(1000)", vec![action("log", &[])]))
        .await;
    let mut each = tail_batches(&oortd, "each", 64).await;
    let mut window = tail_batches(&oortd, "window", 300).await;
    let mut unbatched = tail(&oortd, "each").await;
    publish_range(&oortd, "demo", 0..1000).await;
    let all: Vec<Value> = (0..1000).map(int).collect();

    // However the engine batched them, at most 64 a response, all of them, in order.
    let responses = read_responses(&mut each, 1000).await;
    assert!(responses.iter().all(|r| r.event.is_none() && (1..=64).contains(&r.events.len())));
    assert_eq!(column_n(responses.iter().flat_map(|r| &r.events)), all);
    // The window's 1,000 rows come as one batch from the engine: cut into 300s.
    let responses = read_responses(&mut window, 1000).await;
    assert_eq!(responses.iter().map(|r| r.events.len()).collect::<Vec<_>>(), [300, 300, 300, 100]);
    assert_eq!(column_n(responses.iter().flat_map(|r| &r.events)), all);
    // Another reader of the same rule still gets one result a response.
    let responses = read_responses(&mut unbatched, 1000).await;
    assert_eq!(column_n(responses.iter().filter_map(|r| r.event.as_ref())), all);

    // A lone result goes at once: the tail does not wait to fill a batch.
    publish_range(&oortd, "demo", 1000..1001).await;
    let lone = &read_responses(&mut each, 1).await[0];
    assert_eq!(column_n(&lone.events), [int(1000)]);
}

#[tokio::test]
async fn events_in_json_go_in_after_the_typed_ones_and_bad_json_publishes_none_of_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT, x FLOAT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    create_rule(&oortd, rule("all", "SELECT n, x FROM demo", vec![action("grpc", &[])])).await;
    let mut results = tail(&oortd, "all").await;
    let mut client = EventServiceClient::new(oortd.channel().await);
    let json = |text: &str| text.as_bytes().to_vec();

    let requests = vec![
        PublishRequest {
            stream: "demo".into(),
            event: Some(event(&[("n", int(0))])),
            json: json(r#"[{"n": 1, "x": 2}, {"n": 2, "x": 2.5, "other": "dropped by the schema"}]"#),
            ..Default::default()
        },
        PublishRequest { stream: "demo".into(), json: json(r#"{"n": 3}"#), ..Default::default() },
    ];
    assert_eq!(client.publish(tokio_stream::iter(requests)).await.unwrap().into_inner().accepted, 4);
    let mut got = Vec::new();
    for _ in 0..4 {
        let row = next_row(&mut results).await;
        got.push((row["n"].clone(), row.get("x").cloned()));
    }
    // The schema converts JSON's integer 2 into the FLOAT column; a missing field is left out.
    assert_eq!(got, [(int(0), None), (int(1), Some(float(2.0))), (int(2), Some(float(2.5))), (int(3), None)]);

    for (text, expected) in
        [("[{\"n\": 4},\n {\"n\" 5}]", "line 2 column"), (r#"[{"n": 4}, 5]"#, "element 1"), ("17", "array of objects")]
    {
        let bad = PublishRequest {
            stream: "demo".into(),
            event: Some(event(&[("n", int(4))])),
            json: json(text),
            ..Default::default()
        };
        let error = client.publish(tokio_stream::iter(vec![bad])).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{text}");
        assert!(error.message().contains(expected), "{text}: {}", error.message());
    }
    // None of the bad requests' events went in: the next result is the next good event.
    let good = PublishRequest { stream: "demo".into(), json: json(r#"{"n": 9}"#), ..Default::default() };
    client.publish(tokio_stream::iter(vec![good])).await.unwrap();
    assert_eq!(next_row(&mut results).await["n"], int(9));
}

#[tokio::test]
async fn tail_rule_in_json_sends_arrays_of_up_to_n_rows_as_json_sinks_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    create_rule(
        &oortd,
        rule(
            "window",
            "SELECT n, n / 2.0 AS half, 'x' AS s FROM demo GROUP BY COUNTWINDOW(1000)",
            vec![action("log", &[])],
        ),
    )
    .await;
    let request =
        |max_batch| TailRuleRequest { id: "window".into(), max_batch, encoding: TailEncoding::Json as i32, from: None };
    let mut batched = oortd.rules().await.tail_rule(request(300)).await.unwrap().into_inner();
    let mut single = oortd.rules().await.tail_rule(request(0)).await.unwrap().into_inner();
    publish_range(&oortd, "demo", 0..1000).await;

    let arrays = |responses: Vec<TailRuleResponse>| -> Vec<Vec<serde_json::Value>> {
        responses
            .iter()
            .map(|r| {
                assert!(r.event.is_none() && r.events.is_empty(), "JSON results come in `json` only");
                json_rows(r)
            })
            .collect()
    };
    let expected: Vec<serde_json::Value> =
        (0..1000).map(|n| serde_json::json!({"n": n, "half": n as f64 / 2.0, "s": "x"})).collect();
    let batches = arrays(read_responses(&mut batched, 1000).await);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [300, 300, 300, 100]);
    assert_eq!(batches.concat(), expected);
    // max_batch 0: one row an array.
    let singles = arrays(read_responses(&mut single, 1000).await);
    assert!(singles.iter().all(|a| a.len() == 1));
    assert_eq!(singles.concat(), expected);

    let unknown = TailRuleRequest { id: "window".into(), encoding: 7, ..Default::default() };
    let error = oortd.rules().await.tail_rule(unknown).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn tail_rule_takes_max_batch_above_4096_as_4096() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM demo (n BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#).await;
    let window = rule("window", "SELECT n FROM demo GROUP BY COUNTWINDOW(5000)", vec![action("log", &[])]);
    create_rule(&oortd, lossless(window)).await;
    let mut results = tail_batches(&oortd, "window", u32::MAX).await;
    publish_range(&oortd, "demo", 0..5000).await;

    let responses = read_responses(&mut results, 5000).await;
    assert_eq!(responses.iter().map(|r| r.events.len()).collect::<Vec<_>>(), [4096, 904]);
    assert_eq!(column_n(responses.iter().flat_map(|r| &r.events)), (0..5000).map(int).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rule_with_debug_logs_each_result() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM dbg_in (x BIGINT) WITH (TYPE="grpc", DATASOURCE="dbg_in")"#).await;
    let mut debugged = rule("dbg", "SELECT x * 7 AS y FROM dbg_in", vec![action("grpc", &[])]);
    debugged.options = Some(oort_proto::v1::RuleOptions { debug: true, ..Default::default() });
    create_rule(&oortd, debugged).await;
    let mut results = tail(&oortd, "dbg").await;
    publish(&oortd, "dbg_in", vec![event(&[("x", int(6))])]).await;
    assert_eq!(next_row(&mut results).await["y"], int(42));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !oortd.logged(&["oort::rule_debug", "rule=dbg", r#"[{"y":42}]"#]) {
        assert!(tokio::time::Instant::now() < deadline, "the result was not logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rule_with_a_log_filename_logs_to_its_own_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM own_in (x BIGINT) WITH (TYPE="grpc", DATASOURCE="own_in")"#).await;
    let mut bad = rule("escape", "SELECT x FROM own_in", vec![action("log", &[])]);
    bad.options = Some(oort_proto::v1::RuleOptions { log_filename: "../escape.log".into(), ..Default::default() });
    let (code, message) = code_of(oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(bad) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("must be a file name"), "{message}");

    for id in ["own", "other"] {
        let mut logged = rule(id, "SELECT x * 7 AS y FROM own_in", vec![action("grpc", &[])]);
        let log_filename = if id == "own" { "own.log".into() } else { String::new() };
        logged.options = Some(oort_proto::v1::RuleOptions { debug: true, log_filename, ..Default::default() });
        create_rule(&oortd, logged).await;
    }
    let mut results = tail(&oortd, "own").await;
    publish(&oortd, "own_in", vec![event(&[("x", int(6))])]).await;
    assert_eq!(next_row(&mut results).await["y"], int(42));
    let file = dir.path().join("logs/own.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains(r#"oort::rule_debug: "#) && text.contains(r#"[{"y":42}]"#) {
            // Only the lines of its own rule, not of the other one.
            assert!(text.lines().all(|l| !l.contains("other")), "{text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not in {}: {text}", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_file_read_once_finishes_its_rule_with_the_open_window_emitted_and_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    let lines: String = (1..=5).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    std::fs::write(dir.path().join("files/five.jsonl"), lines).unwrap();
    let oortd = Oortd::start(dir.path()).await;
    // An event every 100 ms: the tail is open before the file ends.
    let ddl = r#"CREATE STREAM five (n BIGINT) WITH (TYPE="file", DATASOURCE="five.jsonl", SEND_INTERVAL="100")"#;
    create_stream(&oortd, ddl).await;
    // A window far longer than the file takes to read, and a restart strategy
    // that would read the file again were its end a failure.
    let mut counted = rule(
        "count",
        "SELECT count(*) AS c, sum(n) AS s FROM five GROUP BY TUMBLINGWINDOW(ss, 600)",
        vec![action("grpc", &[])],
    );
    counted.options = Some(oort_proto::v1::RuleOptions {
        restart_strategy: Some(oort_proto::v1::RestartStrategy {
            attempts: 3,
            delay_ms: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    });
    create_rule(&oortd, counted).await;
    let mut results = tail(&oortd, "count").await;
    let row = next_row(&mut results).await;
    assert_eq!((row["c"].clone(), row["s"].clone()), (int(5), int(15)));
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "count".into() }).await.unwrap().into_inner();
    assert_eq!(status.state, RuleState::Finished as i32, "{status:?}");
    assert!(status.last_error.is_empty(), "{status:?}");
    assert_eq!(status.restart_count, 0);
    assert!(status.operators.iter().all(|o| o.exceptions_total == 0), "{:?}", status.operators);
    // Nothing more comes: the file is not read again.
    assert!(tokio::time::timeout(Duration::from_millis(500), results.message()).await.is_err());
}

#[tokio::test]
async fn a_sink_with_batch_size_and_linger_gets_the_rows_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM batched (n BIGINT) WITH (TYPE="grpc", DATASOURCE="batched")"#).await;
    let props = serde_json::json!({"path": "batches.jsonl", "interval": 0, "batchSize": 3, "lingerInterval": 300});
    create_rule(&oortd, lossless(rule("batches", "SELECT n FROM batched", vec![common::action_json("file", props)])))
        .await;
    publish_range(&oortd, "batched", 1..8).await;
    let file = dir.path().join("files/batches.jsonl");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().count() >= 3 {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "three batches in {}: {text}", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Two full batches, then the last row once the linger is over.
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        [r#"[{"n":1},{"n":2},{"n":3}]"#, r#"[{"n":4},{"n":5},{"n":6}]"#, r#"[{"n":7}]"#]
    );
    let bad =
        rule("bad", "SELECT n FROM batched", vec![common::action_json("log", serde_json::json!({"batchSize": -2}))]);
    let (code, message) = code_of(oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(bad) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("batchSize"), "{message}");
}
