//! `oort state put|get|list|delete`: the keyed values `get_keyed_state` reads.

use oort_proto::v1::state_service_client::StateServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    DeleteKeyedStateRequest, GetKeyedStateRequest, KeyedValue, ListKeyedStateRequest, ListValue, MapValue,
    PutKeyedStateRequest, Value,
};
use serde_json::Value as Json;

use super::Ctx;
use crate::cli::StateCommand;
use crate::error::Error;
use crate::output::{emit, print_json, print_table, table, value_to_json};

/// Runs one `oort state` subcommand.
pub async fn run(ctx: &Ctx, command: StateCommand) -> Result<(), Error> {
    match command {
        StateCommand::Put { key, value, string } => put(ctx, key, parse_value(&value, string)).await,
        StateCommand::Get { key } => get(ctx, key).await,
        StateCommand::List { prefix } => list(ctx, prefix).await,
        StateCommand::Delete { keys } => delete(ctx, keys).await,
    }
}

/// The value a command line gives: its JSON, or the text itself.
fn parse_value(text: &str, string: bool) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(json) if !string => json_to_value(&json),
        _ => Value { kind: Some(Kind::StringValue(text.to_owned())) },
    }
}

fn json_to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntValue(i),
            None => Kind::FloatValue(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(json_to_value).collect() }),
        Json::Object(map) => {
            Kind::MapValue(MapValue { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() })
        }
    };
    Value { kind: Some(kind) }
}

async fn client(ctx: &Ctx) -> Result<StateServiceClient<crate::client::Conn>, Error> {
    Ok(StateServiceClient::new(ctx.channel().await?))
}

async fn put(ctx: &Ctx, key: String, value: Value) -> Result<(), Error> {
    let entries = vec![KeyedValue { key: key.clone(), value: Some(value) }];
    let response = client(ctx).await?.put_keyed_state(PutKeyedStateRequest { entries }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Key {key} {}.", if response.created == 1 { "set" } else { "replaced" }))
}

async fn get(ctx: &Ctx, key: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_keyed_state(GetKeyedStateRequest { key }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&value_to_json(&response.value.unwrap_or_default()).to_string())
}

async fn list(ctx: &Ctx, prefix: String) -> Result<(), Error> {
    let mut client = client(ctx).await?;
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListKeyedStateRequest { prefix: prefix.clone(), page_size: 1000, page_token };
        let page = client.list_keyed_state(request).await?.into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if ctx.json {
        return print_json(&oort_proto::v1::ListKeyedStateResponse { entries, next_page_token: String::new() });
    }
    if entries.is_empty() {
        return emit("No keys.");
    }
    let mut t = table(["KEY", "VALUE"]);
    for entry in &entries {
        t.add_row([entry.key.clone(), value_to_json(&entry.value.clone().unwrap_or_default()).to_string()]);
    }
    print_table(&t)
}

async fn delete(ctx: &Ctx, keys: Vec<String>) -> Result<(), Error> {
    let count = keys.len();
    let response = client(ctx).await?.delete_keyed_state(DeleteKeyedStateRequest { keys }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("{} of {count} key(s) deleted.", response.deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_json_or_else_text() {
        let kind = |text: &str, string: bool| parse_value(text, string).kind;
        assert_eq!(kind("42", false), Some(Kind::IntValue(42)));
        assert_eq!(kind("2.5", false), Some(Kind::FloatValue(2.5)));
        assert_eq!(kind("\"007\"", false), Some(Kind::StringValue("007".into())));
        assert_eq!(kind("paris", false), Some(Kind::StringValue("paris".into())));
        assert_eq!(kind("007", true), Some(Kind::StringValue("007".into())));
        assert!(matches!(kind("[1, {\"a\": true}]", false), Some(Kind::ListValue(l)) if l.values.len() == 2));
    }
}
