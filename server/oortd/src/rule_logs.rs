//! A rule's own log file (eKuiper's `logFilename`): every log event that
//! names the rule (`rule = <id>`) is also written, one line each, to
//! `<data_dir>/logs/<logFilename>`. A file holds at most
//! [`MAX_FILE_BYTES`]; past that it becomes `<name>.1` (replacing the one
//! before) and a new file starts, so a rule's logs never fill the disk.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The most bytes of one log file before it is rotated.
pub const MAX_FILE_BYTES: u64 = 10 << 20;
/// The longest log file name.
const MAX_NAME_LEN: usize = 128;

/// An open log file and how much it holds.
struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
}

impl LogFile {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self { path, file, written })
    }

    fn append(&mut self, line: &str) -> std::io::Result<()> {
        if self.written + line.len() as u64 > MAX_FILE_BYTES {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, rotated)?;
            *self = Self::open(self.path.clone())?;
        }
        self.file.write_all(line.as_bytes())?;
        self.written += line.len() as u64;
        Ok(())
    }
}

/// Which rules log to which file; one per process ([`RuleLogs::global`]).
#[derive(Default)]
pub struct RuleLogs {
    /// Whether any rule has a file: the cheap test every log event makes.
    any: AtomicBool,
    /// Rule id → its file, shared by the rules that name the same one.
    rules: RwLock<HashMap<String, Arc<Mutex<LogFile>>>>,
}

impl RuleLogs {
    /// The process's rule logs, which the logging layer writes.
    pub fn global() -> &'static RuleLogs {
        static LOGS: OnceLock<RuleLogs> = OnceLock::new();
        LOGS.get_or_init(RuleLogs::default)
    }

    /// Sends the logs of rule `id` to `dir/name` too, or (`None`) to no file of its own.
    pub fn set(&self, id: &str, file: Option<(&Path, &str)>) -> std::io::Result<()> {
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        rules.remove(id);
        if let Some((dir, name)) = file {
            let path = dir.join(name);
            let shared = rules.values().find(|f| f.lock().unwrap_or_else(|p| p.into_inner()).path == path).cloned();
            let file = match shared {
                Some(file) => file,
                None => {
                    std::fs::create_dir_all(dir)?;
                    Arc::new(Mutex::new(LogFile::open(path)?))
                }
            };
            rules.insert(id.to_owned(), file);
        }
        self.any.store(!rules.is_empty(), Ordering::Relaxed);
        Ok(())
    }

    fn write(&self, id: &str, line: &str) {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = rules.get(id) {
            // A log that cannot be written is not worth a log line of its own.
            let _ = file.lock().unwrap_or_else(|p| p.into_inner()).append(line);
        }
    }
}

/// Checks a `logFilename`: a plain file name, written in the server's log directory.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "log_filename {name:?} must be a file name of 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', not \
             starting with '.' (it is written in the server's log directory)"
        ))
    }
}

/// The logging layer that copies the events naming a rule to its file.
pub struct RuleLogLayer;

impl<S: Subscriber> Layer<S> for RuleLogLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let logs = RuleLogs::global();
        if !logs.any.load(Ordering::Relaxed) {
            return;
        }
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let Some(rule) = line.rule else { return };
        let meta = event.metadata();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let message = if line.message.is_empty() { String::new() } else { format!(" {}", line.message) };
        let text = format!("{time} {} {}:{message}{}\n", meta.level(), meta.target(), line.fields);
        logs.write(&rule, &text);
    }
}

/// The message, the `rule` field and the other fields of an event.
#[derive(Default)]
struct LineVisitor {
    message: String,
    rule: Option<String>,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "rule" => self.rule = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "rule" => self.rule = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_files() {
        assert!(check_name("rule1.log").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "x y", &"a".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_full_file_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = LogFile::open(dir.path().join("r.log")).unwrap();
        file.written = MAX_FILE_BYTES - 3;
        file.append("one line\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("r.log")).unwrap(), "one line\n");
        assert!(dir.path().join("r.log.1").exists());
    }
}
