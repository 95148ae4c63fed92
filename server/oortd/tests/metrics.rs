//! The Prometheus endpoint of the real server: off by default; when on, rules
//! by state and the per-operator counters of GetRuleStatus.

mod common;

use std::time::Duration;

use common::Oortd;
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, DeliveryGuarantee, Event, GetRuleStatusRequest, PublishRequest,
    Rule, RuleOptions, Value,
};

fn rule(id: &str, sql: &str, triggered: bool) -> Rule {
    Rule {
        id: id.into(),
        sql: sql.into(),
        actions: vec![Action { r#type: "log".into(), props: None }],
        triggered: Some(triggered),
        ..Default::default()
    }
}

async fn scrape(addr: &str) -> String {
    let response = common::http().get(format!("http://{addr}/metrics")).send().await.expect("the endpoint answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample `name{labels}` in a scrape, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(oortd.metrics_addr, None, "no metrics endpoint unless configured");
}

#[tokio::test]
async fn rules_by_state_and_operator_counters_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let oortd = Oortd::launch(command, dir.path()).await;
    let metrics = oortd.metrics_addr.clone().expect("the server logs the metrics address");

    let ddl = r#"CREATE STREAM demo (t BIGINT) WITH (TYPE="grpc", DATASOURCE="demo")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: ddl.into() }).await.unwrap();
    let mut rules = oortd.rules().await;
    let mut sure = rule("sure", "SELECT t FROM demo", true);
    sure.options = Some(RuleOptions { qos: 2, checkpoint_interval_ms: Some(50), ..Default::default() });
    for r in [rule("hot", "SELECT t FROM demo WHERE t > 10", true), rule("idle", "SELECT t FROM demo", false), sure] {
        rules.create_rule(CreateRuleRequest { rule: Some(r) }).await.unwrap();
    }
    // A rule that asks for exactly once and gets at least once says so.
    let status = rules.get_rule_status(GetRuleStatusRequest { id: "sure".into() }).await.unwrap().into_inner();
    let delivery = status.delivery.expect("the status has the delivery");
    assert_eq!(
        (delivery.requested(), delivery.provided()),
        (DeliveryGuarantee::ExactlyOnce, DeliveryGuarantee::AtLeastOnce)
    );
    assert!(delivery.reason.contains("a log sink cannot take back"), "{}", delivery.reason);
    let status = rules.get_rule_status(GetRuleStatusRequest { id: "hot".into() }).await.unwrap().into_inner();
    let delivery = status.delivery.expect("the status has the delivery");
    assert_eq!((delivery.provided(), delivery.reason.as_str()), (DeliveryGuarantee::AtMostOnce, ""));
    let events = [5, 20, 30].map(|t| Event {
        fields: [("t".to_owned(), Value { kind: Some(Kind::IntValue(t)) })].into_iter().collect(),
        ..Default::default()
    });
    let request = PublishRequest { stream: "demo".into(), events: events.to_vec(), ..Default::default() };
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::iter([request])).await.unwrap();

    let filter_out = r#"oort_operator_records_out_total{rule="hot",operator="op_filter_0"}"#;
    let checkpoint = r#"oort_rule_checkpoint_last_time_ms{rule="sure"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&metrics).await;
        if sample(&text, filter_out) == Some(2.0) && sample(&text, checkpoint).is_some() {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no count of 2 from the filter, or no checkpoint:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&text, r#"oort_rules{state="running"}"#), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rule_delivery_shortfall{rule="sure"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rule_delivery_shortfall{rule="hot"}"#), Some(0.0), "{text}");
    assert!(sample(&text, r#"oort_rule_checkpoint_last_bytes{rule="sure"}"#).is_some_and(|b| b > 0.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rule_checkpoint_failures_total{rule="sure"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rule_checkpoint_last_time_ms{rule="hot"}"#), None, "qos 0: no checkpoints");
    assert_eq!(sample(&text, r#"oort_rules{state="stopped"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rules{state="failed"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"oort_operator_records_in_total{rule="hot",operator="op_filter_0"}"#), Some(3.0));
    assert_eq!(sample(&text, r#"oort_operator_exceptions_total{rule="hot",operator="op_decoder_0"}"#), Some(0.0));
    let dropped = r#"oort_operator_records_dropped_total{rule="hot",operator="source_demo_0"}"#;
    assert_eq!(sample(&text, dropped), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"oort_rule_restarts_total{rule="hot"}"#), Some(0.0));
    assert!(!text.contains(r#"rule="idle""#), "a stopped rule has no operators:\n{text}");
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
}
