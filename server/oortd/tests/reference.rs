//! The generated references, `docs/functions.md` and `docs/connectors.md`,
//! rendered from what a real `oortd` answers to `FunctionService` and
//! `ConnectorService`, so they say what `oort function list` and `oort
//! connector describe` say. The test fails when a checked-in page differs;
//! `OORT_UPDATE_DOCS=1 cargo test -p oortd --test reference` writes them anew.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use common::Oortd;
use oort_proto::v1::connector_service_client::ConnectorServiceClient;
use oort_proto::v1::function_service_client::FunctionServiceClient;
use oort_proto::v1::{
    Connector, ConnectorOption, ConnectorRole, Function, FunctionOrigin, ListConnectorsRequest, ListFunctionsRequest,
};

const UPDATE: &str = "OORT_UPDATE_DOCS";

#[tokio::test]
async fn the_function_and_connector_references_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let request = ListFunctionsRequest { origin: FunctionOrigin::Builtin as i32 };
    let functions =
        FunctionServiceClient::new(oortd.channel().await).list_functions(request).await.unwrap().into_inner().functions;
    let request = ListConnectorsRequest { role: ConnectorRole::Unspecified as i32 };
    let connectors = ConnectorServiceClient::new(oortd.channel().await)
        .list_connectors(request)
        .await
        .unwrap()
        .into_inner()
        .connectors;
    oortd.terminate().await;

    let stale: Vec<String> =
        [("functions.md", functions_page(&functions)), ("connectors.md", connectors_page(&connectors))]
            .into_iter()
            .filter_map(|(name, page)| check(name, &page))
            .collect();
    assert!(
        stale.is_empty(),
        "out of date: {}; run `{UPDATE}=1 cargo test -p oortd --test reference`",
        stale.join(", ")
    );
}

/// Compares `docs/<name>` with `page`, or writes it when asked to; the name if stale.
fn check(name: &str, page: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, page).unwrap();
        return None;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    (current != page).then(|| format!("docs/{name}"))
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

fn functions_page(functions: &[Function]) -> String {
    let mut page = String::from(
        "# SQL functions\n\n\
         <!-- Generated from FunctionService by server/oortd/tests/reference.rs; do not edit. -->\n\n\
         The built-in functions, with eKuiper's names and semantics. Names are\n\
         case-insensitive; optional arguments are in brackets, `...` takes any number\n\
         more. Unless a description says otherwise, a scalar function returns NULL when\n\
         an argument is NULL, and an aggregate ignores NULL values. Functions from\n\
         plugins and external services are listed by `oort function list`. How to call\n\
         them, and the analytic functions' `OVER (PARTITION BY ... WHEN ...)`, are in\n\
         [sql.md](sql.md).\n",
    );
    for (title, aggregate) in [("Scalar functions", false), ("Aggregate functions", true)] {
        let listed: Vec<&Function> = functions.iter().filter(|f| f.aggregate == aggregate).collect();
        write!(page, "\n## {title} ({})\n\n| function | description |\n|---|---|\n", listed.len()).unwrap();
        for f in listed {
            writeln!(page, "| `{}` | {} |", cell(&f.signature), cell(&f.description)).unwrap();
        }
    }
    page
}

fn connectors_page(connectors: &[Connector]) -> String {
    let sources: Vec<&Connector> = connectors.iter().filter(|c| c.role() == ConnectorRole::Source).collect();
    let sinks: Vec<&Connector> = connectors.iter().filter(|c| c.role() == ConnectorRole::Sink).collect();
    // A sink property declared alike by several sinks (the encoding, the
    // queue, the cache, batches) is described once, with the sinks that take it.
    let mut takers: BTreeMap<(&str, &str, &str, &str), Vec<&str>> = BTreeMap::new();
    for sink in &sinks {
        for o in &sink.options {
            takers.entry(option_key(o)).or_default().push(&sink.r#type);
        }
    }
    let shared = |o: &ConnectorOption| takers.get(&option_key(o)).is_some_and(|t| t.len() > 1);

    let mut page = String::from(
        "# Connectors\n\n\
         <!-- Generated from ConnectorService by server/oortd/tests/reference.rs; do not edit. -->\n\n\
         The built-in sources (a stream's `TYPE`) and sinks (a rule action's type),\n\
         with the options each takes, as `oort connector describe TYPE [--sink]`\n\
         shows them. A source's options go in the stream's `WITH (...)`, besides the\n\
         keys every stream takes (`DATASOURCE`, `FORMAT`, `TYPE`, `KEY`, ...: see\n\
         [sql.md](sql.md)); a sink's are the properties of its action. A key the\n\
         connector does not take is refused when the stream or rule is created.\n\
         Broker addresses and credentials are kept once in named connections\n\
         ([connections.md](connections.md)).\n\n## Sources\n",
    );
    for source in &sources {
        write!(page, "\n### {}\n\n{}\n\nFORMAT: {}.\n", source.r#type, source.description, source.formats.join(", "))
            .unwrap();
        options_table(&mut page, source.options.iter());
    }
    page.push_str("\n## Sinks\n");
    for sink in &sinks {
        write!(page, "\n### {}\n\n{}\n", sink.r#type, sink.description).unwrap();
        options_table(&mut page, sink.options.iter().filter(|o| !shared(o)));
        let also: Vec<String> = sink
            .options
            .iter()
            .filter(|o| shared(o) && takers[&option_key(o)].len() < sinks.len())
            .map(|o| format!("`{}`", o.key))
            .collect();
        let also = if also.is_empty() { String::new() } else { format!("{}, and ", also.join(", ")) };
        write!(page, "\nAlso {also}the [properties of every sink](#shared-sink-properties).\n").unwrap();
    }
    page.push_str(
        "\n## Shared sink properties\n\n\
         Properties several sinks take, alike.\n\n\
         | property | values | default | description | sinks |\n|---|---|---|---|---|\n",
    );
    let mut seen = std::collections::HashSet::new();
    for o in sinks.iter().flat_map(|s| &s.options).filter(|o| shared(o)) {
        if seen.insert(option_key(o)) {
            let takers = &takers[&option_key(o)];
            let takers = if takers.len() == sinks.len() { "all".to_owned() } else { takers.join(", ") };
            writeln!(
                page,
                "| `{}` | {} | {} | {} | {takers} |",
                o.key,
                cell(&o.values),
                default(o),
                cell(&o.description)
            )
            .unwrap();
        }
    }
    page
}

fn option_key(o: &ConnectorOption) -> (&str, &str, &str, &str) {
    (&o.key, &o.values, &o.default_value, &o.description)
}

fn default(o: &ConnectorOption) -> String {
    if o.default_value.is_empty() { String::new() } else { format!("`{}`", cell(&o.default_value)) }
}

fn options_table<'a>(page: &mut String, options: impl Iterator<Item = &'a ConnectorOption>) {
    let mut rows = String::new();
    for o in options {
        writeln!(rows, "| `{}` | {} | {} | {} |", o.key, cell(&o.values), default(o), cell(&o.description)).unwrap();
    }
    if rows.is_empty() {
        page.push_str("\nNo options of its own.\n");
    } else {
        write!(page, "\n| option | values | default | description |\n|---|---|---|---|\n{rows}").unwrap();
    }
}
