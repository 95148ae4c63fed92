//! Tests of the parent module.

use super::*;
use serde_json::json;

fn encoder(props: serde_json::Value) -> Result<SinkEncoder, ConnectorError> {
    match props {
        serde_json::Value::Object(map) => SinkEncoder::from_props(&map),
        _ => panic!("props must be an object"),
    }
}

fn row(json: serde_json::Value) -> Map {
    match oort_engine::json::json_to_value(&json) {
        Value::Map(map) => Arc::unwrap_or_clone(map),
        other => panic!("not an object: {other:?}"),
    }
}

fn rows() -> Vec<Map> {
    vec![row(json!({"a": 1, "b": "x", "c": 1.5})), row(json!({"a": 2, "b": "y", "c": null}))]
}

fn texts(payloads: Vec<Vec<u8>>) -> Vec<String> {
    payloads.into_iter().map(|p| String::from_utf8(p).unwrap()).collect()
}

fn config_error(props: serde_json::Value) -> String {
    match encoder(props) {
        Err(ConnectorError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn default_is_one_json_array_per_result() {
    let enc = encoder(json!({})).unwrap();
    assert!(!enc.send_single() && !enc.has_template() && *enc.format() == Format::Json);
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"[{"a":1,"b":"x","c":1.5},{"a":2,"b":"y","c":null}]"#]);
    assert_eq!(texts(enc.encode(&[]).unwrap()), vec!["[]"]);
}

#[test]
fn other_props_are_ignored() {
    let enc = encoder(json!({"url": "http://x", "path": 3, "bufferLength": 1024, "sendSingle": true})).unwrap();
    assert!(enc.send_single());
}

#[test]
fn send_single_gives_one_object_per_row() {
    let enc = encoder(json!({"sendSingle": true})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"{"a":1,"b":"x","c":1.5}"#, r#"{"a":2,"b":"y","c":null}"#]);
    assert!(enc.encode(&[]).unwrap().is_empty());
}

#[test]
fn omit_if_empty_drops_empty_results() {
    let enc = encoder(json!({"omitIfEmpty": true})).unwrap();
    assert!(enc.encode(&[]).unwrap().is_empty());
    assert_eq!(enc.encode(&rows()).unwrap().len(), 1);
}

#[test]
fn fields_keep_the_given_order_and_fill_missing_with_null() {
    let enc = encoder(json!({"fields": ["c", "a", "zz"]})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"[{"c":1.5,"a":1,"zz":null},{"c":null,"a":2,"zz":null}]"#]);
    let enc = encoder(json!({"fields": ["b"], "sendSingle": true})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"{"b":"x"}"#, r#"{"b":"y"}"#]);
}

#[test]
fn data_field_extracts_a_field() {
    let data = vec![row(json!({"tele": {"h": 80, "t": 31, "id": 1}, "id": 1}))];
    let enc = encoder(json!({"dataField": "tele", "sendSingle": true})).unwrap();
    assert_eq!(texts(enc.encode(&data).unwrap()), vec![r#"{"h":80,"id":1,"t":31}"#]);
    let enc = encoder(json!({"dataField": "tele", "fields": ["t", "h"]})).unwrap();
    assert_eq!(texts(enc.encode(&data).unwrap()), vec![r#"[{"t":31,"h":80}]"#]);
    let enc = encoder(json!({"dataField": "id", "sendSingle": true})).unwrap();
    assert_eq!(texts(enc.encode(&data).unwrap()), vec!["1"]);
    let enc = encoder(json!({"dataField": "id", "fields": ["x"], "sendSingle": true})).unwrap();
    assert!(matches!(enc.encode(&data), Err(ConnectorError::External(m)) if m.contains("bigint")));
}

#[test]
fn template_sees_the_row_with_send_single() {
    let enc = encoder(json!({
        "sendSingle": true,
        "dataTemplate": r#"{"v": {{ a }}, "s": "{{ b }}", "c": {{ c }}, "all": {{ row | tojson }}}"#,
    }))
    .unwrap();
    assert_eq!(
        texts(enc.encode(&rows()).unwrap()),
        vec![
            r#"{"v": 1, "s": "x", "c": 1.5, "all": {"a":1,"b":"x","c":1.5}}"#,
            r#"{"v": 2, "s": "y", "c": null, "all": {"a":2,"b":"y","c":null}}"#,
        ]
    );
}

#[test]
fn template_sees_rows_and_data_without_send_single() {
    let enc = encoder(json!({
            "dataTemplate": "{% for r in rows %}{{ r.b }}{% if not loop.last %},{% endif %}{% endfor %}|{{ data[0].a }}|{{ rows | length }}",
        }))
        .unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec!["x,y|1|2"]);
}

#[test]
fn a_field_named_row_wins_over_the_whole_row() {
    let enc = encoder(json!({"sendSingle": true, "dataTemplate": "{{ row }}"})).unwrap();
    assert_eq!(texts(enc.encode(&[row(json!({"row": 7}))]).unwrap()), vec!["7"]);
}

#[test]
fn template_values_look_like_json_output() {
    let mut r = Map::new();
    r.insert("bin".into(), Value::Bytes(b"hi"[..].into()));
    r.insert("ok".into(), Value::Bool(true));
    r.insert("tags".into(), Value::list(vec![Value::from("p"), Value::Int(2)]));
    let enc = encoder(json!({"sendSingle": true, "dataTemplate": "{{ bin }} {{ ok }} {{ tags[1] }} {{ missing }}."}))
        .unwrap();
    assert_eq!(texts(enc.encode(&[r]).unwrap()), vec!["aGk= true 2 ."]);
    // No HTML escaping.
    let enc = encoder(json!({"sendSingle": true, "dataTemplate": "{{ b }}"})).unwrap();
    assert_eq!(texts(enc.encode(&[row(json!({"b": "<a&b>"}))]).unwrap()), vec!["<a&b>"]);
}

#[test]
fn template_then_fields_parses_the_output() {
    let enc = encoder(json!({
        "sendSingle": true,
        "dataTemplate": r#"{"x": {{ a * 10 }}, "y": "{{ b }}", "z": 0}"#,
        "fields": ["y", "x"],
    }))
    .unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"{"y":"x","x":10}"#, r#"{"y":"y","x":20}"#]);
    let enc = encoder(json!({"dataTemplate": "{{ rows | tojson }}", "fields": ["b"]})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"[{"b":"x"},{"b":"y"}]"#]);
    let enc = encoder(json!({"dataTemplate": r#"{"w": {"b": 1}}"#, "dataField": "w"})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec![r#"{"b":1}"#]);
    let enc = encoder(json!({"dataTemplate": "not json", "fields": ["b"]})).unwrap();
    assert!(matches!(enc.encode(&rows()), Err(ConnectorError::External(m)) if m.contains("not JSON")));
}

#[test]
fn template_errors() {
    let m = config_error(json!({"dataTemplate": "{% for r in rows %}"}));
    assert!(m.contains("invalid dataTemplate"), "{m}");
    let m = config_error(json!({"dataTemplate": "{{ a "}));
    assert!(m.contains("invalid dataTemplate"), "{m}");
    // An error while rendering shows when encoding.
    let enc = encoder(json!({"sendSingle": true, "dataTemplate": "{{ a.b.c }}"})).unwrap();
    assert!(matches!(enc.encode(&rows()), Err(ConnectorError::External(m)) if m.contains("dataTemplate")));
    // An empty template is no template.
    assert!(!encoder(json!({"dataTemplate": ""})).unwrap().has_template());
}

#[test]
fn binary_sends_the_bytes_of_the_single_field() {
    let mut r = Map::new();
    r.insert("img".into(), Value::Bytes(vec![0u8, 255, 7].into()));
    let enc = encoder(json!({"format": "binary", "sendSingle": true})).unwrap();
    assert_eq!(*enc.format(), Format::Binary);
    assert_eq!(enc.encode(std::slice::from_ref(&r)).unwrap(), vec![vec![0u8, 255, 7]]);

    let mut two = r.clone();
    two.insert("id".into(), Value::Int(1));
    let err = enc.encode(std::slice::from_ref(&two)).unwrap_err();
    assert!(matches!(&err, ConnectorError::External(m) if m.contains("exactly one field")), "{err:?}");
    // fields or dataField pick the bytes out of a wider row.
    let enc = encoder(json!({"format": "BINARY", "sendSingle": true, "fields": ["img"]})).unwrap();
    assert_eq!(enc.encode(std::slice::from_ref(&two)).unwrap(), vec![vec![0u8, 255, 7]]);
    let enc = encoder(json!({"format": "binary", "sendSingle": true, "dataField": "img"})).unwrap();
    assert_eq!(enc.encode(std::slice::from_ref(&two)).unwrap(), vec![vec![0u8, 255, 7]]);
    let enc = encoder(json!({"format": "binary", "sendSingle": true, "dataField": "id"})).unwrap();
    assert!(matches!(enc.encode(&[two]), Err(ConnectorError::External(m)) if m.contains("got bigint")));
}

#[test]
fn binary_needs_send_single_and_no_template() {
    assert!(config_error(json!({"format": "binary"})).contains("sendSingle"));
    let m = config_error(json!({"format": "binary", "sendSingle": true, "dataTemplate": "x"}));
    assert!(m.contains("dataTemplate"), "{m}");
}

#[test]
fn bad_props_are_config_errors() {
    assert!(config_error(json!({"sendSingle": "yes"})).contains("property `sendSingle`"));
    assert!(config_error(json!({"fields": "a"})).contains("property `fields`"));
    assert!(config_error(json!({"omitIfEmpty": 1, "sendSingle": true})).contains("property `omitIfEmpty`"));
    assert!(config_error(json!({"fields": ["a", ""]})).contains("entry 1"));
    assert!(config_error(json!({"format": "custom"})).contains("not supported yet"));
    assert!(config_error(json!({"format": "xml"})).contains("unknown sink format"));
    assert!(config_error(json!({"schemaId": "s.Message"})).contains("schemaId applies to format \"protobuf\""));
    assert!(config_error(json!({"compression": "gzip"})).contains("compression"));
    assert!(encoder(json!({"enableCache": true, "resendInterval": 10})).is_ok(), "the engine's, not the encoder's");
    // Empty or null values of unsupported keys are accepted, as eKuiper's defaults.
    assert!(encoder(json!({"compression": "", "encryption": null, "format": null})).is_ok());
}

#[test]
fn records_apply_data_field_and_fields() {
    let enc = encoder(json!({"fields": ["b", "a"]})).unwrap();
    let data = rows();
    let records = enc.records(&data).unwrap();
    assert_eq!(records[0], vec![("b", &Value::from("x")), ("a", &Value::Int(1))]);
    let enc = encoder(json!({})).unwrap();
    let records = enc.records(&data).unwrap();
    assert_eq!(records[1].iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["a", "b", "c"]);
    let enc = encoder(json!({"dataField": "a"})).unwrap();
    assert!(enc.records(&data).is_err());
}

#[test]
fn ekuiper_go_templates_work_as_they_are() {
    let render = |send_single: bool, template: &str| {
        let enc = encoder(json!({"sendSingle": send_single, "dataTemplate": template})).unwrap();
        texts(enc.encode(&rows()).unwrap())
    };
    assert_eq!(render(true, "{{json .}}"), [r#"{"a":1,"b":"x","c":1.5}"#, r#"{"a":2,"b":"y","c":null}"#]);
    assert_eq!(render(true, r#"{"t": {{.a}}, "s": "{{.b}}"}"#), [r#"{"t": 1, "s": "x"}"#, r#"{"t": 2, "s": "y"}"#]);
    assert_eq!(render(true, "{{if lt .a 2}}low{{else}}high{{end}}"), ["low", "high"]);
    assert_eq!(render(false, "{{range .}}{{.b}};{{end}}"), ["x;y;"]);
    assert_eq!(render(false, r#"{{index . 1 "b"}}"#), ["y"]);
    assert_eq!(render(false, "{{toJson .}}"), [r#"[{"a":1,"b":"x","c":1.5},{"a":2,"b":"y","c":null}]"#]);
    assert_eq!(render(true, "{{base64 .b}}"), ["eA==", "eQ=="]);
    assert_eq!(render(true, r#"{{prop "no_such_prop"}}"#), ["no_such_prop", "no_such_prop"], "eKuiper: the key itself");
    let e = config_error(json!({"dataTemplate": "{{.a"}));
    assert!(e.contains("Go text/template"), "{e}");
    // A template that names a variable is minijinja's, as before.
    assert_eq!(render(true, "{{ b }}-{{ a }}"), ["x-1", "y-2"]);
}

#[test]
fn delimited_joins_values_and_puts_a_results_rows_on_lines() {
    let enc = encoder(json!({"format": "delimited", "hasHeader": true, "delimiter": ";"})).unwrap();
    assert_eq!(texts(enc.encode(&rows()).unwrap()), vec!["a;b;c\n1;x;1.5\n2;y;"]);
    let single = encoder(json!({"format": "delimited", "sendSingle": true, "fields": ["c", "a"]})).unwrap();
    assert_eq!(texts(single.encode(&rows()).unwrap()), vec!["1.5,1", ",2"]);
    let nested = encoder(json!({"format": "delimited", "sendSingle": true})).unwrap();
    let with_list = row(json!({"a": [1, 2], "b": {"x": true}}));
    assert_eq!(texts(nested.encode(&[with_list]).unwrap()), vec![r#"[1,2],{"x":true}"#]);
    assert!(
        config_error(json!({"format": "delimited", "sendSingle": true, "hasHeader": true}))
            .contains("sendSingle false")
    );
}

#[test]
fn protobuf_encodes_each_row_as_a_message_of_a_registered_schema() {
    let schemas = Arc::new(oort_schema::SchemaRegistry::default());
    let proto = r#"syntax = "proto3"; message Reading { string device = 1; double t = 2; }"#;
    schemas.put(oort_schema::ProtoSchema::compile("plant", proto).unwrap());
    let config = |props: serde_json::Value| oort_engine::SinkConfig {
        props: props.as_object().cloned().unwrap(),
        schemas: Arc::clone(&schemas),
        ..Default::default()
    };
    let enc = SinkEncoder::of(&config(json!({"format": "protobuf", "schemaId": "plant.Reading", "sendSingle": true})))
        .unwrap();
    let payloads = enc.encode(&[row(json!({"device": "d1", "t": 21.5, "other": 1}))]).unwrap();
    let message = schemas.message("plant.Reading").unwrap();
    assert_eq!(oort_schema::decode(&message, &payloads[0]).unwrap(), json!({"device": "d1", "t": 21.5}));
    let error = |props| SinkEncoder::of(&config(props)).unwrap_err().to_string();
    assert!(error(json!({"format": "protobuf", "schemaId": "plant.Reading"})).contains("sendSingle"));
    assert!(error(json!({"format": "protobuf", "sendSingle": true})).contains("needs schemaId"));
    assert!(error(json!({"format": "protobuf", "schemaId": "plant.Nope", "sendSingle": true})).contains("no message"));
}
