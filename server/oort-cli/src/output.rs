//! Printing: proto3 JSON for `--json`, tables and key/value blocks for people.
//!
//! Everything goes through [`emit`], which writes to stdout and reports write
//! errors instead of panicking like `println!`, so that `oort ... | head` ends
//! quietly.

use std::io::Write;
use std::sync::OnceLock;

use comfy_table::{ContentArrangement, Table, presets};
use oort_proto::v1;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value, json};

use crate::error::Error;

/// A generated message and its full protobuf name, needed to find its
/// descriptor for JSON (the generated code does not carry the name).
pub trait ProtoName: prost::Message + Sized {
    /// Fully qualified name, e.g. `oort.v1.Stream`.
    const FULL_NAME: &'static str;
}

macro_rules! proto_names {
    ($($name:ident),* $(,)?) => {
        $(impl ProtoName for v1::$name {
            const FULL_NAME: &'static str = concat!("oort.v1.", stringify!($name));
        })*
    };
}

proto_names!(
    CreateStreamResponse,
    GetStreamResponse,
    ListStreamsResponse,
    UpdateStreamResponse,
    DeleteStreamResponse,
    CreateRuleResponse,
    GetRuleResponse,
    ListRulesResponse,
    UpdateRuleResponse,
    DeleteRuleResponse,
    StartRuleResponse,
    StopRuleResponse,
    RestartRuleResponse,
    GetRuleStatusResponse,
    TailRuleResponse,
    ExplainRuleResponse,
    InstallPluginResponse,
    GetPluginResponse,
    ListPluginsResponse,
    UpdatePluginResponse,
    DeletePluginResponse,
    RegisterServiceResponse,
    GetServiceResponse,
    ListServicesResponse,
    UpdateServiceResponse,
    DeleteServiceResponse,
    ListConnectorsResponse,
    ListFunctionsResponse,
    CreateConnectionResponse,
    GetConnectionResponse,
    ListConnectionsResponse,
    UpdateConnectionResponse,
    DeleteConnectionResponse,
    CreateSchemaResponse,
    GetSchemaResponse,
    ListSchemasResponse,
    UpdateSchemaResponse,
    DeleteSchemaResponse,
    Connector,
    PutKeyedStateResponse,
    GetKeyedStateResponse,
    ListKeyedStateResponse,
    DeleteKeyedStateResponse,
);

/// The descriptors of every Oort message, decoded once.
fn pool() -> Result<&'static DescriptorPool, Error> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(oort_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Internal(format!("cannot decode the descriptor set: {e}")))
}

/// The message as a dynamic message of its own descriptor, for serde.
fn dynamic<M: ProtoName>(message: &M) -> Result<DynamicMessage, Error> {
    let descriptor = pool()?
        .get_message_by_name(M::FULL_NAME)
        .ok_or_else(|| Error::Internal(format!("message {} is not in the descriptor set", M::FULL_NAME)))?;
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| Error::Internal(format!("cannot re-decode {}: {e}", M::FULL_NAME)))
}

/// The message as canonical proto3 JSON (camelCase names, enums by name,
/// 64-bit integers as strings, default values left out).
pub fn to_json<M: ProtoName>(message: &M, pretty: bool) -> Result<String, Error> {
    let message = dynamic(message)?;
    let text = if pretty { serde_json::to_string_pretty(&message) } else { serde_json::to_string(&message) };
    text.map_err(|e| Error::Internal(format!("cannot serialize {}: {e}", M::FULL_NAME)))
}

/// Prints a whole response as one pretty proto3 JSON document.
pub fn print_json<M: ProtoName>(message: &M) -> Result<(), Error> {
    emit(&to_json(message, true)?)
}

/// Prints a message as proto3 JSON on a single line (one per streamed message).
pub fn print_json_line<M: ProtoName>(message: &M) -> Result<(), Error> {
    emit(&to_json(message, false)?)
}

/// Writes text and a newline to stdout, flushing so streamed lines appear at once.
pub fn emit(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.trim_end_matches('\n'))?;
    out.flush()?;
    Ok(())
}

/// Awaits `call`, showing on stderr, when it is a terminal, a spinner with
/// `label` and the seconds elapsed (a plugin install can take a minute while
/// the server makes a Python environment); the line is cleared at the end.
pub async fn with_progress<F: std::future::Future>(label: &str, call: F) -> F::Output {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return call.await;
    }
    const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tokio::pin!(call);
    let mut frame = 0;
    let output = loop {
        tokio::select! {
            output = &mut call => break output,
            _ = tick.tick() => {
                frame = (frame + 1) % FRAMES.len();
                eprint!("\r{} {label} ({} s)", FRAMES[frame], started.elapsed().as_secs());
            }
        }
    };
    eprint!("\r\x1b[2K");
    output
}

/// A table with a header row, borderless like `kubectl get`, wrapping to the
/// terminal width when there is one.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
}

/// Name/value lines (`Name:  demo`) aligned as a two-column table.
pub fn key_values(pairs: &[(&str, String)]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    for (key, value) in pairs {
        table.add_row(vec![format!("{key}:"), value.clone()]);
    }
    table
}

/// Prints a table (see [`render`]).
pub fn print_table(table: &Table) -> Result<(), Error> {
    emit(&render(table))
}

/// The table as text, without the leading space comfy-table's cell padding
/// puts on each line, so that output starts at the left margin.
pub fn render(table: &Table) -> String {
    table.lines().map(|l| trim_table_line(&l)).collect::<Vec<_>>().join("\n")
}

/// Indents every line of `text` by two spaces, for blocks under a heading.
pub fn indent(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("  {l}") }).collect::<Vec<_>>().join("\n")
}

fn trim_table_line(line: &str) -> String {
    line.strip_prefix(' ').unwrap_or(line).trim_end().to_string()
}

/// A timestamp in RFC 3339, or `-` when unset.
pub fn timestamp(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map_or_else(|| "-".to_string(), ToString::to_string)
}

/// `-` for an empty cell, so that columns never look shifted.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() { "-".to_string() } else { text.to_string() }
}

/// Collapses whitespace (SQL is often multi-line) and cuts to `max` characters
/// with an ellipsis, so a list stays one row per item.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Lower-case word for a stream kind.
pub fn kind_word(kind: v1::StreamKind) -> &'static str {
    match kind {
        v1::StreamKind::Stream => "stream",
        v1::StreamKind::Table => "table",
        v1::StreamKind::Unspecified => "unknown",
    }
}

/// Lower-case word for a rule state.
pub fn connection_state_word(state: v1::ConnectionState) -> &'static str {
    match state {
        v1::ConnectionState::Unspecified => "-",
        v1::ConnectionState::Idle => "idle",
        v1::ConnectionState::Connecting => "connecting",
        v1::ConnectionState::Connected => "connected",
        v1::ConnectionState::Disconnected => "disconnected",
    }
}

/// An operator's client: its connection (`own` for an action's own
/// settings) and state, with the error that disconnected it; `-` without one.
pub fn connection_text(op: &v1::OperatorStatus) -> String {
    if op.connection_state() == v1::ConnectionState::Unspecified {
        return "-".to_owned();
    }
    let name = if op.connection.is_empty() { "own" } else { &op.connection };
    let state = connection_state_word(op.connection_state());
    match op.connection_error.as_str() {
        "" => format!("{name} {state}"),
        error => format!("{name} {state}: {}", one_line(error, 60)),
    }
}

pub fn state_word(state: v1::RuleState) -> &'static str {
    match state {
        v1::RuleState::Stopped => "stopped",
        v1::RuleState::Starting => "starting",
        v1::RuleState::Running => "running",
        v1::RuleState::Failed => "failed",
        v1::RuleState::Finished => "finished",
        v1::RuleState::Unspecified => "unknown",
    }
}

/// An event's columns as a plain JSON object, the way eKuiper's log sink
/// shows results: `{"temperature": 21.5, "device": "a"}`.
pub fn event_to_json(event: &v1::Event) -> Value {
    Value::Object(map_to_json(&event.fields))
}

fn map_to_json(fields: &std::collections::HashMap<String, v1::Value>) -> Map<String, Value> {
    let mut entries: Vec<_> = fields.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()
}

/// One Oort value as JSON: bytes in base64 and timestamps in RFC 3339, as
/// eKuiper prints them.
pub fn value_to_json(value: &v1::Value) -> Value {
    use v1::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::IntValue(i)) => json!(i),
        Some(Kind::FloatValue(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BytesValue(b)) => json!(base64(b)),
        Some(Kind::TimestampValue(t)) => json!(t.to_string()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::MapValue(map)) => Value::Object(map_to_json(&map.fields)),
    }
}

/// Standard base64 with padding; a few lines here rather than one more crate.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_message_is_in_the_descriptor_set() {
        fn check<M: ProtoName + Default>() {
            assert!(to_json(&M::default(), false).is_ok(), "{}", M::FULL_NAME);
        }
        check::<v1::CreateStreamResponse>();
        check::<v1::GetStreamResponse>();
        check::<v1::ListStreamsResponse>();
        check::<v1::UpdateStreamResponse>();
        check::<v1::DeleteStreamResponse>();
        check::<v1::CreateRuleResponse>();
        check::<v1::GetRuleResponse>();
        check::<v1::ListRulesResponse>();
        check::<v1::UpdateRuleResponse>();
        check::<v1::DeleteRuleResponse>();
        check::<v1::StartRuleResponse>();
        check::<v1::StopRuleResponse>();
        check::<v1::RestartRuleResponse>();
        check::<v1::GetRuleStatusResponse>();
        check::<v1::TailRuleResponse>();
        check::<v1::ExplainRuleResponse>();
    }

    #[test]
    fn json_is_canonical_proto3() {
        let response = v1::ListStreamsResponse {
            streams: vec![v1::Stream {
                name: "demo".into(),
                kind: v1::StreamKind::Stream as i32,
                sql: "CREATE STREAM demo () WITH (TYPE=\"mqtt\")".into(),
                ..Default::default()
            }],
        };
        let value: Value = serde_json::from_str(&to_json(&response, true).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({"streams": [{"name": "demo", "kind": "STREAM_KIND_STREAM", "sql": "CREATE STREAM demo () WITH (TYPE=\"mqtt\")"}]})
        );
        assert_eq!(to_json(&v1::DeleteStreamResponse {}, true).unwrap(), "{}");
    }

    #[test]
    fn rule_props_serialize_as_a_json_object() {
        let rule = crate::rule_file::rule_from_json(
            r#"{"id":"r","sql":"SELECT 1","actions":[{"mqtt":{"topic":"t","qos":1}}],"options":{"lateTolerance":5}}"#,
            None,
        )
        .unwrap();
        let text = to_json(&v1::GetRuleResponse { rule: Some(rule) }, false).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["rule"]["actions"][0]["props"], json!({"topic": "t", "qos": 1.0}));
        assert_eq!(value["rule"]["options"]["lateToleranceMs"], json!("5"));
    }

    #[test]
    fn one_line_flattens_and_truncates() {
        assert_eq!(one_line("SELECT *\n  FROM demo", 40), "SELECT * FROM demo");
        assert_eq!(one_line("abcdefghij", 5), "abcd…");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn event_prints_as_plain_json() {
        use v1::value::Kind;
        let value = |kind| v1::Value { kind: Some(kind) };
        let event = v1::Event {
            fields: [
                ("t".to_string(), value(Kind::FloatValue(21.5))),
                ("n".to_string(), value(Kind::IntValue(i64::MAX))),
                ("b".to_string(), value(Kind::BytesValue(b"hi".to_vec()))),
                ("z".to_string(), v1::Value { kind: None }),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&event_to_json(&event)).unwrap(),
            format!(r#"{{"b":"aGk=","n":{},"t":21.5,"z":null}}"#, i64::MAX)
        );
    }

    #[test]
    fn key_values_align_without_leading_space() {
        let table = key_values(&[("Name", "demo".into()), ("Kind", "stream".into())]);
        let lines: Vec<String> = table.lines().map(|l| trim_table_line(&l)).collect();
        assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["Name:", "demo"]);
        assert!(lines[0].starts_with("Name:"));
        assert_eq!(lines[0].find("demo"), lines[1].find("stream"));
    }
}
