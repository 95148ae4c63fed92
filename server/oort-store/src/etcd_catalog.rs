//! [`EtcdCatalog`]: the catalog in etcd, shared by every `oortd` that names
//! the same etcd cluster and prefix.
//!
//! Keys, under the prefix (`/oort/` by default), hold the same versioned
//! records as [`crate::SledCatalog`]'s trees:
//! - `streams/<name>`, `rules/<id>`, `plugins/<name>`, `services/<name>`,
//!   `connections/<name>`, `schemas/<name>`, `keyed_state/<key>`;
//! - `rule_reads/<id>`: the streams a rule reads, `\0`-separated, and
//!   `stream_readers/<stream>\0<rule>`, its reverse index;
//! - `revision`: bumped by every write.
//!
//! Writes are serializable: each reads `revision`'s modification revision,
//! makes its checks (a stream that rules read, a key that exists) with plain
//! reads, and commits every key it changes in one etcd transaction that holds
//! only if `revision` is unchanged, bumping it. A writer that lost the race to
//! another instance checks again and retries. So the relations the catalog
//! keeps hold across instances as they do in one process, and a write is on a
//! quorum of etcd's members, durable, when it returns.
//!
//! The `Catalog` trait is synchronous, as sled is; etcd's client is async, so
//! calls run on a small runtime of the catalog's own and the caller waits
//! (each call bounded by the configured timeout): safe from any thread,
//! inside the server's runtime or not.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, LeaseClient, Txn, TxnOp, WatchClient,
};
use oort_proto::v1::{Connection, KeyedValue, Rule, Schema, Stream, Value};

use crate::catalog::{Catalog, CatalogChange};
use crate::error::{EntityKind, StoreError};
use crate::ownership::{EtcdOwnership, Ownership};
use crate::record::{PluginRecord, Record, ServiceRecord};

/// etcd's default `--max-txn-ops`: the most keys one write may change.
const MAX_TXN_OPS: usize = 128;
/// Writes that lose the race to another instance this many times in a row fail.
const MAX_ATTEMPTS: usize = 32;
const RULE_READS: &str = "rule_reads";
const STREAM_READERS: &str = "stream_readers";
const REVISION: &str = "revision";
/// Plugin archives, in chunks under `plugin_archives/<sha256>/<n>`.
const ARCHIVES: &str = "plugin_archives";
/// A chunk of a plugin archive: well under etcd's default request limit (1.5 MiB).
const ARCHIVE_CHUNK: usize = 512 * 1024;

/// Where the shared catalog is.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `host:port` of etcd's members (any number of them).
    pub endpoints: Vec<String>,
    /// The prefix of every key: instances with the same prefix share a catalog.
    pub prefix: String,
    /// The longest a call may take, connecting included.
    pub timeout: Duration,
}

impl EtcdConfig {
    /// Reads `etcd://host:port[,host:port...][/prefix]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| format!("{url:?} is not an etcd:// URL"))?;
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoints: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
        if endpoints.is_empty() {
            return Err(format!("{url:?} names no etcd member (etcd://host:port,...)"));
        }
        let path = path.trim_matches('/');
        let prefix = if path.is_empty() { "/oort/".to_owned() } else { format!("/{path}/") };
        Ok(Self { endpoints, prefix, timeout: Duration::from_secs(5) })
    }
}

/// The catalog in etcd.
pub struct EtcdCatalog {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    prefix: String,
    timeout: Duration,
    /// Runs the client's calls; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for EtcdCatalog {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another's context (the server's):
        // let its threads go in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A change of one key inside a write.
enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

fn etcd_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Etcd(error.to_string())
}

fn reader_key(stream: &str, rule: &str) -> String {
    format!("{STREAM_READERS}/{stream}\0{rule}")
}

fn split_names(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|b| *b == 0).map(|n| String::from_utf8_lossy(n).into_owned()).collect()
}

fn distinct(sources: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(sources.len());
    for source in sources {
        if !out.contains(source) {
            out.push(source.clone());
        }
    }
    out
}

/// The SHA-256 of `bytes`, in hex: a plugin archive's name.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl EtcdCatalog {
    /// `plugin_archives/<sha256>/` and, with `index`, one chunk's key under it.
    fn archive_key(&self, sha256: &str, index: Option<usize>) -> String {
        let base = self.key(&format!("{ARCHIVES}/{sha256}/"));
        index.map_or_else(|| base.clone(), |i| format!("{base}{i:06}"))
    }

    /// Connects to etcd and checks that it answers.
    pub fn connect(config: &EtcdConfig) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("oort-etcd")
            .enable_all()
            .build()
            .map_err(etcd_error)?;
        let options = ConnectOptions::new().with_connect_timeout(config.timeout).with_timeout(config.timeout);
        let endpoints = config.endpoints.clone();
        let connect = async move { Client::connect(endpoints, Some(options)).await };
        let client = block(runtime.handle(), config.timeout, connect)?;
        // The members that are down at start leave the balance before the first read.
        let mut members = crate::etcd_members::Members::new(client.clone(), &config.endpoints);
        let check = async move {
            members.check().await;
            Ok(members)
        };
        let members = block(runtime.handle(), config.timeout.max(Duration::from_secs(2)), check)?;
        runtime.spawn(members.follow());
        let catalog = Self {
            kv: client.kv_client(),
            watch: client.watch_client(),
            lease: client.lease_client(),
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            runtime: Some(runtime),
        };
        // The client connects lazily: a first read tells now whether etcd is there.
        catalog.revision()?;
        Ok(catalog)
    }

    fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    ) -> Result<T, StoreError> {
        block(self.runtime.as_ref().expect("the runtime lives until drop").handle(), self.timeout, call)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (mut kv, key) = (self.kv.clone(), self.key(key));
        let mut response = self.run(async move { kv.get(key, None).await })?;
        Ok(response.take_kvs().into_iter().next().map(|kv| kv.value().to_vec()))
    }

    /// The keys under `prefix` with their values, in key order, the prefix
    /// taken off; at most `limit` (0: all) from `from` on.
    fn scan(&self, prefix: &str, from: Option<&str>, limit: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = self.key(from.filter(|from| *from > prefix).unwrap_or(prefix));
        let end = prefix_end(self.key(prefix).into_bytes());
        let mut kv = self.kv.clone();
        let options = GetOptions::new().with_range(end).with_limit(limit);
        let mut response = self.run(async move { kv.get(start, Some(options)).await })?;
        let cut = self.key(prefix).len();
        Ok(response
            .take_kvs()
            .into_iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key()[cut..]).into_owned(), kv.value().to_vec()))
            .collect())
    }

    fn count(&self, prefix: &str) -> Result<usize, StoreError> {
        let (mut kv, start) = (self.kv.clone(), self.key(prefix));
        let options = GetOptions::new().with_prefix().with_count_only();
        let response = self.run(async move { kv.get(start, Some(options)).await })?;
        Ok(usize::try_from(response.count()).unwrap_or(usize::MAX))
    }

    /// The modification revision of the `revision` key; 0 before the first write.
    fn revision(&self) -> Result<i64, StoreError> {
        let (mut kv, key) = (self.kv.clone(), self.key(REVISION));
        let mut response = self.run(async move { kv.get(key, None).await })?;
        Ok(response.take_kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Runs a write: `plan` reads what it must check and says what to change;
    /// the changes are committed together if no other write came between, and
    /// planned again if one did.
    fn write<T>(&self, mut plan: impl FnMut() -> Result<(Vec<Op>, T), StoreError>) -> Result<T, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let revision = self.revision()?;
            let (ops, out) = plan()?;
            if ops.len() + 1 > MAX_TXN_OPS {
                return Err(StoreError::Etcd(format!(
                    "one write would change {} keys; etcd takes at most {MAX_TXN_OPS} in a transaction",
                    ops.len()
                )));
            }
            let mut txn_ops: Vec<TxnOp> = ops
                .into_iter()
                .map(|op| match op {
                    Op::Put(key, value) => TxnOp::put(self.key(&key), value, None),
                    Op::Delete(key) => TxnOp::delete(self.key(&key), None),
                })
                .collect();
            txn_ops.push(TxnOp::put(self.key(REVISION), Vec::new(), None));
            let txn = Txn::new()
                .when([Compare::mod_revision(self.key(REVISION), CompareOp::Equal, revision)])
                .and_then(txn_ops);
            let mut kv = self.kv.clone();
            if self.run(async move { kv.txn(txn).await })?.succeeded() {
                return Ok(out);
            }
        }
        Err(StoreError::Etcd(format!("the write lost the race to other writers {MAX_ATTEMPTS} times in a row")))
    }

    fn get_record<R: Record>(&self, key: &str, kind: EntityKind) -> Result<R, StoreError> {
        match self.get(&format!("{}/{key}", R::TREE))? {
            Some(bytes) => R::from_bytes(key, &bytes),
            None => Err(StoreError::NotFound { kind, name: key.to_owned() }),
        }
    }

    fn list_records<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        let tree = format!("{}/", R::TREE);
        self.scan(&tree, None, 0)?.into_iter().map(|(key, bytes)| R::from_bytes(&key, &bytes)).collect()
    }

    fn create_record<R: Record>(&self, record: &R, kind: EntityKind) -> Result<(), StoreError> {
        let key = format!("{}/{}", R::TREE, record.key());
        self.write(|| {
            if self.get(&key)?.is_some() {
                return Err(StoreError::AlreadyExists { kind, name: record.key().to_owned() });
            }
            Ok((vec![Op::Put(key.clone(), record.to_bytes())], ()))
        })
    }

    fn replace_record<R: Record>(&self, record: &R, kind: EntityKind) -> Result<R, StoreError> {
        let key = format!("{}/{}", R::TREE, record.key());
        self.write(|| {
            let previous = self.get_record::<R>(record.key(), kind)?;
            Ok((vec![Op::Put(key.clone(), record.to_bytes())], previous))
        })
    }

    fn remove_record<R: Record>(&self, name: &str, kind: EntityKind) -> Result<(), StoreError> {
        let key = format!("{}/{name}", R::TREE);
        self.write(|| match self.get(&key)? {
            Some(_) => Ok((vec![Op::Delete(key.clone())], ())),
            None => Err(StoreError::NotFound { kind, name: name.to_owned() }),
        })
    }

    /// The changes that store `rule` reading `sources`, replacing what it read before.
    fn put_rule_ops(&self, rule: &Rule, sources: &[String]) -> Result<Vec<Op>, StoreError> {
        for source in sources {
            if self.get(&format!("{}/{source}", Stream::TREE))?.is_none() {
                return Err(StoreError::NotFound { kind: EntityKind::Stream, name: source.clone() });
            }
        }
        let mut ops = Vec::new();
        let read_before = self.get(&format!("{RULE_READS}/{}", rule.id))?.map(|b| split_names(&b)).unwrap_or_default();
        for stream in read_before.iter().filter(|s| !sources.contains(s)) {
            ops.push(Op::Delete(reader_key(stream, &rule.id)));
        }
        for source in sources {
            ops.push(Op::Put(reader_key(source, &rule.id), Vec::new()));
        }
        ops.push(Op::Put(format!("{RULE_READS}/{}", rule.id), sources.join("\0").into_bytes()));
        ops.push(Op::Put(format!("{}/{}", Rule::TREE, rule.id), rule.to_bytes()));
        Ok(ops)
    }
}

/// The end of the range of keys that start with `prefix`.
pub(crate) fn prefix_end(mut prefix: Vec<u8>) -> Vec<u8> {
    while let Some(last) = prefix.pop() {
        if last < 0xff {
            prefix.push(last + 1);
            return prefix;
        }
    }
    vec![0]
}

/// Runs `call` on `runtime` and waits for it, at most `timeout`.
pub(crate) fn block<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
) -> Result<T, StoreError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(tokio::time::timeout(timeout, call).await);
    });
    match receiver.recv() {
        Ok(Ok(result)) => result.map_err(etcd_error),
        Ok(Err(_)) => Err(StoreError::Etcd(format!("no answer from etcd within {} s", timeout.as_secs_f64()))),
        Err(_) => Err(StoreError::Etcd("the etcd call was dropped".to_owned())),
    }
}

impl Catalog for EtcdCatalog {
    fn create_stream(&self, stream: &Stream) -> Result<(), StoreError> {
        self.create_record(stream, EntityKind::Stream)
    }

    fn update_stream(&self, stream: &Stream) -> Result<Stream, StoreError> {
        self.replace_record(stream, EntityKind::Stream)
    }

    fn get_stream(&self, name: &str) -> Result<Stream, StoreError> {
        self.get_record(name, EntityKind::Stream)
    }

    fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        self.list_records()
    }

    fn delete_stream(&self, name: &str) -> Result<(), StoreError> {
        self.write(|| {
            let users = self.rules_reading(name)?;
            if !users.is_empty() {
                return Err(StoreError::InUse { kind: EntityKind::Stream, name: name.to_owned(), users });
            }
            let key = format!("{}/{name}", Stream::TREE);
            match self.get(&key)? {
                Some(_) => Ok((vec![Op::Delete(key)], ())),
                None => Err(StoreError::NotFound { kind: EntityKind::Stream, name: name.to_owned() }),
            }
        })
    }

    fn create_rule(&self, rule: &Rule, sources: &[String]) -> Result<(), StoreError> {
        let sources = distinct(sources);
        self.write(|| {
            if self.get(&format!("{}/{}", Rule::TREE, rule.id))?.is_some() {
                return Err(StoreError::AlreadyExists { kind: EntityKind::Rule, name: rule.id.clone() });
            }
            Ok((self.put_rule_ops(rule, &sources)?, ()))
        })
    }

    fn update_rule(&self, rule: &Rule, sources: &[String]) -> Result<Rule, StoreError> {
        let sources = distinct(sources);
        self.write(|| {
            let previous = self.get_rule(&rule.id)?;
            Ok((self.put_rule_ops(rule, &sources)?, previous))
        })
    }

    fn get_rule(&self, id: &str) -> Result<Rule, StoreError> {
        self.get_record(id, EntityKind::Rule)
    }

    fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        self.list_records()
    }

    fn delete_rule(&self, id: &str) -> Result<(), StoreError> {
        self.write(|| {
            let key = format!("{}/{id}", Rule::TREE);
            if self.get(&key)?.is_none() {
                return Err(StoreError::NotFound { kind: EntityKind::Rule, name: id.to_owned() });
            }
            let reads_key = format!("{RULE_READS}/{id}");
            let read = self.get(&reads_key)?.map(|b| split_names(&b)).unwrap_or_default();
            let mut ops: Vec<Op> = read.iter().map(|stream| Op::Delete(reader_key(stream, id))).collect();
            ops.push(Op::Delete(reads_key));
            ops.push(Op::Delete(key));
            Ok((ops, ()))
        })
    }

    fn rules_reading(&self, stream: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.scan(&reader_key(stream, ""), None, 0)?.into_iter().map(|(rule, _)| rule).collect())
    }

    fn put_plugin(&self, plugin: &PluginRecord) -> Result<Option<PluginRecord>, StoreError> {
        let key = format!("{}/{}", PluginRecord::TREE, plugin.key());
        self.write(|| {
            let previous = self.get(&key)?.map(|bytes| PluginRecord::from_bytes(&plugin.name, &bytes)).transpose()?;
            Ok((vec![Op::Put(key.clone(), plugin.to_bytes())], previous))
        })
    }

    fn get_plugin(&self, name: &str) -> Result<PluginRecord, StoreError> {
        self.get_record(name, EntityKind::Plugin)
    }

    fn list_plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.list_records()
    }

    fn delete_plugin(&self, name: &str) -> Result<(), StoreError> {
        self.remove_record::<PluginRecord>(name, EntityKind::Plugin)
    }

    fn put_plugin_archive(&self, sha256: &str, archive: &[u8]) -> Result<(), StoreError> {
        // Content-addressed: written before the record that names it, no transaction needed.
        for (index, chunk) in archive.chunks(ARCHIVE_CHUNK).enumerate() {
            let (mut kv, key, value) = (self.kv.clone(), self.archive_key(sha256, Some(index)), chunk.to_vec());
            self.run(async move { kv.put(key, value, None).await })?;
        }
        Ok(())
    }

    fn get_plugin_archive(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let (mut kv, prefix) = (self.kv.clone(), self.archive_key(sha256, None));
        let mut response = self.run(async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await })?;
        // etcd sorts by key: the chunks' numbers are zero-padded.
        let archive: Vec<u8> = response.take_kvs().iter().flat_map(|kv| kv.value().to_vec()).collect();
        let found = sha256_hex(&archive);
        if archive.is_empty() || found != sha256 {
            return Err(StoreError::Corrupt {
                tree: "plugin_archives",
                key: sha256.to_owned(),
                reason: format!("the archive kept is {} bytes of SHA-256 {found}", archive.len()),
            });
        }
        Ok(archive)
    }

    fn delete_plugin_archive(&self, sha256: &str) -> Result<(), StoreError> {
        let (mut kv, prefix) = (self.kv.clone(), self.archive_key(sha256, None));
        let options = etcd_client::DeleteOptions::new().with_prefix();
        self.run(async move { kv.delete(prefix, Some(options)).await }).map(drop)
    }

    fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        self.create_record(service, EntityKind::Service)
    }

    fn update_service(&self, service: &ServiceRecord) -> Result<ServiceRecord, StoreError> {
        self.replace_record(service, EntityKind::Service)
    }

    fn get_service(&self, name: &str) -> Result<ServiceRecord, StoreError> {
        self.get_record(name, EntityKind::Service)
    }

    fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        self.list_records()
    }

    fn delete_service(&self, name: &str) -> Result<(), StoreError> {
        self.remove_record::<ServiceRecord>(name, EntityKind::Service)
    }

    fn create_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.create_record(connection, EntityKind::Connection)
    }

    fn update_connection(&self, connection: &Connection) -> Result<Connection, StoreError> {
        self.replace_record(connection, EntityKind::Connection)
    }

    fn get_connection(&self, name: &str) -> Result<Connection, StoreError> {
        self.get_record(name, EntityKind::Connection)
    }

    fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.list_records()
    }

    fn delete_connection(&self, name: &str) -> Result<(), StoreError> {
        self.remove_record::<Connection>(name, EntityKind::Connection)
    }

    fn create_schema(&self, schema: &Schema) -> Result<(), StoreError> {
        self.create_record(schema, EntityKind::Schema)
    }

    fn update_schema(&self, schema: &Schema) -> Result<Schema, StoreError> {
        self.replace_record(schema, EntityKind::Schema)
    }

    fn get_schema(&self, name: &str) -> Result<Schema, StoreError> {
        self.get_record(name, EntityKind::Schema)
    }

    fn list_schemas(&self) -> Result<Vec<Schema>, StoreError> {
        self.list_records()
    }

    fn delete_schema(&self, name: &str) -> Result<(), StoreError> {
        self.remove_record::<Schema>(name, EntityKind::Schema)
    }

    fn put_keyed_state(&self, entries: &[KeyedValue], max_keys: usize) -> Result<usize, StoreError> {
        let tree = format!("{}/", KeyedValue::TREE);
        self.write(|| {
            let mut new_keys = std::collections::BTreeSet::new();
            let mut ops = Vec::new();
            for entry in entries {
                let key = format!("{tree}{}", entry.key());
                if self.get(&key)?.is_none() {
                    new_keys.insert(entry.key());
                }
                ops.retain(|op| !matches!(op, Op::Put(k, _) if *k == key));
                ops.push(Op::Put(key, entry.to_bytes()));
            }
            if !new_keys.is_empty() && self.count(&tree)? + new_keys.len() > max_keys {
                return Err(StoreError::Full { what: "keyed state", limit: max_keys });
            }
            Ok((ops, new_keys.len()))
        })
    }

    fn get_keyed_state(&self, key: &str) -> Result<Option<Value>, StoreError> {
        match self.get(&format!("{}/{key}", KeyedValue::TREE))? {
            Some(bytes) => Ok(KeyedValue::from_bytes(key, &bytes)?.value),
            None => Ok(None),
        }
    }

    fn list_keyed_state(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<KeyedValue>, StoreError> {
        let tree = format!("{}/", KeyedValue::TREE);
        // `after` itself is excluded: start just past it (a NUL sorts first).
        let from = after.map(|after| format!("{tree}{after}\0"));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.scan(&format!("{tree}{prefix}"), from.as_deref(), limit)?
            .into_iter()
            .map(|(rest, bytes)| {
                let key = format!("{prefix}{rest}");
                KeyedValue::from_bytes(&key, &bytes)
            })
            .collect()
    }

    fn delete_keyed_state(&self, keys: &[String]) -> Result<usize, StoreError> {
        let tree = format!("{}/", KeyedValue::TREE);
        self.write(|| {
            let mut deleted = std::collections::BTreeSet::new();
            let mut ops = Vec::new();
            for key in keys {
                if deleted.contains(key) {
                    continue;
                }
                let stored = format!("{tree}{key}");
                if self.get(&stored)?.is_some() {
                    deleted.insert(key.clone());
                    ops.push(Op::Delete(stored));
                }
            }
            Ok((ops, deleted.len()))
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every write is on a quorum of etcd's members when it returns.
        Ok(())
    }

    fn ownership(&self, instance: &str) -> Result<Option<std::sync::Arc<dyn Ownership>>, StoreError> {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop").handle().clone();
        let clients = (self.kv.clone(), self.lease.clone(), self.watch.clone());
        let ownership = EtcdOwnership::start(clients, &self.prefix, instance, runtime, self.timeout)?;
        Ok(Some(std::sync::Arc::new(ownership)))
    }

    fn watch(&self) -> Result<Option<tokio::sync::mpsc::Receiver<CatalogChange>>, StoreError> {
        let (mut kv, key) = (self.kv.clone(), self.key(REVISION));
        let response = self.run(async move { kv.get(key, None).await })?;
        // Changes after the revision of this moment: what is read from now on
        // is at this revision or later, and a change seen twice applies alike.
        let from = response.header().map_or(0, |h| h.revision()) + 1;
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.spawn(watch::follow(self.watch.clone(), self.prefix.clone(), from, sender));
        Ok(Some(receiver))
    }
}

mod watch;

#[cfg(test)]
mod tests;
