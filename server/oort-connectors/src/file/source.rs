//! The `file` source; see [the module documentation](super).
//!
//! A file is read as a stream, on a blocking thread that hands events to the
//! rule a batch at a time: memory holds a batch and one line (or one element
//! of a JSON array), not the file.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, ConnectorOption, Map, Payload, Source, SourceConfig, SourceEvent, SourceFactory, SourceOutput,
    Value,
};
use oort_policy::{FileRoots, PathError, PathUse};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most bytes of one line, CSV record or element of a JSON document; a longer
/// line is skipped and counted, a longer element ends the read with an error.
const MAX_RECORD_BYTES: usize = 16 << 20;

/// Most bytes of the first line read to tell JSON lines from one JSON document.
const PEEK_BYTES: usize = 1 << 20;

/// Events the reading thread hands over at once.
const READ_BATCH: usize = 256;

/// Builds `file` sources, whose paths must lie inside the file roots.
pub struct FileSourceFactory {
    roots: Arc<FileRoots>,
    reads: resume::Reads,
}

impl FileSourceFactory {
    /// `file` sources reading inside `roots`.
    pub fn new(roots: Arc<FileRoots>) -> Self {
        Self { roots, reads: resume::Reads::default() }
    }
}

mod json;
mod options;
mod resume;
use json::{LinePosition, NoRecordStarts, read_json, read_json_lines};
use options::{FileSourceConfig, Format, OPTIONS};
use resume::{ReadOnce, SeekIndex, SeekPoint};

struct FileSource {
    config: FileSourceConfig,
    roots: Arc<FileRoots>,
    /// Events of the read already covered by the rule's checkpoint: read
    /// again (from `start`), not sent.
    skip: u64,
    /// Where to start reading to reach them quickly.
    start: Option<SeekPoint>,
    /// Where to note seek points, for a rule that reads the file once with checkpoints.
    index: Option<Arc<SeekIndex>>,
}

impl SourceFactory for FileSourceFactory {
    fn description(&self) -> &'static str {
        "Reads a file, or every file of a directory, inside the file roots: JSON (lines or one array), CSV or delimited lines; once, or again every INTERVAL. DATASOURCE is the file or directory; a relative path resolves against FILE_BASE, else <data_dir>/files."
    }

    fn formats(&self) -> &'static [&'static str] {
        &["json", "csv", "delimited"]
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(OPTIONS.to_vec())
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let skip = config.resume_after.unwrap_or(0);
        let start = SeekPoint::decode(config.resume_state.as_deref()).filter(|point| point.before <= skip);
        let index = self.reads.get(&config.rule_id);
        let config = FileSourceConfig::from_source_config(config, &self.roots)?;
        Ok(Box::new(FileSource { config, roots: Arc::clone(&self.roots), skip, start, index }))
    }

    /// A file read once replays: its events are numbered in the order read,
    /// and a restarted rule starts reading at the last seek point its
    /// checkpoint saved, skipping the events up to the checkpoint's position.
    /// One read every `INTERVAL` does not (each read is new input).
    fn positions(
        &self,
        config: &SourceConfig,
    ) -> Result<Option<Arc<dyn oort_engine::SourcePositions>>, ConnectorError> {
        if FileSourceConfig::from_source_config(config, &self.roots)?.interval.is_some() {
            return Ok(None);
        }
        let after = config.resume_after.unwrap_or(0);
        Ok(Some(Arc::new(ReadOnce { after, index: self.reads.start(&config.rule_id) })))
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        FileSourceConfig::from_source_config(config, &self.roots).map(drop)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let Self { config, roots, skip, mut start, index } = *self;
        let config = Arc::new(config);
        loop {
            // Each event of a read is numbered: its position.
            let mut ordinal = 0u64;
            // Two batches in flight: the thread reads the next while the rule takes one.
            let (tx, mut rx) = mpsc::channel(2);
            let reading = {
                let (config, roots, start) = (Arc::clone(&config), Arc::clone(&roots), start.take());
                tokio::task::spawn_blocking(move || read_all(&config, &roots, start.as_ref(), &tx))
            };
            let mut sent_any = false;
            loop {
                let chunk = tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    chunk = rx.recv() => match chunk { Some(chunk) => chunk, None => break },
                };
                let events = match chunk {
                    Chunk::Events { events, seek } => {
                        if let (Some(index), Some((file, offset))) = (&index, seek) {
                            index.record(SeekPoint { before: ordinal, file: file.to_string(), offset });
                        }
                        events
                    }
                    Chunk::Resumed(before) => {
                        ordinal = before;
                        continue;
                    }
                    Chunk::Skipped(why) => {
                        tracing::warn!(stream = %config.path.display(), "{why}");
                        out.record_error(why);
                        continue;
                    }
                };
                for mut event in events {
                    ordinal += 1;
                    if ordinal <= skip {
                        continue;
                    }
                    event.position = Some(ordinal);
                    if sent_any && let Some(pause) = config.send_interval {
                        tokio::select! {
                            () = cancel.cancelled() => return Ok(()),
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                    sent_any = true;
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        sent = out.send_waiting(event) => if sent.is_err() { return Ok(()) },
                    }
                }
            }
            match reading.await {
                Ok(Ok(()) | Err(Halt::Stopped)) => {}
                Ok(Err(Halt::Failed(e))) => return Err(e),
                Err(e) => return Err(ConnectorError::External(format!("reading a file failed: {e}"))),
            }
            let Some(interval) = config.interval else { return Ok(()) };
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Why reading stopped before the end.
#[derive(Debug)]
enum Halt {
    /// The rule stopped taking events.
    Stopped,
    /// The file cannot be read.
    Failed(ConnectorError),
}

/// What the reading thread hands to the source's task.
enum Chunk {
    /// The read starts at a seek point, after this many events.
    Resumed(u64),
    /// Events, in file order; the first starts a record at this byte of this file.
    Events { events: Vec<SourceEvent>, seek: Option<(Arc<str>, u64)> },
    /// What was skipped and why, counted in the source's status.
    Skipped(String),
}

/// Where the reading functions put what they read.
trait Emit {
    /// A record (of one event or more) starts at this byte of the file: the
    /// read could start again here.
    fn record_start(&mut self, offset: u64) {
        let _ = offset;
    }
    /// One event.
    fn event(&mut self, payload: Payload) -> Result<(), Halt>;
    /// A part of the file that was skipped, and why.
    fn skipped(&mut self, why: String) -> Result<(), Halt>;
}

/// The events of one file, handed to the source's task a batch at a time.
struct ToRule<'a> {
    tx: &'a mpsc::Sender<Chunk>,
    file: Arc<str>,
    meta: Arc<BTreeMap<String, String>>,
    batch: Vec<SourceEvent>,
    /// Where the batch's first event's record starts, when it starts one.
    seek: Option<u64>,
}

impl<'a> ToRule<'a> {
    fn new(tx: &'a mpsc::Sender<Chunk>, file: &Path) -> Self {
        let name = file.display().to_string();
        let meta = Arc::new(BTreeMap::from([("file".to_owned(), name.clone())]));
        Self { tx, file: Arc::from(name), meta, batch: Vec::with_capacity(READ_BATCH), seek: None }
    }

    fn flush(&mut self) -> Result<(), Halt> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.batch, Vec::with_capacity(READ_BATCH));
        let seek = self.seek.take().map(|offset| (Arc::clone(&self.file), offset));
        self.tx.blocking_send(Chunk::Events { events, seek }).map_err(|_| Halt::Stopped)
    }
}

impl Emit for ToRule<'_> {
    fn record_start(&mut self, offset: u64) {
        if self.batch.is_empty() {
            self.seek = Some(offset);
        }
    }

    fn event(&mut self, payload: Payload) -> Result<(), Halt> {
        self.batch.push(SourceEvent::new(payload, Arc::clone(&self.meta)));
        if self.batch.len() >= READ_BATCH { self.flush() } else { Ok(()) }
    }

    fn skipped(&mut self, why: String) -> Result<(), Halt> {
        self.flush()?;
        self.tx.blocking_send(Chunk::Skipped(why)).map_err(|_| Halt::Stopped)
    }
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Halt {
    Halt::Failed(ConnectorError::External(format!("file {}: {e}", path.display())))
}

/// Reads the file, or every regular file of the directory in name order, on
/// the calling (blocking) thread; from `start` when it names one of them.
/// Each path is checked against the roots again as it is read: a symlink put
/// in since the stream was created is refused (the path) or skipped with a
/// warning (an entry).
fn read_all(
    config: &FileSourceConfig,
    roots: &FileRoots,
    start: Option<&SeekPoint>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Halt> {
    let path = roots
        .resolve(&config.path.to_string_lossy(), PathUse::ReadFileOrDirectory)
        .map_err(|e| Halt::Failed(ConnectorError::External(e.to_string())))?;
    let metadata = std::fs::metadata(&path).map_err(|e| failed(&path, e))?;
    let files = if metadata.is_dir() {
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
    } else {
        vec![path]
    };
    // A seek point whose file is gone (the input changed) is not used: the
    // read starts at the beginning, and skips by number.
    let start =
        start.and_then(|point| files.iter().position(|f| f.display().to_string() == point.file).map(|i| (i, point)));
    let (first, mut offset) = match start {
        Some((i, point)) => {
            tx.blocking_send(Chunk::Resumed(point.before)).map_err(|_| Halt::Stopped)?;
            (i, point.offset)
        }
        None => (0, 0),
    };
    for file in &files[first..] {
        let mut to_rule = ToRule::new(tx, file);
        read_file(file, config, offset, &mut to_rule)?;
        to_rule.flush()?;
        offset = 0;
    }
    Ok(())
}

/// Reads one file in the stream's format, from byte `offset` (a record's
/// start, noted by [`Emit::record_start`]).
fn read_file(path: &Path, config: &FileSourceConfig, offset: u64, emit: &mut dyn Emit) -> Result<(), Halt> {
    let mut file = std::fs::File::open(path).map_err(|e| failed(path, e))?;
    emit.record_start(offset);
    let skipping = config.ignore_start_lines > 0 || config.ignore_end_lines > 0;
    if offset > 0 {
        // Only a line of JSON lines or a CSV record without ignored lines starts past 0.
        return match config.format {
            Format::Json => {
                file.seek(SeekFrom::Start(offset)).map_err(|e| failed(path, e))?;
                let at = LinePosition { number: None, offset };
                read_json_lines(BufReader::with_capacity(64 << 10, file), path, emit, at)
            }
            Format::Csv(delimiter) => {
                let mut reader = BufReader::with_capacity(64 << 10, file);
                let mut header = Vec::new();
                (&mut reader)
                    .take(MAX_RECORD_BYTES as u64)
                    .read_until(b'\n', &mut header)
                    .map_err(|e| failed(path, e))?;
                reader.seek(SeekFrom::Start(offset)).map_err(|e| failed(path, e))?;
                let base = offset - header.len() as u64;
                let reader = KeptLines::new(std::io::Cursor::new(header).chain(reader), config);
                read_csv(reader, delimiter, path, emit, Some(base))
            }
        };
    }
    let reader = BufReader::with_capacity(64 << 10, file);
    match config.format {
        Format::Json if !skipping => read_json(reader, path, emit),
        // The kept lines' offsets are not the file's: no record starts past 0.
        Format::Json => read_json(BufReader::new(KeptLines::new(reader, config)), path, &mut NoRecordStarts(emit)),
        // Lines capped for CSV too: the csv crate would grow a record without bound.
        Format::Csv(delimiter) => {
            read_csv(KeptLines::new(reader, config), delimiter, path, emit, (!skipping).then_some(0))
        }
    }
}

/// The lines of a reader, each capped at [`MAX_RECORD_BYTES`]; when lines are
/// to be ignored, the non-blank ones without the first `start` and the last
/// `end` (blank lines are then dropped too).
struct KeptLines<R> {
    inner: R,
    start: usize,
    end: usize,
    skipping: bool,
    /// The last `end` lines read, held back until more come.
    held: VecDeque<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl<R: BufRead> KeptLines<R> {
    fn new(inner: R, config: &FileSourceConfig) -> Self {
        let (start, end) = (config.ignore_start_lines, config.ignore_end_lines);
        Self { inner, start, end, skipping: start > 0 || end > 0, held: VecDeque::new(), current: Vec::new(), at: 0 }
    }

    /// Moves to the next kept line; false at the end.
    fn next_line(&mut self) -> std::io::Result<bool> {
        loop {
            let mut line = Vec::new();
            if (&mut self.inner).take(MAX_RECORD_BYTES as u64 + 1).read_until(b'\n', &mut line)? == 0 {
                return Ok(false);
            }
            if line.len() > MAX_RECORD_BYTES && !line.ends_with(b"\n") {
                let limit = MAX_RECORD_BYTES >> 20;
                return Err(std::io::Error::other(format!("a line is longer than {limit} MiB")));
            }
            if !self.skipping {
                (self.current, self.at) = (line, 0);
                return Ok(true);
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            if self.start > 0 {
                self.start -= 1;
                continue;
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            self.held.push_back(line);
            if self.held.len() > self.end
                && let Some(line) = self.held.pop_front()
            {
                (self.current, self.at) = (line, 0);
                return Ok(true);
            }
        }
    }
}

impl<R: BufRead> Read for KeptLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if !self.next_line()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// CSV content with a header line: one row per record, each emitted as it is
/// read. With `base`, each record's start in the file is `base` plus its
/// offset in `reader` (noted as a record start).
fn read_csv(reader: impl Read, delimiter: u8, path: &Path, emit: &mut dyn Emit, base: Option<u64>) -> Result<(), Halt> {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(reader);
    let header: Vec<Arc<str>> =
        reader.headers().map_err(|e| failed(path, format!("invalid CSV header: {e}")))?.iter().map(Arc::from).collect();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                if let (Some(base), Some(at)) = (base, record.position()) {
                    emit.record_start(base + at.byte());
                }
                let row: Map = header.iter().cloned().zip(record.iter().map(cell_value)).collect();
                emit.event(Payload::Map(row))?;
            }
            Err(e) if e.is_io_error() => return Err(failed(path, e)),
            Err(e) => emit.skipped(format!("file {}: malformed CSV record skipped: {e}", path.display()))?,
        }
    }
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
mod tests;
