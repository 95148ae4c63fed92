//! `oort connection create|update|list|describe|drop`.

use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Connection, ConnectionState, CreateConnectionRequest, DeleteConnectionRequest, GetConnectionRequest,
    ListConnectionsRequest, UpdateConnectionRequest,
};
use serde_json::{Map, Value};

use super::{Ctx, input_name, read_input};
use crate::cli::{ConnectionCommand, ConnectionInput};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{
    connection_state_word, emit, key_values, or_dash, print_json, print_table, render, table, timestamp,
};
use crate::rule_file::{struct_from_json, struct_to_json};

/// Runs one `oort connection` subcommand.
pub async fn run(ctx: &Ctx, command: ConnectionCommand) -> Result<(), Error> {
    match command {
        ConnectionCommand::Create(input) => create(ctx, read(input)?).await,
        ConnectionCommand::Update(input) => update(ctx, read(input)?).await,
        ConnectionCommand::List => list(ctx).await,
        ConnectionCommand::Describe { name } => describe(ctx, name).await,
        ConnectionCommand::Drop { name } => drop(ctx, name).await,
    }
}

async fn client(ctx: &Ctx) -> Result<ConnectionServiceClient<Conn>, Error> {
    Ok(ConnectionServiceClient::new(ctx.channel().await?))
}

/// The connection a command line describes: the file's, then `--type` and `--set`.
fn read(input: ConnectionInput) -> Result<Connection, Error> {
    let (mut kind, mut props) = match &input.file {
        Some(path) => {
            let text = read_input(path)?;
            let json: Value = serde_json::from_str(&text)
                .map_err(|e| Error::usage(format!("{} is not JSON: {e}", input_name(path))))?;
            from_file(json).map_err(|e| Error::usage(format!("{}: {e}", input_name(path))))?
        }
        None => (None, Map::new()),
    };
    if input.kind.is_some() {
        kind = input.kind;
    }
    for pair in &input.set {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| Error::usage(format!("--set {pair:?}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        props.insert(key.to_owned(), value);
    }
    if props.is_empty() {
        return Err(Error::usage("give the connection's properties with --set KEY=VALUE or --file"));
    }
    Ok(Connection {
        name: input.name,
        r#type: kind.unwrap_or_else(|| "mqtt".to_owned()),
        props: Some(struct_from_json(&props)),
        ..Default::default()
    })
}

/// A file's type and properties: `{"type", "props"}`, eKuiper's `{"id", "typ",
/// "props"}`, or the properties alone.
fn from_file(json: Value) -> Result<(Option<String>, Map<String, Value>), String> {
    let Value::Object(mut object) = json else { return Err("expected a JSON object".into()) };
    let kind = match object.remove("type").or_else(|| object.remove("typ")) {
        Some(Value::String(kind)) => Some(kind),
        Some(_) => return Err("\"type\" must be text".into()),
        None => None,
    };
    match object.remove("props") {
        Some(Value::Object(props)) => Ok((kind, props)),
        Some(_) => Err("\"props\" must be an object".into()),
        None => Ok((kind, object)),
    }
}

fn state_word(state: i32) -> &'static str {
    connection_state_word(ConnectionState::try_from(state).unwrap_or_default())
}

async fn create(ctx: &Ctx, connection: Connection) -> Result<(), Error> {
    let request = CreateConnectionRequest { connection: Some(connection) };
    let response = client(ctx).await?.create_connection(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let c = response.connection.unwrap_or_default();
    emit(&format!("Connection {} ({}) created.", c.name, c.r#type))
}

async fn update(ctx: &Ctx, connection: Connection) -> Result<(), Error> {
    let request = UpdateConnectionRequest { connection: Some(connection) };
    let response = client(ctx).await?.update_connection(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let name = response.connection.unwrap_or_default().name;
    if response.running_rules.is_empty() {
        emit(&format!("Connection {name} updated."))
    } else {
        let rules = response.running_rules.join(", ");
        emit(&format!("Connection {name} updated; running rules keep the old settings until restarted: {rules}."))
    }
}

async fn list(ctx: &Ctx) -> Result<(), Error> {
    let response = client(ctx).await?.list_connections(ListConnectionsRequest {}).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let mut t = table(["NAME", "TYPE", "SERVER", "STATE", "CLIENTS", "LAST ERROR"]);
    for c in &response.connections {
        let status = c.status.clone().unwrap_or_default();
        let server = c.props.as_ref().map(struct_to_json).and_then(|p| p.get("server").cloned());
        t.add_row([
            if c.declared { format!("{} (declared)", c.name) } else { c.name.clone() },
            c.r#type.clone(),
            server.and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_else(|| "-".into()),
            state_word(status.state).to_owned(),
            format!("{}/{}", status.connected, status.clients),
            or_dash(&status.last_error),
        ]);
    }
    print_table(&t)
}

async fn describe(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_connection(GetConnectionRequest { name }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let c = response.connection.unwrap_or_default();
    let status = c.status.clone().unwrap_or_default();
    let props = c.props.as_ref().map(struct_to_json).unwrap_or_default();
    let mut pairs = vec![
        ("Name", c.name.clone()),
        ("Type", c.r#type.clone()),
        ("Declared", if c.declared { "yes, in the server's configuration".into() } else { "no".into() }),
        ("State", state_word(status.state).to_owned()),
        ("Clients", format!("{} open, {} connected", status.clients, status.connected)),
        ("Last error", or_dash(&status.last_error)),
        ("Last error at", timestamp(status.last_error_time.as_ref())),
        ("Created", timestamp(c.create_time.as_ref())),
        ("Updated", timestamp(c.update_time.as_ref())),
    ];
    let settings: Vec<(String, String)> =
        props.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
    pairs.extend(settings.iter().map(|(k, v)| (k.as_str(), v.clone())));
    emit(&render(&key_values(&pairs)))
}

async fn drop(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.delete_connection(DeleteConnectionRequest { name: name.clone() }).await?;
    if ctx.json {
        return print_json(&response.into_inner());
    }
    emit(&format!("Connection {name} deleted."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_take_three_shapes() {
        let ours = serde_json::json!({"type": "mqtt", "props": {"server": "tcp://h:1883"}});
        let ekuiper = serde_json::json!({"id": "c1", "typ": "mqtt", "props": {"server": "tcp://h:1883"}});
        let bare = serde_json::json!({"server": "tcp://h:1883"});
        for json in [ours, ekuiper] {
            let (kind, props) = from_file(json).unwrap();
            assert_eq!((kind.as_deref(), props["server"].as_str()), (Some("mqtt"), Some("tcp://h:1883")));
        }
        let (kind, props) = from_file(bare).unwrap();
        assert_eq!((kind, props.len()), (None, 1));
        let typed_bare = serde_json::json!({"type": "mqtt", "server": "tcp://h:1883"});
        let (kind, props) = from_file(typed_bare).unwrap();
        assert_eq!((kind.as_deref(), props.len()), (Some("mqtt"), 1));
        assert!(from_file(serde_json::json!([1])).is_err());
    }
}
