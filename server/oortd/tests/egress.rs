//! The egress policy against the real server: external services, REST sinks
//! and plugin URLs may not reach loopback, private or metadata addresses
//! unless `egress_allow` names them: not by address, not by a name that
//! resolves to one, not through a redirect.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Oortd, code_of};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::external_service_client::ExternalServiceClient;
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetRuleStatusRequest, InstallPluginRequest, OperatorStatus,
    PluginKind, PublishRequest, RegisterServiceRequest, Rule, TailRuleRequest, Value, install_plugin_request,
};
use tonic::Code;

/// An HTTP server on loopback that counts its requests and answers every one
/// with a secret, or with a redirect to `redirect`.
async fn http_server(redirect: Option<String>) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let hits = Arc::clone(&counted);
        let redirect = redirect.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            match redirect {
                Some(location) => {
                    (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, location)], String::new())
                }
                None => (
                    axum::http::StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "application/json".to_string())],
                    r#"{"secret": "s3cr3t"}"#.to_string(),
                ),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// A server with `egress_allow` from `allow` (none: the default policy).
async fn start(dir: &std::path::Path, allow: Option<&str>) -> Oortd {
    let mut command = Oortd::command();
    command.env_remove("OORT_EGRESS_ALLOW");
    if let Some(allow) = allow {
        command.env("OORT_EGRESS_ALLOW", allow);
    }
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"]).arg(dir);
    Oortd::launch(command, dir).await
}

async fn register(oortd: &Oortd, name: &str, address: &str) -> Result<(), tonic::Status> {
    let description = format!(
        r#"{{"interfaces": {{"i": {{"address": "{address}", "protocol": "rest", "schemaless": true, "functions": [{{"name": "{name}"}}]}}}}}}"#
    );
    let request = RegisterServiceRequest { name: name.into(), description_json: description, ..Default::default() };
    ExternalServiceClient::new(oortd.channel().await).register_service(request).await.map(|_| ())
}

fn rest_action(url: &str) -> Action {
    let text = |s: &str| prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(s.into())) };
    let fields = [("url".to_string(), text(url)), ("method".to_string(), text("post"))].into_iter().collect();
    Action { r#type: "rest".into(), props: Some(prost_types::Struct { fields }) }
}

async fn create_rule(oortd: &Oortd, id: &str, sql: &str, action: Action) -> Result<(), tonic::Status> {
    let rule = Rule { id: id.into(), sql: sql.into(), actions: vec![action], ..Default::default() };
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.map(|_| ())
}

async fn publish_one(oortd: &Oortd) {
    let event = Event {
        fields: [("x".to_string(), Value { kind: Some(Kind::IntValue(1)) })].into_iter().collect(),
        ..Default::default()
    };
    let request = PublishRequest { stream: "s".into(), event: Some(event), ..Default::default() };
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::once(request)).await.unwrap();
}

/// The operator of `rule` whose name starts with `prefix`, once it counted an error.
async fn failed_operator(oortd: &Oortd, rule: &str, prefix: &str) -> OperatorStatus {
    for _ in 0..200 {
        let status =
            oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: rule.into() }).await.unwrap().into_inner();
        if let Some(op) = status.operators.into_iter().find(|o| o.name.starts_with(prefix) && o.exceptions_total > 0) {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no error counted by {prefix}* of {rule}");
}

#[tokio::test]
async fn internal_addresses_are_refused_by_address_and_by_name() {
    let (secret, hits) = http_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path(), None).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();

    // An address in a description or an action is refused when it is registered or created.
    let (code, message) = code_of(register(&oortd, "byaddress", &format!("http://{secret}")).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("a loopback address") && message.contains("egress_allow"), "{message}");
    for url in
        ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", &format!("http://[::1]:{}/", secret.port())]
    {
        let (code, message) = code_of(create_rule(&oortd, "sink", "SELECT x FROM s", rest_action(url)).await);
        assert_eq!(code, Code::InvalidArgument, "{url}: {message}");
        assert!(message.contains("egress_allow"), "{message}");
    }
    let install = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "p".into(),
        source: Some(install_plugin_request::Source::Url(format!("http://{secret}/p.zip"))),
    };
    let (code, message) = code_of(PluginServiceClient::new(oortd.channel().await).install_plugin(install).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("egress_allow"), "{message}");

    // A name that resolves to loopback is refused when it is resolved: the
    // function call and the sink fail, and the service never hears of them.
    let by_name = format!("http://localhost:{}", secret.port());
    register(&oortd, "peek", &by_name).await.expect("a name is checked when it resolves");
    create_rule(
        &oortd,
        "call",
        "SELECT peek('get', '/secret') AS s FROM s",
        Action { r#type: "grpc".into(), props: None },
    )
    .await
    .unwrap();
    let mut tail = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "call".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    create_rule(&oortd, "sink", "SELECT x FROM s", rest_action(&format!("{by_name}/in"))).await.unwrap();
    publish_one(&oortd).await;
    let op = failed_operator(&oortd, "call", "op_project").await;
    assert!(op.last_exception.contains("refused"), "{op:?}");
    let sink = failed_operator(&oortd, "sink", "sink_").await;
    assert!(sink.last_exception.contains("refused"), "{sink:?}");
    assert!(tokio::time::timeout(Duration::from_millis(300), tail.message()).await.is_err(), "no result leaked");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the loopback service");
}

#[tokio::test]
async fn egress_allow_opens_what_it_names_and_each_redirect_is_checked() {
    let (secret, secret_hits) = http_server(None).await;
    let (hop, hop_hits) = http_server(Some(format!("http://{secret}/secret"))).await;
    let (named_hop, _) = http_server(Some(format!("http://localhost:{}/secret", secret.port()))).await;
    let (open, _) = http_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let allow = format!("{hop},{named_hop},{open}");
    let oortd = start(dir.path(), Some(&allow)).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();

    let (code, _) = code_of(register(&oortd, "direct", &format!("http://{secret}")).await);
    assert_eq!(code, Code::InvalidArgument, "only the listed ports");
    register(&oortd, "viahop", &format!("http://{hop}")).await.unwrap();
    register(&oortd, "vianame", &format!("http://{named_hop}")).await.unwrap();
    register(&oortd, "allowed", &format!("http://{open}")).await.unwrap();
    let grpc = || Action { r#type: "grpc".into(), props: None };
    create_rule(&oortd, "hop", "SELECT viahop('get', '/x') AS s FROM s", grpc()).await.unwrap();
    create_rule(&oortd, "name", "SELECT vianame('get', '/x') AS s FROM s", grpc()).await.unwrap();
    create_rule(&oortd, "ok", "SELECT allowed('get', '/x')->secret AS s FROM s", grpc()).await.unwrap();
    let mut ok = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "ok".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    publish_one(&oortd).await;

    let row = tokio::time::timeout(Duration::from_secs(10), ok.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        row.event.unwrap().fields["s"].kind,
        Some(Kind::StringValue("s3cr3t".into())),
        "an allowed address works"
    );
    for rule in ["hop", "name"] {
        let op = failed_operator(&oortd, rule, "op_project").await;
        assert!(op.last_exception.contains("refused"), "{rule}: {op:?}");
    }
    assert!(hop_hits.load(Ordering::SeqCst) >= 1, "the allowed first hop was called");
    assert_eq!(secret_hits.load(Ordering::SeqCst), 0, "neither redirect reached the unlisted service");
}
