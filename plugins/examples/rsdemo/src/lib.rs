//! rsdemo: one plugin, two builds. As a `cdylib` it is a native plugin; with
//! the `portable` feature its `rsdemo-portable` binary is the same plugin as a
//! portable process. It provides:
//!
//! - `rs_double(x)`: twice a number (a row error for anything else);
//! - `rs_abs(x)`: the absolute value of a number, like the built-in `abs` (for benchmarks);
//! - `rs_sleep(ms, x)`: returns `x` after sleeping `ms` milliseconds (for
//!   trying call timeouts);
//! - `rs_total(x)`: an aggregate, the sum of a group's numbers;
//! - source `rs_ticks`: events `{"n": 1, 2, 3...}` every DATASOURCE ms (a
//!   number; empty means 10);
//! - sink `rs_file`: appends each row as a JSON line to the file `path`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use oort_plugin::{Context, Event, Function, Plugin, Row, Sink, Source, Value, export_plugin};

struct Double;

impl Function for Double {
    fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
        if args.len() == 1 { Ok(()) } else { Err(format!("rs_double takes 1 argument, got {}", args.len())) }
    }

    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        match &args[0] {
            Value::Int(i) => i.checked_mul(2).map(Value::Int).ok_or_else(|| format!("rs_double({i}) overflows")),
            Value::Float(f) => Ok(Value::Float(f * 2.0)),
            Value::Null => Ok(Value::Null),
            other => Err(format!("rs_double takes a number, got {}", other.type_name())),
        }
    }

    fn description(&self) -> &str {
        "twice a number"
    }
}

struct Abs;

impl Function for Abs {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        match args {
            [Value::Int(i)] => Ok(Value::Int(i.wrapping_abs())),
            [Value::Float(f)] => Ok(Value::Float(f.abs())),
            [Value::Null] => Ok(Value::Null),
            [other] => Err(format!("rs_abs takes a number, got {}", other.type_name())),
            _ => Err("rs_abs takes 1 argument".into()),
        }
    }

    fn description(&self) -> &str {
        "absolute value of a number"
    }
}

struct Sleep;

impl Function for Sleep {
    fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
        if args.len() == 2 { Ok(()) } else { Err(format!("rs_sleep takes 2 arguments, got {}", args.len())) }
    }

    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let ms = args[0].as_i64().ok_or("rs_sleep: the first argument is milliseconds")?;
        std::thread::sleep(Duration::from_millis(ms.clamp(0, 600_000) as u64));
        Ok(args[1].clone())
    }

    fn description(&self) -> &str {
        "returns its second argument after sleeping the first, in ms"
    }
}

struct Total;

impl Function for Total {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let Some(Value::List(values)) = args.first() else { return Err("rs_total takes 1 argument".into()) };
        let mut total = 0.0;
        for v in values {
            total += v.as_f64().unwrap_or(0.0);
        }
        Ok(Value::Float(total))
    }

    fn is_aggregate(&self) -> bool {
        true
    }

    fn description(&self) -> &str {
        "sum of a group's numbers"
    }
}

/// Counts up every DATASOURCE ms.
#[derive(Default)]
struct Ticks {
    interval: Duration,
    next: u64,
    due: Option<Instant>,
}

impl Source for Ticks {
    fn configure(&mut self, datasource: &str, _props: &BTreeMap<String, Value>) -> Result<(), String> {
        let interval: i64 = match datasource.trim() {
            "" => 10,
            text => text.parse().map_err(|_| format!("rs_ticks: DATASOURCE is the interval in ms, got {text:?}"))?,
        };
        if interval <= 0 {
            return Err(format!("rs_ticks: the interval must be positive, got {interval}"));
        }
        self.interval = Duration::from_millis(interval as u64);
        Ok(())
    }

    fn read(&mut self, timeout: Duration) -> Result<Option<Vec<Event>>, String> {
        let now = Instant::now();
        let due = *self.due.get_or_insert(now);
        if due > now {
            std::thread::sleep((due - now).min(timeout));
            return Ok(Some(Vec::new()));
        }
        self.next += 1;
        self.due = Some(due + self.interval);
        let mut row = Row::new();
        row.insert("n".into(), Value::Int(self.next as i64));
        Ok(Some(vec![Event::new(row)]))
    }
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::String(s) => s.clone().into(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect::<String>().into(),
        Value::Timestamp(ns) => (*ns).into(),
        Value::List(l) => l.iter().map(json).collect::<Vec<_>>().into(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

/// Appends rows to a file as JSON lines.
#[derive(Default)]
struct FileSink {
    path: String,
    file: Option<std::fs::File>,
}

impl Sink for FileSink {
    fn configure(&mut self, props: &BTreeMap<String, Value>) -> Result<(), String> {
        match props.get("path") {
            Some(Value::String(path)) if !path.is_empty() => {
                self.path = path.clone();
                Ok(())
            }
            _ => Err("rs_file needs a \"path\"".into()),
        }
    }

    fn open(&mut self, _: &Context<'_>) -> Result<(), String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path))?;
        self.file = Some(file);
        Ok(())
    }

    fn collect(&mut self, rows: &[Row]) -> Result<(), String> {
        let file = self.file.as_mut().ok_or("rs_file is not open")?;
        let mut out = String::new();
        for row in rows {
            let object: serde_json::Map<_, _> = row.iter().map(|(k, v)| (k.clone(), json(v))).collect();
            out.push_str(&serde_json::Value::Object(object).to_string());
            out.push('\n');
        }
        file.write_all(out.as_bytes()).map_err(|e| format!("cannot write {}: {e}", self.path))
    }

    fn close(&mut self) -> Result<(), String> {
        if let Some(mut file) = self.file.take() {
            file.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The plugin.
pub fn plugin() -> Plugin {
    Plugin::new("rsdemo", env!("CARGO_PKG_VERSION"))
        .function("rs_double", Double)
        .function("rs_abs", Abs)
        .function("rs_sleep", Sleep)
        .function("rs_total", Total)
        .source("rs_ticks", Ticks::default)
        .sink("rs_file", FileSink::default)
}

export_plugin!(plugin());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_compute_and_refuse() {
        let ctx = Context { rule_id: "r" };
        assert_eq!(Double.exec(&ctx, &[Value::Int(21)]), Ok(Value::Int(42)));
        assert!(Double.exec(&ctx, &[Value::String("x".into())]).unwrap_err().contains("number"));
        assert_eq!(Total.exec(&ctx, &[Value::List(vec![Value::Int(1), Value::Float(1.5)])]), Ok(Value::Float(2.5)));
        let mut ticks = Ticks::default();
        ticks.configure("1", &BTreeMap::new()).unwrap();
        assert!(ticks.configure("soon", &BTreeMap::new()).unwrap_err().contains("interval"));
        let first = ticks.read(Duration::from_millis(10)).unwrap().unwrap();
        assert_eq!(first[0].row["n"], Value::Int(1));
    }
}
