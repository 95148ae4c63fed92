//! The `file` sink; see [the module documentation](super).

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::json::value_to_json;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory, Value};
use oort_policy::{FileRoots, PathUse};
use serde::Deserialize;

use crate::encode::{Format, SinkEncoder, props_subset};

/// Builds `file` sinks, whose paths must lie inside the file roots.
pub struct FileSinkFactory(pub Arc<FileRoots>);

/// eKuiper's rolling properties: read only to refuse them when positive.
const ROLLING_KEYS: [&str; 2] = ["rollingInterval", "rollingCount"];

/// Bytes of results held before they are written, whatever the interval.
/// While the file cannot be written, the sink takes no more than this (and
/// one result): the rule waits, retrying, rather than growing without bound.
const BUFFER_BYTES: usize = 1 << 20;

/// The longest `interval`: an hour.
const MAX_INTERVAL_MS: u64 = 3_600_000;

/// The file sink's own properties, as written in a rule action.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct FileSinkProps {
    /// Milliseconds between two writes of the results held (eKuiper's flush
    /// interval); 0 writes each result as it comes.
    interval: Option<u64>,
    /// The file to append to: inside the file roots, relative to the first.
    path: Option<String>,
    /// `lines` (default) or `csv`.
    file_type: Option<String>,
    /// `csv`: write a header line into a new or empty file.
    has_header: bool,
    /// `csv`: the field separator, one character.
    delimiter: Option<String>,
    /// eKuiper's time-based rolling: not supported, rejected when positive.
    rolling_interval: Option<i64>,
    /// eKuiper's count-based rolling: not supported, rejected when positive.
    rolling_count: Option<i64>,
}

/// How results are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    /// Each payload on a line.
    Lines,
    /// One CSV record per row, with this separator; a header if asked.
    Csv { delimiter: u8, header: bool },
}

struct FileSink {
    path: PathBuf,
    roots: Arc<FileRoots>,
    file_type: FileType,
    encoder: SinkEncoder,
    /// The open file and the results not written yet, shared with the task
    /// that writes them every `interval`.
    output: Arc<tokio::sync::Mutex<Output>>,
    /// How long a result may wait to be written; zero: not at all.
    interval: Duration,
    /// The task that writes the held results every `interval`.
    writer: Option<tokio::task::JoinHandle<()>>,
    /// Whether the header is still to be written (csv with `hasHeader`, new or empty file).
    header_pending: bool,
    /// The CSV columns, fixed by the first row written.
    columns: Option<Vec<String>>,
    /// The file's length at the checkpoint the rule restarts from: what
    /// follows was written after it, and is cut off when the file is opened
    /// (the rule writes it again as it replays).
    rewind_to: Option<u64>,
}

/// The file and what is still to be written to it.
#[derive(Default)]
struct Output {
    /// The open file, `None` before `open` and after a write error.
    file: Option<File>,
    /// Encoded results not written yet, in order.
    held: Vec<u8>,
    /// Why the last write by the interval task failed: the next `collect` says so.
    failed: Option<String>,
}

impl Output {
    /// Writes the held bytes to the file (the operating system's, not synced).
    /// On failure they stay held and the file is dropped, to be opened again.
    async fn write_held(&mut self) -> std::io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let Some(mut file) = self.file.take() else { return Err(std::io::Error::other("not open")) };
        let held = std::mem::take(&mut self.held);
        let (file, held, written) = tokio::task::spawn_blocking(move || {
            let written = file.write_all(&held);
            (file, held, written)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        match written {
            Ok(()) => {
                self.file = Some(file);
                Ok(())
            }
            Err(e) => {
                // Held again, in front of what came meanwhile (nothing: the lock is held).
                self.held = held;
                Err(e)
            }
        }
    }
}

/// The file sink's own properties (module documentation); the common ones
/// are the encoder's.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "interval",
        kind: OptionKind::Millis,
        default: "1000",
        description: "Results are written to the file at most this long (ms) after they come, together; 0 writes \
                      each at once. A checkpoint and the rule's stop write them too.",
    },
    ConnectorOption {
        key: "path",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The file to append to, inside the file roots; relative to <data_dir>/files.",
    },
    ConnectorOption {
        key: "fileType",
        kind: OptionKind::OneOf(&["lines", "csv"]),
        default: "lines",
        description: "lines: each payload on a line; csv: one record per row.",
    },
];

impl SinkFactory for FileSinkFactory {
    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some([OPTIONS, crate::encode::COMMON_OPTIONS].concat())
    }

    /// A file is cut back to its length at a checkpoint: exactly once, for a
    /// file that only this rule writes.
    fn rewinds(&self) -> bool {
        true
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let keys = [crate::encode::keys(OPTIONS).as_slice(), &["delimiter", "hasHeader"], &ROLLING_KEYS].concat();
        let props: FileSinkProps = props_subset(&config.props, &keys)?;
        let path = props
            .path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ConnectorError::Config("a file action needs the property `path`".into()))?;
        if path.contains("{{") {
            return Err(ConnectorError::Config(format!(
                "file path {path:?}: templates in the path (dynamic properties) are not supported yet"
            )));
        }
        let path = self
            .0
            .resolve(&path, PathUse::Write)
            .map_err(|e| ConnectorError::Config(format!("file action path: {e}")))?;
        for (key, value) in [("rollingInterval", props.rolling_interval), ("rollingCount", props.rolling_count)] {
            if value.is_some_and(|v| v > 0) {
                return Err(ConnectorError::Config(format!("file rolling (`{key}`) is not supported yet")));
            }
        }
        let interval = props.interval.unwrap_or(1000);
        if interval > MAX_INTERVAL_MS {
            return Err(ConnectorError::Config(format!(
                "the file sink's `interval` is at most {MAX_INTERVAL_MS} ms (an hour), got {interval}"
            )));
        }
        let encoder = SinkEncoder::of(config)?;
        let rewind_to = match config.rewind_to.as_deref() {
            None => None,
            Some(mark) => Some(u64::from_le_bytes(mark.try_into().map_err(|_| {
                ConnectorError::Config(format!("the checkpoint's mark of file {} is not a length", path.display()))
            })?)),
        };
        let file_type = match props.file_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("lines") => FileType::Lines,
            Some("csv") => {
                if encoder.has_template() || *encoder.format() == Format::Binary {
                    return Err(ConnectorError::Config(
                        "fileType \"csv\" writes each row as a record: dataTemplate and format \"binary\" do not apply"
                            .into(),
                    ));
                }
                let delimiter = match props.delimiter.as_deref().filter(|d| !d.is_empty()) {
                    Some(d) => super::delimiter(d, "delimiter")?,
                    None => b',',
                };
                FileType::Csv { delimiter, header: props.has_header }
            }
            Some("json") => {
                return Err(ConnectorError::Config(
                    "fileType \"json\" is not supported yet; use \"lines\" (one JSON value per line) or \"csv\"".into(),
                ));
            }
            Some(other) => {
                return Err(ConnectorError::Config(format!("unknown fileType \"{other}\"; use \"lines\" or \"csv\"")));
            }
        };
        Ok(Box::new(FileSink {
            path,
            roots: Arc::clone(&self.0),
            file_type,
            encoder,
            output: Arc::default(),
            interval: Duration::from_millis(interval),
            writer: None,
            header_pending: false,
            columns: None,
            rewind_to,
        }))
    }
}

impl FileSink {
    /// Opens the file for appending, creating it and its directories.
    async fn ensure_open(&mut self) -> Result<(), ConnectorError> {
        if self.output.lock().await.file.is_some() {
            return Ok(());
        }
        let (path, roots, rewind_to) = (self.path.clone(), Arc::clone(&self.roots), self.rewind_to);
        let (file, empty) = blocking(move || {
            // Checked again: a symlink may have been put in since the rule was made.
            let path = roots.resolve(&path.to_string_lossy(), PathUse::Write).map_err(std::io::Error::other)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // O_NOFOLLOW: a link swapped in after the check is not followed.
            let file =
                std::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(&path)?;
            let mut length = file.metadata()?.len();
            if let Some(mark) = rewind_to.filter(|&mark| mark < length) {
                // Written after the checkpoint the rule restarts from (maybe torn by a crash): written again.
                file.set_len(mark)?;
                file.sync_data()?;
                length = mark;
            }
            Ok((file, length == 0))
        })
        .await
        .map_err(|e| self.failed(e))?;
        self.rewind_to = None;
        let output = Arc::clone(&self.output);
        let mut output = output.lock().await;
        // A file opened again after a failed write: what is held goes first, after its header.
        self.header_pending =
            matches!(self.file_type, FileType::Csv { header: true, .. }) && empty && output.held.is_empty();
        output.file = Some(file);
        Ok(())
    }

    /// Starts the task that writes the held results every `interval`.
    fn start_writer(&mut self) {
        if self.writer.is_some() || self.interval.is_zero() {
            return;
        }
        let (output, interval, path) = (Arc::clone(&self.output), self.interval, self.path.clone());
        self.writer = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let mut output = output.lock().await;
                if output.file.is_some()
                    && let Err(e) = output.write_held().await
                {
                    tracing::warn!(file = %path.display(), error = %e, "file sink: the held results could not be written");
                    output.failed = Some(e.to_string());
                }
            }
        }));
    }

    fn failed(&self, e: std::io::Error) -> ConnectorError {
        ConnectorError::External(format!("file {}: {e}", self.path.display()))
    }

    /// What a result adds to the file.
    fn render(&mut self, rows: &[Map]) -> Result<Vec<u8>, ConnectorError> {
        match self.file_type {
            FileType::Lines => {
                let mut out = Vec::new();
                for payload in self.encoder.encode(rows)? {
                    out.extend_from_slice(&payload);
                    out.push(b'\n');
                }
                Ok(out)
            }
            FileType::Csv { delimiter, .. } => {
                let records = self.encoder.records(rows)?;
                let Some(first) = records.first() else { return Ok(Vec::new()) };
                let columns = self.columns.get_or_insert_with(|| first.iter().map(|(k, _)| k.to_string()).collect());
                let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
                let csv_error = |e: csv::Error| ConnectorError::External(format!("cannot encode the result: {e}"));
                if self.header_pending {
                    writer.write_record(columns.iter()).map_err(csv_error)?;
                }
                for record in &records {
                    let cells = columns.iter().map(|column| {
                        record.iter().find(|(k, _)| *k == column.as_str()).map_or_else(String::new, |(_, v)| cell(v))
                    });
                    writer.write_record(cells).map_err(csv_error)?;
                }
                writer.into_inner().map_err(|e| ConnectorError::External(format!("cannot encode the result: {e}")))
            }
        }
    }
}

/// A CSV cell: NULL empty, a string as is, anything else as JSON text.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.to_string(),
        other => match value_to_json(other) {
            serde_json::Value::String(s) => s,
            json => json.to_string(),
        },
    }
}

/// Runs blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

#[async_trait]
impl Sink for FileSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.ensure_open().await
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        self.ensure_open().await?;
        self.start_writer();
        let bytes = match self.render(rows) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Encoding the same rows again would fail the same way: drop them.
                tracing::warn!(file = %self.path.display(), error = %e, "file sink: result dropped");
                return Ok(());
            }
        };
        let output = Arc::clone(&self.output);
        let mut output = output.lock().await;
        if let Some(error) = output.failed.take() {
            // Told once: the held results stay, and this result comes again.
            return Err(ConnectorError::External(format!("file {}: {error}", self.path.display())));
        }
        if output.held.len() >= BUFFER_BYTES {
            // Full of what could not be written: this result waits for room.
            output.write_held().await.map_err(|e| self.failed(e))?;
        }
        output.held.extend_from_slice(&bytes);
        self.header_pending &= bytes.is_empty();
        if self.interval.is_zero() || output.held.len() >= BUFFER_BYTES {
            // This result is held already: an error here is the next call's (the engine's retry would write it twice).
            if let Err(e) = output.write_held().await {
                output.failed = Some(e.to_string());
            }
        }
        Ok(())
    }

    /// Writes the held results and syncs the file: a checkpoint then counts
    /// what was written as delivered, and keeps the file's length to cut it
    /// back to.
    async fn flush(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        self.ensure_open().await?;
        let mut output = self.output.lock().await;
        output.write_held().await.map_err(|e| self.failed(e))?;
        output.failed = None;
        let Some(file) = output.file.as_ref() else { return Ok(None) };
        let file = file.try_clone().map_err(|e| self.failed(e))?;
        let length = blocking(move || file.sync_data().and_then(|()| file.metadata()).map(|m| m.len()))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Some(length.to_le_bytes().to_vec()))
    }

    /// Writes the held results, and stops writing.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        let mut output = self.output.lock().await;
        let written = match output.file.is_some() {
            true => output.write_held().await,
            false => Ok(()),
        };
        output.file = None;
        written.map_err(|e| self.failed(e))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(config_error(json!({"path": "{{.device}}.csv"})).contains("not supported yet"));
        assert!(config_error(json!({"path": "a", "fileType": "json"})).contains("not supported yet"));
        assert!(config_error(json!({"path": "a", "fileType": "parquet"})).contains("unknown fileType"));
        assert!(config_error(json!({"path": "a", "hasHeader": "yes"})).contains("property `hasHeader`"));
        assert!(config_error(json!({"path": "a", "fileType": "csv", "delimiter": "ab"})).contains("delimiter"));
        assert!(config_error(json!({"path": "a", "fileType": "csv", "dataTemplate": "x"})).contains("dataTemplate"));
        assert!(config_error(json!({"path": "a", "rollingCount": 10})).contains("rollingCount"));
        assert!(config_error(json!({"path": "a", "dataTemplate": "{% if %}"})).contains("dataTemplate"));
        // eKuiper's flush interval and rolling defaults are accepted.
        assert!(factory().build(&config(json!({"path": "a", "interval": 1000, "rollingCount": 0}))).is_ok());
        assert!(config_error(json!({"path": "a", "interval": -1})).contains("interval"));
        assert!(config_error(json!({"path": "a", "interval": 3_600_001u64})).contains("at most"));
        assert!(
            config_error(json!({"path": "/root/.ssh/authorized_keys"})).contains("outside the allowed directories")
        );
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
}
