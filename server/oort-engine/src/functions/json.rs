//! JSON path functions, and the conversions between [`Value`] and `serde_json::Value`
//! that the other families share (`to_json`, `parse_json`, `concat` of arrays...).
//!
//! Paths follow RFC 9535 (the `serde_json_path` crate), which keeps the Goessner JSONPath
//! syntax eKuiper documents: `$.a.b`, `$.a[0]`, `$.a[*].b`, `$["my.key"]`, `$.a[? @.age > 30]`.
//! As in eKuiper, `json_path_query` returns the value itself for a path that names one
//! place (`$.a[0].b`) and an array of every match otherwise (`$.a[*].b`).

use std::sync::{Arc, Mutex};

use serde_json_path::JsonPath;

use super::{Builtin, Kind, literal_str, text};
use crate::function::{ArgInfo, Function, FunctionError};
use crate::value::Value;

pub(crate) use crate::json::{json_to_value as from_json, value_to_json as to_json};

/// A value as JSON text.
pub(crate) fn to_json_string(value: &Value) -> String {
    to_json(value).to_string()
}

/// A parsed path, and whether it names at most one place.
#[derive(Clone)]
struct Path {
    path: JsonPath,
    singular: bool,
}

fn parse_path(text: &str) -> Result<Path, String> {
    let path = JsonPath::parse(text).map_err(|e| format!("invalid JSON path {text:?}: {e}"))?;
    Ok(Path { path, singular: is_singular(text) })
}

/// Whether a (valid) path only uses name and index selectors: no wildcard, descendant,
/// slice, union or filter outside quoted names.
fn is_singular(path: &str) -> bool {
    let mut quote = None;
    let mut chars = path.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        match quote {
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '*' | '?' | ':' | ',' => return false,
                '.' if previous == '.' => return false,
                _ => {}
            },
        }
        previous = c;
    }
    true
}

/// The last paths parsed by one function, so a literal path is parsed once.
#[derive(Default)]
struct PathCache(Mutex<Option<(String, Path)>>);

impl PathCache {
    fn get(&self, name: &str, text: &str) -> Result<Path, FunctionError> {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, path)) = last.as_ref().filter(|(cached, _)| cached == text) {
            return Ok(path.clone());
        }
        let path = parse_path(text).map_err(|e| FunctionError::failed(name, e))?;
        *last = Some((text.to_owned(), path.clone()));
        Ok(path)
    }
}

/// Runs the path of `args[1]` over `args[0]`: the path and the items it matches.
fn query(cache: &PathCache, name: &str, args: &[Value]) -> Result<(Path, Vec<Value>), FunctionError> {
    let path = cache.get(name, text(name, 1, &args[1])?)?;
    // As eKuiper: a string is JSON text, parsed first.
    let json = match &args[0] {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|_| FunctionError::failed(name, format!("{text:?} is not valid JSON text")))?,
        other => to_json(other),
    };
    let found = path.path.query(&json).all().into_iter().map(from_json).collect();
    Ok((path, found))
}

fn validate_path(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(path) => parse_path(path).map(|_| ()).map_err(|e| format!("function {name}: {e}")),
        None => Ok(()),
    }
}

/// The JSON path functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    let kinds = &[Kind::Any, Kind::Str];
    let exists_cache = Arc::new(PathCache::default());
    let query_cache = Arc::new(PathCache::default());
    let first_cache = Arc::new(PathCache::default());
    vec![
        Builtin::scalar(
            "json_path_exists",
            2,
            Some(2),
            "Whether the JSON path matches anything in the value.",
            move |name, _, args| {
                if args.iter().any(Value::is_null) {
                    return Ok(Value::Bool(false));
                }
                let (_, found) = query(&exists_cache, name, args)?;
                Ok(Value::Bool(!found.is_empty()))
            },
        )
        .kinds(kinds)
        .pass_nulls()
        .validate(validate_path)
        .build(),
        Builtin::scalar(
            "json_path_query",
            2,
            Some(2),
            "The items the JSON path matches: the item itself for a path to one place, else an array.",
            move |name, _, args| {
                let (path, mut found) = query(&query_cache, name, args)?;
                Ok(if path.singular { found.pop().unwrap_or(Value::Null) } else { Value::list(found) })
            },
        )
        .kinds(kinds)
        .validate(validate_path)
        .build(),
        Builtin::scalar(
            "json_path_query_first",
            2,
            Some(2),
            "The first item the JSON path matches, or NULL.",
            move |name, _, args| {
                let (_, found) = query(&first_cache, name, args)?;
                Ok(found.into_iter().next().unwrap_or(Value::Null))
            },
        )
        .kinds(kinds)
        .validate(validate_path)
        .build(),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::functions::testing::{err, list, s, validate};

    crate::functions::testing::shorthands!(functions);

    fn sample() -> Value {
        let text = r#"{
            "age": 37,
            "name": {"first": "Tom"},
            "my.key": 1.5,
            "friends": [
                {"first": "Dale", "age": 44},
                {"first": "Roger", "age": 68},
                {"first": "Jane", "age": 47}
            ]
        }"#;
        from_json(&serde_json::from_str(text).unwrap_or_default())
    }

    #[test]
    fn conversions_round_trip() {
        let value = sample();
        assert_eq!(from_json(&to_json(&value)), value);
        assert!(matches!(from_json(&serde_json::json!(1)), Value::Int(1)));
        assert!(matches!(from_json(&serde_json::json!(1.0)), Value::Float(_)));
        assert!(matches!(from_json(&serde_json::json!(u64::MAX)), Value::Float(_)));
        assert_eq!(to_json(&Value::Float(f64::NAN)), serde_json::Value::Null);
        assert_eq!(to_json(&Value::Bytes(Arc::from(&b"hi"[..]))), serde_json::json!("aGk="));
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().map(Value::utc).unwrap_or_default();
        assert_eq!(to_json(&t), serde_json::json!("2024-01-02T03:04:05Z"));
        assert_eq!(to_json_string(&list(vec![Value::Int(1), s("a")])), r#"[1,"a"]"#);
    }

    #[test]
    fn json_path_exists_tells_whether_anything_matches() {
        assert_eq!(f("json_path_exists", &[sample(), s("$.age")]), Value::Bool(true));
        assert_eq!(f("json_path_exists", &[sample(), s("$.friends[? @.age > 60]")]), Value::Bool(true));
        assert_eq!(f("json_path_exists", &[sample(), s("$.friends[? @.age > 70]")]), Value::Bool(false));
        assert_eq!(f("json_path_exists", &[sample(), s("$.nope")]), Value::Bool(false));
        assert_eq!(f("json_path_exists", &[Value::Null, s("$.age")]), Value::Bool(false));
        assert!(matches!(err(&functions(), "json_path_exists", &[sample(), s("age")]), FunctionError::Failed { .. }));
    }

    #[test]
    fn json_path_query_returns_a_value_or_an_array() {
        assert_eq!(f("json_path_query", &[sample(), s("$.age")]), Value::Int(37));
        assert_eq!(f("json_path_query", &[sample(), s("$.name.first")]), s("Tom"));
        assert_eq!(f("json_path_query", &[sample(), s(r#"$["my.key"]"#)]), Value::Float(1.5));
        assert_eq!(f("json_path_query", &[sample(), s("$.friends[1].first")]), s("Roger"));
        assert_eq!(f("json_path_query", &[sample(), s("$.nope")]), Value::Null);
        let names = f("json_path_query", &[sample(), s("$.friends[*].first")]);
        assert_eq!(names, list(vec![s("Dale"), s("Roger"), s("Jane")]));
        let old = f("json_path_query", &[sample(), s("$.friends[? @.age > 45].first")]);
        assert_eq!(old, list(vec![s("Roger"), s("Jane")]));
        assert_eq!(f("json_path_query", &[sample(), s("$.friends[? @.age > 99]")]), list(vec![]));
        assert_eq!(f("json_path_query", &[Value::Null, s("$.a")]), Value::Null);
        assert_eq!(f("json_path_query", &[list(vec![Value::Int(5)]), s("$[0]")]), Value::Int(5));
        // As eKuiper: a string is JSON text, parsed first.
        assert_eq!(f("json_path_query", &[s(r#"{"a": [1, 2]}"#), s("$.a[1]")]), Value::Int(2));
        assert_eq!(f("json_path_exists", &[s(r#"{"a": 1}"#), s("$.a")]), Value::Bool(true));
        let e = err(&functions(), "json_path_query", &[s("{oops"), s("$.a")]).to_string();
        assert!(e.contains("not valid JSON text"), "{e}");
        let e = err(&functions(), "json_path_query", &[sample(), Value::Int(1)]);
        assert!(matches!(e, FunctionError::ArgumentType { index: 2, .. }));
    }

    #[test]
    fn json_path_query_first_returns_the_first_match() {
        assert_eq!(f("json_path_query_first", &[sample(), s("$.friends[*].age")]), Value::Int(44));
        assert_eq!(f("json_path_query_first", &[sample(), s("$.age")]), Value::Int(37));
        assert_eq!(f("json_path_query_first", &[sample(), s("$.friends[? @.age > 99]")]), Value::Null);
        assert_eq!(f("json_path_query_first", &[Value::Null, s("$.a")]), Value::Null);
        assert!(matches!(
            err(&functions(), "json_path_query_first", &[sample(), s("$[")]),
            FunctionError::Failed { .. }
        ));
    }

    #[test]
    fn literal_paths_are_checked_at_plan_time() {
        for name in ["json_path_exists", "json_path_query", "json_path_query_first"] {
            assert!(validate(&functions(), name, &[None, Some(s("$.a[*].b"))]).is_ok());
            assert!(validate(&functions(), name, &[None, Some(s("$.a["))]).unwrap_err().contains("invalid JSON path"));
            assert!(validate(&functions(), name, &[None, Some(Value::Int(1))]).is_err());
            assert!(validate(&functions(), name, &[None, None]).is_ok());
        }
    }

    #[test]
    fn singular_paths_are_recognised() {
        assert!(is_singular("$.a.b[0]['c.d']"));
        assert!(is_singular(r#"$["x*y"]"#));
        assert!(!is_singular("$.a[*]"));
        assert!(!is_singular("$..a"));
        assert!(!is_singular("$.a[0:2]"));
        assert!(!is_singular("$.a[0,1]"));
        assert!(!is_singular("$.a[?@.b]"));
    }
}
