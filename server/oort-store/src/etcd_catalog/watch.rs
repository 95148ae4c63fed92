//! Following the shared catalog: etcd's watch on the catalog's prefix,
//! turned into the changes servers apply ([`CatalogChange`]).

use std::time::Duration;

use etcd_client::{EventType, WatchClient, WatchOptions};
use oort_proto::v1::{Connection, Rule, Schema};

use crate::catalog::CatalogChange;
use crate::error::{EntityKind, StoreError};
use crate::record::{PluginRecord, Record, ServiceRecord};

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
pub(super) async fn follow(
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
