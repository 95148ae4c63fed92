//! `oort.v1.PluginService`: native and portable plugins installed, listed,
//! hot-reloaded and removed while the server runs. The plugin hosts load
//! libraries or supervise processes and register their symbols; this module
//! keeps the catalog in step and answers which rules use a plugin. Plugin names
//! are unique across both kinds.

use std::sync::Arc;

use oort_plugin_host::{PluginHost, PluginInfo, PortableHost, PortableInfo, SymbolInfo, SymbolKind};
use oort_proto::v1::plugin_service_server::PluginService;
use oort_proto::v1::{
    DeletePluginRequest, DeletePluginResponse, GetPluginRequest, GetPluginResponse, InstallPluginRequest,
    InstallPluginResponse, ListPluginsRequest, ListPluginsResponse, Plugin, PluginKind, PluginSymbol,
    SymbolKind as ProtoSymbolKind, UpdatePluginRequest, UpdatePluginResponse, install_plugin_request,
    update_plugin_request,
};
use oort_store::PluginRecord;
use tonic::{Request, Response, Status};

use oort_plugin_host::archive::MAX_UNPACKED_BYTES;
use oort_policy::{EgressPolicy, FileRoots, PathUse};

use crate::api::CatalogHandle;
use crate::error::{ApiError, ApiResult};
use crate::rules::RuleController;

/// Where an archive comes from.
enum ArchiveSource {
    File(String),
    Bytes(Vec<u8>),
    Url(String),
}

/// Serves `PluginService`.
pub struct PluginApi {
    host: Arc<PluginHost>,
    portable: Arc<PortableHost>,
    catalog: CatalogHandle,
    rules: RuleController,
    /// Where archives named by `url` may be downloaded from.
    egress: Arc<EgressPolicy>,
    /// Where archives named by `file` must be.
    uploads: Arc<FileRoots>,
    /// Serializes installs, updates and deletes (each spans host, catalog and files).
    changing: tokio::sync::Mutex<()>,
}

impl PluginApi {
    /// A service over the host, the catalog and the rules.
    pub fn new(
        host: Arc<PluginHost>,
        portable: Arc<PortableHost>,
        rules: RuleController,
        egress: Arc<EgressPolicy>,
        uploads: Arc<FileRoots>,
    ) -> Self {
        Self { host, portable, catalog: rules.catalog().clone(), rules, egress, uploads, changing: Default::default() }
    }

    async fn fetch(&self, source: Option<ArchiveSource>) -> ApiResult<Vec<u8>> {
        match source {
            Some(ArchiveSource::Bytes(bytes)) => Ok(bytes),
            Some(ArchiveSource::File(path)) => {
                let uploads = Arc::clone(&self.uploads);
                tokio::task::spawn_blocking(move || {
                    let file = uploads
                        .resolve(&path, PathUse::ReadFile)
                        .map_err(|e| ApiError::InvalidArgument(format!("plugin archive: {e}")))?;
                    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                    if size > MAX_UNPACKED_BYTES {
                        return Err(ApiError::InvalidArgument(format!(
                            "plugin archive {path}: {size} bytes; at most {MAX_UNPACKED_BYTES} are read"
                        )));
                    }
                    std::fs::read(&file)
                        .map_err(|e| ApiError::InvalidArgument(format!("cannot read the plugin archive {path}: {e}")))
                })
                .await
                .map_err(|e| ApiError::Internal(format!("reading task failed: {e}")))?
            }
            Some(ArchiveSource::Url(url)) => Ok(oort_plugin_host::download::download(&url, &self.egress).await?),
            None => Err(ApiError::InvalidArgument("one of `file`, `archive` or `url` is required".into())),
        }
    }

    /// Runs blocking host work (file I/O, dlopen) off the reactor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PluginHost) -> Result<T, oort_plugin_host::HostError> + Send + 'static,
    ) -> ApiResult<T> {
        let host = Arc::clone(&self.host);
        Ok(tokio::task::spawn_blocking(move || f(&host))
            .await
            .map_err(|e| ApiError::Internal(format!("plugin task failed: {e}")))??)
    }

    /// Ids of the running rules that use one of the plugin's symbols.
    async fn users(&self, name: &str, origin: oort_engine::FunctionOrigin, symbols: &[SymbolInfo]) -> Vec<String> {
        let mut users = Vec::new();
        for plan in self.rules.engine().plans().await {
            if uses(&plan, name, origin, symbols) {
                users.push(plan.rule_id.clone());
            }
        }
        users.sort();
        users
    }

    async fn to_proto(&self, info: &PluginInfo) -> Plugin {
        Plugin {
            name: info.name.clone(),
            kind: PluginKind::Native as i32,
            version: info.version.clone(),
            abi_version: info.abi_version.clone(),
            symbols: symbols_to_proto(&info.symbols),
            used_by_rules: self.users(&info.name, oort_engine::FunctionOrigin::Native, &info.symbols).await,
            last_error: self.host.stuck(&info.name).unwrap_or_default(),
            ..Default::default()
        }
    }

    async fn portable_to_proto(&self, info: &PortableInfo) -> Plugin {
        let status = self.portable.status(&info.name).unwrap_or_default();
        Plugin {
            name: info.name.clone(),
            kind: PluginKind::Portable as i32,
            version: info.version.clone(),
            abi_version: oort_plugin_host::portable::process::PROTOCOL_VERSION.to_string(),
            language: info.language.clone(),
            symbols: symbols_to_proto(&info.symbols),
            used_by_rules: self.users(&info.name, oort_engine::FunctionOrigin::Portable, &info.symbols).await,
            running: status.running,
            restart_count: status.restarts,
            last_error: status.last_error.unwrap_or_default(),
            pid: status.pid.unwrap_or_default(),
        }
    }

    async fn record_portable(&self, info: &PortableInfo) -> ApiResult<()> {
        let record = PluginRecord {
            name: info.name.clone(),
            kind: PluginKind::Portable as i32,
            version: info.version.clone(),
            abi_version: oort_plugin_host::portable::process::PROTOCOL_VERSION.to_string(),
            dir: info.dir.clone(),
            file: info.executable.clone(),
        };
        self.catalog.call(move |c| c.put_plugin(&record)).await?;
        Ok(())
    }

    /// Whether a plugin of either kind has this name.
    fn exists(&self, name: &str) -> bool {
        self.host.get(name).is_some() || self.portable.get(name).is_some()
    }

    async fn install_portable(&self, name: String, bytes: Vec<u8>) -> ApiResult<Plugin> {
        let _changing = self.changing.lock().await;
        if self.exists(&name) {
            return Err(oort_plugin_host::HostError::AlreadyExists(name).into());
        }
        let portable = Arc::clone(&self.portable);
        let staged = tokio::task::spawn_blocking(move || portable.stage(&name, &bytes))
            .await
            .map_err(|e| ApiError::Internal(format!("plugin task failed: {e}")))??;
        let info = self.portable.install(staged).await?;
        if let Err(error) = self.record_portable(&info).await {
            // Not in the catalog: not installed.
            let _ = self.portable.remove(&info.name).await;
            self.portable.delete_files(&info.dir);
            return Err(error);
        }
        Ok(self.portable_to_proto(&info).await)
    }

    async fn update_portable(&self, name: String, bytes: Vec<u8>) -> ApiResult<Plugin> {
        let _changing = self.changing.lock().await;
        let portable = Arc::clone(&self.portable);
        let staged = tokio::task::spawn_blocking(move || portable.stage(&name, &bytes))
            .await
            .map_err(|e| ApiError::Internal(format!("plugin task failed: {e}")))??;
        let (info, old_dir) = self.portable.update(staged).await?;
        self.record_portable(&info).await?;
        self.portable.delete_files(&old_dir);
        Ok(self.portable_to_proto(&info).await)
    }

    async fn delete_portable(&self, info: PortableInfo, force: bool) -> ApiResult<Vec<String>> {
        let users = self.users(&info.name, oort_engine::FunctionOrigin::Portable, &info.symbols).await;
        if !users.is_empty() && !force {
            return Err(ApiError::FailedPrecondition(format!(
                "plugin '{}' is used by rule(s) {}; stop or delete them first, or delete with force (which stops them)",
                info.name,
                users.join(", ")
            )));
        }
        for rule in &users {
            self.rules.stop_and_record(rule).await?;
        }
        self.portable.remove(&info.name).await?;
        let key = info.name.clone();
        self.catalog.call(move |c| c.delete_plugin(&key)).await?;
        self.portable.delete_files(&info.dir);
        Ok(users)
    }

    async fn record(&self, info: &PluginInfo) -> ApiResult<()> {
        let record = PluginRecord {
            name: info.name.clone(),
            kind: PluginKind::Native as i32,
            version: info.version.clone(),
            abi_version: info.abi_version.clone(),
            dir: info.dir.clone(),
            file: info.library_file.clone(),
        };
        self.catalog.call(move |c| c.put_plugin(&record)).await?;
        Ok(())
    }
}

fn check_kind(kind: i32) -> ApiResult<PluginKind> {
    match PluginKind::try_from(kind) {
        Ok(kind @ (PluginKind::Native | PluginKind::Portable)) => Ok(kind),
        _ => Err(ApiError::InvalidArgument("`kind` is required: PLUGIN_KIND_NATIVE or PLUGIN_KIND_PORTABLE".into())),
    }
}

fn symbols_to_proto(symbols: &[SymbolInfo]) -> Vec<PluginSymbol> {
    symbols
        .iter()
        .map(|s| PluginSymbol {
            name: s.name.clone(),
            kind: match s.kind {
                SymbolKind::Source => ProtoSymbolKind::Source,
                SymbolKind::Sink => ProtoSymbolKind::Sink,
                SymbolKind::Function => ProtoSymbolKind::Function,
            } as i32,
            aggregate: s.aggregate,
        })
        .collect()
}

/// Whether a rule uses one of a plugin's symbols: calls one of its functions,
/// reads one of its source types or writes to one of its sink types.
pub fn uses(
    plan: &oort_engine::RulePlan,
    name: &str,
    origin: oort_engine::FunctionOrigin,
    symbols: &[SymbolInfo],
) -> bool {
    let functions = plan.functions();
    let (sources, sinks) = plan.connector_types();
    symbols.iter().any(|s| match s.kind {
        SymbolKind::Function => functions.iter().any(|f| f.origin == origin && f.owner == name && f.name == s.name),
        SymbolKind::Source => sources.contains(&s.name),
        SymbolKind::Sink => sinks.contains(&s.name),
    })
}

/// The portable plugins a running rule uses, with their process state, for `GetRuleStatus`.
pub fn rule_plugins(plan: &oort_engine::RulePlan, portable: &PortableHost) -> Vec<oort_proto::v1::RulePluginStatus> {
    portable
        .list()
        .into_iter()
        .filter(|info| uses(plan, &info.name, oort_engine::FunctionOrigin::Portable, &info.symbols))
        .map(|info| {
            let status = portable.status(&info.name).unwrap_or_default();
            oort_proto::v1::RulePluginStatus {
                name: info.name,
                running: status.running,
                restart_count: status.restarts,
                last_error: status.last_error.unwrap_or_default(),
            }
        })
        .collect()
}

/// Registers every plugin of the catalog, at start-up, before rules are
/// restored: native libraries are loaded, portable plugins registered (their
/// processes start when a rule needs them). A plugin that fails is logged and
/// skipped; the server starts anyway (the rules that need it fail to restore,
/// and say why).
pub fn load_installed(host: &PluginHost, portable: &PortableHost, records: &[PluginRecord]) -> usize {
    let mut loaded = 0;
    for record in records {
        let result = if record.kind == PluginKind::Native as i32 {
            host.load_installed(&record.name, &record.dir).map(|_| ())
        } else if record.kind == PluginKind::Portable as i32 {
            portable.load_installed(&record.name, &record.dir).map(|_| ())
        } else {
            continue;
        };
        match result {
            Ok(()) => loaded += 1,
            Err(error) => tracing::error!(plugin = %record.name, %error, "plugin could not be loaded"),
        }
    }
    loaded
}

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn install_plugin(
        &self,
        request: Request<InstallPluginRequest>,
    ) -> Result<Response<InstallPluginResponse>, Status> {
        let request = request.into_inner();
        let kind = check_kind(request.kind)?;
        oort_plugin_host::host::check_name(&request.name).map_err(ApiError::from)?;
        let source = request.source.map(|s| match s {
            install_plugin_request::Source::File(f) => ArchiveSource::File(f),
            install_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            install_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let bytes = self.fetch(source).await?;
        if kind == PluginKind::Portable {
            let plugin = self.install_portable(request.name, bytes).await?;
            return Ok(Response::new(InstallPluginResponse { plugin: Some(plugin) }));
        }
        let _changing = self.changing.lock().await;
        let name = request.name.clone();
        if self.portable.get(&name).is_some() {
            return Err(ApiError::Plugin(oort_plugin_host::HostError::AlreadyExists(name)).into());
        }
        let info = self
            .blocking(move |host| {
                if host.get(&name).is_some() {
                    return Err(oort_plugin_host::HostError::AlreadyExists(name));
                }
                let staged = host.unpack(&name, &bytes)?;
                host.install(staged)
            })
            .await?;
        if let Err(error) = self.record(&info).await {
            // Not in the catalog: not installed.
            let _ = self.host.remove(&info.name);
            self.host.delete_files(&info.dir);
            return Err(error.into());
        }
        Ok(Response::new(InstallPluginResponse { plugin: Some(self.to_proto(&info).await) }))
    }

    async fn get_plugin(&self, request: Request<GetPluginRequest>) -> Result<Response<GetPluginResponse>, Status> {
        let name = request.into_inner().name;
        if let Some(info) = self.portable.get(&name) {
            return Ok(Response::new(GetPluginResponse { plugin: Some(self.portable_to_proto(&info).await) }));
        }
        let info = self.host.get(&name).ok_or(ApiError::Plugin(oort_plugin_host::HostError::NotFound(name)))?;
        Ok(Response::new(GetPluginResponse { plugin: Some(self.to_proto(&info).await) }))
    }

    async fn list_plugins(
        &self,
        request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let kind = request.into_inner().kind;
        let mut plugins = Vec::new();
        if kind == PluginKind::Unspecified as i32 || kind == PluginKind::Native as i32 {
            for info in self.host.list() {
                plugins.push(self.to_proto(&info).await);
            }
        }
        if kind == PluginKind::Unspecified as i32 || kind == PluginKind::Portable as i32 {
            for info in self.portable.list() {
                plugins.push(self.portable_to_proto(&info).await);
            }
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn update_plugin(
        &self,
        request: Request<UpdatePluginRequest>,
    ) -> Result<Response<UpdatePluginResponse>, Status> {
        let request = request.into_inner();
        let name = request.name.clone();
        let portable = self.portable.get(&name).is_some();
        if !portable && self.host.get(&name).is_none() {
            return Err(ApiError::Plugin(oort_plugin_host::HostError::NotFound(name)).into());
        }
        let source = request.source.map(|s| match s {
            update_plugin_request::Source::File(f) => ArchiveSource::File(f),
            update_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            update_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let bytes = self.fetch(source).await?;
        if portable {
            let plugin = self.update_portable(name, bytes).await?;
            return Ok(Response::new(UpdatePluginResponse { plugin: Some(plugin) }));
        }
        let _changing = self.changing.lock().await;
        let (info, old_dir) = self
            .blocking(move |host| {
                let staged = host.unpack(&name, &bytes)?;
                host.update(staged)
            })
            .await?;
        self.record(&info).await?;
        self.host.delete_files(&old_dir);
        Ok(Response::new(UpdatePluginResponse { plugin: Some(self.to_proto(&info).await) }))
    }

    async fn delete_plugin(
        &self,
        request: Request<DeletePluginRequest>,
    ) -> Result<Response<DeletePluginResponse>, Status> {
        let request = request.into_inner();
        let _changing = self.changing.lock().await;
        let name = request.name;
        if let Some(info) = self.portable.get(&name) {
            let stopped_rules = self.delete_portable(info, request.force).await?;
            return Ok(Response::new(DeletePluginResponse { stopped_rules }));
        }
        let Some(info) = self.host.get(&name) else {
            // In the catalog but not loaded (its library failed to load at
            // start-up): nothing runs it, so it can go at once.
            let key = name.clone();
            let record = self.catalog.call(move |c| c.get_plugin(&key)).await?;
            let key = name.clone();
            self.catalog.call(move |c| c.delete_plugin(&key)).await?;
            self.host.delete_files(&record.dir);
            return Ok(Response::new(DeletePluginResponse { stopped_rules: Vec::new() }));
        };
        let users = self.users(&info.name, oort_engine::FunctionOrigin::Native, &info.symbols).await;
        if !users.is_empty() && !request.force {
            return Err(ApiError::FailedPrecondition(format!(
                "plugin '{name}' is used by rule(s) {}; stop or delete them first, or delete with force (which stops them)",
                users.join(", ")
            ))
            .into());
        }
        for rule in &users {
            self.rules.stop_and_record(rule).await?;
        }
        self.host.remove(&name).map_err(ApiError::from)?;
        let key = name.clone();
        self.catalog.call(move |c| c.delete_plugin(&key)).await?;
        self.host.delete_files(&info.dir);
        Ok(Response::new(DeletePluginResponse { stopped_rules: users }))
    }
}
