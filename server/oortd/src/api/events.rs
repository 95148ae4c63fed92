//! `oort.v1.EventService`: events pushed by clients into `TYPE="grpc"` streams.

use std::collections::HashMap;
use std::sync::Arc;

use oort_connectors::TopicBus;
use oort_connectors::bus::{Journaled, Publisher};
use oort_engine::{Payload, SourceEvent};
use oort_proto::v1::event_service_server::EventService;
use oort_proto::v1::{Event, PublishRequest, PublishResponse};
use tonic::{Request, Response, Status, Streaming};

use super::CatalogHandle;
use crate::convert::map_from_proto;
use crate::error::{ApiError, ApiResult};

/// Serves `EventService`, publishing on the bus the `grpc` source reads.
pub struct EventApi {
    catalog: CatalogHandle,
    bus: Arc<TopicBus>,
}

impl EventApi {
    /// A service over the catalog (to check streams) and the grpc bus.
    pub fn new(catalog: CatalogHandle, bus: Arc<TopicBus>) -> Self {
        Self { catalog, bus }
    }

    /// Checks once per call and stream that the stream exists and is of type grpc.
    fn check_stream(&self, name: &str) -> ApiResult<()> {
        let stream = self.catalog.direct().get_stream(name)?;
        let source_type = stream.options.get("TYPE").map(String::as_str).unwrap_or("mqtt");
        if !source_type.eq_ignore_ascii_case("grpc") {
            return Err(ApiError::InvalidArgument(format!(
                "stream '{name}' has TYPE=\"{source_type}\"; events can be published only to TYPE=\"grpc\" streams"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    async fn publish(&self, request: Request<Streaming<PublishRequest>>) -> Result<Response<PublishResponse>, Status> {
        let mut requests = request.into_inner();
        // Each stream is checked, and its topic looked up, once per call.
        let mut publishers: HashMap<String, Publisher> = HashMap::new();
        // The last events journaled of each stream: on disk before the answer.
        let mut journaled: HashMap<String, Journaled> = HashMap::new();
        let mut accepted = 0u64;
        while let Some(request) = requests.message().await? {
            if !publishers.contains_key(&request.stream) {
                self.check_stream(&request.stream)?;
                publishers.insert(request.stream.clone(), self.bus.publisher(&request.stream));
            }
            // Inserted just above when it was missing.
            let Some(publisher) = publishers.get_mut(&request.stream) else { continue };
            if request.event.is_none() && request.events.is_empty() && request.json.is_empty() {
                return Err(ApiError::InvalidArgument(format!(
                    "a PublishRequest for '{}' has no event: set event, events or json",
                    request.stream
                ))
                .into());
            }
            // Decoded before anything is sent, so that bad JSON publishes none of the request.
            let from_json = if request.json.is_empty() {
                Vec::new()
            } else {
                oort_engine::json::decode_objects(&request.json).map_err(|e| {
                    ApiError::InvalidArgument(format!("the json of a PublishRequest for '{}': {e}", request.stream))
                })?
            };
            let typed = request.event.into_iter().chain(request.events).map(source_event);
            let from_json = from_json.into_iter().map(|fields| SourceEvent::new(Payload::Map(fields), Arc::default()));
            let events: Vec<SourceEvent> = typed.chain(from_json).collect();
            let count = events.len() as u64;
            if let Some(last) = publisher.publish(events).await.map_err(ApiError::from)? {
                journaled.insert(request.stream, last);
            }
            accepted += count;
        }
        for last in journaled.values() {
            last.durable().await.map_err(ApiError::from)?;
        }
        Ok(Response::new(PublishResponse { accepted }))
    }
}

/// An event as the engine's sources carry it.
fn source_event(event: Event) -> SourceEvent {
    let timestamp = event.timestamp.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    let meta = if event.meta.is_empty() { Arc::default() } else { Arc::new(event.meta.into_iter().collect()) };
    SourceEvent { timestamp, ..SourceEvent::new(Payload::Map(map_from_proto(&event.fields)), meta) }
}
