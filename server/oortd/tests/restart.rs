//! The catalog survives a graceful restart and a SIGKILL.

mod common;

use common::Oortd;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, GetRuleRequest, ListRulesRequest, ListStreamsRequest, Rule,
};

async fn populate(oortd: &Oortd, prefix: &str, count: usize) {
    let mut streams = oortd.streams().await;
    let mut rules = oortd.rules().await;
    for i in 0..count {
        let name = format!("{prefix}{i}");
        streams
            .create_stream(CreateStreamRequest {
                sql: format!(r#"CREATE STREAM {name} (v BIGINT) WITH (DATASOURCE="{name}", TYPE="memory")"#),
            })
            .await
            .unwrap();
        let rule = Rule {
            id: format!("rule_{name}"),
            sql: format!("SELECT v FROM {name} WHERE v > {i}"),
            actions: vec![Action { r#type: "log".into(), props: None }],
            ..Default::default()
        };
        rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    }
}

async fn counts(oortd: &Oortd) -> (usize, usize) {
    let streams = oortd.streams().await.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner().streams;
    let rules = oortd.rules().await.list_rules(ListRulesRequest::default()).await.unwrap().into_inner().rules;
    (streams.len(), rules.len())
}

#[tokio::test]
async fn catalog_survives_sigterm_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();

    let oortd = Oortd::start(dir.path()).await;
    populate(&oortd, "a", 5).await;
    let before = oortd.rules().await.get_rule(GetRuleRequest { id: "rule_a3".into() }).await.unwrap().into_inner();
    oortd.terminate().await;

    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(counts(&oortd).await, (5, 5));
    let after = oortd.rules().await.get_rule(GetRuleRequest { id: "rule_a3".into() }).await.unwrap().into_inner();
    assert_eq!(before, after, "a rule reads back identical after a restart");

    // Whatever was acknowledged before a SIGKILL is there after it.
    populate(&oortd, "b", 5).await;
    oortd.kill9();
    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(counts(&oortd).await, (10, 10));
}
