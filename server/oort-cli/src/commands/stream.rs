//! `oort stream create|update|list|describe|drop`.

use std::path::Path;

use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{
    CreateStreamRequest, DeleteStreamRequest, GetStreamRequest, ListStreamsRequest, Stream, StreamKind,
    UpdateStreamRequest,
};

use super::{Ctx, read_input};
use crate::cli::{KindArg, SqlInput, StreamCommand};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{self, emit, indent, key_values, or_dash, print_json, print_table, render, table, timestamp};

/// Longest FIELDS cell in `stream list` before it is cut.
const FIELDS_WIDTH: usize = 48;

/// Runs one `oort stream` subcommand.
pub async fn run(ctx: &Ctx, command: StreamCommand) -> Result<(), Error> {
    match command {
        StreamCommand::Create(input) => create(ctx, read_sql(&input)?).await,
        StreamCommand::Update(input) => update(ctx, read_sql(&input)?).await,
        StreamCommand::List { kind } => list(ctx, kind).await,
        StreamCommand::Describe { name } => describe(ctx, name).await,
        StreamCommand::Drop { name } => delete(ctx, name).await,
    }
}

async fn client(ctx: &Ctx) -> Result<StreamServiceClient<Conn>, Error> {
    Ok(StreamServiceClient::new(ctx.channel().await?))
}

/// The DDL from the argument, `--file`, or stdin for `-`.
fn read_sql(input: &SqlInput) -> Result<String, Error> {
    let sql = match (&input.sql, &input.file) {
        (Some(sql), _) if sql == "-" => read_input(Path::new("-"))?,
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) => read_input(path)?,
        (None, None) => return Err(Error::usage("give the statement as an argument, with --file, or `-` for stdin")),
    };
    if sql.trim().is_empty() {
        return Err(Error::usage("the statement is empty"));
    }
    Ok(sql)
}

async fn create(ctx: &Ctx, sql: String) -> Result<(), Error> {
    let response = client(ctx).await?.create_stream(CreateStreamRequest { sql }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let stream = response.stream.unwrap_or_default();
    emit(&format!("{} {} created.", noun(stream.kind()), stream.name))
}

async fn update(ctx: &Ctx, sql: String) -> Result<(), Error> {
    let response = client(ctx).await?.update_stream(UpdateStreamRequest { sql }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let stream = response.stream.unwrap_or_default();
    emit(&format!("{} {} updated.", noun(stream.kind()), stream.name))
}

async fn list(ctx: &Ctx, kind: Option<KindArg>) -> Result<(), Error> {
    let kind = match kind {
        None => StreamKind::Unspecified,
        Some(KindArg::Stream) => StreamKind::Stream,
        Some(KindArg::Table) => StreamKind::Table,
    };
    let request = ListStreamsRequest { kind: kind as i32 };
    let response = client(ctx).await?.list_streams(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.streams.is_empty() {
        return emit(match kind {
            StreamKind::Table => "No tables.",
            StreamKind::Stream => "No streams.",
            StreamKind::Unspecified => "No streams or tables.",
        });
    }
    print_table(&list_table(&response.streams))
}

/// NAME, KIND, TYPE, DATASOURCE, FORMAT, FIELDS: one row per stream.
fn list_table(streams: &[Stream]) -> comfy_table::Table {
    let mut table = table(["NAME", "KIND", "TYPE", "DATASOURCE", "FORMAT", "FIELDS"]);
    for stream in streams {
        table.add_row(vec![
            stream.name.clone(),
            output::kind_word(stream.kind()).to_string(),
            option(stream, "TYPE"),
            option(stream, "DATASOURCE"),
            option(stream, "FORMAT"),
            output::one_line(&fields_summary(stream), FIELDS_WIDTH),
        ]);
    }
    table
}

/// A WITH option by its (upper-case) key, `-` if absent.
fn option(stream: &Stream, key: &str) -> String {
    or_dash(stream.options.get(key).map_or("", String::as_str))
}

/// `temperature FLOAT, device STRING`, or `(schemaless)` for `()`.
fn fields_summary(stream: &Stream) -> String {
    if stream.fields.is_empty() {
        return "(schemaless)".to_string();
    }
    stream.fields.iter().map(|f| format!("{} {}", f.name, f.r#type)).collect::<Vec<_>>().join(", ")
}

async fn describe(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_stream(GetStreamRequest { name }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&describe_text(&response.stream.unwrap_or_default()))
}

/// Name and kind, then options, fields and the DDL, each under a heading.
fn describe_text(stream: &Stream) -> String {
    let header = key_values(&[
        ("Name", stream.name.clone()),
        ("Kind", output::kind_word(stream.kind()).to_string()),
        ("Created", timestamp(stream.create_time.as_ref())),
        ("Updated", timestamp(stream.update_time.as_ref())),
    ]);
    let mut options: Vec<(&str, String)> = stream.options.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    options.sort();
    let options = if options.is_empty() { "(none)".to_string() } else { render(&key_values(&options)) };
    let fields = if stream.fields.is_empty() {
        "(schemaless)".to_string()
    } else {
        let mut fields = table(["NAME", "TYPE"]);
        for field in &stream.fields {
            fields.add_row(vec![field.name.clone(), field.r#type.clone()]);
        }
        render(&fields)
    };
    format!(
        "{}\n\nOptions:\n{}\n\nFields:\n{}\n\nSQL:\n{}",
        render(&header),
        indent(&options),
        indent(&fields),
        indent(stream.sql.trim())
    )
}

async fn delete(ctx: &Ctx, name: String) -> Result<(), Error> {
    let request = DeleteStreamRequest { name: name.clone() };
    let response = client(ctx).await?.delete_stream(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Stream {name} dropped."))
}

/// "Stream" or "Table", to start a success message.
fn noun(kind: StreamKind) -> &'static str {
    if kind == StreamKind::Table { "Table" } else { "Stream" }
}

#[cfg(test)]
mod tests {
    use oort_proto::v1::Field;

    use super::*;

    fn demo() -> Stream {
        Stream {
            name: "demo".into(),
            kind: StreamKind::Stream as i32,
            sql: "CREATE STREAM demo (temperature FLOAT, device STRING) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")"
                .into(),
            fields: vec![
                Field { name: "temperature".into(), r#type: "FLOAT".into() },
                Field { name: "device".into(), r#type: "STRING".into() },
            ],
            options: [("DATASOURCE".to_string(), "demo".to_string()), ("TYPE".to_string(), "mqtt".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn list_row_shows_options_and_fields() {
        let text = render(&list_table(&[demo()]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "KIND", "TYPE", "DATASOURCE", "FORMAT", "FIELDS"]
        );
        assert!(lines[1].starts_with("demo"), "{text}");
        for cell in ["stream", "mqtt", "demo", "-", "temperature FLOAT, device STRING"] {
            assert!(lines[1].contains(cell), "{cell} missing in {text}");
        }
    }

    #[test]
    fn schemaless_stream_says_so() {
        let stream = Stream { fields: vec![], ..demo() };
        assert_eq!(fields_summary(&stream), "(schemaless)");
    }

    #[test]
    fn describe_has_every_section() {
        let text = describe_text(&demo());
        for part in [
            "Name:",
            "demo",
            "Kind:",
            "stream",
            "Options:",
            "DATASOURCE",
            "Fields:",
            "temperature",
            "SQL:",
            "  CREATE STREAM",
        ] {
            assert!(text.contains(part), "{part} missing in\n{text}");
        }
    }

    #[test]
    fn dash_argument_and_empty_statement() {
        let input = SqlInput { sql: Some("  ".into()), file: None };
        assert!(matches!(read_sql(&input), Err(Error::Usage(_))));
        let input = SqlInput { sql: Some("CREATE STREAM s () WITH (TYPE=\"memory\")".into()), file: None };
        assert!(read_sql(&input).is_ok());
    }
}
