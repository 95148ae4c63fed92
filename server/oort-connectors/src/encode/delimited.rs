//! The `delimited` sink format, as eKuiper's: values joined by a separator,
//! without quoting; a result's rows on lines, after a header line if asked.

use oort_engine::Value;
use oort_engine::json::value_to_json;

use super::{Node, encode_error};
use oort_engine::ConnectorError;

/// The payload of `node` (a row, a result, or a value).
pub(super) fn encode(node: &Node<'_>, delimiter: &str, header: bool) -> Result<Vec<u8>, ConnectorError> {
    let mut out = String::new();
    match node {
        Node::List(rows) => {
            for (i, row) in rows.iter().enumerate() {
                let pairs = pairs(row)?;
                if i == 0 && header {
                    let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
                    out.push_str(&names.join(delimiter));
                    out.push('\n');
                }
                if i > 0 {
                    out.push('\n');
                }
                line(&mut out, &pairs, delimiter);
            }
        }
        row => line(&mut out, &pairs(row)?, delimiter),
    }
    Ok(out.into_bytes())
}

/// A row's (name, value) pairs: a map by name, selected `fields` in order, a
/// value alone.
fn pairs<'a>(node: &'a Node<'a>) -> Result<Vec<(&'a str, &'a Value)>, ConnectorError> {
    match node {
        Node::Map(map) => Ok(map.iter().map(|(k, v)| (k.as_ref(), v)).collect()),
        Node::Object(pairs) => Ok(pairs.clone()),
        Node::Value(value) => Ok(vec![("value", value)]),
        Node::List(_) => Err(encode_error("format \"delimited\" writes rows of values, not nested lists".into())),
    }
}

fn line(out: &mut String, pairs: &[(&str, &Value)], delimiter: &str) {
    for (i, (_, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(delimiter);
        }
        match value {
            Value::Null => {}
            Value::String(s) => out.push_str(s),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => out.push_str(&value.to_string()),
            other => match value_to_json(other) {
                serde_json::Value::String(s) => out.push_str(&s),
                json => out.push_str(&json.to_string()),
            },
        }
    }
}
