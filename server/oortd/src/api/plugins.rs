//! `oort.v1.PluginService`. Native and portable plugins come with the plugin
//! host, which is not built yet: every call answers UNIMPLEMENTED.

use oort_proto::v1::plugin_service_server::PluginService;
use oort_proto::v1::{
    DeletePluginRequest, DeletePluginResponse, GetPluginRequest, GetPluginResponse, InstallPluginRequest,
    InstallPluginResponse, ListPluginsRequest, ListPluginsResponse, UpdatePluginRequest, UpdatePluginResponse,
};
use tonic::{Request, Response, Status};

use crate::error::ApiError;

const NO_PLUGINS: &str = "plugins are not supported yet: the plugin host (native and portable plugins) is not built in this version of oortd";

/// Serves `PluginService`.
#[derive(Default)]
pub struct PluginApi;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(ApiError::Unimplemented(NO_PLUGINS).into())
}

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn install_plugin(
        &self,
        _: Request<InstallPluginRequest>,
    ) -> Result<Response<InstallPluginResponse>, Status> {
        unimplemented()
    }
    async fn get_plugin(&self, _: Request<GetPluginRequest>) -> Result<Response<GetPluginResponse>, Status> {
        unimplemented()
    }
    async fn list_plugins(&self, _: Request<ListPluginsRequest>) -> Result<Response<ListPluginsResponse>, Status> {
        unimplemented()
    }
    async fn update_plugin(&self, _: Request<UpdatePluginRequest>) -> Result<Response<UpdatePluginResponse>, Status> {
        unimplemented()
    }
    async fn delete_plugin(&self, _: Request<DeletePluginRequest>) -> Result<Response<DeletePluginResponse>, Status> {
        unimplemented()
    }
}
