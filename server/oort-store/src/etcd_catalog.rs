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
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, LeaseClient, Txn, TxnOp, WatchClient,
    WatchOptions,
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
        runtime.spawn(follow(self.watch.clone(), self.prefix.clone(), from, sender));
        Ok(Some(receiver))
    }
}

/// What a put or delete of `key` (the catalog's prefix taken off) changes,
/// for the kinds servers keep in memory; `None` for the others.
fn change(key: &str, deleted: bool, value: &[u8]) -> Option<Result<CatalogChange, StoreError>> {
    let (tree, name) = key.split_once('/')?;
    let kind = match tree {
        t if t == Rule::TREE => EntityKind::Rule,
        t if t == Connection::TREE => EntityKind::Connection,
        t if t == Schema::TREE => EntityKind::Schema,
        t if t == ServiceRecord::TREE => EntityKind::Service,
        t if t == PluginRecord::TREE => EntityKind::Plugin,
        _ => return None,
    };
    if deleted {
        return Some(Ok(CatalogChange::Deleted(kind, name.to_owned())));
    }
    Some(match kind {
        EntityKind::Rule => Rule::from_bytes(name, value).map(|r| CatalogChange::Rule(Box::new(r))),
        EntityKind::Connection => Connection::from_bytes(name, value).map(CatalogChange::Connection),
        EntityKind::Schema => Schema::from_bytes(name, value).map(CatalogChange::Schema),
        EntityKind::Plugin => PluginRecord::from_bytes(name, value).map(CatalogChange::Plugin),
        _ => ServiceRecord::from_bytes(name, value).map(|s| CatalogChange::Service(Box::new(s))),
    })
}

/// Sends every change under `prefix` from revision `from` on, watching again
/// after the stream breaks (etcd restarted, a member lost) from the revision
/// after the last one seen; ends when the receiver is gone.
async fn follow(
    mut watch: WatchClient,
    prefix: String,
    mut from: i64,
    sender: tokio::sync::mpsc::Sender<CatalogChange>,
) {
    loop {
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        match watch.watch(prefix.clone(), Some(options)).await {
            // The watcher is kept alive with the stream: dropping it cancels the watch.
            Ok((_watcher, mut stream)) => {
                while let Ok(Some(response)) = stream.message().await {
                    if response.compact_revision() > 0 {
                        tracing::error!(
                            from,
                            compacted = response.compact_revision(),
                            "the shared catalog's history was compacted past this server's watch: changes made meanwhile apply at its next start"
                        );
                        from = response.compact_revision();
                        break;
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        from = from.max(kv.mod_revision() + 1);
                        let key = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
                        let change = match change(&key, event.event_type() == EventType::Delete, kv.value()) {
                            None => continue,
                            Some(Ok(change)) => change,
                            Some(Err(error)) => {
                                tracing::error!(%key, %error, "a record of the shared catalog does not decode");
                                continue;
                            }
                        };
                        if sender.send(change).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot watch the shared catalog; trying again"),
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use oort_testkit::etcd::EtcdServer;

    use super::*;
    use crate::ownership::OwnershipEvent;
    use crate::suite::{rule, stream};

    fn connect(etcd: &EtcdServer, prefix: &str) -> EtcdCatalog {
        let config = EtcdConfig::parse(&format!("etcd://{}/{prefix}", etcd.endpoint)).unwrap();
        EtcdCatalog::connect(&config).unwrap()
    }

    /// The next ownership event, if one comes `within`.
    fn next(events: &mut tokio::sync::mpsc::Receiver<OwnershipEvent>, within: Duration) -> Option<OwnershipEvent> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { tokio::time::timeout(within, events.recv()).await }).ok().flatten()
    }

    /// Waits until `done`, at most 5 s.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}: not within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn urls_name_the_members_and_the_prefix() {
        let config = EtcdConfig::parse("etcd://a:2379,b:2379").unwrap();
        assert_eq!((config.endpoints, config.prefix.as_str()), (vec!["a:2379".into(), "b:2379".into()], "/oort/"));
        assert_eq!(EtcdConfig::parse("etcd://a:2379/plant/one/").unwrap().prefix, "/plant/one/");
        assert!(EtcdConfig::parse("etcd:///x").unwrap_err().contains("names no etcd member"));
        assert!(EtcdConfig::parse("http://a:2379").is_err());
    }

    #[test]
    fn the_catalog_suite_on_a_real_etcd() {
        let etcd = EtcdServer::start();
        crate::suite::run(&connect(&etcd, "suite"));
    }

    #[test]
    fn instances_with_one_prefix_share_the_catalog_and_its_relations() {
        let etcd = EtcdServer::start();
        let (one, two, other) = (connect(&etcd, "plant"), connect(&etcd, "plant"), connect(&etcd, "elsewhere"));
        one.create_stream(&stream("a")).unwrap();
        two.create_rule(&rule("r"), &["a".into()]).unwrap();
        match one.delete_stream("a") {
            Err(StoreError::InUse { users, .. }) => assert_eq!(users, ["r"]),
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(matches!(two.create_stream(&stream("a")), Err(StoreError::AlreadyExists { .. })));
        assert!(other.list_streams().unwrap().is_empty(), "another prefix is another catalog");

        // Writers on both instances at once: the limit on keys holds across them.
        let value = |key: String| KeyedValue { key, value: None };
        let (one_ref, two_ref) = (&one, &two);
        let (a, b) = std::thread::scope(|s| {
            let put = move |catalog: &'static str, c: &EtcdCatalog| {
                (0..20).filter(|i| c.put_keyed_state(&[value(format!("{catalog}/{i}"))], 30).is_ok()).count()
            };
            let a = s.spawn(move || put("one", one_ref));
            let b = s.spawn(move || put("two", two_ref));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a + b, 30, "{a} + {b} keys stored");
        assert_eq!(one.list_keyed_state("", None, 100).unwrap().len(), 30);
    }

    #[test]
    fn a_watch_reports_every_instance_s_changes_in_order() {
        let etcd = EtcdServer::start();
        let (one, two) = (connect(&etcd, "w"), connect(&etcd, "w"));
        one.create_stream(&stream("a")).unwrap();
        let mut changes = one.watch().unwrap().expect("a shared catalog is watched");
        two.create_rule(&rule("r"), &["a".into()]).unwrap();
        let mut stopped = rule("r");
        stopped.triggered = Some(false);
        two.update_rule(&stopped, &["a".into()]).unwrap();
        let plant = Connection { name: "plant".into(), r#type: "mqtt".into(), ..Default::default() };
        two.create_connection(&plant).unwrap();
        one.delete_rule("r").unwrap();
        two.delete_connection("plant").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let seen: Vec<CatalogChange> = runtime.block_on(async {
            let mut seen = Vec::new();
            while seen.len() < 5 {
                let next = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
                seen.push(next.expect("a change in time").expect("the watch goes on"));
            }
            seen
        });
        assert_eq!(
            seen,
            [
                CatalogChange::Rule(Box::new(rule("r"))),
                CatalogChange::Rule(Box::new(stopped)),
                CatalogChange::Connection(plant),
                CatalogChange::Deleted(EntityKind::Rule, "r".into()),
                CatalogChange::Deleted(EntityKind::Connection, "plant".into()),
            ]
        );
    }

    #[test]
    fn a_rule_has_one_owner_and_a_dead_owner_s_rules_are_released() {
        let etcd = EtcdServer::start();
        let (one, two) = (connect(&etcd, "o"), connect(&etcd, "o"));
        let a = one.ownership("a").unwrap().unwrap();
        let b = two.ownership("b").unwrap().unwrap();
        let mut events = b.events().expect("the events, once");
        assert!(b.events().is_none());
        assert!(a.claim("r").unwrap());
        assert!(a.claim("r").unwrap(), "claiming again what it owns");
        assert!(!b.claim("r").unwrap());
        assert_eq!(b.owner("r").as_deref(), Some("a"), "a claim that fails learns the owner");
        b.release("r");
        assert_eq!(a.owner("r").as_deref(), Some("a"), "only the owner gives a rule up");
        a.release("r");
        assert_eq!(next(&mut events, Duration::from_secs(10)), Some(OwnershipEvent::Released("r".into())));
        assert!(b.claim("r").unwrap());
        // The owner dies (its lease is no longer kept alive): its rules are freed.
        drop(b);
        assert!(a.claim("s").unwrap());
        drop((a, one));
        let started = std::time::Instant::now();
        assert_eq!(next(&mut events, Duration::from_secs(20)), Some(OwnershipEvent::Released("s".into())));
        assert!(started.elapsed() >= Duration::from_secs(2), "after the lease's time to live");
        assert_eq!(two.ownership("c").unwrap().unwrap().owner("s"), None);
    }

    #[test]
    fn each_server_knows_the_owners_from_its_watch_without_asking_etcd() {
        let etcd = EtcdServer::start();
        let (one, two) = (connect(&etcd, "k"), connect(&etcd, "k"));
        let a = one.ownership("a").unwrap().unwrap();
        assert!(a.claim("before").unwrap());
        let b = two.ownership("b").unwrap().unwrap();
        assert_eq!(b.owner("before").as_deref(), Some("a"), "read at start");

        assert!(a.claim("r").unwrap());
        assert_eq!(a.owner("r").as_deref(), Some("a"), "its own claim, at once");
        eventually("b hears of a's claim", || b.owner("r").as_deref() == Some("a"));
        a.release("r");
        assert_eq!(a.owner("r"), None, "its own release, at once");
        eventually("b hears of a's release", || b.owner("r").is_none());
        assert!(b.claim("r").unwrap());
        eventually("a hears of b's claim", || a.owner("r").as_deref() == Some("b"));
        b.resign();
        eventually("a hears that b gave up its rules", || a.owner("r").is_none());
        assert_eq!(a.owner("before").as_deref(), Some("a"));

        // No call to etcd: the answers come with etcd gone.
        drop(etcd);
        let started = std::time::Instant::now();
        assert_eq!((a.owner("before").as_deref(), b.owner("before").as_deref()), (Some("a"), Some("a")));
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }

    #[test]
    fn a_restart_request_reaches_the_other_servers_and_leaves_no_key() {
        let etcd = EtcdServer::start();
        let (one, two, three) = (connect(&etcd, "x"), connect(&etcd, "x"), connect(&etcd, "x"));
        let (a, b, c) = (
            one.ownership("a").unwrap().unwrap(),
            two.ownership("b").unwrap().unwrap(),
            three.ownership("c").unwrap().unwrap(),
        );
        let (mut a_events, mut b_events) = (a.events().unwrap(), b.events().unwrap());
        let mut c_events = c.events().unwrap();
        b.request_restart("r").unwrap();
        a.request_restart("s").unwrap();
        let within = Duration::from_secs(10);
        assert_eq!(next(&mut a_events, within), Some(OwnershipEvent::Restart("r".into())));
        assert_eq!(next(&mut b_events, within), Some(OwnershipEvent::Restart("s".into())), "not its own request");
        assert_eq!(next(&mut c_events, within), Some(OwnershipEvent::Restart("r".into())), "every other server hears");
        assert_eq!(next(&mut c_events, within), Some(OwnershipEvent::Restart("s".into())));
        assert_eq!(next(&mut a_events, Duration::from_millis(500)), None, "not its own request");
        assert!(one.scan("restarts/", None, 0).unwrap().is_empty(), "no key outlives its request");
    }

    #[test]
    fn each_server_reports_on_a_rule_until_it_withdraws_or_dies() {
        let etcd = EtcdServer::start();
        let (one, two) = (connect(&etcd, "o"), connect(&etcd, "o"));
        let a = one.ownership("a").unwrap().unwrap();
        let b = two.ownership("b").unwrap().unwrap();
        a.report("r", Some(b"0,1".to_vec())).unwrap();
        b.report("r", Some(b"2".to_vec())).unwrap();
        b.report("other", Some(b"3".to_vec())).unwrap();
        let reports = |o: &std::sync::Arc<dyn Ownership>| o.reports("r").unwrap();
        assert_eq!(reports(&a), [("a".to_owned(), b"0,1".to_vec()), ("b".to_owned(), b"2".to_vec())]);
        a.report("r", None).unwrap();
        assert_eq!(reports(&b), [("b".to_owned(), b"2".to_vec())]);
        a.report("r", Some(b"0".to_vec())).unwrap();
        drop((b, two));
        let started = std::time::Instant::now();
        while reports(&a).len() > 1 {
            assert!(started.elapsed() < Duration::from_secs(20), "a dead server's reports go with its lease");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(reports(&a), [("a".to_owned(), b"0".to_vec())]);
    }

    #[test]
    fn a_plugin_archive_is_kept_in_chunks_and_checked_against_its_hash() {
        let etcd = EtcdServer::start();
        let catalog = connect(&etcd, "archives");
        // Three chunks and a bit, of bytes that differ from chunk to chunk.
        let archive: Vec<u8> = (0..ARCHIVE_CHUNK * 3 + 100).map(|i| (i % 251) as u8).collect();
        let sha = sha256_hex(&archive);
        catalog.put_plugin_archive(&sha, &archive).unwrap();
        assert_eq!(catalog.get_plugin_archive(&sha).unwrap(), archive);
        let other = sha256_hex(b"other");
        assert!(matches!(catalog.get_plugin_archive(&other), Err(StoreError::Corrupt { .. })), "none kept");
        catalog.delete_plugin_archive(&sha).unwrap();
        assert!(catalog.get_plugin_archive(&sha).is_err());
        // A record names its archive; the watch reports plugins.
        let mut changes = catalog.watch().unwrap().unwrap();
        let record = PluginRecord { name: "p".into(), sha256: sha.clone(), ..Default::default() };
        catalog.put_plugin(&record).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let change = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), changes.recv()).await });
        assert_eq!(change.unwrap(), Some(CatalogChange::Plugin(record)));
    }

    #[test]
    fn calls_go_on_through_the_other_members_when_one_dies() {
        let mut cluster = oort_testkit::etcd::EtcdCluster::start(3);
        let config = EtcdConfig::parse(&format!("etcd://{}/members", cluster.endpoints())).unwrap();
        let catalog = EtcdCatalog::connect(&config).unwrap();
        catalog.create_stream(&stream("before")).unwrap();
        cluster.kill(0);
        // Once the others have a leader (if it was the one that died) and the
        // dead member is out of the balance (within a check), every call goes to them.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut in_a_row = 0;
        while in_a_row < 5 {
            in_a_row = if catalog.list_streams().is_ok() { in_a_row + 1 } else { 0 };
            assert!(std::time::Instant::now() < deadline, "calls still fail 10 s after a member died");
            std::thread::sleep(Duration::from_millis(100));
        }
        catalog.create_stream(&stream("after0")).unwrap();
        for i in 1..20 {
            catalog.create_stream(&stream(&format!("after{i}"))).unwrap();
            assert_eq!(catalog.list_streams().unwrap().len(), i + 2);
        }
        // A catalog started while a member is down does not wait for it.
        let again = EtcdCatalog::connect(&config).unwrap();
        assert_eq!(again.list_streams().unwrap().len(), 21);
    }

    #[test]
    fn an_etcd_that_does_not_answer_is_an_error_in_time() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = EtcdConfig::parse(&format!("etcd://127.0.0.1:{port}")).unwrap();
        config.timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        let error = EtcdCatalog::connect(&config).err().expect("nothing listens there");
        assert!(matches!(error, StoreError::Etcd(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
