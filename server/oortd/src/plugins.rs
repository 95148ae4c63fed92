//! [`PluginController`]: keeps the catalog, the plugin hosts and the rules in
//! step, as [`RuleController`] does for rules. Every change spans the host
//! (files, registries), the catalog and sometimes rules, so changes are
//! serialized, and one that cannot be recorded is rolled back.

use std::sync::Arc;

use oort_plugin_host::{Installed, PluginKind, Plugins, SymbolInfo, SymbolKind};
use oort_proto::v1 as pb;
use oort_store::PluginRecord;

use crate::api::CatalogHandle;
use crate::error::{ApiError, ApiResult};
use crate::rules::RuleController;

/// Plugins across the catalog, the hosts and the rules that use them.
pub struct PluginController {
    plugins: Arc<Plugins>,
    catalog: CatalogHandle,
    rules: RuleController,
    /// Serializes installs, updates and deletes.
    changing: tokio::sync::Mutex<()>,
}

impl PluginController {
    /// A controller over both hosts, the catalog and the rules.
    pub fn new(plugins: Arc<Plugins>, rules: RuleController) -> Self {
        Self { plugins, catalog: rules.catalog().clone(), rules, changing: Default::default() }
    }

    /// Both hosts.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// Installs and records a plugin; if it cannot be recorded, it is not installed.
    pub async fn install(&self, kind: PluginKind, name: String, archive: Vec<u8>) -> ApiResult<Installed> {
        let _changing = self.changing.lock().await;
        let installed = self.plugins.install(kind, name, archive).await?;
        if let Err(error) = self.record(&installed).await {
            let _ = self.plugins.remove(&installed.name).await;
            self.plugins.delete_files(installed.kind, &installed.dir);
            return Err(error);
        }
        Ok(installed)
    }

    /// Replaces a plugin while its rules run; the old files go once the catalog points to the new ones.
    pub async fn update(&self, name: String, archive: Vec<u8>) -> ApiResult<Installed> {
        let _changing = self.changing.lock().await;
        let (installed, old_dir) = self.plugins.update(name, archive).await?;
        self.record(&installed).await?;
        self.plugins.delete_files(installed.kind, &old_dir);
        Ok(installed)
    }

    /// Deletes a plugin, refused while rules use it unless `force` (which
    /// stops them, recorded as stopped); returns the rules stopped.
    pub async fn delete(&self, name: String, force: bool) -> ApiResult<Vec<String>> {
        let _changing = self.changing.lock().await;
        let Some(installed) = self.plugins.get(&name) else {
            // In the catalog but not loaded (it failed to load at start-up):
            // nothing runs it, so it can go at once.
            let key = name.clone();
            let record = self.catalog.call(move |c| c.get_plugin(&key)).await?;
            self.catalog.call(move |c| c.delete_plugin(&name)).await?;
            self.plugins.delete_files(kind_of(record.kind), &record.dir);
            return Ok(Vec::new());
        };
        let users = self.users(&installed).await;
        if !users.is_empty() && !force {
            return Err(ApiError::FailedPrecondition(format!(
                "plugin '{name}' is used by rule(s) {}; stop or delete them first, or delete with force (which stops them)",
                users.join(", ")
            )));
        }
        for rule in &users {
            self.rules.stop_and_record(rule).await?;
        }
        self.plugins.remove(&name).await?;
        self.catalog.call(move |c| c.delete_plugin(&name)).await?;
        self.plugins.delete_files(installed.kind, &installed.dir);
        Ok(users)
    }

    /// Ids of the running rules that use one of the plugin's symbols, ordered.
    pub async fn users(&self, installed: &Installed) -> Vec<String> {
        let mut users = Vec::new();
        for plan in self.rules.engine().plans().await {
            if uses(&plan, installed) {
                users.push(plan.rule_id.clone());
            }
        }
        users.sort();
        users
    }

    async fn record(&self, installed: &Installed) -> ApiResult<()> {
        let record = PluginRecord {
            name: installed.name.clone(),
            kind: match installed.kind {
                PluginKind::Native => pb::PluginKind::Native,
                PluginKind::Portable => pb::PluginKind::Portable,
            } as i32,
            version: installed.version.clone(),
            abi_version: installed.abi_version.clone(),
            dir: installed.dir.clone(),
            file: installed.file.clone(),
        };
        self.catalog.call(move |c| c.put_plugin(&record)).await?;
        Ok(())
    }
}

/// The kind a catalog record names (an unknown one is taken as native, the
/// kind of the oldest records).
fn kind_of(kind: i32) -> PluginKind {
    match pb::PluginKind::try_from(kind) {
        Ok(pb::PluginKind::Portable) => PluginKind::Portable,
        _ => PluginKind::Native,
    }
}

/// Whether a rule uses one of a plugin's symbols: calls one of its functions,
/// reads one of its source types or writes to one of its sink types.
pub fn uses(plan: &oort_engine::RulePlan, installed: &Installed) -> bool {
    let origin = match installed.kind {
        PluginKind::Native => oort_engine::FunctionOrigin::Native,
        PluginKind::Portable => oort_engine::FunctionOrigin::Portable,
    };
    let functions = plan.functions();
    let (sources, sinks) = plan.connector_types();
    installed.symbols.iter().any(|s: &SymbolInfo| match s.kind {
        SymbolKind::Function => {
            functions.iter().any(|f| f.origin == origin && f.owner == installed.name && f.name == s.name)
        }
        SymbolKind::Source => sources.contains(&s.name),
        SymbolKind::Sink => sinks.contains(&s.name),
    })
}

/// The portable plugins a running rule uses, with their process state, for `GetRuleStatus`.
pub fn rule_plugins(plan: &oort_engine::RulePlan, plugins: &Plugins) -> Vec<pb::RulePluginStatus> {
    plugins
        .list()
        .into_iter()
        .filter(|installed| installed.kind == PluginKind::Portable && uses(plan, installed))
        .map(|installed| {
            let health = plugins.health(&installed.name).unwrap_or_default();
            pb::RulePluginStatus {
                name: installed.name,
                running: health.running,
                restart_count: health.restarts,
                last_error: health.last_error.unwrap_or_default(),
            }
        })
        .collect()
}

/// Registers every plugin of the catalog, at start-up, before rules are
/// restored: native libraries are loaded, portable plugins registered (their
/// processes start when a rule needs them). A plugin that fails is logged and
/// skipped; the server starts anyway (the rules that need it fail to restore,
/// and say why).
pub fn load_installed(plugins: &Plugins, records: &[PluginRecord]) -> usize {
    let mut loaded = 0;
    for record in records {
        let kind = match pb::PluginKind::try_from(record.kind) {
            Ok(pb::PluginKind::Native) => PluginKind::Native,
            Ok(pb::PluginKind::Portable) => PluginKind::Portable,
            _ => continue,
        };
        match plugins.load_installed(kind, &record.name, &record.dir) {
            Ok(_) => loaded += 1,
            Err(error) => tracing::error!(plugin = %record.name, %error, "plugin could not be loaded"),
        }
    }
    loaded
}
