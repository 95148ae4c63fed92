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

use super::rolling::{self, Rolling};
use crate::encode::{Format, SinkEncoder, props_subset};

/// Builds `file` sinks, whose paths must lie inside the file roots.
pub struct FileSinkFactory(pub Arc<FileRoots>);

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
    /// Start a new file when the current one is this old (ms) as a result comes.
    rolling_interval: Option<i64>,
    /// Start a new file when the current one holds this many payloads.
    rolling_count: Option<i64>,
    /// Where the start time goes in a rolled file's name: `suffix` (default) or `prefix`.
    rolling_name_pattern: Option<String>,
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
    /// The configured path; with rolling, the directory and name of the files.
    path: PathBuf,
    /// When to start a new file, if ever.
    rolling: Option<Rolling>,
    /// With rolling, the file written now, its start, and the payloads in it.
    current: Option<(PathBuf, std::time::Instant, u64)>,
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
    /// The file (with rolling) and its length at the checkpoint the rule
    /// restarts from: what follows was written after it, and is cut off when
    /// the file is opened (the rule writes it again as it replays).
    rewind_to: Option<(Option<String>, u64)>,
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
    ConnectorOption {
        key: "rollingInterval",
        kind: OptionKind::Millis,
        default: "0",
        description: "Start a new file when the current one is this old (ms) as a result comes; 0: never.",
    },
    ConnectorOption {
        key: "rollingCount",
        kind: OptionKind::Count,
        default: "0",
        description: "Start a new file when the current one holds this many payloads (CSV records); 0: never.",
    },
    ConnectorOption {
        key: "rollingNamePattern",
        kind: OptionKind::OneOf(&["suffix", "prefix"]),
        default: "suffix",
        description: "With rolling, where the file's start time (Unix ms) goes: name-<ms>.ext or <ms>-name.",
    },
];

impl SinkFactory for FileSinkFactory {
    fn description(&self) -> &'static str {
        "Appends results to a file inside the file roots, as JSON lines, CSV or lines; rolls it by time or count; a path template writes a file per row."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some([OPTIONS, crate::encode::COMMON_OPTIONS].concat())
    }

    /// A file is cut back to its length at a checkpoint: exactly once, for a
    /// file that only this rule writes. Not the files of a path template:
    /// one first written after the checkpoint is not in its mark.
    fn rewinds(&self, props: &serde_json::Map<String, serde_json::Value>) -> bool {
        !props.get("path").and_then(|p| p.as_str()).is_some_and(super::dynamic::is_template)
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let keys = [crate::encode::keys(OPTIONS).as_slice(), &["delimiter", "hasHeader"]].concat();
        let props: FileSinkProps = props_subset(&config.props, &keys)?;
        let path = props
            .path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ConnectorError::Config("a file action needs the property `path`".into()))?;
        if super::dynamic::is_template(&path) {
            return super::dynamic::DynamicFileSink::build(self, config, &path);
        }
        let path = self
            .0
            .resolve(&path, PathUse::Write)
            .map_err(|e| ConnectorError::Config(format!("file action path: {e}")))?;
        let rolling =
            Rolling::of(&path, props.rolling_interval, props.rolling_count, props.rolling_name_pattern.as_deref())?;
        let interval = props.interval.unwrap_or(1000);
        if interval > MAX_INTERVAL_MS {
            return Err(ConnectorError::Config(format!(
                "the file sink's `interval` is at most {MAX_INTERVAL_MS} ms (an hour), got {interval}"
            )));
        }
        let encoder = SinkEncoder::of(config)?;
        let rewind_to = match config.rewind_to.as_deref() {
            None => None,
            Some(mark) => Some(rolling::decode_mark(mark).ok_or_else(|| {
                ConnectorError::Config(format!("the checkpoint's mark of file {} does not decode", path.display()))
            })?),
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
            rolling,
            current: None,
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
    /// Opens the file for appending, creating it and its directories; with
    /// rolling, the current file, or a new one.
    async fn ensure_open(&mut self) -> Result<(), ConnectorError> {
        if self.output.lock().await.file.is_some() {
            return Ok(());
        }
        let (path, roots, rewind_to) = (self.path.clone(), Arc::clone(&self.roots), self.rewind_to.clone());
        let (rolling, current) = (self.rolling.clone(), self.current.as_ref().map(|(path, ..)| path.clone()));
        let (file, empty, opened) = blocking(move || {
            let target = match (&rolling, current, &rewind_to) {
                (None, ..) => path,
                (Some(_), Some(current), _) => current,
                (Some(rolling), None, Some((Some(name), _))) => {
                    // The checkpoint's file: the files started after it hold only what is written again.
                    let target = path.with_file_name(name);
                    let start = rolling.start_of(&target).ok_or_else(|| {
                        std::io::Error::other(format!("the checkpoint names {name:?}, not one of this sink's files"))
                    })?;
                    for later in rolling.files_after(start)? {
                        std::fs::remove_file(later)?;
                    }
                    target
                }
                (Some(rolling), None, _) => {
                    let mut start = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    while rolling.file_at(start).exists() {
                        start += 1;
                    }
                    rolling.file_at(start)
                }
            };
            // Checked again: a symlink may have been put in since the rule was made.
            let target = roots.resolve(&target.to_string_lossy(), PathUse::Write).map_err(std::io::Error::other)?;
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // O_NOFOLLOW: a link swapped in after the check is not followed.
            let file =
                std::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(&target)?;
            let mut length = file.metadata()?.len();
            if let Some((_, mark)) = rewind_to.filter(|(_, mark)| *mark < length) {
                // Written after the checkpoint the rule restarts from (maybe torn by a crash): written again.
                file.set_len(mark)?;
                file.sync_data()?;
                length = mark;
            }
            Ok((file, length == 0, target))
        })
        .await
        .map_err(|e| self.failed(e))?;
        self.rewind_to = None;
        if self.rolling.is_some() && self.current.is_none() {
            self.current = Some((opened, std::time::Instant::now(), 0));
        }
        let output = Arc::clone(&self.output);
        let mut output = output.lock().await;
        // A file opened again after a failed write: what is held goes first, after its header.
        self.header_pending =
            matches!(self.file_type, FileType::Csv { header: true, .. }) && empty && output.held.is_empty();
        output.file = Some(file);
        Ok(())
    }

    /// With rolling, closes the current file once it is old or full enough:
    /// what is held goes into it, synced, and a new one is opened.
    async fn roll_if_due(&mut self) -> Result<(), ConnectorError> {
        let (Some(rolling), Some((_, started, payloads))) = (&self.rolling, &self.current) else { return Ok(()) };
        let old = rolling.interval.is_some_and(|interval| started.elapsed() >= interval);
        let full = rolling.count.is_some_and(|count| *payloads >= count);
        if *payloads == 0 || !(old || full) {
            return Ok(());
        }
        let mut output = self.output.lock().await;
        output.write_held().await.map_err(|e| self.failed(e))?;
        if let Some(file) = output.file.take() {
            blocking(move || file.sync_data()).await.map_err(|e| self.failed(e))?;
        }
        drop(output);
        self.current = None;
        self.ensure_open().await
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
        self.roll_if_due().await?;
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
        if let Some((_, _, payloads)) = &mut self.current {
            // Lines written: one per payload or CSV record (a header is not counted).
            *payloads += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        }
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
        let current = self.current.as_ref().map(|(path, ..)| path.as_path());
        Ok(Some(rolling::encode_mark(current, length)))
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
mod tests;
