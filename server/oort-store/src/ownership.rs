//! [`Ownership`]: one owner per rule among the servers that share a catalog,
//! so that a rule over a source every server could read (an MQTT topic, a
//! file, an HTTP endpoint) runs once, not once per server.
//!
//! In etcd ([`EtcdOwnership`]) a rule's owner is the key `owners/<rule>`,
//! holding the owning server's name and attached to its lease. The server
//! keeps its lease alive; when it dies, or cannot reach etcd for the lease's
//! time to live, etcd deletes its keys, and every other server hears that the
//! rule is free and claims it: one wins. A server that cannot keep its lease
//! alive is told so ([`OwnershipEvent::Lost`]) and stops the rules it owned
//! before another may take them over: it fences itself.
//!
//! Each server keeps the owners in memory, read at start and kept current by
//! its watch, so that [`Ownership::owner`] (which every `GetRuleStatus` asks)
//! costs no call to etcd; a server's own claims and releases show there at
//! once, the others' as soon as the watch brings them.
//!
//! A rule is restarted where it runs. A server asked to restart a rule that
//! another owns, or that runs on every server, puts `restarts/<rule>` (its
//! name, on its lease) and deletes it at once: the other servers' watches
//! still see the put ([`OwnershipEvent::Restart`]), and no key outlives the
//! request. One watch covers `owners/` to `restarts/` (the servers' reports,
//! between them, are passed over), so both resume from one revision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, KeyValue, KvClient, LeaseClient, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchClient, WatchOptions,
};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::error::StoreError;

/// What changes in the ownership of rules, as the server must act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipEvent {
    /// The rule has no owner any more: a server that wants it may claim it.
    Released(String),
    /// This server's claims are void (its lease expired): stop every rule it
    /// owned, and claim them again.
    Lost,
    /// Another server was asked to restart the rule: restart it, if this
    /// server runs it.
    Restart(String),
}

/// One owner per rule among the servers sharing a catalog.
pub trait Ownership: Send + Sync + 'static {
    /// This server's name, as an owner.
    fn instance(&self) -> &str;
    /// Claims a rule: `true` when this server owns it (now or already).
    fn claim(&self, rule: &str) -> Result<bool, StoreError>;
    /// Gives a rule up, if this server owns it.
    fn release(&self, rule: &str);
    /// The server that owns a rule, if one does, as this server last heard.
    fn owner(&self, rule: &str) -> Option<String>;
    /// The events, once: the first caller gets them.
    fn events(&self) -> Option<Receiver<OwnershipEvent>>;
    /// Gives every rule up at once (the server stops): others take them over
    /// without waiting for this server's lease to lapse.
    fn resign(&self);
    /// Tells the other servers what this one does of a rule that runs on
    /// every server (the partitions it reads, encoded by the caller), until
    /// it reports again, withdraws (`None`) or dies.
    fn report(&self, rule: &str, report: Option<Vec<u8>>) -> Result<(), StoreError>;
    /// What each server reported of a rule, by server.
    fn reports(&self, rule: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Asks every other server to restart a rule if it runs it
    /// ([`OwnershipEvent::Restart`]): the owner, or all of them for a rule
    /// that runs on every server.
    fn request_restart(&self, rule: &str) -> Result<(), StoreError>;
}

/// How long a server's lease lives without a keep-alive: the longest a dead
/// server's rules wait for another owner.
pub const LEASE_TTL_SECS: i64 = 5;

/// Ownership through etcd leases.
pub struct EtcdOwnership {
    kv: KvClient,
    leases: LeaseClient,
    instance: String,
    /// `<catalog prefix>owners/`.
    owners: String,
    /// `<catalog prefix>reports/`: `<rule>/<server>` on the server's lease.
    reports: String,
    /// `<catalog prefix>restarts/`: `<rule>`, the requesting server, put and deleted.
    restarts: String,
    /// The owners as this server knows them.
    known: Arc<Owners>,
    lease: Arc<AtomicI64>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    events: Mutex<Option<Receiver<OwnershipEvent>>>,
}

impl EtcdOwnership {
    /// Takes a lease for `instance` and keeps it alive; reads the owners and
    /// watches them, and the restart requests.
    pub(crate) fn start(
        clients: (KvClient, LeaseClient, WatchClient),
        prefix: &str,
        instance: &str,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (kv, leases, watch) = clients;
        let (owners, restarts) = (format!("{prefix}owners/"), format!("{prefix}restarts/"));
        let grant = {
            let mut leases = leases.clone();
            async move { leases.grant(LEASE_TTL_SECS, None).await }
        };
        let lease = Arc::new(AtomicI64::new(crate::etcd_catalog::block(&runtime, timeout, grant)?.id()));
        let (read, revision) = crate::etcd_catalog::block(&runtime, timeout, read_owners(kv.clone(), owners.clone()))?;
        let known = Arc::new(Owners(Mutex::new(read)));
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        runtime.spawn(keep_alive(leases.clone(), Arc::clone(&lease), sender.clone()));
        let watch = Watch {
            kv: kv.clone(),
            client: watch,
            owners: owners.clone(),
            restarts: restarts.clone(),
            instance: instance.to_owned(),
            known: Arc::clone(&known),
            events: sender,
        };
        runtime.spawn(watch.run(revision + 1));
        Ok(Self {
            kv,
            leases,
            instance: instance.to_owned(),
            owners,
            reports: format!("{prefix}reports/"),
            restarts,
            known,
            lease,
            runtime,
            timeout,
            events: Mutex::new(Some(receiver)),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        call: impl std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    ) -> Result<T, StoreError> {
        crate::etcd_catalog::block(&self.runtime, self.timeout, call)
    }

    /// Puts this server as the owner of `key` when `compare` holds. Returns
    /// whether it did, and the owner after, as of the transaction's revision.
    fn put_if(&self, key: &str, compare: Compare) -> Result<(bool, Option<String>, i64), StoreError> {
        let options = PutOptions::new().with_lease(self.lease.load(Ordering::Relaxed));
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, self.instance.clone(), Some(options))])
            .or_else([TxnOp::get(key, None)]);
        let mut kv = self.kv.clone();
        let response = self.run(async move { kv.txn(txn).await })?;
        if response.succeeded() {
            return Ok((true, Some(self.instance.clone()), revision(&response)));
        }
        let owner = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(got) => got.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        });
        Ok((false, owner, revision(&response)))
    }
}

/// The revision a transaction committed at.
fn revision(response: &TxnResponse) -> i64 {
    response.header().map_or(0, |h| h.revision())
}

impl Ownership for EtcdOwnership {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn claim(&self, rule: &str) -> Result<bool, StoreError> {
        let key = format!("{}{rule}", self.owners);
        // Free: take it. Already ours (perhaps under a lease since renewed): keep it, on the current lease.
        let (mut claimed, mut owner, mut revision) =
            self.put_if(&key, Compare::version(key.clone(), CompareOp::Equal, 0))?;
        if !claimed && owner.as_deref() == Some(self.instance.as_str()) {
            let ours = Compare::value(key.clone(), CompareOp::Equal, self.instance.clone());
            (claimed, owner, revision) = self.put_if(&key, ours)?;
        }
        self.known.set(rule, owner, revision);
        Ok(claimed)
    }

    fn release(&self, rule: &str) {
        let key = format!("{}{rule}", self.owners);
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, self.instance.clone())])
            .and_then([TxnOp::delete(key, None)]);
        let mut kv = self.kv.clone();
        match self.run(async move { kv.txn(txn).await }) {
            Ok(response) if response.succeeded() => self.known.set(rule, None, revision(&response)),
            Ok(_) => {}
            // The lease frees it anyway, at the latest when this server stops.
            Err(error) => tracing::warn!(rule, %error, "cannot give up the ownership of a rule"),
        }
    }

    fn owner(&self, rule: &str) -> Option<String> {
        self.known.lock().get(rule).map(|(owner, _)| owner.clone())
    }

    fn events(&self) -> Option<Receiver<OwnershipEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn report(&self, rule: &str, report: Option<Vec<u8>>) -> Result<(), StoreError> {
        let (mut kv, key) = (self.kv.clone(), format!("{}{rule}/{}", self.reports, self.instance));
        let options = PutOptions::new().with_lease(self.lease.load(Ordering::Relaxed));
        match report {
            Some(value) => self.run(async move { kv.put(key, value, Some(options)).await }).map(drop),
            None => self.run(async move { kv.delete(key, None).await }).map(drop),
        }
    }

    fn reports(&self, rule: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let (mut kv, prefix) = (self.kv.clone(), format!("{}{rule}/", self.reports));
        let options = GetOptions::new().with_prefix();
        let mut response = self.run(async move { kv.get(prefix.clone(), Some(options)).await })?;
        let skip = format!("{}{rule}/", self.reports).len();
        Ok(response
            .take_kvs()
            .into_iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key()[skip..]).into_owned(), kv.value().to_vec()))
            .collect())
    }

    fn request_restart(&self, rule: &str) -> Result<(), StoreError> {
        let (mut kv, key, instance) = (self.kv.clone(), format!("{}{rule}", self.restarts), self.instance.clone());
        // On the lease, should the delete not come.
        let options = PutOptions::new().with_lease(self.lease.load(Ordering::Relaxed));
        self.run(async move {
            kv.put(key.clone(), instance, Some(options)).await?;
            kv.delete(key, None).await
        })
        .map(drop)
    }

    fn resign(&self) {
        let (mut leases, id) = (self.leases.clone(), self.lease.load(Ordering::Relaxed));
        if let Err(error) = self.run(async move { leases.revoke(id).await }) {
            tracing::warn!(%error, "cannot give the rules up: others take them over when this server's lease lapses");
        }
    }
}

/// Each rule's owner, and the revision it is known as of.
type OwnerMap = HashMap<String, (String, i64)>;

/// The owners, each as of a revision: a change heard late (the watch's,
/// after this server's own claim) does not undo a newer one.
struct Owners(Mutex<OwnerMap>);

impl Owners {
    fn lock(&self) -> MutexGuard<'_, OwnerMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `rule`'s owner (`None`: it has none) as of `revision`.
    fn set(&self, rule: &str, owner: Option<String>, revision: i64) {
        let mut owners = self.lock();
        if owners.get(rule).is_some_and(|(_, known)| *known > revision) {
            return;
        }
        match owner {
            Some(owner) => owners.insert(rule.to_owned(), (owner, revision)),
            None => owners.remove(rule),
        };
    }

    /// Takes the owners as read afresh; returns the rules that lost theirs.
    fn replace(&self, read: OwnerMap) -> Vec<String> {
        let mut owners = self.lock();
        let freed = owners.keys().filter(|rule| !read.contains_key(*rule)).cloned().collect();
        *owners = read;
        freed
    }
}

/// The owners under `prefix` (`<catalog prefix>owners/`), each as of the
/// revision they are read at, which is returned too.
async fn read_owners(mut kv: KvClient, prefix: String) -> Result<(OwnerMap, i64), etcd_client::Error> {
    let mut response = kv.get(prefix.clone(), Some(GetOptions::new().with_prefix())).await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let owners = response
        .take_kvs()
        .into_iter()
        .map(|kv| {
            let rule = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
            (rule, (String::from_utf8_lossy(kv.value()).into_owned(), revision))
        })
        .collect();
    Ok((owners, revision))
}

/// Keeps the lease alive, a keep-alive every third of its time to live. When
/// that fails for longer than the lease lives, its keys may be gone: the
/// server is told ([`OwnershipEvent::Lost`]) and a new lease is taken.
async fn keep_alive(mut leases: LeaseClient, lease: Arc<AtomicI64>, events: Sender<OwnershipEvent>) {
    let period = Duration::from_millis(LEASE_TTL_SECS as u64 * 1000 / 3);
    loop {
        let id = lease.load(Ordering::Relaxed);
        if let Ok((mut keeper, mut stream)) = leases.keep_alive(id).await {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(period, stream.message()).await {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => tokio::time::sleep(period).await,
                    _ => break,
                }
            }
        }
        tracing::error!(
            lease = id,
            "this server's lease in etcd lapsed: it stops the rules it owned and claims them again"
        );
        if events.send(OwnershipEvent::Lost).await.is_err() {
            return;
        }
        loop {
            match leases.grant(LEASE_TTL_SECS, None).await {
                Ok(granted) => {
                    lease.store(granted.id(), Ordering::Relaxed);
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot take a lease in etcd; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// What a server's watch follows, and whom it tells.
struct Watch {
    kv: KvClient,
    client: WatchClient,
    /// `<catalog prefix>owners/`: the first key watched.
    owners: String,
    /// `<catalog prefix>restarts/`: the last keys watched.
    restarts: String,
    /// This server's name: its own restart requests are done already.
    instance: String,
    known: Arc<Owners>,
    events: Sender<OwnershipEvent>,
}

impl Watch {
    /// Follows the owners (into `known`; a rule whose owner is gone is
    /// [`OwnershipEvent::Released`]) and the other servers' restart requests
    /// ([`OwnershipEvent::Restart`]) from revision `from` on, until the
    /// server no longer listens. A broken stream is watched again from the
    /// revision after the last one seen; when etcd compacted that history
    /// away, the owners are read afresh.
    async fn run(mut self, from: i64) {
        let mut from = Some(from);
        loop {
            from = match from {
                Some(from) => self.follow(from).await,
                None => self.reread().await,
            };
            if self.events.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Watches from revision `from` until the stream breaks; returns the
    /// revision to watch from again (`None`: compacted, read afresh).
    async fn follow(&mut self, mut from: i64) -> Option<i64> {
        let end = crate::etcd_catalog::prefix_end(self.restarts.clone().into_bytes());
        let options = WatchOptions::new().with_range(end).with_start_revision(from);
        // The watcher is kept alive with the stream: dropping it cancels the watch.
        let (_watcher, mut stream) = match self.client.watch(self.owners.clone(), Some(options)).await {
            Ok(watch) => watch,
            Err(error) => {
                tracing::warn!(%error, "cannot watch the rules' owners in etcd; trying again");
                return Some(from);
            }
        };
        while let Ok(Some(response)) = stream.message().await {
            if response.compact_revision() > 0 {
                tracing::warn!(
                    from,
                    compacted = response.compact_revision(),
                    "etcd compacted the owners' history past this server's watch: it reads them afresh; restart requests made meanwhile are lost to it"
                );
                return None;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                from = from.max(kv.mod_revision() + 1);
                let Some(event) = self.apply(event.event_type() == EventType::Delete, kv) else { continue };
                if self.events.send(event).await.is_err() {
                    return Some(from);
                }
            }
        }
        Some(from)
    }

    /// Takes one change in; returns what the server must hear of it.
    fn apply(&self, deleted: bool, kv: &KeyValue) -> Option<OwnershipEvent> {
        let key = String::from_utf8_lossy(kv.key());
        if let Some(rule) = key.strip_prefix(&self.owners) {
            let owner = (!deleted).then(|| String::from_utf8_lossy(kv.value()).into_owned());
            self.known.set(rule, owner, kv.mod_revision());
            return deleted.then(|| OwnershipEvent::Released(rule.to_owned()));
        }
        let rule = key.strip_prefix(&self.restarts)?;
        (!deleted && kv.value() != self.instance.as_bytes()).then(|| OwnershipEvent::Restart(rule.to_owned()))
    }

    /// Reads the owners afresh and tells of the rules whose owner went
    /// meanwhile; returns the revision to watch from.
    async fn reread(&mut self) -> Option<i64> {
        let (read, revision) = match read_owners(self.kv.clone(), self.owners.clone()).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "cannot read the rules' owners in etcd; trying again");
                return None;
            }
        };
        for rule in self.known.replace(read) {
            if self.events.send(OwnershipEvent::Released(rule)).await.is_err() {
                return None;
            }
        }
        Some(revision + 1)
    }
}
