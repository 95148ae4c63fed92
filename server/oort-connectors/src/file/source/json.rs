//! JSON content of a `file` stream: JSON lines, or one JSON document whose
//! array's elements are emitted as they are parsed.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use oort_engine::json::{JsonValue, value_to_json};
use oort_engine::{Payload, Value};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{Emit, Halt, MAX_RECORD_BYTES, PEEK_BYTES, failed};

/// JSON content: JSON lines (an object, or an array of objects, a line), or
/// one document (an array of objects, or an object) over many lines, told
/// apart by the first line that is not blank. What is not an object is passed
/// on as bytes for the rule's decoder to reject.
pub(super) fn read_json(mut reader: impl BufRead, path: &Path, emit: &mut dyn Emit) -> Result<(), Halt> {
    let mut first = Vec::new();
    let mut at = LinePosition { number: Some(0), offset: 0 };
    loop {
        first.clear();
        if (&mut reader).take(PEEK_BYTES as u64).read_until(b'\n', &mut first).map_err(|e| failed(path, e))? == 0 {
            return Ok(());
        }
        at.number = at.number.map(|n| n + 1);
        if !first.trim_ascii().is_empty() {
            break;
        }
        at.offset += first.len() as u64;
    }
    let cut = first.len() >= PEEK_BYTES && !first.ends_with(b"\n");
    let unfinished = || serde_json::from_slice::<serde::de::IgnoredAny>(first.trim_ascii()).is_err_and(|e| e.is_eof());
    if cut || unfinished() {
        return read_document(std::io::Cursor::new(first).chain(reader), path, emit);
    }
    emit.record_start(at.offset);
    json_line(&first, emit)?;
    at.offset += first.len() as u64;
    read_json_lines(reader, path, emit, at)
}

/// Where a line is: its number when the read started at the file's start,
/// and its first byte.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinePosition {
    pub(super) number: Option<usize>,
    pub(super) offset: u64,
}

/// The lines after `at` (the position of the last line read) of JSON lines.
pub(super) fn read_json_lines(
    mut reader: impl BufRead,
    path: &Path,
    emit: &mut dyn Emit,
    mut at: LinePosition,
) -> Result<(), Halt> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_RECORD_BYTES as u64 + 1).read_until(b'\n', &mut line);
        if read.map_err(|e| failed(path, e))? == 0 {
            return Ok(());
        }
        at.number = at.number.map(|n| n + 1);
        let start = at.offset;
        at.offset += line.len() as u64;
        if line.len() > MAX_RECORD_BYTES && !line.ends_with(b"\n") {
            at.offset += reader.skip_until(b'\n').map_err(|e| failed(path, e))? as u64;
            let limit = MAX_RECORD_BYTES >> 20;
            let which = at.number.map_or_else(|| format!("the line at byte {start}"), |n| format!("line {n}"));
            emit.skipped(format!("file {}: {which} is longer than {limit} MiB; skipped", path.display()))?;
            continue;
        }
        emit.record_start(start);
        json_line(&line, emit)?;
    }
}

/// Passes on everything but record starts: for a read whose offsets are not
/// the file's (lines ignored).
pub(super) struct NoRecordStarts<'a>(pub(super) &'a mut dyn Emit);

impl Emit for NoRecordStarts<'_> {
    fn event(&mut self, payload: Payload) -> Result<(), Halt> {
        self.0.event(payload)
    }

    fn skipped(&mut self, why: String) -> Result<(), Halt> {
        self.0.skipped(why)
    }
}

/// One JSON line: an object goes to the rule as bytes, which its decoder
/// reads into the stream's declared fields only; an array is split into its
/// elements; anything else is passed on for the decoder to reject.
fn json_line(line: &[u8], emit: &mut dyn Emit) -> Result<(), Halt> {
    let line = line.trim_ascii();
    match line.first() {
        None => Ok(()),
        Some(b'[') => match serde_json::from_slice::<JsonValue>(line) {
            Ok(JsonValue(Value::List(items))) => {
                Arc::unwrap_or_clone(items).into_iter().try_for_each(|item| emit.event(element(item)))
            }
            _ => emit.event(Payload::Bytes(line.to_vec())),
        },
        Some(_) => emit.event(Payload::Bytes(line.to_vec())),
    }
}

/// An element of an array: an object is a row, anything else its JSON text.
fn element(value: Value) -> Payload {
    match value {
        Value::Map(map) => Payload::Map(Arc::unwrap_or_clone(map)),
        other => Payload::Bytes(value_to_json(&other).to_string().into_bytes()),
    }
}

/// One JSON document over many lines, its array's elements emitted as they
/// are parsed. An element over [`MAX_RECORD_BYTES`] or a syntax error ends the
/// read with an error naming the line and column (the elements before it are
/// emitted).
fn read_document(reader: impl Read, path: &Path, emit: &mut dyn Emit) -> Result<(), Halt> {
    let budget = Rc::new(Cell::new(MAX_RECORD_BYTES));
    let reader = BufReader::new(Budgeted { inner: reader, left: Rc::clone(&budget) });
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut halted = None;
    let parsed = Document { emit, budget: &budget, halted: &mut halted }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match (halted, parsed) {
        (Some(halt), _) => Err(halt),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(failed(path, format!("invalid JSON document: {e}"))),
    }
}

/// A reader that fails once it has given `left` bytes, reset per element of a document.
struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<usize>>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            let limit = MAX_RECORD_BYTES >> 20;
            return Err(std::io::Error::other(format!("an element is longer than {limit} MiB")));
        }
        let take = buf.len().min(left);
        let read = self.inner.read(&mut buf[..take])?;
        self.left.set(left - read);
        Ok(read)
    }
}

/// Emits a JSON document's rows as the parser reaches them.
struct Document<'a> {
    emit: &'a mut dyn Emit,
    budget: &'a Cell<usize>,
    /// Why emitting stopped, when it did (the parser only carries its own errors).
    halted: &'a mut Option<Halt>,
}

impl Document<'_> {
    fn emit<E: serde::de::Error>(&mut self, payload: Payload) -> Result<(), E> {
        self.budget.set(MAX_RECORD_BYTES);
        self.emit.event(payload).map_err(|halt| {
            *self.halted = Some(halt);
            E::custom("stopped")
        })
    }
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of objects, or a JSON object")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(JsonValue(value)) = seq.next_element()? {
            self.emit(element(value))?;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let deserializer = serde::de::value::MapAccessDeserializer::new(map);
        let JsonValue(value) = serde::Deserialize::deserialize(deserializer)?;
        self.emit(element(value))
    }
}
