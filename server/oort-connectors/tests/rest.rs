//! The `rest` sink against a real HTTP server on 127.0.0.1 that records requests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use oort_connectors::rest::RestSinkFactory;
use oort_engine::json::json_to_value;
use oort_engine::{ConnectorError, Map, Sink, SinkConfig, SinkFactory, Value};
use serde_json::json;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }
}

#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<Recorded>>,
    /// Statuses to answer, in turn; 200 once empty.
    statuses: Mutex<VecDeque<u16>>,
    /// How long to wait before answering.
    delay: Mutex<Duration>,
}

struct Server {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        let recorder = Arc::new(Recorder::default());
        let app = axum::Router::new().fallback(record).with_state(Arc::clone(&recorder));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, recorder, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorder.requests.lock().unwrap().clone()
    }

    fn answer(&self, statuses: &[u16]) {
        self.recorder.statuses.lock().unwrap().extend(statuses);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(recorder): State<Arc<Recorder>>, request: Request) -> (StatusCode, &'static str) {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    recorder.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let delay = *recorder.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = recorder.statuses.lock().unwrap().pop_front().unwrap_or(200);
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "the server says no")
}

fn row(json: serde_json::Value) -> Map {
    match json_to_value(&json) {
        Value::Map(map) => Arc::unwrap_or_clone(map),
        other => panic!("not an object: {other:?}"),
    }
}

fn rows() -> Vec<Map> {
    vec![row(json!({"id": 1, "t": 20.5})), row(json!({"id": 2, "t": 31.0}))]
}

fn sink(props: serde_json::Value) -> Box<dyn Sink> {
    let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
    RestSinkFactory(std::sync::Arc::new(oort_policy::EgressPolicy::allow_all()))
        .build(&SinkConfig { sink_type: "rest".into(), props, rule_id: "r".into(), ..Default::default() })
        .expect("sink config")
}

#[tokio::test]
async fn one_json_array_per_result_by_default() {
    let server = Server::start().await;
    let mut sink =
        sink(json!({"url": server.url("/api/in"), "headers": {"Authorization": "Bearer t0k3n", "X-Rule": "r1"}}));
    sink.open().await.unwrap();
    sink.collect(&rows()).await.unwrap();
    sink.close().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/in"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(request.header("x-rule"), Some("r1"));
    assert_eq!(request.json(), json!([{"id": 1, "t": 20.5}, {"id": 2, "t": 31.0}]));
}

#[tokio::test]
async fn each_request_carries_the_rule_the_result_number_and_its_index_as_idempotency_key() {
    let server = Server::start().await;
    let mut sink = sink(json!({"url": server.url("/x"), "sendSingle": true}));
    sink.collect_numbered(41, &rows()).await.unwrap();
    sink.collect(&rows()[..1]).await.unwrap();
    let keys: Vec<Option<String>> =
        server.requests().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
    assert_eq!(keys, [Some("r:41:0".to_owned()), Some("r:41:1".to_owned()), None], "no number, no key");
}

#[tokio::test]
async fn one_request_per_row_with_send_single() {
    let server = Server::start().await;
    let mut sink = sink(json!({"url": server.url("/x"), "method": "put", "sendSingle": true, "fields": ["t"]}));
    sink.collect(&rows()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(), ["PUT", "PUT"]);
    assert_eq!(requests.iter().map(Recorded::json).collect::<Vec<_>>(), [json!({"t": 20.5}), json!({"t": 31.0})]);
}

#[tokio::test]
async fn a_data_template_shapes_the_body() {
    let server = Server::start().await;
    let mut sink = sink(json!({
        "url": server.url("/sql"),
        "bodyType": "text",
        "sendSingle": true,
        "dataTemplate": "insert into t values ({{ id }}, {{ t }})",
    }));
    sink.collect(&rows()).await.unwrap();
    let requests = server.requests();
    assert_eq!(
        requests.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(),
        ["insert into t values (1, 20.5)", "insert into t values (2, 31.0)"]
    );
    assert_eq!(requests[0].header("content-type"), Some("text/plain"));

    // Without sendSingle the template sees the whole result as `rows`.
    let mut sink = sink_for_rows(&server);
    sink.collect(&rows()).await.unwrap();
    let last = server.requests().pop().unwrap();
    assert_eq!(last.json(), json!({"count": 2, "ids": [1, 2]}));
}

fn sink_for_rows(server: &Server) -> Box<dyn Sink> {
    sink(json!({
        "url": server.url("/batch"),
        "dataTemplate": r#"{"count": {{ rows | length }}, "ids": [{% for r in rows %}{{ r.id }}{% if not loop.last %}, {% endif %}{% endfor %}]}"#,
    }))
}

#[tokio::test]
async fn get_sends_no_body() {
    let server = Server::start().await;
    let mut sink = sink(json!({"url": server.url("/ping?x=1"), "method": "GET", "sendSingle": true}));
    sink.collect(&rows()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.method == "GET" && r.body.is_empty() && r.header("content-type").is_none()));
}

#[tokio::test]
async fn an_error_status_is_external() {
    let server = Server::start().await;
    server.answer(&[500]);
    let mut sink = sink(json!({"url": server.url("/x")}));
    let err = sink.collect(&rows()).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::External(m) if m.contains("500") && m.contains("the server says no")),
        "{err:?}"
    );
    // The next attempt succeeds.
    sink.collect(&rows()).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_retry_resumes_after_the_requests_that_succeeded() {
    let server = Server::start().await;
    server.answer(&[200, 503]);
    let mut sink = sink(json!({"url": server.url("/x"), "sendSingle": true}));
    let three = [rows(), vec![row(json!({"id": 3, "t": 0.5}))]].concat();
    assert!(matches!(sink.collect(&three).await, Err(ConnectorError::External(m)) if m.contains("503")));
    sink.collect(&three).await.unwrap();
    let ids: Vec<serde_json::Value> = server.requests().iter().map(|r| r.json()["id"].clone()).collect();
    // Row 1 once, row 2 failed then retried, row 3 once.
    assert_eq!(ids, [json!(1), json!(2), json!(2), json!(3)]);
}

#[tokio::test]
async fn a_connection_error_is_external() {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut sink = sink(json!({"url": format!("http://{addr}/x")}));
    let err = sink.collect(&rows()).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains(&addr.to_string())), "{err:?}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = Server::start().await;
    *server.recorder.delay.lock().unwrap() = Duration::from_millis(500);
    let mut sink = sink(json!({"url": server.url("/slow"), "timeout": 50}));
    let err = sink.collect(&rows()).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains("/slow")), "{err:?}");
}

#[tokio::test]
async fn a_result_that_cannot_be_encoded_is_dropped() {
    let server = Server::start().await;
    let mut sink = sink(json!({"url": server.url("/x"), "sendSingle": true, "dataTemplate": "{{ t.a.b }}"}));
    sink.collect(&rows()).await.unwrap();
    assert!(server.requests().is_empty());
}
