//! What the built-in connectors declare is what they take.

use std::sync::Arc;

use oort_engine::{ConnectorRegistry, OptionKind, SinkConfig};
use serde_json::json;

fn registry() -> ConnectorRegistry {
    let registry = ConnectorRegistry::new();
    let buses = oort_connectors::Buses::default();
    let files = Arc::new(oort_policy::FileRoots::create([std::env::temp_dir()]).unwrap());
    let egress = Arc::new(oort_policy::EgressPolicy::allow_all());
    let builtins = oort_connectors::Builtins {
        buses: &buses,
        files: &files,
        egress: &egress,
        connections: &oort_connectors::connections::Connections::new(),
    };
    oort_connectors::register_all(&registry, &builtins);
    registry
}

/// A value of the kind, as an action property.
fn sample(kind: OptionKind) -> serde_json::Value {
    match kind {
        OptionKind::Text => json!("x"),
        OptionKind::Bool => json!(true),
        OptionKind::Count | OptionKind::Millis => json!(1),
        OptionKind::OneOf(words) => json!(words[0]),
        OptionKind::List => json!(["a"]),
        OptionKind::Object => json!({"a": "b"}),
    }
}

#[test]
fn every_built_in_connector_declares_its_options() {
    let registry = registry();
    for info in registry.source_infos().into_iter().chain(registry.sink_infos()) {
        assert!(info.options.is_some(), "{} declares its options", info.name);
        assert!(info.description.ends_with('.'), "{} describes itself in a sentence", info.name);
    }
}

#[test]
fn every_property_a_sink_declares_is_one_it_takes() {
    let registry = registry();
    for oort_engine::ConnectorInfo { name, options, .. } in registry.sink_infos() {
        let factory = registry.sink(&name).unwrap();
        for option in options.unwrap() {
            let mut props = serde_json::Map::new();
            props.insert(option.key.to_owned(), sample(option.kind));
            let config = SinkConfig { sink_type: name.clone(), props, rule_id: "r".into(), ..Default::default() };
            if let Err(e) = factory.build(&config) {
                let message = e.to_string();
                assert!(
                    !message.contains("unknown field"),
                    "{name} declares `{}` but refuses it: {message}",
                    option.key
                );
            }
        }
    }
}
