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
use crate::shared_plugins::{LocalCopies, LocalCopy};

/// Plugins across the catalog, the hosts and the rules that use them.
#[derive(Clone)]
pub struct PluginController {
    plugins: Arc<Plugins>,
    catalog: CatalogHandle,
    rules: RuleController,
    /// Serializes installs, updates and deletes.
    changing: Arc<tokio::sync::Mutex<()>>,
    /// With a shared catalog, the plugins this server installed from the
    /// catalog's archives ([`crate::shared_plugins`]).
    copies: Option<Arc<LocalCopies>>,
}

impl PluginController {
    /// A controller over both hosts, the catalog and the rules.
    pub fn new(plugins: Arc<Plugins>, rules: RuleController) -> Self {
        Self { plugins, catalog: rules.catalog().clone(), rules, changing: Default::default(), copies: None }
    }

    /// With a shared catalog: every plugin's archive is kept in the catalog,
    /// and each server installs its own copy of it.
    pub fn with_copies(mut self, copies: Arc<LocalCopies>) -> Self {
        self.copies = Some(copies);
        self
    }

    /// Both hosts.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// Installs and records a plugin; if it cannot be recorded, it is not installed.
    pub async fn install(&self, kind: PluginKind, name: String, archive: Vec<u8>) -> ApiResult<Installed> {
        let _changing = self.changing.lock().await;
        let sha256 = self.keep_archive(&archive).await?;
        let installed = self.plugins.install(kind, name, archive).await?;
        if let Err(error) = self.record(&installed, &sha256).await {
            let _ = self.plugins.remove(&installed.name).await;
            self.plugins.delete_files(installed.kind, &installed.dir);
            return Err(error);
        }
        self.note_copy(&installed, &sha256);
        Ok(installed)
    }

    /// Replaces a plugin while its rules run; the old files go once the catalog points to the new ones.
    pub async fn update(&self, name: String, archive: Vec<u8>) -> ApiResult<Installed> {
        let _changing = self.changing.lock().await;
        let previous = self.copies.as_ref().and_then(|c| c.get(&name));
        let sha256 = self.keep_archive(&archive).await?;
        let (installed, old_dir) = self.plugins.update(name, archive).await?;
        self.record(&installed, &sha256).await?;
        self.plugins.delete_files(installed.kind, &old_dir);
        self.note_copy(&installed, &sha256);
        if let Some(previous) = previous.filter(|p| p.sha256 != sha256) {
            self.forget_archive(previous.sha256).await;
        }
        Ok(installed)
    }

    /// With a shared catalog, keeps `archive` in it for the other servers;
    /// returns its SHA-256 (empty without one).
    async fn keep_archive(&self, archive: &[u8]) -> ApiResult<String> {
        if self.copies.is_none() {
            return Ok(String::new());
        }
        let sha256 = oort_store::etcd_catalog::sha256_hex(archive);
        let (key, bytes) = (sha256.clone(), archive.to_vec());
        self.catalog.call(move |c| c.put_plugin_archive(&key, &bytes)).await?;
        Ok(sha256)
    }

    async fn forget_archive(&self, sha256: String) {
        if let Err(error) = self.catalog.call(move |c| c.delete_plugin_archive(&sha256)).await {
            tracing::warn!(%error, "a plugin archive no record names could not be deleted");
        }
    }

    fn note_copy(&self, installed: &Installed, sha256: &str) {
        if let Some(copies) = &self.copies {
            copies.set(&installed.name, LocalCopy { sha256: sha256.to_owned(), dir: installed.dir.clone() });
        }
    }

    /// A plugin another server installed, updated (`Some`) or deleted
    /// (`None`), as the shared catalog's watch reports it: this server
    /// installs the archive the record names, or removes its copy. Its own
    /// changes come back too, and change nothing.
    pub async fn follow(&self, name: &str, record: Option<PluginRecord>) -> ApiResult<()> {
        let Some(copies) = &self.copies else { return Ok(()) };
        let _changing = self.changing.lock().await;
        let Some(record) = record else {
            copies.remove(name);
            if let Ok(installed) = self.plugins.remove(name).await {
                self.plugins.delete_files(installed.kind, &installed.dir);
                tracing::info!(plugin = name, "plugin removed: deleted from the shared catalog");
            }
            return Ok(());
        };
        if record.sha256.is_empty() || copies.get(name).is_some_and(|c| c.sha256 == record.sha256) {
            return Ok(());
        }
        let installed = copy_from_catalog(&self.plugins, &self.catalog, &record).await?;
        copies.set(name, LocalCopy { sha256: record.sha256.clone(), dir: installed.dir });
        tracing::info!(plugin = name, version = %record.version, "plugin installed from the shared catalog");
        Ok(())
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
            self.forget_copy(&record).await;
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
        let key = name.clone();
        let record = self.catalog.call(move |c| c.get_plugin(&key)).await.ok();
        self.catalog.call(move |c| c.delete_plugin(&name)).await?;
        self.plugins.delete_files(installed.kind, &installed.dir);
        if let Some(record) = record {
            self.forget_copy(&record).await;
        }
        Ok(users)
    }

    /// A deleted plugin's archive and copy, with a shared catalog.
    async fn forget_copy(&self, record: &PluginRecord) {
        if let Some(copies) = &self.copies {
            copies.remove(&record.name);
            if !record.sha256.is_empty() {
                self.forget_archive(record.sha256.clone()).await;
            }
        }
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

    async fn record(&self, installed: &Installed, sha256: &str) -> ApiResult<()> {
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
            sha256: sha256.to_owned(),
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
///
/// With a shared catalog (`copies`), a plugin is loaded from this server's
/// copy when it is of the archive the record names, else installed afresh
/// from that archive.
pub async fn load_installed(
    plugins: &Arc<Plugins>,
    catalog: &CatalogHandle,
    copies: Option<&LocalCopies>,
    records: &[PluginRecord],
) -> usize {
    let mut loaded = 0;
    for record in records {
        let kind = match pb::PluginKind::try_from(record.kind) {
            Ok(pb::PluginKind::Native) => PluginKind::Native,
            Ok(pb::PluginKind::Portable) => PluginKind::Portable,
            _ => continue,
        };
        let result = match copies.filter(|_| !record.sha256.is_empty()) {
            Some(copies) => match copies.get(&record.name).filter(|c| c.sha256 == record.sha256) {
                Some(copy) => plugins.load_installed(kind, &record.name, &copy.dir).map_err(ApiError::from),
                None => copy_from_catalog(plugins, catalog, record).await.inspect(|installed| {
                    copies.set(&record.name, LocalCopy { sha256: record.sha256.clone(), dir: installed.dir.clone() })
                }),
            },
            None => plugins.load_installed(kind, &record.name, &record.dir).map_err(ApiError::from),
        };
        match result {
            Ok(_) => loaded += 1,
            Err(error) => tracing::error!(plugin = %record.name, %error, "plugin could not be loaded"),
        }
    }
    loaded
}

/// Installs (or updates to) the archive `record` names, from the shared catalog.
async fn copy_from_catalog(plugins: &Plugins, catalog: &CatalogHandle, record: &PluginRecord) -> ApiResult<Installed> {
    let sha256 = record.sha256.clone();
    let archive = catalog.call(move |c| c.get_plugin_archive(&sha256)).await?;
    match plugins.get(&record.name) {
        Some(_) => {
            let (installed, old_dir) = plugins.update(record.name.clone(), archive).await?;
            plugins.delete_files(installed.kind, &old_dir);
            Ok(installed)
        }
        None => Ok(plugins.install(kind_of(record.kind), record.name.clone(), archive).await?),
    }
}
