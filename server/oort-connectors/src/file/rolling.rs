//! The file sink's rolling, as eKuiper's `rollingInterval`, `rollingCount`
//! and `rollingNamePattern`: results go to a file whose name carries the
//! time it was started (Unix ms, before or after the name), and a new one is
//! started once the current one is old enough or holds enough results.
//!
//! A checkpoint's mark names the current file and its length, so that a
//! rule restarting from it (exactly once) cuts that file back and removes
//! the files this sink started after it: what they hold is written again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oort_engine::ConnectorError;

/// Where the start time goes in a rolled file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NamePattern {
    /// `<ms>-<name>`.
    Prefix,
    /// `<stem>-<ms>.<extension>`.
    Suffix,
}

/// When to start a new file, and how files are named.
#[derive(Debug, Clone)]
pub(super) struct Rolling {
    /// A file at least this old is closed when the next result comes.
    pub interval: Option<Duration>,
    /// A file is closed once it holds this many payloads (or CSV records).
    pub count: Option<u64>,
    pattern: NamePattern,
    /// The configured path: its directory and name.
    base: PathBuf,
}

impl Rolling {
    /// Rolling from the action's properties; `None` when neither the
    /// interval nor the count is positive.
    pub(super) fn of(
        base: &Path,
        interval_ms: Option<i64>,
        count: Option<i64>,
        pattern: Option<&str>,
    ) -> Result<Option<Self>, ConnectorError> {
        let interval = interval_ms.filter(|ms| *ms > 0).map(|ms| Duration::from_millis(ms as u64));
        let count = count.filter(|c| *c > 0).map(|c| c as u64);
        if interval.is_none() && count.is_none() {
            return Ok(None);
        }
        let pattern = match pattern.map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "suffix") => NamePattern::Suffix,
            Some("prefix") => NamePattern::Prefix,
            Some("none") => {
                return Err(ConnectorError::Config(
                    "rollingNamePattern \"none\" would write every rolled file under one name: use prefix or suffix"
                        .into(),
                ));
            }
            Some(other) => {
                return Err(ConnectorError::Config(format!("rollingNamePattern is prefix or suffix, not {other:?}")));
            }
        };
        Ok(Some(Self { interval, count, pattern, base: base.to_path_buf() }))
    }

    /// The file started at `ms`.
    pub(super) fn file_at(&self, ms: i64) -> PathBuf {
        let name = self.base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let rolled = match self.pattern {
            NamePattern::Prefix => format!("{ms}-{name}"),
            NamePattern::Suffix => match name.rsplit_once('.') {
                Some((stem, extension)) if !stem.is_empty() => format!("{stem}-{ms}.{extension}"),
                _ => format!("{name}-{ms}"),
            },
        };
        self.base.with_file_name(rolled)
    }

    /// The start time in a file's name, if it is one of this sink's files.
    pub(super) fn start_of(&self, path: &Path) -> Option<i64> {
        let name = path.file_name()?.to_str()?;
        let digits = |s: &str| s.parse::<i64>().ok().filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        let base = self.base.file_name()?.to_str()?;
        match self.pattern {
            NamePattern::Prefix => digits(name.strip_suffix(base)?.strip_suffix('-')?),
            NamePattern::Suffix => match base.rsplit_once('.') {
                Some((stem, extension)) if !stem.is_empty() => {
                    digits(name.strip_prefix(stem)?.strip_prefix('-')?.strip_suffix(extension)?.strip_suffix('.')?)
                }
                _ => digits(name.strip_prefix(base)?.strip_prefix('-')?),
            },
        }
    }

    /// This sink's files started after `ms`, in its directory.
    pub(super) fn files_after(&self, ms: i64) -> std::io::Result<Vec<PathBuf>> {
        let dir = self.base.parent().unwrap_or(Path::new("."));
        let mut later = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry?.path();
                    if self.start_of(&path).is_some_and(|start| start > ms) {
                        later.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(later)
    }
}

/// A checkpoint's mark: the file's length, with the file's name when the sink rolls.
pub(super) fn encode_mark(file: Option<&Path>, length: u64) -> Vec<u8> {
    let mut mark = length.to_le_bytes().to_vec();
    if let Some(name) = file.and_then(Path::file_name) {
        mark.extend_from_slice(name.to_string_lossy().as_bytes());
    }
    mark
}

/// The file name (when rolling) and the length of a mark.
pub(super) fn decode_mark(mark: &[u8]) -> Option<(Option<String>, u64)> {
    let (length, name) = mark.split_at_checked(8)?;
    let length = u64::from_le_bytes(length.try_into().ok()?);
    let name = if name.is_empty() { None } else { Some(String::from_utf8(name.to_vec()).ok()?) };
    Some((name, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_start_time_and_are_recognised() {
        let suffix = Rolling::of(Path::new("/d/out.jsonl"), Some(1000), None, None).unwrap().unwrap();
        assert_eq!(suffix.file_at(42), Path::new("/d/out-42.jsonl"));
        assert_eq!(suffix.start_of(Path::new("/d/out-42.jsonl")), Some(42));
        assert_eq!(suffix.start_of(Path::new("/d/out-x.jsonl")), None);
        assert_eq!(suffix.start_of(Path::new("/d/other-42.jsonl")), None);
        let prefix = Rolling::of(Path::new("/d/out"), None, Some(5), Some("prefix")).unwrap().unwrap();
        assert_eq!(prefix.file_at(7), Path::new("/d/7-out"));
        assert_eq!(prefix.start_of(Path::new("/d/7-out")), Some(7));
        assert!(Rolling::of(Path::new("/d/out"), Some(0), Some(0), None).unwrap().is_none());
        assert!(Rolling::of(Path::new("/d/out"), Some(1), None, Some("none")).is_err());
    }

    #[test]
    fn marks_round_trip() {
        assert_eq!(decode_mark(&encode_mark(None, 9)), Some((None, 9)));
        let mark = encode_mark(Some(Path::new("/d/out-42.jsonl")), 9);
        assert_eq!(decode_mark(&mark), Some((Some("out-42.jsonl".to_owned()), 9)));
        assert_eq!(decode_mark(&[1, 2]), None);
    }
}
