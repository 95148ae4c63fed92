//! `oort.v1.ExternalService`. Calling external gRPC/REST services from SQL is not
//! built yet: every call answers UNIMPLEMENTED.

use oort_proto::v1::external_service_server::ExternalService;
use oort_proto::v1::{
    DeleteServiceRequest, DeleteServiceResponse, GetServiceRequest, GetServiceResponse, ListServicesRequest,
    ListServicesResponse, RegisterServiceRequest, RegisterServiceResponse, UpdateServiceRequest, UpdateServiceResponse,
};
use tonic::{Request, Response, Status};

use crate::error::ApiError;

const NO_SERVICES: &str =
    "external services are not supported yet: external functions are not built in this version of oortd";

/// Serves `ExternalService`.
#[derive(Default)]
pub struct ExternalApi;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(ApiError::Unimplemented(NO_SERVICES).into())
}

#[tonic::async_trait]
impl ExternalService for ExternalApi {
    async fn register_service(
        &self,
        _: Request<RegisterServiceRequest>,
    ) -> Result<Response<RegisterServiceResponse>, Status> {
        unimplemented()
    }
    async fn get_service(&self, _: Request<GetServiceRequest>) -> Result<Response<GetServiceResponse>, Status> {
        unimplemented()
    }
    async fn list_services(&self, _: Request<ListServicesRequest>) -> Result<Response<ListServicesResponse>, Status> {
        unimplemented()
    }
    async fn update_service(
        &self,
        _: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        unimplemented()
    }
    async fn delete_service(
        &self,
        _: Request<DeleteServiceRequest>,
    ) -> Result<Response<DeleteServiceResponse>, Status> {
        unimplemented()
    }
}
