//! The `nats` source and sink against a real nats-server with JetStream
//! (`scripts/install-brokers.sh` builds it), started by each test on a free
//! port of 127.0.0.1 and killed at its end.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use oort_connectors::connections::{ConnectionDef, Connections, LinkState};
use oort_connectors::nats::{NatsContext, NatsSinkFactory, NatsSourceFactory};
use oort_connectors::testing::{NatsServer, WAIT};
use oort_engine::{
    ConnectorError, Guarantee, Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, Value,
};
use oort_policy::{EgressPolicy, FileRoots};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// A context with the connection `bus` to `server`.
fn context(server: &NatsServer, extra: serde_json::Value) -> NatsContext {
    let connections = Connections::new();
    let mut props = serde_json::json!({"server": server.url()}).as_object().cloned().unwrap();
    props.extend(extra.as_object().cloned().unwrap_or_default());
    connections.put(ConnectionDef { name: "bus".into(), kind: "nats".into(), props, declared: true });
    let files = Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap());
    NatsContext { connections, files, egress: Arc::new(EgressPolicy::allow_all()) }
}

fn source_config(subject: &str, options: &[(&str, &str)], qos: Guarantee, resume_after: Option<u64>) -> SourceConfig {
    let mut all: Vec<(&str, &str)> = vec![("CONF_KEY", "bus")];
    all.extend_from_slice(options);
    SourceConfig {
        stream: "s".into(),
        datasource: subject.into(),
        options: all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rule_id: "r1".into(),
        qos,
        resume_after,
        ..Default::default()
    }
}

struct Running {
    events: mpsc::Receiver<SourceEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConnectorError>>,
}

impl Running {
    fn start(context: &NatsContext, config: &SourceConfig) -> Self {
        let source = NatsSourceFactory(context.clone()).build(config).unwrap();
        let (tx, events) = SourceOutput::channel(100);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, cancel.clone()));
        Running { events, cancel, task }
    }

    async fn next(&mut self) -> SourceEvent {
        timeout(WAIT, self.events.recv()).await.expect("an event in time").expect("the source runs")
    }

    async fn nothing_for(&mut self, wait: Duration) {
        if let Ok(Some(event)) = timeout(wait, self.events.recv()).await {
            panic!("unexpected event {:?} {:?}", event.meta, event.position);
        }
    }

    async fn stop(self) -> Result<(), ConnectorError> {
        self.cancel.cancel();
        timeout(Duration::from_secs(5), self.task).await.expect("stops promptly").unwrap()
    }
}

fn text(event: &SourceEvent) -> String {
    match &event.payload {
        Payload::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        Payload::Map(m) => panic!("bytes expected, got {m:?}"),
    }
}

/// A JetStream stream ORDERS over `orders.>`, holding `n` messages `0`..`n`.
async fn orders(server: &NatsServer, n: usize) -> jetstream::Context {
    let js = jetstream::new(server.client().await);
    let config = jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    for i in 0..n {
        js.publish(format!("orders.{i}"), i.to_string().into()).await.unwrap().await.unwrap();
    }
    js
}

#[tokio::test]
async fn core_subscriptions_get_what_is_published_and_queue_groups_split_it() {
    let server = NatsServer::start().await;
    let context = context(&server, serde_json::json!({}));
    let mut plain = Running::start(&context, &source_config("sensors.*", &[], Guarantee::AtMostOnce, None));
    let group = [("QUEUE_GROUP", "workers")];
    let mut a = Running::start(&context, &source_config("jobs", &group, Guarantee::AtMostOnce, None));
    let mut b = Running::start(&context, &source_config("jobs", &group, Guarantee::AtMostOnce, None));
    let client = server.client().await;
    // Subscriptions are made in the background: publish until the first arrives.
    let first = loop {
        client.publish("sensors.a", "1".into()).await.unwrap();
        if let Ok(Some(event)) = timeout(Duration::from_millis(200), plain.events.recv()).await {
            break event;
        }
    };
    assert_eq!(first.meta["subject"], "sensors.a");
    client.publish("sensors.b.c", "no".into()).await.unwrap();
    client.publish("sensors.b", "yes".into()).await.unwrap();
    loop {
        let event = plain.next().await;
        if event.meta["subject"] != "sensors.a" {
            assert_eq!((event.meta["subject"].as_str(), text(&event).as_str()), ("sensors.b", "yes"));
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..40 {
        client.publish("jobs", i.to_string().into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let (mut got_a, mut got_b) = (0, 0);
    while got_a + got_b < 40 {
        tokio::select! {
            Some(_) = a.events.recv() => got_a += 1,
            Some(_) = b.events.recv() => got_b += 1,
            () = tokio::time::sleep(WAIT) => panic!("{got_a} + {got_b} of 40"),
        }
    }
    assert!(got_a > 0 && got_b > 0, "each member gets some: {got_a} and {got_b}");
    a.nothing_for(Duration::from_millis(200)).await;
    b.nothing_for(Duration::from_millis(1)).await;
    for running in [plain, a, b] {
        running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_durable_consumer_goes_on_where_it_was_after_a_restart() {
    let server = NatsServer::start().await;
    let js = orders(&server, 3).await;
    let context = context(&server, serde_json::json!({}));
    let config = source_config("orders.>", &[("STREAM", "ORDERS")], Guarantee::AtMostOnce, None);
    let mut source = Running::start(&context, &config);
    for expected in ["0", "1", "2"] {
        let event = source.next().await;
        assert_eq!(text(&event), expected);
        assert_eq!(event.meta["stream"], "ORDERS");
        assert_eq!(event.position, None, "qos 0: no position");
    }
    source.stop().await.unwrap();
    let consumer: jetstream::consumer::PullConsumer =
        js.get_stream("ORDERS").await.unwrap().get_consumer("oort-r1").await.unwrap();
    let mut consumer = consumer;
    let info = consumer.info().await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 3, "each message acknowledged once handed on");

    js.publish("orders.new", "3".into()).await.unwrap().await.unwrap();
    let mut again = Running::start(&context, &config);
    assert_eq!(text(&again.next().await), "3", "nothing read twice");
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_rule_that_replays_reads_from_its_checkpoints_stream_sequence() {
    let server = NatsServer::start().await;
    let js = orders(&server, 5).await;
    let context = context(&server, serde_json::json!({}));
    let factory = NatsSourceFactory(context.clone());
    let fresh = source_config("orders.>", &[("STREAM", "ORDERS")], Guarantee::AtLeastOnce, None);
    let positions = factory.positions(&fresh).unwrap().expect("JetStream replays");
    assert!(positions.exact());
    let mut source = Running::start(&context, &fresh);
    for sequence in 1..=5 {
        let event = source.next().await;
        assert_eq!((event.position, event.meta["sequence"].clone()), (Some(sequence), sequence.to_string()));
    }
    source.stop().await.unwrap();

    js.publish("orders.late", "5".into()).await.unwrap().await.unwrap();
    let resumed = source_config("orders.>", &[("STREAM", "ORDERS")], Guarantee::AtLeastOnce, Some(3));
    let mut source = Running::start(&context, &resumed);
    let replayed: Vec<(Option<u64>, String)> =
        [source.next().await, source.next().await, source.next().await].iter().map(|e| (e.position, text(e))).collect();
    assert_eq!(replayed, [(Some(4), "3".into()), (Some(5), "4".into()), (Some(6), "5".into())]);
    source.stop().await.unwrap();
    // No durable consumer for a rule that keeps its own positions.
    let names: Vec<String> =
        js.get_stream("ORDERS").await.unwrap().consumer_names().map(|n| n.unwrap()).collect().await;
    assert!(names.iter().all(|n| n != "oort-r1"), "{names:?}");
}

fn sink_config(props: serde_json::Value) -> SinkConfig {
    let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
    SinkConfig { sink_type: "nats".into(), props, rule_id: "r1".into(), ..Default::default() }
}

fn row(n: i64) -> Map {
    [(Arc::from("n"), Value::Int(n))].into_iter().collect()
}

#[tokio::test]
async fn the_sink_publishes_with_message_ids_that_jetstream_deduplicates() {
    let server = NatsServer::start().await;
    let js = orders(&server, 0).await;
    let context = context(&server, serde_json::json!({}));
    let factory = NatsSinkFactory(context.clone());
    let mut subscriber = server.client().await.subscribe("orders.out").await.unwrap();
    let mut sink = factory
        .build(&sink_config(
            serde_json::json!({"connectionSelector": "bus", "subject": "orders.out", "jetstream": true}),
        ))
        .unwrap();
    sink.open().await.unwrap();
    sink.collect_numbered(7, &[row(1)]).await.unwrap();
    // The same result again, as after a restart: the stream keeps one copy.
    sink.collect_numbered(7, &[row(1)]).await.unwrap();
    sink.collect_numbered(8, &[row(2)]).await.unwrap();
    let first = timeout(WAIT, subscriber.next()).await.unwrap().unwrap();
    assert_eq!(&first.payload[..], br#"[{"n":1}]"#);
    let headers = first.headers.as_ref().expect("headers");
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str()), Some("r1:7:0"), "{headers:?}");
    let mut stream = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2, "the duplicate was dropped");
    sink.close().await.unwrap();

    let mut core = factory
        .build(&sink_config(serde_json::json!({"connectionSelector": "bus", "subject": "plain", "sendSingle": true})))
        .unwrap();
    let mut plain = server.client().await.subscribe("plain").await.unwrap();
    core.collect(&[row(3), row(4)]).await.unwrap();
    let got: Vec<Vec<u8>> = vec![
        timeout(WAIT, plain.next()).await.unwrap().unwrap().payload.to_vec(),
        timeout(WAIT, plain.next()).await.unwrap().unwrap().payload.to_vec(),
    ];
    assert_eq!(got, [br#"{"n":3}"#.to_vec(), br#"{"n":4}"#.to_vec()]);
    core.close().await.unwrap();

    // A subject per payload, from a template.
    let mut dynamic = factory
        .build(&sink_config(
            serde_json::json!({"connectionSelector": "bus", "subject": "dyn.{{.n}}", "sendSingle": true}),
        ))
        .unwrap();
    let mut each = server.client().await.subscribe("dyn.*").await.unwrap();
    dynamic.collect(&[row(5), row(6)]).await.unwrap();
    let subjects = [
        timeout(WAIT, each.next()).await.unwrap().unwrap().subject.to_string(),
        timeout(WAIT, each.next()).await.unwrap().unwrap().subject.to_string(),
    ];
    assert_eq!(subjects, ["dyn.5", "dyn.6"]);
    dynamic.close().await.unwrap();
}

#[tokio::test]
async fn credentials_are_used_and_a_refusal_fails_the_source_with_the_reason() {
    let server = NatsServer::start_with_password("gw", "s3cret").await;
    let good = context(&server, serde_json::json!({"username": "gw", "password": "s3cret"}));
    let mut source = Running::start(&good, &source_config("a", &[], Guarantee::AtMostOnce, None));
    let client = server.client().await;
    loop {
        client.publish("a", "x".into()).await.unwrap();
        if timeout(Duration::from_millis(200), source.events.recv()).await.is_ok() {
            break;
        }
    }
    let clients = good.connections.rule_clients("r1");
    assert_eq!(clients[0].state, LinkState::Connected, "{clients:?}");
    source.stop().await.unwrap();

    let bad = context(&server, serde_json::json!({"username": "gw", "password": "nope"}));
    let refused = Running::start(&bad, &source_config("a", &[], Guarantee::AtMostOnce, None));
    let ended = timeout(WAIT, refused.task).await.expect("fails promptly").unwrap();
    let error = ended.unwrap_err().to_string();
    assert!(error.to_lowercase().contains("authorization"), "{error}");
    assert!(bad.connections.status("bus").last_error.is_some());
}

#[tokio::test]
async fn options_and_properties_are_checked_when_built() {
    let server = NatsServer::start().await;
    let context = context(&server, serde_json::json!({}));
    let sources = NatsSourceFactory(context.clone());
    let error = |result: Result<Box<dyn oort_engine::Source>, ConnectorError>| match result {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error"),
    };
    let mut missing = source_config("a", &[], Guarantee::AtMostOnce, None);
    missing.options.clear();
    assert!(error(sources.build(&missing)).contains("needs CONF_KEY"));
    let unknown = source_config("a", &[("CONF_KEY", "nope")], Guarantee::AtMostOnce, None);
    assert!(error(sources.build(&unknown)).contains("no connection \"nope\""));
    assert!(error(sources.build(&source_config("a..b", &[], Guarantee::AtMostOnce, None))).contains("empty token"));
    let split = source_config("a", &[("QUEUE_GROUP", "g")], Guarantee::AtMostOnce, None);
    assert!(sources.splits_input(&split).unwrap().contains("queue group"));

    let sinks = NatsSinkFactory(context);
    for (props, why) in [
        (serde_json::json!({"subject": "a"}), "needs connectionSelector"),
        (serde_json::json!({"connectionSelector": "bus", "subject": "a.*"}), "no wildcards"),
        (serde_json::json!({"connectionSelector": "bus", "subject": "{{.x"}), "subject"),
        (serde_json::json!({"connectionSelector": "bus"}), "it is empty"),
    ] {
        let message = match sinks.build(&sink_config(props.clone())) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{props}: expected an error"),
        };
        assert!(message.contains(why), "{props}: {message}");
    }
}

#[tokio::test]
async fn messages_the_client_drops_for_a_slow_rule_are_counted() {
    let server = NatsServer::start().await;
    let context = context(&server, serde_json::json!({}));
    let source = NatsSourceFactory(context).build(&source_config("flood", &[], Guarantee::AtMostOnce, None)).unwrap();
    // A rule that takes one event and then nothing: the source waits, and the client's buffer fills.
    let metrics = Arc::new(oort_engine::OperatorMetrics::new("source_s_0"));
    let (tx, mut events) = mpsc::channel(1);
    let out = SourceOutput::new(tx, oort_engine::BufferFull::Block, Arc::clone(&metrics));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(out, cancel.clone()));
    let client = server.client().await;
    while timeout(Duration::from_millis(100), events.recv()).await.is_err() {
        client.publish("flood", "probe".into()).await.unwrap();
    }
    for _ in 0..100_000 {
        client.publish("flood", "x".into()).await.unwrap();
    }
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reading again hands on what was kept, and counts what was not.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Ok(Some(_)) = timeout(Duration::from_millis(10), events.recv()).await {}
        let status = metrics.snapshot();
        if status.records_dropped_total > 0 {
            let (message, _) = status.last_exception.expect("an exception says why");
            assert!(message.contains("reads slower"), "{message}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no drop counted: {status:?}");
    }
    cancel.cancel();
    timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_message_id_template_names_a_windows_result_alike_whichever_server_or_run_sends_it() {
    let server = NatsServer::start().await;
    let js = orders(&server, 0).await;
    let factory = NatsSinkFactory(context(&server, serde_json::json!({})));
    let props = serde_json::json!({"connectionSelector": "bus", "subject": "orders.out", "jetstream": true,
        "sendSingle": true, "msgId": "w{{.n}}"});
    // Two servers (or two runs), unnumbered results: the same window's row has the same id.
    for _ in 0..2 {
        let mut sink = factory.build(&sink_config(props.clone())).unwrap();
        sink.open().await.unwrap();
        sink.collect(&[row(1), row(2)]).await.unwrap();
        // A number, when the rule has one, gives way to the template.
        sink.collect_numbered(9, &[row(3)]).await.unwrap();
        sink.close().await.unwrap();
    }
    let mut stream = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3, "each window's row once");
    let message = stream.get_raw_message(1).await.unwrap();
    assert_eq!(message.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str()), Some("w1"));

    let constant = serde_json::json!({"connectionSelector": "bus", "subject": "orders.out", "msgId": "same"});
    let refused = factory.build(&sink_config(constant)).err().expect("a constant id is refused");
    assert!(refused.to_string().contains("must be a template"), "{refused}");
}
