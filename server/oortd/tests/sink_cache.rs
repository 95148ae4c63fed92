//! The sink cache (`enableCache` and eKuiper's other cache properties),
//! against the real server and a real HTTP receiver that goes down: the rule
//! and its other sinks go on, what the sink missed is sent when it is back,
//! through `kill -9` too.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::delivery::{Receiver, checkpointed, create, publish, status, with_qos, written};
use common::{Oortd, action, action_json, rule};
use oort_proto::v1::{StartRuleRequest, StopRuleRequest};
use serde_json::json;

const STREAM: &str = r#"CREATE STREAM s (n BIGINT) WITH (DATASOURCE="s", TYPE="grpc")"#;

fn numbers(range: std::ops::Range<i64>) -> Vec<Vec<(&'static str, i64)>> {
    range.map(|n| vec![("n", n)]).collect()
}

/// Waits (10 s at most) until the rule's sink `index` holds `count` results
/// in its queue and cache.
async fn cached(oortd: &Oortd, rule: &str, index: usize, count: u64) {
    let name = |s: &oort_proto::v1::GetRuleStatusResponse| {
        s.operators.iter().filter(|o| o.name.starts_with("sink_")).nth(index).map_or(0, |o| o.buffer_length)
    };
    for _ in 0..400 {
        if name(&status(oortd, rule).await) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the sink never held {count} results: {:?}", status(oortd, rule).await);
}

#[tokio::test]
async fn a_sink_that_is_down_holds_nothing_back_and_its_cache_survives_kill_9() {
    let (receiver, url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let post = action_json(
        "rest",
        json!({"url": format!("{url}/in"), "timeout": 1000, "enableCache": true,
               "memoryCacheThreshold": 4, "bufferPageSize": 2}),
    );
    let copy = action("file", &[("path", "out.jsonl")]);
    create(&oortd, STREAM, with_qos(rule("both", "SELECT n FROM s", vec![post, copy]), 1, 50)).await;

    receiver.set_down(true);
    publish(&oortd, "s", numbers(0..20)).await.unwrap();
    // The file sink gets every result while the receiver is down, and the
    // checkpoints go on: the cache holds the rest sink's results durably.
    let out = dir.path().join("files/out.jsonl");
    for _ in 0..400 {
        if written(&out).0.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(written(&out).0, (0..20).collect::<Vec<_>>());
    checkpointed(&oortd, "both", 20).await;
    cached(&oortd, "both", 0, 20).await;
    let pages = dir.path().join("sink-cache");
    assert!(walk(&pages).iter().any(|p| p.extension() == Some("page".as_ref())), "pages on disk: {:?}", walk(&pages));
    oortd.kill9();

    receiver.set_down(false);
    let oortd = Oortd::start(dir.path()).await;
    let accepted = receiver.wait_for("/in", 20).await;
    let sent: Vec<i64> = accepted.iter().map(|a| a.row["n"].as_i64().unwrap()).collect();
    assert_eq!(sent, (0..20).collect::<Vec<_>>(), "each result once, in order, after the restart");
    let keys: BTreeSet<&str> = accepted.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys.len(), 20, "each with the idempotency key of its result");

    // Deleting the rule deletes its cache.
    let request = oort_proto::v1::DeleteRuleRequest { id: "both".into() };
    oortd.rules().await.delete_rule(request).await.unwrap();
    assert!(walk(&pages).is_empty(), "{:?}", walk(&pages));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { walk(&path) } else { vec![path] }
        })
        .collect()
}

#[tokio::test]
async fn the_alternate_queue_sends_new_results_at_once_and_marks_those_sent_again() {
    let (receiver, url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let post = action_json(
        "rest",
        json!({"url": format!("{url}/in"), "timeout": 1000, "enableCache": true, "resendAlterQueue": true,
               "resendIndicatorField": "resent", "resendInterval": "10ms"}),
    );
    create(&oortd, STREAM, rule("alter", "SELECT n FROM s", vec![post])).await;
    receiver.set_down(true);
    publish(&oortd, "s", numbers(0..5)).await.unwrap();
    cached(&oortd, "alter", 0, 5).await;
    receiver.set_down(false);
    publish(&oortd, "s", numbers(5..10)).await.unwrap();
    let accepted = receiver.wait_for("/in", 10).await;
    let mut rows: Vec<(i64, bool)> = accepted
        .iter()
        .map(|a| (a.row["n"].as_i64().unwrap(), a.row.get("resent").and_then(|r| r.as_bool()).unwrap_or(false)))
        .collect();
    rows.sort();
    let expected: Vec<(i64, bool)> = (0..10).map(|n| (n, n < 5)).collect();
    assert_eq!(rows, expected, "the cached results carry resent: true, the new ones do not");
}

#[tokio::test]
async fn a_stopped_rule_keeps_its_cache_unless_told_to_clean_it() {
    let (receiver, url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let cached_post = |path: &str, clean: bool| {
        action_json(
            "rest",
            json!({"url": format!("{url}{path}"), "timeout": 1000, "enableCache": true, "cleanCacheAtStop": clean}),
        )
    };
    create(&oortd, STREAM, rule("keep", "SELECT n FROM s", vec![cached_post("/keep", false)])).await;
    let clean = rule("clean", "SELECT n FROM s", vec![cached_post("/clean", true)]);
    oortd.rules().await.create_rule(oort_proto::v1::CreateRuleRequest { rule: Some(clean) }).await.unwrap();
    receiver.set_down(true);
    publish(&oortd, "s", numbers(0..3)).await.unwrap();
    cached(&oortd, "keep", 0, 3).await;
    cached(&oortd, "clean", 0, 3).await;
    for id in ["keep", "clean"] {
        oortd.rules().await.stop_rule(StopRuleRequest { id: id.into() }).await.unwrap();
    }
    receiver.set_down(false);
    for id in ["keep", "clean"] {
        oortd.rules().await.start_rule(StartRuleRequest { id: id.into() }).await.unwrap();
    }
    let kept: Vec<i64> = receiver.wait_for("/keep", 3).await.iter().map(|a| a.row["n"].as_i64().unwrap()).collect();
    assert_eq!(kept, vec![0, 1, 2]);
    publish(&oortd, "s", numbers(3..4)).await.unwrap();
    let cleaned: Vec<i64> = receiver.wait_for("/clean", 1).await.iter().map(|a| a.row["n"].as_i64().unwrap()).collect();
    assert_eq!(cleaned, vec![3], "the cache was dropped at the stop");
}

#[tokio::test]
async fn a_bad_cache_property_is_refused_when_the_rule_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    oortd.streams().await.create_stream(oort_proto::v1::CreateStreamRequest { sql: STREAM.into() }).await.unwrap();
    for (props, expected) in [
        (json!({"enableCache": true, "maxDiskCache": "lots"}), "`maxDiskCache` must be a non-negative integer"),
        (json!({"enableCache": true, "resendDestination": "other"}), "`resendDestination` is not supported yet"),
    ] {
        let bad = rule("bad", "SELECT n FROM s", vec![action_json("log", props)]);
        let refused =
            oortd.rules().await.create_rule(oort_proto::v1::CreateRuleRequest { rule: Some(bad) }).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(expected), "{refused:?}");
    }
}
