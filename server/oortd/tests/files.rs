//! Paths that clients name stay inside the file roots: file streams and
//! tables, file sinks and plugin archives, refused when created (with the
//! roots named), never read or written outside.

mod common;

use std::path::Path;

use common::{Oortd, code_of};
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, GetRuleRequest, InstallPluginRequest, PluginKind, Rule,
    install_plugin_request,
};
use tonic::Code;

fn table(path: &str) -> CreateStreamRequest {
    CreateStreamRequest {
        sql: format!(r#"CREATE TABLE pw () WITH (TYPE="file", DATASOURCE="{path}", FORMAT="csv", DELIMITER=":")"#),
    }
}

fn file_rule(id: &str, path: &str) -> CreateRuleRequest {
    let props = prost_types::Struct {
        fields: [
            ("path".to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(path.into())) }),
            (
                "dataTemplate".to_string(),
                prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("ssh-ed25519 AAAA x".into())) },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let action = Action { r#type: "file".into(), props: Some(props) };
    CreateRuleRequest {
        rule: Some(Rule { id: id.into(), sql: "SELECT * FROM s".into(), actions: vec![action], ..Default::default() }),
    }
}

#[tokio::test]
async fn file_streams_outside_the_roots_are_refused_when_created() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    let mut streams = oortd.streams().await;
    let files = dir.path().join("data/files").canonicalize().unwrap();

    for path in ["/etc/passwd", "../../../../../../etc/passwd", "../catalog/db"] {
        let (code, message) = code_of(streams.create_stream(table(path)).await);
        assert_eq!(code, Code::InvalidArgument, "{path}: {message}");
        assert!(message.contains("outside the allowed directories"), "{message}");
        assert!(message.contains(&files.display().to_string()), "the roots are named: {message}");
    }
    // A symlink inside the root that points out is followed, and refused.
    std::os::unix::fs::symlink("/etc/passwd", files.join("passwd")).unwrap();
    let (code, message) = code_of(streams.create_stream(table("passwd")).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    // Not a regular file.
    let fifo = files.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, message) = code_of(streams.create_stream(table("fifo")).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("not a regular file"), "{message}");

    // Inside the root, relative or absolute, is fine (and may not exist yet).
    streams.create_stream(table("users.csv")).await.unwrap();
    let absolute = files.join("later/other.csv").display().to_string();
    let mut other = table(&absolute);
    other.sql = other.sql.replace("TABLE pw", "TABLE pw2");
    streams.create_stream(other).await.unwrap();
}

#[tokio::test]
async fn file_sinks_outside_the_roots_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut rules = oortd.rules().await;
    let keys = dir.path().join(".ssh/authorized_keys").display().to_string();
    for (id, path) in [("keys", keys.as_str()), ("up", "../../../../tmp/x"), ("catalog", "../catalog/db")] {
        let (code, message) = code_of(rules.create_rule(file_rule(id, path)).await);
        assert_eq!(code, Code::InvalidArgument, "{path}: {message}");
        assert!(message.contains("outside the allowed directories"), "{message}");
        let (code, _) = code_of(rules.get_rule(GetRuleRequest { id: id.into() }).await);
        assert_eq!(code, Code::NotFound, "a refused rule is not stored");
    }
    assert!(!Path::new(&keys).exists());
    rules.create_rule(file_rule("inside", "out/results.jsonl")).await.expect("a path inside the root");
}

#[tokio::test]
async fn plugin_archives_by_path_must_be_regular_files_in_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    let mut plugins = PluginServiceClient::new(oortd.channel().await);
    let install = |file: &str| InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "x".into(),
        source: Some(install_plugin_request::Source::File(file.into())),
    };
    for file in ["/dev/zero", "/etc/passwd", "../catalog/db"] {
        let (code, message) = code_of(plugins.install_plugin(install(file)).await);
        assert_eq!(code, Code::InvalidArgument, "{file}: {message}");
        assert!(message.contains("outside the allowed directories"), "{message}");
        assert!(message.contains("uploads"), "{message}");
    }
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("data/uploads/zero.zip")).unwrap();
    let (code, message) = code_of(plugins.install_plugin(install("zero.zip")).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    std::fs::create_dir(dir.path().join("data/uploads/dir.zip")).unwrap();
    let (_, message) = code_of(plugins.install_plugin(install("dir.zip")).await);
    assert!(message.contains("not a regular file"), "{message}");
    let (_, message) = code_of(plugins.install_plugin(install("missing.zip")).await);
    assert!(message.contains("does not exist"), "{message}");
}

#[tokio::test]
async fn file_roots_add_directories_but_never_the_servers_own() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("devices.csv"), "id:name\n1:pump\n").unwrap();
    let config = dir.path().join("oort.toml");
    std::fs::write(&config, format!("file_roots = [\"{}\"]\n", shared.display())).unwrap();
    let data_dir = dir.path().join("data");
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--config"]).arg(&config);
    command.arg("--data-dir").arg(&data_dir);
    let oortd = Oortd::launch(command, &data_dir).await;
    let path = shared.join("devices.csv").display().to_string();
    oortd.streams().await.create_stream(table(&path)).await.expect("a configured root");
    drop(oortd);

    // A root that holds the data directory would expose the catalog.
    let output = Oortd::command()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .arg("--file-root")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("overlap") && stderr.contains("catalog"), "{stderr}");
}

#[tokio::test]
async fn a_file_streams_options_are_written_in_with_and_a_bad_one_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(&dir.path().join("data")).await;
    let files = dir.path().join("data/files");
    let lines = [r#"{"n":-1}"#, r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#];
    std::fs::write(files.join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let mut streams = oortd.streams().await;

    // The connector's own options, refused at the key with what it takes.
    let unknown = "CREATE STREAM bad () WITH (TYPE=\"file\", DATASOURCE=\"in.jsonl\",\n  COLOR=\"red\")";
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: unknown.into() }).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("unknown option `COLOR` of a file stream"), "{message}");
    assert!(message.contains("IGNORE_START_LINES"), "the connector's options are listed: {message}");
    assert!(message.contains("line 2, column 3"), "{message}");
    let bad_value = r#"CREATE STREAM bad () WITH (TYPE="file", DATASOURCE="in.jsonl", INTERVAL="soon")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: bad_value.into() }).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("INTERVAL must be a non-negative integer of milliseconds"), "{message}");
    assert!(message.contains("line 1, column 64"), "{message}");

    let sql = r#"CREATE STREAM src () WITH (TYPE="file", DATASOURCE="in.jsonl", IGNORE_START_LINES="2", IGNORE_END_LINES="1")"#;
    streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let out = common::action("file", &[("path", "out.jsonl")]);
    let request = CreateRuleRequest { rule: Some(common::rule("r", "SELECT n FROM src", vec![out])) };
    oortd.rules().await.create_rule(request).await.unwrap();
    let written = files.join("out.jsonl");
    let expected = [r#"[{"n":1}]"#, r#"[{"n":2}]"#];
    let started = std::time::Instant::now();
    let got = loop {
        let got: Vec<String> =
            std::fs::read_to_string(&written).unwrap_or_default().lines().map(str::to_owned).collect();
        if got.len() >= expected.len() || started.elapsed() > std::time::Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(got, expected, "the first two lines and the last one were skipped");
}
