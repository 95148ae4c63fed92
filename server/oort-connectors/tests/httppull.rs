//! The `httppull` source against a real HTTP server (axum, on a free port of
//! 127.0.0.1): what it answers becomes events, at the interval asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use oort_connectors::httppull::HttpPullSourceFactory;
use oort_engine::{Payload, SourceConfig, SourceFactory, SourceOutput};
use oort_policy::EgressPolicy;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// What the server was asked, and what it answers next.
#[derive(Default)]
struct Served {
    queries: Vec<String>,
    answers: Vec<(u16, String)>,
}

async fn serve(served: Arc<Mutex<Served>>) -> String {
    let app = axum::Router::new()
        .route(
            "/data",
            get(|State(served): State<Arc<Mutex<Served>>>, uri: axum::http::Uri| async move {
                let mut served = served.lock().unwrap();
                served.queries.push(uri.query().unwrap_or_default().to_owned());
                let (status, body) =
                    if served.answers.is_empty() { (200, "[]".to_string()) } else { served.answers.remove(0) };
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }),
        )
        .with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/data")
}

fn text(payload: &Payload) -> String {
    match payload {
        Payload::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        Payload::Map(m) => panic!("bytes expected, got {m:?}"),
    }
}

#[tokio::test]
async fn each_response_becomes_events_and_repeats_are_skipped_when_incremental() {
    let served = Arc::new(Mutex::new(Served::default()));
    served.lock().unwrap().answers = vec![
        (200, r#"[{"n":1},{"n":2}]"#.into()),
        (200, r#"[{"n":1},{"n":2}]"#.into()),
        (503, "busy".into()),
        (200, r#"{"n":3}"#.into()),
    ];
    let url = serve(Arc::clone(&served)).await;
    let config = SourceConfig {
        stream: "s".into(),
        datasource: format!("{url}?since={{{{.LastPullTime}}}}"),
        options: [("INTERVAL", "100"), ("INCREMENTAL", "true")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        rule_id: "r".into(),
        ..Default::default()
    };
    let source = HttpPullSourceFactory(Arc::new(EgressPolicy::allow_all())).build(&config).unwrap();
    let (out, mut events) = SourceOutput::channel(16);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(out, cancel.clone()));
    let mut got = Vec::new();
    while got.len() < 3 {
        let event = timeout(Duration::from_secs(10), events.recv()).await.expect("in time").unwrap();
        got.push(text(&event.payload));
    }
    assert_eq!(got, [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#], "the repeat skipped, the 503 skipped");
    cancel.cancel();
    timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
    let queries = served.lock().unwrap().queries.clone();
    assert!(queries.len() >= 4, "{queries:?}");
    let since: Vec<i64> = queries.iter().map(|q| q.trim_start_matches("since=").parse().unwrap()).collect();
    assert!(since.windows(2).all(|w| w[0] < w[1]), "each request from the last pull's time: {since:?}");
}
