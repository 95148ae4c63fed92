//! The schema registry end to end: a `.proto` schema registered through
//! `SchemaService`, a protobuf stream fed over HTTP push, and a rule whose
//! websocket action encodes its results by another message of the schema;
//! the schema survives a restart and cannot be deleted while in use.

mod common;

use std::time::Duration;

use common::{Oortd, action_json, code_of};
use futures::StreamExt;
use oort_proto::v1::schema_service_client::SchemaServiceClient;
use oort_proto::v1::{
    CreateRuleRequest, CreateSchemaRequest, CreateStreamRequest, DeleteSchemaRequest, GetSchemaRequest,
    ListSchemasRequest, Schema,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PLANT: &str = r#"syntax = "proto3";
package plant;
message Reading { string device = 1; double t = 2; int64 seq = 3; }
message Alert { string device = 1; double t = 2; }
"#;

#[tokio::test]
async fn protobuf_payloads_are_decoded_and_encoded_by_a_registered_schema() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut schemas = SchemaServiceClient::new(oortd.channel().await);
    let schema = Schema { name: "plant".into(), content: PLANT.into(), ..Default::default() };
    let created = schemas.create_schema(CreateSchemaRequest { schema: Some(schema) }).await.unwrap().into_inner();
    assert_eq!(created.schema.unwrap().messages, ["plant.Alert", "plant.Reading"]);
    let broken = Schema {
        name: "broken".into(),
        content: "syntax = \"proto3\"; message A { strin x = 1; }".into(),
        ..Default::default()
    };
    let (code, message) = code_of(schemas.create_schema(CreateSchemaRequest { schema: Some(broken) }).await);
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("broken.proto:1:32"), "{message}");

    let mut streams = oortd.streams().await;
    let wrong =
        r#"CREATE STREAM w () WITH (TYPE="httppush", DATASOURCE="/w", FORMAT="protobuf", SCHEMAID="plant.Nope")"#;
    let (code, message) = code_of(streams.create_stream(CreateStreamRequest { sql: wrong.into() }).await);
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("no message \"Nope\""), "{message}");
    let sql = r#"CREATE STREAM readings () WITH (TYPE="httppush", DATASOURCE="/readings", FORMAT="protobuf", SCHEMAID="plant.Reading")"#;
    streams.create_stream(CreateStreamRequest { sql: sql.into() }).await.unwrap();
    let action = action_json(
        "websocket",
        json!({"path": "/alerts", "format": "protobuf", "schemaId": "plant.Alert", "sendSingle": true}),
    );
    let rule = common::rule("hot", "SELECT device, t FROM readings WHERE t > 20 AND seq > 0", vec![action]);
    oortd.rules().await.create_rule(CreateRuleRequest { rule: Some(rule) }).await.unwrap();

    let push = oortd.push_addr.clone().unwrap();
    let (mut alerts, _) = tokio_tungstenite::connect_async(format!("ws://{push}/alerts")).await.unwrap();
    let registry = oort_schema::SchemaRegistry::default();
    registry.put(oort_schema::ProtoSchema::compile("plant", PLANT).unwrap());
    let reading = registry.message("plant.Reading").unwrap();
    let http = common::http();
    for (seq, t) in [(1, 19.5), (2, 25.0), (3, 31.5)] {
        let body = oort_schema::encode(&reading, &json!({"device": "d1", "t": t, "seq": seq})).unwrap();
        let response = http.post(format!("http://{push}/readings")).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let alert = registry.message("plant.Alert").unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(20), alerts.next()).await.expect("an alert in time");
        if let Message::Binary(bytes) = message.unwrap().unwrap() {
            got.push(oort_schema::decode(&alert, &bytes).unwrap());
        }
    }
    assert_eq!(got, [json!({"device": "d1", "t": 25.0}), json!({"device": "d1", "t": 31.5})]);

    let (code, message) = code_of(schemas.delete_schema(DeleteSchemaRequest { name: "plant".into() }).await);
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(message.contains("\"readings\"") && message.contains("\"hot\""), "{message}");

    oortd.kill9();
    let again = Oortd::start(dir.path()).await;
    let mut schemas = SchemaServiceClient::new(again.channel().await);
    let listed = schemas.list_schemas(ListSchemasRequest {}).await.unwrap().into_inner().schemas;
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["plant"]);
    let got = schemas.get_schema(GetSchemaRequest { name: "plant".into() }).await.unwrap().into_inner();
    assert_eq!(got.schema.unwrap().content, PLANT);
}
