//! eKuiper's rule JSON, as users already write it, to and from the proto `Rule`.
//!
//! Accepted shape (every key but `sql` and `actions` may be left out; `id` may
//! come from the command line instead):
//!
//! ```json
//! {
//!   "id": "rule1",
//!   "name": "Hot devices",
//!   "tags": ["line1", "alarm"],
//!   "sql": "SELECT * FROM demo",
//!   "actions": [{"log": {}}, {"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "out"}}],
//!   "options": {
//!     "isEventTime": false, "lateTolerance": 1000, "bufferLength": 1024,
//!     "sendMetaToSink": false, "sendError": false, "sendNilField": false, "qos": 0, "checkpointInterval": 300000,
//!     "restartStrategy": {"attempts": 3, "delay": 1000, "multiplier": 2,
//!                         "maxDelay": 30000, "jitterFactor": 0.1}
//!   },
//!   "triggered": true
//! }
//! ```
//!
//! Oort adds one option, `"bufferFull": "drop"` or `"block"`: what the rule
//! does with an event pushed while its input buffer is full (by default, drop
//! for qos 0 and block otherwise).
//!
//! Durations (`lateTolerance`, `checkpointInterval`, `delay`, `maxDelay`) are
//! milliseconds, or strings such as `"1s"`, `"500ms"` or `"1m30s"` as eKuiper
//! 2 also allows. Unknown keys are rejected rather than ignored, so that a typo
//! or an unsupported eKuiper feature never silently changes what a rule does.

use oort_proto::v1::{Action, BufferFull, RestartStrategy, Rule, RuleOptions, TimeRange};
use prost_types::value::Kind;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_json::{Map, Value, json};

/// Top level of an eKuiper rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    sql: String,
    actions: Vec<Value>,
    options: Option<OptionsFile>,
    triggered: Option<bool>,
}

/// eKuiper's `options` object, camelCase as in eKuiper.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OptionsFile {
    is_event_time: Option<bool>,
    late_tolerance: Option<Millis>,
    buffer_length: Option<u32>,
    send_meta_to_sink: Option<bool>,
    qos: Option<u32>,
    send_error: Option<bool>,
    checkpoint_interval: Option<Millis>,
    cron: Option<String>,
    duration: Option<Millis>,
    concurrency: Option<u32>,
    debug: Option<bool>,
    send_nil_field: Option<bool>,
    log_filename: Option<String>,
    cron_datetime_range: Option<Vec<RangeFile>>,
    restart_strategy: Option<RestartFile>,
    buffer_full: Option<BufferFullFile>,
}

/// Oort's `options.bufferFull`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BufferFullFile {
    Drop,
    Block,
}

/// One of eKuiper's `options.cronDatetimeRange`: `begin` and `end` as
/// `"YYYY-MM-DD hh:mm:ss"` (UTC), or `beginTimestamp` and `endTimestamp` in ms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RangeFile {
    begin: Option<String>,
    end: Option<String>,
    begin_timestamp: Option<i64>,
    end_timestamp: Option<i64>,
}

impl RangeFile {
    fn into_proto(self, index: usize) -> Result<TimeRange, String> {
        let time = |text: Option<String>, ms: Option<i64>, what: &str| match (text, ms) {
            (_, Some(ms)) => Ok(ms),
            (Some(text), None) => chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
                .map(|t| t.and_utc().timestamp_millis())
                .map_err(|e| {
                    format!("cronDatetimeRange[{index}].{what} {text:?}: {e} (expected \"YYYY-MM-DD hh:mm:ss\")")
                }),
            (None, None) => Err(format!("cronDatetimeRange[{index}] has no {what}")),
        };
        Ok(TimeRange {
            begin_ms: time(self.begin, self.begin_timestamp, "begin")?,
            end_ms: time(self.end, self.end_timestamp, "end")?,
        })
    }
}

/// eKuiper's `options.restartStrategy` object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestartFile {
    attempts: Option<u32>,
    delay: Option<Millis>,
    multiplier: Option<f64>,
    max_delay: Option<Millis>,
    jitter_factor: Option<f64>,
}

/// A non-negative duration in milliseconds, written as a number or as a string.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Millis(i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MillisVisitor)
    }
}

struct MillisVisitor;

impl Visitor<'_> for MillisVisitor {
    type Value = Millis;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("milliseconds as a non-negative integer, or a duration such as \"500ms\", \"1s\" or \"1m30s\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
        i64::try_from(v).map(Millis).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
        if v < 0 { Err(E::invalid_value(Unexpected::Signed(v), &self)) } else { Ok(Millis(v)) }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
        if v >= 0.0 && v.fract() == 0.0 && v < i64::MAX as f64 {
            Ok(Millis(v as i64))
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
        parse_duration_ms(v).map(Millis).map_err(E::custom)
    }
}

/// Parses Go-style durations (`"500ms"`, `"1.5s"`, `"1m30s"`, `"2h"`) and bare
/// digits (milliseconds) into milliseconds, because eKuiper accepts both.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. \"500ms\", \"1s\", \"1m30s\" or milliseconds");
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| bad());
    }
    let mut rest = s;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let unit_len =
            rest[number_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - number_len);
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        let scale = match &rest[number_len..number_len + unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[number_len + unit_len..];
    }
    if s.is_empty() || total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as i64)
}

/// Parses an eKuiper rule file. `cli_id` is the id given on the command line:
/// it supplies the id when the file has none, and must agree when it has one.
pub fn rule_from_json(text: &str, cli_id: Option<&str>) -> Result<Rule, String> {
    let file: RuleFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let id = pick_id(file.id.as_deref(), cli_id)?;
    let actions = actions_from_json(&file.actions)?;
    Ok(Rule {
        id,
        sql: file.sql,
        actions,
        options: file.options.map(OptionsFile::into_proto).transpose()?,
        triggered: file.triggered,
        create_time: None,
        update_time: None,
        name: file.name.unwrap_or_default(),
        tags: file.tags,
    })
}

/// Chooses the rule id from the file and the command line.
fn pick_id(file_id: Option<&str>, cli_id: Option<&str>) -> Result<String, String> {
    let file_id = file_id.filter(|id| !id.is_empty());
    match (file_id, cli_id) {
        (Some(f), Some(c)) if f != c => {
            Err(format!("the rule id {c:?} given on the command line differs from {f:?} in the file"))
        }
        (Some(id), _) | (None, Some(id)) => Ok(id.to_string()),
        (None, None) => Err("the rule has no id: add \"id\" to the file or give it as an argument".into()),
    }
}

/// Builds a rule from `--sql`, `--action` and `--options` flags.
pub fn rule_from_flags(id: &str, sql: &str, actions: &[String], options: Option<&str>) -> Result<Rule, String> {
    let actions = actions.iter().map(|a| action_from_flag(a)).collect::<Result<Vec<_>, _>>()?;
    if actions.is_empty() {
        return Err("a rule needs at least one --action, e.g. --action log".into());
    }
    Ok(Rule {
        id: id.to_string(),
        sql: sql.to_string(),
        actions,
        options: options.map(options_from_json).transpose()?,
        triggered: None,
        create_time: None,
        update_time: None,
        name: String::new(),
        tags: Vec::new(),
    })
}

/// Parses `--options`: eKuiper's options object as JSON.
pub fn options_from_json(text: &str) -> Result<RuleOptions, String> {
    let file: OptionsFile = serde_json::from_str(text).map_err(|e| format!("--options: {e}"))?;
    file.into_proto()
}

/// Parses one `--action`: `TYPE`, `TYPE=PROPS_JSON`, or an eKuiper action
/// object `{"TYPE": {...}}`, so that both quick typing and pasting work.
pub fn action_from_flag(flag: &str) -> Result<Action, String> {
    let flag = flag.trim();
    if flag.starts_with('{') {
        let value: Value = serde_json::from_str(flag).map_err(|e| format!("--action {flag}: {e}"))?;
        return action_from_json(&value).map_err(|e| format!("--action {flag}: {e}"));
    }
    let (sink, props) = match flag.split_once('=') {
        Some((sink, props)) => (sink.trim(), serde_json::from_str(props).map_err(|e| format!("--action {flag}: {e}"))?),
        None => (flag, Value::Object(Map::new())),
    };
    check_sink_type(sink).map_err(|e| format!("--action {flag}: {e}"))?;
    let Value::Object(props) = props else {
        return Err(format!("--action {flag}: the properties of sink {sink:?} must be a JSON object"));
    };
    Ok(Action { r#type: sink.to_string(), props: Some(struct_from_json(&props)) })
}

/// Sink types are identifiers; anything else is a typo worth reporting here.
fn check_sink_type(sink: &str) -> Result<(), String> {
    let valid = !sink.is_empty() && sink.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid { Ok(()) } else { Err(format!("invalid sink type {sink:?}: expected e.g. log, mqtt, memory")) }
}

fn actions_from_json(actions: &[Value]) -> Result<Vec<Action>, String> {
    if actions.is_empty() {
        return Err("\"actions\" is empty: a rule needs at least one action, e.g. [{\"log\": {}}]".into());
    }
    actions.iter().enumerate().map(|(i, a)| action_from_json(a).map_err(|e| format!("actions[{i}]: {e}"))).collect()
}

/// One eKuiper action: an object with exactly one key, the sink type, whose
/// value is the object of sink properties.
fn action_from_json(value: &Value) -> Result<Action, String> {
    let Value::Object(map) = value else {
        return Err(format!("expected an object like {{\"log\": {{}}}}, found {}", json_kind(value)));
    };
    let mut entries = map.iter();
    let (Some((sink, props)), None) = (entries.next(), entries.next()) else {
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        return Err(format!(
            "expected exactly one sink type as key, like {{\"log\": {{}}}}, found {} keys {keys:?}",
            map.len()
        ));
    };
    check_sink_type(sink)?;
    let Value::Object(props) = props else {
        return Err(format!("the properties of sink {sink:?} must be an object, found {}", json_kind(props)));
    };
    Ok(Action { r#type: sink.clone(), props: Some(struct_from_json(props)) })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl OptionsFile {
    fn into_proto(self) -> Result<RuleOptions, String> {
        Ok(RuleOptions {
            is_event_time: self.is_event_time.unwrap_or(false),
            late_tolerance_ms: self.late_tolerance.map(|m| m.0),
            buffer_length: self.buffer_length,
            send_meta_to_sink: self.send_meta_to_sink.unwrap_or(false),
            send_error: self.send_error.unwrap_or(false),
            cron: self.cron.unwrap_or_default(),
            concurrency: self.concurrency,
            debug: self.debug.unwrap_or(false),
            send_nil_field: self.send_nil_field.unwrap_or(false),
            log_filename: self.log_filename.unwrap_or_default(),
            duration_ms: self.duration.map(|m| m.0),
            cron_datetime_range: self
                .cron_datetime_range
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.into_proto(i))
                .collect::<Result<_, _>>()?,
            qos: self.qos.unwrap_or(0),
            checkpoint_interval_ms: self.checkpoint_interval.map(|m| m.0),
            restart_strategy: self.restart_strategy.map(RestartFile::into_proto),
            buffer_full: match self.buffer_full {
                None => BufferFull::Unspecified,
                Some(BufferFullFile::Drop) => BufferFull::Drop,
                Some(BufferFullFile::Block) => BufferFull::Block,
            } as i32,
        })
    }
}

impl RestartFile {
    fn into_proto(self) -> RestartStrategy {
        RestartStrategy {
            attempts: self.attempts.unwrap_or(0),
            delay_ms: self.delay.map(|m| m.0),
            multiplier: self.multiplier,
            max_delay_ms: self.max_delay.map(|m| m.0),
            jitter_factor: self.jitter_factor,
        }
    }
}

/// JSON object to `google.protobuf.Struct`, the type of sink properties.
pub fn struct_from_json(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), value_from_json(v))).collect() }
}

/// JSON value to `google.protobuf.Value`. Numbers become doubles, as the
/// Struct type dictates.
pub fn value_from_json(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(value_from_json).collect() })
        }
        Value::Object(map) => Kind::StructValue(struct_from_json(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// `google.protobuf.Struct` back to a JSON object.
pub fn struct_to_json(s: &prost_types::Struct) -> Map<String, Value> {
    s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()
}

/// `google.protobuf.Value` back to JSON; whole numbers print without `.0`.
pub fn value_to_json(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
    }
}

/// A double as JSON: integral values within the exact range as integers, so
/// `2.0` reads `2` as the user wrote it; non-finite values as null.
pub fn number(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// The rule in eKuiper's JSON shape, which `rule create --file` reads back;
/// used to check that reading and printing agree.
#[cfg(test)]
pub fn rule_to_json(rule: &Rule) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(rule.id));
    if !rule.name.is_empty() {
        out.insert("name".into(), json!(rule.name));
    }
    if !rule.tags.is_empty() {
        out.insert("tags".into(), json!(rule.tags));
    }
    out.insert("sql".into(), json!(rule.sql));
    out.insert("actions".into(), actions_to_json(&rule.actions));
    if let Some(options) = &rule.options {
        out.insert("options".into(), options_to_json(options));
    }
    if let Some(triggered) = rule.triggered {
        out.insert("triggered".into(), json!(triggered));
    }
    Value::Object(out)
}

/// Actions as eKuiper writes them: `[{"type": {props}}, ...]`.
pub fn actions_to_json(actions: &[Action]) -> Value {
    actions
        .iter()
        .map(|a| {
            let props = a.props.as_ref().map(struct_to_json).unwrap_or_default();
            json!({ a.r#type.clone(): props })
        })
        .collect()
}

/// Options in eKuiper's camelCase; unset optional fields are left out.
pub fn options_to_json(options: &RuleOptions) -> Value {
    let mut out = Map::new();
    out.insert("isEventTime".into(), json!(options.is_event_time));
    put(&mut out, "lateTolerance", options.late_tolerance_ms.map(|v| json!(v)));
    put(&mut out, "bufferLength", options.buffer_length.map(|v| json!(v)));
    out.insert("sendMetaToSink".into(), json!(options.send_meta_to_sink));
    out.insert("qos".into(), json!(options.qos));
    if options.send_error {
        out.insert("sendError".into(), json!(true));
    }
    if !options.cron.is_empty() {
        out.insert("cron".into(), json!(options.cron));
    }
    put(&mut out, "duration", options.duration_ms.map(|v| json!(v)));
    put(&mut out, "concurrency", options.concurrency.map(|v| json!(v)));
    if options.debug {
        out.insert("debug".into(), json!(true));
    }
    if options.send_nil_field {
        out.insert("sendNilField".into(), json!(true));
    }
    if !options.log_filename.is_empty() {
        out.insert("logFilename".into(), json!(options.log_filename));
    }
    if !options.cron_datetime_range.is_empty() {
        let ranges: Vec<Value> = options
            .cron_datetime_range
            .iter()
            .map(|r| json!({"beginTimestamp": r.begin_ms, "endTimestamp": r.end_ms}))
            .collect();
        out.insert("cronDatetimeRange".into(), Value::Array(ranges));
    }
    put(&mut out, "checkpointInterval", options.checkpoint_interval_ms.map(|v| json!(v)));
    put(&mut out, "restartStrategy", options.restart_strategy.as_ref().map(restart_to_json));
    match options.buffer_full() {
        BufferFull::Unspecified => {}
        BufferFull::Drop => put(&mut out, "bufferFull", Some(json!("drop"))),
        BufferFull::Block => put(&mut out, "bufferFull", Some(json!("block"))),
    }
    Value::Object(out)
}

fn restart_to_json(restart: &RestartStrategy) -> Value {
    let mut out = Map::new();
    out.insert("attempts".into(), json!(restart.attempts));
    put(&mut out, "delay", restart.delay_ms.map(|v| json!(v)));
    put(&mut out, "multiplier", restart.multiplier.map(number));
    put(&mut out, "maxDelay", restart.max_delay_ms.map(|v| json!(v)));
    put(&mut out, "jitterFactor", restart.jitter_factor.map(number));
    Value::Object(out)
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests;
