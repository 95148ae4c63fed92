//! `counter`, an example native source plugin: `TYPE="counter"` emits
//! `{"n": start}`, `{"n": start + 1}`, ... every `interval` milliseconds, up to
//! `limit` events if set (then it stays open, idle). Its configuration is in the DATASOURCE, as a name and
//! a query string (the stream's WITH options are eKuiper's fixed set); the name
//! goes into each event's `name` column.
//!
//! ```sql
//! CREATE STREAM ticks () WITH (TYPE="counter", DATASOURCE="t?interval=10&start=1&limit=100")
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oort_plugin::{Event, Plugin, Row, Source, Value};

/// The source.
#[derive(Debug)]
pub struct Counter {
    name: String,
    next: i64,
    interval: Duration,
    remaining: Option<u64>,
    due: Instant,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            name: String::new(),
            next: 0,
            interval: Duration::from_millis(1000),
            remaining: None,
            due: Instant::now(),
        }
    }
}

fn option(props: &BTreeMap<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match props.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| format!("counter: {key} must be an integer, got {s:?}"))
        }
        Some(other) => Err(format!("counter: {key} must be an integer, got {}", other.type_name())),
    }
}

impl Source for Counter {
    fn configure(&mut self, datasource: &str, props: &BTreeMap<String, Value>) -> Result<(), String> {
        let (name, query) = datasource.split_once('?').unwrap_or((datasource, ""));
        self.name = name.to_owned();
        // Options of the query string, then of the stream (upper-case keys), the latter winning.
        let mut props = props.clone();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("counter: `{pair}` is not key=value"))?;
            let key = key.to_ascii_uppercase();
            if !["START", "INTERVAL", "LIMIT"].contains(&key.as_str()) {
                return Err(format!("counter: unknown option `{key}`; valid options are start, interval, limit"));
            }
            props.entry(key).or_insert_with(|| Value::from(value));
        }
        self.next = option(&props, "START")?.unwrap_or(0);
        let interval = option(&props, "INTERVAL")?.unwrap_or(1000);
        if interval < 0 {
            return Err(format!("counter: INTERVAL must be >= 0, got {interval}"));
        }
        self.interval = Duration::from_millis(interval as u64);
        self.remaining = option(&props, "LIMIT")?.map(|l| l.max(0) as u64);
        Ok(())
    }

    fn open(&mut self, _: &oort_plugin::Context<'_>) -> Result<(), String> {
        self.due = Instant::now();
        Ok(())
    }

    fn read(&mut self, timeout: Duration) -> Result<Option<Vec<Event>>, String> {
        if self.remaining == Some(0) {
            // Done, but stay open: a source that ends is restarted by its rule.
            std::thread::sleep(timeout);
            return Ok(Some(Vec::new()));
        }
        let now = Instant::now();
        if self.due > now {
            std::thread::sleep((self.due - now).min(timeout));
            if Instant::now() < self.due {
                return Ok(Some(Vec::new()));
            }
        }
        let mut row = Row::new();
        row.insert("n".to_owned(), Value::Int(self.next));
        row.insert("name".to_owned(), Value::String(self.name.clone()));
        self.next += 1;
        self.remaining = self.remaining.map(|r| r - 1);
        self.due += self.interval;
        Ok(Some(vec![Event::new(row)]))
    }
}

/// The plugin.
pub fn plugin() -> Plugin {
    Plugin::new("counter", env!("CARGO_PKG_VERSION")).source("counter", Counter::default)
}

oort_plugin::export_plugin!(plugin());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_start_up_to_the_limit() {
        let mut c = Counter::default();
        c.configure("t?start=5&interval=0&limit=2", &BTreeMap::new()).unwrap();
        assert_eq!(c.name, "t");
        let n = |e: Option<Vec<Event>>| e.unwrap()[0].row["n"].clone();
        assert_eq!(n(c.read(Duration::ZERO).unwrap()), Value::Int(5));
        assert_eq!(n(c.read(Duration::ZERO).unwrap()), Value::Int(6));
        assert_eq!(c.read(Duration::ZERO).unwrap(), Some(Vec::new()), "idle after the limit");
        assert!(c.configure("t", &BTreeMap::from([("START".to_owned(), Value::from("x"))])).is_err());
        assert!(c.configure("t?speed=3", &BTreeMap::new()).unwrap_err().contains("unknown option `SPEED`"));
    }
}
