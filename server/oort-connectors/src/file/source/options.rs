//! The options of a `file` stream, checked and parsed into its typed
//! configuration (the [module documentation](super::super) lists them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use oort_engine::{ConnectorError, ConnectorOption, OptionKind, SourceConfig};
use oort_policy::{FileRoots, PathUse};

/// The options of a `file` stream (module documentation).
pub(super) const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "FILE_BASE",
        kind: OptionKind::Text,
        default: "",
        description: "Base directory of a relative DATASOURCE; default <data_dir>/files.",
    },
    ConnectorOption {
        key: "INTERVAL",
        kind: OptionKind::Millis,
        default: "0",
        description: "Milliseconds between two reads of the file; 0 reads it once.",
    },
    ConnectorOption {
        key: "SEND_INTERVAL",
        kind: OptionKind::Millis,
        default: "0",
        description: "Milliseconds between two events.",
    },
    ConnectorOption {
        key: "IGNORE_START_LINES",
        kind: OptionKind::Count,
        default: "0",
        description: "Lines skipped at the start (blank lines not counted).",
    },
    ConnectorOption {
        key: "IGNORE_END_LINES",
        kind: OptionKind::Count,
        default: "0",
        description: "Lines skipped at the end (blank lines not counted).",
    },
];

/// How the file's content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// A JSON array, a JSON object, or JSON lines.
    Json,
    /// CSV with a header line, cells separated by this byte.
    Csv(u8),
}

/// A file source's configuration, from the stream's options.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileSourceConfig {
    /// The file or directory to read: resolved inside the file roots.
    pub(super) path: PathBuf,
    /// `FORMAT` (and `DELIMITER` for CSV).
    pub(super) format: Format,
    /// `INTERVAL`: time between two reads; `None` reads once.
    pub(super) interval: Option<Duration>,
    /// `SEND_INTERVAL`: time between two events; `None` sends at once.
    pub(super) send_interval: Option<Duration>,
    /// `IGNORE_START_LINES`: non-blank lines skipped at the start.
    pub(super) ignore_start_lines: usize,
    /// `IGNORE_END_LINES`: non-blank lines skipped at the end.
    pub(super) ignore_end_lines: usize,
}

impl FileSourceConfig {
    pub(super) fn from_source_config(config: &SourceConfig, roots: &FileRoots) -> Result<Self, ConnectorError> {
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
        let path = roots.resolve(&path.to_string_lossy(), PathUse::ReadFileOrDirectory).map_err(|e| {
            let key = if option("FILE_BASE").is_some() { "FILE_BASE" } else { "DATASOURCE" };
            ConnectorError::Option { key: key.into(), message: format!("file stream {key}: {e}") }
        })?;
        let format = match option("FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Format::Json,
            Some("csv" | "delimited") => Format::Csv(match option("DELIMITER") {
                Some(d) => super::super::delimiter(d, "DELIMITER")?,
                None => b',',
            }),
            Some(other) => {
                let message = format!("a file stream reads FORMAT \"json\" or \"csv\", not \"{other}\"");
                return Err(ConnectorError::Option { key: "FORMAT".into(), message });
            }
        };
        let number = |key: &str| -> Result<u64, ConnectorError> {
            match option(key) {
                None => Ok(0),
                Some(text) => text.trim().parse::<u64>().map_err(|_| ConnectorError::Option {
                    key: key.into(),
                    message: format!("{key} must be a non-negative integer, got {text:?}"),
                }),
            }
        };
        let millis = |key: &str| number(key).map(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
        let lines = |key: &str| {
            number(key).and_then(|n| {
                usize::try_from(n).map_err(|_| ConnectorError::Option {
                    key: key.into(),
                    message: format!("{key} is too large: {n}"),
                })
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
