//! External functions end to end: the Python demo service of
//! `testdata/external/` registered through `ExternalService`, called by rules
//! over gRPC and REST, and the errors of bad descriptions and bad calls.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::AuthChannel;
use common::demo::{self, Demo};
use common::{Oortd, code_of};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::external_service_client::ExternalServiceClient;
use oort_proto::v1::function_service_client::FunctionServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, DeleteServiceRequest, Event, FunctionOrigin, GetRuleStatusRequest,
    GetServiceRequest, ListFunctionsRequest, ListServicesRequest, ListValue, MapValue, ProtoFile, PublishRequest,
    RegisterServiceRequest, Rule, RuleState, TailRuleRequest, TailRuleResponse, UpdateServiceRequest, Value,
};
use serde_json::json;
use tonic::{Code, Streaming};

async fn services(oortd: &Oortd) -> ExternalServiceClient<AuthChannel> {
    ExternalServiceClient::new(oortd.channel().await)
}

async fn register(
    oortd: &Oortd,
    name: &str,
    description_json: &str,
    proto_files: Vec<ProtoFile>,
) -> Result<(), tonic::Status> {
    let request = RegisterServiceRequest {
        name: name.into(),
        description_json: description_json.into(),
        proto_files,
        ..Default::default()
    };
    services(oortd).await.register_service(request).await.map(|_| ())
}

async fn register_demo(oortd: &Oortd, demo: &Demo) {
    register(oortd, "demo", &demo.description_json(), demo::proto_files()).await.expect("the demo service registers");
}

async fn create_stream(oortd: &Oortd, sql: &str) {
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
}

fn grpc_action() -> Action {
    Action { r#type: "grpc".into(), props: None }
}

async fn create_rule(oortd: &Oortd, id: &str, sql: &str) {
    let rule = Rule { id: id.into(), sql: sql.into(), actions: vec![grpc_action()], ..Default::default() };
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
}

async fn tail(oortd: &Oortd, id: &str) -> Streaming<TailRuleResponse> {
    oortd.rules().await.tail_rule(TailRuleRequest { id: id.into(), ..Default::default() }).await.unwrap().into_inner()
}

/// A JSON value as an `oort.v1.Value` (integers stay integers).
fn value(json: &serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntValue(i),
            None => Kind::FloatValue(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(value).collect() }),
        serde_json::Value::Object(map) => {
            Kind::MapValue(MapValue { fields: map.iter().map(|(k, v)| (k.clone(), value(v))).collect() })
        }
    };
    Value { kind: Some(kind) }
}

/// An `oort.v1.Value` as JSON, for assertions.
fn json_of(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::IntValue(i)) => json!(i),
        Some(Kind::FloatValue(f)) => json!(f),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BytesValue(b)) => json!(format!("{} bytes", b.len())),
        Some(Kind::TimestampValue(t)) => json!(t.seconds),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(json_of).collect()),
        Some(Kind::MapValue(m)) => {
            serde_json::Value::Object(m.fields.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

async fn publish(oortd: &Oortd, stream: &str, events: &[serde_json::Value]) {
    let requests: Vec<PublishRequest> = events
        .iter()
        .map(|e| {
            let Some(Kind::MapValue(map)) = value(e).kind else { panic!("an event is an object") };
            PublishRequest {
                stream: stream.into(),
                event: Some(Event { fields: map.fields, ..Default::default() }),
                ..Default::default()
            }
        })
        .collect();
    let mut client = EventServiceClient::new(oortd.channel().await);
    client.publish(tokio_stream::iter(requests)).await.unwrap();
}

/// The next result row as a JSON object, or a panic after 10 s.
async fn next_row(results: &mut Streaming<TailRuleResponse>) -> serde_json::Value {
    let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("a result within 10 s");
    let fields: HashMap<String, Value> = next.unwrap().expect("the tail stream is open").event.unwrap().fields;
    serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
}

/// The status of one operator of a rule, once it has counted `exceptions` errors (10 s at most).
async fn wait_exceptions(oortd: &Oortd, rule: &str, operator: &str, exceptions: u64) -> oort_proto::v1::OperatorStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status =
            oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: rule.into() }).await.unwrap().into_inner();
        assert_eq!(status.state, RuleState::Running as i32, "the rule keeps running: {status:?}");
        let op = status.operators.iter().find(|o| o.name == operator).cloned().expect("the operator exists");
        if op.exceptions_total >= exceptions {
            return op;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rule}/{operator}: {op:?}, expected {exceptions} exceptions");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const FEATURE_EVENT: &str = r#"{"x": 3, "device": "d1", "values": [2.5, 4.0], "hint": {"w": 1, "h": 0}}"#;

#[tokio::test]
async fn grpc_functions_are_called_from_rules_and_survive_a_restart() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;

    let functions = FunctionServiceClient::new(oortd.channel().await)
        .list_functions(ListFunctionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .functions;
    let square = functions.iter().find(|f| f.name == "square").expect("square is listed");
    assert_eq!((square.origin, square.owner.as_str()), (FunctionOrigin::External as i32, "demo"));

    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(
        &oortd,
        "calls",
        "SELECT square(x) AS sq, getFeature(self)->feature[0]->box->h AS h, getFeature(self) AS f, \
         toUpper(device) AS up, scale(x, 2.5) AS scaled FROM s",
    )
    .await;
    let mut results = tail(&oortd, "calls").await;
    publish(&oortd, "s", &[serde_json::from_str(FEATURE_EVENT).unwrap()]).await;
    let row = next_row(&mut results).await;
    assert_eq!(row["sq"], json!(9), "a one-field response is its value");
    assert_eq!(row["h"], json!(5), "results are navigable");
    assert_eq!(row["up"], json!("D1"), "StringValue in and out");
    assert_eq!(row["scaled"], json!(7.5), "two arguments fill the fields in order");
    assert_eq!(
        row["f"],
        json!({
            "device": "d1",
            "count": 3,
            "feature": [
                {"label": "d1-0", "box": {"w": 2, "h": 5}, "scores": [2.5, 1.25]},
                {"label": "d1-1", "box": {"w": 4, "h": 8}, "scores": [4.0, 2.0]}
            ]
        }),
        "self fills the request by name: nested and repeated fields both ways"
    );

    let got = services(&oortd).await.get_service(GetServiceRequest { name: "demo".into() }).await.unwrap().into_inner();
    let service = got.service.unwrap();
    assert_eq!(service.used_by_rules, ["calls"]);
    assert!(service.functions.contains(&"getfeature".to_owned()), "{:?}", service.functions);

    // A restart: the service is loaded before the rule is restored, and both work.
    oortd.terminate().await;
    let oortd = Oortd::start(dir.path()).await;
    let listed = services(&oortd).await.list_services(ListServicesRequest {}).await.unwrap().into_inner().services;
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["demo"]);
    assert_eq!(
        listed[0].description.as_ref().unwrap().interfaces["demogrpc"].options.as_ref().unwrap().timeout_ms,
        Some(1000)
    );
    let mut results = tail(&oortd, "calls").await;
    publish(&oortd, "s", &[json!({"x": 4, "device": "d2", "values": [1.0]})]).await;
    let row = next_row(&mut results).await;
    assert_eq!((row["sq"].clone(), row["h"].clone(), row["up"].clone()), (json!(16), json!(2), json!("D2")));
}

#[tokio::test]
async fn call_errors_are_counted_per_event_and_the_rule_goes_on() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;

    // A status from the service.
    create_rule(&oortd, "status", "SELECT check(x) AS c FROM s").await;
    // Slower than the interface's 1000 ms timeout.
    create_rule(&oortd, "slow", "SELECT slow(ms) AS s FROM s WHERE ms IS NOT NULL").await;
    // A type that does not convert (a string for an int64 field).
    create_rule(&oortd, "types", "SELECT square(name) AS sq FROM s WHERE name IS NOT NULL").await;
    let (mut status, mut slow, mut types) =
        (tail(&oortd, "status").await, tail(&oortd, "slow").await, tail(&oortd, "types").await);

    publish(&oortd, "s", &[json!({"x": -1, "ms": 1500, "name": "abc"}), json!({"x": 2, "ms": 10, "name": "def"})])
        .await;
    assert_eq!(next_row(&mut status).await["c"], json!(2), "the event after the failed one gets through");
    let op = wait_exceptions(&oortd, "status", "op_project_0", 1).await;
    assert!(op.last_exception.contains("x must not be negative"), "{op:?}");
    assert!(op.last_exception.contains("InvalidArgument"), "{op:?}");

    assert_eq!(next_row(&mut slow).await["s"], json!(10));
    let op = wait_exceptions(&oortd, "slow", "op_project_0", 1).await;
    assert!(op.last_exception.contains("deadline of 1000 ms exceeded"), "{op:?}");

    let op = wait_exceptions(&oortd, "types", "op_project_0", 2).await;
    assert!(op.last_exception.contains("cannot convert string to int64"), "{op:?}");
    assert!(tokio::time::timeout(Duration::from_millis(200), types.message()).await.is_err(), "nothing comes out");

    // The service goes down: every call is an error, and the rule still runs.
    demo.stop();
    publish(&oortd, "s", &[json!({"x": 5})]).await;
    let op = wait_exceptions(&oortd, "status", "op_project_0", 2).await;
    assert!(op.last_exception.contains("unreachable"), "{op:?}");
}

#[tokio::test]
async fn the_calls_of_a_batch_of_events_run_concurrently_and_their_latencies_are_exported() {
    // The calls on the server's runtime (the default), then on one of their own.
    for io_threads in [0, 1] {
        batch_calls_overlap(io_threads).await;
    }
}

async fn batch_calls_overlap(io_threads: usize) {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oort.toml");
    std::fs::write(&config, format!("external_io_threads = {io_threads}\n")).unwrap();
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config);
    let oortd = Oortd::launch(command, dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, "slow", "SELECT slow(ms) AS s FROM s").await;
    let mut results = tail(&oortd, "slow").await;
    // Twelve calls of 400 ms each: 4.8 s one after the other.
    let events: Vec<_> = (0..12).map(|_| json!({"ms": 400})).collect();
    let started = tokio::time::Instant::now();
    publish(&oortd, "s", &events).await;
    for _ in 0..12 {
        assert_eq!(next_row(&mut results).await["s"], json!(400));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(2400),
        "external_io_threads = {io_threads}: the calls did not overlap: {elapsed:?} for 12 × 400 ms"
    );

    let metrics = oortd.metrics_addr.clone().expect("the server logs the metrics address");
    let text = common::http().get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    let series = r#"oort_external_call_duration_seconds_count{service="demo",function="slow",outcome="ok"} 12"#;
    assert!(text.lines().any(|l| l == series), "{series} in:\n{text}");
    let fast =
        r#"oort_external_call_duration_seconds_bucket{le="0.0002",service="demo",function="slow",outcome="ok"} 0"#;
    assert!(text.contains(fast), "no 400 ms call in the 200 µs bucket:\n{text}");
}

#[tokio::test]
async fn calls_under_a_condition_run_concurrently_too() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, "cond", "SELECT CASE WHEN ms > 0 THEN slow(ms) ELSE -1 END AS s FROM s").await;
    let mut results = tail(&oortd, "cond").await;
    // Twelve calls of 400 ms each, for the rows that reach them: 4.8 s one after the other.
    let events: Vec<_> = (0..24).map(|i| json!({"ms": if i % 2 == 0 { 400 } else { 0 }})).collect();
    let started = tokio::time::Instant::now();
    publish(&oortd, "s", &events).await;
    for i in 0..24 {
        assert_eq!(next_row(&mut results).await["s"], json!(if i % 2 == 0 { 400 } else { -1 }));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2400), "the calls did not overlap: {elapsed:?} for 12 × 400 ms");
}

#[tokio::test]
async fn external_functions_work_in_where_and_in_window_aggregates() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s (x BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(
        &oortd,
        "win",
        "SELECT count(*) AS n, scale(sum(x), 2.0) AS doubled, collect(square(x)) AS squares FROM s \
         WHERE square(x) > 4 GROUP BY COUNTWINDOW(3)",
    )
    .await;
    let mut results = tail(&oortd, "win").await;
    // As in eKuiper, a count window counts every event; WHERE then drops x = 1.
    publish(&oortd, "s", &[json!({"x": 1}), json!({"x": 3}), json!({"x": 4})]).await;
    let row = next_row(&mut results).await;
    assert_eq!(row, json!({"n": 2, "doubled": 14.0, "squares": [9, 16]}));
}

#[tokio::test]
async fn bad_descriptions_are_refused_and_nothing_is_stored() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let description = demo.description_json();

    let mut broken = demo::proto_files();
    broken[1].content = broken[1].content.replace("int32 w = 1;", "int32 w = 1 oops;");
    let (code, message) = code_of(register(&oortd, "demo", &description, broken).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("do not compile") && message.contains("types.proto"), "{message}");

    let missing = description.replace("\"serviceName\": \"Upper\"", "\"serviceName\": \"Lower\"");
    let (code, message) = code_of(register(&oortd, "demo", &missing, demo::proto_files()).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("\"Lower\" is not defined") && message.contains("demo.v1.Demo.Upper"), "{message}");

    let (code, message) = code_of(register(&oortd, "demo", &description, demo::proto_files()[..1].to_vec()).await);
    assert_eq!(code, Code::InvalidArgument, "an import that was not uploaded: {message}");
    assert!(message.contains("demo/v1/types.proto"), "{message}");

    let builtin = description.replace("\"name\": \"square\"", "\"name\": \"abs\"");
    let (code, message) = code_of(register(&oortd, "demo", &builtin, demo::proto_files()).await);
    assert_eq!(code, Code::AlreadyExists, "{message}");
    assert!(message.contains("abs"), "{message}");

    let (code, message) = code_of(register(&oortd, "demo", "{\"interfaces\": 3}", demo::proto_files()).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");

    let listed = services(&oortd).await.list_services(ListServicesRequest {}).await.unwrap().into_inner().services;
    assert!(listed.is_empty(), "nothing was stored: {listed:?}");
    register_demo(&oortd, &demo).await;
    let (code, _) = code_of(register(&oortd, "demo", &description, demo::proto_files()).await);
    assert_eq!(code, Code::AlreadyExists);
    let (code, message) = code_of(register(&oortd, "demo2", &description, demo::proto_files()).await);
    assert_eq!(code, Code::AlreadyExists, "another service's function names: {message}");
    assert!(message.contains("service 'demo'"), "{message}");
}

#[tokio::test]
async fn rest_methods_follow_their_http_annotations_and_schemaless_calls_work() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(
        &oortd,
        "rest",
        "SELECT squareRest(x) AS sq, getFeatureRest(self)->feature[1]->box->w AS w, getFeatureRest(self)->device AS dev, \
         toUpperRest('{\"a\": \"b\"}') AS raw, getItem(device, x, 'red') AS item, \
         demoRest('post', '/echo', self)->body->x AS echoed, demoRest('get', '/flaky/' || device)->attempts AS attempts \
         FROM s",
    )
    .await;
    create_rule(&oortd, "rest_errors", "SELECT checkRest(x) AS c FROM s").await;
    let (mut results, mut errors) = (tail(&oortd, "rest").await, tail(&oortd, "rest_errors").await);
    publish(&oortd, "s", &[serde_json::from_str(FEATURE_EVENT).unwrap()]).await;
    let row = next_row(&mut results).await;
    assert_eq!(row["sq"], json!(9));
    assert_eq!(row["w"], json!(4), "a body of all fields, nested and repeated");
    assert_eq!(row["dev"], json!("d1"), "the path parameter reached the service");
    assert_eq!(row["raw"], json!("{\"A\": \"B\"}"), "a StringValue is sent as a raw JSON body");
    assert_eq!(row["item"], json!({"shelf": "d1", "id": 3, "name": "item 3", "color": "red"}), "GET: path and query");
    assert_eq!(row["echoed"], json!(3), "schemaless: the body is the argument's JSON");
    assert_eq!(row["attempts"], json!(3), "two 503 answers retried (retryCount 2)");

    publish(&oortd, "s", &[json!({"x": -2}), json!({"x": 6})]).await;
    assert_eq!(next_row(&mut errors).await["c"], json!(3), "the event after the failed one gets through");
    assert_eq!(next_row(&mut errors).await["c"], json!(6));
    let op = wait_exceptions(&oortd, "rest_errors", "op_project_0", 1).await;
    assert!(op.last_exception.contains("HTTP 400") && op.last_exception.contains("must not be negative"), "{op:?}");
}

#[tokio::test]
async fn binary_self_is_sent_as_bytes_value() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM frames () WITH (TYPE="httppush", DATASOURCE="/frames", FORMAT="binary")"#)
        .await;
    create_rule(&oortd, "bin", "SELECT size(self) AS n FROM frames").await;
    let mut results = tail(&oortd, "bin").await;
    let push = oortd.push_addr.clone().expect("the harness enables HTTP push");
    let body: Vec<u8> = (0..=255u8).chain(0..10).collect();
    let response = common::http().post(format!("http://{push}/frames")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(next_row(&mut results).await["n"], json!(266));
}

#[tokio::test]
async fn services_are_updated_and_deleted_while_rules_run() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    register_demo(&oortd, &demo).await;
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, "uses", "SELECT slow(ms) AS s FROM s").await;
    let mut results = tail(&oortd, "uses").await;

    // 300 ms is within the 1000 ms timeout; after the update (100 ms) it is not.
    publish(&oortd, "s", &[json!({"ms": 300})]).await;
    assert_eq!(next_row(&mut results).await["s"], json!(300));
    let shorter = demo.description_json().replace("\"timeout\": 1000", "\"timeout\": 100");
    let request = UpdateServiceRequest {
        name: "demo".into(),
        description_json: shorter,
        proto_files: demo::proto_files(),
        ..Default::default()
    };
    let updated = services(&oortd).await.update_service(request).await.unwrap().into_inner().service.unwrap();
    assert_eq!(updated.used_by_rules, ["uses"]);
    publish(&oortd, "s", &[json!({"ms": 300}), json!({"ms": 5})]).await;
    assert_eq!(next_row(&mut results).await["s"], json!(5), "the running rule uses the new timeout");
    let op = wait_exceptions(&oortd, "uses", "op_project_0", 1).await;
    assert!(op.last_exception.contains("deadline of 100 ms"), "{op:?}");
    let (code, _) = code_of(
        services(&oortd)
            .await
            .update_service(UpdateServiceRequest {
                name: "nope".into(),
                description_json: "{}".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);

    let delete = |force| DeleteServiceRequest { name: "demo".into(), force };
    let (code, message) = code_of(services(&oortd).await.delete_service(delete(false)).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("running rule(s) uses"), "{message}");
    let stopped = services(&oortd).await.delete_service(delete(true)).await.unwrap().into_inner().stopped_rules;
    assert_eq!(stopped, ["uses"]);
    let (code, _) = code_of(services(&oortd).await.get_service(GetServiceRequest { name: "demo".into() }).await);
    assert_eq!(code, Code::NotFound);
    let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "uses".into() }).await.unwrap();
    assert_eq!(status.into_inner().state, RuleState::Stopped as i32);
    let (code, message) = code_of(
        oortd
            .rules()
            .await
            .create_rule(CreateRuleRequest {
                rule: Some(Rule {
                    id: "again".into(),
                    sql: "SELECT slow(ms) FROM s".into(),
                    actions: vec![grpc_action()],
                    ..Default::default()
                }),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument, "its functions are gone: {message}");

    // Deleted for good: not back after a restart.
    oortd.terminate().await;
    let oortd = Oortd::start(dir.path()).await;
    let listed = services(&oortd).await.list_services(ListServicesRequest {}).await.unwrap().into_inner().services;
    assert!(listed.is_empty());
}

/// A Rust service implementing Oort's generic tarpc service for demo.v1.Demo's
/// Square and Check, decoding and encoding its messages with prost-reflect.
#[derive(Clone)]
struct RustDemo(prost_reflect::DescriptorPool);

impl oort_external::tarpc_service::OortRpc for RustDemo {
    async fn call(self, _: tarpc::context::Context, method: String, request: Vec<u8>) -> Result<Vec<u8>, String> {
        use prost::Message;
        let input = self.0.get_message_by_name("demo.v1.SquareRequest").unwrap();
        let output = self.0.get_message_by_name("demo.v1.SquareReply").unwrap();
        let request = prost_reflect::DynamicMessage::decode(input, request.as_slice()).map_err(|e| e.to_string())?;
        let x = request.get_field_by_name("x").and_then(|v| v.as_i64()).unwrap_or_default();
        let y = match method.as_str() {
            "demo.v1.Demo/Square" => x * x,
            "demo.v1.Demo/Check" if x < 0 => return Err(format!("x must not be negative, got {x}")),
            "demo.v1.Demo/Check" => x,
            other => return Err(format!("no method {other}")),
        };
        let mut reply = prost_reflect::DynamicMessage::new(output);
        reply.set_field_by_name("y", prost_reflect::Value::I64(y));
        Ok(reply.encode_to_vec())
    }
}

/// Serves [`RustDemo`] over tarpc on a free port; returns the port.
async fn serve_rust_demo() -> u16 {
    use futures::StreamExt;
    use oort_external::tarpc_service::OortRpc;
    use tarpc::server::Channel as _;
    let files: Vec<(String, String)> = demo::proto_files().into_iter().map(|f| (f.name, f.content)).collect();
    let pool = oort_external::schema::compile(&files).unwrap();
    let mut listener =
        tarpc::serde_transport::tcp::listen("127.0.0.1:0", tarpc::tokio_serde::formats::Bincode::default)
            .await
            .unwrap();
    let port = listener.local_addr().port();
    listener.config_mut().max_frame_length(1 << 20);
    tokio::spawn(async move {
        while let Some(Ok(transport)) = listener.next().await {
            let server = RustDemo(pool.clone());
            let channel = tarpc::server::BaseChannel::with_defaults(transport);
            tokio::spawn(channel.execute(server.serve()).for_each(|call| async move {
                tokio::spawn(call);
            }));
        }
    });
    port
}

#[tokio::test]
async fn rpc_functions_call_a_rust_tarpc_service() {
    let port = serve_rust_demo().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let description = format!(
        r#"{{"interfaces": {{"rs": {{"address": "tcp://127.0.0.1:{port}", "protocol": "rpc", "schemaType": "protobuf",
            "schemaFile": "demo/v1/demo.proto", "functions": [{{"name": "squareRpc", "serviceName": "Square"}},
            {{"name": "checkRpc", "serviceName": "Check"}}]}}}}}}"#
    );
    register(&oortd, "rs", &description, demo::proto_files()).await.unwrap();
    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, "rpc", "SELECT squareRpc(x) AS sq, checkRpc(x) AS c FROM s").await;
    let mut results = tail(&oortd, "rpc").await;
    publish(&oortd, "s", &[json!({"x": -3}), json!({"x": 7})]).await;
    assert_eq!(next_row(&mut results).await, json!({"sq": 49, "c": 7}));
    let op = wait_exceptions(&oortd, "rpc", "op_project_0", 1).await;
    assert!(op.last_exception.contains("x must not be negative, got -3"), "{op:?}");
}

#[tokio::test]
async fn an_interface_without_functions_exports_its_methods_and_a_schemaless_one_its_name() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let description = format!(
        r#"{{"interfaces": {{
            "grpcall": {{"address": "tcp://127.0.0.1:{}", "protocol": "grpc", "schemaType": "protobuf",
                         "schemaFile": "demo/v1/demo.proto", "functions": [{{"name": "sq2", "serviceName": "Square"}}]}},
            "echoplain": {{"address": "http://127.0.0.1:{}", "protocol": "rest", "schemaless": true,
                          "options": {{"headers": {{"X-Demo-Token": "secret"}}}}}}
        }}}}"#,
        demo.grpc_port, demo.http_port
    );
    register(&oortd, "all", &description, demo::proto_files()).await.expect("registers without functions");
    let got = services(&oortd).await.get_service(GetServiceRequest { name: "all".into() }).await.unwrap().into_inner();
    let functions = got.service.unwrap().functions;
    for name in ["sq2", "getfeature", "check", "getitem", "echoplain"] {
        assert!(functions.contains(&name.to_owned()), "{name} in {functions:?}");
    }
    assert!(!functions.contains(&"square".to_owned()), "an alias replaces the method's own name: {functions:?}");
    assert!(!functions.contains(&"upper".to_owned()), "a method whose name is taken (built-in upper) gives way");

    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, "all", "SELECT sq2(x) AS sq, echoplain('post', '/echo', self)->body->x AS e FROM s").await;
    let mut results = tail(&oortd, "all").await;
    publish(&oortd, "s", &[json!({"x": 3})]).await;
    let row = next_row(&mut results).await;
    assert_eq!((row["sq"].clone(), row["e"].clone()), (json!(9), json!(3)), "{row}");
}
