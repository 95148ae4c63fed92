//! The control plane through the generated Rust client, against the real binary.

mod common;

use common::{Oortd, code_of};
use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, DeleteRuleRequest, DeleteStreamRequest, GetRuleRequest,
    GetStreamRequest, InstallPluginRequest, ListRulesRequest, ListStreamsRequest, PluginKind, Rule, RuleState,
    StreamKind, UpdateRuleRequest, UpdateStreamRequest,
};
use tonic::Code;

fn rule(id: &str, sql: &str) -> Rule {
    Rule {
        id: id.into(),
        sql: sql.into(),
        actions: vec![Action { r#type: "log".into(), props: None }],
        ..Default::default()
    }
}

#[tokio::test]
async fn streams_are_created_read_listed_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut streams = oortd.streams().await;

    let created = streams
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE="demo", FORMAT="json", TYPE="mqtt")"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .stream
        .unwrap();
    assert_eq!(created.name, "demo");
    assert_eq!(created.kind, StreamKind::Stream as i32);
    let fields: Vec<_> = created.fields.iter().map(|f| (f.name.as_str(), f.r#type.as_str())).collect();
    assert_eq!(fields, [("temperature", "FLOAT"), ("humidity", "BIGINT")]);
    assert_eq!(created.options["DATASOURCE"], "demo");
    assert_eq!(created.options["TYPE"], "mqtt");

    streams
        .create_stream(CreateStreamRequest { sql: r#"CREATE STREAM free () WITH (DATASOURCE="free")"#.into() })
        .await
        .unwrap();
    streams
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE TABLE lookup (id BIGINT, name STRING) WITH (DATASOURCE="lookup.json", TYPE="file")"#.into(),
        })
        .await
        .unwrap();

    let got = streams.get_stream(GetStreamRequest { name: "demo".into() }).await.unwrap().into_inner().stream.unwrap();
    assert_eq!(got, created);
    let free = streams.get_stream(GetStreamRequest { name: "free".into() }).await.unwrap().into_inner().stream.unwrap();
    assert!(free.fields.is_empty(), "schemaless stream has no fields");

    let all = streams.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner().streams;
    let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["demo", "free", "lookup"]);
    let tables =
        streams.list_streams(ListStreamsRequest { kind: StreamKind::Table as i32 }).await.unwrap().into_inner().streams;
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, "lookup");

    let updated = streams
        .update_stream(UpdateStreamRequest {
            sql: r#"CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE="demo2", TYPE="memory")"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .stream
        .unwrap();
    assert_eq!(updated.options["DATASOURCE"], "demo2");
    assert_eq!(updated.create_time, created.create_time, "update keeps the creation time");
    let (code, _) = code_of(
        streams
            .update_stream(UpdateStreamRequest { sql: r#"CREATE STREAM ghost () WITH (DATASOURCE="g")"#.into() })
            .await,
    );
    assert_eq!(code, Code::NotFound);

    streams.delete_stream(DeleteStreamRequest { name: "demo".into() }).await.unwrap();
    let (code, message) = code_of(streams.get_stream(GetStreamRequest { name: "demo".into() }).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("demo"), "{message}");
    let (code, _) = code_of(streams.delete_stream(DeleteStreamRequest { name: "demo".into() }).await);
    assert_eq!(code, Code::NotFound);
}

#[tokio::test]
async fn stream_errors_are_precise_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut streams = oortd.streams().await;

    let (code, message) = code_of(
        streams
            .create_stream(CreateStreamRequest { sql: "CREATE STREAM demo (a FLAOT) WITH (DATASOURCE=\"d\")".into() })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("line 1") && message.contains("column 23"), "{message}");

    let (code, message) = code_of(
        streams
            .create_stream(CreateStreamRequest {
                sql: "CREATE STREAM demo (a BIGINT)\n  WITH (DATASOURCE=\"d\" FORMAT=\"json\")".into(),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("line 2"), "{message}");

    // An unsupported FORMAT is refused when the stream is made, pointing at it.
    let sql = r#"CREATE STREAM demo () WITH (DATASOURCE="d", TYPE="grpc", FORMAT="protobuf")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: sql.into() }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains(r#"FORMAT "protobuf" is not supported by grpc streams; use json or binary"#), "{message}");
    assert!(message.contains("column 58"), "{message}");

    // So is a TIMESTAMP_FORMAT no time can be read with.
    let sql = r#"CREATE STREAM demo () WITH (DATASOURCE="d", TIMESTAMP="t", TIMESTAMP_FORMAT="yyy-MM-dd")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: sql.into() }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains(r#"option TIMESTAMP_FORMAT: invalid pattern "yyy-MM-dd""#), "{message}");
    assert!(message.contains("column 60"), "{message}");

    // And SHARED="true": each rule reads its own instance of the source.
    let sql = r#"CREATE STREAM demo () WITH (DATASOURCE="d", SHARED="true")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: sql.into() }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains(r#"option SHARED="true" is not supported"#), "{message}");
    assert!(message.contains("Leave SHARED out") && message.contains("column 45"), "{message}");

    let (code, _) = code_of(streams.create_stream(CreateStreamRequest { sql: String::new() }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(streams.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner().streams.is_empty());

    let sql = r#"CREATE STREAM demo () WITH (DATASOURCE="demo")"#;
    streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: sql.into() }).await);
    assert_eq!(code, Code::AlreadyExists);
    assert!(message.contains("demo"), "{message}");
}

#[tokio::test]
async fn rules_are_validated_stored_and_pin_their_streams() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut streams = oortd.streams().await;
    let mut rules = oortd.rules().await;
    streams
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM demo (t FLOAT) WITH (DATASOURCE="demo", TYPE="memory")"#.into(),
        })
        .await
        .unwrap();

    // A rule reading a stream that does not exist is refused and not stored.
    let (code, message) =
        code_of(rules.create_rule(CreateRuleRequest { rule: Some(rule("r0", "SELECT * FROM nowhere")) }).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("nowhere"), "{message}");
    let (code, message) =
        code_of(rules.create_rule(CreateRuleRequest { rule: Some(rule("r0", "SELECT * FROM demo WHERE")) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("line 1, column"), "{message}");
    assert!(rules.list_rules(ListRulesRequest::default()).await.unwrap().into_inner().rules.is_empty());

    let created = rules
        .create_rule(CreateRuleRequest { rule: Some(rule("r1", "SELECT t FROM demo WHERE t > 30")) })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(created.triggered, Some(true), "rules start by default");
    let (code, _) =
        code_of(rules.create_rule(CreateRuleRequest { rule: Some(rule("r1", "SELECT * FROM demo")) }).await);
    assert_eq!(code, Code::AlreadyExists);

    let got = rules.get_rule(GetRuleRequest { id: "r1".into() }).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(got, created);
    let listed = rules.list_rules(ListRulesRequest::default()).await.unwrap().into_inner().rules;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, RuleState::Running as i32);

    // The stream cannot go while r1 reads it.
    let (code, message) = code_of(streams.delete_stream(DeleteStreamRequest { name: "demo".into() }).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("r1"), "{message}");
    assert!(streams.get_stream(GetStreamRequest { name: "demo".into() }).await.is_ok());

    let updated = rules
        .update_rule(UpdateRuleRequest { rule: Some(rule("r1", "SELECT t * 2 AS double FROM demo")) })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(updated.create_time, created.create_time);
    let (code, _) =
        code_of(rules.update_rule(UpdateRuleRequest { rule: Some(rule("ghost", "SELECT * FROM demo")) }).await);
    assert_eq!(code, Code::NotFound);

    rules.delete_rule(DeleteRuleRequest { id: "r1".into() }).await.unwrap();
    let (code, _) = code_of(rules.get_rule(GetRuleRequest { id: "r1".into() }).await);
    assert_eq!(code, Code::NotFound);
    streams.delete_stream(DeleteStreamRequest { name: "demo".into() }).await.unwrap();
}

#[tokio::test]
async fn installs_without_an_archive_are_refused_for_either_kind() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut plugins = PluginServiceClient::new(oortd.channel().await);
    let (code, message) = code_of(
        plugins
            .install_plugin(InstallPluginRequest { kind: PluginKind::Portable as i32, name: "x".into(), source: None })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument, "a portable install needs an archive: {message}");
    let (code, message) = code_of(
        plugins
            .install_plugin(InstallPluginRequest { kind: PluginKind::Native as i32, name: "x".into(), source: None })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument, "a native install needs an archive: {message}");
}

#[tokio::test]
async fn connectors_are_listed_with_the_options_they_declare() {
    use oort_proto::v1::connector_service_client::ConnectorServiceClient;
    use oort_proto::v1::{ConnectorRole, ListConnectorsRequest};
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut client = ConnectorServiceClient::new(oortd.channel().await);
    let all = client.list_connectors(ListConnectorsRequest::default()).await.unwrap().into_inner().connectors;
    let find = |role: ConnectorRole, name: &str| {
        all.iter().find(|c| c.role() == role && c.r#type == name).unwrap_or_else(|| panic!("{name} is listed")).clone()
    };
    let file = find(ConnectorRole::Source, "file");
    assert!(file.options_declared);
    let keys: Vec<&str> = file.options.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["FILE_BASE", "INTERVAL", "SEND_INTERVAL", "IGNORE_START_LINES", "IGNORE_END_LINES"]);
    let interval = &file.options[1];
    assert_eq!(
        (interval.values.as_str(), interval.default_value.as_str()),
        ("a non-negative integer of milliseconds", "0")
    );
    let mqtt = find(ConnectorRole::Sink, "mqtt");
    assert!(mqtt.options.iter().any(|o| o.key == "topic" && o.description.starts_with("Required")));
    assert!(mqtt.options.iter().any(|o| o.key == "sendSingle"), "the encoder's properties too");
    let first_sink = all.iter().position(|c| c.role() == ConnectorRole::Sink).unwrap();
    assert!(all[..first_sink].iter().all(|c| c.role() == ConnectorRole::Source), "sources, then sinks");

    let request = ListConnectorsRequest { role: ConnectorRole::Sink as i32 };
    let sinks = client.list_connectors(request).await.unwrap().into_inner().connectors;
    assert!(!sinks.is_empty() && sinks.iter().all(|c| c.role() == ConnectorRole::Sink));
    assert!(sinks.iter().any(|c| c.r#type == "rest") && !sinks.iter().any(|c| c.r#type == "httppush"));
}

#[tokio::test]
async fn rules_have_a_name_and_tags_and_are_listed_by_tag() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM demo (t FLOAT) WITH (DATASOURCE="demo", TYPE="memory")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut rules = oortd.rules().await;
    for (id, tags) in [("a", vec!["line1", "alarm"]), ("b", vec!["line1"]), ("c", vec![])] {
        let rule = Rule {
            name: format!("rule {id}"),
            tags: tags.into_iter().map(str::to_owned).collect(),
            ..rule(id, "SELECT t FROM demo")
        };
        rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();
    }
    let ids = |rules: Vec<oort_proto::v1::RuleInfo>| rules.into_iter().map(|r| r.rule.unwrap().id).collect::<Vec<_>>();
    let listed = |tags: &[&str]| ListRulesRequest { tags: tags.iter().map(|t| (*t).to_owned()).collect() };
    assert_eq!(ids(rules.list_rules(listed(&["line1"])).await.unwrap().into_inner().rules), ["a", "b"]);
    assert_eq!(ids(rules.list_rules(listed(&["line1", "alarm"])).await.unwrap().into_inner().rules), ["a"]);
    assert_eq!(ids(rules.list_rules(listed(&[])).await.unwrap().into_inner().rules), ["a", "b", "c"]);
    let got = rules.get_rule(GetRuleRequest { id: "a".into() }).await.unwrap().into_inner().rule.unwrap();
    assert_eq!((got.name.as_str(), got.tags.len()), ("rule a", 2));

    let twice = Rule { tags: vec!["x".into(), "x".into()], ..rule("d", "SELECT t FROM demo") };
    let (code, message) = code_of(rules.create_rule(CreateRuleRequest { rule: Some(twice) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("given twice"), "{message}");
    let many = Rule { tags: (0..65).map(|i| i.to_string()).collect(), ..rule("d", "SELECT t FROM demo") };
    let (code, _) = code_of(rules.create_rule(CreateRuleRequest { rule: Some(many) }).await);
    assert_eq!(code, Code::InvalidArgument);
}

#[tokio::test]
async fn a_scheduled_rule_runs_in_its_periods_only() {
    use oort_proto::v1::{GetRuleStatusRequest, RuleOptions, RuleState, TimeRange};
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM demo (t FLOAT) WITH (DATASOURCE="demo", TYPE="memory")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let period = TimeRange { begin_ms: now + 1_500, end_ms: now + 3_000 };
    let options = RuleOptions { cron_datetime_range: vec![period], ..Default::default() };
    let scheduled = Rule { options: Some(options), ..rule("sched", "SELECT t FROM demo") };
    let mut rules = oortd.rules().await;
    rules.create_rule(CreateRuleRequest { rule: Some(scheduled) }).await.unwrap();
    let status = |rules: &mut oort_proto::v1::rule_service_client::RuleServiceClient<common::AuthChannel>| {
        let mut rules = rules.clone();
        async move { rules.get_rule_status(GetRuleStatusRequest { id: "sched".into() }).await.unwrap().into_inner() }
    };
    let waiting = status(&mut rules).await;
    assert_eq!(waiting.state(), RuleState::Stopped);
    assert_eq!(waiting.next_run_time.unwrap().seconds * 1000 / 1000, (now + 1_500) / 1000, "when it starts");
    let mut states = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let state = status(&mut rules).await.state();
        if states.last() != Some(&state) {
            states.push(state);
        }
    }
    assert_eq!(
        states,
        [RuleState::Stopped, RuleState::Running, RuleState::Stopped],
        "started, then stopped at the end"
    );
    assert!(status(&mut rules).await.next_run_time.is_none(), "no period left");

    let bad = Rule {
        options: Some(RuleOptions { cron: "* * * * *".into(), ..Default::default() }),
        ..rule("bad", "SELECT t FROM demo")
    };
    let (code, message) = code_of(rules.create_rule(CreateRuleRequest { rule: Some(bad) }).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("cron needs a duration"), "{message}");
}
