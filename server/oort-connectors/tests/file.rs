//! The `file` source and sink against real files in a temporary directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oort_connectors::file::{FileSinkFactory, FileSourceFactory};
use oort_engine::json::{json_to_value, map_to_json};
use oort_engine::{
    ConnectorError, Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceEvent, SourceFactory, SourceOutput,
    Value,
};
use oort_policy::FileRoots;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn row(json: serde_json::Value) -> Map {
    match json_to_value(&json) {
        Value::Map(map) => Arc::unwrap_or_clone(map),
        other => panic!("not an object: {other:?}"),
    }
}

/// Every temporary directory of these tests is under the roots.
fn roots() -> Arc<FileRoots> {
    Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap())
}

fn sink_config(props: serde_json::Value) -> SinkConfig {
    let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
    SinkConfig { sink_type: "file".into(), props, rule_id: "r".into(), ..Default::default() }
}

fn source_config(path: &Path, options: &[(&str, &str)]) -> SourceConfig {
    SourceConfig {
        stream: "s".into(),
        datasource: path.display().to_string(),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rule_id: "r".into(),
        ..Default::default()
    }
}

/// Writes results with a file sink built from `props`.
async fn write(props: serde_json::Value, results: &[Vec<Map>]) {
    let mut sink = FileSinkFactory(roots()).build(&sink_config(props)).expect("sink config");
    sink.open().await.expect("open");
    for rows in results {
        sink.collect(rows).await.expect("collect");
    }
    sink.close().await.expect("close");
}

/// Runs a file source until it ends (or `limit` events arrived), returning the events.
async fn read(config: SourceConfig, limit: usize) -> Result<Vec<SourceEvent>, ConnectorError> {
    let source = FileSourceFactory::new(roots()).build(&config)?;
    let (tx, mut rx) = SourceOutput::channel(16);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(tx, cancel.clone()));
    let mut events = Vec::new();
    while events.len() < limit {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break,
            Err(_) => panic!("the source sent nothing for 5 s"),
        }
    }
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), task).await.expect("the source stops").expect("join");
    result.map(|()| events)
}

/// The rows a schemaless stream's rule gets from the events; what its decoder
/// rejects is shown as `{"bytes": ...}`.
fn jsons(events: &[SourceEvent]) -> Vec<serde_json::Value> {
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s () WITH (DATASOURCE="s")"#).unwrap();
    let decoder = oort_engine::decode::Decoder::new(&stream);
    events
        .iter()
        .map(|e| match decoder.decode(e.clone()) {
            Ok(row) => map_to_json(&row),
            Err(_) => match &e.payload {
                Payload::Bytes(b) => json!({"bytes": String::from_utf8_lossy(b)}),
                Payload::Map(m) => panic!("a map is always decoded: {m:?}"),
            },
        })
        .collect()
}

#[tokio::test]
async fn json_lines_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/out.jsonl");
    let first = vec![row(json!({"id": 1, "t": 20.5, "tags": ["a"]})), row(json!({"id": 2, "t": 21.0, "tags": []}))];
    let second = vec![row(json!({"id": 3, "t": null, "ok": true}))];
    // One JSON array per result, then (appending) one object per row.
    write(json!({"path": path.display().to_string()}), std::slice::from_ref(&first)).await;
    write(json!({"path": path.display().to_string(), "sendSingle": true}), &[first.clone(), second.clone()]).await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with(r#"[{"id":1,"t":20.5,"tags":["a"]},{"id":2,"t":21.0,"tags":[]}]"#), "{text}");

    let events = read(source_config(&path, &[]), usize::MAX).await.unwrap();
    let expected: Vec<serde_json::Value> = first.iter().chain(&first).chain(&second).map(map_to_json).collect();
    assert_eq!(jsons(&events), expected);
    assert_eq!(events[0].meta.get("file").map(String::as_str), Some(path.display().to_string().as_str()));
    assert_eq!(events[0].timestamp, None);
}

#[tokio::test]
async fn csv_round_trip_with_fields_and_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let props = json!({"path": path.display().to_string(), "fileType": "csv", "hasHeader": true, "fields": ["name", "id", "t", "ok"]});
    let rows = vec![
        row(json!({"id": 1, "name": "a,b", "t": 20.5, "ok": true, "dropped": 0})),
        row(json!({"id": 2, "name": "c", "t": null, "ok": false})),
    ];
    write(props.clone(), std::slice::from_ref(&rows)).await;
    // A second sink appending to the file does not write the header again.
    write(props, &[vec![row(json!({"id": 3, "name": "d", "t": 1.0}))]]).await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "name,id,t,ok\n\"a,b\",1,20.5,true\nc,2,,false\nd,3,1.0,\n");

    let events = read(source_config(&path, &[("FORMAT", "csv")]), usize::MAX).await.unwrap();
    assert_eq!(
        jsons(&events),
        vec![
            json!({"id": 1, "name": "a,b", "t": 20.5, "ok": true}),
            json!({"id": 2, "name": "c", "t": null, "ok": false}),
            json!({"id": 3, "name": "d", "t": 1.0, "ok": null}),
        ]
    );
}

#[tokio::test]
async fn csv_with_a_delimiter_and_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let props = json!({"path": path.display().to_string(), "fileType": "csv", "delimiter": ";"});
    write(props, &[vec![row(json!({"b": 2, "a": "x"})), row(json!({"a": "y", "c": 9}))]]).await;
    // Columns of the first row, alphabetical; a missing one empty, an extra one dropped.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x;2\ny;\n");
}

#[tokio::test]
async fn a_template_writes_one_line_per_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let props =
        json!({"path": path.display().to_string(), "sendSingle": true, "dataTemplate": "{{ id }}:{{ name | upper }}"});
    write(props, &[vec![row(json!({"id": 1, "name": "a"})), row(json!({"id": 2, "name": "b"}))]]).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1:A\n2:B\n");
}

#[tokio::test]
async fn a_result_that_cannot_be_encoded_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let props = json!({"path": path.display().to_string(), "sendSingle": true, "format": "binary"});
    let mut bytes = Map::new();
    bytes.insert("b".into(), Value::Bytes(b"raw"[..].into()));
    write(props, &[vec![row(json!({"not": "bytes"}))], vec![bytes]]).await;
    assert_eq!(std::fs::read(&path).unwrap(), b"raw\n");
}

#[tokio::test]
async fn writing_where_no_file_can_be_is_external() {
    let dir = tempfile::tempdir().unwrap();
    let error = FileSinkFactory(roots()).build(&sink_config(json!({"path": dir.path().display().to_string()})));
    assert!(matches!(error, Err(ConnectorError::Config(m)) if m.contains("not a regular file")));
    // What became a directory after the rule was made fails when opened.
    let path = dir.path().join("out.jsonl");
    let mut sink = FileSinkFactory(roots()).build(&sink_config(json!({"path": path.display().to_string()}))).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = sink.open().await.unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains(&path.display().to_string())), "{err:?}");
    let err = sink.collect(&[row(json!({"a": 1}))]).await.unwrap_err();
    assert!(matches!(err, ConnectorError::External(_)));
}

#[tokio::test]
async fn a_symlink_swapped_in_after_the_rule_was_made_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("root");
    std::fs::create_dir(&inner).unwrap();
    let roots = Arc::new(FileRoots::create([inner.clone()]).unwrap());
    let mut sink = FileSinkFactory(roots).build(&sink_config(json!({"path": "out.jsonl"}))).unwrap();
    std::fs::write(dir.path().join("victim"), "").unwrap();
    std::os::unix::fs::symlink(dir.path().join("victim"), inner.join("out.jsonl")).unwrap();
    let err = sink.open().await.unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains("outside")), "{err:?}");
    assert_eq!(std::fs::read(dir.path().join("victim")).unwrap(), b"");
}

#[tokio::test]
async fn a_missing_file_is_external_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    let err = read(source_config(&path, &[]), usize::MAX).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains("nope.json")), "{err:?}");
}

#[tokio::test]
async fn relative_paths_resolve_against_file_base() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.json"), r#"[{"a": 1}, {"a": 2}]"#).unwrap();
    let base = dir.path().display().to_string();
    let events = read(source_config(Path::new("in.json"), &[("FILE_BASE", &base)]), usize::MAX).await.unwrap();
    assert_eq!(jsons(&events), vec![json!({"a": 1}), json!({"a": 2})]);
}

#[tokio::test]
async fn malformed_json_lines_go_to_the_decoder_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "{\"a\": 1}\n{\"a\": \n{\"a\": 3}\n").unwrap();
    let events = read(source_config(&path, &[]), usize::MAX).await.unwrap();
    assert_eq!(jsons(&events), vec![json!({"a": 1}), json!({"bytes": "{\"a\":"}), json!({"a": 3})]);
}

#[tokio::test]
async fn a_directory_is_read_file_by_file_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), "{\"f\": \"b\"}\n").unwrap();
    std::fs::write(dir.path().join("a.json"), "{\"f\": \"a\"}\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let events = read(source_config(dir.path(), &[]), usize::MAX).await.unwrap();
    assert_eq!(jsons(&events), vec![json!({"f": "a"}), json!({"f": "b"})]);
    assert!(events[1].meta["file"].ends_with("b.json"));
}

#[tokio::test]
async fn a_directory_entry_that_links_out_of_the_roots_is_skipped() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.json"), "{\"secret\": 1}\n").unwrap();
    let dir = tempfile::tempdir_in(outside.path()).unwrap();
    std::fs::write(dir.path().join("a.json"), "{\"f\": \"a\"}\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.json"), dir.path().join("b.json")).unwrap();
    // Only the inner directory is a root here.
    let config = source_config(dir.path(), &[]);
    let source = FileSourceFactory::new(Arc::new(FileRoots::create([dir.path().to_path_buf()]).unwrap()))
        .build(&config)
        .unwrap();
    let (tx, mut rx) = SourceOutput::channel(16);
    source.run(tx, CancellationToken::new()).await.unwrap();
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    assert_eq!(jsons(&events), vec![json!({"f": "a"})]);
}

#[tokio::test]
async fn interval_rereads_and_ignored_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "generated by a logger\nid|v\n1|x\n2|y\n-- end --\n").unwrap();
    let options = [
        ("FORMAT", "delimited"),
        ("DELIMITER", "|"),
        ("INTERVAL", "20"),
        ("SEND_INTERVAL", "5"),
        ("IGNORE_START_LINES", "1"),
        ("IGNORE_END_LINES", "1"),
    ];
    // Read twice: the source goes on until cancelled.
    let events = read(source_config(&path, &options), 4).await.unwrap();
    let one = [json!({"id": 1, "v": "x"}), json!({"id": 2, "v": "y"})];
    assert_eq!(jsons(&events), [one.clone(), one].concat());
}

#[tokio::test]
async fn registered_by_register_all() {
    let registry = oort_engine::ConnectorRegistry::new();
    let egress = Arc::new(oort_policy::EgressPolicy::default());
    let buses = oort_connectors::Buses::default();
    let builtins = oort_connectors::Builtins {
        buses: &buses,
        files: &roots(),
        egress: &egress,
        connections: &oort_connectors::connections::Connections::new(),
    };
    oort_connectors::register_all(&registry, &builtins);
    assert!(registry.source("file").is_some());
    assert!(registry.sink("file").is_some());
    assert!(registry.sink("rest").is_some());
}

#[tokio::test]
async fn a_restart_reads_on_from_the_seek_point_its_checkpoint_saved() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    // Lines of one width, so that one can be replaced without moving the others.
    let line = |n: usize| format!("{{\"n\":{n:>6}}}\n");
    std::fs::write(dir.path().join("a.json"), line(0)).unwrap();
    let b: String = (1..=600).map(line).collect();
    std::fs::write(dir.path().join("b.json"), &b).unwrap();
    let factory = FileSourceFactory::new(roots());
    let config = source_config(dir.path(), &[]);
    // A rule with checkpoints reads it all: its hold notes the seek points.
    let hold = factory.positions(&config).unwrap().expect("a file read once replays");
    let source = factory.build(&config).unwrap();
    let (tx, mut rx) = SourceOutput::channel(1024);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(tx, cancel.clone()));
    let mut last = 0;
    while last < 601 {
        last = rx.recv().await.unwrap().position.unwrap();
    }
    task.await.unwrap().unwrap();
    // The checkpoint covers event 401 (line 400 of b.json).
    let state = hold.resume_state(401).expect("a seek point");

    // Before the restart, what lies before the seek point changes: read, it
    // would shift every number after it.
    std::fs::write(dir.path().join("a.json"), format!("{}{}", line(0), line(0))).unwrap();
    let mut changed = b.into_bytes();
    changed[..13].copy_from_slice(b"[{\"n\":0},{}]\n");
    std::fs::write(dir.path().join("b.json"), changed).unwrap();
    let restarted =
        SourceConfig { resume_after: Some(401), resume_state: Some(state), ..source_config(dir.path(), &[]) };
    let events = read(restarted, 10).await.unwrap();
    let first = jsons(&events[..1]);
    assert_eq!(first, vec![json!({"n": 401})], "read on from the seek point in b.json, not from the start");
    assert_eq!(events[0].position, Some(402));
}
