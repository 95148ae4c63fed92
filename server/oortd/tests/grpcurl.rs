//! The API through real grpcurl, using server reflection only (no .proto files).

mod common;

use std::process::{Command, Output};

use common::{Oortd, grpcurl};

fn call(oortd: &Oortd, data: Option<&str>, method: &str) -> Output {
    let mut command = Command::new(grpcurl());
    command.args(["-plaintext", "-H", &format!("authorization: Bearer {}", common::TOKEN)]);
    if let Some(data) = data {
        command.args(["-d", data]);
    }
    command.arg(&oortd.addr).arg(method);
    command.output().expect("grpcurl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn grpcurl_works_through_reflection_alone() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;

    let list = call(&oortd, None, "list");
    assert!(list.status.success(), "{}", text(&list.stderr));
    let services = text(&list.stdout);
    for service in [
        "oort.v1.StreamService",
        "oort.v1.RuleService",
        "oort.v1.PluginService",
        "oort.v1.ExternalService",
        "oort.v1.FunctionService",
        "oort.v1.ConnectorService",
        "oort.v1.EventService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.lines().any(|l| l.trim() == service), "{service} not listed in:\n{services}");
    }

    let describe = Command::new(grpcurl())
        .args(["-plaintext", "-H", &format!("authorization: Bearer {}", common::TOKEN)])
        .args([&oortd.addr, "describe", "oort.v1.StreamService"])
        .output()
        .unwrap();
    assert!(describe.status.success(), "{}", text(&describe.stderr));
    assert!(
        text(&describe.stdout)
            .contains("rpc CreateStream ( .oort.v1.CreateStreamRequest ) returns ( .oort.v1.CreateStreamResponse );"),
        "{}",
        text(&describe.stdout)
    );

    let create = call(
        &oortd,
        Some(
            r#"{"sql": "CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE=\"demo\", FORMAT=\"json\", TYPE=\"mqtt\")"}"#,
        ),
        "oort.v1.StreamService/CreateStream",
    );
    assert!(create.status.success(), "{}", text(&create.stderr));
    let created: serde_json::Value = serde_json::from_slice(&create.stdout).expect("grpcurl prints JSON");
    assert_eq!(created["stream"]["name"], "demo");
    assert_eq!(created["stream"]["kind"], "STREAM_KIND_STREAM");
    assert_eq!(created["stream"]["fields"][1]["type"], "BIGINT");

    let missing = call(&oortd, Some(r#"{"name": "nope"}"#), "oort.v1.StreamService/GetStream");
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(stderr.contains("Code: NotFound"), "{stderr}");

    let bad = call(
        &oortd,
        Some(r#"{"sql": "CREATE STREAM x (a INT) WITH (DATASOURCE=\"x\")"}"#),
        "oort.v1.StreamService/CreateStream",
    );
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("Code: InvalidArgument") && stderr.contains("line 1"), "{stderr}");

    let health = call(&oortd, None, "grpc.health.v1.Health/Check");
    assert!(text(&health.stdout).contains("SERVING"), "{}", text(&health.stdout));
}
