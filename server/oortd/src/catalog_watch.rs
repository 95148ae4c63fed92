//! Following a shared catalog: what other `oortd` change in it takes effect
//! here too, in the order etcd committed the changes. Rules are run,
//! restarted, stopped or removed; connections, schemas and external services
//! are put into or taken out of this server's registries; plugins are
//! installed from the archive the catalog keeps, or removed. This server's own
//! changes come back the same way: a rule already running with that very
//! definition is left alone ([`RuleController::runs_as`]), and putting the
//! rest again changes nothing.

use std::sync::Arc;

use oort_connectors::connections::Connections;
use oort_external::ExternalServices;
use oort_policy::FileRoots;
use oort_schema::SchemaRegistry;
use oort_store::{CatalogChange, EntityKind, OwnershipEvent};
use tokio::sync::mpsc::Receiver;

use crate::rules::RuleController;

/// What a change from the shared catalog applies to.
pub struct Registries {
    /// The rules this server runs.
    pub rules: RuleController,
    /// The plugins this server has copies of.
    pub plugins: crate::plugins::PluginController,
    /// The named connections.
    pub connections: Arc<Connections>,
    /// The file roots a connection's files must be in.
    pub files: Arc<FileRoots>,
    /// The compiled schemas.
    pub schemas: Arc<SchemaRegistry>,
    /// The external services' functions.
    pub services: Arc<ExternalServices>,
}

/// Applies `changes` until the watch ends.
pub fn follow(registries: Registries, mut changes: Receiver<CatalogChange>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            registries.apply(change).await;
        }
    })
}

impl Registries {
    async fn apply(&self, change: CatalogChange) {
        match change {
            CatalogChange::Rule(rule) if rule.triggered.unwrap_or(true) => {
                if self.rules.runs_as(&rule) {
                    return;
                }
                match self.rules.run(&rule).await {
                    Ok(()) => tracing::info!(rule = %rule.id, "rule (re)started: the shared catalog changed"),
                    Err(error) => {
                        tracing::error!(rule = %rule.id, %error, "rule of the shared catalog could not start")
                    }
                }
            }
            CatalogChange::Rule(rule) => {
                if self.rules.running(&rule.id).is_some() || self.rules.on_standby(&rule.id).is_some() {
                    self.rules.halt(&rule.id).await;
                    tracing::info!(rule = %rule.id, "rule stopped: the shared catalog changed");
                }
            }
            CatalogChange::Deleted(EntityKind::Rule, id) => {
                match self.rules.running(&id).or_else(|| self.rules.on_standby(&id)) {
                    Some(rule) => self.rules.remove(&rule).await,
                    None => self.rules.halt(&id).await,
                }
                tracing::info!(rule = %id, "rule removed: deleted from the shared catalog");
            }
            CatalogChange::Connection(connection) => {
                crate::api::connections::load_all(&[connection], &self.connections, &self.files);
            }
            CatalogChange::Deleted(EntityKind::Connection, name) => self.connections.remove(&name),
            CatalogChange::Schema(schema) => crate::api::schemas::load_all(&[schema], &self.schemas),
            CatalogChange::Deleted(EntityKind::Schema, name) => self.schemas.remove(&name),
            CatalogChange::Service(service) => {
                crate::api::external::load_all(&[*service], &self.services);
            }
            CatalogChange::Deleted(EntityKind::Service, name) => {
                self.services.remove(&name);
            }
            CatalogChange::Plugin(record) => {
                let name = record.name.clone();
                if let Err(error) = self.plugins.follow(&name, Some(record)).await {
                    tracing::error!(plugin = %name, %error, "plugin of the shared catalog could not be installed");
                }
            }
            CatalogChange::Deleted(EntityKind::Plugin, name) => {
                if let Err(error) = self.plugins.follow(&name, None).await {
                    tracing::error!(plugin = %name, %error, "plugin deleted from the shared catalog could not be removed");
                }
            }
            CatalogChange::Deleted(kind, name) => tracing::debug!(%kind, %name, "not kept in memory"),
        }
    }
}

/// Runs the rules this server waits for when their owner lets them go,
/// restarts the rules it runs that another server was asked to restart, and
/// fences this server when its claims lapse. Every 10 s it also claims the
/// rules on standby again, in case a release came while its watch was down.
pub fn follow_ownership(rules: RuleController, mut events: Receiver<OwnershipEvent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            let waiting: Vec<oort_proto::v1::Rule> = tokio::select! {
                event = events.recv() => match event {
                    None => return,
                    Some(OwnershipEvent::Lost) => {
                        rules.fence().await;
                        continue;
                    }
                    Some(OwnershipEvent::Released(id)) => rules.on_standby(&id).into_iter().collect(),
                    Some(OwnershipEvent::Restart(id)) => {
                        match rules.restart_requested(&id).await {
                            Ok(true) => tracing::info!(rule = %id, "rule restarted: another server was asked to"),
                            Ok(false) => {}
                            Err(error) => tracing::error!(rule = %id, %error, "rule could not be restarted"),
                        }
                        continue;
                    }
                },
                _ = retry.tick() => rules.standby(),
            };
            for rule in waiting {
                match rules.run(&rule).await {
                    Ok(()) if rules.running(&rule.id).is_some() => {
                        tracing::info!(rule = %rule.id, "rule taken over: its owner let it go");
                    }
                    Ok(()) => {}
                    Err(error) => tracing::error!(rule = %rule.id, %error, "rule could not be taken over"),
                }
            }
        }
    })
}
