//! Checkpoints: what a rule whose `qos` asks for at least once saves every
//! `checkpointIntervalMs`, so that a restart (of the rule, or of the server
//! after a crash or a `kill -9`) resumes where it left off: the state of its
//! window operator (open windows, their rows, the watermark) and the position
//! of the last event that state includes, in its source.
//!
//! Consistency without barriers through the operators: a rule reads one
//! stream, on one task, in order (its tables are reloaded, not replayed), so
//! the state after a batch and the position of that batch's last event are
//! taken together between two batches. The checkpoint is saved only when
//! every sink has delivered every result the rule emitted before it (a marker
//! follows those results down each sink's queue), and the source is told it
//! may forget the events before it only once it is saved: an event is never
//! forgotten before the results it led to were delivered.
//!
//! [`CheckpointStore`] keeps the last checkpoint of each rule in a file of its
//! own, replaced atomically (written beside it, synced, renamed).

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::durable::{self, ReadError};
use crate::plan::RulePlan;

/// The first bytes of a checkpoint file: the format and its version.
const MAGIC: &[u8; 8] = b"OORTCKP2";

/// Those of the previous version, which had no `source_state`: still read.
const MAGIC_V1: &[u8; 8] = b"OORTCKP1";

/// One saved state of a rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Counts up in one run of the rule.
    pub id: u64,
    /// Of the plan that took it ([`fingerprint`]): the checkpoint of a rule
    /// whose SQL or stream changed since is not restored.
    pub fingerprint: u32,
    /// When it was taken (Unix ms).
    pub taken_ms: i64,
    /// The position, in the rule's source, of the last event the state
    /// includes; replay resumes after it.
    pub position: Option<u64>,
    /// The window operator's state ([`crate::WindowOperator::save`]).
    pub window: Option<Vec<u8>>,
    /// Each sink's mark ([`crate::Sink::flush`]), by action: where a sink
    /// that can take back what it delivered goes back to.
    pub sinks: Vec<Option<Vec<u8>>>,
    /// How many results the rule emitted before it: the sequence number of
    /// the next one ([`crate::Sink::collect_numbered`]).
    pub results: u64,
    /// Where the source resumes reading, beside `position`
    /// ([`crate::SourcePositions::resume_state`]).
    pub source_state: Option<Vec<u8>>,
}

/// A checkpoint as the first version saved it.
#[derive(serde::Deserialize)]
struct CheckpointV1 {
    id: u64,
    fingerprint: u32,
    taken_ms: i64,
    position: Option<u64>,
    window: Option<Vec<u8>>,
    sinks: Vec<Option<Vec<u8>>>,
    results: u64,
}

impl From<CheckpointV1> for Checkpoint {
    fn from(v1: CheckpointV1) -> Self {
        let CheckpointV1 { id, fingerprint, taken_ms, position, window, sinks, results } = v1;
        Self { id, fingerprint, taken_ms, position, window, sinks, results, source_state: None }
    }
}

/// Why a checkpoint could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("checkpoint file: {0}")]
    Io(#[from] io::Error),
    /// The file is not a checkpoint this build can read (damaged, or of another format).
    #[error("the checkpoint file {path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What identifies a plan's state: its SQL, its stream (name, fields and
/// options) and the options that shape its windows. Stable across builds (a
/// CRC, not `Hash`).
pub fn fingerprint(plan: &RulePlan) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(plan.sql.as_bytes());
    field(plan.stream.name.as_bytes());
    for column in &plan.stream.fields {
        field(column.to_string().as_bytes());
    }
    for (key, value) in &plan.stream.options {
        field(key.as_bytes());
        field(value.as_bytes());
    }
    field(&[u8::from(plan.options.is_event_time)]);
    field(&plan.options.late_tolerance_ms.to_le_bytes());
    hasher.finalize()
}

/// A rule's id as a file name. Rule ids are checked by the API, but they come
/// from clients: hex keeps every id a plain name inside its directory.
pub(crate) fn file_name(rule_id: &str) -> String {
    rule_id.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The last checkpoint of every rule, a file each in one directory.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The file of a rule.
    fn path(&self, rule_id: &str) -> PathBuf {
        self.dir.join(format!("{}.ckpt", file_name(rule_id)))
    }

    /// The last checkpoint saved for a rule, if any.
    pub fn load(&self, rule_id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.path(rule_id);
        let unreadable = |reason: String| CheckpointError::Unreadable { path: path.clone(), reason };
        let read = |magic| match durable::read(&path, magic) {
            Ok(body) => Ok(body),
            Err(ReadError::Io(e)) => Err(e.into()),
            Err(e @ ReadError::Damaged(_)) => Err(unreadable(e.to_string())),
        };
        match read(MAGIC) {
            Ok(Some(body)) => postcard::from_bytes(&body).map(Some).map_err(|e| unreadable(e.to_string())),
            Ok(None) => Ok(None),
            Err(e) => match read(MAGIC_V1) {
                Ok(Some(body)) => postcard::from_bytes::<CheckpointV1>(&body)
                    .map(|v1| Some(v1.into()))
                    .map_err(|e| unreadable(e.to_string())),
                _ => Err(e),
            },
        }
    }

    /// Replaces a rule's checkpoint, durably: once this returns, a crash
    /// leaves either this checkpoint or, had it not returned, the previous
    /// one, never a mix. Returns the size of the file.
    pub fn save(&self, rule_id: &str, checkpoint: &Checkpoint) -> Result<usize, CheckpointError> {
        let body = postcard::to_stdvec(checkpoint).map_err(|e| CheckpointError::Unreadable {
            path: self.path(rule_id),
            reason: format!("cannot be encoded: {e}"),
        })?;
        let size = durable::write(&self.path(rule_id), MAGIC, &body)?;
        durable::sync_dir(&self.dir)?;
        Ok(size)
    }

    /// Forgets a rule's checkpoint (the rule was deleted).
    pub fn remove(&self, rule_id: &str) -> io::Result<()> {
        durable::remove(&self.path(rule_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(id: u64) -> Checkpoint {
        Checkpoint {
            id,
            fingerprint: 7,
            taken_ms: 1_000,
            position: Some(41),
            window: Some(vec![1, 2, 3]),
            sinks: vec![None, Some(vec![4])],
            results: 12,
            source_state: Some(b"offset".to_vec()),
        }
    }

    #[test]
    fn a_checkpoint_of_the_first_version_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let v1 = (1u64, 7u32, 1_000i64, Some(41u64), Some(vec![1u8]), vec![None::<Vec<u8>>], 12u64);
        durable::write(&store.path("r"), MAGIC_V1, &postcard::to_stdvec(&v1).unwrap()).unwrap();
        let loaded = store.load("r").unwrap().unwrap();
        assert_eq!((loaded.position, loaded.results, loaded.source_state), (Some(41), 12, None));
    }

    #[test]
    fn the_last_checkpoint_saved_is_the_one_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("checkpoints")).unwrap();
        assert_eq!(store.load("r1").unwrap(), None);
        store.save("r1", &checkpoint(1)).unwrap();
        let size = store.save("r1", &checkpoint(2)).unwrap();
        assert!(size > MAGIC.len());
        assert_eq!(store.load("r1").unwrap(), Some(checkpoint(2)));
        assert_eq!(store.load("../r1").unwrap(), None, "an id is a name, never a path");
        store.remove("r1").unwrap();
        store.remove("r1").unwrap();
        assert_eq!(store.load("r1").unwrap(), None);
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save("r", &checkpoint(1)).unwrap();
        let path = store.path("r");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let error = store.load("r").unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        fs::write(&path, b"OORTCKP").unwrap();
        assert!(store.load("r").is_err());
    }
}
