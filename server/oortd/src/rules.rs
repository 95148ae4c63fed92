//! [`RuleController`]: keeps the catalog and the engine in step. The catalog
//! says which rules exist and which should run (`triggered`); the engine runs
//! them. Every change validates with the engine first, so nothing invalid is
//! stored, and a rule that cannot start is not left half-created.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use oort_engine::{Distribution, Engine, RuleStatus, StreamLookup};
use oort_proto::v1::Rule;
use oort_sql::StreamDef;
use oort_store::Ownership;

use crate::api::CatalogHandle;
use crate::convert::rule_definition;
use crate::error::{ApiError, ApiResult};
use crate::rule_logs::RuleLogs;
use crate::schedule::Schedule;

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
    /// The scheduled rules' timers, by rule id.
    schedules: Arc<Mutex<HashMap<String, Scheduled>>>,
    /// Where rules with a `log_filename` write their logs.
    log_dir: PathBuf,
    /// The rules this server runs (or has scheduled), as it last started
    /// them: a shared catalog's changes that are already in effect here (this
    /// server's own writes) are not applied twice.
    running: Arc<Mutex<HashMap<String, Rule>>>,
    /// With a shared catalog: one owner per rule among the servers.
    ownership: Option<Arc<dyn Ownership>>,
    /// The rules that should run but that another server owns: each is
    /// claimed again when its owner lets it go.
    standby: Arc<Mutex<HashMap<String, Rule>>>,
    /// The rules this server runs as every server does, each on the
    /// partitions its source's broker gives it ([`Distribution::Split`]).
    split: Arc<Mutex<HashSet<String>>>,
}

/// A scheduled rule's timer task, and when it next starts the rule.
struct Scheduled {
    cancel: CancellationToken,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl RuleController {
    /// A controller over a catalog and an engine; rules' own log files go in `log_dir`.
    pub fn new(catalog: CatalogHandle, engine: Arc<Engine>, log_dir: PathBuf) -> Self {
        Self {
            catalog,
            engine,
            schedules: Arc::default(),
            log_dir,
            running: Arc::default(),
            ownership: None,
            standby: Arc::default(),
            split: Arc::default(),
        }
    }

    /// Runs each rule on the one server of a shared catalog that owns it.
    pub fn with_ownership(mut self, ownership: Arc<dyn Ownership>) -> Self {
        self.ownership = Some(ownership);
        self
    }

    /// The server that runs a rule, with a shared catalog (as this server
    /// knows it: no call to etcd).
    pub fn owner(&self, id: &str) -> Option<String> {
        self.ownership.as_ref()?.owner(id)
    }

    /// The servers' shared ownership of rules, with a shared catalog.
    pub fn ownership(&self) -> Option<&Arc<dyn Ownership>> {
        self.ownership.as_ref()
    }

    /// Whether this server runs a rule as every server does, on its share of
    /// the source's partitions.
    pub fn is_split(&self, id: &str) -> bool {
        self.split_lock().contains(id)
    }

    /// The rules this server runs on its share of their source's partitions.
    pub fn split_rules(&self) -> Vec<String> {
        self.split_lock().iter().cloned().collect()
    }

    fn split_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.split.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a rule waits for its owner on another server to let it go.
    pub fn on_standby(&self, id: &str) -> Option<Rule> {
        self.standby.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Every rule that waits for another server to let it go.
    pub fn standby(&self) -> Vec<Rule> {
        self.standby.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Claims `rule` for this server; `false` (and the rule left on standby,
    /// stopped here) when another server owns it.
    fn claim(&self, rule: &Rule) -> ApiResult<bool> {
        let Some(ownership) = &self.ownership else { return Ok(true) };
        let owned = ownership.claim(&rule.id)?;
        let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
        if owned {
            standby.remove(&rule.id);
        } else {
            standby.insert(rule.id.clone(), rule.clone());
        }
        Ok(owned)
    }

    /// Gives every rule this server owns up to the others (it stops).
    pub fn resign(&self) {
        if let Some(ownership) = &self.ownership {
            ownership.resign();
        }
    }

    /// This server's claims are void (its lease lapsed): stops every rule it
    /// ran, before another server may take them over, and claims them again.
    pub async fn fence(&self) {
        let split = self.split_lock().clone();
        let owned: Vec<Rule> = {
            let mut running = self.running_lock();
            let owned: Vec<String> = running.keys().filter(|id| !split.contains(*id)).cloned().collect();
            owned.iter().filter_map(|id| running.remove(id)).collect()
        };
        for rule in &owned {
            self.unschedule(&rule.id);
            self.engine.stop(&rule.id).await;
        }
        for rule in owned {
            if let Err(error) = self.run(&rule).await {
                tracing::error!(rule = %rule.id, %error, "rule could not be claimed again");
            }
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The catalog.
    pub fn catalog(&self) -> &CatalogHandle {
        &self.catalog
    }

    /// With a shared catalog, where a rule runs: on every server, or on one and why.
    pub fn distribution(&self, rule: &Rule) -> Option<String> {
        self.ownership.as_ref()?;
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog)).ok()?;
        Some(plan.distribution.describe())
    }

    /// Checks a rule against the engine (SQL, fields, functions, connectors)
    /// without running it; returns its plan as text.
    pub fn validate(&self, rule: &Rule) -> ApiResult<String> {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog))?;
        Ok(plan.explain())
    }

    /// Runs a rule (restarting it if it runs); a scheduled rule runs when its
    /// schedule says (`crate::schedule`).
    pub async fn run(&self, rule: &Rule) -> ApiResult<()> {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog))?;
        // A split rule runs here whoever else runs it: the broker shares its partitions out.
        let split = self.ownership.is_some() && matches!(plan.distribution, Distribution::Split { .. });
        if split {
            self.release(&rule.id);
            self.split_lock().insert(rule.id.clone());
        } else {
            self.withdraw(&rule.id);
            if !self.claim(rule)? {
                self.running_lock().remove(&rule.id);
                self.unschedule(&rule.id);
                self.engine.stop(&rule.id).await;
                tracing::info!(rule = %rule.id, owner = ?self.owner(&rule.id), "rule runs on another server");
                return Ok(());
            }
        }
        self.unschedule(&rule.id);
        let log_file = rule.options.as_ref().map(|o| o.log_filename.as_str()).filter(|name| !name.is_empty());
        RuleLogs::global()
            .set(&rule.id, log_file.map(|name| (self.log_dir.as_path(), name)))
            .map_err(|e| ApiError::Internal(format!("cannot open the rule's log file: {e}")))?;
        let schedule = Schedule::of(&rule.options.clone().unwrap_or_default()).map_err(ApiError::InvalidArgument)?;
        match schedule {
            None => self.engine.start(plan).await?,
            Some(schedule) => {
                self.engine.stop(&rule.id).await;
                self.schedule(rule.clone(), schedule);
            }
        }
        self.running_lock().insert(rule.id.clone(), rule.clone());
        Ok(())
    }

    /// Restarts a rule where it runs: here if this server owns it or runs it
    /// split (keeping its claim, so that a server waiting for the rule does
    /// not take it over meanwhile), and, through the shared catalog, on the
    /// server that owns it or on every server for a split rule.
    pub async fn restart(&self, rule: &Rule) -> ApiResult<()> {
        self.run(rule).await?;
        // Not running here once run: another server owns it.
        if let Some(ownership) = &self.ownership
            && (self.is_split(&rule.id) || self.running(&rule.id).is_none())
        {
            ownership.request_restart(&rule.id)?;
        }
        Ok(())
    }

    /// Restarts a rule as another server asked ([`oort_store::OwnershipEvent::Restart`]),
    /// if this server runs it; returns whether it does.
    pub async fn restart_requested(&self, id: &str) -> ApiResult<bool> {
        let Some(rule) = self.running(id) else { return Ok(false) };
        self.run(&rule).await.map(|()| true)
    }

    /// Lets another server take a rule this one no longer runs.
    fn release(&self, id: &str) {
        self.standby.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(ownership) = &self.ownership {
            ownership.release(id);
        }
    }

    /// This server no longer runs a rule on its share of the partitions.
    fn withdraw(&self, id: &str) {
        if self.split_lock().remove(id)
            && let Some(ownership) = &self.ownership
            && let Err(error) = ownership.report(id, None)
        {
            tracing::warn!(rule = id, %error, "cannot withdraw this server's partitions of the rule");
        }
    }

    fn running_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Rule>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this server runs `rule` with this very definition (its
    /// timestamps and `triggered` aside).
    pub fn runs_as(&self, rule: &Rule) -> bool {
        let definition = |r: &Rule| Rule { create_time: None, update_time: None, triggered: None, ..r.clone() };
        self.running_lock().get(&rule.id).is_some_and(|running| definition(running) == definition(rule))
    }

    /// The definition this server last ran a rule with, if it runs it.
    pub fn running(&self, id: &str) -> Option<Rule> {
        self.running_lock().get(id).cloned()
    }

    /// Starts and stops a scheduled rule on its schedule, until it is halted.
    fn schedule(&self, rule: Rule, schedule: Schedule) {
        let (cancel, next_run) = (CancellationToken::new(), Arc::new(Mutex::new(None)));
        let scheduled = Scheduled { cancel: cancel.clone(), next_run: Arc::clone(&next_run) };
        self.schedules.lock().unwrap_or_else(|p| p.into_inner()).insert(rule.id.clone(), scheduled);
        let controller = self.clone();
        tokio::spawn(async move {
            while let Some((start, stop)) = schedule.next(Utc::now()) {
                *next_run.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(until(start)) => {}
                }
                *next_run.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let started =
                    match controller.engine.plan(&rule_definition(&rule), &CatalogStreams(&controller.catalog)) {
                        Ok(plan) => controller.engine.start(plan).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                match started {
                    Ok(()) => tracing::info!(rule = %rule.id, until = %stop, "scheduled run started"),
                    Err(error) => tracing::error!(rule = %rule.id, %error, "scheduled run could not start"),
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(until(stop)) => {}
                }
                controller.engine.stop(&rule.id).await;
                tracing::info!(rule = %rule.id, "scheduled run ended");
            }
            tracing::info!(rule = %rule.id, "the rule's schedule has no run left");
        });
    }

    /// Ends a rule's schedule, if it has one.
    fn unschedule(&self, id: &str) {
        if let Some(scheduled) = self.schedules.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            scheduled.cancel.cancel();
        }
    }

    /// When a scheduled rule next starts; `None` while it runs, or for a rule without a schedule.
    pub fn next_run(&self, id: &str) -> Option<DateTime<Utc>> {
        let schedules = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
        schedules.get(id).and_then(|s| *s.next_run.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Stops a rule if it runs, and its schedule.
    pub async fn halt(&self, id: &str) {
        self.release(id);
        self.withdraw(id);
        self.running_lock().remove(id);
        self.unschedule(id);
        self.engine.stop(id).await;
    }

    /// Stops a deleted rule and forgets what it kept: its checkpoint, its
    /// sinks' caches, its source's session at a broker.
    pub async fn remove(&self, rule: &Rule) {
        let plan = self.engine.plan(&rule_definition(rule), &CatalogStreams(&self.catalog)).ok();
        self.release(&rule.id);
        self.withdraw(&rule.id);
        self.running_lock().remove(&rule.id);
        self.unschedule(&rule.id);
        self.engine.stop(&rule.id).await;
        self.engine.forget(&rule.id, plan.as_ref());
        // Its log file stays, for whoever reads it; the rule writes to it no more.
        let _ = RuleLogs::global().set(&rule.id, None);
    }

    /// Stops a rule and records in the catalog that it should not run (what
    /// `StopRule` does), e.g. before the plugin it uses is deleted.
    pub async fn stop_and_record(&self, id: &str) -> ApiResult<()> {
        self.halt(id).await;
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

/// How long from now until `at` (none if it has passed).
fn until(at: DateTime<Utc>) -> std::time::Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}
