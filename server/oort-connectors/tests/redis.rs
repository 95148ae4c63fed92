//! The `redis` sink against a real redis-server (Debian's package), started
//! by each test on a free port of 127.0.0.1 and killed at its end.

use std::sync::Arc;

use oort_connectors::connections::{ConnectionDef, Connections, LinkState};
use oort_connectors::redis::RedisSinkFactory;
use oort_connectors::testing::{RedisServer, WAIT};
use oort_engine::{Map, SinkConfig, SinkFactory, Value};
use oort_policy::EgressPolicy;
use redis::AsyncCommands;
use tokio::time::timeout;

fn factory(server: &RedisServer) -> RedisSinkFactory {
    let connections = Connections::new();
    let props = serde_json::json!({"addr": server.addr(), "password": "s3cret", "db": 1}).as_object().cloned().unwrap();
    connections.put(ConnectionDef { name: "cache".into(), kind: "redis".into(), props, declared: true });
    RedisSinkFactory { connections, egress: Arc::new(EgressPolicy::allow_all()), files: files(&std::env::temp_dir()) }
}

fn files(root: &std::path::Path) -> Arc<oort_policy::FileRoots> {
    Arc::new(oort_policy::FileRoots::create([root.to_path_buf()]).unwrap())
}

fn config(props: serde_json::Value) -> SinkConfig {
    let serde_json::Value::Object(props) = props else { panic!("an object") };
    SinkConfig { sink_type: "redis".into(), props, rule_id: "r1".into(), ..Default::default() }
}

fn row(pairs: &[(&str, Value)]) -> Map {
    pairs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
}

#[tokio::test]
async fn rows_are_stored_by_field_as_strings_lists_or_one_key_per_field() {
    let server = RedisServer::start(Some("s3cret")).await;
    let factory = factory(&server);
    let client = redis::Client::open(format!("redis://:s3cret@{}/1", server.addr())).unwrap();
    let mut check = client.get_multiplexed_async_connection().await.unwrap();

    let mut strings = factory
        .build(&config(serde_json::json!({"connectionSelector": "cache", "field": "id", "expiration": 600})))
        .unwrap();
    let rows = [
        row(&[("id", Value::from("a")), ("t", Value::Int(1))]),
        row(&[("id", Value::from("b")), ("t", Value::Int(2))]),
    ];
    timeout(WAIT, strings.collect(&rows)).await.unwrap().unwrap();
    let a: String = check.get("a").await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&a).unwrap(), serde_json::json!({"id": "a", "t": 1}));
    let ttl: i64 = check.ttl("b").await.unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    let link = factory.connections.rule_clients("r1");
    assert_eq!(link[0].state, LinkState::Connected);

    // A row kind of delete removes its key.
    let mut kinds = factory
        .build(&config(serde_json::json!({"connectionSelector": "cache", "field": "id", "rowkindField": "op"})))
        .unwrap();
    timeout(WAIT, kinds.collect(&[row(&[("id", Value::from("a")), ("op", Value::from("delete"))])]))
        .await
        .unwrap()
        .unwrap();
    let gone: Option<String> = check.get("a").await.unwrap();
    assert_eq!(gone, None);

    let mut list = factory
        .build(&config(serde_json::json!({"connectionSelector": "cache", "key": "events", "dataType": "list"})))
        .unwrap();
    timeout(WAIT, list.collect(&rows)).await.unwrap().unwrap();
    let pushed: Vec<String> = check.lrange("events", 0, -1).await.unwrap();
    assert_eq!(pushed.len(), 2);
    assert!(pushed[0].contains("\"b\""), "LPUSH puts the last first: {pushed:?}");

    let mut multiple =
        factory.build(&config(serde_json::json!({"connectionSelector": "cache", "keyType": "multiple"}))).unwrap();
    timeout(WAIT, multiple.collect(&[row(&[("temperature", Value::Float(21.5)), ("site", Value::from("paris"))])]))
        .await
        .unwrap()
        .unwrap();
    let (temperature, site): (String, String) =
        (check.get("temperature").await.unwrap(), check.get("site").await.unwrap());
    assert_eq!((temperature.as_str(), site.as_str()), ("21.5", "paris"));
}

#[tokio::test]
async fn a_wrong_password_or_a_missing_field_is_an_error() {
    let server = RedisServer::start(Some("other")).await;
    let factory = factory(&server);
    let mut sink = factory.build(&config(serde_json::json!({"connectionSelector": "cache", "field": "id"}))).unwrap();
    let error =
        timeout(WAIT, sink.collect(&[row(&[("id", Value::from("a"))])])).await.unwrap().unwrap_err().to_string();
    assert!(error.to_lowercase().contains("auth") || error.contains("WRONGPASS"), "{error}");
    assert!(matches!(factory.connections.status("cache").state, LinkState::Disconnected(_)));

    let no_key = factory.build(&config(serde_json::json!({"connectionSelector": "cache"})));
    assert!(no_key.err().unwrap().to_string().contains("give field"));
    let own = factory.build(&config(serde_json::json!({"connectionSelector": "cache", "addr": "h:1", "key": "k"})));
    assert!(own.err().unwrap().to_string().contains("belongs to the connection"));
}

#[tokio::test]
async fn a_server_over_tls_is_written_and_looked_up() {
    let certs = tempfile::tempdir().unwrap();
    oort_connectors::testing::certificates(certs.path(), "client");
    let server = RedisServer::start_tls(certs.path()).await;
    let connections = Connections::new();
    let props = serde_json::json!({"addr": server.addr(), "rootCaPath": "ca.pem"}).as_object().cloned().unwrap();
    connections.put(ConnectionDef { name: "cache".into(), kind: "redis".into(), props, declared: false });
    let egress = Arc::new(EgressPolicy::allow_all());
    let sinks = RedisSinkFactory {
        connections: Arc::clone(&connections),
        egress: Arc::clone(&egress),
        files: files(certs.path()),
    };
    let mut sink = sinks.build(&config(serde_json::json!({"connectionSelector": "cache", "field": "id"}))).unwrap();
    timeout(WAIT, sink.collect(&[row(&[("id", Value::from("a")), ("t", Value::Int(1))])])).await.unwrap().unwrap();
    let tables = oort_connectors::redis::RedisSourceFactory { connections, egress, files: files(certs.path()) };
    let table = oort_engine::SourceConfig {
        stream: "t".into(),
        datasource: "0".into(),
        options: [("KIND".to_owned(), "lookup".to_owned()), ("CONF_KEY".to_owned(), "cache".to_owned())].into(),
        rule_id: "r".into(),
        ..Default::default()
    };
    let lookup = oort_engine::SourceFactory::lookup(&tables, &table).unwrap().unwrap();
    let rows = timeout(WAIT, lookup.lookup(&["id".into()], &[Value::from("a")])).await.unwrap().unwrap();
    assert_eq!(rows, [row(&[("id", Value::from("a")), ("t", Value::Int(1))])]);

    // Without the CA, the server's certificate is not trusted.
    let untrusted = Connections::new();
    let props = serde_json::json!({"addr": server.addr(), "tls": true}).as_object().cloned().unwrap();
    untrusted.put(ConnectionDef { name: "cache".into(), kind: "redis".into(), props, declared: false });
    let sinks = RedisSinkFactory {
        connections: untrusted,
        egress: Arc::new(EgressPolicy::allow_all()),
        files: files(certs.path()),
    };
    let mut sink = sinks.build(&config(serde_json::json!({"connectionSelector": "cache", "field": "id"}))).unwrap();
    let error = timeout(WAIT, sink.collect(&[row(&[("id", Value::from("b"))])])).await.unwrap().unwrap_err();
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
}
