//! Keyed state through the real server: values set with `StateService`, read
//! by a rule's `get_keyed_state`, kept across a restart, bounded per call.

mod common;

use std::time::Duration;

use common::{Oortd, action, code_of, int, rule, string};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::state_service_client::StateServiceClient;
use oort_proto::v1::{
    CreateRuleRequest, CreateStreamRequest, DeleteKeyedStateRequest, Event, GetKeyedStateRequest, KeyedValue,
    ListKeyedStateRequest, PublishRequest, PutKeyedStateRequest, TailRuleRequest, Value,
};
use tonic::Code;

fn entry(key: &str, value: Value) -> KeyedValue {
    KeyedValue { key: key.into(), value: Some(value) }
}

async fn state(oortd: &Oortd) -> StateServiceClient<common::AuthChannel> {
    StateServiceClient::new(oortd.channel().await)
}

#[tokio::test]
async fn a_rule_reads_keyed_state_set_through_the_api_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut client = state(&oortd).await;
    let entries = vec![entry("limit/a", string("30")), entry("limit/b", int(50)), entry("site", string("paris"))];
    let put = client.put_keyed_state(PutKeyedStateRequest { entries }).await.unwrap().into_inner();
    assert_eq!(put.created, 3);

    oortd
        .streams()
        .await
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM s (dev STRING, t BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#.into(),
        })
        .await
        .unwrap();
    let sql = r#"SELECT dev, get_keyed_state(concat("limit/", dev), "bigint", 0) AS lim,
                 t > get_keyed_state(concat("limit/", dev), "bigint", 0) AS over FROM s"#;
    let mut rules = oortd.rules().await;
    rules.create_rule(CreateRuleRequest { rule: Some(rule("r", sql, vec![action("log", &[])])) }).await.unwrap();
    let mut tail =
        rules.tail_rule(TailRuleRequest { id: "r".into(), ..Default::default() }).await.unwrap().into_inner();
    let event = |dev: &str, t: i64| Event {
        fields: [("dev".to_owned(), string(dev)), ("t".to_owned(), int(t))].into(),
        ..Default::default()
    };
    let requests = ["a", "b", "c"].map(|dev| PublishRequest {
        stream: "s".into(),
        event: Some(event(dev, 40)),
        ..Default::default()
    });
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::iter(requests)).await.unwrap();
    let mut rows = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(10), tail.message()).await.expect("a result");
        let fields = next.unwrap().unwrap().event.unwrap().fields;
        rows.push((fields["dev"].clone(), fields["lim"].clone(), fields["over"].clone()));
    }
    let bool_value = |b| Value { kind: Some(oort_proto::v1::value::Kind::BoolValue(b)) };
    assert_eq!(
        rows,
        [
            (string("a"), int(30), bool_value(true)),
            (string("b"), int(50), bool_value(false)),
            (string("c"), int(0), bool_value(true)), // no key: the default
        ]
    );

    // A bad type is refused when the rule is created.
    let bad = rule("bad", r#"SELECT get_keyed_state("site", "text", "") AS x FROM s"#, vec![action("log", &[])]);
    let (code, message) = code_of(rules.create_rule(CreateRuleRequest { rule: Some(bad) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("bigint, float, string, boolean, datetime"), "{message}");

    oortd.terminate().await;
    let oortd = Oortd::start(dir.path()).await;
    let mut client = state(&oortd).await;
    let got = client.get_keyed_state(GetKeyedStateRequest { key: "limit/b".into() }).await.unwrap().into_inner();
    assert_eq!(got.value, Some(int(50)));
    let listed = client
        .list_keyed_state(ListKeyedStateRequest { prefix: "limit/".into(), page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["limit/a"]);
    let next = client
        .list_keyed_state(ListKeyedStateRequest {
            prefix: "limit/".into(),
            page_size: 1,
            page_token: listed.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["limit/b"]);
    assert!(next.next_page_token.is_empty(), "the last page");
    let deleted = client
        .delete_keyed_state(DeleteKeyedStateRequest { keys: vec!["site".into(), "none".into()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1);
    let (code, _) = code_of(client.get_keyed_state(GetKeyedStateRequest { key: "site".into() }).await);
    assert_eq!(code, Code::NotFound);
    oortd.terminate().await;
}

#[tokio::test]
async fn oversized_keys_values_and_calls_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut client = state(&oortd).await;
    let refused = |entries: Vec<KeyedValue>| {
        let mut client = client.clone();
        async move { code_of(client.put_keyed_state(PutKeyedStateRequest { entries }).await) }
    };
    let (code, message) = refused(vec![entry("ok", int(1)), entry(&"k".repeat(1025), int(1))]).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    let (code, message) = refused(vec![entry("big", string(&"x".repeat(70_000)))]).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("at most 65536"), "{message}");
    let (code, _) = refused((0..1001).map(|i| entry(&format!("k{i}"), int(i))).collect()).await;
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = refused(vec![KeyedValue { key: "none".into(), value: None }]).await;
    assert_eq!(code, Code::InvalidArgument);
    // Nothing of the refused calls was written.
    let listed = client.list_keyed_state(ListKeyedStateRequest::default()).await.unwrap().into_inner();
    assert!(listed.entries.is_empty(), "{:?}", listed.entries);
    oortd.terminate().await;
}
