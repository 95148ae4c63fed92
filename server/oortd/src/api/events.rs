//! `oort.v1.EventService`. Publishing into `TYPE="grpc"` streams needs the
//! engine, which is not built yet: Publish answers UNIMPLEMENTED.

use oort_proto::v1::event_service_server::EventService;
use oort_proto::v1::{PublishRequest, PublishResponse};
use tonic::{Request, Response, Status, Streaming};

use crate::error::ApiError;

/// Serves `EventService`.
#[derive(Default)]
pub struct EventApi;

#[tonic::async_trait]
impl EventService for EventApi {
    async fn publish(&self, _: Request<Streaming<PublishRequest>>) -> Result<Response<PublishResponse>, Status> {
        Err(ApiError::Unimplemented(
            "publishing events is not supported yet: the streaming engine is not built in this version of oortd",
        )
        .into())
    }
}
