//! [`Journals`]: the durable record of the events published on a bus topic
//! (a `grpc` stream, an `httppush` path) while a rule whose `qos` asks for at
//! least once reads it, so that the rule replays, after a restart, what its
//! last checkpoint does not cover.
//!
//! A topic's journal is kept while some rule holds a position in it
//! ([`JournalHold`]): every event published then gets the next position and
//! is appended before it is handed to the rules; a publisher is acknowledged
//! only once its events are on disk ([`Journal::sync`]). A hold moves forward
//! as its rule's checkpoints are saved, and whole segments behind every hold
//! are deleted. The journal is bounded: an append that would pass its
//! `max_bytes` is refused ([`JournalError::Full`]), never silently dropped.
//!
//! On disk, `<dir>/<topic in hex>/<first position>.seg` segments of records
//! `[length u32][crc32 u32][position u64][event]` (little-endian, the event in
//! postcard). A record torn by a crash at the end of the last segment is cut
//! off when the journal is opened again.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oort_engine::{ConnectorError, SourceEvent};

/// Bytes of a segment after which the next append starts a new one, by default.
const SEGMENT_BYTES: u64 = 8 << 20;

/// Bytes of a record's header: length, checksum, position.
const HEADER: usize = 16;

/// Why a journal refused.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal holds `max_bytes` already: a rule that reads the topic has
    /// not saved a checkpoint for a while (its sink may be down).
    #[error(
        "the journal of {topic} is full ({max_bytes} bytes): a rule reading it with qos >= 1 has not saved a \
         checkpoint that lets it forget older events (is one of its sinks down?)"
    )]
    Full {
        /// The topic.
        topic: String,
        /// Its bound.
        max_bytes: u64,
    },
    /// The file system failed.
    #[error("the journal of {topic}: {source}")]
    Io {
        /// The topic.
        topic: String,
        /// What failed.
        source: io::Error,
    },
}

impl From<JournalError> for ConnectorError {
    fn from(e: JournalError) -> Self {
        ConnectorError::External(e.to_string())
    }
}

/// The journals of one bus, in one directory.
pub struct Journals {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// The journals some rule holds a position in, by topic.
    held: Mutex<HashMap<String, Arc<Journal>>>,
}

impl Journals {
    /// Journals in `dir`, each bounded to `max_bytes` on disk.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self { dir: dir.into(), max_bytes, segment_bytes: SEGMENT_BYTES, held: Mutex::default() }
    }

    /// Segments of about `bytes` (tests use small ones).
    #[cfg(test)]
    fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The journal of `topic`, if a rule holds a position in it: what is
    /// published on it must be appended there first.
    pub fn active(&self, topic: &str) -> Option<Arc<Journal>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).get(topic).cloned()
    }

    /// Rule `rule` holds a position in `topic`'s journal: just after `after`
    /// (its checkpoint's position), or the journal's end. Opens the journal,
    /// recovering it from disk, if no rule held it yet.
    pub fn hold(self: &Arc<Self>, topic: &str, rule: &str, after: Option<u64>) -> Result<JournalHold, JournalError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let journal = match held.get(topic) {
            Some(journal) => Arc::clone(journal),
            None => {
                let dir = self.dir.join(hex(topic));
                let journal = Arc::new(Journal::open(topic, &dir, self.max_bytes, self.segment_bytes)?);
                held.insert(topic.to_owned(), Arc::clone(&journal));
                journal
            }
        };
        journal.hold(rule, after);
        Ok(JournalHold { journals: Arc::clone(self), journal, topic: topic.to_owned(), rule: rule.to_owned() })
    }

    /// Deletes `topic`'s journal from disk (its stream was deleted), unless a
    /// rule holds it. Returns whether there was one to delete.
    pub fn forget(&self, topic: &str) -> std::io::Result<bool> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains_key(topic) {
            return Ok(false);
        }
        match fs::remove_dir_all(self.dir.join(hex(topic))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn let_go(&self, topic: &str, rule: &str) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(journal) = held.get(topic)
            && journal.let_go(rule)
        {
            held.remove(topic);
        }
    }
}

/// A rule's position in a journal; dropping it lets the rule go (when no
/// rule holds the journal, publishing stops appending to it).
pub struct JournalHold {
    journals: Arc<Journals>,
    journal: Arc<Journal>,
    topic: String,
    rule: String,
}

impl JournalHold {
    /// The journal held.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}

impl Drop for JournalHold {
    fn drop(&mut self) {
        self.journals.let_go(&self.topic, &self.rule);
    }
}

#[async_trait::async_trait]
impl oort_engine::SourcePositions for JournalHold {
    async fn persist(&self, position: u64) -> Result<(), ConnectorError> {
        Ok(self.journal.sync(position).await?)
    }

    fn release(&self, position: u64) {
        if let Err(e) = self.journal.advance(&self.rule, position) {
            tracing::warn!(topic = %self.topic, error = %e, "journal segments could not be deleted");
        }
    }

    fn position(&self) -> Option<u64> {
        self.journal.held_at(&self.rule)
    }
}

/// One topic's journal.
pub struct Journal {
    topic: String,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Every position up to this is on disk.
    synced: AtomicU64,
    /// One sync at a time; those who wait behind it usually find their
    /// position synced by it.
    syncing: tokio::sync::Mutex<()>,
    /// Held by a publisher from appending its events until they are handed
    /// to the rules, so that rules get events in the order of their
    /// positions: a checkpoint at a position then covers every event before it.
    publishing: tokio::sync::Mutex<()>,
}

struct State {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The last segment, open for appending.
    writer: Option<fs::File>,
    /// The position of the next event appended.
    next: u64,
    /// Bytes of every segment.
    bytes: u64,
    /// Each holding rule's position: it needs the events after it.
    holds: HashMap<String, u64>,
}

struct Segment {
    /// The position of its first record (its name).
    first: u64,
    /// The position of its last record; `first - 1` while empty.
    last: u64,
    bytes: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`: its last segment's torn
    /// tail, if any, is cut off.
    fn open(topic: &str, dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { topic: topic.to_owned(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let mut firsts: Vec<u64> = fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let mut segments = VecDeque::new();
        for first in firsts {
            let path = segment_path(dir, first);
            let (last, valid) = scan(&fs::read(&path).map_err(io)?);
            let file_len = fs::metadata(&path).map_err(io)?.len();
            if valid < file_len {
                tracing::warn!(topic, path = %path.display(), "the journal's torn tail was cut off");
                fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(valid)).map_err(io)?;
            }
            let last = last.unwrap_or(first.saturating_sub(1));
            segments.push_back(Segment { first, last, bytes: valid });
        }
        let next = segments.back().map_or(1, |s| s.last + 1);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let writer = match segments.back() {
            Some(last) => Some(fs::OpenOptions::new().append(true).open(segment_path(dir, last.first)).map_err(io)?),
            None => None,
        };
        let state = State { dir: dir.to_owned(), segments, writer, next, bytes, holds: HashMap::new() };
        Ok(Self {
            topic: topic.to_owned(),
            max_bytes,
            segment_bytes,
            state: Mutex::new(state),
            synced: AtomicU64::new(next - 1),
            syncing: tokio::sync::Mutex::new(()),
            publishing: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self, source: io::Error) -> JournalError {
        JournalError::Io { topic: self.topic.clone(), source }
    }

    fn hold(&self, rule: &str, after: Option<u64>) {
        let mut state = self.lock();
        let end = state.next - 1;
        // A checkpoint ahead of the journal (its files were lost): positions
        // continue after it, so that none is taken twice.
        if let Some(after) = after.filter(|&a| a > end) {
            state.next = after + 1;
            self.synced.fetch_max(after, Ordering::AcqRel);
        }
        let held = after.unwrap_or(end).min(state.next - 1);
        state.holds.insert(rule.to_owned(), held);
    }

    /// The right to append and then hand the events to the rules, one
    /// publisher at a time (see [`Journal::append`]).
    pub async fn publishing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.publishing.lock().await
    }

    /// Where `rule` holds the journal: it needs the events after this.
    pub fn held_at(&self, rule: &str) -> Option<u64> {
        self.lock().holds.get(rule).copied()
    }

    /// Drops a rule's hold; returns whether no rule holds the journal now.
    fn let_go(&self, rule: &str) -> bool {
        let mut state = self.lock();
        state.holds.remove(rule);
        state.holds.is_empty()
    }

    /// Appends events, giving each its position; refuses them all when they
    /// would pass the journal's bound. They are on disk after [`sync`](Self::sync).
    /// A publisher appends and hands the events to the rules while it holds
    /// [`publishing`](Self::publishing).
    pub fn append(&self, mut events: Vec<SourceEvent>) -> Result<Vec<SourceEvent>, JournalError> {
        let mut state = self.lock();
        let mut buffer = Vec::new();
        let mut position = state.next;
        for event in &mut events {
            event.position = Some(position);
            let start = buffer.len();
            buffer.extend_from_slice(&[0; HEADER]);
            postcard::to_io(&*event, &mut buffer).map_err(|e| self.io(io::Error::other(e)))?;
            let length = (buffer.len() - start - HEADER) as u32;
            let crc = crc32fast::hash(&buffer[start + HEADER..]);
            buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
            buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            buffer[start + 8..start + HEADER].copy_from_slice(&position.to_le_bytes());
            position += 1;
        }
        if events.is_empty() {
            return Ok(events);
        }
        if state.bytes + buffer.len() as u64 > self.max_bytes {
            return Err(JournalError::Full { topic: self.topic.clone(), max_bytes: self.max_bytes });
        }
        if state.writer.is_none() || state.segments.back().is_some_and(|s| s.bytes >= self.segment_bytes) {
            self.roll(&mut state).map_err(|e| self.io(e))?;
        }
        let Some(writer) = state.writer.as_mut() else { unreachable!("rolled above") };
        writer.write_all(&buffer).map_err(|e| self.io(e))?;
        state.next = position;
        state.bytes += buffer.len() as u64;
        if let Some(segment) = state.segments.back_mut() {
            segment.last = position - 1;
            segment.bytes += buffer.len() as u64;
        }
        Ok(events)
    }

    /// Starts a new segment at the next position; the last one is synced first.
    fn roll(&self, state: &mut State) -> io::Result<()> {
        if let Some(writer) = state.writer.take() {
            writer.sync_data()?;
            self.synced.fetch_max(state.next - 1, Ordering::AcqRel);
        }
        let first = state.next;
        let file = fs::OpenOptions::new().create(true).append(true).open(segment_path(&state.dir, first))?;
        fs::File::open(&state.dir)?.sync_all()?;
        state.segments.push_back(Segment { first, last: first - 1, bytes: 0 });
        state.writer = Some(file);
        Ok(())
    }

    /// Waits until every event up to `position` is on disk.
    pub async fn sync(&self, position: u64) -> Result<(), JournalError> {
        if self.synced.load(Ordering::Acquire) >= position {
            return Ok(());
        }
        let _one_at_a_time = self.syncing.lock().await;
        if self.synced.load(Ordering::Acquire) >= position {
            return Ok(());
        }
        let (file, end) = {
            let state = self.lock();
            let file = state.writer.as_ref().map(fs::File::try_clone).transpose().map_err(|e| self.io(e))?;
            (file, state.next - 1)
        };
        if let Some(file) = file {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| self.io(io::Error::other(e)))?
                .map_err(|e| self.io(e))?;
        }
        self.synced.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Moves `rule`'s hold to `position` and deletes the segments no hold needs.
    fn advance(&self, rule: &str, position: u64) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(hold) = state.holds.get_mut(rule) {
            *hold = (*hold).max(position);
        }
        let Some(&oldest) = state.holds.values().min() else { return Ok(()) };
        // The last segment stays: it is the one appended to.
        while state.segments.len() > 1 && state.segments.front().is_some_and(|s| s.last <= oldest) {
            let Some(segment) = state.segments.pop_front() else { break };
            state.bytes -= segment.bytes;
            fs::remove_file(segment_path(&state.dir, segment.first))?;
        }
        Ok(())
    }

    /// The events after `after` in the first segment that has any, up to the
    /// end of the journal now; empty when there are none. Blocking: reads a
    /// whole segment (at most about 8 MiB).
    pub fn read_after(&self, after: u64) -> Result<Vec<SourceEvent>, JournalError> {
        let (path, end) = {
            let state = self.lock();
            let Some(segment) = state.segments.iter().find(|s| s.last > after) else { return Ok(Vec::new()) };
            (segment_path(&state.dir, segment.first), state.next - 1)
        };
        let bytes = fs::read(&path).map_err(|e| self.io(e))?;
        let mut events = Vec::new();
        for (position, body) in records(&bytes) {
            if position <= after || position > end {
                continue;
            }
            let mut event: SourceEvent = postcard::from_bytes(body).map_err(|e| self.io(io::Error::other(e)))?;
            event.position = Some(position);
            events.push(event);
        }
        Ok(events)
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// A topic as a directory name: any text, never a path.
fn hex(topic: &str) -> String {
    topic.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The intact records of a segment: (position, event bytes), in order, up to
/// the first torn or damaged one.
fn records(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (header, body) = rest.split_first_chunk::<HEADER>()?;
        let length = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        let position = u64::from_le_bytes(header[8..].try_into().ok()?);
        let body = body.get(..length)?;
        if crc32fast::hash(body) != crc {
            return None;
        }
        rest = &rest[HEADER + length..];
        Some((position, body))
    })
}

/// The position of a segment's last intact record and the bytes its intact records take.
fn scan(bytes: &[u8]) -> (Option<u64>, u64) {
    let mut last = None;
    let mut valid = 0;
    for (position, body) in records(bytes) {
        last = Some(position);
        valid += (HEADER + body.len()) as u64;
    }
    (last, valid)
}

#[cfg(test)]
mod tests;
