//! Native plugins end to end: the example plugins of `plugins/examples/` are
//! built and packaged by `scripts/package-plugins.sh`, installed through the
//! gRPC API into the real `oortd`, used by rules (functions, a source, a sink),
//! hot-reloaded while a rule runs, deleted, and every kind of bad input is
//! refused while the other rules keep running.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::AuthChannel;
use common::{Oortd, code_of};
use common::{action, float, int, rule};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::function_service_client::FunctionServiceClient;
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    CreateRuleRequest, CreateStreamRequest, DeletePluginRequest, Event, FunctionOrigin, GetPluginRequest,
    GetRuleStatusRequest, InstallPluginRequest, ListFunctionsRequest, ListPluginsRequest, Plugin, PluginKind,
    PublishRequest, Rule, RuleState, SymbolKind, TailRuleRequest, TailRuleResponse, UpdatePluginRequest, Value,
    install_plugin_request, update_plugin_request,
};
use tonic::{Code, Streaming};

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Where the plugins are built: a target directory of their own, because the
/// `cargo test` running this holds the lock of the default one.
fn target_dir() -> PathBuf {
    root().join("target/plugin-tests")
}

/// Builds and packages the example plugins (once per test binary) with the
/// documented script, and builds the test fixtures; returns the zips' folder.
fn packaged() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let run = |command: &mut Command| {
            let status = command.current_dir(root()).env("CARGO_TARGET_DIR", target_dir()).status().unwrap();
            assert!(status.success(), "{command:?} failed");
        };
        run(&mut Command::new(root().join("scripts/package-plugins.sh")));
        run(Command::new(env!("CARGO")).args([
            "build",
            "--locked",
            "-p",
            "oort-test-abi2",
            "-p",
            "oort-test-nosymbol",
            "-p",
            "oort-test-abi-minor",
        ]));
        target_dir().join("plugins")
    })
}

fn zip_path(name: &str) -> PathBuf {
    packaged().join(format!("{name}.zip"))
}

fn library(file: &str) -> Vec<u8> {
    packaged();
    std::fs::read(target_dir().join("debug").join(file)).unwrap()
}

/// A zip of `(name, content)` entries.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, content) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

const NEWER_MANIFEST: &str = r#"{"name": "newer", "version": "0.1.0", "functions": [{"name": "newer_plus"}, {"name": "newer_blob"}, {"name": "newer_sleep"}]}"#;

const MATHX_MANIFEST: &str = include_str!("../../../plugins/examples/mathx/manifest.json");

async fn plugins(oortd: &Oortd) -> PluginServiceClient<AuthChannel> {
    PluginServiceClient::new(oortd.channel().await)
}

fn install_request(name: &str, source: install_plugin_request::Source) -> InstallPluginRequest {
    InstallPluginRequest { kind: PluginKind::Native as i32, name: name.into(), source: Some(source) }
}

async fn install(oortd: &Oortd, name: &str) -> Plugin {
    let file = install_plugin_request::Source::File(oortd.upload(&zip_path(name)));
    plugins(oortd).await.install_plugin(install_request(name, file)).await.unwrap().into_inner().plugin.unwrap()
}

async fn install_bytes(oortd: &Oortd, name: &str, archive: Vec<u8>) -> Result<Plugin, tonic::Status> {
    let request = install_request(name, install_plugin_request::Source::Archive(archive));
    Ok(plugins(oortd).await.install_plugin(request).await?.into_inner().plugin.unwrap())
}

async fn get_plugin(oortd: &Oortd, name: &str) -> Result<Plugin, tonic::Status> {
    Ok(plugins(oortd).await.get_plugin(GetPluginRequest { name: name.into() }).await?.into_inner().plugin.unwrap())
}

fn event(fields: &[(&str, Value)]) -> Event {
    Event { fields: fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), ..Default::default() }
}

async fn create_stream(oortd: &Oortd, sql: &str) {
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
}

async fn create_rule(oortd: &Oortd, rule: Rule) -> Result<(), tonic::Status> {
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.map(|_| ())
}

async fn tail(oortd: &Oortd, id: &str) -> Streaming<TailRuleResponse> {
    oortd.rules().await.tail_rule(TailRuleRequest { id: id.into(), ..Default::default() }).await.unwrap().into_inner()
}

async fn publish_to(channel: AuthChannel, stream: &str, events: Vec<Event>) -> u64 {
    let requests: Vec<PublishRequest> = events
        .into_iter()
        .map(|e| PublishRequest { stream: stream.into(), event: Some(e), ..Default::default() })
        .collect();
    EventServiceClient::new(channel).publish(tokio_stream::iter(requests)).await.unwrap().into_inner().accepted
}

async fn publish(oortd: &Oortd, stream: &str, events: Vec<Event>) -> u64 {
    publish_to(oortd.channel().await, stream, events).await
}

/// The next result row, or a panic after 10 s.
async fn next_row(results: &mut Streaming<TailRuleResponse>) -> HashMap<String, Value> {
    let next = tokio::time::timeout(Duration::from_secs(10), results.message()).await.expect("a result within 10 s");
    next.unwrap().expect("the tail stream is open").event.unwrap().fields
}

async fn native_functions(oortd: &Oortd) -> Vec<(String, bool, String)> {
    let request = ListFunctionsRequest { origin: FunctionOrigin::Native as i32 };
    let functions = FunctionServiceClient::new(oortd.channel().await).list_functions(request).await.unwrap();
    functions.into_inner().functions.into_iter().map(|f| (f.name, f.aggregate, f.owner)).collect()
}

async fn rule_state(oortd: &Oortd, id: &str) -> i32 {
    oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.unwrap().into_inner().state
}

#[tokio::test]
async fn a_function_plugin_is_installed_used_by_rules_and_loaded_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let installed = install(&oortd, "mathx").await;
    assert_eq!(installed.kind, PluginKind::Native as i32);
    assert_eq!((installed.version.as_str(), installed.abi_version.as_str()), ("1.0.0", "1.0"));
    let symbols: Vec<(&str, i32, bool)> =
        installed.symbols.iter().map(|s| (s.name.as_str(), s.kind, s.aggregate)).collect();
    let function = SymbolKind::Function as i32;
    assert_eq!(
        symbols,
        [
            ("mx_abs", function, false),
            ("mx_clamp", function, false),
            ("mx_div", function, false),
            ("mx_geomean", function, true),
            ("mx_instance", function, false)
        ]
    );
    let functions = native_functions(&oortd).await;
    assert!(functions.contains(&("mx_geomean".into(), true, "mathx".into())), "{functions:?}");
    assert_eq!(functions.len(), 5);

    create_stream(&oortd, r#"CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    let sql = "SELECT mx_abs(t) AS a, mx_clamp(t, 0, 10) AS c FROM s WHERE mx_abs(t) > 1";
    create_rule(&oortd, rule("scalar", sql, vec![action("grpc", &[])])).await.unwrap();
    create_rule(
        &oortd,
        rule("agg", "SELECT mx_geomean(t) AS g FROM s GROUP BY COUNTWINDOW(2)", vec![action("grpc", &[])]),
    )
    .await
    .unwrap();
    // A literal the plugin's validate refuses, at creation.
    let (code, message) =
        code_of(create_rule(&oortd, rule("bad", "SELECT mx_clamp(t, 5, 1) FROM s", vec![action("log", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("lower bound 5 is above the upper bound 1"), "{message}");

    let mut scalar = tail(&oortd, "scalar").await;
    let mut agg = tail(&oortd, "agg").await;
    publish(&oortd, "s", vec![event(&[("t", float(-12.5))]), event(&[("t", float(0.5))])]).await;
    let row = next_row(&mut scalar).await;
    assert_eq!((row["a"].clone(), row["c"].clone()), (float(12.5), float(0.0)));
    publish(&oortd, "s", vec![event(&[("t", float(2.0))]), event(&[("t", float(8.0))])]).await;
    let row = next_row(&mut scalar).await;
    assert_eq!((row["a"].clone(), row["c"].clone()), (float(2.0), float(2.0)), "0.5 is filtered out by mx_abs");
    let _ = next_row(&mut agg).await; // (-12.5, 0.5): the logarithm of a negative number is NaN.
    assert_eq!(next_row(&mut agg).await["g"], float(4.0), "geometric mean of 2 and 8");

    let described = get_plugin(&oortd, "mathx").await.unwrap();
    assert_eq!(described.used_by_rules, ["agg", "scalar"]);
    let listed = plugins(&oortd).await.list_plugins(ListPluginsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["mathx"]);
    let portable = ListPluginsRequest { kind: PluginKind::Portable as i32 };
    assert!(plugins(&oortd).await.list_plugins(portable).await.unwrap().into_inner().plugins.is_empty());
    let (code, _) = code_of(install_bytes(&oortd, "mathx", std::fs::read(zip_path("mathx")).unwrap()).await);
    assert_eq!(code, Code::AlreadyExists);

    // The archive was copied into the data directory: the original can go.
    oortd.terminate().await;
    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(get_plugin(&oortd, "mathx").await.unwrap().used_by_rules, ["agg", "scalar"], "rules restored");
    let mut scalar = tail(&oortd, "scalar").await;
    publish(&oortd, "s", vec![event(&[("t", float(-3.0))])]).await;
    assert_eq!(next_row(&mut scalar).await["a"], float(3.0));
}

#[tokio::test]
async fn a_plugin_that_no_longer_loads_at_start_up_leaves_the_server_running_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    install(&oortd, "mathx").await;
    create_stream(&oortd, r#"CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("uses", "SELECT mx_abs(t) AS a FROM s", vec![action("log", &[])])).await.unwrap();
    create_rule(&oortd, rule("plain", "SELECT abs(t) AS a FROM s", vec![action("grpc", &[])])).await.unwrap();
    oortd.terminate().await;

    // The installed library is damaged while the server is down.
    let folder = std::fs::read_dir(dir.path().join("plugins/mathx")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(folder.join("libmathx.so"), b"not a library any more").unwrap();
    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(code_of(get_plugin(&oortd, "mathx").await).0, Code::NotFound);
    assert_eq!(rule_state(&oortd, "uses").await, RuleState::Stopped as i32, "its function is missing");
    let mut plain = tail(&oortd, "plain").await;
    publish(&oortd, "s", vec![event(&[("t", float(-2.0))])]).await;
    assert_eq!(next_row(&mut plain).await["a"], float(2.0), "the other rules run");

    let deleted = DeletePluginRequest { name: "mathx".into(), force: false };
    plugins(&oortd).await.delete_plugin(deleted.clone()).await.unwrap();
    assert!(!folder.exists(), "its files are removed");
    assert_eq!(code_of(plugins(&oortd).await.delete_plugin(deleted).await).0, Code::NotFound);
    install(&oortd, "mathx").await;
}

#[tokio::test]
async fn update_switches_a_running_rule_to_the_new_library_without_losing_events() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    install(&oortd, "mathx").await;
    create_stream(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("live", "SELECT n, mx_instance() AS i, mx_abs(n) AS a FROM s", vec![action("grpc", &[])]))
        .await
        .unwrap();
    let mut results = tail(&oortd, "live").await;

    // A reader that keeps reading, and a publisher that keeps publishing until
    // told to stop, while the plugin is replaced.
    let (rows_tx, mut rows) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = results.message().await {
            if rows_tx.send(message.event.unwrap().fields).is_err() {
                break;
            }
        }
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let channel = oortd.channel().await;
    let publisher = tokio::spawn({
        let stop = std::sync::Arc::clone(&stop);
        async move {
            let mut sent = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let events = (sent + 1..=sent + 20).map(|n| event(&[("n", int(-n))])).collect();
                assert_eq!(publish_to(channel.clone(), "s", events).await, 20);
                sent += 20;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let archive = update_plugin_request::Source::Archive(std::fs::read(zip_path("mathx")).unwrap());
    let request = UpdatePluginRequest { name: "mathx".into(), source: Some(archive) };
    let updated = plugins(&oortd).await.update_plugin(request).await.unwrap().into_inner().plugin.unwrap();
    assert_eq!(updated.used_by_rules, ["live"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = publisher.await.unwrap();
    assert!(sent >= 200, "{sent} events published");

    let mut instances = Vec::new();
    for expected in 1..=sent {
        let row = tokio::time::timeout(Duration::from_secs(10), rows.recv()).await.expect("a row").expect("open");
        assert_eq!(row["n"], int(-expected), "every event, in order");
        assert_eq!(row["a"], int(expected));
        let Some(Kind::IntValue(instance)) = row["i"].kind else { panic!("{row:?}") };
        if instances.last() != Some(&instance) {
            instances.push(instance);
        }
    }
    assert_eq!(instances.len(), 2, "the rule switched once, from the old library to the new: {instances:?}");
    assert_eq!(rule_state(&oortd, "live").await, RuleState::Running as i32);
    let folders = std::fs::read_dir(dir.path().join("plugins/mathx")).unwrap().count();
    assert_eq!(folders, 1, "the old version's files are removed");
}

#[tokio::test]
async fn delete_is_refused_while_rules_use_the_plugin_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    install(&oortd, "mathx").await;
    create_stream(&oortd, r#"CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("user", "SELECT mx_abs(t) AS a FROM s", vec![action("log", &[])])).await.unwrap();
    create_rule(&oortd, rule("other", "SELECT abs(t) AS a FROM s", vec![action("log", &[])])).await.unwrap();

    let delete = |force| DeletePluginRequest { name: "mathx".into(), force };
    let (code, message) = code_of(plugins(&oortd).await.delete_plugin(delete(false)).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("used by rule(s) user;"), "{message}");
    assert!(get_plugin(&oortd, "mathx").await.is_ok(), "nothing was removed");

    let deleted = plugins(&oortd).await.delete_plugin(delete(true)).await.unwrap().into_inner();
    assert_eq!(deleted.stopped_rules, ["user"]);
    assert_eq!(rule_state(&oortd, "user").await, RuleState::Stopped as i32);
    assert_eq!(rule_state(&oortd, "other").await, RuleState::Running as i32);
    assert!(native_functions(&oortd).await.is_empty());
    assert_eq!(code_of(get_plugin(&oortd, "mathx").await).0, Code::NotFound);
    assert_eq!(code_of(plugins(&oortd).await.delete_plugin(delete(false)).await).0, Code::NotFound);
    let (code, message) =
        code_of(create_rule(&oortd, rule("late", "SELECT mx_abs(t) FROM s", vec![action("log", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(!dir.path().join("plugins/mathx").exists(), "its files are gone");

    // Gone from the catalog too: a restart does not bring it back, and it can be installed again.
    oortd.terminate().await;
    let oortd = Oortd::start(dir.path()).await;
    assert_eq!(code_of(get_plugin(&oortd, "mathx").await).0, Code::NotFound);
    install(&oortd, "mathx").await;
    assert_eq!(native_functions(&oortd).await.len(), 5);
}

#[tokio::test]
async fn a_source_plugin_feeds_a_rule_that_writes_through_a_sink_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let counter = install(&oortd, "counter").await;
    assert_eq!(counter.symbols[0].kind, SymbolKind::Source as i32);
    let filesink = install(&oortd, "filesink").await;
    assert_eq!(filesink.symbols[0].kind, SymbolKind::Sink as i32);

    create_stream(
        &oortd,
        r#"CREATE STREAM ticks (n BIGINT, name STRING) WITH (TYPE="counter", DATASOURCE="tick?interval=2&start=1&limit=40")"#,
    )
    .await;
    let out = dir.path().join("out.jsonl");
    let out_path = out.display().to_string();
    let sql = "SELECT n, name FROM ticks WHERE n % 2 = 0";
    create_rule(&oortd, rule("evens", sql, vec![action("jsonfile", &[("path", &out_path)]), action("grpc", &[])]))
        .await
        .unwrap();
    // TailRule only sees what comes after it subscribes; the file sees everything.
    lines_of(&out, 20).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // nothing comes after the limit
    let lines = lines_of(&out, 20).await;
    let expected: Vec<String> = (1..=20).map(|i| format!("{{\"n\":{},\"name\":\"tick\"}}", 2 * i)).collect();
    assert_eq!(lines, expected);

    assert_eq!(get_plugin(&oortd, "counter").await.unwrap().used_by_rules, ["evens"]);
    assert_eq!(get_plugin(&oortd, "filesink").await.unwrap().used_by_rules, ["evens"]);
    let (code, message) = code_of(
        plugins(&oortd).await.delete_plugin(DeletePluginRequest { name: "filesink".into(), force: false }).await,
    );
    assert_eq!(code, Code::FailedPrecondition, "{message}");

    // A configuration the plugin refuses fails the rule's creation, with the plugin's message.
    create_stream(&oortd, r#"CREATE STREAM s (t BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    let (code, message) =
        code_of(create_rule(&oortd, rule("nopath", "SELECT t FROM s", vec![action("jsonfile", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("the property `path` (a file name) is required"), "{message}");
    create_stream(&oortd, r#"CREATE STREAM fast () WITH (TYPE="counter", DATASOURCE="f?speed=3")"#).await;
    let (code, message) =
        code_of(create_rule(&oortd, rule("speed", "SELECT * FROM fast", vec![action("log", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("unknown option `SPEED`"), "{message}");
}

/// The lines of a file once it has at least `count` of them (after at most 15 s).
async fn lines_of(path: &Path, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= count || tokio::time::Instant::now() > deadline {
            return text.lines().map(str::to_owned).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn update_from_zip(oortd: &Oortd, name: &str) -> Plugin {
    let archive = update_plugin_request::Source::Archive(std::fs::read(zip_path(name)).unwrap());
    let request = UpdatePluginRequest { name: name.into(), source: Some(archive) };
    plugins(oortd).await.update_plugin(request).await.unwrap().into_inner().plugin.unwrap()
}

#[tokio::test]
async fn sources_and_sinks_switch_to_the_new_version_while_their_rule_runs() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    install(&oortd, "counter").await;
    install(&oortd, "filesink").await;

    // A sink replaced between two results: every row reaches the file, in order.
    create_stream(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    let out = dir.path().join("out.jsonl");
    let path = out.display().to_string();
    create_rule(&oortd, rule("tofile", "SELECT n FROM s", vec![action("jsonfile", &[("path", &path)])])).await.unwrap();
    publish(&oortd, "s", (1..=10).map(|n| event(&[("n", int(n))])).collect()).await;
    assert_eq!(lines_of(&out, 10).await.len(), 10);
    assert_eq!(update_from_zip(&oortd, "filesink").await.used_by_rules, ["tofile"]);
    publish(&oortd, "s", (11..=20).map(|n| event(&[("n", int(n))])).collect()).await;
    let expected: Vec<String> = (1..=20).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(lines_of(&out, 20).await, expected);

    // A source replaced while it counts: the rule goes on, fed by the new version
    // (which, being a new instance, counts from its start again).
    create_stream(&oortd, r#"CREATE STREAM ticks (n BIGINT) WITH (TYPE="counter", DATASOURCE="t?interval=5&start=1")"#)
        .await;
    create_rule(&oortd, rule("count", "SELECT n FROM ticks", vec![action("grpc", &[])])).await.unwrap();
    let mut results = tail(&oortd, "count").await;
    let first = match next_row(&mut results).await["n"].kind {
        Some(Kind::IntValue(n)) => n,
        ref other => panic!("{other:?}"),
    };
    for expected in first + 1..first + 5 {
        assert_eq!(next_row(&mut results).await["n"], int(expected));
    }
    assert_eq!(update_from_zip(&oortd, "counter").await.used_by_rules, ["count"]);
    let mut restarted = false;
    for _ in 0..400 {
        if next_row(&mut results).await["n"] == int(1) {
            restarted = true;
            break;
        }
    }
    assert!(restarted, "the new version's counter started over");
    assert_eq!(next_row(&mut results).await["n"], int(2));
    assert_eq!(rule_state(&oortd, "count").await, RuleState::Running as i32);
    assert_eq!(rule_state(&oortd, "tofile").await, RuleState::Running as i32);
}

#[tokio::test]
async fn bad_plugins_are_refused_with_clear_errors_and_running_rules_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    install(&oortd, "mathx").await;
    create_stream(&oortd, r#"CREATE STREAM s (a BIGINT, b BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("div", "SELECT mx_div(a, b) AS q FROM s", vec![action("grpc", &[])])).await.unwrap();
    // A rule that uses no plugin runs through all of it.
    create_rule(&oortd, rule("plain", "SELECT a + b AS sum FROM s", vec![action("grpc", &[])])).await.unwrap();
    let mut plain = tail(&oortd, "plain").await;
    let results = tail(&oortd, "div").await;

    let mathx_lib = library("libmathx.so");
    let cases: Vec<(&str, Vec<u8>, Code, &str)> = vec![
        (
            "escape",
            zip_of(&[("manifest.json", MATHX_MANIFEST.as_bytes()), ("../../libmathx.so", &mathx_lib)]),
            Code::InvalidArgument,
            "escapes the archive's folder",
        ),
        ("escape", zip_of(&[("/tmp/evil.so", b"x")]), Code::InvalidArgument, "escapes the archive's folder"),
        (
            "nosymbol",
            zip_of(&[
                ("manifest.json", br#"{"name": "nosymbol", "version": "0.1.0", "library": "lib.so"}"#),
                ("lib.so", &library("liboort_test_nosymbol.so")),
            ]),
            Code::InvalidArgument,
            "does not export the symbol `oort_plugin_entry`",
        ),
        (
            "future",
            zip_of(&[
                ("manifest.json", br#"{"name": "future", "version": "9.0.0", "library": "lib.so"}"#),
                ("lib.so", &library("liboort_test_abi2.so")),
            ]),
            Code::FailedPrecondition,
            "plugin 'future' was built for the native plugin ABI 2.3, this server needs ABI 1.x",
        ),
        (
            "mathx2",
            zip_of(&[
                ("manifest.json", MATHX_MANIFEST.replace("\"mathx\"", "\"mathx2\"").as_bytes()),
                ("libmathx.so", b"\x7fELF this is not a library at all"),
            ]),
            Code::InvalidArgument,
            "cannot load libmathx.so",
        ),
        (
            "mathx2",
            zip_of(&[
                ("manifest.json", MATHX_MANIFEST.replace("\"mathx\"", "\"mathx2\"").as_bytes()),
                ("libmathx.so", &mathx_lib),
            ]),
            Code::InvalidArgument,
            "the manifest names the plugin 'mathx2' but the library is 'mathx'",
        ),
        (
            "mathx",
            zip_of(&[
                ("manifest.json", MATHX_MANIFEST.replace("mx_div", "mx_nope").as_bytes()),
                ("libmathx.so", &mathx_lib),
            ]),
            Code::AlreadyExists,
            "plugin 'mathx' already exists",
        ),
        ("x", b"PK\x03\x04 truncated".to_vec(), Code::InvalidArgument, "not a zip archive"),
        ("x", zip_of(&[("libx.so", b"x")]), Code::InvalidArgument, "no manifest.json"),
        ("x", zip_of(&[("manifest.json", b"{\"name\": 1}")]), Code::InvalidArgument, "manifest.json"),
        (
            "x",
            zip_of(&[("manifest.json", MATHX_MANIFEST.as_bytes())]),
            Code::InvalidArgument,
            "the manifest names the plugin 'mathx'",
        ),
        ("../x", zip_of(&[]), Code::InvalidArgument, "bad plugin name"),
    ];
    for (name, archive, expected_code, expected_text) in cases {
        let (code, message) = code_of(install_bytes(&oortd, name, archive).await);
        assert_eq!(code, expected_code, "{name}: {message}");
        assert!(message.contains(expected_text), "{name}: {message:?} should contain {expected_text:?}");
    }

    // A manifest that disagrees with the library's symbols (checked on a plugin not installed yet).
    let mut client = plugins(&oortd).await;
    client.delete_plugin(DeletePluginRequest { name: "mathx".into(), force: true }).await.unwrap();
    let mismatched = zip_of(&[
        ("manifest.json", MATHX_MANIFEST.replace("mx_div", "mx_nope").as_bytes()),
        ("libmathx.so", &mathx_lib),
    ]);
    let (code, message) = code_of(install_bytes(&oortd, "mathx", mismatched).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.contains(
            "declared but not in the library: function mx_nope; in the library but not declared: function mx_div"
        ),
        "{message}"
    );
    let aggregate_flag = zip_of(&[
        ("manifest.json", MATHX_MANIFEST.replace(r#""mx_geomean", "aggregate": true"#, r#""mx_geomean""#).as_bytes()),
        ("libmathx.so", &mathx_lib),
    ]);
    let (code, message) = code_of(install_bytes(&oortd, "mathx", aggregate_flag).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("aggregate function mx_geomean"), "{message}");
    // From a link-local (cloud metadata) URL, refused: egress_allow does not name it.
    let metadata = "http://169.254.169.254/mathx.zip".to_string();
    let url = install_request("mathx", install_plugin_request::Source::Url(metadata));
    let (code, message) = code_of(client.install_plugin(url).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("a link-local (metadata) address") && message.contains("egress_allow"), "{message}");
    let portable = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        ..install_request("p", install_plugin_request::Source::Archive(vec![]))
    };
    // Portable plugins are installed too (tests/portable.rs); an empty archive is no zip.
    let (code, message) = code_of(client.install_plugin(portable).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("not a zip archive"), "{message}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("plugins")).unwrap().filter_map(Result::ok).collect();
    assert!(
        leftovers.iter().all(|e| std::fs::read_dir(e.path()).unwrap().next().is_none()),
        "failed installs leave no files: {leftovers:?}"
    );

    // A newer minor of the same ABI major is accepted, and works.
    let newer =
        zip_of(&[("manifest.json", NEWER_MANIFEST.as_bytes()), ("libnewer.so", &library("liboort_test_abi_minor.so"))]);
    let newer = install_bytes(&oortd, "newer", newer).await.unwrap();
    assert_eq!(newer.abi_version, "1.5");
    create_rule(&oortd, rule("plus", "SELECT newer_plus(a, b) AS p FROM s", vec![action("grpc", &[])])).await.unwrap();
    let mut plus = tail(&oortd, "plus").await;
    publish(&oortd, "s", vec![event(&[("a", int(40)), ("b", int(2))])]).await;
    assert_eq!(next_row(&mut plus).await["p"], int(42));
    // What a plugin returns is bounded: a 70 MB string fails its row, the next one is fine.
    create_stream(&oortd, r#"CREATE STREAM sizes (n BIGINT) WITH (TYPE="grpc", DATASOURCE="sizes")"#).await;
    create_rule(&oortd, rule("blob", "SELECT newer_blob(n) AS b FROM sizes", vec![action("grpc", &[])])).await.unwrap();
    let mut blob = tail(&oortd, "blob").await;
    publish(&oortd, "sizes", vec![event(&[("n", int(70_000_000))]), event(&[("n", int(3))])]).await;
    assert_eq!(next_row(&mut blob).await["b"], Value { kind: Some(Kind::StringValue("xxx".into())) });
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "blob".into() }).await.unwrap().into_inner();
    let project = status.operators.iter().find(|o| o.name == "op_project_0").unwrap();
    assert!(project.last_exception.contains("at most 67108864"), "{project:?}");

    // Nothing of it disturbed the server: install again, and the function that
    // panics on a zero divisor fails that row only.
    install(&oortd, "mathx").await;
    oortd.rules().await.start_rule(oort_proto::v1::StartRuleRequest { id: "div".into() }).await.unwrap();
    let mut results2 = tail(&oortd, "div").await;
    publish(
        &oortd,
        "s",
        vec![
            event(&[("a", int(6)), ("b", int(3))]),
            event(&[("a", int(1)), ("b", int(0))]),
            event(&[("a", int(8)), ("b", int(2))]),
        ],
    )
    .await;
    assert_eq!(next_row(&mut results2).await["q"], int(2));
    assert_eq!(next_row(&mut results2).await["q"], int(4), "the panicking row is dropped, the next one computed");
    let status =
        oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "div".into() }).await.unwrap().into_inner();
    assert_eq!(status.state, RuleState::Running as i32);
    let failed: Vec<_> = status.operators.iter().filter(|o| o.exceptions_total > 0).collect();
    assert_eq!(failed.len(), 1, "{status:?}");
    assert_eq!(failed[0].exceptions_total, 1);
    assert!(failed[0].last_exception.contains("panicked: attempt to divide by zero"), "{:?}", failed[0]);
    let sums: Vec<Value> = {
        let mut sums = Vec::new();
        while sums.len() < 4 {
            sums.push(next_row(&mut plain).await["sum"].clone());
        }
        sums
    };
    assert_eq!(sums, [int(42), int(9), int(1), int(10)], "the plugin-free rule saw every event");
    assert_eq!(rule_state(&oortd, "plain").await, RuleState::Running as i32);
    drop(results);
}

#[tokio::test]
async fn a_plugin_is_installed_from_a_url_when_the_configuration_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oort.toml");
    std::fs::write(&config, "plugin_allow_private_urls = true\n").unwrap();
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path());
    let oortd = Oortd::launch(command, dir.path()).await;

    // A one-file HTTP server.
    let archive = std::fs::read(zip_path("counter")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let found = String::from_utf8_lossy(&request[..n]).starts_with("GET /counter.zip ");
            let (status, body) = if found { ("200 OK", archive.as_slice()) } else { ("404 Not Found", &b""[..]) };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body).await;
        }
    });
    let url = |path: &str| install_plugin_request::Source::Url(format!("http://{addr}/{path}"));
    let (code, message) =
        code_of(plugins(&oortd).await.install_plugin(install_request("counter", url("missing.zip"))).await);
    assert_eq!(code, Code::Unavailable, "{message}");
    assert!(message.contains("404"), "{message}");
    let plugin = plugins(&oortd).await.install_plugin(install_request("counter", url("counter.zip"))).await.unwrap();
    assert_eq!(plugin.into_inner().plugin.unwrap().name, "counter");
}

#[tokio::test]
async fn a_native_call_that_never_returns_fails_its_rules_and_delete_and_shutdown_still_complete() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start_with_config(dir.path(), "plugin_call_timeout_ms = 500\n").await;
    let newer =
        zip_of(&[("manifest.json", NEWER_MANIFEST.as_bytes()), ("libnewer.so", &library("liboort_test_abi_minor.so"))]);
    install_bytes(&oortd, "newer", newer).await.unwrap();
    create_stream(&oortd, r#"CREATE STREAM s (ms BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("hang", "SELECT newer_sleep(ms) AS m FROM s", vec![action("grpc", &[])])).await.unwrap();
    let plus = rule("plus", "SELECT newer_plus(ms, 1) AS p FROM s WHERE ms < 0", vec![action("grpc", &[])]);
    create_rule(&oortd, plus).await.unwrap();
    // An hour: the call is stuck for as long as the test runs.
    publish(&oortd, "s", vec![event(&[("ms", int(3_600_000))])]).await;

    // Both rules that use the plugin fail, the one stuck in its call too.
    for id in ["hang", "plus"] {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await;
            let status = status.unwrap().into_inner();
            if status.state == RuleState::Failed as i32 {
                break status;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} never failed: {status:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(status.last_error.contains("did not return within 500 ms"), "{}", status.last_error);
    }
    let plugin = get_plugin(&oortd, "newer").await.unwrap();
    assert!(plugin.last_error.contains("did not return"), "{plugin:?}");

    // Its functions fail at once rather than hang too: a new rule is refused.
    let again = rule("again", "SELECT newer_plus(ms, 1) AS p FROM s", vec![action("grpc", &[])]);
    let refused = create_rule(&oortd, again).await.unwrap_err();
    assert!(refused.message().contains("plugin newer is unhealthy"), "{refused:?}");
    let update = UpdatePluginRequest {
        name: "newer".into(),
        source: Some(update_plugin_request::Source::Archive(zip_of(&[
            ("manifest.json", NEWER_MANIFEST.as_bytes()),
            ("libnewer.so", &library("liboort_test_abi_minor.so")),
        ]))),
    };
    let refused = plugins(&oortd).await.update_plugin(update).await.unwrap_err();
    assert!(refused.message().contains("cannot be updated in place"), "{refused:?}");

    // Deleting the rules and the plugin, and shutting down, all complete.
    let started = std::time::Instant::now();
    for id in ["hang", "plus"] {
        oortd.rules().await.delete_rule(oort_proto::v1::DeleteRuleRequest { id: id.into() }).await.unwrap();
    }
    plugins(&oortd)
        .await
        .delete_plugin(oort_proto::v1::DeletePluginRequest { name: "newer".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(oortd.logged(&["did not return", "newer"]), "the log says which plugin hung");
    oortd.terminate().await;
}

/// An oortd on the catalog `catalog` (`etcd://…`).
async fn start_shared(dir: &Path, catalog: &str) -> Oortd {
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--catalog", catalog, "--data-dir"]).arg(dir);
    Oortd::launch(command, dir).await
}

/// Waits until `oortd` has plugin `name` (`true`) or has it not.
async fn wait_plugin(oortd: &Oortd, name: &str, present: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while get_plugin(oortd, name).await.is_ok() != present {
        assert!(tokio::time::Instant::now() < deadline, "plugin {name}: not {present} in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_plugin_installed_through_one_oortd_of_a_shared_catalog_is_installed_by_every_one() {
    let etcd = oort_testkit::etcd::EtcdServer::start();
    let catalog = format!("etcd://{}/plugins", etcd.endpoint);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_shared(dirs[0].path(), &catalog).await;
    let b = start_shared(dirs[1].path(), &catalog).await;
    install(&a, "mathx").await;
    // The other server installs its own copy from the archive the catalog keeps, and runs rules with it.
    wait_plugin(&b, "mathx", true).await;
    assert_eq!(native_functions(&b).await.len(), 5);
    create_stream(&b, r#"CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    let sql = "SELECT mx_abs(t) AS a FROM s";
    create_rule(&b, rule("abs", sql, vec![action("grpc", &[])])).await.unwrap();
    // The rule has one owner (b, which created it); its results come from there.
    let mut results = tail(&b, "abs").await;
    publish(&b, "s", vec![event(&[("t", float(-3.0))])]).await;
    assert_eq!(next_row(&mut results).await["a"], float(3.0));

    // A server that starts later installs it at start; one that restarts loads its copy again.
    let c = start_shared(dirs[2].path(), &catalog).await;
    assert_eq!(get_plugin(&c, "mathx").await.unwrap().version, "1.0.0");
    b.terminate().await;
    let b = start_shared(dirs[1].path(), &catalog).await;
    assert!(get_plugin(&b, "mathx").await.is_ok());
    assert!(!b.logged(&["plugin installed from the shared catalog"]), "its own copy, not the archive again");

    // Deleted through one (its rule stopped first), it goes from every one.
    let delete = DeletePluginRequest { name: "mathx".into(), force: true };
    plugins(&a).await.delete_plugin(delete).await.unwrap();
    wait_plugin(&b, "mathx", false).await;
    wait_plugin(&c, "mathx", false).await;
}
