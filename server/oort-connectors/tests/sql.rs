//! The `sql` source, sink and lookup tables against a real PostgreSQL server
//! (Debian's package, a fresh cluster per test on a free port) and real
//! SQLite files.

use std::path::Path;
use std::sync::Arc;

use oort_connectors::connections::{ConnectionDef, Connections};
use oort_connectors::sql::{SqlContext, SqlSinkFactory, SqlSourceFactory};
use oort_connectors::testing::{PG_PASSWORD, PostgresServer, WAIT, sqlite_execute, sqlite_rows};
use oort_engine::{
    Guarantee, Map, Payload, SinkConfig, SinkFactory, SourceConfig, SourceEvent, SourceFactory, SourceOutput, Value,
};
use oort_policy::{EgressPolicy, FileRoots};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// A context with one connection `db` to `url`, declared (trusted) or not.
fn context(url: &str, password: Option<&str>, declared: bool, root: &Path) -> SqlContext {
    let connections = Connections::new();
    let mut props = json!({"url": url});
    if let Some(password) = password {
        props["password"] = json!(password);
    }
    let props = props.as_object().cloned().unwrap();
    connections.put(ConnectionDef { name: "db".into(), kind: "sql".into(), props, declared });
    SqlContext {
        connections,
        files: Arc::new(FileRoots::create([root.to_path_buf()]).unwrap()),
        egress: Arc::new(EgressPolicy::allow_all()),
    }
}

fn row(pairs: &[(&str, Value)]) -> Map {
    pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
}

fn sink_config(props: serde_json::Value) -> SinkConfig {
    SinkConfig {
        sink_type: "sql".into(),
        props: props.as_object().cloned().unwrap(),
        rule_id: "r".into(),
        ..Default::default()
    }
}

fn stream_config(
    table: &str,
    options: &[(&str, &str)],
    qos: Guarantee,
    resume: Option<(u64, Vec<u8>)>,
) -> SourceConfig {
    let mut options: std::collections::BTreeMap<String, String> =
        options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    options.insert("CONF_KEY".into(), "db".into());
    SourceConfig {
        stream: "s".into(),
        datasource: table.into(),
        options,
        rule_id: "r".into(),
        qos,
        resume_after: resume.as_ref().map(|(p, _)| *p),
        resume_state: resume.map(|(_, s)| s),
        marks_partition_starts: false,
    }
}

/// A running source and what it hands on.
struct Running {
    events: mpsc::Receiver<SourceEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), oort_engine::ConnectorError>>,
}

impl Running {
    fn start(factory: &SqlSourceFactory, config: &SourceConfig) -> Self {
        let source = factory.build(config).unwrap();
        let (out, events) = SourceOutput::channel(64);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(out, cancel.clone()));
        Running { events, cancel, task }
    }

    /// The next `n` events' field `field`.
    async fn take(&mut self, n: usize, field: &str) -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < n {
            let event = timeout(WAIT, self.events.recv()).await.expect("in time").expect("running");
            let Payload::Map(map) = &event.payload else { panic!("rows are maps") };
            got.push(map.get(field).cloned().unwrap_or_default());
        }
        got
    }

    async fn stop(self) {
        self.cancel.cancel();
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

#[tokio::test]
async fn postgres_rows_are_upserted_updated_and_deleted_with_their_column_types() {
    let server = PostgresServer::start().await;
    server
        .execute(
            "CREATE TABLE totals (id text PRIMARY KEY, total numeric, at timestamptz, tags jsonb, raw bytea, n int4);",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let factory = SqlSinkFactory(context(&server.url(), Some(PG_PASSWORD), false, dir.path()));
    let mut sink =
        factory.build(&sink_config(json!({"connectionSelector": "db", "table": "totals", "keyField": "id"}))).unwrap();
    timeout(WAIT, sink.open()).await.unwrap().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap();
    let first = row(&[
        ("id", Value::from("a")),
        ("total", Value::Float(1.5)),
        ("at", Value::Timestamp(at)),
        ("tags", Value::list(vec![Value::from("x")])),
        ("raw", Value::Bytes(vec![0xde, 0xad].into())),
        ("n", Value::Int(7)),
    ]);
    // The same result twice (a retry): stored once.
    for _ in 0..2 {
        timeout(WAIT, sink.collect(std::slice::from_ref(&first))).await.unwrap().unwrap();
    }
    let second = row(&[("id", Value::from("a")), ("total", Value::Float(2.5)), ("n", Value::Int(8))]);
    timeout(WAIT, sink.collect(&[second, row(&[("id", Value::from("b")), ("n", Value::Int(1))])]))
        .await
        .unwrap()
        .unwrap();
    let rows = server.rows("SELECT id, total, at, tags, encode(raw, 'hex') AS raw, n FROM totals ORDER BY id").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["total"], json!(2.5));
    assert_eq!(rows[0]["n"], json!(8));
    assert_eq!(rows[0]["tags"], json!(["x"]), "the upsert changed only the row's fields");
    assert_eq!(rows[0]["raw"], json!("dead"));
    assert!(rows[0]["at"].as_str().unwrap().starts_with("2026-12-07T10:00:00"), "{rows:?}");

    // A rowkind field deletes and updates by the key.
    let mut kinds = factory
        .build(&sink_config(
            json!({"connectionSelector": "db", "table": "totals", "keyField": "id", "rowkindField": "op"}),
        ))
        .unwrap();
    let delete = row(&[("id", Value::from("b")), ("op", Value::from("delete"))]);
    let update = row(&[("id", Value::from("a")), ("op", Value::from("update")), ("n", Value::Int(9))]);
    timeout(WAIT, kinds.collect(&[delete, update])).await.unwrap().unwrap();
    let rows = server.rows("SELECT id, n FROM totals ORDER BY id").await;
    assert_eq!(rows, [json!({"id": "a", "n": 9})]);

    // A value the column cannot take fails the whole result: nothing of it is written.
    let bad = [
        row(&[("id", Value::from("c")), ("n", Value::Int(1))]),
        row(&[("id", Value::from("d")), ("n", Value::from("many"))]),
    ];
    let error = timeout(WAIT, kinds.collect(&bad)).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("invalid input syntax"), "{error}");
    assert_eq!(server.rows("SELECT id FROM totals").await.len(), 1, "one transaction per result");
}

#[tokio::test]
async fn postgres_tables_are_read_incrementally_and_a_replay_resumes_after_its_checkpoint() {
    let server = PostgresServer::start().await;
    server
        .execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, item text, at timestamp DEFAULT now()); \
             INSERT INTO orders (item) SELECT 'item-' || g FROM generate_series(1, 25) g;",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let factory = SqlSourceFactory::new(context(&server.url(), Some(PG_PASSWORD), true, dir.path()));
    let options = [("INDEX_FIELD", "id"), ("INDEX_VALUE", "5"), ("LIMIT", "10"), ("INTERVAL", "50")];
    let config = stream_config("orders", &options, Guarantee::AtLeastOnce, None);
    let hold = factory.positions(&config).unwrap().expect("a hold at qos 1");
    let mut running = Running::start(&factory, &config);
    // Pages of 10 follow each other at once: rows 6 to 25.
    let ids = running.take(20, "id").await;
    assert_eq!(ids, (6..=25).map(Value::Int).collect::<Vec<_>>());
    server.execute("INSERT INTO orders (item) VALUES ('late');").await;
    assert_eq!(running.take(1, "item").await, [Value::from("late")]);
    running.stop().await;

    // A checkpoint covering the 12th event saves id 17: the replay starts at 18.
    let state = hold.resume_state(12).expect("an index value");
    hold.release(12);
    drop(hold);
    let config = stream_config("orders", &options, Guarantee::AtLeastOnce, Some((12, state)));
    let _hold = factory.positions(&config).unwrap().unwrap();
    let mut running = Running::start(&factory, &config);
    assert_eq!(running.take(3, "id").await, [Value::Int(18), Value::Int(19), Value::Int(20)]);
    running.stop().await;

    // A timestamp index, compared as the column's own type.
    let by_time = [("INDEX_FIELD", "at"), ("INDEX_VALUE", "2000-01-01 00:00:00"), ("LIMIT", "100")];
    let mut running = Running::start(&factory, &stream_config("orders", &by_time, Guarantee::AtMostOnce, None));
    assert_eq!(running.take(26, "id").await.len(), 26);
    running.stop().await;
}

#[tokio::test]
async fn lookups_select_the_rows_of_a_key_in_postgres_and_sqlite() {
    let server = PostgresServer::start().await;
    server.execute("CREATE TABLE customers (id int8 PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    sqlite_execute(&file, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');").await;
    let table = |url: &str, password| {
        let factory = SqlSourceFactory::new(context(url, password, false, dir.path()));
        let mut config = stream_config("customers", &[], Guarantee::AtMostOnce, None);
        config.options.insert("KIND".into(), "lookup".into());
        factory.lookup(&config).unwrap().unwrap()
    };
    for lookup in [table(&server.url(), Some(PG_PASSWORD)), table("sqlite:shop.db", None)] {
        let rows = timeout(WAIT, lookup.lookup(&["id".into()], &[Value::Int(2)])).await.unwrap().unwrap();
        assert_eq!(rows, [row(&[("id", Value::Int(2)), ("name", Value::from("bob"))])]);
        let none = timeout(WAIT, lookup.lookup(&["id".into()], &[Value::Int(3)])).await.unwrap().unwrap();
        assert!(none.is_empty());
        let text_key = timeout(WAIT, lookup.lookup(&["id".into()], &[Value::from("1")])).await.unwrap().unwrap();
        assert_eq!(text_key.len(), 1, "a key of another type is cast to the column's");
    }
    // A key with more rows than a lookup gives fails, rather than being cut short.
    sqlite_execute(&file, "CREATE TABLE many (k INTEGER); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001) INSERT INTO many SELECT 7 FROM n;").await;
    let factory = SqlSourceFactory::new(context("sqlite:shop.db", None, false, dir.path()));
    let mut config = stream_config("many", &[], Guarantee::AtMostOnce, None);
    config.options.insert("KIND".into(), "lookup".into());
    let many = factory.lookup(&config).unwrap().unwrap();
    let error = timeout(WAIT, many.lookup(&["k".into()], &[Value::Int(7)])).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("more than 10000 rows"), "{error}");
}

#[tokio::test]
async fn sqlite_files_are_read_written_and_kept_inside_the_file_roots() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plant.db");
    sqlite_execute(
        &file,
        "CREATE TABLE readings (id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, device TEXT); \
         CREATE TABLE latest (device TEXT PRIMARY KEY, t REAL);",
    )
    .await;
    let context = context("sqlite:plant.db", None, false, dir.path());
    let sink = SqlSinkFactory(context.clone());
    let mut readings = sink
        .build(&sink_config(json!({"connectionSelector": "db", "table": "readings", "fields": ["t", "device"]})))
        .unwrap();
    let mut latest = sink
        .build(&sink_config(
            json!({"url": "sqlite:plant.db", "table": "latest", "keyField": "device", "tableDataField": "rows"}),
        ))
        .unwrap();
    for i in 0..5 {
        let reading = row(&[
            ("t", Value::Float(20.0 + f64::from(i))),
            ("device", Value::from("d1")),
            ("extra", Value::Int(i.into())),
        ]);
        timeout(WAIT, readings.collect(std::slice::from_ref(&reading))).await.unwrap().unwrap();
        let nested = row(&[(
            "rows",
            Value::list(vec![Value::map(row(&[("device", Value::from("d1")), ("t", Value::Float(f64::from(i)))]))]),
        )]);
        timeout(WAIT, latest.collect(&[nested])).await.unwrap().unwrap();
    }
    assert_eq!(sqlite_rows(&file, "SELECT device, t FROM latest").await, [json!({"device": "d1", "t": 4.0})]);

    let source = SqlSourceFactory::new(context);
    let mut running = Running::start(
        &source,
        &stream_config("readings", &[("INDEX_FIELD", "id"), ("INTERVAL", "50")], Guarantee::AtMostOnce, None),
    );
    let temperatures = running.take(5, "t").await;
    assert_eq!(temperatures, (20..25).map(|t| Value::Float(f64::from(t))).collect::<Vec<_>>());
    sqlite_execute(&file, "INSERT INTO readings (t, device) VALUES (99.5, 'd2');").await;
    assert_eq!(running.take(1, "device").await, [Value::from("d2")]);
    running.stop().await;

    // A client's connection may not name a file outside the roots; a declared one may.
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("x.db");
    sqlite_execute(&elsewhere, "CREATE TABLE t (a INTEGER);").await;
    let url = format!("sqlite:{}", elsewhere.display());
    let mut refused = SqlSinkFactory(self::context(&url, None, false, dir.path()))
        .build(&sink_config(json!({"connectionSelector": "db", "table": "t"})))
        .unwrap();
    let error = timeout(WAIT, refused.open()).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("outside"), "{error}");
    let mut trusted = SqlSinkFactory(self::context(&url, None, true, dir.path()))
        .build(&sink_config(json!({"connectionSelector": "db", "table": "t"})))
        .unwrap();
    timeout(WAIT, trusted.collect(&[row(&[("a", Value::Int(1))])])).await.unwrap().unwrap();
}

#[tokio::test]
async fn names_are_checked_and_hosts_pass_the_egress_policy() {
    let dir = tempfile::tempdir().unwrap();
    let factory = SqlSinkFactory(context("sqlite:a.db", None, false, dir.path()));
    let injected = factory.build(&sink_config(json!({"connectionSelector": "db", "table": "t; DROP TABLE x"})));
    assert!(injected.err().unwrap().to_string().contains("not an identifier"));
    let both = factory.build(&sink_config(json!({"connectionSelector": "db", "url": "sqlite:b.db", "table": "t"})));
    assert!(both.err().unwrap().to_string().contains("belongs to the connection"));

    let mut closed = context("postgres://u@127.0.0.1:5/db", None, false, dir.path());
    closed.egress = Arc::new(EgressPolicy::default());
    let mut sink =
        SqlSinkFactory(closed).build(&sink_config(json!({"connectionSelector": "db", "table": "t"}))).unwrap();
    let error = timeout(WAIT, sink.open()).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("is refused: a loopback address"), "{error}");
}
