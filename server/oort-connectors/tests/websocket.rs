//! The `websocket` source and sink as clients of a real websocket server
//! (tungstenite's, on a free port of 127.0.0.1).

#![allow(clippy::result_large_err)] // tungstenite's handshake callback type

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use oort_connectors::connections::{ConnectionDef, Connections, LinkState};
use oort_connectors::testing::WAIT;
use oort_connectors::websocket::{WebsocketContext, WebsocketSinkFactory, WebsocketSourceFactory};
use oort_engine::{Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceFactory, SourceOutput, Value};
use oort_policy::{EgressPolicy, FileRoots};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn context(addr: &str, egress: EgressPolicy, root: &std::path::Path) -> WebsocketContext {
    let connections = Connections::new();
    let props = json!({"addr": addr}).as_object().cloned().unwrap();
    connections.put(ConnectionDef { name: "feed".into(), kind: "websocket".into(), props, declared: false });
    WebsocketContext {
        connections,
        files: Arc::new(FileRoots::create([root.to_path_buf()]).unwrap()),
        egress: Arc::new(egress),
        hub: Arc::default(),
    }
}

/// A server that, on each connection to `/ticks`, sends `n` messages and closes,
/// and reports what clients send to `/results`.
async fn server(n: usize) -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut connection = 0;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            connection += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                let path = Arc::new(std::sync::Mutex::new(String::new()));
                let seen = Arc::clone(&path);
                let callback = move |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
                    *seen.lock().unwrap() = request.uri().path().to_owned();
                    Ok(response)
                };
                let mut socket = tokio_tungstenite::accept_hdr_async(stream, callback).await.unwrap();
                let path = path.lock().unwrap().clone();
                if path == "/ticks" {
                    for i in 0..n {
                        let text = json!({"connection": connection, "i": i}).to_string();
                        socket.send(Message::text(text)).await.unwrap();
                    }
                    let _ = socket.close(None).await;
                    return;
                }
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        let _ = tx.send((path.clone(), text.to_string()));
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn stream_config(conf_key: &str, path: &str) -> SourceConfig {
    SourceConfig {
        stream: "ticks".into(),
        datasource: path.into(),
        options: [("CONF_KEY".to_owned(), conf_key.to_owned())].into(),
        rule_id: "r".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_source_reads_a_server_and_connects_again_when_it_closes() {
    let (addr, _) = server(3).await;
    let dir = tempfile::tempdir().unwrap();
    let context = context(&addr, EgressPolicy::allow_all(), dir.path());
    let source = WebsocketSourceFactory(context.clone()).build(&stream_config("feed", "/ticks")).unwrap();
    let (out, mut events) = SourceOutput::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(out, cancel.clone()));
    let mut got = Vec::new();
    // The server closes after three: the source connects again, after a second.
    while got.len() < 6 {
        let event = timeout(WAIT, events.recv()).await.expect("in time").unwrap();
        let Payload::Bytes(bytes) = &event.payload else { panic!("raw messages") };
        let message: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        got.push((message["connection"].as_i64().unwrap(), message["i"].as_i64().unwrap()));
    }
    assert_eq!(got, [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]);
    let clients = context.connections.rule_clients("r");
    assert_eq!(clients[0].connection, "feed");
    cancel.cancel();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_sink_sends_each_payload_as_a_message() {
    let (addr, mut received) = server(0).await;
    let dir = tempfile::tempdir().unwrap();
    let context = context(&addr, EgressPolicy::allow_all(), dir.path());
    let props = json!({"connectionSelector": "feed", "path": "/results", "sendSingle": true});
    let config = SinkConfig {
        sink_type: "websocket".into(),
        props: props.as_object().cloned().unwrap(),
        rule_id: "r".into(),
        ..Default::default()
    };
    let mut sink = WebsocketSinkFactory(context.clone()).build(&config).unwrap();
    let rows: Vec<Map> = (0..2).map(|i| [(Arc::from("n"), Value::Int(i))].into_iter().collect()).collect();
    timeout(WAIT, sink.collect(&rows)).await.unwrap().unwrap();
    for n in 0..2 {
        let (path, text) = timeout(WAIT, received.recv()).await.unwrap().unwrap();
        assert_eq!((path.as_str(), text), ("/results", json!({"n": n}).to_string()));
    }
    assert_eq!(context.connections.rule_clients("r")[0].state, LinkState::Connected);
}

#[tokio::test]
async fn servers_named_by_clients_pass_the_egress_policy() {
    let (addr, _) = server(1).await;
    let dir = tempfile::tempdir().unwrap();
    let context = context(&addr, EgressPolicy::default(), dir.path());
    let source = WebsocketSourceFactory(context.clone()).build(&stream_config("feed", "/ticks")).unwrap();
    let (out, _events) = SourceOutput::channel(4);
    let error = timeout(WAIT, source.run(out, CancellationToken::new())).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("is refused: a loopback address"), "{error}");
    let relative = WebsocketSourceFactory(context).build(&stream_config("feed", "ticks"));
    assert!(relative.err().unwrap().to_string().contains("starting with '/'"));
}
