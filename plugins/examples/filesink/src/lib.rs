//! `filesink`, an example native sink plugin: the action `{"type": "jsonfile",
//! "props": {"path": "/tmp/out.jsonl"}}` appends each result row to `path` as
//! one JSON object a line, and flushes after every result.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

use oort_plugin::{Plugin, Row, Sink, Value};

/// The sink.
#[derive(Default)]
pub struct JsonFile {
    path: String,
    file: Option<BufWriter<File>>,
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Into::into).unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.as_str().into(),
        Value::Bytes(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
        Value::Timestamp(ns) => (*ns / 1_000_000).into(),
        Value::List(l) => l.iter().map(json).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

impl Sink for JsonFile {
    fn configure(&mut self, props: &BTreeMap<String, Value>) -> Result<(), String> {
        match props.get("path") {
            Some(Value::String(path)) if !path.is_empty() => {
                self.path = path.clone();
                Ok(())
            }
            _ => Err("jsonfile: the property `path` (a file name) is required".to_owned()),
        }
    }

    fn open(&mut self, _: &oort_plugin::Context<'_>) -> Result<(), String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("jsonfile: cannot open {}: {e}", self.path))?;
        self.file = Some(BufWriter::new(file));
        Ok(())
    }

    fn collect(&mut self, rows: &[Row]) -> Result<(), String> {
        let file = self.file.as_mut().ok_or("jsonfile: not open")?;
        for row in rows {
            let line = json(&Value::Map(row.clone()));
            writeln!(file, "{line}").map_err(|e| format!("jsonfile: {e}"))?;
        }
        file.flush().map_err(|e| format!("jsonfile: {e}"))
    }

    fn close(&mut self) -> Result<(), String> {
        if let Some(mut file) = self.file.take() {
            file.flush().map_err(|e| format!("jsonfile: {e}"))?;
        }
        Ok(())
    }
}

/// The plugin.
pub fn plugin() -> Plugin {
    Plugin::new("filesink", env!("CARGO_PKG_VERSION")).sink("jsonfile", JsonFile::default)
}

oort_plugin::export_plugin!(plugin());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_row() {
        let dir = std::env::temp_dir().join(format!("filesink-test-{}", std::process::id()));
        let path = dir.with_extension("jsonl");
        let mut sink = JsonFile::default();
        assert!(sink.configure(&BTreeMap::new()).is_err());
        sink.configure(&BTreeMap::from([("path".to_owned(), Value::from(path.to_str().unwrap()))])).unwrap();
        sink.open(&oort_plugin::Context { rule_id: "r" }).unwrap();
        sink.collect(&[Row::from([("a".to_owned(), Value::Int(1))])]).unwrap();
        sink.close().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        let _ = std::fs::remove_file(path);
    }
}
