//! The conformance suite: table-driven cases under `testdata/conformance/`,
//! each run through the real `oortd` binary (gRPC streams, a rule with a `grpc`
//! action, events published with `EventService.Publish`, results read with
//! `RuleService.TailRule`). See `testdata/conformance/README.md` for the case
//! format.
//!
//! Environment:
//! - `OORT_BLESS=1` rewrites `expected` (or `error`) of every case from what the
//!   server does (for authoring; never in CI). Cases marked `known_failure` keep
//!   their expectation, which is eKuiper's behaviour, not Oort's.
//! - `OORT_CONFORMANCE_FILTER=text` runs only the cases whose path contains `text`.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::AuthChannel;
use common::Oortd;
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetRuleStatusRequest, ListValue, MapValue, PublishRequest,
    Rule, RuleOptions, TailRuleRequest, Value,
};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

/// Where the cases live.
const CASES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/conformance");
/// How many cases (each with its own server) run at once.
const CONCURRENCY: usize = 4;
/// With no new result for this long after the rule has taken every event, its output is complete.
const IDLE: Duration = Duration::from_millis(250);
/// Longest wait for the rule to take every published event.
const DEADLINE: Duration = Duration::from_secs(10);
/// Relative tolerance of float comparisons.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// One case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    /// Why Oort does not (yet) do what eKuiper does: the case is reported apart and does not fail the run.
    #[serde(default)]
    known_failure: Option<String>,
    /// CREATE STREAM / CREATE TABLE statements, run in order.
    streams: Vec<String>,
    rule: RuleSpec,
    #[serde(default)]
    input: Vec<Json>,
    /// The result rows, flattened over emissions, in order.
    #[serde(default)]
    expected: Option<Vec<Json>>,
    /// The rule is refused at CreateRule.
    #[serde(default)]
    error: Option<ErrorSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    sql: String,
    #[serde(default)]
    options: Option<Json>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorSpec {
    /// The gRPC status code, as tonic names it (`InvalidArgument`).
    code: String,
    /// Texts the message must contain.
    #[serde(default)]
    contains: Vec<String>,
}

/// One input event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    stream: String,
    event: JsonMap<String, Json>,
    /// Source timestamp (`Event.timestamp`), Unix milliseconds.
    #[serde(default)]
    timestamp: Option<i64>,
    /// Source metadata (`Event.meta`), read with `meta()`.
    #[serde(default)]
    meta: HashMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OptionsSpec {
    #[serde(default)]
    is_event_time: bool,
    #[serde(default)]
    late_tolerance: Option<i64>,
    #[serde(default)]
    buffer_length: Option<u32>,
    #[serde(default)]
    send_error: bool,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    send_nil_field: bool,
}

/// What the server did with a case.
#[derive(Debug)]
enum Actual {
    Rows(Vec<Json>),
    Refused { code: String, message: String },
}

enum Outcome {
    Pass,
    Fail(String),
    KnownFailure { reason: String, detail: String },
    UnexpectedPass(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let started = Instant::now();
    let bless = std::env::var("OORT_BLESS").is_ok_and(|v| v == "1");
    let filter = std::env::var("OORT_CONFORMANCE_FILTER").unwrap_or_default();
    let root = Path::new(CASES_DIR).canonicalize().expect("testdata/conformance exists");
    let mut paths = Vec::new();
    collect_cases(&root, &mut paths);
    paths.sort();
    let name_of = |path: &Path| path.strip_prefix(&root).unwrap_or(path).display().to_string();
    paths.retain(|p| name_of(p).contains(&filter));
    assert!(!paths.is_empty(), "no case under {} matches {filter:?}", root.display());

    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for path in paths {
        let semaphore = Arc::clone(&semaphore);
        let name = name_of(&path);
        tasks.push((
            name,
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.expect("semaphore open");
                check_case(&path, bless).await
            }),
        ));
    }

    let (mut passed, mut failures, mut known, mut unexpected) = (0, Vec::new(), Vec::new(), Vec::new());
    for (name, task) in tasks {
        match task.await.unwrap_or_else(|e| Outcome::Fail(format!("the case panicked: {e}"))) {
            Outcome::Pass => passed += 1,
            Outcome::Fail(detail) => failures.push(format!("FAIL {name}\n{detail}")),
            Outcome::KnownFailure { reason, detail } => known.push(format!("KNOWN FAILURE {name}: {reason}\n{detail}")),
            Outcome::UnexpectedPass(reason) => unexpected
                .push(format!("UNEXPECTED PASS {name}: marked known_failure ({reason}) but passes: remove the mark")),
        }
    }
    // Written to stderr directly rather than with eprintln!, which the test
    // harness captures: the known failures are reported even when the run passes.
    let mut report = String::new();
    for entry in known.iter().chain(&unexpected).chain(&failures) {
        let _ = writeln!(report, "\n{entry}");
    }
    let _ = writeln!(
        report,
        "\nconformance: {passed} passed, {} failed, {} known failures, {} unexpected passes, in {:.1?}",
        failures.len(),
        known.len(),
        unexpected.len(),
        started.elapsed()
    );
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(failures.is_empty() && unexpected.is_empty(), "conformance cases failed: see the report above");
}

fn collect_cases(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_cases(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Runs one case on a server of its own, compares, and blesses if asked.
async fn check_case(path: &Path, bless: bool) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Outcome::Fail(format!("cannot read: {e}")),
    };
    let case: Case = match serde_json::from_str(&text) {
        Ok(case) => case,
        Err(e) => return Outcome::Fail(format!("not a valid case: {e}")),
    };
    if case.expected.is_some() == case.error.is_some() && !bless {
        return Outcome::Fail("a case has either `expected` or `error`".into());
    }
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return Outcome::Fail(format!("no temporary directory: {e}")),
    };
    let oortd = Oortd::start(dir.path()).await;
    let id = path.file_stem().map(|s| s.to_string_lossy().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let actual = match run_case(&oortd, &case, id.as_deref().unwrap_or("case")).await {
        Ok(actual) => actual,
        Err(e) => return Outcome::Fail(e),
    };
    drop(oortd);
    let mismatch = compare(&case, &actual);
    if bless && case.known_failure.is_none() {
        let mut blessed = case.clone();
        match &actual {
            Actual::Rows(rows) => {
                blessed.expected = Some(rows.clone());
                blessed.error = None;
            }
            Actual::Refused { code, message } => {
                let contains = match &case.error {
                    Some(e) if mismatch.is_none() => e.contains.clone(),
                    _ => vec![message.clone()],
                };
                blessed.error = Some(ErrorSpec { code: code.clone(), contains });
                blessed.expected = None;
            }
        }
        if let Err(e) = std::fs::write(path, render(&blessed)) {
            return Outcome::Fail(format!("cannot bless: {e}"));
        }
        return Outcome::Pass;
    }
    match (mismatch, case.known_failure) {
        (None, None) => Outcome::Pass,
        (Some(detail), None) => Outcome::Fail(detail),
        (Some(detail), Some(reason)) => Outcome::KnownFailure { reason, detail },
        (None, Some(reason)) => Outcome::UnexpectedPass(reason),
    }
}

/// Creates the streams and the rule, publishes the input and collects the output.
async fn run_case(oortd: &Oortd, case: &Case, id: &str) -> Result<Actual, String> {
    let mut streams = oortd.streams().await;
    for sql in &case.streams {
        streams
            .create_stream(CreateStreamRequest { sql: sql.clone() })
            .await
            .map_err(|e| format!("CreateStream refused {sql}: {e}"))?;
    }
    let options = match &case.rule.options {
        Some(json) => OptionsSpec::deserialize(json).map_err(|e| format!("rule.options: {e}"))?,
        None => OptionsSpec::default(),
    };
    let rule = Rule {
        id: id.into(),
        sql: case.rule.sql.clone(),
        actions: vec![Action { r#type: "grpc".into(), props: None }],
        options: Some(RuleOptions {
            is_event_time: options.is_event_time,
            late_tolerance_ms: options.late_tolerance,
            buffer_length: options.buffer_length,
            send_error: options.send_error,
            concurrency: options.concurrency,
            send_nil_field: options.send_nil_field,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut rules = oortd.rules().await;
    if let Err(status) = rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await {
        return Ok(Actual::Refused { code: format!("{:?}", status.code()), message: status.message().to_owned() });
    }
    let mut tail = rules
        .tail_rule(TailRuleRequest { id: id.into(), ..Default::default() })
        .await
        .map_err(|e| format!("TailRule failed: {e}"))?
        .into_inner();

    // The streams the rule decodes, from its source operators `source_<stream>_0`
    // (those of tables load them on their own).
    let tables: Vec<String> = case
        .streams
        .iter()
        .filter_map(|ddl| ddl.strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split([' ', '(']).next().map(str::to_owned))
        .collect();
    let status = rules.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.map_err(|e| e.to_string())?;
    let decoded_streams: Vec<String> = status
        .into_inner()
        .operators
        .iter()
        .filter_map(|o| o.name.strip_prefix("source_").and_then(|n| n.strip_suffix("_0")).map(str::to_owned))
        .filter(|name| !tables.contains(name))
        .collect();
    if decoded_streams.is_empty() {
        return Err("the rule has no source operator".into());
    }
    let inputs: Vec<Input> = case
        .input
        .iter()
        .map(|i| Input::deserialize(i).map_err(|e| format!("input {i}: {e}")))
        .collect::<Result<_, _>>()?;
    // Published in runs of one stream's events: the rule takes each run
    // before the next is sent, so that events of several streams reach it in
    // the case's order.
    let mut events = EventServiceClient::new(oortd.channel().await);
    let mut expected_in = 0;
    let mut run: Vec<PublishRequest> = Vec::new();
    let mut run_stream: Option<&str> = None;
    for (i, input) in inputs.iter().enumerate() {
        let decoded = decoded_streams.contains(&input.stream);
        if decoded && run_stream.is_some_and(|s| s != input.stream) {
            publish_and_wait(&mut events, &mut rules, id, std::mem::take(&mut run), expected_in).await?;
        }
        if decoded {
            run_stream = Some(&input.stream);
            expected_in += 1;
        }
        run.push(publish_request(input));
        if i + 1 == inputs.len() {
            publish_and_wait(&mut events, &mut rules, id, std::mem::take(&mut run), expected_in).await?;
        }
    }

    let deadline = Instant::now() + DEADLINE;
    // Read until the tail goes quiet and holds every row the grpc sink has been
    // handed (the same results, counted by the server): rows still in flight
    // to this client are waited for, however slow the machine.
    let mut rows = Vec::new();
    loop {
        match tokio::time::timeout(IDLE, tail.message()).await {
            Err(_) => {
                let emitted = operator_count(&mut rules, id, |name| name.starts_with("sink_grpc")).await?;
                if emitted == Some(rows.len() as u64) {
                    break;
                }
            }
            Ok(Ok(Some(response))) => {
                let fields = response.event.map(|e| e.fields).unwrap_or_default();
                rows.push(Json::Object(fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()));
            }
            Ok(Ok(None)) => return Err("the tail stream ended".into()),
            Ok(Err(e)) => return Err(format!("the tail stream failed: {e}")),
        }
        if Instant::now() > deadline {
            return Err(format!("the tail did not settle in {DEADLINE:?}; {} rows read", rows.len()));
        }
    }
    Ok(Actual::Rows(rows))
}

/// The `Publish` request of one input.
fn publish_request(input: &Input) -> PublishRequest {
    PublishRequest {
        stream: input.stream.clone(),
        event: Some(Event {
            fields: input.event.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect(),
            timestamp: input.timestamp.map(|ms| prost_types::Timestamp {
                seconds: ms.div_euclid(1000),
                nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
            }),
            meta: input.meta.clone(),
        }),
        ..Default::default()
    }
}

/// Publishes `requests` in one call, then waits until the rule's decoder has
/// taken `expected_in` events in all: the rule task handles events one at a
/// time, so only that event's results may still be on their way.
async fn publish_and_wait(
    events: &mut EventServiceClient<AuthChannel>,
    rules: &mut RuleServiceClient<AuthChannel>,
    id: &str,
    requests: Vec<PublishRequest>,
    expected_in: u64,
) -> Result<(), String> {
    let sent = requests.len() as u64;
    if sent > 0 {
        let accepted = events
            .publish(tokio_stream::iter(requests))
            .await
            .map_err(|e| format!("Publish failed: {e}"))?
            .into_inner()
            .accepted;
        if accepted != sent {
            return Err(format!("Publish accepted {accepted} of {sent} events"));
        }
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let decoded = operator_count(rules, id, |name| name == "op_decoder_0").await?;
        if decoded >= Some(expected_in) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the rule took {decoded:?} of {expected_in} events in {DEADLINE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `records_in_total` of the rule's first operator whose name matches.
async fn operator_count(
    rules: &mut RuleServiceClient<AuthChannel>,
    id: &str,
    name: impl Fn(&str) -> bool,
) -> Result<Option<u64>, String> {
    let status = rules.get_rule_status(GetRuleStatusRequest { id: id.into() }).await.map_err(|e| e.to_string())?;
    Ok(status.into_inner().operators.iter().find(|o| name(&o.name)).map(|o| o.records_in_total))
}

/// A description of how the actual outcome differs from the case's expectation; `None` when it does not.
fn compare(case: &Case, actual: &Actual) -> Option<String> {
    match (&case.error, &case.expected, actual) {
        (Some(error), _, Actual::Refused { code, message }) => {
            let missing: Vec<&String> = error.contains.iter().filter(|t| !message.contains(t.as_str())).collect();
            (code != &error.code || !missing.is_empty()).then(|| {
                format!(
                    "  expected refusal: {} containing {:?}\n  actual refusal:   {code}: {message}",
                    error.code, error.contains
                )
            })
        }
        (Some(error), _, Actual::Rows(rows)) => Some(format!(
            "  expected refusal: {} containing {:?}\n  actual: the rule was created; output:\n{}",
            error.code,
            error.contains,
            lines(rows)
        )),
        (None, expected, Actual::Refused { code, message }) => Some(format!(
            "  expected output:\n{}\n  actual: refused: {code}: {message}",
            lines(expected.as_deref().unwrap_or_default())
        )),
        (None, expected, Actual::Rows(rows)) => {
            let expected = expected.as_deref().unwrap_or_default();
            let same = expected.len() == rows.len() && expected.iter().zip(rows).all(|(e, a)| json_eq(e, a));
            (!same).then(|| format!("  expected output:\n{}\n  actual output:\n{}", lines(expected), lines(rows)))
        }
    }
}

fn lines(rows: &[Json]) -> String {
    if rows.is_empty() {
        return "    (no rows)".into();
    }
    rows.iter().map(|r| format!("    {}", compact(r))).collect::<Vec<_>>().join("\n")
}

/// JSON equality where an integer only equals an integer and a float only a
/// float, with a small relative tolerance.
fn json_eq(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::Number(e), Json::Number(a)) => match (e.as_i64(), a.as_i64(), e.as_f64(), a.as_f64()) {
            (Some(e), Some(a), _, _) => e == a,
            (None, None, Some(e), Some(a)) => e == a || (e - a).abs() <= FLOAT_TOLERANCE * e.abs().max(a.abs()),
            _ => false,
        },
        (Json::Array(e), Json::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| json_eq(e, a)),
        (Json::Object(e), Json::Object(a)) => {
            e.len() == a.len() && e.iter().all(|(k, e)| a.get(k).is_some_and(|a| json_eq(e, a)))
        }
        _ => expected == actual,
    }
}

/// JSON → `oort.v1.Value`: integers → `int_value`, other numbers → `float_value`
/// (`1.0` is a float); `{"$datetime": "RFC 3339"}` and `{"$bytes": "hex"}` for
/// the kinds JSON lacks.
fn json_to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) if n.is_i64() => Kind::IntValue(n.as_i64().unwrap_or_default()),
        Json::Number(n) => Kind::FloatValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(json_to_value).collect() }),
        Json::Object(map) => match tagged(map) {
            Some(("$datetime", Json::String(s))) => {
                let t = chrono::DateTime::parse_from_rfc3339(s).expect("$datetime is RFC 3339");
                Kind::TimestampValue(prost_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                })
            }
            Some(("$bytes", Json::String(hex))) => Kind::BytesValue(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("$bytes is hex"))
                    .collect(),
            ),
            _ => Kind::MapValue(MapValue { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() }),
        },
    };
    Value { kind: Some(kind) }
}

fn tagged(map: &JsonMap<String, Json>) -> Option<(&str, &Json)> {
    let (key, value) = map.iter().next().filter(|_| map.len() == 1)?;
    matches!(key.as_str(), "$datetime" | "$bytes").then_some((key.as_str(), value))
}

/// `oort.v1.Value` → JSON, the inverse of [`json_to_value`].
fn value_to_json(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::IntValue(i)) => Json::from(*i),
        Some(Kind::FloatValue(f)) => {
            serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or_else(|| Json::String(format!("{f}")))
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BytesValue(b)) => {
            let hex = b.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            serde_json::json!({ "$bytes": hex })
        }
        Some(Kind::TimestampValue(t)) => {
            let time = chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).unwrap_or_default();
            serde_json::json!({ "$datetime": time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true) })
        }
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::MapValue(m)) => Json::Object(m.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()),
    }
}

/// JSON on one line, with a space after `:` and `,`.
fn compact(json: &Json) -> String {
    match json {
        Json::Array(items) => format!("[{}]", items.iter().map(compact).collect::<Vec<_>>().join(", ")),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), compact(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A case in the canonical layout: one line per stream, input event and result row.
fn render(case: &Case) -> String {
    let list = |items: &[Json]| {
        if items.is_empty() {
            return "[]".to_owned();
        }
        format!("[\n{}\n  ]", items.iter().map(|i| format!("    {}", compact(i))).collect::<Vec<_>>().join(",\n"))
    };
    let string = |s: &str| Json::String(s.to_owned()).to_string();
    let mut parts = vec![format!("  \"description\": {}", string(&case.description))];
    if let Some(reason) = &case.known_failure {
        parts.push(format!("  \"known_failure\": {}", string(reason)));
    }
    let streams: Vec<Json> = case.streams.iter().map(|s| Json::String(s.clone())).collect();
    parts.push(format!("  \"streams\": {}", list(&streams)));
    // The rule on one line, with `sql` before `options`.
    let options = case.rule.options.as_ref().map(|o| format!(", \"options\": {}", compact(o))).unwrap_or_default();
    parts.push(format!("  \"rule\": {{\"sql\": {}{options}}}", string(&case.rule.sql)));
    if !case.input.is_empty() {
        parts.push(format!("  \"input\": {}", list(&case.input)));
    }
    if let Some(expected) = &case.expected {
        parts.push(format!("  \"expected\": {}", list(expected)));
    }
    if let Some(error) = &case.error {
        let contains: Vec<Json> = error.contains.iter().map(|c| Json::String(c.clone())).collect();
        parts.push(format!(
            "  \"error\": {{\"code\": {}, \"contains\": {}}}",
            string(&error.code),
            compact(&Json::Array(contains))
        ));
    }
    format!("{{\n{}\n}}\n", parts.join(",\n"))
}
