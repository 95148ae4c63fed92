//! The server's engine is not built yet; these check only how the CLI renders status/tail/explain.
//! Replace with e2e tests when the engine lands.
//!
//! Until then the real `oortd` answers UNIMPLEMENTED to GetRuleStatus, TailRule
//! and ExplainRule (`e2e.rs` checks that), so these tests run the real `oort`
//! binary against an in-process mock of `RuleService` that answers those three
//! calls with canned data. Every other call of the mock answers UNIMPLEMENTED:
//! everything else is tested against the real server in `e2e.rs`.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::OnceLock;

use oort_proto::v1::rule_service_server::{RuleService, RuleServiceServer};
use oort_proto::v1::*;
use serde_json::{Value as Json, json};
use tonic::{Request, Response, Status};

struct Mock;

/// Only `rule1` exists.
fn known(id: &str) -> Result<String, Status> {
    if id == "rule1" { Ok(id.to_owned()) } else { Err(Status::not_found(format!("rule '{id}' not found"))) }
}

fn not_mocked<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not mocked: tested against the real oortd in e2e.rs"))
}

type TailStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<TailRuleResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuleService for Mock {
    type TailRuleStream = TailStream;

    async fn get_rule_status(
        &self,
        r: Request<GetRuleStatusRequest>,
    ) -> Result<Response<GetRuleStatusResponse>, Status> {
        let id = known(&r.get_ref().id)?;
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
    async fn tail_rule(&self, r: Request<TailRuleRequest>) -> Result<Response<TailStream>, Status> {
        known(&r.get_ref().id)?;
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
    async fn explain_rule(&self, r: Request<ExplainRuleRequest>) -> Result<Response<ExplainRuleResponse>, Status> {
        known(&r.get_ref().id)?;
        Ok(Response::new(ExplainRuleResponse { plan: "sink log\n  project *\n    scan demo\n".into() }))
    }

    async fn create_rule(&self, _: Request<CreateRuleRequest>) -> Result<Response<CreateRuleResponse>, Status> {
        not_mocked()
    }
    async fn get_rule(&self, _: Request<GetRuleRequest>) -> Result<Response<GetRuleResponse>, Status> {
        not_mocked()
    }
    async fn list_rules(&self, _: Request<ListRulesRequest>) -> Result<Response<ListRulesResponse>, Status> {
        not_mocked()
    }
    async fn update_rule(&self, _: Request<UpdateRuleRequest>) -> Result<Response<UpdateRuleResponse>, Status> {
        not_mocked()
    }
    async fn delete_rule(&self, _: Request<DeleteRuleRequest>) -> Result<Response<DeleteRuleResponse>, Status> {
        not_mocked()
    }
    async fn start_rule(&self, _: Request<StartRuleRequest>) -> Result<Response<StartRuleResponse>, Status> {
        not_mocked()
    }
    async fn stop_rule(&self, _: Request<StopRuleRequest>) -> Result<Response<StopRuleResponse>, Status> {
        not_mocked()
    }
    async fn restart_rule(&self, _: Request<RestartRuleRequest>) -> Result<Response<RestartRuleResponse>, Status> {
        not_mocked()
    }
}

/// The mock server, started once for all tests on a free loopback port.
fn server() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tonic::transport::Server::builder()
                    .add_service(RuleServiceServer::new(Mock))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .expect("mock server runs");
            });
        });
        addr
    })
}

/// Runs `oort --server <mock> ARGS...`.
fn oort(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oort"))
        .arg("--server")
        .arg(server().to_string())
        .args(args)
        .env_remove("OORT_SERVER")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("oort runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
fn success(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(out));
    stdout(out)
}

/// Parses stdout as exactly one JSON document.
#[track_caller]
fn json_stdout(out: &Output) -> Json {
    serde_json::from_str(&success(out))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn rule_status_shows_state_and_operator_counters() {
    let text = success(&oort(&["rule", "status", "rule1"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["Rule:", "rule1"]);
    assert_eq!(lines[1], ["State:", "running"]);
    for part in ["Restarts:", "Last error:", "records_in_total", "process_latency_us", "source_demo_0", "sink_log_0"] {
        assert!(text.contains(part), "{part} missing in\n{text}");
    }
    assert!(lines.iter().any(|l| l[..] == ["sink_log_0", "5", "5", "0", "12", "0", "-"]), "{text}");
}

#[test]
fn rule_status_json_is_the_response_only() {
    let value = json_stdout(&oort(&["rule", "status", "rule1", "--json"]));
    assert_eq!(value["state"], "RULE_STATE_RUNNING");
    assert_eq!(value["restartCount"], 2);
    assert_eq!(value["operators"][0]["recordsInTotal"], "5");
}

#[test]
fn rule_explain_prints_the_plan() {
    assert_eq!(success(&oort(&["rule", "explain", "rule1"])), "sink log\n  project *\n    scan demo\n");
    let value = json_stdout(&oort(&["rule", "explain", "rule1", "--json"]));
    assert_eq!(value, json!({"plan": "sink log\n  project *\n    scan demo\n"}));
}

#[test]
fn rule_tail_prints_one_json_line_per_event() {
    assert_eq!(success(&oort(&["rule", "tail", "rule1"])), "{\"temperature\":20.5}\n{\"temperature\":21.0}\n");
    let text = success(&oort(&["rule", "tail", "rule1", "--json"]));
    let lines: Vec<Json> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], json!({"event": {"fields": {"temperature": {"floatValue": 20.5}}}}));
}

#[test]
fn errors_of_status_tail_and_explain_go_to_stderr() {
    for command in ["status", "tail", "explain"] {
        let out = oort(&["rule", command, "nope", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(out.stdout.is_empty(), "{command}: {}", stdout(&out));
        assert_eq!(stderr(&out), "error: not found: rule 'nope' not found\n", "{command}");
    }
}
