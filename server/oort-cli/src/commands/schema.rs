//! `oort schema create|update|list|describe|drop`.

use oort_proto::v1::schema_service_client::SchemaServiceClient;
use oort_proto::v1::{
    CreateSchemaRequest, DeleteSchemaRequest, GetSchemaRequest, ListSchemasRequest, Schema, UpdateSchemaRequest,
};

use super::{Ctx, read_input};
use crate::cli::{SchemaCommand, SchemaInput};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{emit, key_values, print_json, print_table, render, table, timestamp};

/// Runs one `oort schema` subcommand.
pub async fn run(ctx: &Ctx, command: SchemaCommand) -> Result<(), Error> {
    match command {
        SchemaCommand::Create(input) => create(ctx, read(input)?).await,
        SchemaCommand::Update(input) => update(ctx, read(input)?).await,
        SchemaCommand::List => list(ctx).await,
        SchemaCommand::Describe { name } => describe(ctx, name).await,
        SchemaCommand::Drop { name } => drop(ctx, name).await,
    }
}

async fn client(ctx: &Ctx) -> Result<SchemaServiceClient<Conn>, Error> {
    Ok(SchemaServiceClient::new(ctx.channel().await?))
}

fn read(input: SchemaInput) -> Result<Schema, Error> {
    Ok(Schema { name: input.name, content: read_input(&input.file)?, ..Default::default() })
}

async fn create(ctx: &Ctx, schema: Schema) -> Result<(), Error> {
    let response = client(ctx).await?.create_schema(CreateSchemaRequest { schema: Some(schema) }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let s = response.schema.unwrap_or_default();
    emit(&format!("Schema {} registered; messages: {}.", s.name, s.messages.join(", ")))
}

async fn update(ctx: &Ctx, schema: Schema) -> Result<(), Error> {
    let response = client(ctx).await?.update_schema(UpdateSchemaRequest { schema: Some(schema) }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let name = response.schema.unwrap_or_default().name;
    if response.running_rules.is_empty() {
        emit(&format!("Schema {name} updated."))
    } else {
        let rules = response.running_rules.join(", ");
        emit(&format!("Schema {name} updated; running rules keep its old messages until restarted: {rules}."))
    }
}

async fn list(ctx: &Ctx) -> Result<(), Error> {
    let response = client(ctx).await?.list_schemas(ListSchemasRequest {}).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let mut t = table(["NAME", "MESSAGES", "UPDATED"]);
    for s in &response.schemas {
        t.add_row([s.name.clone(), s.messages.join(", "), timestamp(s.update_time.as_ref())]);
    }
    print_table(&t)
}

async fn describe(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_schema(GetSchemaRequest { name }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let s = response.schema.unwrap_or_default();
    let pairs = [
        ("Name", s.name.clone()),
        ("Messages", s.messages.join(", ")),
        (
            "Schema id",
            format!(
                "{}.<Message>, e.g. {}.{}",
                s.name,
                s.name,
                s.messages.first().map_or("", |m| m.rsplit('.').next().unwrap_or(m))
            ),
        ),
        ("Created", timestamp(s.create_time.as_ref())),
        ("Updated", timestamp(s.update_time.as_ref())),
    ];
    emit(&format!("{}\n{}", render(&key_values(&pairs)), s.content.trim_end()))
}

async fn drop(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.delete_schema(DeleteSchemaRequest { name: name.clone() }).await?;
    if ctx.json {
        return print_json(&response.into_inner());
    }
    emit(&format!("Schema {name} deleted."))
}
