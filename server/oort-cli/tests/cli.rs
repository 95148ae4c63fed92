//! Runs the `oort` binary against an in-process mock of oortd's gRPC API, to
//! check what scripts rely on: `--json` prints only JSON, errors go to stderr
//! as `error: <code>: <message>`, and the exit codes are as documented.
//! (End-to-end tests against the real server live with the server.)

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use oort_proto::v1::rule_service_server::{RuleService, RuleServiceServer};
use oort_proto::v1::stream_service_server::{StreamService, StreamServiceServer};
use oort_proto::v1::*;
use serde_json::{Value as Json, json};
use tonic::{Request, Response, Status};

/// What the mock received, so tests can check what the CLI sent.
#[derive(Default)]
struct Seen {
    created_rules: Vec<Rule>,
    updated_rules: Vec<Rule>,
}

#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Seen>>,
}

fn demo_stream() -> Stream {
    Stream {
        name: "demo".into(),
        kind: StreamKind::Stream as i32,
        sql: "CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")".into(),
        fields: vec![Field { name: "temperature".into(), r#type: "FLOAT".into() }],
        options: [("DATASOURCE".into(), "demo".into()), ("TYPE".into(), "mqtt".into())].into_iter().collect(),
        create_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        update_time: None,
    }
}

fn stored_rule() -> Rule {
    Rule {
        id: "rule1".into(),
        sql: "SELECT * FROM demo".into(),
        actions: vec![Action { r#type: "log".into(), props: Some(prost_types::Struct::default()) }],
        options: Some(RuleOptions { qos: 1, ..Default::default() }),
        triggered: Some(true),
        create_time: None,
        update_time: None,
    }
}

fn lookup_rule(id: &str) -> Result<Rule, Status> {
    if id == "rule1" { Ok(stored_rule()) } else { Err(Status::not_found(format!("rule {id} does not exist"))) }
}

#[tonic::async_trait]
impl StreamService for Mock {
    async fn create_stream(&self, r: Request<CreateStreamRequest>) -> Result<Response<CreateStreamResponse>, Status> {
        if !r.get_ref().sql.starts_with("CREATE STREAM demo") {
            return Err(Status::invalid_argument("line 1, column 1: expected CREATE"));
        }
        Ok(Response::new(CreateStreamResponse { stream: Some(demo_stream()) }))
    }
    async fn get_stream(&self, r: Request<GetStreamRequest>) -> Result<Response<GetStreamResponse>, Status> {
        match r.get_ref().name.as_str() {
            "demo" => Ok(Response::new(GetStreamResponse { stream: Some(demo_stream()) })),
            name => Err(Status::not_found(format!("stream {name} does not exist"))),
        }
    }
    async fn list_streams(&self, r: Request<ListStreamsRequest>) -> Result<Response<ListStreamsResponse>, Status> {
        let streams = if r.get_ref().kind == StreamKind::Table as i32 { vec![] } else { vec![demo_stream()] };
        Ok(Response::new(ListStreamsResponse { streams }))
    }
    async fn update_stream(&self, _: Request<UpdateStreamRequest>) -> Result<Response<UpdateStreamResponse>, Status> {
        Ok(Response::new(UpdateStreamResponse { stream: Some(demo_stream()) }))
    }
    async fn delete_stream(&self, r: Request<DeleteStreamRequest>) -> Result<Response<DeleteStreamResponse>, Status> {
        match r.get_ref().name.as_str() {
            "demo" => Err(Status::failed_precondition("stream demo is read by rules: rule1")),
            _ => Ok(Response::new(DeleteStreamResponse {})),
        }
    }
}

type TailStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<TailRuleResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuleService for Mock {
    type TailRuleStream = TailStream;

    async fn create_rule(&self, r: Request<CreateRuleRequest>) -> Result<Response<CreateRuleResponse>, Status> {
        let rule = r.into_inner().rule.unwrap_or_default();
        self.seen.lock().unwrap().created_rules.push(rule.clone());
        Ok(Response::new(CreateRuleResponse { rule: Some(rule) }))
    }
    async fn get_rule(&self, r: Request<GetRuleRequest>) -> Result<Response<GetRuleResponse>, Status> {
        Ok(Response::new(GetRuleResponse { rule: Some(lookup_rule(&r.get_ref().id)?) }))
    }
    async fn list_rules(&self, _: Request<ListRulesRequest>) -> Result<Response<ListRulesResponse>, Status> {
        let info = RuleInfo { rule: Some(stored_rule()), state: RuleState::Running as i32 };
        Ok(Response::new(ListRulesResponse { rules: vec![info] }))
    }
    async fn update_rule(&self, r: Request<UpdateRuleRequest>) -> Result<Response<UpdateRuleResponse>, Status> {
        let rule = r.into_inner().rule.unwrap_or_default();
        lookup_rule(&rule.id)?;
        self.seen.lock().unwrap().updated_rules.push(rule.clone());
        Ok(Response::new(UpdateRuleResponse { rule: Some(rule) }))
    }
    async fn delete_rule(&self, r: Request<DeleteRuleRequest>) -> Result<Response<DeleteRuleResponse>, Status> {
        lookup_rule(&r.get_ref().id)?;
        Ok(Response::new(DeleteRuleResponse {}))
    }
    async fn start_rule(&self, _: Request<StartRuleRequest>) -> Result<Response<StartRuleResponse>, Status> {
        Err(Status::unimplemented("starting rules comes in a later issue"))
    }
    async fn stop_rule(&self, _: Request<StopRuleRequest>) -> Result<Response<StopRuleResponse>, Status> {
        Ok(Response::new(StopRuleResponse {}))
    }
    async fn restart_rule(&self, _: Request<RestartRuleRequest>) -> Result<Response<RestartRuleResponse>, Status> {
        Ok(Response::new(RestartRuleResponse {}))
    }
    async fn get_rule_status(
        &self,
        r: Request<GetRuleStatusRequest>,
    ) -> Result<Response<GetRuleStatusResponse>, Status> {
        let id = lookup_rule(&r.get_ref().id)?.id;
        let op = |name: &str| OperatorStatus {
            name: name.into(),
            records_in_total: 5,
            records_out_total: 5,
            process_latency_us: 12,
            ..Default::default()
        };
        Ok(Response::new(GetRuleStatusResponse {
            id,
            state: RuleState::Running as i32,
            restart_count: 2,
            operators: vec![op("source_demo_0"), op("sink_log_0")],
            ..Default::default()
        }))
    }
    async fn tail_rule(&self, _: Request<TailRuleRequest>) -> Result<Response<TailStream>, Status> {
        let event = |t: f64| {
            let value = Value { kind: Some(value::Kind::FloatValue(t)) };
            Ok(TailRuleResponse {
                event: Some(Event {
                    fields: [("temperature".to_string(), value)].into_iter().collect(),
                    ..Default::default()
                }),
            })
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(vec![event(20.5), event(21.0)]))))
    }
    async fn explain_rule(&self, _: Request<ExplainRuleRequest>) -> Result<Response<ExplainRuleResponse>, Status> {
        Ok(Response::new(ExplainRuleResponse { plan: "sink log\n  project *\n    scan demo\n".into() }))
    }
}

/// The mock server, started once for all tests on a free loopback port.
fn server() -> &'static (SocketAddr, Mock) {
    static SERVER: OnceLock<(SocketAddr, Mock)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let mock = Mock::default();
        let service = mock.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tonic::transport::Server::builder()
                    .add_service(StreamServiceServer::new(service.clone()))
                    .add_service(RuleServiceServer::new(service))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .expect("mock server runs");
            });
        });
        (addr, mock)
    })
}

/// Runs `oort --server <mock> ARGS...`, with optional stdin.
fn oort_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let (addr, _) = server();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oort"))
        .arg("--server")
        .arg(addr.to_string())
        .args(args)
        .env_remove("OORT_SERVER")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("oort runs");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("oort finishes")
}

fn oort(args: &[&str]) -> Output {
    oort_with_stdin(args, None)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses stdout as exactly one JSON document.
fn json_stdout(out: &Output) -> Json {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn stream_list_json_is_the_response_only() {
    let value = json_stdout(&oort(&["stream", "list", "--json"]));
    assert_eq!(value["streams"][0]["name"], "demo");
    assert_eq!(value["streams"][0]["kind"], "STREAM_KIND_STREAM");
    assert_eq!(value["streams"][0]["options"]["TYPE"], "mqtt");
    assert_eq!(value["streams"][0]["createTime"], "2023-11-14T22:13:20Z");
}

#[test]
fn stream_list_table_has_the_columns() {
    let out = oort(&["stream", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "KIND", "TYPE", "DATASOURCE", "FORMAT", "FIELDS"]);
    assert!(text.contains("temperature FLOAT"), "{text}");
    let empty = oort(&["stream", "list", "--kind", "table"]);
    assert_eq!(stdout(&empty).trim(), "No tables.");
}

#[test]
fn stream_create_from_argument_and_stdin() {
    let sql = "CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")";
    let out = oort(&["stream", "create", sql]);
    assert_eq!((out.status.code(), stdout(&out).trim()), (Some(0), "Stream demo created."));
    let out = oort_with_stdin(&["stream", "create", "-"], Some(sql));
    assert_eq!(stdout(&out).trim(), "Stream demo created.");
    let value = json_stdout(&oort(&["--json", "stream", "create", sql]));
    assert_eq!(value["stream"]["name"], "demo");
}

#[test]
fn server_error_goes_to_stderr_with_exit_1() {
    let out = oort(&["stream", "create", "--json", "CREATE STRAEM x ()"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    assert_eq!(stderr(&out).trim(), "error: invalid argument: line 1, column 1: expected CREATE");

    let out = oort(&["stream", "describe", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "error: not found: stream nope does not exist");

    let out = oort(&["stream", "drop", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: failed precondition: "), "{}", stderr(&out));
}

#[test]
fn stream_describe_human() {
    let out = oort(&["stream", "describe", "demo"]);
    let text = stdout(&out);
    for part in ["Name:", "Kind:", "Options:", "DATASOURCE", "Fields:", "temperature", "FLOAT", "SQL:"] {
        assert!(text.contains(part), "{part} missing in\n{text}");
    }
}

#[test]
fn rule_create_from_ekuiper_file_sends_the_right_rule() {
    let dir = std::env::temp_dir().join(format!("oort-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rule.json");
    std::fs::write(
        &path,
        r#"{"id":"filecase","sql":"SELECT * FROM demo","actions":[{"log":{}},{"mqtt":{"server":"tcp://127.0.0.1:1883","topic":"out"}}],"options":{"isEventTime":false,"lateTolerance":1000,"bufferLength":1024,"sendMetaToSink":false,"qos":0,"checkpointInterval":300000,"restartStrategy":{"attempts":3,"delay":1000,"multiplier":2,"maxDelay":30000,"jitterFactor":0.1}},"triggered":true}"#,
    )
    .expect("write rule file");
    let value = json_stdout(&oort(&["rule", "create", "--json", "--file", path.to_str().expect("utf-8 path")]));
    assert_eq!(value["rule"]["id"], "filecase");
    assert_eq!(
        value["rule"]["actions"][1],
        json!({"type": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": "out"}})
    );
    assert_eq!(value["rule"]["options"]["restartStrategy"]["maxDelayMs"], "30000");
    let seen = server().1.seen.lock().unwrap();
    let sent = seen.created_rules.iter().find(|r| r.id == "filecase").expect("rule was sent");
    assert_eq!(sent.options.as_ref().and_then(|o| o.late_tolerance_ms), Some(1000));
    assert_eq!(sent.triggered, Some(true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rule_create_from_flags() {
    let out = oort(&["rule", "create", "flagcase", "--sql", "SELECT * FROM demo", "--action", "log", "--no-start"]);
    assert_eq!(stdout(&out).trim(), "Rule flagcase created (not started).");
    let seen = server().1.seen.lock().unwrap();
    let sent = seen.created_rules.iter().find(|r| r.id == "flagcase").expect("rule was sent");
    assert_eq!(sent.triggered, Some(false));
    assert_eq!(sent.actions[0].r#type, "log");
}

#[test]
fn bad_rule_file_is_a_usage_error_and_sends_nothing() {
    let out = oort_with_stdin(
        &["rule", "create", "--file", "-"],
        Some(r#"{"id":"badcase","sql":"SELECT 1","actions":[{"log":{}}],"name":"x"}"#),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).starts_with("error: <stdin>: unknown field `name`"), "{}", stderr(&out));
    let seen = server().1.seen.lock().unwrap();
    assert!(seen.created_rules.iter().all(|r| r.id != "badcase"));
}

#[test]
fn clap_usage_errors_exit_2() {
    assert_eq!(oort(&["rule", "status"]).status.code(), Some(2));
    assert_eq!(oort(&["stream", "list", "--kind", "view"]).status.code(), Some(2));
    assert_eq!(oort(&["--help"]).status.code(), Some(0));
}

#[test]
fn rule_update_with_flags_keeps_the_rest() {
    let out = oort(&["rule", "update", "rule1", "--sql", "SELECT temperature FROM demo"]);
    assert_eq!(stdout(&out).trim(), "Rule rule1 updated.", "{}", stderr(&out));
    let seen = server().1.seen.lock().unwrap();
    let sent = seen.updated_rules.iter().find(|r| r.sql == "SELECT temperature FROM demo").expect("update sent");
    assert_eq!(sent.actions[0].r#type, "log");
    assert_eq!(sent.options.as_ref().map(|o| o.qos), Some(1));
}

#[test]
fn rule_lifecycle_messages_and_empty_json() {
    assert_eq!(stdout(&oort(&["rule", "stop", "rule1"])).trim(), "Rule rule1 stopped.");
    assert_eq!(stdout(&oort(&["rule", "restart", "rule1"])).trim(), "Rule rule1 restarted.");
    assert_eq!(stdout(&oort(&["rule", "drop", "rule1"])).trim(), "Rule rule1 dropped.");
    assert_eq!(json_stdout(&oort(&["rule", "drop", "rule1", "--json"])), json!({}));
    let out = oort(&["rule", "start", "rule1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "error: unimplemented: starting rules comes in a later issue");
}

#[test]
fn rule_list_describe_status_explain() {
    let list = stdout(&oort(&["rule", "list"]));
    assert!(list.lines().nth(1).is_some_and(|l| l.starts_with("rule1") && l.contains("running")), "{list}");
    let describe = stdout(&oort(&["rule", "describe", "rule1"]));
    assert!(describe.contains("\"log\": {}") && describe.contains("\"qos\": 1"), "{describe}");
    let status = stdout(&oort(&["rule", "status", "rule1"]));
    assert!(
        status.contains("Restarts:") && status.contains("records_in_total") && status.contains("sink_log_0"),
        "{status}"
    );
    let value = json_stdout(&oort(&["rule", "status", "rule1", "--json"]));
    assert_eq!(value["state"], "RULE_STATE_RUNNING");
    assert_eq!(value["operators"][0]["recordsInTotal"], "5");
    assert_eq!(stdout(&oort(&["rule", "explain", "rule1"])), "sink log\n  project *\n    scan demo\n");
}

#[test]
fn rule_tail_prints_one_json_line_per_event() {
    let out = oort(&["rule", "tail", "rule1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"temperature\":20.5}\n{\"temperature\":21.0}\n");
    let out = oort(&["rule", "tail", "rule1", "--json"]);
    let lines: Vec<Json> = stdout(&out).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines[0], json!({"event": {"fields": {"temperature": {"floatValue": 20.5}}}}));
    assert_eq!(lines.len(), 2);
}

#[test]
fn unreachable_server_exits_3_and_names_the_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_oort"))
        .args(["--server", "127.0.0.1:1", "--json", "stream", "list"])
        .output()
        .expect("oort runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("error: could not connect to oortd at http://127.0.0.1:1"), "{err}");
    assert!(err.contains("oortd"), "{err}");
}

#[test]
fn server_address_from_environment() {
    let (addr, _) = server();
    let out = Command::new(env!("CARGO_BIN_EXE_oort"))
        .args(["stream", "list", "--json"])
        .env("OORT_SERVER", addr.to_string())
        .output()
        .expect("oort runs");
    assert_eq!(json_stdout(&out)["streams"][0]["name"], "demo");
}
