//! Secrets are write-only: action properties and service headers that carry
//! secrets come back redacted from Get and List, and an update that sends the
//! placeholder back keeps the stored value, which the server keeps using.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Oortd;
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::external_service_client::ExternalServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetRuleRequest, GetServiceRequest, ListRulesRequest,
    ListServicesRequest, PublishRequest, RegisterServiceRequest, Rule, TailRuleRequest, UpdateRuleRequest,
    UpdateServiceRequest, Value,
};
use prost_types::value::Kind as JsonKind;

/// An HTTP server on loopback that keeps the `authorization` header of each request.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let kept = Arc::clone(&kept);
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            kept.lock().unwrap().push(auth);
            ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"ok": 1}"#)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn text(s: &str) -> prost_types::Value {
    prost_types::Value { kind: Some(JsonKind::StringValue(s.into())) }
}

/// The `Authorization` header of the first action's `headers`.
fn authorization(rule: &Rule) -> String {
    let props = rule.actions[0].props.as_ref().unwrap();
    let Some(JsonKind::StructValue(headers)) = &props.fields["headers"].kind else { panic!("no headers: {props:?}") };
    match &headers.fields["Authorization"].kind {
        Some(JsonKind::StringValue(value)) => value.clone(),
        other => panic!("{other:?}"),
    }
}

async fn publish(oortd: &Oortd) {
    let event =
        Event { fields: [("x".to_string(), Value { kind: Some(Kind::IntValue(1)) })].into(), ..Default::default() };
    let request = PublishRequest { stream: "s".into(), event: Some(event), ..Default::default() };
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::once(request)).await.unwrap();
}

async fn wait_for(seen: &Mutex<Vec<String>>, count: usize) -> Vec<String> {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= count {
            return seen.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} requests expected, got {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn sink_secrets_are_redacted_and_kept_through_an_update() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let headers = prost_types::Struct { fields: [("Authorization".to_string(), text("Bearer s3cr3t"))].into() };
    let props = prost_types::Struct {
        fields: [
            ("url".to_string(), text(&format!("http://{addr}/first"))),
            ("headers".to_string(), prost_types::Value { kind: Some(JsonKind::StructValue(headers)) }),
        ]
        .into(),
    };
    let rule = Rule {
        id: "r".into(),
        sql: "SELECT x FROM s".into(),
        actions: vec![Action { r#type: "rest".into(), props: Some(props) }],
        ..Default::default()
    };
    let mut rules = oortd.rules().await;
    let created = rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(authorization(&created), "***", "not even echoed back");
    let read = rules.get_rule(GetRuleRequest { id: "r".into() }).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(authorization(&read), "***");
    let listed = rules.list_rules(ListRulesRequest::default()).await.unwrap().into_inner();
    assert_eq!(authorization(listed.rules[0].rule.as_ref().unwrap()), "***");
    publish(&oortd).await;
    assert_eq!(wait_for(&seen, 1).await, ["Bearer s3cr3t"], "the sink uses the stored secret");

    // Read, change the URL, write back with the placeholder: the secret stays.
    let mut edited = read;
    let props = edited.actions[0].props.as_mut().unwrap();
    props.fields.insert("url".into(), text(&format!("http://{addr}/second")));
    let updated = rules.update_rule(UpdateRuleRequest { rule: Some(edited) }).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(authorization(&updated), "***");
    publish(&oortd).await;
    assert_eq!(wait_for(&seen, 2).await[1], "Bearer s3cr3t", "the update kept the stored secret");
}

#[tokio::test]
async fn service_headers_are_redacted_and_kept_through_an_update() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let description = format!(
        r#"{{"interfaces": {{"i": {{"address": "http://{addr}", "protocol": "rest", "schemaless": true,
            "options": {{"headers": {{"Authorization": "Bearer svc-key", "Accept": "application/json"}}}},
            "functions": [{{"name": "callme"}}]}}}}}}"#
    );
    let mut services = ExternalServiceClient::new(oortd.channel().await);
    let register = RegisterServiceRequest { name: "svc".into(), description_json: description, ..Default::default() };
    let registered = services.register_service(register).await.unwrap().into_inner().service.unwrap();
    let headers = |service: &oort_proto::v1::RegisteredService| {
        service.description.as_ref().unwrap().interfaces["i"].options.as_ref().unwrap().headers.clone()
    };
    assert_eq!(headers(&registered)["Authorization"], "***");
    assert_eq!(headers(&registered)["Accept"], "application/json", "other headers are shown");
    let read = services.get_service(GetServiceRequest { name: "svc".into() }).await.unwrap().into_inner();
    let read = read.service.unwrap();
    assert_eq!(headers(&read)["Authorization"], "***");
    let listed = services.list_services(ListServicesRequest::default()).await.unwrap().into_inner();
    assert_eq!(headers(&listed.services[0])["Authorization"], "***");

    // Written back as read (typed form, redacted): the stored header is kept and used.
    let update = UpdateServiceRequest { name: "svc".into(), description: read.description, ..Default::default() };
    services.update_service(update).await.unwrap();
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let rule = Rule {
        id: "c".into(),
        sql: "SELECT callme('get', '/x')->ok AS ok FROM s".into(),
        actions: vec![Action { r#type: "grpc".into(), props: None }],
        ..Default::default()
    };
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    let mut tail = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "c".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    publish(&oortd).await;
    tokio::time::timeout(Duration::from_secs(10), tail.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(wait_for(&seen, 1).await, ["Bearer svc-key"]);
}
