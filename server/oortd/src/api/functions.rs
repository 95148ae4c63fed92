//! `oort.v1.FunctionService`. The function registry belongs to the engine, which
//! is not built yet: ListFunctions answers UNIMPLEMENTED.

use oort_proto::v1::function_service_server::FunctionService;
use oort_proto::v1::{ListFunctionsRequest, ListFunctionsResponse};
use tonic::{Request, Response, Status};

use crate::error::ApiError;

/// Serves `FunctionService`.
#[derive(Default)]
pub struct FunctionApi;

#[tonic::async_trait]
impl FunctionService for FunctionApi {
    async fn list_functions(
        &self,
        _: Request<ListFunctionsRequest>,
    ) -> Result<Response<ListFunctionsResponse>, Status> {
        Err(ApiError::Unimplemented(
            "functions are not listed yet: the function registry comes with the streaming engine, which is not built in this version of oortd",
        )
        .into())
    }
}
