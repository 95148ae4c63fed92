//! Tests of the file sink.

use super::*;
use serde_json::json;

fn config(props: serde_json::Value) -> SinkConfig {
    let serde_json::Value::Object(props) = props else { panic!("props must be an object") };
    SinkConfig { sink_type: "file".into(), props, rule_id: "r".into(), ..Default::default() }
}

fn factory() -> FileSinkFactory {
    FileSinkFactory(Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap()))
}

fn config_error(props: serde_json::Value) -> String {
    match factory().build(&config(props)) {
        Err(ConnectorError::Config(m) | ConnectorError::Option { message: m, .. }) => m,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[test]
fn config_errors() {
    assert!(config_error(json!({})).contains("`path`"));
    assert!(config_error(json!({"path": ""})).contains("`path`"));
    assert!(config_error(json!({"path": 3})).contains("property `path`"));
    assert!(config_error(json!({"path": "{{.device.csv"})).contains("sink property `path`"));
    assert!(config_error(json!({"path": "a", "fileType": "json"})).contains("not supported yet"));
    assert!(config_error(json!({"path": "a", "fileType": "parquet"})).contains("unknown fileType"));
    assert!(config_error(json!({"path": "a", "hasHeader": "yes"})).contains("property `hasHeader`"));
    assert!(config_error(json!({"path": "a", "fileType": "csv", "delimiter": "ab"})).contains("delimiter"));
    assert!(config_error(json!({"path": "a", "fileType": "csv", "dataTemplate": "x"})).contains("dataTemplate"));
    assert!(config_error(json!({"path": "a", "rollingCount": 10, "rollingNamePattern": "none"})).contains("none"));
    assert!(config_error(json!({"path": "a", "dataTemplate": "{% if %}"})).contains("dataTemplate"));
    // eKuiper's flush interval and rolling defaults are accepted.
    assert!(factory().build(&config(json!({"path": "a", "interval": 1000, "rollingCount": 0}))).is_ok());
    assert!(config_error(json!({"path": "a", "interval": -1})).contains("interval"));
    assert!(config_error(json!({"path": "a", "interval": 3_600_001u64})).contains("at most"));
    assert!(config_error(json!({"path": "/root/.ssh/authorized_keys"})).contains("outside the allowed directories"));
    assert!(config_error(json!({"path": "../../../../../etc/cron.d/x"})).contains("outside"));
}

#[test]
fn cells() {
    assert_eq!(cell(&Value::Null), "");
    assert_eq!(cell(&Value::from("a,b")), "a,b");
    assert_eq!(cell(&Value::Float(1.0)), "1.0");
    assert_eq!(cell(&Value::Bool(false)), "false");
    assert_eq!(cell(&Value::Bytes(b"hi"[..].into())), "aGk=");
    assert_eq!(cell(&Value::list(vec![Value::Int(1)])), "[1]");
}

fn row(n: i64) -> Map {
    Map::from([(Arc::from("n"), Value::Int(n))])
}

#[tokio::test]
async fn results_are_held_then_written_together_each_interval_at_a_checkpoint_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRoots::create([dir.path().to_path_buf()]).unwrap());
    let path = dir.path().join("out.jsonl");
    let build = |interval: u64| {
        let props = json!({"path": path.to_str().unwrap(), "sendSingle": true, "interval": interval});
        FileSinkFactory(Arc::clone(&roots)).build(&config(props)).unwrap()
    };
    let lines = || std::fs::read_to_string(&path).unwrap_or_default().lines().count();

    let mut sink = build(200);
    sink.open().await.unwrap();
    sink.collect(&[row(1)]).await.unwrap();
    sink.collect(&[row(2), row(3)]).await.unwrap();
    assert_eq!(lines(), 0, "held");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lines() < 3 {
        assert!(std::time::Instant::now() < deadline, "written within the interval");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sink.collect(&[row(4)]).await.unwrap();
    let mark = sink.flush().await.unwrap().expect("a length");
    assert_eq!(lines(), 4, "a checkpoint writes what is held");
    assert_eq!(u64::from_le_bytes(mark.try_into().unwrap()), std::fs::metadata(&path).unwrap().len());
    sink.collect(&[row(5)]).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(lines(), 5, "the stop writes what is held");

    let mut sink = build(0);
    sink.collect(&[row(6)]).await.unwrap();
    assert_eq!(lines(), 6, "interval 0: at once");
    sink.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().last(), Some(r#"{"n":6}"#));
}

/// The files of `dir`, by name, with their lines.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let mut files: Vec<(String, Vec<String>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let lines = std::fs::read_to_string(&p).unwrap().lines().map(str::to_owned).collect();
            (p.file_name().unwrap().to_string_lossy().into_owned(), lines)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn rolled_files_hold_rolling_count_payloads_and_a_replay_takes_back_what_followed_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRoots::create([dir.path().to_path_buf()]).unwrap());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let props =
        json!({"path": out.join("r.jsonl").to_str().unwrap(), "sendSingle": true, "interval": 0, "rollingCount": 2});
    let build = |rewind_to: Option<Vec<u8>>| {
        let mut config = config(props.clone());
        config.rewind_to = rewind_to;
        FileSinkFactory(Arc::clone(&roots)).build(&config).unwrap()
    };
    let mut sink = build(None);
    for n in 1..=3 {
        sink.collect(&[row(n)]).await.unwrap();
    }
    let mark = sink.flush().await.unwrap().unwrap();
    for n in 4..=6 {
        sink.collect(&[row(n)]).await.unwrap();
    }
    let written = files(&out);
    let counts: Vec<usize> = written.iter().map(|(_, lines)| lines.len()).collect();
    assert_eq!(counts, [2, 2, 2], "{written:?}");
    assert!(written.iter().all(|(name, _)| name.starts_with("r-") && name.ends_with(".jsonl")), "{written:?}");
    drop(sink);

    // The rule restarts from the checkpoint after row 3: the second file is
    // cut back to row 3, the third (started after it) removed.
    let mut again = build(Some(mark));
    again.collect(&[row(4)]).await.unwrap();
    let restored = files(&out);
    assert_eq!(restored.len(), 2, "{restored:?}");
    assert_eq!(restored[0].1, [r#"{"n":1}"#, r#"{"n":2}"#]);
    assert_eq!(restored[1].1, [r#"{"n":3}"#, r#"{"n":4}"#]);
}

#[tokio::test]
async fn a_file_older_than_rolling_interval_is_closed_when_the_next_result_comes() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRoots::create([dir.path().to_path_buf()]).unwrap());
    let props = json!({"path": "t.csv", "fileType": "csv", "hasHeader": true, "interval": 0,
                       "rollingInterval": 100, "rollingNamePattern": "prefix"});
    let mut sink = FileSinkFactory(Arc::clone(&roots)).build(&config(props)).unwrap();
    sink.collect(&[row(1)]).await.unwrap();
    sink.collect(&[row(2)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    sink.collect(&[row(3)]).await.unwrap();
    let written = files(dir.path());
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written.iter().all(|(name, _)| name.ends_with("-t.csv")), "{written:?}");
    assert_eq!(written[0].1, ["n", "1", "2"], "each file has its header");
    assert_eq!(written[1].1, ["n", "3"]);
}
