//! The `file` source and sink, as eKuiper's: a stream reads the rows of a local
//! file (or of every file of a directory), a rule action appends its results to
//! a file. The sink writes what the source reads.
//!
//! ```sql
//! CREATE STREAM readings () WITH (TYPE="file", DATASOURCE="readings.jsonl", FORMAT="json")
//! CREATE TABLE devices () WITH (TYPE="file", DATASOURCE="/var/lib/oort/files/devices.csv", FORMAT="csv")
//! ```
//!
//! ```json
//! {"file": {"path": "out/results.jsonl", "sendSingle": true}}
//! ```
//!
//! Every path must lie inside the file roots ([`oort_policy::FileRoots`]):
//! `<data_dir>/files`, where relative paths resolve, and the directories of
//! `file_roots` in `oort.toml`. Symlinks are followed before the check, and
//! only regular files (or, for a source, directories) are accepted. A path
//! outside is refused when the stream or the rule is created, and checked
//! again each time the file is opened.
//!
//! # Source (stream options)
//!
//! | option | meaning |
//! |---|---|
//! | `DATASOURCE` | The file, or a directory whose regular files are all read in name order (entries that link out of the roots are skipped with a warning). A relative path is resolved against `FILE_BASE` if given, else against `<data_dir>/files`. |
//! | `FORMAT` | `json` (default): JSON lines (one object, or one array of objects, per line), or one document over many lines (an array of objects, or an object): the first line that is not blank tells which, a document being a first line that is valid JSON cut short. `csv` (or eKuiper's `delimited`): CSV with a header line. |
//! | `DELIMITER` | CSV field separator, one character (`\t` for a tab); default `,`. |
//! | `FILE_BASE` | Base directory of a relative `DATASOURCE` (eKuiper's `path` setting). |
//! | `INTERVAL` | Milliseconds between two reads of the file; `0` (default) reads it once. |
//! | `SEND_INTERVAL` | Milliseconds between two events; default `0`. |
//! | `IGNORE_START_LINES` | Lines skipped at the start (blank lines not counted); default `0`. |
//! | `IGNORE_END_LINES` | Lines skipped at the end (blank lines not counted); default `0`. |
//!
//! eKuiper sets `interval`, `sendInterval`, `ignoreStartLines` and
//! `ignoreEndLines` in its `file.yaml` profiles, chosen by `CONF_KEY`; Oort has
//! no profiles yet, so they are written in the stream's `WITH (...)`:
//!
//! ```sql
//! CREATE STREAM replay () WITH (TYPE="file", DATASOURCE="log.csv", FORMAT="csv", INTERVAL="60000", IGNORE_START_LINES="2")
//! ```
//!
//! Any other key is refused when the stream is created, at its position.
//! Without `INTERVAL` the source reads the file once and ends; a table keeps
//! the rows; a stream's rule finishes: its open windows are emitted, its
//! state becomes `finished` (not failed, and not restarted to read the file
//! again), and `StartRule` runs it again.
//!
//! A file read once replays for a rule whose `qos` asks for at least once:
//! its events are numbered in the order read (their position), and a
//! checkpoint saves, with its position, a seek point: a file of the directory
//! and a byte where a record starts, at or before the position (every 256
//! events or so: a line of JSON lines or a CSV record when no lines are
//! ignored, otherwise the file's start). A rule restarting from it opens that
//! file at that byte and skips the few events up to the position
//! (`docs/delivery.md`). A file read every `INTERVAL` does not replay: each
//! read is new input.
//!
//! Files are streamed: a blocking thread reads a line (or an element of a JSON
//! document) at a time and hands events to the rule 256 at a time, waiting
//! while the rule's buffer is full, so memory holds a batch, not the file. A
//! line, CSV record or document element is at most 16 MiB
//! (`MAX_RECORD_BYTES`): a longer JSON line is skipped and counted
//! as an error of the source operator (the read goes on); a longer document
//! element or CSV line ends the read with an error.
//!
//! Each row is an event with the metadata `file` (the path read), read in SQL
//! with `meta(file)`. A JSON line holding an object goes to the rule as bytes,
//! which its decoder reads into the stream's declared fields as for any other
//! source; a line that does not parse (or is not an object) is rejected there
//! and counted in the rule status. The elements of an array are emitted
//! decoded. A document that turns out invalid ends the read with an error
//! naming its line and column, after the rows before it. CSV cells become BIGINT
//! if they parse as one, else FLOAT, else BOOLEAN (`true`/`false`, any case),
//! else STRING; an empty cell is NULL. A CSV record with the wrong number of
//! cells is skipped, counted as an error of the source operator and logged. A missing or unreadable
//! file is a `ConnectorError::External` naming the path, which the rule's
//! restart strategy handles.
//!
//! # Sink (action properties)
//!
//! | property | meaning |
//! |---|---|
//! | `path` | Required. The file to append to; a relative path is resolved against `<data_dir>/files`. Missing parent directories are created. The file is opened without following a final symlink. A template (`out/{{.device}}.jsonl`) names a file per row (`sendSingle`) or result: see [`dynamic`]. |
//! | `fileType` | `lines` (default): each payload on its own line. `csv`: one CSV record per row. |
//! | `hasHeader` | `csv` only: write a header line (column names) when the file is new or empty. Default `false`, as eKuiper. |
//! | `delimiter` | `csv` only: the field separator, one character; default `,`. |
//! | `rollingInterval` | Milliseconds: the current file is closed, and a new one started, when a result comes after it is this old. Default `0`: never. |
//! | `rollingCount` | The current file is closed, and a new one started, once it holds this many payloads (CSV records). Default `0`: never. |
//! | `rollingNamePattern` | With rolling, where a file's start time (Unix ms) goes in its name: `suffix` (default, `results-1733565600000.jsonl`) or `prefix` (`1733565600000-results.jsonl`). |
//! | common properties | `sendSingle`, `dataTemplate`, `dataField`, `fields`, `format`, `omitIfEmpty`: see [`crate::encode`]. |
//!
//! With `lines`, the payloads are made by the [`SinkEncoder`](crate::encode::SinkEncoder):
//! by default one JSON array per result and line, with `sendSingle` one JSON
//! object per row and line (the source reads both back). With `csv`, every row
//! is a record: the columns are those of the first row written (after
//! `dataField`/`fields`), in order (alphabetical unless `fields` orders them);
//! later rows are written in those columns (a missing one empty, an extra one
//! dropped). NULL is an empty cell, a STRUCT or ARRAY is its JSON text, BYTEA is
//! base64. `dataTemplate` and `format: "binary"` do not apply to `csv` and are
//! rejected. A header is only written into a new or empty file: appending to a
//! file keeps its existing header.
//!
//! The file is opened when the rule starts and kept open. Results are held in
//! memory and written together: every `interval` milliseconds (default 1000,
//! as eKuiper's flush interval; `0` writes each result as it comes), when 1
//! MiB is held, at each checkpoint (then synced: a result counts as delivered
//! only once on disk) and when the rule stops. Writes go to the operating
//! system, not fsynced, outside checkpoints. So a rule at `qos` 0 may lose the
//! last second of results in a crash of the server (not of the machine's
//! page cache alone); at `qos` 1 or 2, nothing a checkpoint counted. A write
//! error keeps the held results, is reported by the next result (which the
//! engine retries), and the file is opened again. A result that cannot be
//! encoded (a template failing on a row) is dropped with a warning in the
//! server log, as retrying could only fail again.
//!
//! With rolling, `path` names the files: each is written under the path's
//! name with its start time, in the path's directory, and synced when it is
//! closed (a CSV file gets its own header). A checkpoint's mark names the
//! current file and its length: a rule restarting from it (`qos` 2) cuts that
//! file back and removes the files this sink started after it, then writes
//! their results again.
//!
//! # Not supported yet
//!
//! Source: `CONF_KEY` profiles (see above); other formats (`binary`, `protobuf`) and other line
//! formats; CSV without a header line (`hasHeader: false`, `columns`);
//! `actionAfterRead`/`moveTo`, `parallel`, `decompression`; following a file
//! as it grows (with `INTERVAL`, each read emits the whole file again).
//!
//! Sink: `fileType: "json"` (a JSON array file, rejected), `checkInterval`
//! (a file is rolled when a result comes), `rollingNamePattern: "none"`
//! (rejected: every file would have one name), `rollingHook`, `compression`,
//! `encryption` (rejected); exactly once with a path template (at least once).

mod dynamic;
mod rolling;
mod sink;
mod source;

pub use sink::FileSinkFactory;
pub use source::FileSourceFactory;

use oort_engine::ConnectorError;

/// Parses a one-character field separator; `\t` (two characters) is a tab.
fn delimiter(text: &str, what: &str) -> Result<u8, ConnectorError> {
    match text {
        "\\t" => Ok(b'\t'),
        _ => match text.as_bytes() {
            [byte] if byte.is_ascii() && *byte != b'\n' && *byte != b'\r' && *byte != b'"' => Ok(*byte),
            _ => Err(ConnectorError::Option {
                key: what.to_owned(),
                message: format!(
                    "{what} must be one ASCII character other than a quote or a line break (or \\t), got {text:?}"
                ),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(delimiter(",", "DELIMITER").unwrap(), b',');
        assert_eq!(delimiter(";", "DELIMITER").unwrap(), b';');
        assert_eq!(delimiter(" ", "DELIMITER").unwrap(), b' ');
        assert_eq!(delimiter("\\t", "DELIMITER").unwrap(), b'\t');
        assert_eq!(delimiter("\t", "DELIMITER").unwrap(), b'\t');
        for bad in ["", "ab", "é", "\"", "\n"] {
            assert!(
                matches!(delimiter(bad, "DELIMITER"), Err(ConnectorError::Option { key, message }) if key == "DELIMITER" && message.contains("DELIMITER")),
                "{bad:?}"
            );
        }
    }
}
