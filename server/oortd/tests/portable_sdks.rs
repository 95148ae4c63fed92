//! The portable plugins of the other languages end to end, through the real
//! `oortd`: the Python SDK's `pydemo`, the Go SDK's `godemo`, and `noderaw`,
//! written in Node.js against the generated gRPC code alone. Each is packaged
//! by its own `package.sh`, installed through the API, and used by a rule
//! calling its function, one reading its source and one writing to its sink.
//!
//! The server runs Python plugins with the system's `python3`, which need not
//! have grpcio: `pydemo` brings its dependencies as wheels, installed into an
//! environment of its own at install time, without network. They need what
//! `scripts/test.sh` sets up before `cargo test`: Go, and Node.js with the
//! example's npm packages (`plugins/examples/noderaw/test.sh`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Oortd;
use common::{action, int};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, InstallPluginRequest, PluginKind, PublishRequest, Rule,
    TailRuleRequest, TailRuleResponse, Value, install_plugin_request,
};
use tonic::Streaming;

/// How long a test waits for something that should happen (a loaded 2-core machine is slow).
const PATIENCE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Packages `plugins/examples/<name>` with its `package.sh`.
fn package(name: &str, out_dir: &Path) -> PathBuf {
    let zip = out_dir.join(format!("{name}.zip"));
    let status = Command::new("./package.sh")
        .arg(&zip)
        .arg("debug")
        .current_dir(root().join("plugins/examples").join(name))
        .status()
        .unwrap_or_else(|e| panic!("{name}/package.sh: {e}"));
    assert!(status.success(), "{name}/package.sh failed");
    zip
}

async fn start(dir: &Path) -> Oortd {
    let config = dir.join("oort.toml");
    std::fs::write(&config, "plugin_python = \"python3\"\nplugin_start_timeout_ms = 20000\n").unwrap();
    let data = dir.join("data");
    let mut command = Oortd::command();
    command
        .args(["--listen", "127.0.0.1:0", "--http-push-listen", "off"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    Oortd::launch(command, &data).await
}

fn string(s: &str) -> Value {
    Value { kind: Some(Kind::StringValue(s.into())) }
}

async fn create_stream(oortd: &Oortd, sql: &str) {
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
}

async fn create_rule(oortd: &Oortd, id: &str, sql: &str, action: Action) {
    let rule = Rule { id: id.into(), sql: sql.into(), actions: vec![action], ..Default::default() };
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
}

async fn tail(oortd: &Oortd, id: &str) -> Streaming<TailRuleResponse> {
    oortd.rules().await.tail_rule(TailRuleRequest { id: id.into(), ..Default::default() }).await.unwrap().into_inner()
}

async fn publish(oortd: &Oortd, stream: &str, events: Vec<HashMap<String, Value>>) {
    let requests: Vec<PublishRequest> = events
        .into_iter()
        .map(|fields| PublishRequest {
            stream: stream.into(),
            event: Some(Event { fields, ..Default::default() }),
            ..Default::default()
        })
        .collect();
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::iter(requests)).await.unwrap();
}

async fn next_row(results: &mut Streaming<TailRuleResponse>) -> HashMap<String, Value> {
    let next = tokio::time::timeout(PATIENCE, results.message()).await.expect("a result in time");
    next.unwrap().expect("the tail stream is open").event.unwrap().fields
}

/// What a test does with one example plugin.
struct Example {
    /// Its folder under plugins/examples, and its plugin name.
    name: &'static str,
    /// A scalar function of one argument, an input and its result.
    function: (&'static str, Value, Value),
    /// An aggregate of a bigint column over a window of 3, with inputs and result.
    aggregate: Option<(&'static str, [i64; 3], Value)>,
    /// The source type, its DATASOURCE for 3 events, the field it sets, and the first value.
    source: (&'static str, &'static str, &'static str, i64),
    /// The sink type; it appends each row as a JSON line to the property `path`.
    sink: &'static str,
    /// Distributions its environment must hold (a Python plugin's requirements).
    dependencies: &'static [&'static str],
}

async fn run(example: Example) {
    let dir = tempfile::tempdir().unwrap();
    let zip = package(example.name, dir.path());
    let oortd = start(dir.path()).await;
    let request = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: example.name.into(),
        source: Some(install_plugin_request::Source::File(oortd.upload(&zip))),
    };
    let plugin = PluginServiceClient::new(oortd.channel().await)
        .install_plugin(request)
        .await
        .unwrap_or_else(|e| panic!("install {}: {e}", example.name))
        .into_inner()
        .plugin
        .unwrap();
    assert_eq!(plugin.kind, PluginKind::Portable as i32);
    for dependency in example.dependencies {
        let installed = |d: &String| d.split(' ').next() == Some(*dependency);
        assert!(plugin.dependencies.iter().any(installed), "{dependency} in {:?}", plugin.dependencies);
    }

    create_stream(&oortd, r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#).await;
    let (function, input, expected) = example.function;
    create_rule(&oortd, "fn", &format!("SELECT {function}(x) AS out FROM s WHERE x IS NOT NULL"), action("grpc", &[]))
        .await;
    let mut calls = tail(&oortd, "fn").await;
    let mut totals = match example.aggregate {
        Some((aggregate, _, _)) => {
            create_stream(&oortd, r#"CREATE STREAM nums (v BIGINT) WITH (TYPE="grpc", DATASOURCE="nums")"#).await;
            let sql = format!("SELECT {aggregate}(v) AS total FROM nums GROUP BY COUNTWINDOW(3)");
            create_rule(&oortd, "agg", &sql, action("grpc", &[])).await;
            Some(tail(&oortd, "agg").await)
        }
        None => None,
    };
    publish(&oortd, "s", vec![HashMap::from([("x".to_owned(), input.clone())])]).await;
    assert_eq!(next_row(&mut calls).await["out"], expected, "{function}({input:?})");
    if let (Some((aggregate, values, expected)), Some(totals)) = (example.aggregate, totals.as_mut()) {
        publish(&oortd, "nums", values.iter().map(|v| HashMap::from([("v".to_owned(), int(*v))])).collect()).await;
        assert_eq!(next_row(totals).await["total"], expected, "{aggregate}({values:?})");
    }

    // Its source feeds its sink.
    let (source, datasource, field, first) = example.source;
    create_stream(&oortd, &format!(r#"CREATE STREAM ticks () WITH (TYPE="{source}", DATASOURCE="{datasource}")"#))
        .await;
    let out = dir.path().join("out.jsonl");
    let sink = action(example.sink, &[("path", &out.display().to_string())]);
    create_rule(&oortd, "pipe", &format!("SELECT {field} FROM ticks"), sink).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let lines = loop {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        if lines.len() >= 3 {
            break lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "{source} → {}: {} lines in time", example.sink, lines.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let values: Vec<i64> = lines.iter().map(|l| l[field].as_i64().unwrap_or_else(|| panic!("{l}"))).collect();
    assert_eq!(values, [first, first + 1, first + 2], "{source} emitted 3 events, {} wrote each once", example.sink);
}

#[tokio::test]
async fn the_python_sdk_example_serves_a_function_an_aggregate_a_source_and_a_sink() {
    run(Example {
        name: "pydemo",
        function: ("py_upper", string("abc"), string("ABC")),
        aggregate: Some(("py_total", [1, 2, 39], int(42))),
        source: ("pycounter", "ticks?interval_ms=20&count=3", "n", 0),
        sink: "pyfile",
        dependencies: &["grpcio", "grpcio_health_checking", "protobuf"],
    })
    .await;
}

#[tokio::test]
async fn the_go_sdk_example_serves_a_function_an_aggregate_a_source_and_a_sink() {
    run(Example {
        name: "godemo",
        function: ("go_reverse", string("abc"), string("cba")),
        aggregate: Some(("go_max", [1, 42, 7], int(42))),
        source: ("goticker", "ticks?interval_ms=20&count=3", "tick", 1),
        sink: "gofile",
        dependencies: &[],
    })
    .await;
}

#[tokio::test]
async fn a_plugin_written_without_an_sdk_in_node_serves_a_function_a_source_and_a_sink() {
    run(Example {
        name: "noderaw",
        function: ("node_double", int(21), int(42)),
        aggregate: None,
        source: ("nodeseq", "ticks?interval_ms=20&count=3", "seq", 1),
        sink: "nodelog",
        dependencies: &[],
    })
    .await;
}

#[tokio::test]
async fn a_python_plugin_whose_requirement_is_not_bundled_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("needy.zip");
    let manifest = serde_json::json!({
        "name": "needy", "version": "1.0.0", "kind": "portable", "language": "python", "executable": "main.py",
        "requirements": ["oort-no-such-package==1.0"],
        "functions": [{"name": "needy_f"}],
    });
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    for (name, content) in [("manifest.json", manifest.to_string()), ("main.py", "raise SystemExit(1)\n".to_owned())] {
        writer.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut writer, content.as_bytes()).unwrap();
    }
    writer.finish().unwrap();
    let oortd = start(dir.path()).await;
    let request = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "needy".into(),
        source: Some(install_plugin_request::Source::File(oortd.upload(&zip))),
    };
    let mut plugins = PluginServiceClient::new(oortd.channel().await);
    let error = plugins.install_plugin(request).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
    assert!(
        error.message().contains("requirement 'oort-no-such-package==1.0' failed")
            && error.message().contains("plugin_pip_index_url"),
        "{}",
        error.message()
    );
    let listed = plugins.list_plugins(oort_proto::v1::ListPluginsRequest::default()).await.unwrap().into_inner();
    assert!(listed.plugins.is_empty(), "nothing is installed: {listed:?}");
}
