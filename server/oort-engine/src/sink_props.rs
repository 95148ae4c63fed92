//! An action's properties as the engine reads them: `bufferLength` (the
//! results a sink may have queued), and the check that an action sets no
//! property its sink does not take, so that a typo or a feature that is not
//! there is refused when the rule is made, not ignored.

use serde_json::{Map as JsonMap, Value as JsonValue};

use crate::connector::{ConnectorError, ConnectorOption, OptionKind};

/// The largest `bufferLength` of an action.
pub const MAX_BUFFER_LENGTH: usize = 100_000;

/// The properties the engine reads for every sink, besides the sink cache's
/// and batching's.
pub const ENGINE_SINK_OPTIONS: &[ConnectorOption] = &[ConnectorOption {
    key: "bufferLength",
    kind: OptionKind::Count,
    default: "",
    description: "Results queued for the sink before the rule waits for it; default: the rule's bufferLength; at \
                  most 100,000.",
}];

/// eKuiper properties that Oort takes at the value that asks for nothing:
/// rules exported from eKuiper carry them.
const NO_OP: [(&str, JsonValue); 1] = [("runAsync", JsonValue::Bool(false))];

/// The action's `bufferLength`, if it sets one.
pub fn buffer_length(props: &JsonMap<String, JsonValue>) -> Result<Option<usize>, ConnectorError> {
    let Some(value) = props.get("bufferLength").filter(|v| !v.is_null()) else { return Ok(None) };
    match value.as_u64().filter(|n| (1..=MAX_BUFFER_LENGTH as u64).contains(n)) {
        Some(n) => Ok(Some(n as usize)),
        None => Err(ConnectorError::Config(format!(
            "the sink property `bufferLength` is 1 to {MAX_BUFFER_LENGTH}, got {value}"
        ))),
    }
}

/// Checks that every property of an action of `sink_type` is one its sink
/// declares (`declared`) or one the engine reads for every sink.
pub fn check_action(
    sink_type: &str,
    declared: &[ConnectorOption],
    props: &JsonMap<String, JsonValue>,
) -> Result<(), ConnectorError> {
    let engine = [ENGINE_SINK_OPTIONS, crate::sink_cache::SINK_CACHE_OPTIONS, crate::sink_batch::BATCH_OPTIONS];
    for (key, value) in props {
        let known = declared.iter().chain(engine.iter().flat_map(|o| o.iter())).any(|o| o.key == key);
        let no_op = NO_OP.iter().any(|(k, v)| k == key && (v == value || value.is_null()));
        if known || no_op {
            continue;
        }
        let mut names: Vec<&str> = declared.iter().map(|o| o.key).collect();
        names.sort_unstable();
        return Err(ConnectorError::Config(format!(
            "unknown property `{key}` of a {sink_type} action; its properties are {}, and every sink's are {}",
            if names.is_empty() { "none".to_owned() } else { names.join(", ") },
            engine.iter().flat_map(|o| o.iter()).map(|o| o.key).collect::<Vec<_>>().join(", ")
        )));
    }
    buffer_length(props).map(drop)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn props(json: JsonValue) -> JsonMap<String, JsonValue> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn unknown_properties_are_refused_and_the_engines_taken() {
        let declared = [ConnectorOption { key: "topic", kind: OptionKind::Text, default: "", description: "" }];
        let ok =
            props(json!({"topic": "a", "batchSize": 10, "enableCache": true, "bufferLength": 10, "runAsync": false}));
        assert!(check_action("mqtt", &declared, &ok).is_ok());
        let typo = check_action("mqtt", &declared, &props(json!({"topik": "a"}))).unwrap_err().to_string();
        assert!(typo.contains("unknown property `topik` of a mqtt action; its properties are topic"), "{typo}");
        assert!(check_action("mqtt", &declared, &props(json!({"runAsync": true}))).is_err());
        let big = check_action("mqtt", &declared, &props(json!({"bufferLength": 1_000_000}))).unwrap_err();
        assert!(big.to_string().contains("1 to 100000"), "{big}");
    }
}
