//! Secrets are write-only: stored and used, never returned. Action properties
//! and service headers whose key names a secret (`Authorization`, any
//! `*token*`, `*password*`, `*secret*`...) come back as [`PLACEHOLDER`] from
//! every Get and List, and an update that sends the placeholder back keeps the
//! stored value, so that a client can read, edit and write a definition
//! without ever holding its secrets. A password inside a URL
//! (`postgres://user:pw@host/db`) reads as `postgres://user:***@host/db`,
//! whatever its key, and round-trips the same way.

use std::collections::BTreeMap;

use oort_proto::v1::Rule;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

/// What a secret reads as.
pub const PLACEHOLDER: &str = "***";

pub use oort_policy::secrets::is_secret;

/// The placeholder in place of every secret of `props`, at any depth.
pub fn redact_struct(props: &mut Struct) {
    for (key, value) in props.fields.iter_mut() {
        if is_secret(key) && !matches!(value.kind, None | Some(Kind::NullValue(_))) {
            value.kind = Some(Kind::StringValue(PLACEHOLDER.into()));
        } else if let Some(Kind::StringValue(text)) = &mut value.kind
            && let Some(redacted) = redact_url(text)
        {
            *text = redacted;
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut Value) {
    match &mut value.kind {
        Some(Kind::StructValue(inner)) => redact_struct(inner),
        Some(Kind::ListValue(list)) => list.values.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// `text` with the password of the URL it is replaced by the placeholder;
/// `None` when it is not a URL with a password.
fn redact_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    if password.is_empty() || password == PLACEHOLDER {
        return None;
    }
    let host_and_after = &rest[userinfo.len()..];
    Some(format!("{scheme}://{user}:{PLACEHOLDER}{host_and_after}"))
}

/// Where `new` holds the placeholder under a secret key, the value `stored`
/// has at the same place.
pub fn restore_struct(new: &mut Struct, stored: &Struct) {
    for (key, value) in new.fields.iter_mut() {
        let Some(old) = stored.fields.get(key) else { continue };
        match (&mut value.kind, &old.kind) {
            (Some(Kind::StringValue(text)), _) if text == PLACEHOLDER && is_secret(key) => *value = old.clone(),
            (Some(Kind::StringValue(text)), Some(Kind::StringValue(old_text)))
                if text.contains(PLACEHOLDER) && redact_url(old_text).as_ref() == Some(text) =>
            {
                *value = old.clone();
            }
            (Some(Kind::StructValue(inner)), Some(Kind::StructValue(old))) => restore_struct(inner, old),
            (Some(Kind::ListValue(list)), Some(Kind::ListValue(old))) => {
                for (item, old) in list.values.iter_mut().zip(&old.values) {
                    if let (Some(Kind::StructValue(inner)), Some(Kind::StructValue(old))) = (&mut item.kind, &old.kind)
                    {
                        restore_struct(inner, old);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A rule as it may be shown: its actions' secrets replaced.
pub fn redact_rule(mut rule: Rule) -> Rule {
    for action in &mut rule.actions {
        if let Some(props) = &mut action.props {
            redact_struct(props);
        }
    }
    rule
}

/// The stored secrets back into an update's actions that send the
/// placeholder, action by action (same position, same type).
pub fn restore_rule(new: &mut Rule, stored: &Rule) {
    for (action, old) in new.actions.iter_mut().zip(&stored.actions) {
        if action.r#type == old.r#type
            && let (Some(props), Some(old)) = (&mut action.props, &old.props)
        {
            restore_struct(props, old);
        }
    }
}

/// Header values replaced where the header names a secret.
pub fn redact_headers<'a>(headers: impl IntoIterator<Item = (&'a String, &'a mut String)>) {
    for (key, value) in headers {
        if is_secret(key) {
            *value = PLACEHOLDER.into();
        }
    }
}

/// The stored values of secret headers that an update sends as the placeholder.
pub fn restore_headers(new: &mut BTreeMap<String, String>, stored: &BTreeMap<String, String>) {
    for (key, value) in new.iter_mut() {
        if value == PLACEHOLDER
            && is_secret(key)
            && let Some(old) = stored.get(key)
        {
            value.clone_from(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_struct(json: serde_json::Value) -> Struct {
        fn value(json: serde_json::Value) -> Value {
            let kind = match json {
                serde_json::Value::String(s) => Kind::StringValue(s),
                serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
                serde_json::Value::Bool(b) => Kind::BoolValue(b),
                serde_json::Value::Object(map) => {
                    Kind::StructValue(Struct { fields: map.into_iter().map(|(k, v)| (k, value(v))).collect() })
                }
                serde_json::Value::Array(items) => {
                    Kind::ListValue(prost_types::ListValue { values: items.into_iter().map(value).collect() })
                }
                serde_json::Value::Null => Kind::NullValue(0),
            };
            Value { kind: Some(kind) }
        }
        match value(json).kind {
            Some(Kind::StructValue(s)) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn secret_keys_are_recognised() {
        for key in ["Authorization", "X-API-Key", "token", "accessToken", "password", "client_secret", "Cookie"] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["url", "method", "topic", "sendSingle", "headers", "Content-Type"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn secrets_are_redacted_at_any_depth_and_restored_from_the_placeholder() {
        let stored = json_struct(serde_json::json!({
            "url": "http://h/x",
            "headers": {"Authorization": "Bearer t0k3n", "Accept": "json"},
            "password": "hunter2",
            "list": [{"apiToken": "abc"}],
        }));
        let mut shown = stored.clone();
        redact_struct(&mut shown);
        assert_eq!(
            shown,
            json_struct(serde_json::json!({
                "url": "http://h/x",
                "headers": {"Authorization": "***", "Accept": "json"},
                "password": "***",
                "list": [{"apiToken": "***"}],
            }))
        );
        // Edited elsewhere, secrets sent back as read: the stored ones stay.
        let mut update = shown.clone();
        update.fields.insert("url".into(), Value { kind: Some(Kind::StringValue("http://h/y".into())) });
        restore_struct(&mut update, &stored);
        let mut expected = stored.clone();
        expected.fields.insert("url".into(), Value { kind: Some(Kind::StringValue("http://h/y".into())) });
        assert_eq!(update, expected);
        // A new secret replaces the old one.
        let mut replaced = json_struct(serde_json::json!({"password": "new"}));
        restore_struct(&mut replaced, &stored);
        assert_eq!(replaced, json_struct(serde_json::json!({"password": "new"})));
    }

    #[test]
    fn passwords_in_urls_are_redacted_and_restored() {
        let stored = json_struct(serde_json::json!({"url": "postgres://app:hunter2@db:5432/shop?sslmode=require"}));
        let mut shown = stored.clone();
        redact_struct(&mut shown);
        assert_eq!(shown, json_struct(serde_json::json!({"url": "postgres://app:***@db:5432/shop?sslmode=require"})));
        let mut update = shown.clone();
        restore_struct(&mut update, &stored);
        assert_eq!(update, stored);
        // Another URL is a new value, kept as sent.
        let mut moved = json_struct(serde_json::json!({"url": "postgres://app:***@other/shop"}));
        restore_struct(&mut moved, &stored);
        assert_eq!(moved, json_struct(serde_json::json!({"url": "postgres://app:***@other/shop"})));
        for plain in ["http://h/x@y", "tcp://user@h:1883", "sqlite:a.db", "no url"] {
            assert_eq!(redact_url(plain), None, "{plain}");
        }
    }

    #[test]
    fn headers_round_trip_through_the_placeholder() {
        let stored = BTreeMap::from([("Authorization".to_string(), "Bearer x".to_string()), ("A".into(), "b".into())]);
        let mut shown = stored.clone();
        redact_headers(shown.iter_mut());
        assert_eq!(shown["Authorization"], PLACEHOLDER);
        assert_eq!(shown["A"], "b");
        restore_headers(&mut shown, &stored);
        assert_eq!(shown, stored);
    }
}
