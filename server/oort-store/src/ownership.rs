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

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, KvClient, LeaseClient, PutOptions, Txn, TxnOp, WatchClient, WatchOptions,
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
}

/// One owner per rule among the servers sharing a catalog.
pub trait Ownership: Send + Sync + 'static {
    /// This server's name, as an owner.
    fn instance(&self) -> &str;
    /// Claims a rule: `true` when this server owns it (now or already).
    fn claim(&self, rule: &str) -> Result<bool, StoreError>;
    /// Gives a rule up, if this server owns it.
    fn release(&self, rule: &str);
    /// The server that owns a rule, if one does.
    fn owner(&self, rule: &str) -> Result<Option<String>, StoreError>;
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
    lease: Arc<AtomicI64>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    events: Mutex<Option<Receiver<OwnershipEvent>>>,
}

impl EtcdOwnership {
    /// Takes a lease for `instance` and keeps it alive; watches the owners.
    pub(crate) fn start(
        clients: (KvClient, LeaseClient, WatchClient),
        prefix: &str,
        instance: &str,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (kv, leases, watch) = clients;
        let owners = format!("{prefix}owners/");
        let grant = {
            let mut leases = leases.clone();
            async move { leases.grant(LEASE_TTL_SECS, None).await }
        };
        let lease = Arc::new(AtomicI64::new(crate::etcd_catalog::block(&runtime, timeout, grant)?.id()));
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        runtime.spawn(keep_alive(leases.clone(), Arc::clone(&lease), sender.clone()));
        runtime.spawn(watch_owners(watch, owners.clone(), sender));
        Ok(Self {
            kv,
            leases,
            instance: instance.to_owned(),
            owners,
            reports: format!("{prefix}reports/"),
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

    /// Puts this server as the owner of `key` when `compare` holds.
    fn put_if(&self, key: &str, compare: Compare) -> Result<bool, StoreError> {
        let options = PutOptions::new().with_lease(self.lease.load(Ordering::Relaxed));
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(key, self.instance.clone(), Some(options))]);
        let mut kv = self.kv.clone();
        Ok(self.run(async move { kv.txn(txn).await })?.succeeded())
    }
}

impl Ownership for EtcdOwnership {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn claim(&self, rule: &str) -> Result<bool, StoreError> {
        let key = format!("{}{rule}", self.owners);
        // Free: take it. Already ours (perhaps under a lease since renewed): keep it, on the current lease.
        Ok(self.put_if(&key, Compare::version(key.clone(), CompareOp::Equal, 0))?
            || self.put_if(&key, Compare::value(key.clone(), CompareOp::Equal, self.instance.clone()))?)
    }

    fn release(&self, rule: &str) {
        let key = format!("{}{rule}", self.owners);
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, self.instance.clone())])
            .and_then([TxnOp::delete(key, None)]);
        let mut kv = self.kv.clone();
        if let Err(error) = self.run(async move { kv.txn(txn).await }) {
            // The lease frees it anyway, at the latest when this server stops.
            tracing::warn!(rule, %error, "cannot give up the ownership of a rule");
        }
    }

    fn owner(&self, rule: &str) -> Result<Option<String>, StoreError> {
        let (mut kv, key) = (self.kv.clone(), format!("{}{rule}", self.owners));
        let mut response = self.run(async move { kv.get(key, None).await })?;
        Ok(response.take_kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
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
        let options = etcd_client::GetOptions::new().with_prefix();
        let mut response = self.run(async move { kv.get(prefix.clone(), Some(options)).await })?;
        let skip = format!("{}{rule}/", self.reports).len();
        Ok(response
            .take_kvs()
            .into_iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key()[skip..]).into_owned(), kv.value().to_vec()))
            .collect())
    }

    fn resign(&self) {
        let (mut leases, id) = (self.leases.clone(), self.lease.load(Ordering::Relaxed));
        if let Err(error) = self.run(async move { leases.revoke(id).await }) {
            tracing::warn!(%error, "cannot give the rules up: others take them over when this server's lease lapses");
        }
    }
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

/// Tells the server of every rule whose owner is gone.
async fn watch_owners(mut watch: WatchClient, owners: String, events: Sender<OwnershipEvent>) {
    loop {
        if let Ok((_watcher, mut stream)) = watch.watch(owners.clone(), Some(WatchOptions::new().with_prefix())).await {
            while let Ok(Some(response)) = stream.message().await {
                for event in response.events().iter().filter(|e| e.event_type() == EventType::Delete) {
                    let Some(kv) = event.kv() else { continue };
                    let rule = String::from_utf8_lossy(&kv.key()[owners.len()..]).into_owned();
                    if events.send(OwnershipEvent::Released(rule)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
