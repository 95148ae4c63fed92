//! Hostile and careless requests against the real server: each is refused
//! with the right code and a bounded message, and the server stays up.

mod common;

use common::{Oortd, code_of};
use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::value::Kind;
use oort_proto::v1::{
    Action, CreateRuleRequest, CreateStreamRequest, Event, GetStreamRequest, ListStreamsRequest, PublishRequest, Rule,
    TailRuleRequest, Value,
};
use tonic::Code;

fn rule(id: &str, sql: String) -> CreateRuleRequest {
    let action = Action { r#type: "log".into(), props: None };
    CreateRuleRequest { rule: Some(Rule { id: id.into(), sql, actions: vec![action], ..Default::default() }) }
}

#[tokio::test]
async fn deep_expressions_are_refused_with_their_position_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut rules = oortd.rules().await;
    for (i, op) in ["+", " AND ", " OR ", " || ", "->"].into_iter().enumerate() {
        for terms in [1_600, 20_000] {
            let sql = format!("SELECT {} AS x FROM s", vec!["a"; terms].join(op));
            let (code, message) = code_of(rules.create_rule(rule(&format!("deep{i}_{terms}"), sql)).await);
            assert_eq!(code, Code::InvalidArgument, "{op} × {terms}: {message}");
            assert!(message.contains("at line 1, column"), "{op} × {terms}: {message}");
        }
    }
    // Near the limit, the rule plans, compiles and runs.
    let sql = format!("SELECT {} AS x FROM s", vec!["a"; 250].join("+"));
    let mut wide = rule("wide", sql);
    wide.rule.as_mut().unwrap().actions = vec![Action { r#type: "grpc".into(), props: None }];
    rules.create_rule(wide).await.expect("250 terms are a valid rule");
    let mut tail =
        rules.tail_rule(TailRuleRequest { id: "wide".into(), ..Default::default() }).await.unwrap().into_inner();
    let event =
        Event { fields: [("a".to_string(), Value { kind: Some(Kind::IntValue(2)) })].into(), ..Default::default() };
    let request = PublishRequest { stream: "s".into(), event: Some(event), ..Default::default() };
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::once(request)).await.unwrap();
    let result =
        tokio::time::timeout(std::time::Duration::from_secs(10), tail.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(result.event.unwrap().fields["x"].kind, Some(Kind::IntValue(500)));
    oortd.streams().await.list_streams(ListStreamsRequest::default()).await.expect("the server is up");
}

#[tokio::test]
async fn huge_names_come_back_as_their_code_with_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let name = "n".repeat(100_000);
    let (code, message) = code_of(oortd.streams().await.get_stream(GetStreamRequest { name: name.clone() }).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.chars().count() <= 513 && message.ends_with('…'), "{} chars", message.len());
    let sql = format!(r#"CREATE STREAM {name} () WITH (TYPE="grpc", DATASOURCE="s"#);
    let (code, message) = code_of(oortd.streams().await.create_stream(CreateStreamRequest { sql }).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.chars().count() <= 513, "{} chars", message.len());
}

#[tokio::test]
async fn hostile_proto_files_are_refused_and_the_server_stays_up() {
    use oort_proto::v1::external_service_client::ExternalServiceClient;
    use oort_proto::v1::{ProtoFile, RegisterServiceRequest};
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let deep = format!(
        "syntax = \"proto3\"; import \"google/protobuf/descriptor.proto\";\n\
         message Opt {{ Opt o = 1; }} extend google.protobuf.MessageOptions {{ Opt opt = 50000; }}\n\
         message M {{ option (opt) = {}{}; }}",
        "{ o: ".repeat(1_000),
        " }".repeat(1_000)
    );
    let chain: Vec<ProtoFile> = (0..1_200)
        .map(|i| ProtoFile {
            name: format!("f{i}.proto"),
            content: format!("syntax = \"proto3\"; import \"f{}.proto\";", i + 1),
        })
        .collect();
    let description = r#"{"interfaces": {"i": {"address": "192.0.2.1:1", "protocol": "grpc", "schemaType": "protobuf", "schemaFile": "f0.proto", "functions": [{"name": "f", "serviceName": "F"}]}}}"#;
    let mut services = ExternalServiceClient::new(oortd.channel().await);
    for (what, files) in [("deep", vec![ProtoFile { name: "f0.proto".into(), content: deep }]), ("chain", chain)] {
        let request = RegisterServiceRequest {
            name: "svc".into(),
            description_json: description.into(),
            proto_files: files,
            ..Default::default()
        };
        let (code, message) = code_of(services.register_service(request).await);
        assert_eq!(code, Code::InvalidArgument, "{what}: {message}");
    }
    oortd.streams().await.list_streams(ListStreamsRequest::default()).await.expect("the server is up");
}

#[tokio::test]
async fn sizes_that_clients_choose_are_bounded() {
    use oort_proto::v1::plugin_service_client::PluginServiceClient;
    use oort_proto::v1::{InstallPluginRequest, PluginKind, RuleOptions, install_plugin_request};
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut huge = rule("huge", "SELECT * FROM s".into());
    huge.rule.as_mut().unwrap().options = Some(RuleOptions { buffer_length: Some(100_000_000), ..Default::default() });
    let (code, message) = code_of(oortd.rules().await.create_rule(huge).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("max_buffer_length of 100000"), "{message}");
    // A message over max_message_bytes (16 MiB by default) is refused whole.
    let install = InstallPluginRequest {
        kind: PluginKind::Portable as i32,
        name: "big".into(),
        source: Some(install_plugin_request::Source::Archive(vec![0; 17 << 20])),
    };
    let client = PluginServiceClient::new(oortd.channel().await).max_encoding_message_size(64 << 20);
    let (code, message) = code_of(client.clone().install_plugin(install).await);
    assert!(matches!(code, Code::OutOfRange | Code::ResourceExhausted), "{code:?}: {message}");
    oortd.streams().await.list_streams(ListStreamsRequest::default()).await.expect("the server is up");
}

/// What `curl` gets back for `message`, in one gRPC frame, posted to `method`.
fn grpc_status_of(oortd: &Oortd, method: &str, message: &[u8]) -> String {
    grpc_status_of_stream(oortd, method, &[message])
}

/// What `curl` gets back for `messages`, each in a gRPC frame, posted to `method`.
fn grpc_status_of_stream(oortd: &Oortd, method: &str, messages: &[&[u8]]) -> String {
    use std::io::Write;
    let mut frame = Vec::new();
    for message in messages {
        frame.push(0u8);
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
    }
    let mut child = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "--http2-prior-knowledge", "-H", "content-type: application/grpc"])
        .args(["-H", "te: trailers", "-H", &format!("authorization: Bearer {}", common::TOKEN)])
        .args(["--data-binary", "@-", &format!("http://{}/{method}", oortd.addr)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&frame).unwrap();
    let headers = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).to_lowercase();
    headers.lines().find_map(|l| l.strip_prefix("grpc-status: ")).unwrap_or("none").trim().to_string()
}

#[tokio::test]
async fn malformed_protobuf_and_invalid_utf8_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    // Field 1 (sql), length 200, but only 3 bytes follow.
    assert_eq!(grpc_status_of(&oortd, "oort.v1.StreamService/CreateStream", &[0x0a, 0xc8, 0x01, 1, 2, 3]), "3");
    // Field 1 (sql) holding bytes that are not UTF-8.
    assert_eq!(grpc_status_of(&oortd, "oort.v1.StreamService/CreateStream", &[0x0a, 0x02, 0xff, 0xfe]), "3");
    // In a Publish stream: a good message, then one that does not decode.
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let good: &[u8] = &[0x0a, 0x01, b's', 0x12, 0x00]; // stream "s", an empty event
    let truncated: &[u8] = &[0x0a, 0xc8, 0x01, 1, 2, 3];
    assert_eq!(grpc_status_of_stream(&oortd, "oort.v1.EventService/Publish", &[good, truncated]), "3");
    // A well-formed request still gets its own answer (NOT_FOUND, 5).
    assert_eq!(grpc_status_of(&oortd, "oort.v1.StreamService/GetStream", &[0x0a, 0x01, b'x']), "5");
}

#[tokio::test]
async fn idle_http_push_connections_are_bounded_and_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oort.toml"), "http_push_max_connections = 4\nhttp_push_read_timeout_ms = 500\n")
        .unwrap();
    let data = dir.path().join("data");
    let mut command = Oortd::command();
    command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "127.0.0.1:0", "--config"]);
    command.arg(dir.path().join("oort.toml")).arg("--data-dir").arg(&data);
    let oortd = Oortd::launch(command, &data).await;
    let push = oortd.push_addr.clone().unwrap();

    // Forty clients connect and send nothing: four are served, the rest wait in the backlog.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(&push).await.unwrap());
    }
    oortd.streams().await.list_streams(ListStreamsRequest::default()).await.expect("gRPC is not locked out");
    // The served ones are closed for sending nothing; the others get their turn and are closed too.
    let started = std::time::Instant::now();
    for mut stream in idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection stays open: {read:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // A kept-alive connection that goes idle after a request is closed too.
    let mut stream = tokio::net::TcpStream::connect(&push).await.unwrap();
    stream.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a kept-alive idle connection stays open: {read:?}");
}

#[tokio::test]
async fn a_tail_reader_that_falls_behind_is_told_and_the_loss_is_counted() {
    use oort_proto::v1::GetRuleStatusRequest;
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of results may wait for a reader; the default is 64 MiB.
    let oortd = Oortd::start_with_config(dir.path(), "max_tail_buffer_bytes = 1048576\n").await;
    let sql = r#"CREATE STREAM s () WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut all = rule("all", "SELECT * FROM s".into());
    all.rule.as_mut().unwrap().actions = vec![Action { r#type: "grpc".into(), props: None }];
    oortd.rules().await.create_rule(all).await.unwrap();
    let mut tail = oortd
        .rules()
        .await
        .tail_rule(TailRuleRequest { id: "all".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    // The reader reads nothing while 3,000 results of 2 KB are produced, each
    // on its own (one Publish call each): 6 MB, more than the transport holds
    // and than the tail keeps.
    let mut events = EventServiceClient::new(oortd.channel().await);
    let padding = "x".repeat(2_048);
    for i in 0..3_000 {
        let fields = [
            ("n".to_string(), Value { kind: Some(Kind::IntValue(i)) }),
            ("pad".to_string(), Value { kind: Some(Kind::StringValue(padding.clone())) }),
        ]
        .into();
        let request = PublishRequest {
            stream: "s".into(),
            event: Some(Event { fields, ..Default::default() }),
            ..Default::default()
        };
        events.publish(tokio_stream::once(request)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut rows = 0u64;
    let status = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), tail.message()).await.expect("the stream moves")
        {
            Ok(Some(_)) => rows += 1,
            Ok(None) => panic!("the stream ended without saying what was lost, after {rows} rows"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(status.message().contains("missed") && status.message().contains("reopen the tail"), "{status:?}");
    let missed = oortd
        .rules()
        .await
        .get_rule_status(GetRuleStatusRequest { id: "all".into() })
        .await
        .unwrap()
        .into_inner()
        .tail_missed_total;
    assert!(missed > 0 && rows + missed <= 3_000, "rows {rows}, missed {missed}");
}

/// Counters of one operator of a rule, from GetRuleStatus.
async fn operator(oortd: &Oortd, rule: &str, name: &str) -> oort_proto::v1::OperatorStatus {
    let status = oortd
        .rules()
        .await
        .get_rule_status(oort_proto::v1::GetRuleStatusRequest { id: rule.into() })
        .await
        .unwrap()
        .into_inner();
    status.operators.into_iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{rule} has no {name}"))
}

/// The counters of one operator of a rule once `done` holds of them, or as
/// they are after 60 s.
async fn operator_when(
    oortd: &Oortd,
    rule: &str,
    name: &str,
    done: impl Fn(&oort_proto::v1::OperatorStatus) -> bool,
) -> oort_proto::v1::OperatorStatus {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let op = operator(oortd, rule, name).await;
        if done(&op) || tokio::time::Instant::now() > deadline {
            return op;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_rule_with_a_slow_sink_drops_its_own_events_and_never_holds_back_its_sibling() {
    use oort_proto::v1::{BufferFull, RuleOptions};
    // A REST endpoint that answers in 100 ms.
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let sql = r#"CREATE STREAM s (n BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let mut slow = rule("slow", "SELECT n FROM s".into());
    let props = prost_types::Struct {
        fields: [(
            "url".to_string(),
            prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(slow_url)) },
        )]
        .into(),
    };
    slow.rule.as_mut().unwrap().actions = vec![Action { r#type: "rest".into(), props: Some(props) }];
    oortd.rules().await.create_rule(slow).await.unwrap();
    // The sibling must lose nothing: it blocks rather than drops, so any hold
    // on the publishers would come from it alone.
    let mut sibling = rule("sibling", "SELECT n FROM s WHERE n >= 0".into());
    sibling.rule.as_mut().unwrap().actions = vec![Action { r#type: "grpc".into(), props: None }];
    sibling.rule.as_mut().unwrap().options =
        Some(RuleOptions { buffer_full: BufferFull::Block as i32, ..Default::default() });
    oortd.rules().await.create_rule(sibling).await.unwrap();

    // 20,000 events: at 100 ms a result, the slow rule alone would take 33 minutes.
    const EVENTS: u64 = 20_000;
    let requests: Vec<PublishRequest> = (0..EVENTS / 1_000)
        .map(|chunk| {
            let rows: Vec<String> = (chunk * 1_000..(chunk + 1) * 1_000).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
            PublishRequest { stream: "s".into(), json: format!("[{}]", rows.join(",")).into(), ..Default::default() }
        })
        .collect();
    let mut events = EventServiceClient::new(oortd.channel().await);
    let publishing = events.publish(tokio_stream::iter(requests));
    tokio::time::timeout(std::time::Duration::from_secs(60), publishing)
        .await
        .expect("the slow rule does not hold the publisher back")
        .unwrap();
    let filter = operator_when(&oortd, "sibling", "op_filter_0", |op| op.records_out_total == EVENTS).await;
    assert_eq!(filter.records_out_total, EVENTS, "the sibling got every event");
    let source = operator(&oortd, "slow", "source_s_0").await;
    assert!(source.records_dropped_total > EVENTS / 2, "the slow rule dropped its own events: {source:?}");
    assert!(source.records_in_total + source.records_dropped_total <= EVENTS, "{source:?}");
    assert_eq!(operator(&oortd, "sibling", "source_s_0").await.records_dropped_total, 0);
}

#[tokio::test]
async fn a_window_that_outgrows_its_byte_budget_drops_its_oldest_rows_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start_with_config(dir.path(), "max_window_state_bytes = 262144\n").await;
    let sql = r#"CREATE STREAM s (n BIGINT, pad STRING) WITH (TYPE="grpc", DATASOURCE="s")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    // An hour-long window: it holds every row for as long as the test runs.
    let mut hour = rule("hour", "SELECT count(*) AS c FROM s GROUP BY TUMBLINGWINDOW(hh, 1)".into());
    hour.rule.as_mut().unwrap().options = Some(oort_proto::v1::RuleOptions {
        buffer_full: oort_proto::v1::BufferFull::Block as i32,
        ..Default::default()
    });
    oortd.rules().await.create_rule(hour).await.unwrap();
    // 4,000 rows of about 1 KB: 4 MB, sixteen times the budget.
    let pad = "x".repeat(1_000);
    let rows: Vec<String> = (0..4_000).map(|n| format!(r#"{{"n":{n},"pad":"{pad}"}}"#)).collect();
    let request =
        PublishRequest { stream: "s".into(), json: format!("[{}]", rows.join(",")).into(), ..Default::default() };
    EventServiceClient::new(oortd.channel().await).publish(tokio_stream::once(request)).await.unwrap();
    let window = operator_when(&oortd, "hour", "op_window_0", |op| op.records_in_total == 4_000).await;
    assert_eq!(window.records_in_total, 4_000, "{window:?}");
    // About 1.2 KB a row in memory: the window keeps about 200 of them.
    assert!(window.buffer_length > 50 && window.buffer_length < 300, "{window:?}");
    assert_eq!(window.records_dropped_total, 4_000 - window.buffer_length, "{window:?}");
    assert!(window.last_exception.contains("max_window_state_bytes"), "{window:?}");
}

#[tokio::test]
async fn a_large_file_is_streamed_not_read_whole() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start_with_config(dir.path(), "").await;
    // 1,000,000 JSON lines, 60 MB: read whole, as before, this took 700 MB.
    let path = dir.path().join("data/files/big.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for n in 0..1_000_000 {
        writeln!(file, r#"{{"n":{n},"device":"sensor-{}","t":{}.5,"ok":true}}"#, n % 1000, n % 40).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let idle = oortd.memory_kib("VmRSS");
    let sql = r#"CREATE STREAM big (n BIGINT, t FLOAT) WITH (TYPE="file", DATASOURCE="big.jsonl")"#;
    oortd.streams().await.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    oortd.rules().await.create_rule(rule("big", "SELECT n FROM big WHERE t > 100".into())).await.unwrap();
    let filter = operator_when(&oortd, "big", "op_filter_0", |op| op.records_in_total == 1_000_000).await;
    assert_eq!(filter.records_in_total, 1_000_000, "{filter:?}");
    let grown_mib = oortd.memory_kib("VmHWM").saturating_sub(idle) / 1024;
    assert!(grown_mib < 100, "reading the file grew the server by {grown_mib} MiB");
}
