//! The `sql` connector end to end, with a real PostgreSQL server: a table
//! read incrementally as a stream (qos 1), each order joined at join time
//! with a lookup table, and the result upserted into a third table; the
//! server killed with SIGKILL goes on after its checkpoint.

mod common;

use std::time::Duration;

use common::{Oortd, action_json};
use oort_connectors::testing::{PG_PASSWORD, PostgresServer};
use oort_proto::v1::connection_service_client::ConnectionServiceClient;
use oort_proto::v1::{
    Connection, ConnectionState, CreateConnectionRequest, CreateRuleRequest, CreateStreamRequest, GetConnectionRequest,
    GetRuleStatusRequest, RuleOptions,
};
use serde_json::json;

/// Waits until `enriched` holds `n` rows.
async fn enriched(server: &PostgresServer, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = server.rows("SELECT order_id, site, amount FROM enriched ORDER BY order_id").await;
        if rows.len() >= n {
            return rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {n} rows", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn orders_are_enriched_from_a_lookup_table_and_upserted_through_kill_9() {
    let pg = PostgresServer::start().await;
    pg.execute(
        "CREATE TABLE devices (id text PRIMARY KEY, site text); \
         INSERT INTO devices VALUES ('d1', 'north'), ('d2', 'south'); \
         CREATE TABLE orders (id bigserial PRIMARY KEY, device text, amount numeric(10, 2)); \
         CREATE TABLE enriched (order_id int8 PRIMARY KEY, site text, amount float8); \
         INSERT INTO orders (device, amount) SELECT CASE WHEN g % 2 = 0 THEN 'd1' ELSE 'd2' END, g \
           FROM generate_series(1, 50) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let props = action_json("sql", json!({"url": pg.url(), "password": PG_PASSWORD})).props;
    let connection = Connection { name: "shop".into(), r#type: "sql".into(), props, ..Default::default() };
    let mut connections = ConnectionServiceClient::new(oortd.channel().await);
    connections.create_connection(CreateConnectionRequest { connection: Some(connection) }).await.unwrap();
    let shown = connections.get_connection(GetConnectionRequest { name: "shop".into() }).await.unwrap().into_inner();
    let shown = format!("{:?}", shown.connection.unwrap().props);
    assert!(shown.contains("***") && !shown.contains(PG_PASSWORD), "{shown}");

    let mut streams = oortd.streams().await;
    for sql in [
        r#"CREATE STREAM orders () WITH (TYPE="sql", CONF_KEY="shop", DATASOURCE="orders", INDEX_FIELD="id", INTERVAL="100", LIMIT="20")"#,
        r#"CREATE TABLE devices () WITH (TYPE="sql", KIND="lookup", CONF_KEY="shop", DATASOURCE="devices", CACHE="true")"#,
    ] {
        streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    }
    let sql = "SELECT orders.id AS order_id, devices.site AS site, orders.amount AS amount \
               FROM orders INNER JOIN devices ON orders.device = devices.id";
    let action = action_json("sql", json!({"connectionSelector": "shop", "table": "enriched", "keyField": "order_id"}));
    let mut rule = common::rule("enrich", sql, vec![action]);
    rule.options = Some(RuleOptions { qos: 1, checkpoint_interval_ms: Some(200), ..Default::default() });
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    let rows = enriched(&pg, 50).await;
    assert_eq!(rows[0], json!({"order_id": 1, "site": "south", "amount": 1}));
    assert_eq!(rows[49], json!({"order_id": 50, "site": "north", "amount": 50}));
    // A checkpoint covers the 50 orders before the server dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = oortd.rules().await.get_rule_status(GetRuleStatusRequest { id: "enrich".into() }).await.unwrap();
        let status = status.into_inner();
        let source = status.operators.iter().find(|o| o.name == "source_orders_0").expect("the source");
        let connected = ConnectionState::Connected as i32;
        assert_eq!((source.connection.as_str(), source.connection_state), ("shop", connected), "{source:?}");
        if status.checkpoints.as_ref().and_then(|c| c.last.as_ref()).is_some_and(|c| c.source_position >= 50) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    oortd.kill9();
    pg.execute("INSERT INTO orders (device, amount) SELECT 'd1', g FROM generate_series(51, 70) g;").await;
    let again = Oortd::start(dir.path()).await;
    let rows = enriched(&pg, 70).await;
    assert_eq!(rows.len(), 70);
    assert_eq!(rows[69], json!({"order_id": 70, "site": "north", "amount": 70}));
    // The restarted rule read on from its checkpoint, not the table again.
    let status = again.rules().await.get_rule_status(GetRuleStatusRequest { id: "enrich".into() }).await.unwrap();
    let source = status.into_inner().operators.into_iter().find(|o| o.name == "source_orders_0").unwrap();
    assert_eq!(source.records_out_total, 20, "{source:?}");
}
