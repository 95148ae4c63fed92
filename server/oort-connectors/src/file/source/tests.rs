//! Tests of the parent module.

use std::time::Duration;

use super::*;

fn options(pairs: &[(&str, &str)]) -> SourceConfig {
    SourceConfig {
        stream: "s".into(),
        datasource: "data.json".into(),
        options: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rule_id: "r".into(),
        ..Default::default()
    }
}

fn roots() -> Arc<FileRoots> {
    Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap())
}

fn config_error(config: &SourceConfig) -> String {
    match FileSourceFactory::new(roots()).build(config) {
        Err(ConnectorError::Config(m) | ConnectorError::Option { message: m, .. }) => m,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[test]
fn config_defaults_and_options() {
    let config = FileSourceConfig::from_source_config(&options(&[]), &roots()).unwrap();
    assert_eq!(
        config,
        FileSourceConfig {
            path: roots().roots()[0].join("data.json"),
            format: Format::Json,
            interval: None,
            send_interval: None,
            ignore_start_lines: 0,
            ignore_end_lines: 0,
        }
    );
    let base = std::env::temp_dir().join("srv-data").display().to_string();
    let config = FileSourceConfig::from_source_config(
        &options(&[
            ("FORMAT", "DELIMITED"),
            ("DELIMITER", ";"),
            ("FILE_BASE", &base),
            ("INTERVAL", "1000"),
            ("SEND_INTERVAL", "0"),
            ("IGNORE_START_LINES", "2"),
            ("IGNORE_END_LINES", "1"),
        ]),
        &roots(),
    )
    .unwrap();
    assert_eq!(config.path, roots().roots()[0].join("srv-data/data.json"));
    assert_eq!(config.format, Format::Csv(b';'));
    assert_eq!(config.interval, Some(Duration::from_secs(1)));
    assert_eq!(config.send_interval, None);
    assert_eq!((config.ignore_start_lines, config.ignore_end_lines), (2, 1));
    // An absolute DATASOURCE ignores FILE_BASE.
    let mut absolute = options(&[("FILE_BASE", &base), ("FORMAT", "csv")]);
    absolute.datasource = roots().roots()[0].join("x.csv").display().to_string();
    let config = FileSourceConfig::from_source_config(&absolute, &roots()).unwrap();
    assert_eq!((config.path, config.format), (roots().roots()[0].join("x.csv"), Format::Csv(b',')));
}

#[test]
fn paths_outside_the_roots_are_refused_when_validated() {
    let mut passwd = options(&[("FORMAT", "csv"), ("DELIMITER", ":")]);
    passwd.datasource = "/etc/passwd".into();
    let error = FileSourceFactory::new(roots()).validate(&passwd).unwrap_err();
    assert!(
        matches!(&error, ConnectorError::Option { key, message } if key == "DATASOURCE" && message.contains("outside the allowed directories")),
        "{error}"
    );
    passwd.datasource = "../../../../etc/passwd".into();
    assert!(config_error(&passwd).contains("outside"));
}

#[test]
fn config_errors() {
    let mut no_path = options(&[]);
    no_path.datasource.clear();
    assert!(config_error(&no_path).contains("DATASOURCE"));
    assert!(config_error(&options(&[("FORMAT", "protobuf")])).contains("\"protobuf\""));
    assert!(config_error(&options(&[("FORMAT", "csv"), ("DELIMITER", "::")])).contains("DELIMITER"));
    assert!(config_error(&options(&[("INTERVAL", "-1")])).contains("INTERVAL"));
    assert!(config_error(&options(&[("SEND_INTERVAL", "soon")])).contains("SEND_INTERVAL"));
    assert!(config_error(&options(&[("IGNORE_END_LINES", "1.5")])).contains("IGNORE_END_LINES"));
}

/// What the reading functions emit: payloads, and `skipped:` notes.
#[derive(Default)]
struct Collected(Vec<Result<Payload, String>>);

impl Emit for Collected {
    fn event(&mut self, payload: Payload) -> Result<(), Halt> {
        self.0.push(Ok(payload));
        Ok(())
    }
    fn skipped(&mut self, why: String) -> Result<(), Halt> {
        self.0.push(Err(why));
        Ok(())
    }
}

/// The emitted rows as JSON: a JSON object given as bytes (what the rule's
/// decoder reads) is shown parsed, other bytes as `bytes:…`, notes as `skipped:…`.
fn rows(collected: &Collected) -> Vec<serde_json::Value> {
    collected
        .0
        .iter()
        .map(|item| match item {
            Ok(Payload::Map(m)) => oort_engine::json::map_to_json(m),
            Ok(Payload::Bytes(b)) => match serde_json::from_slice::<serde_json::Value>(b) {
                Ok(object @ serde_json::Value::Object(_)) => object,
                _ => serde_json::Value::String(format!("bytes:{}", String::from_utf8_lossy(b))),
            },
            Err(why) => serde_json::Value::String(format!("skipped:{why}")),
        })
        .collect()
}

fn json(content: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let mut collected = Collected::default();
    match read_json(content, Path::new("x.json"), &mut collected) {
        Ok(()) => Ok(rows(&collected)),
        Err(Halt::Failed(e)) => Err(e.to_string()),
        Err(Halt::Stopped) => unreachable!(),
    }
}

fn csv(content: &[u8], delimiter: u8, config: &FileSourceConfig) -> Vec<serde_json::Value> {
    let mut collected = Collected::default();
    let reader = KeptLines::new(content, config);
    read_csv(reader, delimiter, Path::new("x.csv"), &mut collected, None).unwrap();
    rows(&collected)
}

fn plain() -> FileSourceConfig {
    FileSourceConfig::from_source_config(&options(&[]), &roots()).unwrap()
}

#[test]
fn json_array_object_and_lines() {
    use serde_json::json as j;
    let array = json(b" [{\"a\": 1}, {\"a\": 2.5, \"b\": [true]}, 3]\n").unwrap();
    assert_eq!(array, vec![j!({"a": 1}), j!({"a": 2.5, "b": [true]}), "bytes:3".into()]);
    let pretty = json(b"{\n  \"a\": 1\n}\n").unwrap();
    assert_eq!(pretty, vec![j!({"a": 1})]);
    let pretty_array = json(b"\n[\n  {\"a\": 1},\n  {\"a\": 2}\n]\n").unwrap();
    assert_eq!(pretty_array, vec![j!({"a": 1}), j!({"a": 2})]);
    let lines = json(b"{\"a\": 1}\n\n{oops\r\n[{\"a\": 2}, {\"a\": 3}]\n\"text\"\n").unwrap();
    assert_eq!(lines, vec![j!({"a": 1}), "bytes:{oops".into(), j!({"a": 2}), j!({"a": 3}), "bytes:\"text\"".into()]);
    assert!(json(b"  \n").unwrap().is_empty());
    // A document that breaks off: the rows before the error were emitted, the error names where.
    let error = json(b"[\n{\"a\": 1},\n{\"a\": }\n]").unwrap_err();
    assert!(error.contains("x.json") && error.contains("line 3"), "{error}");
    let error = json(b"\"a\nb\"").unwrap_err();
    assert!(error.contains("invalid JSON document"), "{error}");
}

#[test]
fn an_over_long_line_is_skipped_and_counted_and_an_over_long_element_ends_the_read() {
    let mut content = b"{\"a\": 1}\n{\"pad\": \"".to_vec();
    content.resize(content.len() + MAX_RECORD_BYTES, b'x');
    content.extend_from_slice(b"\"}\n{\"a\": 2}\n");
    let got = json(&content).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!((&got[0], &got[2]), (&serde_json::json!({"a": 1}), &serde_json::json!({"a": 2})));
    assert!(got[1].as_str().unwrap().contains("line 2 is longer than 16 MiB"), "{:?}", got[1]);

    let mut document = b"[\n{\"a\": 1},\n{\"pad\": \"".to_vec();
    document.resize(document.len() + MAX_RECORD_BYTES + (64 << 10), b'x');
    document.extend_from_slice(b"\"}\n]");
    let error = json(&document).unwrap_err();
    assert!(error.contains("longer than 16 MiB"), "{error}");
}

#[test]
fn csv_cells_are_typed_and_bad_records_counted() {
    use serde_json::json as j;
    let content = b"id,name,t,ok,note\n1,a,20.5,true,\n2,b,1e3,FALSE,inf\n3,c,x\n-4,\"d,e\",-0.5,yes,007\n";
    let rows = csv(content, b',', &plain());
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], j!({"id": 1, "name": "a", "t": 20.5, "ok": true, "note": null}));
    assert_eq!(rows[1], j!({"id": 2, "name": "b", "t": 1000.0, "ok": false, "note": "inf"}));
    assert!(rows[2].as_str().unwrap().starts_with("skipped:file x.csv: malformed CSV record"), "{:?}", rows[2]);
    assert_eq!(rows[3], j!({"id": -4, "name": "d,e", "t": -0.5, "ok": "yes", "note": 7}));
    assert_eq!(csv(b"id name\n1 John\n", b' ', &plain()), vec![j!({"id": 1, "name": "John"})]);
    assert!(csv(b"", b',', &plain()).is_empty());
}

#[test]
fn lines_are_skipped_at_both_ends() {
    let content = b"# comment\n\nid,v\n1,2\n\n3,4\n# end\n";
    let kept = |start, end| {
        let config = FileSourceConfig { ignore_start_lines: start, ignore_end_lines: end, ..plain() };
        let mut text = String::new();
        KeptLines::new(&content[..], &config).read_to_string(&mut text).unwrap();
        text
    };
    assert_eq!(kept(1, 1), "id,v\n1,2\n3,4\n");
    assert_eq!(kept(0, 0), String::from_utf8_lossy(content));
    assert_eq!(kept(10, 0), "");
    assert_eq!(kept(3, 3), "");
    assert_eq!(kept(0, 1), "# comment\nid,v\n1,2\n3,4\n");
}

/// What a read emits, with the record starts it notes.
#[derive(Default)]
struct WithStarts {
    rows: Collected,
    starts: Vec<u64>,
}

impl Emit for WithStarts {
    fn record_start(&mut self, offset: u64) {
        self.starts.push(offset);
    }
    fn event(&mut self, payload: Payload) -> Result<(), Halt> {
        self.rows.event(payload)
    }
    fn skipped(&mut self, why: String) -> Result<(), Halt> {
        self.rows.skipped(why)
    }
}

#[test]
fn records_start_where_a_read_can_start_again() {
    use serde_json::json as j;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let read = |name: &str, content: &str, config: &FileSourceConfig, offset: u64| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let mut emitted = WithStarts::default();
        read_file(&path, config, offset, &mut emitted).unwrap_or_else(|_| panic!("{name} read"));
        (rows(&emitted.rows), emitted.starts)
    };
    let lines = "\n{\"n\":1}\n[{\"n\":2},{\"n\":3}]\n{\"n\":4}\n";
    let (all, starts) = read("a.json", lines, &plain(), 0);
    assert_eq!(all.len(), 4);
    assert_eq!(starts, [0, 1, 9, 27], "the file, then each line that is not blank");
    let (rest, _) = read("a.json", lines, &plain(), 9);
    assert_eq!(rest, [j!({"n": 2}), j!({"n": 3}), j!({"n": 4})]);

    let csv_config = FileSourceConfig { format: Format::Csv(b','), ..plain() };
    let table = "id,v\n1,a\n2,b\n3,c\n";
    let (_, starts) = read("t.csv", table, &csv_config, 0);
    assert_eq!(starts, [0, 5, 9, 13]);
    let (rest, starts) = read("t.csv", table, &csv_config, 9);
    assert_eq!(rest, [j!({"id": 2, "v": "b"}), j!({"id": 3, "v": "c"})], "the header is read again first");
    assert_eq!(starts, [9, 9, 13]);

    // Lines ignored: the kept lines' offsets are not the file's; only the file's start is one.
    let skipping = FileSourceConfig { ignore_start_lines: 1, ..plain() };
    let (kept, starts) = read("a.json", lines, &skipping, 0);
    assert_eq!((kept.len(), starts), (3, vec![0]));
}
