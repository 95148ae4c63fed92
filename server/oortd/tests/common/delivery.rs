//! What the delivery tests share: rules with a qos, publishing, waiting for
//! checkpoints, reading what a file sink wrote, and an HTTP receiver for the
//! `rest` sink that can be taken down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::{
    CreateRuleRequest, CreateStreamRequest, Event, GetRuleStatusRequest, GetRuleStatusResponse, PublishRequest, Rule,
    RuleOptions,
};

use super::{Oortd, int};

/// `rule` with `qos` and a checkpoint every `interval_ms`.
pub fn with_qos(mut rule: Rule, qos: u32, interval_ms: i64) -> Rule {
    rule.options = Some(RuleOptions { qos, checkpoint_interval_ms: Some(interval_ms), ..Default::default() });
    rule
}

pub async fn create(oortd: &Oortd, stream: &str, rule: Rule) {
    oortd.streams().await.create_stream(CreateStreamRequest { sql: stream.into() }).await.unwrap();
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
}

pub async fn status(oortd: &Oortd, id: &str) -> GetRuleStatusResponse {
    oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.unwrap().into_inner()
}

/// Publishes events with these fields, in one call; returns how many were acknowledged.
pub async fn publish(oortd: &Oortd, stream: &str, events: Vec<Vec<(&str, i64)>>) -> Result<u64, tonic::Status> {
    let events = events
        .into_iter()
        .map(|fields| Event {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), int(v))).collect(),
            ..Default::default()
        })
        .collect();
    let request = PublishRequest { stream: stream.into(), events, ..Default::default() };
    let mut client = EventServiceClient::new(oortd.channel().await);
    Ok(client.publish(tokio_stream::iter([request])).await?.into_inner().accepted)
}

/// Waits until the rule's last checkpoint covers `position`.
pub async fn checkpointed(oortd: &Oortd, id: &str, position: u64) {
    for _ in 0..200 {
        let last = status(oortd, id).await.checkpoints.and_then(|c| c.last);
        if last.is_some_and(|c| c.source_position >= position) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no checkpoint of {id} covered position {position} within 5 s");
}

/// What a file sink wrote: the `n` of every row of every whole line (a line
/// is a result: a row, or an array of rows), and how many lines were not
/// whole (torn).
pub fn written(path: &std::path::Path) -> (Vec<i64>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut ns, mut torn) = (Vec::new(), 0);
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            torn += 1;
            continue;
        };
        let rows = match value {
            serde_json::Value::Array(rows) => rows,
            row => vec![row],
        };
        ns.extend(rows.iter().filter_map(|r| r["n"].as_i64()));
    }
    (ns, torn)
}

/// A request a [`Receiver`] accepted: its path, its `Idempotency-Key`, one of its rows.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub path: String,
    pub key: String,
    pub row: serde_json::Value,
}

/// An HTTP receiver for the `rest` sink: answers 503 while down, and records
/// every row of every request it accepts.
#[derive(Default)]
pub struct Receiver {
    down: AtomicBool,
    accepted: Mutex<Vec<Accepted>>,
}

impl Receiver {
    /// Listens on a free port; returns it and its base URL (`http://host:port`).
    pub async fn start() -> (Arc<Receiver>, String) {
        let receiver = Arc::new(Receiver::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(receive).with_state(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    /// Takes it down (503 to every request) or up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// What it accepted so far, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits (10 s at most) until it accepted `count` rows on `path`; returns them.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Accepted> {
        let on_path = || self.accepted().into_iter().filter(|a| a.path == path).collect::<Vec<_>>();
        for _ in 0..400 {
            let accepted = on_path();
            if accepted.len() >= count {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} of {count} rows on {path} within 10 s: {:?}", on_path().len(), on_path());
    }
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    if receiver.down.load(Ordering::SeqCst) {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let rows = match serde_json::from_slice(&body).unwrap() {
        serde_json::Value::Array(rows) => rows,
        row => vec![row],
    };
    let path = uri.path().to_owned();
    let mut accepted = receiver.accepted.lock().unwrap();
    accepted.extend(rows.into_iter().map(|row| Accepted { path: path.clone(), key: key.clone(), row }));
    axum::http::StatusCode::OK
}
