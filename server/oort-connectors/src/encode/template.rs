//! A sink's `dataTemplate`, in either of two syntaxes: eKuiper's Go
//! `text/template` (through [gotmpl](https://docs.rs/gotmpl), with eKuiper's
//! functions `json`, `toJson`, `base64` and `prop`), or
//! [minijinja](https://docs.rs/minijinja)'s (Jinja2). The syntax is read
//! from the actions: one that starts with a field (`{{.temperature}}`), a
//! variable (`{{$x}}`) or a Go keyword or function (`{{range .}}`,
//! `{{json .}}`) makes a Go template; one that starts with another name
//! (`{{ temperature }}`, `{{ row | tojson }}`) or a `{% … %}` block makes a
//! minijinja one (in Go, a name must be a function).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use oort_engine::json::value_to_json;
use oort_engine::{ConnectorError, Map, Value};

use super::{Unit, encode_error};

/// The name the template is registered under, shown in its error messages.
const TEMPLATE_NAME: &str = "dataTemplate";

/// A compiled `dataTemplate`.
pub(super) enum DataTemplate {
    /// eKuiper's syntax: `.` is the row (`sendSingle`) or the list of rows.
    Go(Box<gotmpl::Template>),
    /// minijinja's: the row's fields and `row`, or `rows` (and `data`).
    Jinja(Box<Environment<'static>>),
}

impl std::fmt::Debug for DataTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataTemplate::Go(_) => "DataTemplate::Go",
            DataTemplate::Jinja(_) => "DataTemplate::Jinja",
        })
    }
}

impl DataTemplate {
    /// Compiles a template in the syntax its actions are written in.
    pub(super) fn compile(source: String) -> Result<Self, ConnectorError> {
        if is_go(&source) {
            let template = go_template()
                .parse(&source)
                .map_err(|e| ConnectorError::Config(format!("invalid dataTemplate (Go text/template): {e}")))?;
            return Ok(DataTemplate::Go(Box::new(template)));
        }
        compile_jinja(source).map(|env| DataTemplate::Jinja(Box::new(env)))
    }

    /// Renders the template for one payload.
    pub(super) fn render(&self, unit: Unit<'_>) -> Result<String, ConnectorError> {
        match self {
            DataTemplate::Go(template) => {
                let dot = match unit {
                    Unit::Row(row) => go_map(row),
                    Unit::Rows(rows) => gotmpl::Value::List(rows.iter().map(go_map).collect()),
                };
                template.execute_to_string(&dot).map_err(|e| encode_error(format!("dataTemplate: {e}")))
            }
            DataTemplate::Jinja(env) => render_jinja(env, unit),
        }
    }
}

/// The words a Go template action may start with: keywords, Go's built-in
/// functions and eKuiper's.
const GO_WORDS: [&str; 31] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "and", "or", "not",
    "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery", "call", "eq", "ne", "lt", "le",
    "gt", "ge", "json", "toJson",
];

/// Whether a template is written in Go's syntax (module docs): some action
/// reads like Go's and none like minijinja's.
fn is_go(source: &str) -> bool {
    if source.contains("{%") {
        return false;
    }
    let mut go = false;
    for action in source.split("{{").skip(1) {
        let action = action.trim_start_matches('-').trim_start();
        let word: String = action.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        match action.chars().next() {
            Some('.' | '$' | '(' | '"' | '/') => go = true,
            Some(c) if c.is_alphabetic() || c == '_' => {
                if GO_WORDS.contains(&word.as_str()) || word == "base64" || word == "prop" {
                    go = true;
                } else {
                    return false;
                }
            }
            _ => {}
        }
    }
    go
}

/// A Go template with eKuiper's functions: `json` / `toJson` (the value as
/// JSON), `base64` (its text, or a map's JSON, in base64) and `prop` (a
/// server property, else the key itself).
fn go_template() -> gotmpl::Template {
    let json = |args: &[gotmpl::Value]| {
        let arg = args.first().unwrap_or(&gotmpl::Value::Nil);
        Ok(gotmpl::Value::String(Arc::from(json_of(arg).to_string())))
    };
    gotmpl::Template::new(TEMPLATE_NAME)
        .func("json", json)
        .func("toJson", json)
        .func("base64", |args: &[gotmpl::Value]| {
            let text = match args.first() {
                None | Some(gotmpl::Value::Nil) => {
                    return Err(gotmpl::TemplateError::Exec("base64 of nil".into()));
                }
                Some(gotmpl::Value::String(s)) => s.to_string(),
                Some(map @ (gotmpl::Value::Map(_) | gotmpl::Value::List(_))) => json_of(map).to_string(),
                Some(other) => other.to_string(),
            };
            Ok(gotmpl::Value::String(Arc::from(base64::engine::general_purpose::STANDARD.encode(text))))
        })
        .func("prop", |args: &[gotmpl::Value]| {
            let key = args.first().map(ToString::to_string).unwrap_or_default();
            let value = oort_engine::functions::other::property(&key.to_ascii_lowercase()).map_or(key, str::to_owned);
            Ok(gotmpl::Value::String(Arc::from(value)))
        })
}

/// A row as Go templates see it: values as in JSON output (BYTEA base64,
/// DATETIME RFC 3339).
fn go_map(map: &Map) -> gotmpl::Value {
    gotmpl::Value::Map(Arc::new(map.iter().map(|(k, v)| (Arc::clone(k), go_value(v))).collect()))
}

fn go_value(value: &Value) -> gotmpl::Value {
    match value {
        Value::Null => gotmpl::Value::Nil,
        Value::Bool(b) => gotmpl::Value::Bool(*b),
        Value::Int(i) => gotmpl::Value::Int(*i),
        Value::Float(x) => gotmpl::Value::Float(*x),
        Value::String(s) => gotmpl::Value::String(Arc::clone(s)),
        Value::Bytes(_) | Value::Timestamp(_) => match value_to_json(value) {
            serde_json::Value::String(s) => gotmpl::Value::String(Arc::from(s)),
            _ => gotmpl::Value::Nil,
        },
        Value::List(items) => gotmpl::Value::List(items.iter().map(go_value).collect()),
        Value::Map(map) => go_map(map),
    }
}

/// A Go template value as JSON, for `json` and `base64`.
fn json_of(value: &gotmpl::Value) -> serde_json::Value {
    match value {
        gotmpl::Value::Nil => serde_json::Value::Null,
        gotmpl::Value::Bool(b) => (*b).into(),
        gotmpl::Value::Int(i) => (*i).into(),
        gotmpl::Value::Uint(u) => (*u).into(),
        gotmpl::Value::Float(x) => serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into),
        gotmpl::Value::String(s) => s.as_ref().into(),
        gotmpl::Value::List(items) => items.iter().map(json_of).collect(),
        gotmpl::Value::Map(map) => map.iter().map(|(k, v)| (k.to_string(), json_of(v))).collect(),
        gotmpl::Value::Function(_) => serde_json::Value::Null,
    }
}

/// Compiles a minijinja `dataTemplate`: no escaping, NULL printed as `null`
/// and booleans as `true`/`false`, as JSON has them.
fn compile_jinja(source: String) -> Result<Environment<'static>, ConnectorError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            out.write_str("null")?;
            Ok(())
        } else if value.kind() == minijinja::value::ValueKind::Bool {
            out.write_str(if value.is_true() { "true" } else { "false" })?;
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_template_owned(TEMPLATE_NAME, source)
        .map_err(|e| ConnectorError::Config(format!("invalid dataTemplate: {}", describe(&e))))?;
    Ok(env)
}

fn render_jinja(env: &Environment<'static>, unit: Unit<'_>) -> Result<String, ConnectorError> {
    let context = match unit {
        Unit::Row(row) => {
            let mut vars: BTreeMap<&str, minijinja::Value> = BTreeMap::new();
            vars.insert("row", map_value(row));
            for (k, v) in row.iter() {
                vars.insert(k, template_value(v));
            }
            minijinja::Value::from_iter(vars)
        }
        Unit::Rows(rows) => {
            let list = minijinja::Value::from_iter(rows.iter().map(map_value));
            minijinja::Value::from_iter([("rows", list.clone()), ("data", list)])
        }
    };
    env.get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(context))
        .map_err(|e| encode_error(format!("dataTemplate: {}", describe(&e))))
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn map_value(map: &Map) -> minijinja::Value {
    minijinja::Value::from_iter(map.iter().map(|(k, v)| (k.as_ref(), template_value(v))))
}

/// A value as minijinja sees it: as in JSON output (BYTEA base64, DATETIME RFC 3339).
fn template_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Int(i) => minijinja::Value::from(*i),
        Value::Float(f) => minijinja::Value::from(*f),
        Value::String(s) => minijinja::Value::from(s.as_ref()),
        Value::Bytes(_) | Value::Timestamp(_) => minijinja::Value::from_serialize(value_to_json(value)),
        Value::List(items) => minijinja::Value::from_iter(items.iter().map(template_value)),
        Value::Map(map) => map_value(map),
    }
}
