//! `oort.v1.PluginService`: native and portable plugins installed, listed,
//! hot-reloaded and removed while the server runs. This module maps messages:
//! [`PluginController`] keeps the hosts, the catalog and the rules in step.
//! Plugin names are unique across both kinds.

use std::sync::Arc;

use oort_plugin_host::archive::MAX_UNPACKED_BYTES;
use oort_plugin_host::{HostError, Installed, PluginKind as HostKind, SymbolInfo, SymbolKind};
use oort_policy::{EgressPolicy, FileRoots, PathUse};
use oort_proto::v1::plugin_service_server::PluginService;
use oort_proto::v1::{
    DeletePluginRequest, DeletePluginResponse, GetPluginRequest, GetPluginResponse, InstallPluginRequest,
    InstallPluginResponse, ListPluginsRequest, ListPluginsResponse, Plugin, PluginKind, PluginSymbol,
    SymbolKind as ProtoSymbolKind, UpdatePluginRequest, UpdatePluginResponse, install_plugin_request,
    update_plugin_request,
};
use tonic::{Request, Response, Status};

use crate::error::{ApiError, ApiResult};
use crate::plugins::PluginController;

/// Where an archive comes from.
enum ArchiveSource {
    File(String),
    Bytes(Vec<u8>),
    Url(String),
}

/// Serves `PluginService`.
pub struct PluginApi {
    plugins: PluginController,
    /// Where archives named by `url` may be downloaded from.
    egress: Arc<EgressPolicy>,
    /// Where archives named by `file` must be.
    uploads: Arc<FileRoots>,
}

impl PluginApi {
    /// A service over the plugins, downloading from where `egress` allows and
    /// reading files from `uploads`.
    pub fn new(plugins: PluginController, egress: Arc<EgressPolicy>, uploads: Arc<FileRoots>) -> Self {
        Self { plugins, egress, uploads }
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

    async fn to_proto(&self, installed: &Installed) -> Plugin {
        let health = self.plugins.plugins().health(&installed.name).unwrap_or_default();
        Plugin {
            name: installed.name.clone(),
            kind: match installed.kind {
                HostKind::Native => PluginKind::Native,
                HostKind::Portable => PluginKind::Portable,
            } as i32,
            version: installed.version.clone(),
            abi_version: installed.abi_version.clone(),
            language: installed.language.clone(),
            symbols: symbols_to_proto(&installed.symbols),
            used_by_rules: self.plugins.users(installed).await,
            running: health.running,
            restart_count: health.restarts,
            last_error: health.last_error.unwrap_or_default(),
            pid: health.pid.unwrap_or_default(),
            dependencies: installed.dependencies.clone(),
        }
    }
}

fn check_kind(kind: i32) -> ApiResult<HostKind> {
    match PluginKind::try_from(kind) {
        Ok(PluginKind::Native) => Ok(HostKind::Native),
        Ok(PluginKind::Portable) => Ok(HostKind::Portable),
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

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn install_plugin(
        &self,
        request: Request<InstallPluginRequest>,
    ) -> Result<Response<InstallPluginResponse>, Status> {
        let request = request.into_inner();
        let kind = check_kind(request.kind)?;
        oort_plugin_host::check_name(&request.name).map_err(ApiError::from)?;
        let source = request.source.map(|s| match s {
            install_plugin_request::Source::File(f) => ArchiveSource::File(f),
            install_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            install_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let archive = self.fetch(source).await?;
        let installed = self.plugins.install(kind, request.name, archive).await?;
        Ok(Response::new(InstallPluginResponse { plugin: Some(self.to_proto(&installed).await) }))
    }

    async fn get_plugin(&self, request: Request<GetPluginRequest>) -> Result<Response<GetPluginResponse>, Status> {
        let name = request.into_inner().name;
        let installed = self.plugins.plugins().get(&name).ok_or(ApiError::Plugin(HostError::NotFound(name)))?;
        Ok(Response::new(GetPluginResponse { plugin: Some(self.to_proto(&installed).await) }))
    }

    async fn list_plugins(
        &self,
        request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let kind = request.into_inner().kind;
        let wanted = match PluginKind::try_from(kind) {
            Ok(PluginKind::Native) => Some(HostKind::Native),
            Ok(PluginKind::Portable) => Some(HostKind::Portable),
            _ => None,
        };
        let mut plugins = Vec::new();
        for installed in self.plugins.plugins().list() {
            if wanted.is_none_or(|kind| kind == installed.kind) {
                plugins.push(self.to_proto(&installed).await);
            }
        }
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn update_plugin(
        &self,
        request: Request<UpdatePluginRequest>,
    ) -> Result<Response<UpdatePluginResponse>, Status> {
        let request = request.into_inner();
        if self.plugins.plugins().get(&request.name).is_none() {
            return Err(ApiError::Plugin(HostError::NotFound(request.name)).into());
        }
        let source = request.source.map(|s| match s {
            update_plugin_request::Source::File(f) => ArchiveSource::File(f),
            update_plugin_request::Source::Archive(b) => ArchiveSource::Bytes(b),
            update_plugin_request::Source::Url(u) => ArchiveSource::Url(u),
        });
        let archive = self.fetch(source).await?;
        let installed = self.plugins.update(request.name, archive).await?;
        Ok(Response::new(UpdatePluginResponse { plugin: Some(self.to_proto(&installed).await) }))
    }

    async fn delete_plugin(
        &self,
        request: Request<DeletePluginRequest>,
    ) -> Result<Response<DeletePluginResponse>, Status> {
        let request = request.into_inner();
        let stopped_rules = self.plugins.delete(request.name, request.force).await?;
        Ok(Response::new(DeletePluginResponse { stopped_rules }))
    }
}
