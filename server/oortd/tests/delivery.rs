//! Delivery guarantees, proven by killing the server: a rule whose qos asks
//! for at least once keeps its window across `kill -9`, and loses no result of
//! an event that Publish acknowledged, however often the server dies.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::delivery::{Receiver, checkpointed, create, publish, status, with_qos, written};
use common::{Oortd, action, int, rule};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::{DeliveryGuarantee, Event, PublishRequest, TailRuleRequest};

#[tokio::test]
async fn an_open_window_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let stream = r#"CREATE STREAM w (v BIGINT, ts BIGINT) WITH (DATASOURCE="w", TYPE="grpc", TIMESTAMP="ts")"#;
    let sql = "SELECT count(*) AS c, sum(v) AS s FROM w GROUP BY TUMBLINGWINDOW(ss, 6)";
    let mut windowed = with_qos(rule("win", sql, vec![action("log", &[])]), 2, 200);
    windowed.options.as_mut().unwrap().is_event_time = true;
    windowed.options.as_mut().unwrap().late_tolerance_ms = Some(0);
    create(&oortd, stream, windowed).await;
    let delivery = status(&oortd, "win").await.delivery.unwrap();
    assert_eq!(delivery.provided(), DeliveryGuarantee::AtLeastOnce, "{delivery:?}");
    assert!(delivery.reason.contains("a log sink cannot take back"), "{delivery:?}");

    // Ten events of one window: five covered by a checkpoint, five only by the journal.
    for v in 1..=5 {
        assert_eq!(publish(&oortd, "w", vec![vec![("v", v), ("ts", 100 * v)]]).await.unwrap(), 1);
    }
    checkpointed(&oortd, "win", 5).await;
    for v in 6..=10 {
        publish(&oortd, "w", vec![vec![("v", v), ("ts", 100 * v)]]).await.unwrap();
    }
    oortd.kill9();

    let oortd = Oortd::start(dir.path()).await;
    let restored = status(&oortd, "win").await.checkpoints.unwrap();
    assert!(restored.enabled);
    let from = restored.restored.expect("restarted from its checkpoint");
    assert!(from.source_position >= 5, "{from:?}");
    // The journal replays what the checkpoint lacks, and the status counts it.
    let mut replayed = restored.replayed_events;
    for _ in 0..200 {
        if replayed == 10 - from.source_position {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        replayed = status(&oortd, "win").await.checkpoints.unwrap().replayed_events;
    }
    assert_eq!(replayed, 10 - from.source_position);
    let mut results = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "win".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    publish(&oortd, "w", vec![vec![("v", 11), ("ts", 1_100)], vec![("v", 0), ("ts", 7_000)]]).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("the window closes");
    let row = next.unwrap().unwrap().event.expect("one row").fields;
    assert_eq!((row["c"].clone(), row["s"].clone()), (int(11), int(66)), "the window kept its ten events");
}

#[tokio::test]
async fn analytic_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let stream = r#"CREATE STREAM a (v BIGINT) WITH (DATASOURCE="a", TYPE="grpc")"#;
    let sql = "SELECT acc_sum(v) AS total, lag(v) AS previous, v FROM a WHERE v > 100";
    create(&oortd, stream, with_qos(rule("acc", sql, vec![action("log", &[])]), 1, 100)).await;
    for v in 1..=5 {
        publish(&oortd, "a", vec![vec![("v", v)]]).await.unwrap();
    }
    checkpointed(&oortd, "acc", 5).await;
    oortd.kill9();

    let oortd = Oortd::start(dir.path()).await;
    let mut results = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "acc".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    publish(&oortd, "a", vec![vec![("v", 1_000)]]).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("a result");
    let row = next.unwrap().unwrap().event.expect("one row").fields;
    let total = match row["total"].kind {
        Some(oort_proto::v1::value::Kind::FloatValue(x)) => x,
        ref other => panic!("total is {other:?}"),
    };
    assert_eq!(total, 1_015.0, "the sum went on from the checkpoint's");
    assert_eq!(row["previous"], int(5), "lag remembers the event before the kill");
}

/// What came out of [`kill_repeatedly`].
struct Outcome {
    /// Every `n` that `Publish` acknowledged.
    acknowledged: BTreeSet<i64>,
    /// Every `n` the file holds, in order, and its torn lines.
    written: (Vec<i64>, usize),
}

/// Runs `SELECT n FROM s` at `qos` into a file sink while publishers publish
/// batches, killing the server `kills` times at random moments; after the last
/// restart, waits until every acknowledged event has its result (10 s at most).
async fn kill_repeatedly(qos: u32, kills: usize) -> Outcome {
    const BATCH: i64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("files/out.jsonl");
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    // A seed printed, so that a failing run can be told apart from the next.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    println!("seed {seed}");
    let mut random = seed;
    for round in 0..kills {
        let oortd = Oortd::start(dir.path()).await;
        if round == 0 {
            let sink = action("file", &[("path", "out.jsonl")]);
            let copy = with_qos(rule("copy", "SELECT n FROM s", vec![sink]), qos, 50);
            create(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#, copy).await;
            let delivery = status(&oortd, "copy").await.delivery.unwrap();
            assert_eq!((delivery.requested, delivery.provided), (qos as i32 + 1, qos as i32 + 1), "{delivery:?}");
        }
        // Publishes batches until killed; records what was acknowledged. Each
        // round its own n, never one that an unacknowledged call may have published.
        let publishing = {
            let (channel, acknowledged) = (oortd.channel().await, Arc::clone(&acknowledged));
            tokio::spawn(async move {
                let mut client = EventServiceClient::new(channel);
                let mut n = 1_000_000 * round as i64;
                loop {
                    let events = (n..n + BATCH)
                        .map(|n| Event { fields: [("n".to_owned(), int(n))].into(), ..Default::default() })
                        .collect();
                    let request = PublishRequest { stream: "s".into(), events, ..Default::default() };
                    let Ok(response) = client.publish(tokio_stream::iter([request])).await else { return };
                    assert_eq!(response.into_inner().accepted, BATCH as u64);
                    acknowledged.lock().unwrap().extend(n..n + BATCH);
                    n += BATCH;
                }
            })
        };
        random = random.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        tokio::time::sleep(Duration::from_millis(100 + u64::from(random >> 16) % 300)).await;
        oortd.kill9();
        let _ = publishing.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > kills * BATCH as usize, "events were published: {}", acknowledged.len());
    let oortd = Oortd::start(dir.path()).await;
    let mut missing = Vec::new();
    for _ in 0..200 {
        let seen: BTreeSet<i64> = written(&out).0.into_iter().collect();
        missing = acknowledged.difference(&seen).copied().collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged events have no result, from {:?} to {:?}; {:?}",
        missing.len(),
        missing.first(),
        missing.last(),
        status(&oortd, "copy").await
    );
    let written = written(&out);
    let twice = written.0.len() - written.0.iter().collect::<BTreeSet<_>>().len();
    println!(
        "{} acknowledged, {} written, {twice} twice, {} torn lines",
        acknowledged.len(),
        written.0.len(),
        written.1
    );
    Outcome { acknowledged, written }
}

#[tokio::test]
async fn at_least_once_loses_no_acknowledged_event_through_ten_kill_9() {
    let outcome = kill_repeatedly(1, 10).await;
    assert!(outcome.written.0.len() >= outcome.acknowledged.len());
}

#[tokio::test]
async fn exactly_once_into_a_file_writes_each_result_once_through_ten_kill_9() {
    let Outcome { acknowledged, written: (written, torn) } = kill_repeatedly(2, 10).await;
    assert_eq!(torn, 0, "no torn line is left: the file is cut back to its last checkpoint");
    let once: BTreeSet<i64> = written.iter().copied().collect();
    assert_eq!(once.len(), written.len(), "no result is written twice");
    assert!(written.windows(2).all(|w| w[0] < w[1]), "in the order published");
    assert!(acknowledged.is_subset(&once));
}

/// Starts oortd over `data_dir` with `broker` as the server's MQTT broker.
async fn launch_with_broker(data_dir: &std::path::Path, broker: &str) -> Oortd {
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"])
        .arg(data_dir)
        .env("OORT_MQTT_SERVER", broker);
    Oortd::launch(command, data_dir).await
}

#[tokio::test]
async fn results_for_a_broker_down_at_a_kill_arrive_once_it_is_up() {
    let mut broker = oort_connectors::testing::Broker::not_started();
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let launch = || launch_with_broker(dir.path(), &url);
    let oortd = launch().await;
    let out = with_qos(rule("out", "SELECT n FROM s", vec![action("mqtt", &[("topic", "results")])]), 1, 50);
    create(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#, out).await;
    let events: Vec<Vec<(&str, i64)>> = (0..50).map(|n| vec![("n", n)]).collect();
    assert_eq!(publish(&oortd, "s", events).await.unwrap(), 50, "acknowledged while the broker is down");
    oortd.kill9();

    broker.run().await;
    let mut subscriber = oort_connectors::testing::TestClient::connect(&broker).await;
    subscriber.subscribe("results", rumqttc::QoS::AtLeastOnce).await;
    let _oortd = launch().await;
    let mut seen = BTreeSet::new();
    while seen.len() < 50 {
        let next = tokio::time::timeout(Duration::from_secs(20), subscriber.message()).await;
        let (_, payload, _) = next.unwrap_or_else(|_| panic!("only {} of 50 results within 20 s each", seen.len()));
        let rows = match serde_json::from_slice(&payload).unwrap() {
            serde_json::Value::Array(rows) => rows,
            row => vec![row],
        };
        seen.extend(rows.iter().filter_map(|r| r["n"].as_i64()));
    }
    assert_eq!(seen, (0..50).collect());
}

#[tokio::test]
async fn a_file_read_once_resumes_after_its_checkpoint_exactly_once() {
    const LINES: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let input: String = (0..LINES).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(files.join("in.jsonl"), input).unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let stream = r#"CREATE STREAM f (n BIGINT) WITH (DATASOURCE="in.jsonl", TYPE="file", SEND_INTERVAL="4")"#;
    let copy = with_qos(rule("copy", "SELECT n FROM f", vec![action("file", &[("path", "out.jsonl")])]), 2, 50);
    create(&oortd, stream, copy).await;
    let delivery = status(&oortd, "copy").await.delivery.unwrap();
    assert_eq!(delivery.provided(), DeliveryGuarantee::ExactlyOnce, "{delivery:?}");
    // Killed about halfway through the file.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = written(&files.join("out.jsonl")).0.len();
    oortd.kill9();
    assert!(before > 0 && before < LINES as usize, "{before} of {LINES} written before the kill");

    let oortd = Oortd::start(dir.path()).await;
    let restored = status(&oortd, "copy").await.checkpoints.unwrap().restored.expect("restarted from a checkpoint");
    assert!(restored.source_position > 0, "{restored:?}");
    let mut out = Vec::new();
    for _ in 0..200 {
        out = written(&files.join("out.jsonl")).0;
        if out.len() >= LINES as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(out, (0..LINES).collect::<Vec<_>>(), "every line once, in order: the read resumed, not restarted");
}

#[tokio::test]
async fn an_mqtt_stream_replays_what_was_published_while_the_server_was_down() {
    let broker = oort_connectors::testing::Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let launch = || launch_with_broker(dir.path(), &url);
    let oortd = launch().await;
    let copy = with_qos(rule("copy", "SELECT n FROM m", vec![action("file", &[("path", "out.jsonl")])]), 1, 50);
    create(&oortd, r#"CREATE STREAM m (n BIGINT) WITH (DATASOURCE="in/#", TYPE="mqtt")"#, copy).await;
    let delivery = status(&oortd, "copy").await.delivery.unwrap();
    assert_eq!(delivery.provided(), DeliveryGuarantee::AtLeastOnce, "{delivery:?}");
    let out = dir.path().join("files/out.jsonl");
    let publisher = oort_connectors::testing::TestClient::connect(&broker).await;
    let wait_for = |count: usize| {
        let out = out.clone();
        async move {
            for _ in 0..400 {
                let seen: BTreeSet<i64> = written(&out).0.into_iter().collect();
                if seen.len() >= count {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("fewer than {count} results after 10 s: {:?}", written(&out).0.len());
        }
    };
    // The rule subscribes in the background: publish the first message until it comes through.
    loop {
        publisher.publish("in/a", br#"{"n": 0}"#).await;
        if tokio::time::timeout(Duration::from_millis(300), wait_for(1)).await.is_ok() {
            break;
        }
    }
    for n in 1..30 {
        publisher.publish("in/a", format!(r#"{{"n": {n}}}"#).as_bytes()).await;
    }
    wait_for(30).await;
    oortd.kill9();
    // Published while no server runs: the broker keeps them for the rule's session.
    for n in 30..60 {
        publisher.publish("in/b", format!(r#"{{"n": {n}}}"#).as_bytes()).await;
    }
    // The test client sends in the background: give the broker time to take
    // them all while no server is connected.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let oortd = launch().await;
    assert_eq!(wait_for(60).await, (0..60).collect());

    // Deleting the rule ends its session at the broker.
    oortd.rules().await.delete_rule(oort_proto::v1::DeleteRuleRequest { id: "copy".into() }).await.unwrap();
    for _ in 0..200 {
        if oortd.logged(&["the deleted rule's MQTT session was ended"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut probe = rumqttc::MqttOptions::new("oort-copy", "127.0.0.1", broker.port);
    probe.set_clean_session(false);
    let (_client, mut events) = rumqttc::AsyncClient::new(probe, 10);
    let session_present = loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) = events.poll().await.unwrap() {
            break ack.session_present;
        }
    };
    assert!(!session_present, "the broker no longer keeps the deleted rule's session");
}

#[tokio::test]
async fn a_replayed_result_keeps_its_idempotency_key() {
    let (receiver, url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let post = with_qos(rule("post", "SELECT n FROM s", vec![action("rest", &[("url", &format!("{url}/in"))])]), 1, 50);
    create(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#, post).await;
    publish(&oortd, "s", (0..3).map(|n| vec![("n", n)]).collect()).await.unwrap();
    checkpointed(&oortd, "post", 3).await;
    // The receiver goes down: the next results wait, and the server dies with them.
    receiver.set_down(true);
    publish(&oortd, "s", (3..6).map(|n| vec![("n", n)]).collect()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    oortd.kill9();
    receiver.set_down(false);
    let _oortd = Oortd::start(dir.path()).await;
    let accepted = receiver.wait_for("/in", 6).await;
    let accepted: Vec<(String, i64)> = accepted.into_iter().map(|a| (a.key, a.row["n"].as_i64().unwrap())).collect();
    let expected: Vec<(String, i64)> = (0..6).map(|n| (format!("post:{n}:0"), n)).collect();
    assert_eq!(accepted, expected, "each result once, numbered on from before the kill");
}

#[tokio::test]
async fn deleting_a_stream_deletes_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let keep = with_qos(rule("keep", "SELECT n FROM s", vec![action("log", &[])]), 1, 50);
    create(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#, keep).await;
    publish(&oortd, "s", vec![vec![("n", 1)]]).await.unwrap();
    let journals = dir.path().join("journals/grpc");
    assert_eq!(std::fs::read_dir(&journals).unwrap().count(), 1, "the stream is journaled");
    let request = oort_proto::v1::DeleteRuleRequest { id: "keep".into() };
    oortd.rules().await.delete_rule(request).await.unwrap();
    let request = oort_proto::v1::DeleteStreamRequest { name: "s".into() };
    oortd.streams().await.delete_stream(request).await.unwrap();
    assert_eq!(std::fs::read_dir(&journals).unwrap().count(), 0, "its journal went with it");
}

#[tokio::test]
async fn a_tail_reader_resumes_where_it_left_off() {
    use oort_proto::v1::{TailPosition, TailRuleResponse};
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    create(
        &oortd,
        r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#,
        rule("t", "SELECT n FROM s", vec![action("log", &[])]),
    )
    .await;
    let tail = |from: Option<TailPosition>| {
        let oortd = &oortd;
        async move {
            let request = TailRuleRequest { id: "t".into(), max_batch: 4, from, ..Default::default() };
            oortd.rules().await.tail_rule(request).await.map(tonic::Response::into_inner)
        }
    };
    let ns = |response: &TailRuleResponse| -> Vec<i64> {
        response
            .events
            .iter()
            .map(|e| match e.fields["n"].kind {
                Some(oort_proto::v1::value::Kind::IntValue(n)) => n,
                _ => panic!(),
            })
            .collect()
    };
    let mut first_reader = tail(None).await.unwrap();
    publish(&oortd, "s", (0..10).map(|n| vec![("n", n)]).collect()).await.unwrap();
    // The reader reads a few results, then goes away.
    let mut read = Vec::new();
    let mut next = None;
    while read.len() < 6 {
        let response = first_reader.message().await.unwrap().unwrap();
        assert_eq!(response.first.map(|p| p.result), Some(read.len() as u64), "numbered from the first result");
        read.extend(ns(&response));
        next = response.next;
    }
    drop(first_reader);
    publish(&oortd, "s", (10..15).map(|n| vec![("n", n)]).collect()).await.unwrap();
    let mut resumed = tail(next).await.unwrap();
    while read.len() < 15 {
        let response =
            tokio::time::timeout(Duration::from_secs(10), resumed.message()).await.unwrap().unwrap().unwrap();
        read.extend(ns(&response));
    }
    assert_eq!(read, (0..15).collect::<Vec<_>>(), "nothing missed, nothing twice");

    let ahead = tail(Some(TailPosition { result: 99, row: 0 })).await.unwrap_err();
    assert_eq!(ahead.code(), tonic::Code::OutOfRange, "{ahead:?}");
    assert!(ahead.message().contains("next result is number 15"), "{ahead:?}");
}
