//! `oort.v1.SchemaService`: the schema registry, kept in the catalog and in
//! the connectors' [`SchemaRegistry`] that protobuf streams and sinks find
//! their messages in. Every write compiles first, then stores, then updates
//! the registry, under one lock.

use std::sync::Arc;

use oort_proto::v1 as pb;
use oort_proto::v1::schema_service_server::SchemaService;
use oort_schema::{ProtoSchema, SchemaRegistry, schema_of};
use oort_store::Catalog;
use tonic::{Request, Response, Status};

use super::{CatalogHandle, Users, action_text, required};
use crate::error::{ApiError, ApiResult};
use crate::rules::RuleController;

/// Serves `SchemaService`.
pub struct SchemaApi {
    catalog: CatalogHandle,
    registry: Arc<SchemaRegistry>,
    rules: RuleController,
    /// Serializes writers: compile, store and register happen as one step.
    writes: tokio::sync::Mutex<()>,
}

/// Loads the stored schemas into the registry (at start-up, before rules are
/// restored). One that no longer compiles is logged and left out: the
/// streams and rules that use it then fail with the reason.
pub fn load_all(records: &[pb::Schema], registry: &SchemaRegistry) {
    for record in records {
        match ProtoSchema::compile(&record.name, &record.content) {
            Ok(schema) => registry.put(schema),
            Err(error) => tracing::error!(schema = %record.name, %error, "stored schema does not compile"),
        }
    }
}

/// Compiles a schema from a request.
fn compiled(schema: &pb::Schema) -> ApiResult<ProtoSchema> {
    if schema.r#type == pb::SchemaType::Unspecified as i32 || schema.r#type == pb::SchemaType::Protobuf as i32 {
        if schema.content.len() > oort_schema::MAX_PROTO_FILE_BYTES {
            return Err(ApiError::InvalidArgument(format!(
                "schema {:?}: {} bytes; at most {}",
                schema.name,
                schema.content.len(),
                oort_schema::MAX_PROTO_FILE_BYTES
            )));
        }
        ProtoSchema::compile(&schema.name, &schema.content).map_err(|e| ApiError::InvalidArgument(e.to_string()))
    } else {
        Err(ApiError::InvalidArgument(format!("schema {:?}: the only type is protobuf", schema.name)))
    }
}

/// Whether a stream decodes with schema `name`.
fn stream_uses(stream: &pb::Stream, name: &str) -> bool {
    let option = |key: &str| stream.options.get(key).map(|v| v.trim());
    option("FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("protobuf"))
        && option("SCHEMAID").is_some_and(|id| schema_of(id) == name)
}

/// What uses schema `name`.
fn users(catalog: &dyn Catalog, name: &str) -> Result<Users, oort_store::StoreError> {
    Users::find(
        catalog,
        |s| stream_uses(s, name),
        |props| action_text(props, "schemaId").is_some_and(|id| schema_of(id) == name),
    )
}

/// A stored record with the messages of its compiled schema.
fn to_proto(mut record: pb::Schema, schema: &ProtoSchema) -> pb::Schema {
    record.messages = schema.messages();
    record.r#type = pb::SchemaType::Protobuf.into();
    record
}

impl SchemaApi {
    /// The API over the catalog and the schema registry.
    pub fn new(catalog: CatalogHandle, registry: Arc<SchemaRegistry>, rules: RuleController) -> Self {
        Self { catalog, registry, rules, writes: tokio::sync::Mutex::new(()) }
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn create_schema(
        &self,
        request: Request<pb::CreateSchemaRequest>,
    ) -> Result<Response<pb::CreateSchemaResponse>, Status> {
        let schema = required(request.into_inner().schema, "schema")?;
        let _writing = self.writes.lock().await;
        let compiled = compiled(&schema)?;
        let now = super::now();
        let record = pb::Schema {
            name: schema.name,
            r#type: pb::SchemaType::Protobuf.into(),
            content: schema.content,
            messages: Vec::new(),
            create_time: Some(now),
            update_time: Some(now),
        };
        let stored = record.clone();
        self.catalog.call(move |c| c.create_schema(&stored)).await?;
        tracing::info!(schema = %record.name, messages = ?compiled.messages(), "schema created");
        let shown = to_proto(record, &compiled);
        self.registry.put(compiled);
        Ok(Response::new(pb::CreateSchemaResponse { schema: Some(shown) }))
    }

    async fn get_schema(
        &self,
        request: Request<pb::GetSchemaRequest>,
    ) -> Result<Response<pb::GetSchemaResponse>, Status> {
        let name = request.into_inner().name;
        let lookup = name.clone();
        let record = self.catalog.call(move |c| c.get_schema(&lookup)).await?;
        let messages = self.registry.get(&name).map(|s| s.messages()).unwrap_or_default();
        Ok(Response::new(pb::GetSchemaResponse { schema: Some(pb::Schema { messages, ..record }) }))
    }

    async fn list_schemas(
        &self,
        _request: Request<pb::ListSchemasRequest>,
    ) -> Result<Response<pb::ListSchemasResponse>, Status> {
        let records = self.catalog.call(|c| c.list_schemas()).await?;
        let schemas = records
            .into_iter()
            .map(|record| {
                let messages = self.registry.get(&record.name).map(|s| s.messages()).unwrap_or_default();
                pb::Schema { messages, ..record }
            })
            .collect();
        Ok(Response::new(pb::ListSchemasResponse { schemas }))
    }

    async fn update_schema(
        &self,
        request: Request<pb::UpdateSchemaRequest>,
    ) -> Result<Response<pb::UpdateSchemaResponse>, Status> {
        let schema = required(request.into_inner().schema, "schema")?;
        let _writing = self.writes.lock().await;
        let compiled = compiled(&schema)?;
        let name = schema.name.clone();
        let previous = self.catalog.call(move |c| c.get_schema(&name)).await?;
        let record =
            pb::Schema { content: schema.content, update_time: Some(super::now()), messages: Vec::new(), ..previous };
        let (stored, name) = (record.clone(), record.name.clone());
        let users = self
            .catalog
            .call(move |c| {
                c.update_schema(&stored)?;
                users(c, &name)
            })
            .await?;
        let running_rules = users.running(&self.rules).await;
        tracing::info!(schema = %record.name, ?running_rules, "schema updated");
        let shown = to_proto(record, &compiled);
        self.registry.put(compiled);
        Ok(Response::new(pb::UpdateSchemaResponse { schema: Some(shown), running_rules }))
    }

    async fn delete_schema(
        &self,
        request: Request<pb::DeleteSchemaRequest>,
    ) -> Result<Response<pb::DeleteSchemaResponse>, Status> {
        let name = request.into_inner().name;
        let _writing = self.writes.lock().await;
        let deleting = name.clone();
        let users = self
            .catalog
            .call(move |c| {
                c.get_schema(&deleting)?;
                let users = users(c, &deleting)?;
                if !users.any() {
                    c.delete_schema(&deleting)?;
                }
                Ok(users)
            })
            .await?;
        if users.any() {
            return Err(ApiError::FailedPrecondition(format!(
                "schema {name:?} is in use by streams {:?} and the actions of rules {:?}; change or delete them first",
                users.streams, users.actions
            ))
            .into());
        }
        self.registry.remove(&name);
        tracing::info!(schema = %name, "schema deleted");
        Ok(Response::new(pb::DeleteSchemaResponse {}))
    }
}
