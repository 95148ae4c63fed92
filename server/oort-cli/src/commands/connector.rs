//! `oort connector list|describe`.

use oort_proto::v1::connector_service_client::ConnectorServiceClient;
use oort_proto::v1::{Connector, ConnectorRole, ListConnectorsRequest};

use super::Ctx;
use crate::cli::{ConnectorCommand, ConnectorRoleArg};
use crate::error::Error;
use crate::output::{emit, or_dash, print_json, print_table, table};

/// Runs one `oort connector` subcommand.
pub async fn run(ctx: &Ctx, command: ConnectorCommand) -> Result<(), Error> {
    match command {
        ConnectorCommand::List { role } => list(ctx, role.map(role_of)).await,
        ConnectorCommand::Describe { r#type, sink } => {
            describe(ctx, &r#type, if sink { ConnectorRole::Sink } else { ConnectorRole::Source }).await
        }
    }
}

fn role_of(arg: ConnectorRoleArg) -> ConnectorRole {
    match arg {
        ConnectorRoleArg::Source => ConnectorRole::Source,
        ConnectorRoleArg::Sink => ConnectorRole::Sink,
    }
}

fn role_word(role: ConnectorRole) -> &'static str {
    match role {
        ConnectorRole::Source => "source",
        ConnectorRole::Sink => "sink",
        ConnectorRole::Unspecified => "-",
    }
}

async fn fetch(ctx: &Ctx, role: Option<ConnectorRole>) -> Result<Vec<Connector>, Error> {
    let request = ListConnectorsRequest { role: role.unwrap_or(ConnectorRole::Unspecified) as i32 };
    let mut client = ConnectorServiceClient::new(ctx.channel().await?);
    Ok(client.list_connectors(request).await?.into_inner().connectors)
}

/// The option keys of a connector, or why there are none to show.
fn keys(connector: &Connector) -> String {
    if !connector.options_declared {
        return "(not declared: passed to it unchecked)".to_owned();
    }
    or_dash(&connector.options.iter().map(|o| o.key.as_str()).collect::<Vec<_>>().join(", "))
}

async fn list(ctx: &Ctx, role: Option<ConnectorRole>) -> Result<(), Error> {
    let connectors = fetch(ctx, role).await?;
    if ctx.json {
        return print_json(&oort_proto::v1::ListConnectorsResponse { connectors });
    }
    let mut t = table(["TYPE", "ROLE", "OPTIONS"]);
    for c in &connectors {
        t.add_row([c.r#type.clone(), role_word(c.role()).to_owned(), keys(c)]);
    }
    print_table(&t)
}

async fn describe(ctx: &Ctx, name: &str, role: ConnectorRole) -> Result<(), Error> {
    let wanted = name.to_ascii_lowercase();
    let found = fetch(ctx, Some(role)).await?.into_iter().find(|c| c.r#type == wanted);
    let Some(connector) = found else {
        let other = if role == ConnectorRole::Sink { "source" } else { "sink" };
        let message =
            format!("no {} of type {name} (`oort connector list` shows them; is it a {other}?)", role_word(role));
        return Err(tonic::Status::not_found(message).into());
    };
    if ctx.json {
        return print_json(&connector);
    }
    let mut about = connector.description.clone();
    if !connector.formats.is_empty() {
        about.push_str(&format!("\nFORMAT: {}", connector.formats.join(", ")));
    }
    if !about.is_empty() {
        emit(&format!("{}\n", about.trim_start()))?;
    }
    if !connector.options_declared {
        return emit(&format!("The {} {name} does not declare its options.", role_word(role)));
    }
    if connector.options.is_empty() {
        return emit(&format!("The {} {name} takes no options of its own.", role_word(role)));
    }
    let mut t = table(["OPTION", "VALUES", "DEFAULT", "DESCRIPTION"]);
    for o in &connector.options {
        t.add_row([o.key.clone(), o.values.clone(), or_dash(&o.default_value), o.description.clone()]);
    }
    print_table(&t)
}
