//! End-to-end tests: the real `oort` binary against the real `oortd` binary,
//! one fresh server (free port, empty catalog) per test. They check what users
//! and scripts see: the messages and tables, that `--json` prints only the
//! server's answer, that errors go to stderr as `error: <code>: <message>`, and
//! the documented exit codes (0 ok, 1 server error, 2 usage, 3 unreachable).
//!
//! The server runs rules, so a rule's stream must have a source connector the
//! server has (`memory` or `grpc`; `mqtt` needs a broker) and its actions
//! known sinks (`log`, `memory` with a topic, `grpc`). The `rule tail` tests
//! publish events into a `TYPE="grpc"` stream with the gRPC client of
//! `EventService`, to know exactly when each one is sent.
//!
//! `oortd` must be built first (`cargo build --bins`); `scripts/test.sh` does.

mod common;

use std::time::{Duration, Instant};

use common::{Oortd, Tail, event, failure, json, run_oort, server_error, stderr, stdout, success};
use oort_proto::v1::value::Kind;
use serde_json::json;

const DEMO: &str =
    r#"CREATE STREAM demo (temperature FLOAT, device STRING) WITH (DATASOURCE="demo", TYPE="memory", FORMAT="json")"#;

/// A stream that events can be published to with `EventService.Publish`.
const SENSORS: &str =
    r#"CREATE STREAM sensors (temperature FLOAT, device STRING) WITH (DATASOURCE="sensors", TYPE="grpc")"#;

/// How long to wait for a line of `oort rule tail` once the event is published.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// An eKuiper rule file, with every option eKuiper documents.
const RULE_FILE: &str = r#"{
  "id": "filecase",
  "sql": "SELECT * FROM demo",
  "actions": [{"log": {}}, {"memory": {"topic": "out"}}],
  "options": {
    "isEventTime": false, "lateTolerance": 1000, "bufferLength": 1024, "sendMetaToSink": false, "qos": 0,
    "checkpointInterval": "5m",
    "restartStrategy": {"attempts": 3, "delay": 1000, "multiplier": 2, "maxDelay": 30000, "jitterFactor": 0.1}
  },
  "triggered": true
}"#;

/// A server with the `demo` stream already created.
fn with_demo() -> Oortd {
    let server = Oortd::start();
    success(&server.oort(&["stream", "create", DEMO]));
    server
}

/// Creates `rule1`: `SELECT * FROM demo`, to the log and the memory topic
/// `out`, with qos 1; it starts at once.
fn create_rule1(server: &Oortd) {
    let out = server.oort(&[
        "rule",
        "create",
        "rule1",
        "--sql",
        "SELECT * FROM demo",
        "--action",
        "log",
        "--action",
        r#"memory={"topic":"out"}"#,
        "--options",
        r#"{"qos":1,"bufferLength":2048}"#,
    ]);
    assert_eq!(success(&out), "Rule rule1 created.\n");
}

/// The rule as the server has it, as proto3 JSON.
fn rule_json(server: &Oortd, id: &str) -> serde_json::Value {
    json(&server.oort(&["rule", "describe", id, "--json"]))["rule"].clone()
}

/// `rule list` as (id, state) pairs.
fn rule_states(server: &Oortd) -> Vec<(String, String)> {
    let text = success(&server.oort(&["rule", "list"]));
    let rows = text.lines().skip(1).map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
    rows.map(|row| (row[0].clone(), row[1].clone())).collect()
}

fn states(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(id, state)| ((*id).to_owned(), (*state).to_owned())).collect()
}

fn stream_names(server: &Oortd) -> Vec<String> {
    let value = json(&server.oort(&["stream", "list", "--json"]));
    let streams = value["streams"].as_array().cloned().unwrap_or_default();
    streams.iter().map(|s| s["name"].as_str().expect("a name").to_owned()).collect()
}

// ---------------------------------------------------------------- streams

#[test]
fn stream_create_from_argument_file_and_stdin() {
    let server = Oortd::start();
    assert_eq!(success(&server.oort(&["stream", "create", DEMO])), "Stream demo created.\n");

    let file = server.dir.write(
        "table.sql",
        "CREATE TABLE lookup (id BIGINT, name STRING)\n  WITH (TYPE=\"file\", DATASOURCE=\"lookup.json\")\n",
    );
    let out = server.oort(&["stream", "create", "--file", file.to_str().expect("a UTF-8 path")]);
    assert_eq!(success(&out), "Table lookup created.\n");

    let piped = r#"CREATE STREAM piped () WITH (TYPE="memory", DATASOURCE="topic/a")"#;
    assert_eq!(success(&server.oort_with_stdin(&["stream", "create", "-"], piped)), "Stream piped created.\n");

    let piped = r#"CREATE STREAM piped2 () WITH (TYPE="memory", DATASOURCE="topic/b")"#;
    let value = json(&server.oort_with_stdin(&["stream", "create", "--file", "-", "--json"], piped));
    assert_eq!(value["stream"]["name"], "piped2");
    assert_eq!(value["stream"]["kind"], "STREAM_KIND_STREAM");

    assert_eq!(stream_names(&server), ["demo", "lookup", "piped", "piped2"]);
}

#[test]
fn stream_list_as_a_table_and_as_json() {
    let server = Oortd::start();
    assert_eq!(success(&server.oort(&["stream", "list"])), "No streams or tables.\n");
    assert_eq!(json(&server.oort(&["stream", "list", "--json"])), json!({}));

    success(&server.oort(&["stream", "create", DEMO]));
    let text = success(&server.oort(&["stream", "list"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "KIND", "TYPE", "DATASOURCE", "FORMAT", "FIELDS"]);
    assert_eq!(lines[1], ["demo", "stream", "memory", "demo", "json", "temperature", "FLOAT,", "device", "STRING"]);
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(success(&server.oort(&["stream", "list", "--kind", "table"])), "No tables.\n");

    let value = json(&server.oort(&["stream", "list", "--json"]));
    let stream = &value["streams"][0];
    assert_eq!(stream["name"], "demo");
    assert_eq!(stream["kind"], "STREAM_KIND_STREAM");
    assert_eq!(stream["sql"], DEMO);
    assert_eq!(
        stream["fields"],
        json!([{"name": "temperature", "type": "FLOAT"}, {"name": "device", "type": "STRING"}])
    );
    assert_eq!(stream["options"], json!({"DATASOURCE": "demo", "TYPE": "memory", "FORMAT": "json"}));
    assert!(stream["createTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{value}");
    assert_eq!(value["streams"].as_array().map(Vec::len), Some(1));
}

#[test]
fn stream_describe_shows_the_definition() {
    let server = with_demo();
    let text = success(&server.oort(&["stream", "describe", "demo"]));
    let first: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first, ["Name:", "demo"]);
    for part in ["Kind:", "stream", "Options:", "DATASOURCE:", "FORMAT:", "Fields:", "temperature", "FLOAT", "SQL:"] {
        assert!(text.contains(part), "{part} missing in\n{text}");
    }
    assert!(text.ends_with(&format!("SQL:\n  {DEMO}\n")), "{text}");

    let value = json(&server.oort(&["stream", "show", "demo", "--json"]));
    assert_eq!(value["stream"]["sql"], DEMO);

    let err = server_error(&server.oort(&["stream", "describe", "nope"]));
    assert_eq!(err, "error: not found: stream 'nope' not found");
}

#[test]
fn stream_update_replaces_the_definition() {
    let server = with_demo();
    let created = json(&server.oort(&["stream", "describe", "demo", "--json"]))["stream"].clone();
    let ddl = r#"CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE="sensors", TYPE="memory")"#;
    assert_eq!(success(&server.oort(&["stream", "update", ddl])), "Stream demo updated.\n");

    let updated = json(&server.oort(&["stream", "describe", "demo", "--json"]))["stream"].clone();
    assert_eq!(updated["sql"], ddl);
    assert_eq!(updated["fields"][1], json!({"name": "humidity", "type": "BIGINT"}));
    assert_eq!(updated["options"]["DATASOURCE"], "sensors");
    assert_eq!(updated["createTime"], created["createTime"]);
    assert_ne!(updated["updateTime"], created["updateTime"]);

    let missing = r#"CREATE STREAM nope (a FLOAT) WITH (DATASOURCE="x", TYPE="memory")"#;
    assert_eq!(server_error(&server.oort(&["stream", "update", missing])), "error: not found: stream 'nope' not found");
}

#[test]
fn stream_drop_removes_it() {
    let server = with_demo();
    success(&server.oort(&["stream", "create", r#"CREATE STREAM other () WITH (TYPE="memory", DATASOURCE="o")"#]));
    assert_eq!(success(&server.oort(&["stream", "drop", "demo"])), "Stream demo dropped.\n");
    assert_eq!(json(&server.oort(&["stream", "delete", "other", "--json"])), json!({}));
    assert!(stream_names(&server).is_empty());
    assert_eq!(server_error(&server.oort(&["stream", "drop", "demo"])), "error: not found: stream 'demo' not found");
}

#[test]
fn invalid_ddl_is_an_invalid_argument_with_its_position() {
    let server = Oortd::start();
    let err = server_error(&server.oort(&["stream", "create", "--json", "CREATE STRAEM x ()"]));
    assert!(err.starts_with("error: invalid argument: "), "{err}");
    assert!(err.contains("line 1, column 8"), "{err}");

    let err = server_error(&server.oort(&[
        "stream",
        "create",
        r#"CREATE STREAM x (a FLOAT) WITH (TYPE="mqtt" DATASOURCE="x")"#,
    ]));
    assert!(err.starts_with("error: invalid argument: "), "{err}");
    assert!(err.contains("line 1, column 45"), "{err}");
    assert!(stream_names(&server).is_empty());
}

#[test]
fn duplicate_stream_already_exists() {
    let server = with_demo();
    let err = server_error(&server.oort(&["stream", "create", DEMO]));
    assert_eq!(err, "error: already exists: stream 'demo' already exists");
}

#[test]
fn stream_read_by_a_rule_cannot_be_dropped() {
    let server = with_demo();
    create_rule1(&server);
    let err = server_error(&server.oort(&["stream", "drop", "demo"]));
    assert!(err.starts_with("error: failed precondition: "), "{err}");
    assert!(err.contains("rule1"), "{err}");
    assert_eq!(stream_names(&server), ["demo"]);

    success(&server.oort(&["rule", "drop", "rule1"]));
    assert_eq!(success(&server.oort(&["stream", "drop", "demo"])), "Stream demo dropped.\n");
}

// ---------------------------------------------------------------- rules

#[test]
fn rule_create_from_an_ekuiper_file() {
    let server = with_demo();
    let path = server.dir.write("rule.json", RULE_FILE);
    let value = json(&server.oort(&["rule", "create", "--json", "--file", path.to_str().expect("a UTF-8 path")]));
    let rule = &value["rule"];
    assert_eq!(rule["id"], "filecase");
    assert_eq!(rule["sql"], "SELECT * FROM demo");
    assert_eq!(rule["actions"][0], json!({"type": "log", "props": {}}));
    assert_eq!(rule["actions"][1], json!({"type": "memory", "props": {"topic": "out"}}));
    assert_eq!(rule["options"]["lateToleranceMs"], "1000");
    assert_eq!(rule["options"]["bufferLength"], 1024);
    assert_eq!(rule["options"]["checkpointIntervalMs"], "300000");
    assert_eq!(
        rule["options"]["restartStrategy"],
        json!({"attempts": 3, "delayMs": "1000", "multiplier": 2.0, "maxDelayMs": "30000", "jitterFactor": 0.1})
    );
    assert_eq!(rule["triggered"], true);
    // What create answered is what the server stored.
    assert_eq!(&rule_json(&server, "filecase"), rule);

    // From stdin, with the id on the command line and "triggered" from the file.
    let piped = r#"{"sql": "SELECT temperature FROM demo", "actions": [{"log": {}}], "triggered": false}"#;
    let out = server.oort_with_stdin(&["rule", "create", "piped", "--file", "-"], piped);
    assert_eq!(success(&out), "Rule piped created (not started).\n");
    assert_eq!(rule_json(&server, "piped")["triggered"], false);

    // "triggered": true started the rule; false did not.
    assert_eq!(rule_states(&server), states(&[("filecase", "running"), ("piped", "stopped")]));
}

#[test]
fn rule_create_from_flags() {
    let server = with_demo();
    let out = server.oort(&[
        "rule",
        "create",
        "flagcase",
        "--sql",
        "SELECT temperature FROM demo WHERE temperature > 30",
        "--action",
        "log",
        "--action",
        r#"memory={"topic":"out","bufferLength":3}"#,
        "--no-start",
    ]);
    assert_eq!(success(&out), "Rule flagcase created (not started).\n");
    let rule = rule_json(&server, "flagcase");
    assert_eq!(rule["sql"], "SELECT temperature FROM demo WHERE temperature > 30");
    assert_eq!(
        rule["actions"],
        json!([
            {"type": "log", "props": {}},
            {"type": "memory", "props": {"topic": "out", "bufferLength": 3.0}},
        ])
    );
    assert_eq!(rule["triggered"], false);
    assert!(rule.get("options").is_none(), "{rule}");

    create_rule1(&server);
    let rule = rule_json(&server, "rule1");
    assert_eq!(rule["triggered"], true);
    assert_eq!(rule["options"], json!({"qos": 1, "bufferLength": 2048}));
    assert_eq!(rule_states(&server), states(&[("flagcase", "stopped"), ("rule1", "running")]));
}

#[test]
fn rule_create_refused_by_the_server() {
    let server = with_demo();
    let create = |id: &str, sql: &str| server.oort(&["rule", "create", id, "--sql", sql, "--action", "log"]);

    assert_eq!(server_error(&create("r", "SELECT * FROM nothere")), "error: not found: stream 'nothere' not found");
    let err = server_error(&create("r", "SELEC * FROM demo"));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("line 1, column 1"), "{err}");
    let err = server_error(&create("a b", "SELECT * FROM demo"));
    assert!(err.starts_with("error: invalid argument: invalid rule id \"a b\""), "{err}");

    let err = server_error(&create("r", "SELECT humidity FROM demo"));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("humidity"), "{err}");

    create_rule1(&server);
    let err = server_error(&create("rule1", "SELECT * FROM demo"));
    assert_eq!(err, "error: already exists: rule 'rule1' already exists");
    assert_eq!(json(&server.oort(&["rule", "list", "--json"]))["rules"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rule_on_a_connector_the_server_does_not_have_is_refused() {
    let server = with_demo();
    // Oort has no edgex connector: such a stream can be declared but not read by a rule.
    let edgex = r#"CREATE STREAM eq (temperature FLOAT) WITH (DATASOURCE="t", TYPE="edgex")"#;
    success(&server.oort(&["stream", "create", edgex]));
    let err = server_error(&server.oort(&["rule", "create", "r", "--sql", "SELECT * FROM eq", "--action", "log"]));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("edgex"), "{err}");

    let create =
        |action: &str| server.oort(&["rule", "create", "r", "--sql", "SELECT * FROM demo", "--action", action]);
    let err = server_error(&create(r#"edgex={"topic":"out"}"#));
    assert!(
        err.starts_with("error: invalid argument: ") && err.contains("\"edgex\", which is not a known sink"),
        "{err}"
    );
    let err = server_error(&create("memory"));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("topic"), "{err}");

    assert_eq!(success(&server.oort(&["rule", "list"])), "No rules.\n");
}

#[test]
fn bad_rule_file_is_a_usage_error_and_sends_nothing() {
    let server = with_demo();
    let bad = r#"{"id":"badcase","sql":"SELECT * FROM demo","actions":[{"log":{}}],"nmae":"x"}"#;
    let err = failure(&server.oort_with_stdin(&["rule", "create", "--file", "-"], bad), 2);
    assert!(err.starts_with("error: <stdin>: unknown field `nmae`"), "{err}");

    let missing = server.dir.path().join("missing.json");
    let err = failure(&server.oort(&["rule", "create", "--file", missing.to_str().expect("a UTF-8 path")]), 2);
    assert!(err.starts_with("error: cannot read ") && err.contains("missing.json"), "{err}");

    assert_eq!(success(&server.oort(&["rule", "list"])), "No rules.\n");
}

#[test]
fn rule_list_and_describe() {
    let server = with_demo();
    assert_eq!(success(&server.oort(&["rule", "list"])), "No rules.\n");
    create_rule1(&server);

    let text = success(&server.oort(&["rule", "list"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["ID", "STATE", "SQL", "ACTIONS", "TAGS"]);
    assert_eq!(lines[1], ["rule1", "running", "SELECT", "*", "FROM", "demo", "log,memory", "-"]);

    let value = json(&server.oort(&["rule", "ls", "--json"]));
    assert_eq!(value["rules"][0]["rule"]["id"], "rule1");
    assert_eq!(value["rules"][0]["state"], "RULE_STATE_RUNNING");

    let text = success(&server.oort(&["rule", "describe", "rule1"]));
    let first: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first, ["ID:", "rule1"]);
    for part in [
        "Triggered:  yes",
        "SQL:\n  SELECT * FROM demo\n",
        "Actions:\n  [\n",
        "\"log\": {}",
        "\"memory\": {",
        "\"topic\": \"out\"",
        "Options:\n  {\n",
        "\"qos\": 1",
        "\"bufferLength\": 2048",
    ] {
        assert!(text.contains(part), "{part:?} missing in\n{text}");
    }
    assert_eq!(server_error(&server.oort(&["rule", "show", "nope"])), "error: not found: rule 'nope' not found");
}

#[test]
fn rule_update_with_flags_keeps_the_rest() {
    let server = with_demo();
    create_rule1(&server);
    let before = rule_json(&server, "rule1");

    let out = server.oort(&["rule", "update", "rule1", "--sql", "SELECT temperature FROM demo"]);
    assert_eq!(success(&out), "Rule rule1 updated.\n");
    let after = rule_json(&server, "rule1");
    assert_eq!(after["sql"], "SELECT temperature FROM demo");
    for kept in ["actions", "options", "triggered", "createTime"] {
        assert_eq!(after[kept], before[kept], "{kept} changed");
    }

    // The running rule was restarted with the new SQL.
    assert_eq!(rule_states(&server), states(&[("rule1", "running")]));
    assert!(success(&server.oort(&["rule", "explain", "rule1"])).contains("SELECT temperature"));

    success(&server.oort(&["rule", "update", "rule1", "--action", "log", "--no-start"]));
    let after = rule_json(&server, "rule1");
    assert_eq!(after["actions"], json!([{"type": "log", "props": {}}]));
    assert_eq!(after["sql"], "SELECT temperature FROM demo");
    assert_eq!(after["options"], before["options"]);
    assert_eq!(after["triggered"], false);
    assert_eq!(rule_states(&server), states(&[("rule1", "stopped")]));

    let err = server_error(&server.oort(&["rule", "update", "rule1", "--options", r#"{"qos":5}"#]));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("qos"), "{err}");
    let err = server_error(&server.oort(&["rule", "update", "rule1", "--action", "nosuchsink"]));
    assert!(err.starts_with("error: invalid argument: ") && err.contains("nosuchsink"), "{err}");
    assert_eq!(rule_json(&server, "rule1")["actions"], json!([{"type": "log", "props": {}}]));
    let err = server_error(&server.oort(&["rule", "update", "nope", "--sql", "SELECT * FROM demo"]));
    assert_eq!(err, "error: not found: rule 'nope' not found");
}

#[test]
fn rule_update_from_a_file_replaces_the_rule() {
    let server = with_demo();
    create_rule1(&server);
    let path = server
        .dir
        .write("rule1.json", r#"{"id": "rule1", "sql": "SELECT device FROM demo", "actions": [{"log": {}}]}"#);
    let value = json(&server.oort(&["rule", "update", "--file", path.to_str().expect("a UTF-8 path"), "--json"]));
    assert_eq!(value["rule"]["sql"], "SELECT device FROM demo");
    let rule = rule_json(&server, "rule1");
    assert_eq!(rule["actions"], json!([{"type": "log", "props": {}}]));
    assert!(rule.get("options").is_none(), "the file has no options: {rule}");
}

#[test]
fn rule_drop_removes_it() {
    let server = with_demo();
    create_rule1(&server);
    assert_eq!(success(&server.oort(&["rule", "drop", "rule1"])), "Rule rule1 dropped.\n");
    assert_eq!(server_error(&server.oort(&["rule", "describe", "rule1"])), "error: not found: rule 'rule1' not found");
    assert_eq!(server_error(&server.oort(&["rule", "drop", "rule1"])), "error: not found: rule 'rule1' not found");

    create_rule1(&server);
    assert_eq!(json(&server.oort(&["rule", "delete", "rule1", "--json"])), json!({}));
    assert_eq!(success(&server.oort(&["rule", "list"])), "No rules.\n");
}

// ---------------------------------------------------------------- running rules

#[test]
fn rule_stop_start_and_restart() {
    let server = with_demo();
    create_rule1(&server);
    assert_eq!(rule_states(&server), states(&[("rule1", "running")]));

    assert_eq!(success(&server.oort(&["rule", "stop", "rule1"])), "Rule rule1 stopped.\n");
    assert_eq!(rule_states(&server), states(&[("rule1", "stopped")]));
    // Stopping is remembered in the rule, so that it stays stopped after a server restart.
    assert_eq!(rule_json(&server, "rule1")["triggered"], false);
    // Stopping a stopped rule is not an error.
    assert_eq!(success(&server.oort(&["rule", "stop", "rule1"])), "Rule rule1 stopped.\n");

    assert_eq!(success(&server.oort(&["rule", "start", "rule1"])), "Rule rule1 started.\n");
    assert_eq!(rule_states(&server), states(&[("rule1", "running")]));
    assert_eq!(rule_json(&server, "rule1")["triggered"], true);

    assert_eq!(success(&server.oort(&["rule", "restart", "rule1"])), "Rule rule1 restarted.\n");
    assert_eq!(rule_states(&server), states(&[("rule1", "running")]));

    // --json prints the (empty) responses.
    for command in ["stop", "start", "restart"] {
        assert_eq!(json(&server.oort(&["rule", command, "rule1", "--json"])), json!({}), "{command}");
    }
    assert_eq!(rule_states(&server), states(&[("rule1", "running")]));

    for command in ["start", "stop", "restart"] {
        let err = server_error(&server.oort(&["rule", command, "nope"]));
        assert_eq!(err, "error: not found: rule 'nope' not found", "{command}");
    }
}

#[test]
fn rule_status_shows_the_state_and_the_operators() {
    let server = with_demo();
    create_rule1(&server);
    let text = success(&server.oort(&["rule", "status", "rule1"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["Rule:", "rule1"]);
    assert_eq!(lines[1], ["State:", "running"]);
    assert_eq!(lines[2][0], "Started:");
    assert!(lines[2][1].ends_with('Z'), "{text}");
    assert_eq!(lines[3], ["Restarts:", "0"]);
    assert_eq!(lines[4], ["Last", "error:", "-"]);
    // rule1 asks for qos 1, which its memory stream cannot give: the status says so.
    assert_eq!(lines[5][..10], ["Delivery:", "at", "most", "once", "(qos", "asks", "for", "at", "least", "once):"]);
    assert!(text.contains("a memory source cannot replay"), "{text}");
    assert_eq!(lines[6], ["Checkpoints:", "none"]);
    assert!(lines[7].is_empty(), "{text}");
    assert_eq!(
        lines[8],
        [
            "OPERATOR",
            "records_in_total",
            "records_out_total",
            "exceptions_total",
            "records_dropped_total",
            "process_latency_us",
            "buffer_length",
            "connection",
            "last_exception"
        ]
    );
    let operators: Vec<&str> = lines[9..].iter().map(|l| l[0]).collect();
    assert_eq!(operators, ["source_demo_0", "op_decoder_0", "op_project_0", "sink_log_0", "sink_memory_1"]);
    // Nothing was sent to the stream yet.
    for row in &lines[9..] {
        assert_eq!(row[1..], ["0", "0", "0", "0", "0", "0", "-", "-"], "{text}");
    }

    let value = json(&server.oort(&["rule", "status", "rule1", "--json"]));
    assert_eq!(value["id"], "rule1");
    assert_eq!(value["state"], "RULE_STATE_RUNNING");
    assert_eq!(value["delivery"]["requested"], "DELIVERY_GUARANTEE_AT_LEAST_ONCE");
    assert_eq!(value["delivery"]["provided"], "DELIVERY_GUARANTEE_AT_MOST_ONCE");
    let names: Vec<&str> = value["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .map(|op| op["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, operators);

    // A stopped rule has a state but no operators.
    success(&server.oort(&["rule", "stop", "rule1"]));
    let text = success(&server.oort(&["rule", "status", "rule1"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[1], ["State:", "stopped"]);
    assert_eq!(lines[2], ["Started:", "-"]);
    assert!(!text.contains("OPERATOR"), "{text}");
    assert_eq!(
        json(&server.oort(&["rule", "status", "rule1", "--json"])),
        json!({"id": "rule1", "state": "RULE_STATE_STOPPED"})
    );
}

#[test]
fn rule_explain_prints_the_plan() {
    let server = with_demo();
    let sql = "SELECT temperature FROM demo WHERE temperature > 20";
    success(&server.oort(&["rule", "create", "hot", "--sql", sql, "--action", "log", "--no-start"]));
    // A rule need not run to be explained.
    let text = success(&server.oort(&["rule", "explain", "hot"]));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(lines[0].starts_with("source_demo_0: memory"), "{text}");
    for line in [
        "op_decoder_0: declared schema",
        "op_filter_0: WHERE temperature > 20",
        "op_project_0: SELECT temperature",
        "sink_log_0",
    ] {
        assert!(lines.contains(&line), "{line:?} missing in\n{text}");
    }
    assert!(text.ends_with("sink_log_0\n"), "{text}");

    let value = json(&server.oort(&["rule", "explain", "hot", "--json"]));
    assert_eq!(value["plan"].as_str().map(|plan| plan.trim_end()), Some(text.trim_end()));

    // Status and explain name the same operators, in the same order, whatever the plan.
    success(&server.oort(&["stream", "create", SENSORS]));
    for (id, sql) in [
        (
            "window",
            "SELECT device, avg(temperature) AS a FROM demo WHERE temperature > 1 GROUP BY device, TUMBLINGWINDOW(ss, 1) HAVING avg(temperature) > 2 ORDER BY a LIMIT 3",
        ),
        (
            "analytic",
            "SELECT lag(temperature) OVER (PARTITION BY device) AS p, unnest(array_create(temperature, 1)) AS u FROM demo",
        ),
        (
            "join",
            "SELECT demo.device FROM demo INNER JOIN sensors ON demo.device = sensors.device GROUP BY TUMBLINGWINDOW(ss, 10)",
        ),
        ("filtered", "SELECT count(*) FROM demo GROUP BY COUNTWINDOW(5) FILTER (WHERE temperature > 1)"),
    ] {
        success(&server.oort(&["rule", "create", id, "--sql", sql, "--action", "log", "--action", "grpc"]));
        let explained: Vec<String> = success(&server.oort(&["rule", "explain", id]))
            .lines()
            .map(|l| l.trim().split(':').next().unwrap().to_owned())
            .collect();
        let status = json(&server.oort(&["rule", "status", id, "--json"]));
        let operators: Vec<String> = status["operators"]
            .as_array()
            .unwrap_or_else(|| panic!("{status}"))
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(operators, explained, "{id}");
    }
}

#[test]
fn status_explain_and_tail_of_a_missing_rule() {
    let server = with_demo();
    for command in ["status", "explain", "tail"] {
        for json_flag in [false, true] {
            let mut args = vec!["rule", command, "nope"];
            if json_flag {
                args.push("--json");
            }
            let err = server_error(&server.oort(&args));
            assert_eq!(err, "error: not found: rule 'nope' not found", "{args:?}");
        }
    }
}

/// Starts `oort rule tail ID [--json]` and returns it once it prints results.
///
/// The server subscribes the rule's source to the stream and the tail to the
/// rule's results in the background, and an event published before both are
/// subscribed reaches no one; nothing tells when they are. So this publishes
/// `event` again until the tail prints a line, and returns that line too.
fn tail(server: &Oortd, args: &[&str], stream: &str, event: &oort_proto::v1::Event) -> (Tail, String) {
    let mut tail = server.spawn_oort(args);
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        assert_eq!(server.publish(stream, vec![event.clone()]), 1);
        match tail.line(Duration::from_millis(200)) {
            Ok(line) => return (tail, line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => panic!("`oort {}` printed nothing ({e}); stderr:\n{}", args.join(" "), tail.kill()),
        }
    }
}

/// Reads lines of `tail` until one contains `marker`, and returns it.
fn line_with(tail: &mut Tail, marker: &str) -> String {
    loop {
        let line = tail.expect_line(LINE_TIMEOUT);
        if line.contains(marker) {
            return line;
        }
    }
}

#[test]
fn rule_tail_prints_each_result_as_a_json_line() {
    let server = Oortd::start();
    success(&server.oort(&["stream", "create", SENSORS]));
    let sql = "SELECT device, temperature * 2 AS double FROM sensors WHERE temperature > 20";
    success(&server.oort(&["rule", "create", "hot", "--sql", sql, "--action", "grpc"]));

    let reading = |device: &str, t: f64| {
        event(&[("temperature", Kind::FloatValue(t)), ("device", Kind::StringValue(device.into()))])
    };
    // Plain: the result's columns as one JSON object a line, in name order.
    let (mut plain, line) = tail(&server, &["rule", "tail", "hot"], "sensors", &reading("a", 21.5));
    assert_eq!(line, r#"{"device":"a","double":43.0}"#);

    // --json: each TailRuleResponse in proto3 JSON, one a line.
    let (mut full, line) = tail(&server, &["rule", "tail", "hot", "--json"], "sensors", &reading("b", 22.0));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(value["event"]["fields"], json!({"device": {"stringValue": "b"}, "double": {"floatValue": 44.0}}));
    assert!(value["event"]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    // Its response had one event: the line carries where to resume after it.
    let after_b =
        format!("{}:{}", value["next"]["result"].as_str().unwrap(), value["next"]["row"].as_u64().unwrap_or(0));

    // Filtered out (temperature <= 20), then through: both tails see only the second.
    assert_eq!(server.publish("sensors", vec![reading("cold", 3.0), reading("c", 30.0)]), 2);
    assert_eq!(line_with(&mut plain, r#""c""#), r#"{"device":"c","double":60.0}"#);
    // (Proto3 JSON maps, such as the fields, come in no particular order.)
    let line = line_with(&mut full, r#""c""#);
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(value["event"]["fields"], json!({"device": {"stringValue": "c"}, "double": {"floatValue": 60.0}}));
    // A tail that resumes after b prints c first: retained since the first tail came.
    let mut resumed = server.spawn_oort(&["rule", "tail", "hot", "--from", &after_b]);
    assert_eq!(resumed.expect_line(LINE_TIMEOUT), r#"{"device":"c","double":60.0}"#);
    resumed.kill();
    let err = server_error(&server.oort(&["rule", "tail", "hot", "--from", "99999"]));
    assert!(err.contains("out of range") && err.contains("does not exist yet"), "{err}");

    // When the rule stops, the server ends the stream and the tail exits with 0.
    success(&server.oort(&["rule", "stop", "hot"]));
    for tail in [&mut plain, &mut full] {
        loop {
            match tail.line(LINE_TIMEOUT) {
                Ok(line) => assert!(!line.contains("cold"), "{line}"),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("oort rule tail did not end with the rule ({e})"),
            }
        }
        assert_eq!(tail.wait(), (Some(0), String::new()));
    }

    // A stopped rule cannot be tailed.
    let err = server_error(&server.oort(&["rule", "tail", "hot"]));
    assert!(err.starts_with("error: failed precondition: ") && err.contains("not running"), "{err}");
}

#[test]
fn rule_tail_prints_a_line_per_result_of_a_burst_in_order() {
    let server = Oortd::start();
    success(&server.oort(&["stream", "create", SENSORS]));
    success(&server.oort(&["rule", "create", "all", "--sql", "SELECT device FROM sensors", "--action", "grpc"]));
    let reading =
        |device: &str| event(&[("temperature", Kind::FloatValue(1.0)), ("device", Kind::StringValue(device.into()))]);
    let (mut tail, _) = tail(&server, &["rule", "tail", "all", "--json"], "sensors", &reading("warm-up"));

    // The server sends these in batches; the tail still prints one result a line,
    // each as the TailRuleResponse of an unbatched tail.
    let devices: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(server.publish("sensors", devices.iter().map(|d| reading(d)).collect()), 1000);
    let mut printed = Vec::new();
    while printed.len() < devices.len() {
        let line = tail.expect_line(LINE_TIMEOUT);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("events").is_none(), "{line}");
        match value["event"]["fields"]["device"]["stringValue"].as_str() {
            Some("warm-up") => {}
            Some(device) => printed.push(device.to_owned()),
            None => panic!("not a result: {line}"),
        }
    }
    assert_eq!(printed, devices);
    tail.kill();
}

#[test]
fn publish_sends_json_lines_from_stdin_and_a_file() {
    let server = Oortd::start();
    success(&server.oort(&["stream", "create", SENSORS]));
    success(&server.oort(&["rule", "create", "all", "--sql", "SELECT device FROM sensors", "--action", "grpc"]));
    let warm_up = event(&[("device", Kind::StringValue("warm-up".into()))]);
    let (mut tail, _) = tail(&server, &["rule", "tail", "all"], "sensors", &warm_up);

    // Objects and arrays of objects, one a line, blank lines skipped.
    let lines = "{\"device\": \"a\", \"temperature\": 1}\n\n[{\"device\": \"b\"}, {\"device\": \"c\"}]\n";
    assert_eq!(success(&server.oort_with_stdin(&["publish", "sensors"], lines)), "3 event(s) published to sensors\n");
    let file = server.dir.write("more.jsonl", "{\"device\": \"d\"}\n");
    let out = json(&server.oort(&["--json", "publish", "sensors", "--file", file.to_str().unwrap()]));
    assert_eq!(out, json!({"stream": "sensors", "accepted": 1}));
    let mut printed = Vec::new();
    while printed.len() < 4 {
        let line = tail.expect_line(LINE_TIMEOUT);
        if !line.contains("warm-up") {
            printed.push(line);
        }
    }
    assert_eq!(printed, ["a", "b", "c", "d"].map(|d| format!("{{\"device\":\"{d}\"}}")));

    // A bad line stops the input: what came before it is published, and the
    // message names the line.
    let err = failure(&server.oort_with_stdin(&["publish", "sensors"], "{\"device\": \"e\"}\n{\"device\"\n"), 2);
    assert!(err.contains("<stdin>, line 2: ") && err.contains("the 1 event(s) before it were published"), "{err}");
    assert_eq!(line_with(&mut tail, "\"e\""), r#"{"device":"e"}"#);
    tail.kill();

    // Only grpc streams take published events.
    success(&server.oort(&["stream", "create", DEMO]));
    let err = server_error(&server.oort_with_stdin(&["publish", "demo"], "{}\n"));
    assert!(err.contains("only to TYPE=\"grpc\" streams"), "{err}");
}

#[test]
fn rule_status_shows_the_last_exception_of_an_operator() {
    let server = Oortd::start();
    success(&server.oort(&["stream", "create", SENSORS]));
    success(&server.oort(&["rule", "create", "r", "--sql", "SELECT * FROM sensors", "--action", "log"]));
    let good =
        |device: &str| event(&[("temperature", Kind::FloatValue(21.0)), ("device", Kind::StringValue(device.into()))]);
    let (mut tail, _) = tail(&server, &["rule", "tail", "r"], "sensors", &good("a"));

    // A temperature that is not a number fails in the decoder; the rule goes on.
    let bad = event(&[("temperature", Kind::StringValue("hot".into())), ("device", Kind::StringValue("x".into()))]);
    assert_eq!(server.publish("sensors", vec![bad, good("after")]), 2);
    // Events are processed in order: once "after" is out, the bad one was seen.
    line_with(&mut tail, "after");

    let text = success(&server.oort(&["rule", "status", "r"]));
    assert!(text.lines().nth(1).is_some_and(|l| l.split_whitespace().eq(["State:", "running"])), "{text}");
    let decoder = text.lines().find(|l| l.starts_with("op_decoder_0")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = decoder.split_whitespace().collect();
    assert_eq!(cells[3], "1", "exceptions_total in\n{text}");
    let exception = decoder.split_once("field temperature").map(|(_, rest)| rest);
    assert!(exception.is_some_and(|e| e.contains("FLOAT")), "last_exception in\n{text}");

    let value = json(&server.oort(&["rule", "status", "r", "--json"]));
    let decoder = &value["operators"][1];
    assert_eq!(decoder["name"], "op_decoder_0");
    assert_eq!(decoder["exceptionsTotal"], "1");
    assert!(decoder["lastException"].as_str().is_some_and(|e| e.starts_with("field temperature")), "{value}");
    assert!(decoder["lastExceptionTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{value}");
    let records_in: u64 = decoder["recordsInTotal"].as_str().and_then(|n| n.parse().ok()).expect("a count");
    let records_out: u64 = decoder["recordsOutTotal"].as_str().and_then(|n| n.parse().ok()).expect("a count");
    assert_eq!(records_in, records_out + 1, "{value}");
}

// ---------------------------------------------------------------- the command itself

#[test]
fn unreachable_server_exits_3_with_the_hint() {
    // A port that was free a moment ago: bound by us, then released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let out = run_oort(&["--server", &addr.to_string(), "--json", "stream", "list"], "", &[]);
    let err = failure(&out, 3);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first.starts_with(&format!("error: could not connect to oortd at http://{addr}: ")), "{err}");
    assert_eq!(
        lines.next(),
        Some("hint: is oortd running? Start it with `oortd`, or point --server (or OORT_SERVER) at it.")
    );
}

#[test]
fn health_says_serving_and_exits_0_or_exits_3_when_unreachable() {
    let server = Oortd::start();
    assert_eq!(success(&server.oort(&["health"])), "SERVING\n");
    assert_eq!(json(&server.oort(&["health", "--json"]))["status"], "SERVING");
    drop(server);
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    failure(&run_oort(&["--server", &addr.to_string(), "health"], "", &[]), 3);
}

#[test]
fn server_address_from_the_environment() {
    let server = with_demo();
    let url = format!("http://{}", server.addr);
    let token = server.token();
    let out = run_oort(&["stream", "list", "--json"], "", &[("OORT_SERVER", &url), ("OORT_TOKEN", &token)]);
    assert_eq!(json(&out)["streams"][0]["name"], "demo");
    let data_dir = server.data_dir();
    let out = run_oort(&["stream", "list", "--json"], "", &[("OORT_SERVER", &url), ("OORT_DATA_DIR", &data_dir)]);
    assert_eq!(json(&out)["streams"][0]["name"], "demo", "the token read from OORT_DATA_DIR/admin.token");
}

#[test]
fn without_a_token_the_server_refuses_and_the_cli_says_where_tokens_come_from() {
    let server = Oortd::start();
    let out = run_oort(&["--server", &server.addr, "--data-dir", "/nonexistent", "stream", "list"], "", &[]);
    let err = failure(&out, 1);
    assert!(err.contains("error: unauthenticated: missing credentials"), "{err}");
    assert!(err.contains("hint: pass --token (or OORT_TOKEN)"), "{err}");
    let out = run_oort(&["--server", &server.addr, "--token", "oort_wrong", "stream", "list"], "", &[]);
    assert!(failure(&out, 1).contains("error: unauthenticated: invalid token"));
}

#[test]
fn token_new_makes_a_token_that_the_printed_entry_accepts_with_its_role() {
    let made = run_oort(&["token", "new", "--name", "dash", "--role", "viewer"], "", &[]);
    let token = stdout(&made).trim().to_string();
    let entry = stderr(&made);
    assert!(
        token.starts_with("oort_") && entry.contains("[[tokens]]") && entry.contains("role = \"viewer\""),
        "{entry}"
    );
    let hashed = success(&run_oort(&["token", "hash"], &format!("{token}\n"), &[]));
    assert!(entry.contains(&format!("hash = \"{}\"", hashed.trim())), "{entry} / {hashed}");

    let toml = entry.lines().filter(|line| !line.starts_with('#')).collect::<Vec<_>>().join("\n");
    let server = Oortd::start_with_config(&toml);
    let as_viewer = |args: &[&str]| {
        let mut all = vec!["--server", server.addr.as_str(), "--token", token.as_str()];
        all.extend_from_slice(args);
        run_oort(&all, "", &[])
    };
    success(&as_viewer(&["stream", "list"]));
    let err = failure(&as_viewer(&["stream", "create", "CREATE STREAM s () WITH (DATASOURCE=\"s\")"]), 1);
    assert!(err.contains("permission denied: dash (role viewer) lacks the right `edit`"), "{err}");
    assert!(failure(&run_oort(&["token", "new", "--role", "root"], "", &[]), 2).contains("unknown role"));
}

#[test]
fn usage_errors_exit_2_without_a_request() {
    let server = Oortd::start();
    for args in [
        &["rule", "status"][..],
        &["stream", "list", "--kind", "view"],
        &["stream", "create", "X", "--file", "f.sql"],
        &["rule", "create", "r", "--file", "r.json", "--sql", "SELECT 1"],
    ] {
        let out = server.oort(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    let err = failure(&server.oort_with_stdin(&["stream", "create", "-"], "  \n"), 2);
    assert_eq!(err, "error: the statement is empty\n");
    let err = failure(&server.oort(&["rule", "create", "r", "--sql", "SELECT * FROM demo"]), 2);
    assert!(err.contains("--action"), "{err}");
    let err = failure(&server.oort(&["rule", "update", "r"]), 2);
    assert!(err.starts_with("error: nothing to update"), "{err}");
    assert!(stream_names(&server).is_empty());

    let help = success(&run_oort(&["--help"], "", &[]));
    assert!(help.contains("Exit codes:"), "{help}");
}

// ---------------------------------------------------------------- plugins

/// The packaged mathx example, built by `scripts/package-plugins.sh` into a
/// target directory of its own (this `cargo test` holds the default one's
/// lock), once for all the tests that want a packaged example.
fn mathx_zip() -> std::path::PathBuf {
    static PACKAGED: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PACKAGED
        .get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
            let target = root.join("target/plugin-tests");
            let status = std::process::Command::new(root.join("scripts/package-plugins.sh"))
                .current_dir(&root)
                .env("CARGO_TARGET_DIR", &target)
                .status()
                .expect("the script runs");
            assert!(status.success());
            target.join("plugins/mathx.zip")
        })
        .clone()
}

#[test]
fn plugin_install_list_describe_update_and_drop() {
    let zip = mathx_zip();
    let zip = zip.to_str().unwrap();
    let server = with_demo();
    assert_eq!(success(&server.oort(&["plugin", "list"])), "No plugins.\n");
    let out = success(&server.oort(&["plugin", "install", "mathx", "--upload", zip]));
    assert!(out.starts_with("Plugin mathx 1.0.0 installed: mx_abs (function), "), "{out}");
    assert!(out.contains("mx_geomean (aggregate)"), "{out}");
    let out = server.oort(&[
        "rule",
        "create",
        "abs1",
        "--sql",
        "SELECT mx_abs(temperature) AS t FROM demo",
        "--action",
        "log",
    ]);
    success(&out);
    let listed = success(&server.oort(&["plugin", "list"]));
    assert!(listed.lines().nth(1).unwrap().contains("abs1"), "{listed}");
    assert!(listed.lines().nth(1).unwrap().contains(" loaded "), "{listed}");
    let described = json(&server.oort(&["plugin", "describe", "mathx", "--json"]));
    assert_eq!(described["plugin"]["abiVersion"], "1.0");
    assert_eq!(described["plugin"]["usedByRules"], json!(["abs1"]));
    // --file names a path on the server, inside <data_dir>/uploads (relative to it) or file_roots.
    let err = server_error(&server.oort(&["plugin", "update", "mathx", "--file", zip]));
    assert!(err.contains("invalid argument") && err.contains("outside the allowed directories"), "{err}");
    std::fs::copy(zip, server.dir.path().join("data/uploads/mathx.zip")).unwrap();
    assert_eq!(
        success(&server.oort(&["plugin", "update", "mathx", "--file", "mathx.zip"])),
        "Plugin mathx updated to 1.0.0.\n"
    );

    let err = server_error(&server.oort(&["plugin", "drop", "mathx"]));
    assert!(err.contains("failed precondition") && err.contains("abs1"), "{err}");
    let out = success(&server.oort(&["plugin", "drop", "mathx", "--force"]));
    assert_eq!(out, "Plugin mathx deleted; stopped rule(s) abs1.\n");
    let err = server_error(&server.oort(&["plugin", "describe", "mathx"]));
    assert!(err.contains("not found"), "{err}");
    let err = failure(&server.oort(&["plugin", "install", "mathx", "--upload", "/nonexistent.zip"]), 2);
    assert!(err.contains("/nonexistent.zip"), "{err}");
}

#[test]
fn a_portable_plugin_shows_its_process_and_its_python_environment() {
    let zip = mathx_zip().with_file_name("pydemo.zip");
    let server = Oortd::start();
    // The server's python3 needs nothing: the plugin brings its wheels.
    let out = success(&server.oort(&["plugin", "install", "pydemo", "--portable", "--upload", zip.to_str().unwrap()]));
    assert!(out.starts_with("Plugin pydemo 1.0.0 installed: py_upper (function), "), "{out}");
    assert!(out.contains("\nIts Python environment holds ") && out.contains("grpcio 1."), "{out}");
    let listed = success(&server.oort(&["plugin", "list"]));
    let row: Vec<&str> = listed.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["pydemo", "portable", "1.0.0"], "{listed}");
    assert!(listed.contains("running (pid ") || listed.contains("stopped"), "{listed}");
    let described = success(&server.oort(&["plugin", "describe", "pydemo"]));
    for (key, value) in [("language", "python"), ("restarts", "0"), ("last error", "-"), ("protocol", "1")] {
        assert!(described.lines().any(|l| l.starts_with(key) && l.ends_with(value)), "{key}: {described}");
    }
    assert!(described.lines().any(|l| l.starts_with("dependencies") && l.contains("protobuf ")), "{described}");
}

#[test]
fn service_create_list_describe_and_drop() {
    let server = Oortd::start();
    let proto = server.dir.write(
        "geo.proto",
        "syntax = \"proto3\"; package geo; import \"google/protobuf/wrappers.proto\";\n\
         service Geo { rpc Area(Box) returns (google.protobuf.DoubleValue); }\n\
         message Box { double w = 1; double h = 2; }\n",
    );
    // eKuiper's service file as-is; nothing listens there, and registering does not need it to.
    let description = server.dir.write(
        "geo.json",
        r#"{"about": {"author": {"name": "me"}}, "interfaces": {"g": {"address": "tcp://127.0.0.1:9", "protocol": "grpc",
           "schemaType": "protobuf", "schemaFile": "geo.proto", "functions": [{"name": "area", "serviceName": "Area"}]}}}"#,
    );
    let (proto, description) = (proto.to_str().unwrap(), description.to_str().unwrap());
    let out = server.oort(&["service", "create", "geo", "--file", description, "--proto", proto]);
    assert_eq!(success(&out), "Service geo registered: area.\n");
    let text = success(&server.oort(&["service", "list"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[1], ["geo", "g", "(grpc)", "area", "-"], "{text}");
    let text = success(&server.oort(&["service", "describe", "geo"]));
    assert!(text.contains("area → Area") && text.contains("tcp://127.0.0.1:9"), "{text}");
    let listed = json(&server.oort(&["service", "list", "--json"]));
    assert_eq!(listed["services"][0]["functions"], json!(["area"]));

    let bad = server.dir.write("bad.proto", "syntax = \"proto3\"; message { }");
    let out = server.oort(&["service", "create", "bad", "--file", description, "--proto", bad.to_str().unwrap()]);
    let err = server_error(&out);
    assert!(err.starts_with("error: invalid argument: ") && err.contains("bad.proto"), "{err}");

    assert_eq!(success(&server.oort(&["service", "drop", "geo"])), "Service geo deleted.\n");
    assert_eq!(success(&server.oort(&["service", "list"])), "No services.\n");
}

#[test]
fn secrets_in_actions_are_shown_redacted() {
    let server = with_demo();
    let rule = r#"{"id": "hook", "sql": "SELECT * FROM demo", "triggered": false,
        "actions": [{"rest": {"url": "http://user:hunter2@127.0.0.1:9/in", "headers": {"Authorization": "Bearer s3cr3t"}}}]}"#;
    success(&server.oort_with_stdin(&["rule", "create", "--file", "-"], rule));
    for args in
        [&["--json", "rule", "describe", "hook"][..], &["--json", "rule", "list"], &["rule", "describe", "hook"]]
    {
        let out = success(&server.oort(args));
        assert!(!out.contains("s3cr3t") && !out.contains("hunter2"), "{args:?}: {out}");
        assert!(out.contains("***"), "{args:?}: {out}");
    }
    let described = rule_json(&server, "hook");
    assert_eq!(described["actions"][0]["props"]["headers"]["Authorization"], "***");
    assert_eq!(described["actions"][0]["props"]["url"], "http://user:***@127.0.0.1:9/in", "what is no secret is shown");
}

#[test]
fn tls_with_the_servers_ca_and_a_token() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "oort test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("server.pem"), cert.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    let server = Oortd::start_with_config(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        path("server.pem"),
        path("server.key")
    ));
    let data_dir = server.data_dir();
    let https = format!("https://{}", server.addr);
    let with_ca = ["--server", &https, "--ca-cert", &path("ca.pem"), "--data-dir", &data_dir];
    success(&run_oort(&[&with_ca[..], &["stream", "list"]].concat(), "", &[]));
    // host:port with --ca-cert means TLS too.
    let bare = ["--server", &server.addr, "--ca-cert", &path("ca.pem"), "--data-dir", &data_dir];
    success(&run_oort(&[&bare[..], &["stream", "list"]].concat(), "", &[]));
    let err = failure(&run_oort(&["--server", &https, "stream", "list"], "", &[]), 2);
    assert!(err.contains("--ca-cert"), "{err}");
    // Plaintext against a TLS port does not get through.
    let out = run_oort(&["--server", &server.addr, "--data-dir", &data_dir, "stream", "list"], "", &[]);
    assert!(!out.status.success());
}

#[test]
fn connector_list_and_describe_show_the_options_each_takes() {
    let server = Oortd::start();
    let text = success(&server.oort(&["connector", "list", "--role", "source"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["TYPE", "ROLE", "OPTIONS"]);
    let file = lines.iter().find(|l| l.starts_with("file ")).expect("the file source is listed");
    assert!(file.contains("source") && file.contains("INTERVAL, SEND_INTERVAL"), "{text}");
    assert!(lines[1..].iter().all(|l| l.split_whitespace().nth(1) == Some("source")), "{text}");

    let text = success(&server.oort(&["connector", "describe", "file"]));
    assert!(text.lines().nth(1) == Some("FORMAT: json, csv, delimited"), "{text}");
    let text = success(&server.oort(&["connector", "describe", "rest", "--sink"]));
    assert!(text.starts_with("Sends results to an HTTP(S) endpoint"), "{text}");
    let timeout = text.lines().find(|l| l.starts_with("timeout ")).expect("rest's timeout is described");
    assert!(timeout.contains("milliseconds") && timeout.contains("5000"), "{text}");
    let value = json(&server.oort(&["connector", "describe", "file", "--json"]));
    assert_eq!(value["type"], "file");
    assert_eq!(value["role"], "CONNECTOR_ROLE_SOURCE");
    assert_eq!(value["options"][0]["key"], "FILE_BASE");
    assert_eq!(value["formats"], json!(["json", "csv", "delimited"]));

    let out = server.oort(&["connector", "describe", "rest"]);
    assert!(server_error(&out).contains("no source of type rest"), "{}", stderr(&out));
}

#[test]
fn state_put_get_list_and_delete() {
    let server = Oortd::start();
    assert_eq!(success(&server.oort(&["state", "list"])), "No keys.\n");
    assert_eq!(success(&server.oort(&["state", "put", "limit/a", "42"])), "Key limit/a set.\n");
    assert_eq!(success(&server.oort(&["state", "put", "limit/a", "43"])), "Key limit/a replaced.\n");
    success(&server.oort(&["state", "put", "site", "paris"]));
    success(&server.oort(&["state", "put", "--string", "code", "12"]));
    success(&server.oort(&["state", "put", "limits", r#"{"hi": 2.5, "on": true}"#]));

    assert_eq!(success(&server.oort(&["state", "get", "limit/a"])), "43\n");
    assert_eq!(success(&server.oort(&["state", "get", "code"])), "\"12\"\n");
    let text = success(&server.oort(&["state", "list", "--prefix", "limit"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, [vec!["KEY", "VALUE"], vec!["limit/a", "43"], vec!["limits", r#"{"hi":2.5,"on":true}"#]]);
    let listed = json(&server.oort(&["state", "list", "--json"]));
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(4), "{listed}");
    assert_eq!(listed["entries"][1], json!({"key": "limit/a", "value": {"intValue": "43"}}));

    assert_eq!(success(&server.oort(&["state", "delete", "site", "nope"])), "1 of 2 key(s) deleted.\n");
    let error = server_error(&server.oort(&["state", "get", "site"]));
    assert_eq!(error, r#"error: not found: key "site" has no value"#);
}

#[test]
fn connection_create_list_describe_update_and_drop() {
    let server = Oortd::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plant.json");
    std::fs::write(&file, r#"{"id": "plant", "typ": "mqtt", "props": {"username": "gw", "password": "s3cret"}}"#)
        .unwrap();
    let file = file.to_str().unwrap();
    let created = success(&server.oort(&[
        "connection",
        "create",
        "plant",
        "--file",
        file,
        "--set",
        "server=tcp://127.0.0.1:1",
        "--set",
        "keepAlive=30",
    ]));
    assert_eq!(created, "Connection plant (mqtt) created.\n");
    let text = success(&server.oort(&["connection", "list"]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "TYPE", "SERVER", "STATE", "CLIENTS", "LAST", "ERROR"]);
    assert_eq!(rows[1][..2], ["default", "(declared)"]);
    assert_eq!(rows[2], ["plant", "mqtt", "tcp://127.0.0.1:1", "idle", "0/0", "-"]);
    let described = success(&server.oort(&["connection", "describe", "plant"]));
    assert!(
        described.contains("password") && described.contains("***") && !described.contains("s3cret"),
        "{described}"
    );
    assert!(described.contains("keepAlive") && described.contains("30"), "{described}");

    let typo = server_error(&server.oort(&["connection", "create", "typo", "--set", "sever=tcp://h:1883"]));
    assert!(typo.contains("unknown property \"sever\""), "{typo}");
    let usage = server.oort(&["connection", "create", "empty"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));

    let sql = r#"CREATE STREAM plant_in () WITH (TYPE="mqtt", DATASOURCE="in", CONF_KEY="plant")"#;
    success(&server.oort(&["stream", "create", sql]));
    let in_use = server_error(&server.oort(&["connection", "drop", "plant"]));
    assert!(in_use.starts_with("error: failed precondition: connection \"plant\" is in use"), "{in_use}");
    let updated = success(&server.oort(&[
        "connection",
        "update",
        "plant",
        "--set",
        "server=tcp://127.0.0.1:2",
        "--set",
        "username=gw",
        "--set",
        "password=***",
    ]));
    assert_eq!(updated, "Connection plant updated.\n");
    let shown = json(&server.oort(&["connection", "describe", "plant", "--json"]));
    assert_eq!(shown["connection"]["props"]["server"], "tcp://127.0.0.1:2");
    assert_eq!(shown["connection"]["props"]["password"], "***");
    success(&server.oort(&["stream", "drop", "plant_in"]));
    assert_eq!(success(&server.oort(&["connection", "drop", "plant"])), "Connection plant deleted.\n");
}

#[test]
fn schema_create_list_describe_and_drop() {
    let server = Oortd::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plant.proto");
    std::fs::write(
        &file,
        "syntax = \"proto3\";\npackage plant;\nmessage Reading { string device = 1; double t = 2; }\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let created = success(&server.oort(&["schema", "create", "plant", "--file", file]));
    assert_eq!(created, "Schema plant registered; messages: plant.Reading.\n");
    let text = success(&server.oort(&["schema", "list"]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "MESSAGES", "UPDATED"]);
    assert_eq!(rows[1][..2], ["plant", "plant.Reading"]);
    let described = success(&server.oort(&["schema", "describe", "plant"]));
    assert!(described.contains("plant.Reading") && described.contains("message Reading {"), "{described}");

    let broken = dir.path().join("broken.proto");
    std::fs::write(&broken, "syntax = \"proto3\";\nmessage A { strin x = 1; }\n").unwrap();
    let error = server_error(&server.oort(&["schema", "create", "broken", "--file", broken.to_str().unwrap()]));
    assert!(error.contains("broken.proto:2:13"), "{error}");

    let sql =
        r#"CREATE STREAM readings () WITH (TYPE="mqtt", DATASOURCE="in", FORMAT="protobuf", SCHEMAID="plant.Reading")"#;
    success(&server.oort(&["stream", "create", sql]));
    let in_use = server_error(&server.oort(&["schema", "drop", "plant"]));
    assert!(in_use.starts_with("error: failed precondition: schema \"plant\" is in use"), "{in_use}");
    success(&server.oort(&["stream", "drop", "readings"]));
    assert_eq!(success(&server.oort(&["schema", "drop", "plant"])), "Schema plant deleted.\n");
}

#[test]
fn function_list_and_completions() {
    let server = Oortd::start();
    let text = success(&server.oort(&["function", "list", "--origin", "builtin"]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["FUNCTION", "ORIGIN", "KIND", "OWNER", "DESCRIPTION"]);
    // Each function by its signature, such as md5(s).
    let md5 = rows.iter().find(|r| r[0].starts_with("md5(")).expect("md5 is listed");
    assert_eq!(md5[1..4], ["builtin", "scalar", "-"]);
    assert!(rows.iter().any(|r| r[0].starts_with("avg(") && r[2] == "aggregate"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("round(x [, ")), "{text}");
    let listed = json(&server.oort(&["function", "list", "--json"]));
    assert!(listed["functions"].as_array().is_some_and(|f| f.len() > 100), "{listed}");

    let bash = success(&server.oort(&["completions", "bash"]));
    assert!(bash.contains("_oort()") && bash.contains("connection") && bash.contains("schema"), "{bash}");
    let fish = success(&server.oort(&["completions", "fish"]));
    assert!(fish.contains("complete -c oort"), "{fish}");

    // A tail waits for results as long as it takes, unless --timeout bounds it.
    success(&server.oort(&["stream", "create", DEMO]));
    create_rule1(&server);
    let started = std::time::Instant::now();
    let bounded = server.oort(&["--timeout", "1", "rule", "tail", "rule1"]);
    assert_ne!(bounded.status.code(), Some(0));
    assert!(stderr(&bounded).to_lowercase().contains("deadline"), "{}", stderr(&bounded));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
