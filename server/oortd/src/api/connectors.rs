//! `oort.v1.ConnectorService`: the source and sink types of the connector
//! registry, built-in and from plugins, with the options each declares.

use std::sync::Arc;

use oort_engine::{ConnectorInfo, ConnectorOption as EngineOption, ConnectorRegistry};
use oort_proto::v1::connector_service_server::ConnectorService;
use oort_proto::v1::{Connector, ConnectorOption, ConnectorRole, ListConnectorsRequest, ListConnectorsResponse};
use tonic::{Request, Response, Status};

/// Serves `ConnectorService` from the registry.
pub struct ConnectorApi {
    registry: Arc<ConnectorRegistry>,
}

impl ConnectorApi {
    /// A service over the registry.
    pub fn new(registry: Arc<ConnectorRegistry>) -> Self {
        Self { registry }
    }
}

fn connector(role: ConnectorRole, info: ConnectorInfo) -> Connector {
    Connector {
        r#type: info.name,
        role: role as i32,
        options_declared: info.options.is_some(),
        options: info.options.unwrap_or_default().into_iter().map(option).collect(),
        description: info.description.to_owned(),
        formats: info.formats.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn option(option: EngineOption) -> ConnectorOption {
    ConnectorOption {
        key: option.key.to_owned(),
        values: option.kind.describe(),
        default_value: option.default.to_owned(),
        description: option.description.to_owned(),
    }
}

#[tonic::async_trait]
impl ConnectorService for ConnectorApi {
    async fn list_connectors(
        &self,
        request: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        let role = request.into_inner().role();
        let wants = |r: ConnectorRole| role == ConnectorRole::Unspecified || role == r;
        let mut connectors = Vec::new();
        if wants(ConnectorRole::Source) {
            connectors.extend(self.registry.source_infos().into_iter().map(|c| connector(ConnectorRole::Source, c)));
        }
        if wants(ConnectorRole::Sink) {
            connectors.extend(self.registry.sink_infos().into_iter().map(|c| connector(ConnectorRole::Sink, c)));
        }
        Ok(Response::new(ListConnectorsResponse { connectors }))
    }
}
