//! `oort.v1.FunctionService`: the engine's function registry, whoever provides
//! each function.

use std::sync::Arc;

use oort_engine::{FunctionKind, FunctionOrigin as EngineOrigin, FunctionRegistry};
use oort_proto::v1::function_service_server::FunctionService;
use oort_proto::v1::{Function, FunctionOrigin, ListFunctionsRequest, ListFunctionsResponse};
use tonic::{Request, Response, Status};

/// Serves `FunctionService` from the registry.
pub struct FunctionApi {
    registry: Arc<FunctionRegistry>,
}

impl FunctionApi {
    /// A service over the registry.
    pub fn new(registry: Arc<FunctionRegistry>) -> Self {
        Self { registry }
    }
}

fn origin_to_proto(origin: EngineOrigin) -> FunctionOrigin {
    match origin {
        EngineOrigin::Builtin => FunctionOrigin::Builtin,
        EngineOrigin::Native => FunctionOrigin::Native,
        EngineOrigin::Portable => FunctionOrigin::Portable,
        EngineOrigin::External => FunctionOrigin::External,
    }
}

#[tonic::async_trait]
impl FunctionService for FunctionApi {
    async fn list_functions(
        &self,
        request: Request<ListFunctionsRequest>,
    ) -> Result<Response<ListFunctionsResponse>, Status> {
        let filter = request.into_inner().origin;
        let functions = self
            .registry
            .list()
            .into_iter()
            .map(|meta| Function {
                signature: meta.signature(),
                name: meta.name,
                origin: origin_to_proto(meta.origin) as i32,
                aggregate: meta.kind == FunctionKind::Aggregate,
                owner: meta.owner,
                description: meta.description,
            })
            .filter(|f| filter == FunctionOrigin::Unspecified as i32 || f.origin == filter)
            .collect();
        Ok(Response::new(ListFunctionsResponse { functions }))
    }
}
