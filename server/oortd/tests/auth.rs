//! Authentication and authorization against the real server: tokens and
//! roles, the generated admin token and the modes of the data directory, what
//! another local user can do, TLS and client certificates through grpcurl,
//! and the refusal to listen in plaintext beyond loopback.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Oortd, TOKEN, code_of, grpcurl};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::external_service_client::ExternalServiceClient;
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{
    CreateStreamRequest, Event, InstallPluginRequest, ListStreamsRequest, PluginKind, PublishRequest,
    RegisterServiceRequest, install_plugin_request,
};
use oortd::auth::token;
use tonic::Code;

const EDITOR: &str = "editor-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const PUBLISHER: &str = "publisher-token-0123456789abcdef";

fn create(name: &str, kind: &str) -> CreateStreamRequest {
    CreateStreamRequest { sql: format!(r#"CREATE STREAM {name} () WITH (DATASOURCE="{name}", TYPE="{kind}")"#) }
}

/// `[[tokens]]` entries of oort.toml for `(name, role, token)`.
fn tokens_toml(tokens: &[(&str, &str, &str)]) -> String {
    tokens
        .iter()
        .map(|(name, role, secret)| {
            let hash = token::format_hash(&token::hash(secret.as_bytes()));
            format!("[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nhash = \"{hash}\"\n")
        })
        .collect()
}

async fn start_with_config(dir: &Path, toml: &str) -> Oortd {
    let config = dir.join("oort.toml");
    std::fs::write(&config, toml).unwrap();
    let data_dir = dir.join("data");
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--config"]).arg(&config);
    command.arg("--data-dir").arg(&data_dir);
    Oortd::launch(command, &data_dir).await
}

#[tokio::test]
async fn every_call_but_health_needs_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;

    let mut anonymous = StreamServiceClient::new(oortd.plain_channel().await);
    let (code, message) = code_of(anonymous.list_streams(ListStreamsRequest::default()).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("authorization: Bearer"), "{message}");
    let (code, _) = code_of(anonymous.create_stream(create("s", "memory")).await);
    assert_eq!(code, Code::Unauthenticated);

    let mut wrong = StreamServiceClient::new(oortd.channel_with("not-the-token-at-all").await);
    let (code, message) = code_of(wrong.list_streams(ListStreamsRequest::default()).await);
    assert_eq!((code, message.as_str()), (Code::Unauthenticated, "invalid token"));
    assert!(!message.contains("not-the-token"), "the credential is never echoed");

    // Reflection follows the credentials too.
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(oortd.plain_channel().await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let (code, _) = code_of(reflection.server_reflection_info(tokio_stream::once(request)).await);
    assert_eq!(code, Code::Unauthenticated);

    let mut health = tonic_health::pb::health_client::HealthClient::new(oortd.plain_channel().await);
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health is open");

    oortd.streams().await.create_stream(create("s", "memory")).await.expect("the admin token works");
}

#[tokio::test]
async fn roles_limit_what_a_token_may_do_and_mutations_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let toml = tokens_toml(&[("ci", "editor", EDITOR), ("dash", "viewer", VIEWER), ("gw", "publisher", PUBLISHER)]);
    let oortd = start_with_config(dir.path(), &toml).await;

    // The editor: streams and rules, not plugins nor services.
    let editor = oortd.channel_with(EDITOR).await;
    StreamServiceClient::new(editor.clone()).create_stream(create("events", "grpc")).await.unwrap();
    let install = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "x".into(),
        source: Some(install_plugin_request::Source::Archive(vec![0; 10])),
    };
    let (code, message) = code_of(PluginServiceClient::new(editor.clone()).install_plugin(install).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("ci (role editor)") && message.contains("`extend`"), "{message}");
    let register = RegisterServiceRequest { name: "svc".into(), ..Default::default() };
    let (code, _) = code_of(ExternalServiceClient::new(editor).register_service(register).await);
    assert_eq!(code, Code::PermissionDenied);

    // The viewer reads; it cannot change.
    let mut viewer = StreamServiceClient::new(oortd.channel_with(VIEWER).await);
    let listed = viewer.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.streams.len(), 1);
    let (code, message) = code_of(viewer.create_stream(create("t", "memory")).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("`edit`") && message.contains("oort.v1.StreamService/CreateStream"), "{message}");

    // The publisher publishes, and does nothing else.
    let publisher = oortd.channel_with(PUBLISHER).await;
    let event = Event::default();
    let request = PublishRequest { stream: "events".into(), event: Some(event), ..Default::default() };
    let accepted = EventServiceClient::new(publisher.clone()).publish(tokio_stream::once(request)).await.unwrap();
    assert_eq!(accepted.into_inner().accepted, 1);
    let (code, _) = code_of(StreamServiceClient::new(publisher).list_streams(ListStreamsRequest::default()).await);
    assert_eq!(code, Code::PermissionDenied);

    // No token configured in the file is the admin: OORT_AUTH_TOKEN still is.
    oortd.streams().await.create_stream(create("by_admin", "memory")).await.unwrap();

    assert!(oortd.logged(&["oort::audit", "caller=ci", "role=editor", "StreamService/CreateStream"]));
    assert!(oortd.logged(&["oort::audit", "denied", "caller=dash", "StreamService/CreateStream"]));
    assert!(oortd.logged(&["oort::audit", "caller=OORT_AUTH_TOKEN", "role=admin"]));
    assert!(!oortd.logged(&["oort::audit: call", "ListStreams"]), "reads are not audited");
    assert!(!oortd.logged(&[EDITOR]), "no token is ever logged");
}

/// Runs `program args` as the user `nobody`, feeding `stdin`.
fn as_nobody(program: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new("runuser")
        .args(["-u", "nobody", "--", program])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runuser runs (the tests run as root)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_default_server_generates_a_private_admin_token_that_other_users_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    // The parent is open to all, so that only the data directory's own mode protects it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let mut command = Oortd::command();
    command.env_remove("OORT_AUTH_TOKEN").args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"]);
    command.arg(&data_dir);
    let oortd = Oortd::launch(command, &data_dir).await;

    let token_file = data_dir.join("admin.token");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&data_dir), 0o700);
    for entry in std::fs::read_dir(data_dir.join("catalog")).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    assert!(oortd.logged(&["generated an admin token", &token_file.display().to_string()]));
    let admin = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
    let mut streams = StreamServiceClient::new(oortd.channel_with(&admin).await);
    streams.create_stream(create("s", "memory")).await.expect("the generated token is an admin's");

    // Another local user can neither read the token nor call the API without it.
    let read = as_nobody("cat", &[token_file.to_str().unwrap()], b"");
    assert!(!read.status.success(), "nobody read the admin token");
    // An empty ListStreamsRequest as one gRPC frame: uncompressed, length 0.
    // Under load curl may lose the exchange itself (the server answers before
    // reading the body): a few tries, and every answer must be UNAUTHENTICATED.
    let url = format!("http://{}/oort.v1.StreamService/ListStreams", oortd.addr);
    let args = ["-sS", "-o", "/dev/null", "-D", "-", "--http2-prior-knowledge", "-H", "content-type: application/grpc"];
    let mut answers = Vec::new();
    for _ in 0..5 {
        let curl =
            as_nobody("curl", &[&args[..], &["-H", "te: trailers", "--data-binary", "@-", &url]].concat(), &[0; 5]);
        let headers = String::from_utf8_lossy(&curl.stdout).to_lowercase();
        let status = headers.lines().find_map(|l| l.strip_prefix("grpc-status: ").map(|s| s.trim().to_string()));
        answers.push((status.clone(), curl.status.code(), String::from_utf8_lossy(&curl.stderr).into_owned()));
        if status.is_some() {
            break;
        }
    }
    assert!(answers.iter().all(|(status, ..)| status.as_deref().is_none_or(|s| s == "16")), "{answers:?}");
    assert!(answers.iter().any(|(status, ..)| status.as_deref() == Some("16")), "curl as nobody: {answers:?}");

    // The token survives a restart.
    oortd.terminate().await;
    let mut command = Oortd::command();
    command.env_remove("OORT_AUTH_TOKEN").args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--data-dir"]);
    command.arg(&data_dir);
    let oortd = Oortd::launch(command, &data_dir).await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), admin);
    let listed = StreamServiceClient::new(oortd.channel_with(&admin).await)
        .list_streams(ListStreamsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.into_inner().streams.len(), 1);
    let (code, _) = code_of(oortd.streams().await.list_streams(ListStreamsRequest::default()).await);
    assert_eq!(code, Code::Unauthenticated, "OORT_AUTH_TOKEN is not set on this server");
}

use oort_connectors::testing::certificates;

#[tokio::test]
async fn tls_with_a_token_or_a_client_certificate_through_grpcurl() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path();
    certificates(tls, "reader");
    let path = |name: &str| tls.join(name).display().to_string();
    let toml = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n[[client_certs]]\ncommon_name = \"reader\"\nrole = \"viewer\"\n",
        path("server.pem"),
        path("server.key"),
        path("ca.pem")
    );
    std::fs::write(tls.join("oort.toml"), toml).unwrap();
    let data_dir = tls.join("data");
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--config", &path("oort.toml")]);
    command.arg("--data-dir").arg(&data_dir);
    let ca = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    let oortd = Oortd::launch_tls(command, &data_dir, Some(ca)).await;
    assert!(oortd.logged(&["TLS on"]));

    let grpcurl_call = |args: &[&str], data: &str, method: &str| {
        let output = Command::new(grpcurl())
            .args(["-cacert", &path("ca.pem")])
            .args(args)
            .args(["-d", data, &oortd.addr, method])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let bearer = format!("authorization: Bearer {TOKEN}");
    let sql = r#"{"sql": "CREATE STREAM s () WITH (DATASOURCE=\"s\", TYPE=\"memory\")"}"#;
    let (ok, out) = grpcurl_call(&["-H", &bearer], sql, "oort.v1.StreamService/CreateStream");
    assert!(ok, "TLS and a token: {out}");

    // The client certificate authenticates as `reader`, a viewer, without a token.
    let cert = ["-cert", &path("client.pem"), "-key", &path("client.key")];
    let (ok, out) = grpcurl_call(&cert, "{}", "oort.v1.StreamService/ListStreams");
    assert!(ok && out.contains("\"name\": \"s\""), "{out}");
    let (ok, out) = grpcurl_call(&cert, sql, "oort.v1.StreamService/CreateStream");
    assert!(!ok && out.contains("PermissionDenied") && out.contains("reader (role viewer)"), "{out}");
    // Neither a certificate nor a token.
    let (ok, out) = grpcurl_call(&[], "{}", "oort.v1.StreamService/ListStreams");
    assert!(!ok && out.contains("Unauthenticated"), "{out}");

    // Plaintext is not served on a TLS port.
    let plain = Command::new(grpcurl())
        .args(["-plaintext", "-max-time", "5", "-H", &bearer, "-d", "{}", &oortd.addr])
        .arg("oort.v1.StreamService/ListStreams")
        .output()
        .unwrap();
    assert!(!plain.status.success());

    // The harness's own client went through TLS too.
    let listed = oortd.streams().await.list_streams(ListStreamsRequest::default()).await.unwrap();
    assert_eq!(listed.into_inner().streams.len(), 1);
}

#[test]
fn listening_beyond_loopback_needs_tls_or_an_explicit_choice() {
    let dir = tempfile::tempdir().unwrap();
    let refused =
        Oortd::command().args(["--listen", "0.0.0.0:0", "--data-dir"]).arg(dir.path().join("data")).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("tls_cert") && stderr.contains("allow_insecure_listen"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "refused before touching anything");

    std::fs::write(dir.path().join("off.toml"), "auth = false\nallow_insecure_listen = true\n").unwrap();
    let refused =
        Oortd::command().args(["--listen", "0.0.0.0:0", "--config"]).arg(dir.path().join("off.toml")).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("auth = false is only allowed on a loopback"));
}

#[tokio::test]
async fn an_insecure_listener_is_warned_about_and_still_needs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oort.toml"), "allow_insecure_listen = true\n").unwrap();
    let data_dir = dir.path().join("data");
    let mut command = Oortd::command();
    command.args(["--listen", "0.0.0.0:0", "--http-push-listen", "off", "--config"]);
    command.arg(dir.path().join("oort.toml")).arg("--data-dir").arg(&data_dir);
    let mut oortd = Oortd::launch_tls(command, &data_dir, None).await;
    assert!(oortd.logged(&["allow_insecure_listen", "plaintext"]));
    // Reach it over loopback only.
    oortd.addr = oortd.addr.replace("0.0.0.0", "127.0.0.1");
    let (code, _) = code_of(
        StreamServiceClient::new(oortd.plain_channel().await).list_streams(ListStreamsRequest::default()).await,
    );
    assert_eq!(code, Code::Unauthenticated);
}

#[tokio::test]
async fn metrics_beyond_loopback_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("metrics_listen = \"0.0.0.0:0\"\n{}", tokens_toml(&[("gw", "publisher", PUBLISHER)]));
    let oortd = start_with_config(dir.path(), &toml).await;
    let port = oortd.metrics_addr.as_deref().unwrap().rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = common::http();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let forbidden = client.get(&url).bearer_auth(PUBLISHER).send().await.unwrap();
    assert_eq!(forbidden.status(), 403, "a publisher has no `read`");
    let scraped = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("oort_rules"));
}
