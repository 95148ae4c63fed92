//! `oort.v1.StreamService`: stream and table definitions in the catalog.

use oort_proto::v1::stream_service_server::StreamService;
use oort_proto::v1::{
    CreateStreamRequest, CreateStreamResponse, DeleteStreamRequest, DeleteStreamResponse, Field, GetStreamRequest,
    GetStreamResponse, ListStreamsRequest, ListStreamsResponse, Stream, StreamKind, UpdateStreamRequest,
    UpdateStreamResponse,
};
use oort_sql::{SqlError, StreamDef, StreamKind as SqlStreamKind};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use oort_connectors::Buses;
use oort_engine::{ConnectorError, ConnectorRegistry};

use super::{CatalogHandle, now};
use crate::error::{ApiError, ApiResult};

/// Serves `StreamService` over the catalog.
pub struct StreamApi {
    catalog: CatalogHandle,
    connectors: Arc<ConnectorRegistry>,
    /// Whose journals a deleted stream's are.
    buses: Buses,
}

impl StreamApi {
    /// A service over `catalog`, whose definitions `connectors` validate;
    /// deleting a stream deletes its journal from `buses`.
    pub fn new(catalog: CatalogHandle, connectors: Arc<ConnectorRegistry>, buses: Buses) -> Self {
        Self { catalog, connectors, buses }
    }

    /// Deletes the journal a deleted stream left on disk, if any.
    fn forget_journal(&self, stream: &Stream) {
        let option = |key: &str| stream.options.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v);
        let forgotten = match option("TYPE").map(|t| t.to_ascii_lowercase()).as_deref() {
            Some("grpc") => self.buses.grpc.forget_journal(&stream.name),
            Some("httppush") => option("DATASOURCE").map_or(Ok(false), |path| self.buses.http.forget_journal(path)),
            _ => Ok(false),
        };
        if let Err(e) = forgotten {
            tracing::warn!(stream = %stream.name, error = %e, "the journal of a deleted stream could not be deleted");
        }
    }

    /// Parses DDL into the stored form of a stream; its source checks its
    /// options now (an unknown key, a file outside the roots), not when a
    /// rule first reads it. An option it refuses is pointed at in the SQL.
    fn stream_from_sql(&self, sql: &str) -> ApiResult<Stream> {
        let (def, positions) = oort_sql::parse_stream_ddl_with_positions(sql)?;
        self.connectors.validate_source(&def).map_err(|e| match e {
            ConnectorError::Option { key, message } => ApiError::Sql(SqlError::semantic(message, positions.of(&key))),
            other => ApiError::Engine(other.into()),
        })?;
        Ok(stored_form(def, sql))
    }
}

/// The stored form of a parsed stream.
fn stored_form(def: StreamDef, sql: &str) -> Stream {
    let time = now();
    Stream {
        name: def.name,
        kind: match def.kind {
            SqlStreamKind::Stream => StreamKind::Stream,
            SqlStreamKind::Table => StreamKind::Table,
        } as i32,
        sql: sql.trim().to_owned(),
        fields: def.fields.iter().map(|f| Field { name: f.name.clone(), r#type: f.field_type.to_string() }).collect(),
        options: def.options.into_iter().collect(),
        create_time: Some(time),
        update_time: Some(time),
    }
}

#[tonic::async_trait]
impl StreamService for StreamApi {
    async fn create_stream(
        &self,
        request: Request<CreateStreamRequest>,
    ) -> Result<Response<CreateStreamResponse>, Status> {
        let stream = self.stream_from_sql(&request.into_inner().sql)?;
        let stored = stream.clone();
        self.catalog.call(move |c| c.create_stream(&stored)).await?;
        tracing::info!(stream = %stream.name, "stream created");
        Ok(Response::new(CreateStreamResponse { stream: Some(stream) }))
    }

    async fn get_stream(&self, request: Request<GetStreamRequest>) -> Result<Response<GetStreamResponse>, Status> {
        let name = request.into_inner().name;
        let stream = self.catalog.call(move |c| c.get_stream(&name)).await?;
        Ok(Response::new(GetStreamResponse { stream: Some(stream) }))
    }

    async fn list_streams(
        &self,
        request: Request<ListStreamsRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        let kind = request.into_inner().kind;
        let mut streams = self.catalog.call(|c| c.list_streams()).await?;
        if kind != StreamKind::Unspecified as i32 {
            streams.retain(|s| s.kind == kind);
        }
        Ok(Response::new(ListStreamsResponse { streams }))
    }

    async fn update_stream(
        &self,
        request: Request<UpdateStreamRequest>,
    ) -> Result<Response<UpdateStreamResponse>, Status> {
        let mut stream = self.stream_from_sql(&request.into_inner().sql)?;
        let stored = stream.clone();
        let previous = self
            .catalog
            .call(move |c| {
                // Keep the creation time of the definition being replaced.
                let previous = c.get_stream(&stored.name)?;
                let stored = Stream { create_time: previous.create_time, ..stored };
                c.update_stream(&stored)
            })
            .await?;
        stream.create_time = previous.create_time;
        tracing::info!(stream = %stream.name, "stream updated");
        Ok(Response::new(UpdateStreamResponse { stream: Some(stream) }))
    }

    async fn delete_stream(
        &self,
        request: Request<DeleteStreamRequest>,
    ) -> Result<Response<DeleteStreamResponse>, Status> {
        let name = request.into_inner().name;
        let deleted = name.clone();
        let stream = self.catalog.call(move |c| c.get_stream(&deleted)).await?;
        let deleted = name.clone();
        self.catalog.call(move |c| c.delete_stream(&deleted)).await?;
        self.forget_journal(&stream);
        tracing::info!(stream = %name, "stream deleted");
        Ok(Response::new(DeleteStreamResponse {}))
    }
}
