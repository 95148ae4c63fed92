//! The `file` source; see [the module documentation](super).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::json::{JsonValue, value_to_json};
use oort_engine::{
    ConnectorError, Map, Payload, Source, SourceConfig, SourceEvent, SourceFactory, SourceOutput, Value,
};
use oort_policy::{FileRoots, PathError, PathUse};
use tokio_util::sync::CancellationToken;

/// Builds `file` sources, whose paths must lie inside the file roots.
pub struct FileSourceFactory(pub Arc<FileRoots>);

/// How the file's content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A JSON array, a JSON object, or JSON lines.
    Json,
    /// CSV with a header line, cells separated by this byte.
    Csv(u8),
}

/// A file source's configuration, from the stream's options.
#[derive(Debug, Clone, PartialEq)]
struct FileSourceConfig {
    /// The file or directory to read: resolved inside the file roots.
    path: PathBuf,
    /// `FORMAT` (and `DELIMITER` for CSV).
    format: Format,
    /// `INTERVAL`: time between two reads; `None` reads once.
    interval: Option<Duration>,
    /// `SEND_INTERVAL`: time between two events; `None` sends at once.
    send_interval: Option<Duration>,
    /// `IGNORE_START_LINES`: non-blank lines skipped at the start.
    ignore_start_lines: usize,
    /// `IGNORE_END_LINES`: non-blank lines skipped at the end.
    ignore_end_lines: usize,
}

impl FileSourceConfig {
    fn from_source_config(config: &SourceConfig, roots: &FileRoots) -> Result<Self, ConnectorError> {
        if config.datasource.is_empty() {
            return Err(ConnectorError::Config("a file stream needs DATASOURCE, the path of the file to read".into()));
        }
        let option = |key: &str| config.options.get(key).map(String::as_str).filter(|v| !v.is_empty());
        let mut path = PathBuf::from(&config.datasource);
        if path.is_relative()
            && let Some(base) = option("FILE_BASE")
        {
            path = Path::new(base).join(path);
        }
        let path = roots
            .resolve(&path.to_string_lossy(), PathUse::ReadFileOrDirectory)
            .map_err(|e| ConnectorError::Config(format!("file stream DATASOURCE: {e}")))?;
        let format = match option("FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Format::Json,
            Some("csv" | "delimited") => Format::Csv(match option("DELIMITER") {
                Some(d) => super::delimiter(d, "DELIMITER")?,
                None => b',',
            }),
            Some(other) => {
                return Err(ConnectorError::Config(format!(
                    "a file stream reads FORMAT \"json\" or \"csv\", not \"{other}\""
                )));
            }
        };
        let number = |key: &str| -> Result<u64, ConnectorError> {
            match option(key) {
                None => Ok(0),
                Some(text) => text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ConnectorError::Config(format!("{key} must be a non-negative integer, got {text:?}"))),
            }
        };
        let millis = |key: &str| number(key).map(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
        let lines = |key: &str| {
            number(key).and_then(|n| {
                usize::try_from(n).map_err(|_| ConnectorError::Config(format!("{key} is too large: {n}")))
            })
        };
        Ok(Self {
            path,
            format,
            interval: millis("INTERVAL")?,
            send_interval: millis("SEND_INTERVAL")?,
            ignore_start_lines: lines("IGNORE_START_LINES")?,
            ignore_end_lines: lines("IGNORE_END_LINES")?,
        })
    }
}

struct FileSource {
    config: FileSourceConfig,
    roots: Arc<FileRoots>,
}

impl SourceFactory for FileSourceFactory {
    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let config = FileSourceConfig::from_source_config(config, &self.0)?;
        Ok(Box::new(FileSource { config, roots: Arc::clone(&self.0) }))
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        FileSourceConfig::from_source_config(config, &self.0).map(drop)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let config = &self.config;
        loop {
            for (path, content) in read_all(config.path.clone(), Arc::clone(&self.roots)).await? {
                let content = skip_lines(&content, config.ignore_start_lines, config.ignore_end_lines);
                let payloads = match config.format {
                    Format::Json => parse_json(&content),
                    Format::Csv(delimiter) => parse_csv(&content, delimiter, &path)?,
                };
                let meta = Arc::new(BTreeMap::from([("file".to_owned(), path.display().to_string())]));
                for (i, payload) in payloads.into_iter().enumerate() {
                    if i > 0
                        && let Some(pause) = config.send_interval
                    {
                        tokio::select! {
                            () = cancel.cancelled() => return Ok(()),
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                    let event = SourceEvent { payload, meta: Arc::clone(&meta), timestamp: None };
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        sent = out.send_waiting(event) => if sent.is_err() { return Ok(()) },
                    }
                }
            }
            let Some(interval) = config.interval else { return Ok(()) };
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Reads the file, or every regular file of the directory in name order.
/// Reads the file, or every regular file of the directory. Each path is
/// checked against the roots again as it is read: a symlink put in since the
/// stream was created is refused (the path) or skipped with a warning (an entry).
async fn read_all(path: PathBuf, roots: Arc<FileRoots>) -> Result<Vec<(PathBuf, Vec<u8>)>, ConnectorError> {
    tokio::task::spawn_blocking(move || {
        let failed = |path: &Path, e: std::io::Error| ConnectorError::External(format!("file {}: {e}", path.display()));
        let path = roots
            .resolve(&path.to_string_lossy(), PathUse::ReadFileOrDirectory)
            .map_err(|e| ConnectorError::External(e.to_string()))?;
        let metadata = std::fs::metadata(&path).map_err(|e| failed(&path, e))?;
        if !metadata.is_dir() {
            let content = std::fs::read(&path).map_err(|e| failed(&path, e))?;
            return Ok(vec![(path, content)]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(|e| failed(&path, e))? {
            let entry = entry.map_err(|e| failed(&path, e))?;
            match roots.resolve(&entry.path().to_string_lossy(), PathUse::ReadFile) {
                Ok(file) => files.push(file),
                Err(PathError::NotRegular { .. }) => {}
                Err(error) => tracing::warn!(%error, "file source: entry skipped"),
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|file| std::fs::read(&file).map(|content| (file.clone(), content)).map_err(|e| failed(&file, e)))
            .collect()
    })
    .await
    .map_err(|e| ConnectorError::External(format!("reading a file failed: {e}")))?
}

/// The content without its first `start` and last `end` non-blank lines (and
/// without blank lines, when anything is skipped).
fn skip_lines(content: &[u8], start: usize, end: usize) -> Cow<'_, [u8]> {
    if start == 0 && end == 0 {
        return Cow::Borrowed(content);
    }
    let lines: Vec<&[u8]> = content.split(|b| *b == b'\n').filter(|line| !line.trim_ascii().is_empty()).collect();
    let kept = lines.get(start..lines.len().saturating_sub(end)).unwrap_or_default();
    Cow::Owned(kept.join(&b'\n'))
}

/// JSON content: a whole document (an array of objects, or one object), else
/// JSON lines. What is not an object is passed on as bytes for the decoder to reject.
fn parse_json(content: &[u8]) -> Vec<Payload> {
    let mut payloads = Vec::new();
    let trimmed = content.trim_ascii();
    if trimmed.is_empty() {
        return payloads;
    }
    if let Ok(JsonValue(whole)) = serde_json::from_slice::<JsonValue>(trimmed) {
        push_value(whole, trimmed, &mut payloads);
        return payloads;
    }
    for line in trimmed.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JsonValue>(line) {
            Ok(JsonValue(value)) => push_value(value, line, &mut payloads),
            Err(_) => payloads.push(Payload::Bytes(line.to_vec())),
        }
    }
    payloads
}

/// An object is a row; an array, one row per element; anything else its text.
fn push_value(value: Value, text: &[u8], payloads: &mut Vec<Payload>) {
    match value {
        Value::Map(map) => payloads.push(Payload::Map(Arc::unwrap_or_clone(map))),
        Value::List(items) => {
            for item in Arc::unwrap_or_clone(items) {
                match item {
                    Value::Map(map) => payloads.push(Payload::Map(Arc::unwrap_or_clone(map))),
                    other => payloads.push(Payload::Bytes(value_to_json(&other).to_string().into_bytes())),
                }
            }
        }
        _ => payloads.push(Payload::Bytes(text.to_vec())),
    }
}

/// CSV content with a header line: one row per record.
fn parse_csv(content: &[u8], delimiter: u8, path: &Path) -> Result<Vec<Payload>, ConnectorError> {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(content);
    let header: Vec<Arc<str>> = reader
        .headers()
        .map_err(|e| ConnectorError::External(format!("file {}: invalid CSV header: {e}", path.display())))?
        .iter()
        .map(Arc::from)
        .collect();
    let mut payloads = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let row: Map = header.iter().cloned().zip(record.iter().map(cell_value)).collect();
                payloads.push(Payload::Map(row));
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "skipping a malformed CSV record"),
        }
    }
    Ok(payloads)
}

/// A CSV cell: BIGINT, else FLOAT, else BOOLEAN, else STRING; empty is NULL.
fn cell_value(cell: &str) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Value::Int(i);
    }
    // A digit is required so that words like "inf" or "NaN" stay strings.
    if cell.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = cell.parse::<f64>()
    {
        return Value::Float(f);
    }
    if cell.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if cell.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    Value::from(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> SourceConfig {
        SourceConfig {
            stream: "s".into(),
            datasource: "data.json".into(),
            options: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            rule_id: "r".into(),
        }
    }

    fn roots() -> Arc<FileRoots> {
        Arc::new(FileRoots::create([std::env::temp_dir()]).unwrap())
    }

    fn config_error(config: &SourceConfig) -> String {
        match FileSourceFactory(roots()).build(config) {
            Err(ConnectorError::Config(m)) => m,
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("expected a config error"),
        }
    }

    fn maps(payloads: &[Payload]) -> Vec<serde_json::Value> {
        payloads
            .iter()
            .map(|p| match p {
                Payload::Map(m) => oort_engine::json::map_to_json(m),
                Payload::Bytes(b) => serde_json::Value::String(format!("bytes:{}", String::from_utf8_lossy(b))),
            })
            .collect()
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
        let error = FileSourceFactory(roots()).validate(&passwd).unwrap_err();
        assert!(
            matches!(&error, ConnectorError::Config(m) if m.contains("outside the allowed directories")),
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

    #[test]
    fn json_array_object_and_lines() {
        let array = parse_json(b" [{\"a\": 1}, {\"a\": 2.5, \"b\": [true]}, 3]\n");
        assert_eq!(
            maps(&array),
            vec![serde_json::json!({"a": 1}), serde_json::json!({"a": 2.5, "b": [true]}), "bytes:3".into()]
        );
        let pretty = parse_json(b"{\n  \"a\": 1\n}\n");
        assert_eq!(maps(&pretty), vec![serde_json::json!({"a": 1})]);
        let lines = parse_json(b"{\"a\": 1}\n\n{oops\r\n[{\"a\": 2}, {\"a\": 3}]\n\"text\"\n");
        assert_eq!(
            maps(&lines),
            vec![
                serde_json::json!({"a": 1}),
                "bytes:{oops".into(),
                serde_json::json!({"a": 2}),
                serde_json::json!({"a": 3}),
                "bytes:\"text\"".into(),
            ]
        );
        assert!(parse_json(b"  \n").is_empty());
    }

    #[test]
    fn csv_cells_are_typed() {
        let content = b"id,name,t,ok,note\n1,a,20.5,true,\n2,b,1e3,FALSE,inf\n3,c,x\n-4,\"d,e\",-0.5,yes,007\n";
        let rows = parse_csv(content, b',', Path::new("x.csv")).unwrap();
        assert_eq!(
            maps(&rows),
            vec![
                serde_json::json!({"id": 1, "name": "a", "t": 20.5, "ok": true, "note": null}),
                serde_json::json!({"id": 2, "name": "b", "t": 1000.0, "ok": false, "note": "inf"}),
                serde_json::json!({"id": -4, "name": "d,e", "t": -0.5, "ok": "yes", "note": 7}),
            ]
        );
        let rows = parse_csv(b"id name\n1 John\n", b' ', Path::new("x.csv")).unwrap();
        assert_eq!(maps(&rows), vec![serde_json::json!({"id": 1, "name": "John"})]);
        assert!(parse_csv(b"", b',', Path::new("x.csv")).unwrap().is_empty());
    }

    #[test]
    fn lines_are_skipped_at_both_ends() {
        let content = b"# comment\n\nid,v\n1,2\n\n3,4\n# end\n";
        assert_eq!(skip_lines(content, 1, 1).as_ref(), b"id,v\n1,2\n3,4");
        assert_eq!(skip_lines(content, 0, 0).as_ref(), content);
        assert!(skip_lines(content, 10, 0).is_empty());
        assert!(skip_lines(content, 3, 3).is_empty());
    }
}
