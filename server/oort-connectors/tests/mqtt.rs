//! The `mqtt` source and sink against a real broker: Debian's `mosquitto`
//! (`apt-get install -y mosquitto`), started by each test on a free port of
//! 127.0.0.1 and killed at its end.

use std::time::Duration;

use oort_connectors::connections::ConnectionDef;
use oort_connectors::mqtt::{DEFAULT_SERVER, MqttContext, MqttSinkFactory, MqttSourceFactory};
use oort_connectors::testing::{Broker, TestClient, WAIT, free_port};
use oort_engine::{
    ConnectorError, Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceEvent, SourceFactory, SourceOutput,
    Value,
};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// A running source: its events and how to stop it.
struct RunningSource {
    events: mpsc::Receiver<SourceEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConnectorError>>,
}

const PROBE: &[u8] = b"probe";

impl RunningSource {
    fn start(connection: serde_json::Value, filter: &str) -> Self {
        let source = MqttSourceFactory::new(context(connection))
            .build(&SourceConfig {
                stream: "s".into(),
                datasource: filter.into(),
                options: Default::default(),
                rule_id: "rule1".into(),
                ..Default::default()
            })
            .unwrap();
        let (tx, events) = SourceOutput::channel(100);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, cancel.clone()));
        RunningSource { events, cancel, task }
    }

    /// Publishes probes on `topic` until one arrives: the source is subscribed.
    async fn wait_subscribed(&mut self, publisher: &TestClient, topic: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            publisher.publish(topic, PROBE).await;
            if let Ok(Some(_)) = timeout(Duration::from_millis(200), self.events.recv()).await {
                return;
            }
            assert!(!self.task.is_finished(), "the source stopped");
            assert!(Instant::now() < deadline, "the source never received a probe");
        }
    }

    /// The next event that is not a probe.
    async fn next(&mut self) -> SourceEvent {
        let next = timeout(WAIT, async {
            loop {
                let event = self.events.recv().await.expect("source running");
                if !matches!(&event.payload, Payload::Bytes(b) if b == PROBE) {
                    return event;
                }
            }
        });
        next.await.expect("an event arrives")
    }

    /// Cancels the source, which must end promptly and cleanly.
    async fn stop(self) {
        self.cancel.cancel();
        let ended = timeout(Duration::from_secs(5), self.task).await.expect("the source stops promptly");
        ended.unwrap().expect("the source ends without error");
    }
}

fn bytes(event: &SourceEvent) -> &[u8] {
    match &event.payload {
        Payload::Bytes(b) => b,
        Payload::Map(m) => panic!("expected bytes, got {m:?}"),
    }
}

/// The settings of the default connection to `broker`.
fn config(broker: &Broker) -> serde_json::Value {
    serde_json::json!({"server": broker.url()})
}

/// A context whose default connection has these settings.
fn context(connection: serde_json::Value) -> MqttContext {
    let context = MqttContext::for_tests(DEFAULT_SERVER);
    let props = connection.as_object().cloned().expect("an object");
    context.connections.put(ConnectionDef { name: "default".into(), kind: "mqtt".into(), props, declared: true });
    context
}

fn sinks() -> MqttSinkFactory {
    MqttSinkFactory(MqttContext::for_tests(DEFAULT_SERVER))
}

fn sink_config(props: serde_json::Value) -> SinkConfig {
    let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
    SinkConfig { sink_type: "mqtt".into(), props, rule_id: "rule1".into(), ..Default::default() }
}

fn row(pairs: &[(&str, Value)]) -> Map {
    pairs.iter().map(|(k, v)| (std::sync::Arc::from(*k), v.clone())).collect()
}

#[tokio::test]
async fn source_receives_what_a_client_publishes() {
    let broker = Broker::start().await;
    let mut source = RunningSource::start(config(&broker), "oort/plain");
    let publisher = TestClient::connect(&broker).await;
    source.wait_subscribed(&publisher, "oort/plain").await;

    publisher.publish("oort/plain", br#"{"temperature": 21.5}"#).await;
    let event = source.next().await;
    assert_eq!(bytes(&event), br#"{"temperature": 21.5}"#);
    assert_eq!(event.meta["topic"], "oort/plain");
    assert_eq!(event.meta["qos"], "1");
    assert!(event.meta["messageId"].parse::<u16>().unwrap() > 0, "{:?}", event.meta);

    // Bytes pass untouched, whatever they are.
    publisher.publish("oort/plain", &[0, 159, 146, 150]).await;
    assert_eq!(bytes(&source.next().await), [0, 159, 146, 150]);
    source.stop().await;
}

#[tokio::test]
async fn source_wildcard_filters() {
    let broker = Broker::start().await;
    let mut plus = RunningSource::start(config(&broker), "oort/+/temp");
    let mut hash = RunningSource::start(config(&broker), "site/#");
    let publisher = TestClient::connect(&broker).await;
    plus.wait_subscribed(&publisher, "oort/probe/temp").await;
    hash.wait_subscribed(&publisher, "site/probe").await;

    // One publisher, QoS 1: the broker keeps the order, so a message wrongly let
    // through would arrive before the last one.
    for topic in ["oort/a/temp", "oort/b/hum", "oort/a/b/temp", "site", "site/x/y", "other/x", "oort/b/temp"] {
        publisher.publish(topic, topic.as_bytes()).await;
    }
    assert_eq!(plus.next().await.meta["topic"], "oort/a/temp");
    let event = plus.next().await;
    assert_eq!((event.meta["topic"].as_str(), bytes(&event)), ("oort/b/temp", &b"oort/b/temp"[..]));
    // `site/#` matches `site` itself too.
    assert_eq!(hash.next().await.meta["topic"], "site");
    assert_eq!(hash.next().await.meta["topic"], "site/x/y");
    publisher.publish("site/last", b"last").await;
    assert_eq!(hash.next().await.meta["topic"], "site/last");
    plus.stop().await;
    hash.stop().await;
}

#[tokio::test]
async fn source_survives_a_broker_restart() {
    let mut broker = Broker::start().await;
    let mut source = RunningSource::start(config(&broker), "oort/restart");
    let publisher = TestClient::connect(&broker).await;
    source.wait_subscribed(&publisher, "oort/restart").await;
    publisher.publish("oort/restart", b"before").await;
    assert_eq!(bytes(&source.next().await), b"before");
    drop(publisher);

    broker.restart().await;
    assert!(!source.task.is_finished(), "the source must keep running through a broker restart");
    let publisher = TestClient::connect(&broker).await;
    source.wait_subscribed(&publisher, "oort/restart").await;
    publisher.publish("oort/restart", b"after").await;
    assert_eq!(bytes(&source.next().await), b"after");
    source.stop().await;
}

#[tokio::test]
async fn source_waits_for_a_broker_that_is_not_up_yet() {
    let mut broker = Broker::not_started();
    let mut source = RunningSource::start(config(&broker), "oort/late");
    // It keeps trying (and warning) rather than ending.
    let ended = timeout(Duration::from_millis(500), &mut source.task).await;
    assert!(ended.is_err(), "no broker is not a reason to stop: {ended:?}");
    broker.run().await;
    let publisher = TestClient::connect(&broker).await;
    source.wait_subscribed(&publisher, "oort/late").await;
    source.stop().await;

    // Cancelled while the broker is down, it stops promptly too.
    let down = Broker::not_started();
    RunningSource::start(config(&down), "oort/never").stop().await;
}

#[tokio::test]
async fn source_reports_a_broker_it_cannot_reach_in_its_operator_status() {
    let down = Broker::not_started();
    let source = MqttSourceFactory::new(context(config(&down)))
        .build(&SourceConfig {
            stream: "s".into(),
            datasource: "oort/down".into(),
            rule_id: "rule1".into(),
            ..Default::default()
        })
        .unwrap();
    let metrics = std::sync::Arc::new(oort_engine::metrics::OperatorMetrics::new("source_s_0"));
    let (tx, _events) = mpsc::channel(10);
    let out = SourceOutput::new(tx, oort_engine::BufferFull::Block, std::sync::Arc::clone(&metrics));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(out, cancel.clone()));
    let deadline = Instant::now() + WAIT;
    while metrics.exceptions_total() == 0 {
        assert!(Instant::now() < deadline, "the failed connection is not in the status");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (message, _) = metrics.snapshot().last_exception.expect("an exception");
    assert!(message.contains("no connection to the MQTT broker") && message.contains("reconnecting"), "{message}");
    assert!(!task.is_finished(), "it keeps trying");
    cancel.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn sink_publishes_what_a_subscriber_receives() {
    let broker = Broker::start().await;
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("oort/out/#", QoS::ExactlyOnce).await;
    let rows = [
        row(&[("a", Value::Int(1)), ("b", Value::String("x".into()))]),
        row(&[("a", Value::Int(2)), ("b", Value::Null)]),
    ];

    let mut sink = sinks()
        .build(&sink_config(serde_json::json!({"server": broker.url(), "topic": "oort/out/all", "qos": 1})))
        .unwrap();
    sink.open().await.unwrap();
    timeout(WAIT, sink.collect(&rows)).await.unwrap().unwrap();
    let (topic, payload, qos) = subscriber.message().await;
    assert_eq!((topic.as_str(), qos), ("oort/out/all", QoS::AtLeastOnce));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        serde_json::json!([{"a": 1, "b": "x"}, {"a": 2, "b": null}])
    );
    sink.close().await.unwrap();

    // One message per row; every QoS.
    for qos in [0u8, 1, 2] {
        let props =
            serde_json::json!({"server": broker.url(), "topic": "oort/out/single", "qos": qos, "sendSingle": true});
        let mut sink = sinks().build(&sink_config(props)).unwrap();
        sink.open().await.unwrap();
        timeout(WAIT, sink.collect(&rows)).await.unwrap().unwrap();
        for a in [1, 2] {
            let (topic, payload, got) = subscriber.message().await;
            assert_eq!(topic, "oort/out/single");
            assert_eq!(got as u8, qos);
            assert_eq!(serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["a"], a);
        }
        sink.close().await.unwrap();
    }

    // A topic per row, from a template; a row whose topic would hold a wildcard is refused.
    let props = serde_json::json!({"server": broker.url(), "topic": "oort/out/{{.a}}", "sendSingle": true});
    let mut sink = sinks().build(&sink_config(props)).unwrap();
    timeout(WAIT, sink.collect(&rows)).await.unwrap().unwrap();
    assert_eq!(subscriber.message().await.0, "oort/out/1");
    assert_eq!(subscriber.message().await.0, "oort/out/2");
    let wildcard = [row(&[("a", Value::String("#".into()))])];
    let error = timeout(WAIT, sink.collect(&wildcard)).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("wildcards"), "{error}");
    sink.close().await.unwrap();
}

#[tokio::test]
async fn sink_fails_with_external_when_the_broker_is_down() {
    let port = free_port();
    let mut sink = sinks()
        .build(&sink_config(serde_json::json!({"server": format!("tcp://127.0.0.1:{port}"), "topic": "t"})))
        .unwrap();
    let opened = timeout(WAIT, sink.open()).await.expect("open gives up in time");
    assert!(matches!(opened, Err(ConnectorError::External(ref m)) if m.contains("cannot connect")), "{opened:?}");
    let collected =
        timeout(WAIT, sink.collect(&[row(&[("a", Value::Int(1))])])).await.expect("collect gives up in time");
    assert!(matches!(collected, Err(ConnectorError::External(_))), "{collected:?}");
    sink.close().await.unwrap();
}

#[tokio::test]
async fn sink_reconnects_after_a_broker_restart() {
    let mut broker = Broker::start().await;
    let props = serde_json::json!({"server": broker.url(), "topic": "oort/sink/restart", "qos": 1});
    let mut sink = sinks().build(&sink_config(props)).unwrap();
    sink.open().await.unwrap();
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("oort/sink/restart", QoS::AtLeastOnce).await;
    timeout(WAIT, sink.collect(&[row(&[("n", Value::Int(1))])])).await.unwrap().unwrap();
    assert_eq!(subscriber.message().await.1, br#"[{"n":1}]"#);
    drop(subscriber);

    broker.kill();
    let down = timeout(WAIT, sink.collect(&[row(&[("n", Value::Int(2))])])).await.unwrap();
    assert!(matches!(down, Err(ConnectorError::External(_))), "{down:?}");

    broker.run().await;
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("oort/sink/restart", QoS::AtLeastOnce).await;
    // The engine retries the failed result: it goes through now.
    timeout(WAIT, sink.collect(&[row(&[("n", Value::Int(2))])])).await.unwrap().unwrap();
    assert_eq!(subscriber.message().await.1, br#"[{"n":2}]"#);

    // A connection that died while the sink was idle is replaced without an error.
    broker.restart().await;
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("oort/sink/restart", QoS::AtLeastOnce).await;
    timeout(WAIT, sink.collect(&[row(&[("n", Value::Int(3))])])).await.unwrap().unwrap();
    assert_eq!(subscriber.message().await.1, br#"[{"n":3}]"#);
    sink.close().await.unwrap();
}

#[tokio::test]
async fn sink_to_source_over_mqtt5() {
    let broker = Broker::start().await;
    let v5 = serde_json::json!({"server": broker.url(), "protocolVersion": "5"});
    let mut source = RunningSource::start(v5, "oort/v5");
    let publisher = TestClient::connect(&broker).await;
    source.wait_subscribed(&publisher, "oort/v5").await;

    let props = serde_json::json!({"server": broker.url(), "topic": "oort/v5", "qos": 2, "protocolVersion": "5"});
    let mut sink = sinks().build(&sink_config(props)).unwrap();
    sink.open().await.unwrap();
    timeout(WAIT, sink.collect(&[row(&[("v", Value::Float(5.0))])])).await.unwrap().unwrap();
    let event = source.next().await;
    assert_eq!(bytes(&event), br#"[{"v":5.0}]"#);
    assert_eq!(event.meta["topic"], "oort/v5");
    sink.close().await.unwrap();
    source.stop().await;
}

#[tokio::test]
async fn an_mqtt5_message_carries_its_results_key() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let broker = Broker::start().await;
    let mut options = rumqttc::v5::MqttOptions::new("keys", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (subscriber, mut events) = rumqttc::v5::AsyncClient::new(options, 10);
    subscriber.subscribe("oort/keys", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.unwrap();
    loop {
        if let rumqttc::v5::Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    let props = serde_json::json!({
        "server": broker.url(), "topic": "oort/keys", "protocolVersion": "5", "sendSingle": true
    });
    let mut sink = sinks().build(&sink_config(props)).unwrap();
    sink.open().await.unwrap();
    let rows = [row(&[("n", Value::Int(1))]), row(&[("n", Value::Int(2))])];
    timeout(WAIT, sink.collect_numbered(7, &rows)).await.unwrap().unwrap();
    let mut keys = Vec::new();
    while keys.len() < 2 {
        let event = timeout(WAIT, events.poll()).await.expect("a message").unwrap();
        if let rumqttc::v5::Event::Incoming(Packet::Publish(publish)) = event {
            let properties = publish.properties.expect("user properties");
            keys.extend(properties.user_properties.into_iter().filter(|(k, _)| k == "Idempotency-Key").map(|(_, v)| v));
        }
    }
    assert_eq!(keys, ["rule1:7:0", "rule1:7:1"], "one key per message of result 7");
    sink.close().await.unwrap();
}
