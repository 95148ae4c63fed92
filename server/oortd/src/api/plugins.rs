//! `oort.v1.PluginService`: native plugins installed, listed, hot-reloaded and
//! removed while the server runs. The plugin host loads libraries and registers
//! their symbols; this module keeps the catalog in step and answers which rules
//! use a plugin. Portable plugins are not built yet and answer UNIMPLEMENTED.

use std::sync::Arc;

use oort_plugin_host::{PluginHost, PluginInfo, SymbolKind};
use oort_proto::v1::plugin_service_server::PluginService;
use oort_proto::v1::{
    DeletePluginRequest, DeletePluginResponse, GetPluginRequest, GetPluginResponse, InstallPluginRequest,
    InstallPluginResponse, ListPluginsRequest, ListPluginsResponse, Plugin, PluginKind, PluginSymbol,
    SymbolKind as ProtoSymbolKind, UpdatePluginRequest, UpdatePluginResponse, install_plugin_request,
    update_plugin_request,
};
use oort_store::PluginRecord;
use tonic::{Request, Response, Status};

use crate::api::CatalogHandle;
use crate::error::{ApiError, ApiResult};
use crate::rules::RuleController;

const NO_PORTABLE: &str =
    "portable plugins are not supported yet: this version of oortd installs native plugins (PLUGIN_KIND_NATIVE) only";

/// Where an archive comes from.
enum ArchiveSource {
    File(String),
    Bytes(Vec<u8>),
    Url(String),
}

/// Serves `PluginService`.
pub struct PluginApi {
    host: Arc<PluginHost>,
    catalog: CatalogHandle,
    rules: RuleController,
    allow_private_urls: bool,
    /// Serializes installs, updates and deletes (each spans host, catalog and files).
    changing: tokio::sync::Mutex<()>,
}

impl PluginApi {
    /// A service over the host, the catalog and the rules.
    pub fn new(host: Arc<PluginHost>, rules: RuleController, allow_private_urls: bool) -> Self {
        Self { host, catalog: rules.catalog().clone(), rules, allow_private_urls, changing: Default::default() }
    }

    async fn fetch(&self, source: Option<ArchiveSource>) -> ApiResult<Vec<u8>> {
        match source {
            Some(ArchiveSource::Bytes(bytes)) => Ok(bytes),
            Some(ArchiveSource::File(path)) => tokio::task::spawn_blocking(move || {
                std::fs::read(&path)
                    .map_err(|e| ApiError::InvalidArgument(format!("cannot read the plugin archive {path}: {e}")))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("reading task failed: {e}")))?,
            Some(ArchiveSource::Url(url)) => {
                Ok(oort_plugin_host::download::download(&url, self.allow_private_urls).await?)
            }
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
    async fn users(&self, info: &PluginInfo) -> Vec<String> {
        let mut users = Vec::new();
        for plan in self.rules.engine().plans().await {
            let functions = plan.functions();
            let (sources, sinks) = plan.connector_types();
            let uses = info.symbols.iter().any(|s| match s.kind {
                SymbolKind::Function => functions.iter().any(|f| {
                    f.origin == oort_engine::FunctionOrigin::Native && f.owner == info.name && f.name == s.name
                }),
                SymbolKind::Source => sources.contains(&s.name),
                SymbolKind::Sink => sinks.contains(&s.name),
            });
            if uses {
                users.push(plan.rule_id.clone());
            }
        }
        users.sort();
        users
    }

    async fn to_proto(&self, info: &PluginInfo) -> Plugin {
        let symbols = info
            .symbols
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
            .collect();
        Plugin {
            name: info.name.clone(),
            kind: PluginKind::Native as i32,
            version: info.version.clone(),
            abi_version: info.abi_version.clone(),
            symbols,
            used_by_rules: self.users(info).await,
            ..Default::default()
        }
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

fn check_kind(kind: i32) -> ApiResult<()> {
    match PluginKind::try_from(kind) {
        Ok(PluginKind::Native) => Ok(()),
        Ok(PluginKind::Portable) => Err(ApiError::Unimplemented(NO_PORTABLE)),
        _ => Err(ApiError::InvalidArgument("`kind` is required: PLUGIN_KIND_NATIVE".into())),
    }
}

/// Loads every plugin of the catalog into the host, at start-up, before rules
/// are restored. A plugin that fails to load is logged and skipped; the server
/// starts anyway (the rules that need it fail to restore, and say why).
pub fn load_installed(host: &PluginHost, records: &[PluginRecord]) -> usize {
    let mut loaded = 0;
    for record in records.iter().filter(|r| r.kind == PluginKind::Native as i32) {
        match host.load_installed(&record.name, &record.dir) {
            Ok(_) => loaded += 1,
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
        check_kind(request.kind)?;
        oort_plugin_host::host::check_name(&request.name).map_err(ApiError::from)?;
        let source = request.source.map(|s| match s {
            install_plugin_request::Source::File(f) => ArchiveSource::File(f),
            install_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            install_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let bytes = self.fetch(source).await?;
        let _changing = self.changing.lock().await;
        let name = request.name.clone();
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
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn update_plugin(
        &self,
        request: Request<UpdatePluginRequest>,
    ) -> Result<Response<UpdatePluginResponse>, Status> {
        let request = request.into_inner();
        let name = request.name.clone();
        if self.host.get(&name).is_none() {
            return Err(ApiError::Plugin(oort_plugin_host::HostError::NotFound(name)).into());
        }
        let source = request.source.map(|s| match s {
            update_plugin_request::Source::File(f) => ArchiveSource::File(f),
            update_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            update_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let bytes = self.fetch(source).await?;
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
        let users = self.users(&info).await;
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
