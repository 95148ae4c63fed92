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
const MAGIC: &[u8; 8] = b"OORTCKP3";

/// Those of the earlier versions: v2 had no `analytic`, v1 no `source_state`
/// either. Still read, but not their window state, whose rows had no
/// analytic results ([`older`]).
const MAGIC_V2: &[u8; 8] = b"OORTCKP2";
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
    /// The state of the rule's analytic calls ([`crate::analytic::AnalyticState::save`]).
    pub analytic: Option<Vec<u8>>,
}

/// A checkpoint as the second version saved it.
#[derive(serde::Deserialize)]
struct CheckpointV2 {
    id: u64,
    fingerprint: u32,
    taken_ms: i64,
    position: Option<u64>,
    window: Option<Vec<u8>>,
    sinks: Vec<Option<Vec<u8>>>,
    results: u64,
    source_state: Option<Vec<u8>>,
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

impl From<CheckpointV1> for CheckpointV2 {
    fn from(v1: CheckpointV1) -> Self {
        let CheckpointV1 { id, fingerprint, taken_ms, position, window, sinks, results } = v1;
        Self { id, fingerprint, taken_ms, position, window, sinks, results, source_state: None }
    }
}

/// An earlier version's checkpoint in this version's form; refused when it
/// holds window state, which this version cannot read (restoring the rest
/// would resume the source after events that only that state held).
fn older(old: CheckpointV2) -> Result<Checkpoint, String> {
    let CheckpointV2 { id, fingerprint, taken_ms, position, window, sinks, results, source_state } = old;
    if window.is_some() {
        return Err("it was saved by an earlier version of Oort, whose window state this version cannot read".into());
    }
    Ok(Checkpoint { id, fingerprint, taken_ms, position, window, sinks, results, source_state, analytic: None })
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
        let e = match read(MAGIC) {
            Ok(Some(body)) => return postcard::from_bytes(&body).map(Some).map_err(|e| unreadable(e.to_string())),
            Ok(None) => return Ok(None),
            Err(e) => e,
        };
        let old = if let Ok(Some(body)) = read(MAGIC_V2) {
            postcard::from_bytes::<CheckpointV2>(&body)
        } else if let Ok(Some(body)) = read(MAGIC_V1) {
            postcard::from_bytes::<CheckpointV1>(&body).map(CheckpointV2::from)
        } else {
            return Err(e);
        };
        let old = old.map_err(|e| unreadable(e.to_string()))?;
        older(old).map(Some).map_err(unreadable)
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
            analytic: Some(vec![5]),
        }
    }

    #[test]
    fn checkpoints_of_earlier_versions_are_read_but_not_their_window_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let v1 = (1u64, 7u32, 1_000i64, Some(41u64), None::<Vec<u8>>, vec![None::<Vec<u8>>], 12u64);
        durable::write(&store.path("r"), MAGIC_V1, &postcard::to_stdvec(&v1).unwrap()).unwrap();
        let loaded = store.load("r").unwrap().unwrap();
        assert_eq!((loaded.position, loaded.results, loaded.source_state), (Some(41), 12, None));

        let v2 = (1u64, 7u32, 1_000i64, Some(41u64), None::<Vec<u8>>, vec![None::<Vec<u8>>], 12u64, Some(vec![9u8]));
        durable::write(&store.path("r"), MAGIC_V2, &postcard::to_stdvec(&v2).unwrap()).unwrap();
        let loaded = store.load("r").unwrap().unwrap();
        assert_eq!((loaded.source_state, loaded.analytic), (Some(vec![9]), None));

        let with_window =
            (1u64, 7u32, 1_000i64, Some(41u64), Some(vec![1u8]), vec![None::<Vec<u8>>], 12u64, None::<Vec<u8>>);
        durable::write(&store.path("r"), MAGIC_V2, &postcard::to_stdvec(&with_window).unwrap()).unwrap();
        let e = store.load("r").unwrap_err().to_string();
        assert!(e.contains("earlier version of Oort"), "{e}");
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
