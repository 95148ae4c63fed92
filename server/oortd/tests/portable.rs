//! Portable plugins end to end: the Rust SDK's example `plugins/examples/rsdemo`
//! is built as a portable executable and packaged by its `package.sh`,
//! installed through the gRPC API into the real `oortd`, and used by rules (a
//! function, an aggregate, a source, a sink). Its process is killed with
//! SIGKILL mid-stream and the rules recover by themselves; a call that hangs
//! hits the call timeout; the plugin is updated while a rule runs and deleted;
//! and malformed packages are refused with clear errors while other rules
//! keep running.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::AuthChannel;
use common::{Oortd, code_of};
use common::{action, int, rule};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    CreateRuleRequest, CreateStreamRequest, DeletePluginRequest, Event, GetPluginRequest, GetRuleStatusRequest,
    GetRuleStatusResponse, InstallPluginRequest, Plugin, PluginKind, PublishRequest, Rule, RuleState, TailRuleRequest,
    TailRuleResponse, UpdatePluginRequest, Value, install_plugin_request, update_plugin_request,
};
use tonic::{Code, Streaming};

/// How long a test waits for something that should happen (a loaded 2-core machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Plugins are built in a target directory of their own: the `cargo test`
/// running this holds the lock of the default one.
fn target_dir() -> PathBuf {
    root().join("target/plugin-tests")
}

/// Builds and packages rsdemo (once per test binary); returns the portable zip.
fn rsdemo_zip() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = target_dir().join("plugins");
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new("./package.sh")
            .arg(out.join("rsdemo.zip"))
            .arg("debug")
            .current_dir(root().join("plugins/examples/rsdemo"))
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .unwrap();
        assert!(status.success(), "rsdemo's package.sh failed");
        out.join("rsdemo-portable.zip")
    })
}

fn rsdemo_executable() -> Vec<u8> {
    rsdemo_zip();
    std::fs::read(target_dir().join("debug/rsdemo-portable")).unwrap()
}

const RSDEMO_MANIFEST: &str = include_str!("../../../plugins/examples/rsdemo/manifest.json");

/// Starts oortd with short plugin timeouts, so that failures show quickly.
async fn start(dir: &Path) -> Oortd {
    let config = dir.join("oort.toml");
    std::fs::write(
        &config,
        "plugin_start_timeout_ms = 5000\nplugin_call_timeout_ms = 2000\nplugin_health_interval_ms = 300\n\
         plugin_shutdown_grace_ms = 1000\nplugin_restart_backoff_ms = 100\n",
    )
    .unwrap();
    let data = dir.join("data");
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--metrics-listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    Oortd::launch(command, &data).await
}

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

async fn plugins(oortd: &Oortd) -> PluginServiceClient<AuthChannel> {
    PluginServiceClient::new(oortd.channel().await)
}

/// Installs a zip (through a file: a debug executable is larger than a gRPC message may be).
async fn install_archive(oortd: &Oortd, name: &str, archive: Vec<u8>) -> Result<Plugin, tonic::Status> {
    let file = oortd.data_dir.join("uploads").join(format!("{name}.zip"));
    std::fs::write(&file, archive).unwrap();
    let request = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: name.into(),
        source: Some(install_plugin_request::Source::File(file.display().to_string())),
    };
    Ok(plugins(oortd).await.install_plugin(request).await?.into_inner().plugin.unwrap())
}

async fn install_rsdemo(oortd: &Oortd) -> Plugin {
    let request = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "rsdemo".into(),
        source: Some(install_plugin_request::Source::File(oortd.upload(rsdemo_zip()))),
    };
    plugins(oortd).await.install_plugin(request).await.unwrap().into_inner().plugin.unwrap()
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

async fn publish(oortd: &Oortd, stream: &str, events: Vec<Event>) {
    let requests: Vec<PublishRequest> = events
        .into_iter()
        .map(|e| PublishRequest { stream: stream.into(), event: Some(e), ..Default::default() })
        .collect();
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::iter(requests)).await.unwrap();
}

async fn next_row(results: &mut Streaming<TailRuleResponse>) -> HashMap<String, Value> {
    let next = tokio::time::timeout(PATIENCE, results.message()).await.expect("a result in time");
    next.unwrap().expect("the tail stream is open").event.unwrap().fields
}

async fn rule_status(oortd: &Oortd, id: &str) -> GetRuleStatusResponse {
    oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.unwrap().into_inner()
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`PATIENCE`].
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `n` to `stream` until the rule answers a row whose `key` is `expected`
/// (calls during a restart fail, and their rows are dropped).
async fn until_answer(
    oortd: &Oortd,
    stream: &str,
    results: &mut Streaming<TailRuleResponse>,
    n: i64,
    key: &str,
    expected: Value,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publish(oortd, stream, vec![event(&[("n", int(n))])]).await;
        if let Ok(Ok(Some(message))) = tokio::time::timeout(Duration::from_millis(500), results.message()).await
            && message.event.unwrap().fields.get(key) == Some(&expected)
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rule did not answer {key} = {expected:?} in time");
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().count()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[tokio::test]
async fn a_portable_plugin_serves_rules_and_they_recover_from_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path()).await;
    let installed = install_rsdemo(&oortd).await;
    assert_eq!(installed.kind, PluginKind::Portable as i32);
    assert_eq!(
        (installed.version.as_str(), installed.language.as_str(), installed.abi_version.as_str()),
        ("1.0.0", "rust", "1")
    );
    let mut names: Vec<&str> = installed.symbols.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["rs_abs", "rs_double", "rs_file", "rs_sleep", "rs_ticks", "rs_total"]);

    create_stream(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("fn", "SELECT n, rs_double(n) AS d FROM s", vec![action("grpc", &[])])).await.unwrap();
    create_rule(
        &oortd,
        rule("agg", "SELECT rs_total(n) AS t FROM s GROUP BY COUNTWINDOW(2)", vec![action("grpc", &[])]),
    )
    .await
    .unwrap();
    create_stream(&oortd, r#"CREATE STREAM ticks (n BIGINT) WITH (TYPE="rs_ticks", DATASOURCE="5")"#).await;
    let out = dir.path().join("ticks.jsonl");
    let sink = action("rs_file", &[("path", &out.display().to_string())]);
    create_rule(&oortd, rule("src", "SELECT n FROM ticks", vec![sink])).await.unwrap();

    // The plugin refuses a wrong argument count when the rule is created.
    let (code, message) =
        code_of(create_rule(&oortd, rule("two", "SELECT rs_double(n, n) FROM s", vec![action("log", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("rs_double takes 1 argument, got 2"), "{message}");

    let mut results = tail(&oortd, "fn").await;
    let mut totals = tail(&oortd, "agg").await;
    publish(&oortd, "s", vec![event(&[("n", int(20))]), event(&[("n", int(1))])]).await;
    let row = next_row(&mut results).await;
    assert_eq!((row["n"].clone(), row["d"].clone()), (int(20), int(40)));
    assert_eq!(next_row(&mut results).await["d"], int(2));
    assert_eq!(next_row(&mut totals).await["t"], Value { kind: Some(Kind::FloatValue(21.0)) });
    eventually("the source feeds the sink", || async { (lines(&out) >= 10).then_some(()) }).await;

    let plugin = get_plugin(&oortd, "rsdemo").await.unwrap();
    assert_eq!(plugin.used_by_rules, ["agg", "fn", "src"]);
    assert!(plugin.running && plugin.pid != 0, "{plugin:?}");
    assert_eq!(plugin.restart_count, 0);
    // Its socket: in a private directory of this server (0700), itself 0600.
    let environ = std::fs::read(format!("/proc/{}/environ", plugin.pid)).unwrap();
    let socket = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"OORT_PLUGIN_SOCKET="))
        .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
        .expect("the plugin has OORT_PLUGIN_SOCKET");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(socket.parent().unwrap()), mode(&socket)), (0o700, 0o600), "{}", socket.display());

    // SIGKILL, mid-stream.
    let status = Command::new("kill").args(["-9", &plugin.pid.to_string()]).status().unwrap();
    assert!(status.success());
    let restarted = eventually("the plugin is restarted", || async {
        let p = get_plugin(&oortd, "rsdemo").await.unwrap();
        (p.restart_count >= 1 && p.running && p.pid != plugin.pid).then_some(p)
    })
    .await;
    assert!(restarted.last_error.contains("signal 9"), "{}", restarted.last_error);
    until_answer(&oortd, "s", &mut results, 7, "d", int(14)).await;
    let before = lines(&out);
    eventually("the source and sink go on", || async { (lines(&out) > before + 10).then_some(()) }).await;
    for id in ["fn", "src"] {
        let status = rule_status(&oortd, id).await;
        assert_eq!(status.state, RuleState::Running as i32, "{id}: {status:?}");
        let plugin = status.plugins.iter().find(|p| p.name == "rsdemo").expect("the rule lists its plugin");
        assert!(plugin.restart_count >= 1 && plugin.last_error.contains("signal 9"), "{id}: {plugin:?}");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let numbers: Vec<i64> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["n"].as_i64().unwrap()).collect();
    assert!(numbers.windows(2).filter(|w| w[1] != w[0] + 1).count() <= 2, "a restart starts the ticks again once");

    let metrics_addr = oortd.metrics_addr.clone().expect("metrics endpoint");
    let metrics =
        common::http().get(format!("http://{metrics_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    let line =
        metrics.lines().find(|l| l.starts_with("oort_plugin_restarts_total{plugin=\"rsdemo\"}")).unwrap_or_default();
    assert!(line.split(' ').nth(1).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 1), "{metrics}");

    // Registered again at start-up, before rules are restored: they run.
    oortd.terminate().await;
    assert!(!alive(restarted.pid), "the plugin process ends with the server");
    let oortd = start(dir.path()).await;
    let mut results = tail(&oortd, "fn").await;
    until_answer(&oortd, "s", &mut results, 5, "d", int(10)).await;

    // A server killed with SIGKILL closes the plugin's stdin: the plugin exits too.
    let pid = get_plugin(&oortd, "rsdemo").await.unwrap().pid;
    assert!(alive(pid));
    oortd.kill9();
    eventually("the plugin exits with its server", || async { (!alive(pid)).then_some(()) }).await;
}

#[tokio::test]
async fn a_call_that_hangs_times_out_and_the_plugin_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path()).await;
    install_rsdemo(&oortd).await;
    create_stream(&oortd, r#"CREATE STREAM s (ms BIGINT, n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("slow", "SELECT n, rs_sleep(ms, n) AS x FROM s", vec![action("grpc", &[])]))
        .await
        .unwrap();
    create_rule(&oortd, rule("plain", "SELECT n, abs(n) AS a FROM s", vec![action("grpc", &[])])).await.unwrap();
    let mut slow = tail(&oortd, "slow").await;
    let mut plain = tail(&oortd, "plain").await;
    let first = get_plugin(&oortd, "rsdemo").await.unwrap();

    publish(&oortd, "s", vec![event(&[("ms", int(60_000)), ("n", int(1))])]).await;
    assert_eq!(next_row(&mut plain).await["a"], int(1), "other rules are not held up");
    let restarted = eventually("the call times out and the plugin restarts", || async {
        let p = get_plugin(&oortd, "rsdemo").await.unwrap();
        (p.restart_count >= 1).then_some(p)
    })
    .await;
    assert!(restarted.last_error.contains("did not answer within 2000 ms"), "{}", restarted.last_error);
    assert!(!alive(first.pid) || first.pid != restarted.pid);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publish(&oortd, "s", vec![event(&[("ms", int(0)), ("n", int(2))])]).await;
        if let Ok(Ok(Some(message))) = tokio::time::timeout(Duration::from_millis(500), slow.message()).await
            && message.event.unwrap().fields.get("x") == Some(&int(2))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rule did not recover");
    }
    let status = rule_status(&oortd, "slow").await;
    assert_eq!(status.state, RuleState::Running as i32);
    assert!(status.operators.iter().any(|o| o.exceptions_total >= 1), "the timed-out row is counted: {status:?}");
    assert!(status.plugins[0].last_error.contains("did not answer"), "{status:?}");
}

#[tokio::test]
async fn update_swaps_the_process_while_a_rule_runs_and_delete_is_refused_then_forced() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path()).await;
    let old = install_rsdemo(&oortd).await;
    create_stream(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("live", "SELECT n, rs_double(n) AS d FROM s", vec![action("grpc", &[])])).await.unwrap();
    let mut results = tail(&oortd, "live").await;
    until_answer(&oortd, "s", &mut results, 3, "d", int(6)).await;

    let archive = update_plugin_request::Source::File(oortd.upload(rsdemo_zip()));
    let request = UpdatePluginRequest { name: "rsdemo".into(), source: Some(archive) };
    let updated = plugins(&oortd).await.update_plugin(request).await.unwrap().into_inner().plugin.unwrap();
    assert_eq!(updated.used_by_rules, ["live"]);
    assert!(updated.running && updated.pid != old.pid, "a new process: {updated:?}");
    eventually("the old process is shut down", || async { (!alive(old.pid)).then_some(()) }).await;
    // Every event after the update is answered by the new process.
    for n in 10..20 {
        publish(&oortd, "s", vec![event(&[("n", int(n))])]).await;
        let row = next_row(&mut results).await;
        assert_eq!((row["n"].clone(), row["d"].clone()), (int(n), int(2 * n)));
    }
    assert_eq!(get_plugin(&oortd, "rsdemo").await.unwrap().restart_count, 0, "an update is no restart");
    let folders = std::fs::read_dir(dir.path().join("data/plugins/rsdemo")).unwrap().count();
    assert_eq!(folders, 1, "the old version's files are removed");

    let (code, message) =
        code_of(plugins(&oortd).await.delete_plugin(DeletePluginRequest { name: "rsdemo".into(), force: false }).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("live"), "{message}");
    let deleted = plugins(&oortd)
        .await
        .delete_plugin(DeletePluginRequest { name: "rsdemo".into(), force: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.stopped_rules, ["live"]);
    eventually("the process is stopped", || async { (!alive(updated.pid)).then_some(()) }).await;
    assert_eq!(code_of(get_plugin(&oortd, "rsdemo").await).0, Code::NotFound);
    assert!(!dir.path().join("data/plugins/rsdemo").exists(), "its files are removed");
    let (code, message) =
        code_of(create_rule(&oortd, rule("gone", "SELECT rs_double(n) FROM s", vec![action("log", &[])])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    install_rsdemo(&oortd).await;
}

fn script(body: &str) -> Vec<u8> {
    format!("#!/bin/sh\n{body}\n").into_bytes()
}

fn manifest(executable: &str, language: &str) -> Vec<u8> {
    format!(
        r#"{{"name": "bad", "version": "1.0.0", "kind": "portable", "language": "{language}", "executable": "{executable}", "functions": [{{"name": "bad_f"}}]}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn malformed_portable_packages_are_refused_with_clear_errors_and_rules_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path()).await;
    create_stream(&oortd, r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    create_rule(&oortd, rule("plain", "SELECT abs(n) AS a FROM s", vec![action("grpc", &[])])).await.unwrap();
    let mut plain = tail(&oortd, "plain").await;

    let lying = {
        let mut m: serde_json::Value = serde_json::from_str(RSDEMO_MANIFEST).unwrap();
        m["functions"].as_array_mut().unwrap().retain(|f| f["name"] != "rs_total");
        m["functions"].as_array_mut().unwrap().push(serde_json::json!({"name": "rs_triple"}));
        m.to_string().into_bytes()
    };
    let exe = rsdemo_executable();
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "path escape",
            "bad",
            zip_of(&[("manifest.json", &manifest("run", "shell")), ("../escape", b"x")]),
            "escapes the archive's folder",
        ),
        (
            "missing executable",
            "bad",
            zip_of(&[("manifest.json", &manifest("run", "shell"))]),
            "executable 'run' is not in the archive",
        ),
        (
            "a manifest that lies",
            "rsdemo",
            zip_of(&[("manifest.json", &lying), ("rsdemo-portable", &exe)]),
            "declared but not provided: function rs_triple; provided but not declared: aggregate function rs_total",
        ),
        (
            "no handshake",
            "bad",
            zip_of(&[("manifest.json", &manifest("run", "shell")), ("run", &script("exec sleep 60"))]),
            "did not print its handshake line",
        ),
        (
            "exits at once",
            "bad",
            zip_of(&[
                ("manifest.json", &manifest("run", "shell")),
                ("run", &script("echo 'cannot open the frobnicator' >&2; exit 3")),
            ]),
            "exited with status 3 before printing its handshake line; stderr: cannot open the frobnicator",
        ),
        (
            "a wrong handshake",
            "bad",
            zip_of(&[
                ("manifest.json", &manifest("run", "shell")),
                ("run", &script("echo 'OORT_PLUGIN|9|unix|/x'; exec sleep 60")),
            ]),
            "speaks protocol version 9",
        ),
        (
            "a native manifest",
            "bad",
            zip_of(&[("manifest.json", br#"{"name": "bad", "version": "1", "library": "libbad.so"}"#)]),
            "install it with kind PLUGIN_KIND_NATIVE",
        ),
    ];
    for (what, name, archive, expected) in cases {
        let (code, message) = code_of(install_archive(&oortd, name, archive).await);
        assert_eq!(code, Code::InvalidArgument, "{what}: {message}");
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(code_of(get_plugin(&oortd, name).await).0, Code::NotFound, "{what}: nothing installed");
        publish(&oortd, "s", vec![event(&[("n", int(-4))])]).await;
        assert_eq!(next_row(&mut plain).await["a"], int(4), "{what}: the other rules run");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data/plugins"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).filter(|n| n != ".sockets").collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no folder is left behind: {leftovers:?}");
    assert_eq!(rule_status(&oortd, "plain").await.state, RuleState::Running as i32);
}

#[tokio::test]
async fn a_plugin_process_gets_a_minimal_environment_not_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    // The server's environment holds secrets: the harness's OORT_AUTH_TOKEN, and CLOUD_SECRET.
    let config = dir.path().join("oort.toml");
    std::fs::write(&config, "plugin_start_timeout_ms = 5000\n").unwrap();
    let data = dir.path().join("data");
    let mut command = Oortd::command();
    command.env("CLOUD_SECRET", "hunter2").args(["--listen", "127.0.0.1:0", "--http-push-listen", "off"]);
    command.arg("--config").arg(&config).arg("--data-dir").arg(&data);
    let oortd = Oortd::launch(command, &data).await;
    let seen = dir.path().join("plugin.env");
    let body = format!("env > '{}'; exit 3", seen.display());
    let archive = zip_of(&[("manifest.json", &manifest("run", "shell")), ("run", &script(&body))]);
    let error = install_archive(&oortd, "bad", archive).await.unwrap_err();
    assert!(error.message().contains("exited with status 3"), "{error:?}");
    let env = std::fs::read_to_string(&seen).expect("the plugin ran and wrote its environment");
    assert!(env.contains("OORT_PLUGIN_SOCKET=") && env.contains("PATH="), "{env}");
    assert!(!env.contains("hunter2") && !env.contains(common::TOKEN), "the server's secrets leaked:\n{env}");
    assert!(!env.contains("OORT_AUTH_TOKEN") && !env.contains("OORT_EGRESS_ALLOW"), "{env}");
}

#[tokio::test]
async fn a_plugin_flooding_its_output_is_held_to_its_log_budget() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = start(dir.path()).await;
    let flood = "i=0; while [ $i -lt 20000 ]; do echo \"flood line $i\" >&2; i=$((i+1)); done; exit 3";
    let archive = zip_of(&[("manifest.json", &manifest("run", "shell")), ("run", &script(flood))]);
    let error = install_archive(&oortd, "bad", archive).await.unwrap_err();
    assert!(error.message().contains("exited with status 3"), "{error:?}");
    // Every line was read (the pipe never blocked the plugin), few were logged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !oortd.logged(&["suppressed", "lines of the plugin's output"]) {
        assert!(std::time::Instant::now() < deadline, "no suppressed-lines note");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logged = oortd.log.lock().unwrap().iter().filter(|l| l.contains("flood line")).count();
    assert!(logged <= 200 + 100 * 10, "{logged} lines of 20,000 reached the log");
}
