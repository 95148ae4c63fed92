//! [`Engine`]: the running rules of a server, with the registries they resolve
//! functions and connectors from.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::checkpoint::CheckpointStore;
use crate::connector::ConnectorRegistry;
use crate::function::FunctionRegistry;
use crate::plan::{self, PlanError, RulePlan, StreamLookup};
use crate::rule::RuleDefinition;
use crate::runtime::{self, RuleLimits, RuleStatus, RuleStorage, RunningRule};
use crate::sink_cache::SinkCaches;

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The rule cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A connector refused its configuration.
    #[error(transparent)]
    Connector(#[from] crate::ConnectorError),
}

/// The rules that run in this server.
pub struct Engine {
    functions: Arc<FunctionRegistry>,
    connectors: Arc<ConnectorRegistry>,
    running: Mutex<BTreeMap<String, RunningRule>>,
    limits: RuleLimits,
    storage: RuleStorage,
}

impl Engine {
    /// An engine over these registries.
    pub fn new(functions: Arc<FunctionRegistry>, connectors: Arc<ConnectorRegistry>) -> Self {
        Self {
            functions,
            connectors,
            running: Mutex::default(),
            limits: RuleLimits::default(),
            storage: RuleStorage::default(),
        }
    }

    /// Keeps the checkpoints of rules whose `qos` asks for at least once in
    /// `store`; without one, such rules get at most once.
    pub fn with_checkpoints(mut self, store: CheckpointStore) -> Self {
        self.storage.checkpoints = Some(Arc::new(store));
        self
    }

    /// Keeps the caches of sinks with `enableCache` in `caches`; without
    /// them, `enableCache` is refused.
    pub fn with_sink_caches(mut self, caches: SinkCaches) -> Self {
        self.storage.sink_caches = Some(caches);
        self
    }

    /// Bounds the memory of the rules started from now on.
    pub fn with_limits(mut self, limits: RuleLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The function registry.
    pub fn functions(&self) -> &Arc<FunctionRegistry> {
        &self.functions
    }

    /// The connector registry.
    pub fn connectors(&self) -> &Arc<ConnectorRegistry> {
        &self.connectors
    }

    /// Plans a rule without running it: the validation of CreateRule.
    pub fn plan(&self, def: &RuleDefinition, streams: &dyn StreamLookup) -> Result<RulePlan, EngineError> {
        Ok(plan::plan(def, streams, &self.functions, &self.connectors)?)
    }

    /// Starts a planned rule, replacing (stopping first) the running one with that id.
    pub async fn start(&self, plan: RulePlan) -> Result<(), EngineError> {
        let id = plan.rule_id.clone();
        let mut running = self.running.lock().await;
        if let Some(old) = running.remove(&id) {
            old.stop().await;
        }
        let rule = runtime::start(Arc::new(plan), &self.connectors, &self.limits, &self.storage)?;
        running.insert(id.clone(), rule);
        tracing::info!(rule = %id, "rule started");
        Ok(())
    }

    /// Stops a rule; returns whether it was running.
    pub async fn stop(&self, id: &str) -> bool {
        let rule = self.running.lock().await.remove(id);
        match rule {
            Some(rule) => {
                rule.stop().await;
                tracing::info!(rule = %id, "rule stopped");
                true
            }
            None => false,
        }
    }

    /// Forgets what a deleted rule saved: its last checkpoint, its sinks'
    /// caches, and (with its `plan`) what its source keeps for it elsewhere.
    pub fn forget(&self, id: &str, plan: Option<&RulePlan>) {
        if let Some(plan) = plan.filter(|p| p.options.qos >= crate::Guarantee::AtLeastOnce)
            && let Ok(factory) = self.connectors.source_for(&plan.stream)
        {
            let mut config = crate::connector::SourceConfig::for_stream(&plan.stream, id);
            config.qos = plan.options.qos;
            factory.forget(&config);
        }
        if let Some(Err(e)) = self.storage.checkpoints.as_ref().map(|store| store.remove(id)) {
            tracing::warn!(rule = %id, error = %e, "the checkpoint of a deleted rule could not be removed");
        }
        if let Some(Err(e)) = self.storage.sink_caches.as_ref().map(|caches| caches.forget(id)) {
            tracing::warn!(rule = %id, error = %e, "the sink caches of a deleted rule could not be removed");
        }
    }

    /// Fails a running rule with `message`: its state becomes failed and its
    /// tasks are told to stop; stopping or deleting it then completes even if
    /// one of them is stuck (it is abandoned). Returns whether it was running.
    pub async fn fail(&self, id: &str, message: String) -> bool {
        let running = self.running.lock().await;
        let Some(rule) = running.get(id) else { return false };
        tracing::error!(rule = %id, %message, "rule failed");
        rule.fail(message);
        true
    }

    /// Stops every rule (at shutdown).
    pub async fn stop_all(&self) {
        let rules = std::mem::take(&mut *self.running.lock().await);
        for (_, rule) in rules {
            rule.stop().await;
        }
    }

    /// Status of a running (or failed) rule; `None` if it is not running.
    pub async fn status(&self, id: &str) -> Option<RuleStatus> {
        self.running.lock().await.get(id).map(RunningRule::status)
    }

    /// Status of every running (or failed) rule, by id.
    pub async fn statuses(&self) -> Vec<(String, RuleStatus)> {
        self.running.lock().await.iter().map(|(id, rule)| (id.clone(), rule.status())).collect()
    }

    /// The plan of a running rule, as text.
    pub async fn explain(&self, id: &str) -> Option<String> {
        self.running.lock().await.get(id).map(|r| r.plan.explain())
    }

    /// The plans of the running rules, by rule id (e.g. to find the rules that
    /// use a plugin's functions or connectors).
    pub async fn plans(&self) -> Vec<Arc<RulePlan>> {
        self.running.lock().await.values().map(|r| Arc::clone(&r.plan)).collect()
    }

    /// Ids of the running rules that call a function of `origin` provided by
    /// `owner` (a plugin or an external service), ordered.
    pub async fn rules_calling(&self, origin: crate::FunctionOrigin, owner: &str) -> Vec<String> {
        let running = self.running.lock().await;
        running.iter().filter(|(_, r)| r.plan.calls_owner(origin, owner)).map(|(id, _)| id.clone()).collect()
    }

    /// A live copy of a running rule's results.
    pub async fn subscribe(
        &self,
        id: &str,
        from: Option<crate::runtime::TailPosition>,
    ) -> Option<Result<crate::runtime::TailReader, crate::runtime::ResumeError>> {
        self.running.lock().await.get(id).map(|rule| rule.subscribe(from))
    }
}

#[cfg(test)]
mod tests;
