//! [`RuleController`]: keeps the catalog and the engine in step. The catalog
//! says which rules exist and which should run (`triggered`); the engine runs
//! them. Every change validates with the engine first, so nothing invalid is
//! stored, and a rule that cannot start is not left half-created.

use std::sync::Arc;

use oort_engine::{Engine, RuleStatus, StreamLookup};
use oort_proto::v1::Rule;
use oort_sql::StreamDef;

use crate::api::CatalogHandle;
use crate::convert::rule_definition;
use crate::error::ApiResult;

/// Streams as the engine sees them: parsed from the DDL stored in the catalog.
struct CatalogStreams<'a>(&'a CatalogHandle);

impl StreamLookup for CatalogStreams<'_> {
    fn stream(&self, name: &str) -> Option<StreamDef> {
        let stored = self.0.direct().get_stream(name).ok()?;
        // The DDL parsed when it was stored; a failure here means a newer
        // server's syntax, which this one cannot run.
        oort_sql::parse_stream_ddl(&stored.sql).ok()
    }
}

/// Rules across the catalog and the engine.
#[derive(Clone)]
pub struct RuleController {
    catalog: CatalogHandle,
    engine: Arc<Engine>,
}

impl RuleController {
    /// A controller over a catalog and an engine.
    pub fn new(catalog: CatalogHandle, engine: Arc<Engine>) -> Self {
        Self { catalog, engine }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The catalog.
    pub fn catalog(&self) -> &CatalogHandle {
        &self.catalog
    }

    /// Checks a rule against the engine (SQL, fields, functions, connectors)
    /// without running it; returns its plan as text.
    pub fn validate(&self, rule: &Rule) -> ApiResult<String> {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog))?;
        Ok(plan.explain())
    }

    /// Runs a rule (restarting it if it runs).
    pub async fn run(&self, rule: &Rule) -> ApiResult<()> {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog))?;
        self.engine.start(plan).await?;
        Ok(())
    }

    /// Stops a rule if it runs.
    pub async fn halt(&self, id: &str) {
        self.engine.stop(id).await;
    }

    /// Stops a deleted rule and forgets what it kept: its checkpoint, its
    /// sinks' caches, its source's session at a broker.
    pub async fn remove(&self, rule: &Rule) {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog)).ok();
        self.engine.stop(&rule.id).await;
        self.engine.forget(&rule.id, plan.as_ref());
    }

    /// Stops a rule and records in the catalog that it should not run (what
    /// `StopRule` does), e.g. before the plugin it uses is deleted.
    pub async fn stop_and_record(&self, id: &str) -> ApiResult<()> {
        self.engine.stop(id).await;
        let id = id.to_owned();
        let mut rule = self.catalog.call(move |c| c.get_rule(&id)).await?;
        if rule.triggered != Some(false) {
            rule.triggered = Some(false);
            rule.update_time = Some(crate::api::now());
            let sources: Vec<String> = oort_sql::parse_rule_sql(&rule.sql)?.source_names().map(str::to_owned).collect();
            self.catalog.call(move |c| c.update_rule(&rule, &sources)).await?;
        }
        Ok(())
    }

    /// Status of a rule; `None` if the engine does not run it.
    pub async fn status(&self, id: &str) -> Option<RuleStatus> {
        self.engine.status(id).await
    }

    /// Starts every rule the catalog says should run; a rule that cannot start
    /// is logged and left stopped, and the server starts anyway.
    pub async fn restore(&self, rules: &[Rule]) -> usize {
        let mut started = 0;
        for rule in rules.iter().filter(|r| r.triggered.unwrap_or(true)) {
            match self.run(rule).await {
                Ok(()) => started += 1,
                Err(error) => tracing::error!(rule = %rule.id, %error, "rule could not be restored"),
            }
        }
        started
    }
}
