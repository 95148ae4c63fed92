//! The behaviour every [`Catalog`] must have, run against each backend by its
//! tests: the sled catalog in a temporary directory, the etcd one against a
//! real etcd.

use oort_proto::v1::{KeyedValue, Rule, Stream, Value};

use crate::catalog::Catalog;
use crate::error::{EntityKind, StoreError};
use crate::record::{PluginRecord, ServiceRecord};

/// Runs every case on `c`, which must be empty.
pub fn run(c: &dyn Catalog) {
    stream_crud(c);
    rules_pin_the_streams_they_read(c);
    plugins_and_services(c);
    keyed_state(c);
}

pub fn stream(name: &str) -> Stream {
    Stream {
        name: name.into(),
        sql: format!("CREATE STREAM {name} () WITH (DATASOURCE=\"{name}\")"),
        ..Default::default()
    }
}

pub fn rule(id: &str) -> Rule {
    Rule { id: id.into(), sql: "SELECT * FROM a".into(), ..Default::default() }
}

fn stream_crud(c: &dyn Catalog) {
    c.create_stream(&stream("b")).unwrap();
    c.create_stream(&stream("a")).unwrap();
    assert!(matches!(c.create_stream(&stream("a")), Err(StoreError::AlreadyExists { .. })));
    let names: Vec<_> = c.list_streams().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a", "b"]);
    let mut changed = stream("a");
    changed.sql = "changed".into();
    assert_eq!(c.update_stream(&changed).unwrap(), stream("a"));
    assert_eq!(c.get_stream("a").unwrap().sql, "changed");
    assert!(matches!(c.update_stream(&stream("zz")), Err(StoreError::NotFound { .. })));
    c.delete_stream("a").unwrap();
    assert!(matches!(c.get_stream("a"), Err(StoreError::NotFound { .. })));
    assert!(matches!(c.delete_stream("a"), Err(StoreError::NotFound { .. })));
}

fn rules_pin_the_streams_they_read(c: &dyn Catalog) {
    c.create_stream(&stream("a")).unwrap();
    c.create_stream(&stream("t")).unwrap();
    let err = c.create_rule(&rule("r1"), &["a".into(), "missing".into()]).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: EntityKind::Stream, ref name } if name == "missing"));
    assert!(c.list_rules().unwrap().is_empty(), "a failed create writes nothing");

    c.create_rule(&rule("r1"), &["a".into(), "t".into(), "a".into()]).unwrap();
    c.create_rule(&rule("r2"), &["a".into()]).unwrap();
    assert!(matches!(c.create_rule(&rule("r2"), &["a".into()]), Err(StoreError::AlreadyExists { .. })));
    assert_eq!(c.rules_reading("a").unwrap(), ["r1", "r2"]);
    match c.delete_stream("a") {
        Err(StoreError::InUse { users, .. }) => assert_eq!(users, ["r1", "r2"]),
        other => panic!("expected InUse, got {other:?}"),
    }

    c.update_rule(&rule("r1"), &["t".into()]).unwrap();
    assert_eq!(c.rules_reading("a").unwrap(), ["r2"]);
    assert_eq!(c.rules_reading("t").unwrap(), ["r1"]);
    c.delete_rule("r2").unwrap();
    c.delete_stream("a").unwrap();
    assert!(matches!(c.delete_rule("r2"), Err(StoreError::NotFound { .. })));
    assert!(matches!(c.update_rule(&rule("nope"), &[]), Err(StoreError::NotFound { .. })));
}

fn plugins_and_services(c: &dyn Catalog) {
    let plugin = |version: &str| PluginRecord {
        name: "p".into(),
        version: version.into(),
        dir: "p/1".into(),
        ..Default::default()
    };
    assert_eq!(c.put_plugin(&plugin("1")).unwrap(), None);
    assert_eq!(c.put_plugin(&plugin("2")).unwrap(), Some(plugin("1")));
    assert_eq!(c.list_plugins().unwrap(), [plugin("2")]);
    c.delete_plugin("p").unwrap();
    assert!(matches!(c.get_plugin("p"), Err(StoreError::NotFound { kind: EntityKind::Plugin, .. })));
    assert!(matches!(c.delete_plugin("p"), Err(StoreError::NotFound { .. })));

    let service = |name: &str, json: &str| ServiceRecord {
        name: name.into(),
        description_json: json.into(),
        ..Default::default()
    };
    c.create_service(&service("b", "{}")).unwrap();
    c.create_service(&service("a", "{}")).unwrap();
    assert!(matches!(c.create_service(&service("a", "{}")), Err(StoreError::AlreadyExists { .. })));
    assert_eq!(c.update_service(&service("a", "{\"x\":1}")).unwrap().description_json, "{}");
    assert!(matches!(c.update_service(&service("z", "{}")), Err(StoreError::NotFound { .. })));
    c.delete_service("b").unwrap();
    assert_eq!(c.list_services().unwrap(), [service("a", "{\"x\":1}")]);
}

fn keyed_state(c: &dyn Catalog) {
    use oort_proto::v1::value::Kind;
    let entry =
        |key: &str, n: i64| KeyedValue { key: key.into(), value: Some(Value { kind: Some(Kind::IntValue(n)) }) };
    assert_eq!(c.put_keyed_state(&[entry("dev/a", 1), entry("dev/b", 2), entry("x", 3)], 3).unwrap(), 3);
    assert_eq!(c.put_keyed_state(&[entry("dev/a", 10)], 3).unwrap(), 0, "a replacement is not new");
    // A fourth key would pass the limit: nothing of the call is written.
    let full = c.put_keyed_state(&[entry("dev/b", 20), entry("dev/c", 4)], 3).unwrap_err();
    assert!(matches!(full, StoreError::Full { limit: 3, .. }), "{full}");
    assert_eq!(c.get_keyed_state("dev/b").unwrap(), entry("dev/b", 2).value);
    assert_eq!(c.get_keyed_state("dev/c").unwrap(), None);
    assert_eq!(c.delete_keyed_state(&["x".into(), "nope".into()]).unwrap(), 1);
    assert_eq!(c.get_keyed_state("dev/a").unwrap(), entry("dev/a", 10).value);
    let keys = |prefix: &str, after: Option<&str>, limit: usize| -> Vec<String> {
        c.list_keyed_state(prefix, after, limit).unwrap().into_iter().map(|e| e.key).collect()
    };
    assert_eq!(keys("dev/", None, 10), ["dev/a", "dev/b"]);
    assert_eq!(keys("dev/", None, 1), ["dev/a"]);
    assert_eq!(keys("dev/", Some("dev/a"), 10), ["dev/b"]);
    assert_eq!(keys("", None, 10), ["dev/a", "dev/b"]);
    assert!(keys("y", None, 10).is_empty());
    assert!(keys("dev/", Some("a"), 10) == ["dev/a", "dev/b"], "an `after` before the prefix starts it");
}
