//! [`SledCatalog`]: the embedded catalog, one sled tree per kind.
//!
//! Trees:
//! - `streams`: stream name → [`Stream`] record
//! - `rules`: rule id → [`Rule`] record
//! - `rule_reads`: rule id → the stream names it reads, `\0`-separated
//! - `plugins`: plugin name → [`PluginRecord`] record
//! - `stream_readers`: `stream\0rule` → empty; the reverse index of `rule_reads`
//! - `services`: service name → [`ServiceRecord`] (an external service)
//! - `keyed_state`: key → [`KeyedValue`] (what `get_keyed_state` reads)
//! - `connections`: connection name → [`Connection`] (a named connection)
//! - `schemas`: schema name → [`Schema`] (a registered `.proto` file)
//!
//! Writers take one lock, then change all trees they touch in one sled
//! transaction and flush, so the indexes never disagree with the records, even
//! after a crash.

use std::path::Path;
use std::sync::Mutex;

use oort_proto::v1::{Connection, KeyedValue, Rule, Schema, Stream, Value};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::catalog::Catalog;
use crate::error::{EntityKind, StoreError};
use crate::record::{PluginRecord, Record, ServiceRecord};

const RULE_READS: &str = "rule_reads";
const STREAM_READERS: &str = "stream_readers";
const SEP: u8 = 0;

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Page cache size in bytes. Small by default: the catalog is small and edge
    /// devices are too.
    pub cache_capacity: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self { cache_capacity: 4 * 1024 * 1024 }
    }
}

/// The catalog in a sled database.
pub struct SledCatalog {
    db: sled::Db,
    streams: sled::Tree,
    rules: sled::Tree,
    rule_reads: sled::Tree,
    stream_readers: sled::Tree,
    plugins: sled::Tree,
    services: sled::Tree,
    keyed_state: sled::Tree,
    connections: sled::Tree,
    schemas: sled::Tree,
    /// Serializes writers: the checks that span several keys (a stream is not
    /// read by any rule) must not race with other writers.
    write_lock: Mutex<()>,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

fn from_tx(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

fn reader_key(stream: &str, rule: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1 + rule.len());
    key.extend_from_slice(stream.as_bytes());
    key.push(SEP);
    key.extend_from_slice(rule.as_bytes());
    key
}

fn join_names(names: &[String]) -> Vec<u8> {
    names.join("\0").into_bytes()
}

fn split_names(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|b| *b == SEP).map(|n| String::from_utf8_lossy(n).into_owned()).collect()
}

/// The distinct sources, in order of first appearance (a self-join reads one stream once).
fn distinct(sources: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(sources.len());
    for s in sources {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn get_record<R: Record>(tree: &sled::Tree, key: &str, kind: EntityKind) -> Result<R, StoreError> {
    match tree.get(key)? {
        Some(bytes) => R::from_bytes(key, &bytes),
        None => Err(StoreError::NotFound { kind, name: key.to_owned() }),
    }
}

/// Inserts a record whose key must be new (call under the writer lock).
fn create_record<R: Record>(tree: &sled::Tree, record: &R, kind: EntityKind) -> Result<(), StoreError> {
    let swapped = tree.compare_and_swap(record.key(), None::<&[u8]>, Some(record.to_bytes()))?;
    swapped.map_err(|_| StoreError::AlreadyExists { kind, name: record.key().to_owned() })
}

/// Replaces a record that must exist; returns the previous one (call under the writer lock).
fn replace_record<R: Record>(tree: &sled::Tree, record: &R, kind: EntityKind) -> Result<R, StoreError> {
    let previous = get_record::<R>(tree, record.key(), kind)?;
    tree.insert(record.key(), record.to_bytes())?;
    Ok(previous)
}

/// Removes a record that must exist (call under the writer lock).
fn remove_record(tree: &sled::Tree, key: &str, kind: EntityKind) -> Result<(), StoreError> {
    match tree.remove(key)? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { kind, name: key.to_owned() }),
    }
}

fn list_records<R: Record>(tree: &sled::Tree) -> Result<Vec<R>, StoreError> {
    tree.iter()
        .map(|entry| {
            let (key, value) = entry?;
            R::from_bytes(&String::from_utf8_lossy(&key), &value)
        })
        .collect()
}

impl SledCatalog {
    /// Opens (or creates) the catalog in `dir`.
    pub fn open(dir: &Path, config: &SledConfig) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(config.cache_capacity).open()?;
        Ok(Self {
            streams: db.open_tree(Stream::TREE)?,
            rules: db.open_tree(Rule::TREE)?,
            rule_reads: db.open_tree(RULE_READS)?,
            stream_readers: db.open_tree(STREAM_READERS)?,
            plugins: db.open_tree(PluginRecord::TREE)?,
            services: db.open_tree(ServiceRecord::TREE)?,
            keyed_state: db.open_tree(KeyedValue::TREE)?,
            connections: db.open_tree(Connection::TREE)?,
            schemas: db.open_tree(Schema::TREE)?,
            db,
            write_lock: Mutex::new(()),
        })
    }

    /// Runs a write under the writer lock and makes it durable.
    fn write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A poisoned lock only means another writer panicked; the data is guarded
        // by sled transactions, not by the lock, so carry on.
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let out = f()?;
        self.db.flush()?;
        Ok(out)
    }

    /// Writes `rule` and points the indexes at `sources`, replacing what the rule
    /// read before. Runs inside a transaction over the four trees.
    fn put_rule_tx(
        (streams, rules, reads, readers): (
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
        ),
        rule: &Rule,
        sources: &[String],
    ) -> TxResult<()> {
        for source in sources {
            if streams.get(source.as_bytes())?.is_none() {
                return abort(StoreError::NotFound { kind: EntityKind::Stream, name: source.clone() });
            }
        }
        if let Some(old) = reads.get(rule.id.as_bytes())? {
            for stream in split_names(&old) {
                readers.remove(reader_key(&stream, &rule.id))?;
            }
        }
        for source in sources {
            readers.insert(reader_key(source, &rule.id), &[][..])?;
        }
        reads.insert(rule.id.as_bytes(), join_names(sources))?;
        rules.insert(rule.id.as_bytes(), rule.to_bytes())?;
        Ok(())
    }
}

impl Catalog for SledCatalog {
    fn put_keyed_state(&self, entries: &[KeyedValue], max_keys: usize) -> Result<usize, StoreError> {
        self.write(|| {
            let mut batch = sled::Batch::default();
            let mut new_keys = std::collections::BTreeSet::new();
            for entry in entries {
                if !self.keyed_state.contains_key(entry.key())? {
                    new_keys.insert(entry.key());
                }
                batch.insert(entry.key(), entry.to_bytes());
            }
            // Counting is a scan: only when keys are added, and bounded by the limit.
            if !new_keys.is_empty() && self.keyed_state.iter().keys().take(max_keys).count() + new_keys.len() > max_keys
            {
                return Err(StoreError::Full { what: "keyed state", limit: max_keys });
            }
            self.keyed_state.apply_batch(batch)?;
            Ok(new_keys.len())
        })
    }

    fn get_keyed_state(&self, key: &str) -> Result<Option<Value>, StoreError> {
        match self.keyed_state.get(key)? {
            Some(bytes) => Ok(KeyedValue::from_bytes(key, &bytes)?.value),
            None => Ok(None),
        }
    }

    fn list_keyed_state(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<KeyedValue>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes().to_vec()),
            None => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        for entry in self.keyed_state.range((start, Bound::Unbounded)).take(limit) {
            let (key, value) = entry?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push(KeyedValue::from_bytes(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }

    fn delete_keyed_state(&self, keys: &[String]) -> Result<usize, StoreError> {
        self.write(|| {
            let mut batch = sled::Batch::default();
            let mut deleted = std::collections::BTreeSet::new();
            for key in keys {
                if self.keyed_state.contains_key(key.as_bytes())? {
                    deleted.insert(key);
                }
                batch.remove(key.as_bytes());
            }
            self.keyed_state.apply_batch(batch)?;
            Ok(deleted.len())
        })
    }

    fn create_stream(&self, stream: &Stream) -> Result<(), StoreError> {
        self.write(|| {
            let swapped = self.streams.compare_and_swap(stream.key(), None::<&[u8]>, Some(stream.to_bytes()))?;
            swapped.map_err(|_| StoreError::AlreadyExists { kind: EntityKind::Stream, name: stream.name.clone() })
        })
    }

    fn update_stream(&self, stream: &Stream) -> Result<Stream, StoreError> {
        self.write(|| {
            let previous = get_record::<Stream>(&self.streams, &stream.name, EntityKind::Stream)?;
            self.streams.insert(stream.key(), stream.to_bytes())?;
            Ok(previous)
        })
    }

    fn get_stream(&self, name: &str) -> Result<Stream, StoreError> {
        get_record(&self.streams, name, EntityKind::Stream)
    }

    fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        list_records(&self.streams)
    }

    fn delete_stream(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| {
            let users = self.rules_reading(name)?;
            if !users.is_empty() {
                return Err(StoreError::InUse { kind: EntityKind::Stream, name: name.to_owned(), users });
            }
            match self.streams.remove(name)? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound { kind: EntityKind::Stream, name: name.to_owned() }),
            }
        })
    }

    fn create_rule(&self, rule: &Rule, sources: &[String]) -> Result<(), StoreError> {
        let sources = distinct(sources);
        self.write(|| {
            (&self.streams, &self.rules, &self.rule_reads, &self.stream_readers)
                .transaction(|trees| {
                    if trees.1.get(rule.id.as_bytes())?.is_some() {
                        return abort(StoreError::AlreadyExists { kind: EntityKind::Rule, name: rule.id.clone() });
                    }
                    Self::put_rule_tx((&trees.0, &trees.1, &trees.2, &trees.3), rule, &sources)
                })
                .map_err(from_tx)
        })
    }

    fn update_rule(&self, rule: &Rule, sources: &[String]) -> Result<Rule, StoreError> {
        let sources = distinct(sources);
        self.write(|| {
            let previous = get_record::<Rule>(&self.rules, &rule.id, EntityKind::Rule)?;
            (&self.streams, &self.rules, &self.rule_reads, &self.stream_readers)
                .transaction(|trees| Self::put_rule_tx((&trees.0, &trees.1, &trees.2, &trees.3), rule, &sources))
                .map_err(from_tx)?;
            Ok(previous)
        })
    }

    fn get_rule(&self, id: &str) -> Result<Rule, StoreError> {
        get_record(&self.rules, id, EntityKind::Rule)
    }

    fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        list_records(&self.rules)
    }

    fn delete_rule(&self, id: &str) -> Result<(), StoreError> {
        self.write(|| {
            (&self.rules, &self.rule_reads, &self.stream_readers)
                .transaction(|(rules, reads, readers)| {
                    if rules.remove(id.as_bytes())?.is_none() {
                        return abort(StoreError::NotFound { kind: EntityKind::Rule, name: id.to_owned() });
                    }
                    if let Some(old) = reads.remove(id.as_bytes())? {
                        for stream in split_names(&old) {
                            readers.remove(reader_key(&stream, id))?;
                        }
                    }
                    Ok(())
                })
                .map_err(from_tx)
        })
    }

    fn rules_reading(&self, stream: &str) -> Result<Vec<String>, StoreError> {
        let prefix = reader_key(stream, "");
        self.stream_readers
            .scan_prefix(&prefix)
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?[prefix.len()..]).into_owned()))
            .collect()
    }

    fn put_plugin(&self, plugin: &PluginRecord) -> Result<Option<PluginRecord>, StoreError> {
        self.write(|| {
            let previous = self.plugins.insert(plugin.key(), plugin.to_bytes())?;
            previous.map(|bytes| PluginRecord::from_bytes(&plugin.name, &bytes)).transpose()
        })
    }

    fn get_plugin(&self, name: &str) -> Result<PluginRecord, StoreError> {
        get_record(&self.plugins, name, EntityKind::Plugin)
    }

    fn list_plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        list_records(&self.plugins)
    }

    fn delete_plugin(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| remove_record(&self.plugins, name, EntityKind::Plugin))
    }

    fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        self.write(|| create_record(&self.services, service, EntityKind::Service))
    }

    fn update_service(&self, service: &ServiceRecord) -> Result<ServiceRecord, StoreError> {
        self.write(|| replace_record(&self.services, service, EntityKind::Service))
    }

    fn get_service(&self, name: &str) -> Result<ServiceRecord, StoreError> {
        get_record(&self.services, name, EntityKind::Service)
    }

    fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        list_records(&self.services)
    }

    fn delete_service(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| remove_record(&self.services, name, EntityKind::Service))
    }

    fn create_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.write(|| create_record(&self.connections, connection, EntityKind::Connection))
    }

    fn update_connection(&self, connection: &Connection) -> Result<Connection, StoreError> {
        self.write(|| replace_record(&self.connections, connection, EntityKind::Connection))
    }

    fn get_connection(&self, name: &str) -> Result<Connection, StoreError> {
        get_record(&self.connections, name, EntityKind::Connection)
    }

    fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        list_records(&self.connections)
    }

    fn delete_connection(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| remove_record(&self.connections, name, EntityKind::Connection))
    }

    fn create_schema(&self, schema: &Schema) -> Result<(), StoreError> {
        self.write(|| create_record(&self.schemas, schema, EntityKind::Schema))
    }

    fn update_schema(&self, schema: &Schema) -> Result<Schema, StoreError> {
        self.write(|| replace_record(&self.schemas, schema, EntityKind::Schema))
    }

    fn get_schema(&self, name: &str) -> Result<Schema, StoreError> {
        get_record(&self.schemas, name, EntityKind::Schema)
    }

    fn list_schemas(&self) -> Result<Vec<Schema>, StoreError> {
        list_records(&self.schemas)
    }

    fn delete_schema(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| remove_record(&self.schemas, name, EntityKind::Schema))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the catalog, waiting for a dropped one's file lock: sled's
    /// flusher thread lets go of it a moment after the `Db` is dropped, so a
    /// reopen in the same process can find it still held on a busy machine.
    fn open(dir: &Path) -> SledCatalog {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledCatalog::open(dir, &SledConfig::default()) {
                Ok(catalog) => return catalog,
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("opening the catalog: {e}"),
            }
        }
    }

    #[test]
    fn the_catalog_suite_and_what_it_leaves_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        crate::suite::run(&open(dir.path()));
        let c = open(dir.path());
        let names: Vec<String> = c.list_streams().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["b", "t"]);
        assert_eq!(c.get_rule("r1").unwrap(), crate::suite::rule("r1"));
        assert_eq!(c.rules_reading("t").unwrap(), ["r1"]);
        assert_eq!(c.list_services().unwrap()[0].description_json, "{\"x\":1}");
        assert!(c.list_plugins().unwrap().is_empty());
        let keys: Vec<String> = c.list_keyed_state("", None, 10).unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["dev/a", "dev/b"]);
    }
}
