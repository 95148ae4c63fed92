//! The decoder: a source event → a row, checked against the stream's schema.

use std::sync::Arc;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use chrono::{DateTime, Utc};
use oort_sql::{FieldType, StreamDef};

use crate::connector::{Payload, SourceEvent};
use crate::functions::datetime::{TimeParser, parse_datetime};
use crate::value::{Map, Value};

/// Decodes events of one stream: its payload per FORMAT, then the declared
/// fields kept and converted (a schemaless stream keeps everything).
pub struct Decoder {
    stream: StreamDef,
    format: Format,
    /// Declared field names, allocated once rather than once per event.
    names: Vec<Arc<str>>,
    /// The `TIMESTAMP` field and how its strings are read.
    timestamp: Option<TimestampField>,
}

/// A stream's `TIMESTAMP` field and how a string in it is read: with the
/// stream's `TIMESTAMP_FORMAT`, else as RFC 3339 or `yyyy-MM-dd
/// HH:mm:ss[.fff]` (UTC). A number is Unix milliseconds.
#[derive(Debug, Clone)]
pub struct TimestampField {
    /// The field's name.
    pub name: Arc<str>,
    /// `TIMESTAMP_FORMAT`, read; `Err` says why it cannot be (a stream
    /// checked by [`timestamp_format`] never has one).
    format: Option<Result<TimeParser, String>>,
}

/// A stream's `TIMESTAMP_FORMAT` (none when absent or empty), refused,
/// naming the option, when it is not a pattern a time can be read with.
pub fn timestamp_format(stream: &StreamDef) -> Result<Option<TimeParser>, crate::ConnectorError> {
    let key = oort_sql::option_key::TIMESTAMP_FORMAT;
    let Some(pattern) = stream.timestamp_format().filter(|p| !p.is_empty()) else { return Ok(None) };
    TimeParser::new(pattern)
        .map(Some)
        .map_err(|e| crate::ConnectorError::Option { key: key.into(), message: format!("option {key}: {e}") })
}

impl TimestampField {
    /// The stream's, when it has a `TIMESTAMP` field.
    fn of(stream: &StreamDef) -> Option<Self> {
        let name = Arc::from(stream.timestamp_field()?);
        let format = timestamp_format(stream).map_err(|e| e.to_string()).transpose();
        Some(Self { name, format })
    }

    /// A string of the field as a point in time.
    fn parse(&self, text: &str) -> Result<DateTime<chrono::FixedOffset>, String> {
        let field = &self.name;
        match &self.format {
            Some(Ok(parser)) => parser.parse(text).map_err(|e| format!("TIMESTAMP field {field}: {e}")),
            Some(Err(e)) => Err(format!("TIMESTAMP field {field}: {e}")),
            None => parse_datetime(text).map(|t| t.fixed_offset()).ok_or_else(|| {
                format!(
                    "TIMESTAMP field {field}: cannot read {text:?} as a time (RFC 3339 or yyyy-MM-dd HH:mm:ss; \
                     TIMESTAMP_FORMAT gives another pattern)"
                )
            }),
        }
    }

    /// The event time of a row (Unix ms): the field's milliseconds, datetime,
    /// or string.
    pub fn event_time(&self, row: &Map) -> Result<i64, String> {
        let field = &self.name;
        match row.get(field) {
            Some(Value::Int(ms)) => Ok(*ms),
            Some(Value::Float(ms)) => Ok(*ms as i64),
            Some(Value::Timestamp(t)) => Ok(t.timestamp_millis()),
            Some(Value::String(text)) => self.parse(text).map(|t| t.timestamp_millis()),
            Some(other) => Err(format!("TIMESTAMP field {field} is {} {other}, not a time", other.type_name())),
            None => Err(format!("TIMESTAMP field {field} is missing")),
        }
    }
}

/// The FORMATs the decoder reads, lower-case.
pub const FORMATS: &[&str] = &["json", "binary", "delimited", "protobuf"];

/// The payload encodings a stream may declare with FORMAT.
#[derive(Debug, Clone, PartialEq)]
enum Format {
    Json,
    Binary,
    /// eKuiper's `delimited`: text split at the stream's `DELIMITER` (`,` by
    /// default); the declared fields in order, else `col0`, `col1`...
    Delimited(String),
    /// A message of a registered schema (`SCHEMAID="<schema>.<Message>"`).
    Protobuf(oort_schema::MessageDescriptor),
    Unsupported(String),
}

/// The message a `FORMAT="protobuf"` stream's `SCHEMAID` names.
pub fn protobuf_message(
    stream: &StreamDef,
    schemas: &oort_schema::SchemaRegistry,
) -> Result<oort_schema::MessageDescriptor, crate::ConnectorError> {
    let key = oort_sql::option_key::SCHEMAID;
    let id = stream.options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()).ok_or_else(|| {
        crate::ConnectorError::Option {
            key: key.into(),
            message: "FORMAT \"protobuf\" needs SCHEMAID, the message: \"<schema>.<Message>\"".into(),
        }
    })?;
    schemas.message(id).map_err(|e| crate::ConnectorError::Option { key: key.into(), message: e.to_string() })
}

/// A stream's `DELIMITER`, with `\t` for a tab; `,` by default.
pub fn delimiter_of(stream: &StreamDef) -> String {
    match stream.options.get(oort_sql::option_key::DELIMITER).map(String::as_str) {
        None | Some("") => ",".to_owned(),
        Some("\\t") => "\t".to_owned(),
        Some(other) => other.to_owned(),
    }
}

impl Decoder {
    /// A decoder for a stream whose `FORMAT="protobuf"` messages are found
    /// in `schemas`.
    /// An invalid `TIMESTAMP_FORMAT` is refused.
    pub fn for_stream(
        stream: &StreamDef,
        schemas: &oort_schema::SchemaRegistry,
    ) -> Result<Self, crate::ConnectorError> {
        timestamp_format(stream)?;
        let mut decoder = Self::new(stream);
        if matches!(&decoder.format, Format::Unsupported(f) if f == "protobuf") {
            decoder.format = Format::Protobuf(protobuf_message(stream, schemas)?);
        }
        Ok(decoder)
    }

    /// A decoder for a stream, without schemas (a protobuf stream's events
    /// fail, as do the string times of an invalid `TIMESTAMP_FORMAT`).
    pub fn new(stream: &StreamDef) -> Self {
        let names = stream.fields.iter().map(|f| Arc::from(f.name.as_str())).collect();
        let format = match stream.format().to_ascii_lowercase().as_str() {
            "json" => Format::Json,
            "binary" => Format::Binary,
            "delimited" => Format::Delimited(delimiter_of(stream)),
            other => Format::Unsupported(other.to_owned()),
        };
        Self { stream: stream.clone(), format, names, timestamp: TimestampField::of(stream) }
    }

    /// The stream's `TIMESTAMP` field, which gives a rule in event time its events' times.
    pub fn timestamp_field(&self) -> Option<&TimestampField> {
        self.timestamp.as_ref()
    }

    /// Decodes one event into a row's fields.
    pub fn decode(&self, event: SourceEvent) -> Result<Map, String> {
        let bytes = match event.payload {
            Payload::Map(map) if self.stream.is_schemaless() => return Ok(map),
            Payload::Map(mut map) => {
                let values: Vec<_> = self.names.iter().map(|name| map.remove(name.as_ref())).collect();
                return self.declared(values);
            }
            Payload::Bytes(bytes) => bytes,
        };
        match &self.format {
            Format::Json if self.stream.is_schemaless() => crate::json::decode_object(&bytes),
            Format::Json => {
                // Only the declared fields are materialised; the others are skipped unparsed.
                self.declared(crate::json::decode_fields(&bytes, &self.names)?)
            }
            Format::Binary => {
                // eKuiper names the single column of a binary stream `self` unless declared.
                let name = self.names.first().cloned().unwrap_or_else(|| Arc::from("self"));
                Ok(Map::from([(name, Value::Bytes(bytes.into()))]))
            }
            Format::Delimited(delimiter) => self.delimited(&bytes, delimiter),
            Format::Protobuf(message) => {
                let json = oort_schema::decode(message, &bytes).map_err(|e| e.to_string())?;
                let Value::Map(map) = crate::json::json_to_value(&json) else {
                    return Err(format!("{} did not decode to an object", message.full_name()));
                };
                if self.stream.is_schemaless() {
                    return Ok(Arc::unwrap_or_clone(map));
                }
                let mut map = Arc::unwrap_or_clone(map);
                let values: Vec<_> = self.names.iter().map(|name| map.remove(name.as_ref())).collect();
                self.declared(values)
            }
            Format::Unsupported(other) => {
                Err(format!("FORMAT \"{other}\" is not supported; use json, binary, delimited or protobuf"))
            }
        }
    }

    /// A `delimited` payload's row: its texts by declared field (converted to
    /// the field's type; an empty text is NULL), or as `col0`, `col1`...
    fn delimited(&self, bytes: &[u8], delimiter: &str) -> Result<Map, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("a delimited payload is not UTF-8: {e}"))?;
        let text = text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
        let tokens = text.split(delimiter);
        if self.stream.is_schemaless() {
            return Ok(tokens.enumerate().map(|(i, t)| (Arc::from(format!("col{i}")), Value::string(t))).collect());
        }
        let mut tokens = tokens.map(Some).chain(std::iter::repeat(None));
        let values = self
            .stream
            .fields
            .iter()
            .map(|field| {
                let Some(token) = tokens.next().flatten() else { return Ok(None) };
                let value = match (&field.field_type, token) {
                    (FieldType::String, _) => Value::string(token),
                    (_, "") => Value::Null,
                    (FieldType::Bigint, _) => Value::Int(
                        token.trim().parse().map_err(|_| format!("field {}: {token:?} is not a BIGINT", field.name))?,
                    ),
                    (FieldType::Float, _) => Value::Float(
                        token.trim().parse().map_err(|_| format!("field {}: {token:?} is not a FLOAT", field.name))?,
                    ),
                    _ => Value::string(token),
                };
                Ok(Some(value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        self.declared(values)
    }

    /// The row of the declared fields, in declaration order, each converted to
    /// its type, from the decoded values of the fields in that order. A
    /// string in a DATETIME `TIMESTAMP` field is read as that field reads it
    /// (with `TIMESTAMP_FORMAT`).
    fn declared(&self, values: Vec<Option<Value>>) -> Result<Map, String> {
        let mut row = Map::new();
        for ((field, name), value) in self.stream.fields.iter().zip(&self.names).zip(values) {
            let timestamp =
                self.timestamp.as_ref().filter(|t| field.field_type == FieldType::Datetime && t.name == *name);
            let value = match (value, timestamp) {
                (Some(Value::String(text)), Some(timestamp)) => Value::Timestamp(timestamp.parse(&text)?),
                (Some(v), _) => convert(v, &field.field_type).map_err(|e| format!("field {}: {e}", field.name))?,
                (None, _) if self.stream.strict_validation() => return Err(format!("field {} is missing", field.name)),
                (None, _) => Value::Null,
            };
            row.insert(Arc::clone(name), value);
        }
        Ok(row)
    }
}

/// Converts a decoded value to a declared type, as eKuiper's JSON converter
/// does with a schema: a number in a STRING column becomes its text, a number
/// or a word (`true`, `0`, `F`...) in a BOOLEAN column a boolean, text that
/// is not base64 in a BYTEA column its bytes; another kind is refused.
pub fn convert(value: Value, to: &FieldType) -> Result<Value, String> {
    let mismatch = || Err(format!("expected {to}, got {} {value}", value.type_name()));
    Ok(match (to, &value) {
        (_, Value::Null) => Value::Null,
        (FieldType::Bigint, Value::Int(_)) => value,
        (FieldType::Bigint, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Int(*f as i64),
        (FieldType::Float, Value::Float(_)) => value,
        (FieldType::Float, Value::Int(i)) => Value::Float(*i as f64),
        (FieldType::String, Value::String(_))
        | (FieldType::Boolean, Value::Bool(_))
        | (FieldType::Datetime, Value::Timestamp(_))
        | (FieldType::Bytea, Value::Bytes(_))
        | (FieldType::Array(_), Value::List(_))
        | (FieldType::Struct(_), Value::Map(_)) => value,
        (FieldType::String, Value::Int(_) | Value::Float(_)) => Value::string(value.to_string()),
        (FieldType::Boolean, Value::Int(_) | Value::Float(_)) => Value::Bool(value.as_f64() != Some(0.0)),
        (FieldType::Boolean, Value::String(s)) => match go_parse_bool(s) {
            Some(b) => Value::Bool(b),
            None => return mismatch(),
        },
        (FieldType::Datetime, Value::Int(ms)) => match DateTime::<Utc>::from_timestamp_millis(*ms) {
            Some(t) => Value::utc(t),
            None => return mismatch(),
        },
        (FieldType::Datetime, Value::Float(ms)) if ms.is_finite() => {
            match DateTime::<Utc>::from_timestamp_millis(*ms as i64) {
                Some(t) => Value::utc(t),
                None => return mismatch(),
            }
        }
        (FieldType::Datetime, Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::utc(t.with_timezone(&Utc)),
            Err(_) => return mismatch(),
        },
        (FieldType::Bytea, Value::String(s)) => {
            Value::Bytes(BASE64_STANDARD.decode(s.as_bytes()).unwrap_or_else(|_| s.as_bytes().to_vec()).into())
        }
        _ => return mismatch(),
    })
}

/// Go's `strconv.ParseBool`: what eKuiper takes as a boolean in text.
fn go_parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(sql: &str) -> StreamDef {
        oort_sql::parse_stream_ddl(sql).unwrap()
    }

    fn bytes(json: &str) -> SourceEvent {
        SourceEvent::new(Payload::Bytes(json.as_bytes().to_vec()), Arc::default())
    }

    /// The event time of a JSON payload of a stream, in Unix ms.
    fn event_time_of(ddl: &str, json: &str) -> Result<i64, String> {
        let decoder = Decoder::new(&stream(ddl));
        let row = decoder.decode(bytes(json))?;
        decoder.timestamp_field().expect("a TIMESTAMP field").event_time(&row)
    }

    #[test]
    fn a_string_event_time_is_read_with_timestamp_format_else_as_rfc_3339() {
        let with = |fields: &str, format: &str| {
            format!(r#"CREATE STREAM s ({fields}) WITH (DATASOURCE="s", TIMESTAMP="t"{format})"#)
        };
        let pattern = r#", TIMESTAMP_FORMAT="yyyy-MM-dd HH:mm:ss""#;
        let utc = 1_709_211_845_000; // 2024-02-29T13:04:05Z
        for fields in ["", "t STRING", "t DATETIME"] {
            let ddl = with(fields, pattern);
            assert_eq!(event_time_of(&ddl, r#"{"t": "2024-02-29 13:04:05"}"#), Ok(utc), "{fields}");
            if fields != "t STRING" {
                assert_eq!(event_time_of(&ddl, r#"{"t": 1000}"#), Ok(1000), "a number is still Unix ms");
            }
            let error = event_time_of(&ddl, r#"{"t": "2024-02-29T13:04:05Z"}"#).unwrap_err();
            assert!(error.contains("TIMESTAMP field t: cannot read"), "{error}");
        }
        let ddl = with("t STRING", r#", TIMESTAMP_FORMAT="yyyy-MM-dd'T'HH:mm:ss.SSSZ""#);
        assert_eq!(event_time_of(&ddl, r#"{"t": "2024-02-29T21:04:05.250+0800"}"#), Ok(utc + 250));
        // Without TIMESTAMP_FORMAT: RFC 3339, or a date and time in UTC.
        for fields in ["", "t STRING", "t DATETIME"] {
            let ddl = with(fields, "");
            assert_eq!(event_time_of(&ddl, r#"{"t": "2024-02-29T15:04:05+02:00"}"#), Ok(utc), "{fields}");
            assert_eq!(event_time_of(&ddl, r#"{"t": "2024-02-29 13:04:05.5"}"#), Ok(utc + 500), "{fields}");
            assert!(event_time_of(&ddl, r#"{"t": "29/02/2024"}"#).unwrap_err().contains("TIMESTAMP_FORMAT"));
        }
    }

    #[test]
    fn a_datetime_timestamp_field_keeps_the_time_its_format_reads_and_other_fields_do_not_use_it() {
        let ddl = r#"CREATE STREAM s (t DATETIME, u DATETIME) WITH (DATASOURCE="s", TIMESTAMP="t", TIMESTAMP_FORMAT="dd/MM/yyyy HH:mm")"#;
        let decoder = Decoder::new(&stream(ddl));
        let row = decoder.decode(bytes(r#"{"t": "29/02/2024 13:04", "u": "2024-02-29T13:04:00Z"}"#)).unwrap();
        assert_eq!(row.get("t"), row.get("u"));
        assert!(matches!(row.get("t"), Some(Value::Timestamp(_))));
        let error = decoder.decode(bytes(r#"{"t": "2024-02-29T13:04:00Z"}"#)).unwrap_err();
        assert!(error.contains("TIMESTAMP field t"), "{error}");
        let error = decoder.decode(bytes(r#"{"u": "29/02/2024 13:04"}"#)).unwrap_err();
        assert!(error.contains("field u: expected DATETIME"), "{error}");
    }

    #[test]
    fn an_invalid_timestamp_format_is_refused_by_the_decoder_of_a_rule_and_fails_each_string_time_otherwise() {
        let ddl = r#"CREATE STREAM s () WITH (DATASOURCE="s", TIMESTAMP="t", TIMESTAMP_FORMAT="HH:mm")"#;
        let schemas = oort_schema::SchemaRegistry::default();
        let error = Decoder::for_stream(&stream(ddl), &schemas).err().expect("refused");
        assert!(
            matches!(&error, crate::ConnectorError::Option { key, message } if key == "TIMESTAMP_FORMAT" && message.contains("no year")),
            "{error}"
        );
        assert!(event_time_of(ddl, r#"{"t": "13:04"}"#).unwrap_err().contains("no year"));
        assert_eq!(event_time_of(ddl, r#"{"t": 5}"#), Ok(5));
    }

    #[test]
    fn keeps_and_converts_declared_fields() {
        let s = stream(r#"CREATE STREAM s (t FLOAT, id BIGINT, name STRING) WITH (DATASOURCE="s")"#);
        let d = Decoder::new(&s);
        let row = d.decode(bytes(r#"{"t": 20, "id": 7, "extra": true}"#)).unwrap();
        assert_eq!(row.get("t"), Some(&Value::Float(20.0)));
        assert_eq!(row.get("name"), Some(&Value::Null));
        assert!(!row.contains_key("extra"));
        let err = d.decode(bytes(r#"{"t": "hot"}"#)).unwrap_err();
        assert!(err.contains("field t") && err.contains("FLOAT"), "{err}");
        assert!(d.decode(bytes("not json")).unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn loose_conversions_as_ekuipers_json_converter() {
        let string = FieldType::String;
        assert_eq!(convert(Value::Int(12), &string), Ok(Value::string("12")));
        assert_eq!(convert(Value::Float(1.5), &string), Ok(Value::string("1.5")));
        assert_eq!(convert(Value::Float(12.0), &string), Ok(Value::string("12")), "as Go prints a float64");
        assert_eq!(convert(Value::Int(0), &FieldType::Boolean), Ok(Value::Bool(false)));
        assert_eq!(convert(Value::string("T"), &FieldType::Boolean), Ok(Value::Bool(true)));
        assert!(convert(Value::string("yes"), &FieldType::Boolean).is_err());
        assert_eq!(convert(Value::string("raw!"), &FieldType::Bytea), Ok(Value::Bytes(Arc::from(&b"raw!"[..]))));
        assert!(convert(Value::Bool(true), &string).is_err(), "a boolean is not text");
        assert!(convert(Value::string("1"), &FieldType::Bigint).is_err());
    }

    #[test]
    fn declared_fields_skip_the_others_and_keep_the_last_duplicate() {
        let s = stream(r#"CREATE STREAM s (t FLOAT, name STRING) WITH (DATASOURCE="s")"#);
        let d = Decoder::new(&s);
        let row = d.decode(bytes(r#"{"big": {"deep": [1, {"x": "y"}]}, "t": 1, "t": 2.5, "name": "a\"b"}"#)).unwrap();
        assert_eq!(row.len(), 2);
        assert_eq!(row.get("t"), Some(&Value::Float(2.5)));
        assert_eq!(row.get("name"), Some(&Value::string("a\"b")));
        assert!(d.decode(bytes("[1]")).unwrap_err().contains("JSON object"));
        assert!(d.decode(bytes(r#"{"t": 1} trailing"#)).unwrap_err().contains("invalid JSON"));
        let map = SourceEvent::map(Map::from([(Arc::from("t"), Value::Int(3)), (Arc::from("x"), Value::Null)]));
        assert_eq!(d.decode(map).unwrap().get("t"), Some(&Value::Float(3.0)));
        let strict = stream(r#"CREATE STREAM s (t FLOAT) WITH (DATASOURCE="s", STRICT_VALIDATION="true")"#);
        assert!(Decoder::new(&strict).decode(bytes("{}")).unwrap_err().contains("missing"));
    }

    #[test]
    fn delimited_payloads_are_split_into_the_declared_fields_or_numbered_columns() {
        let typed = stream(
            r#"CREATE STREAM s (id BIGINT, t FLOAT, on BOOLEAN, name STRING) WITH (DATASOURCE="s", FORMAT="delimited", DELIMITER=";")"#,
        );
        let row = Decoder::new(&typed).decode(bytes("7;21.5;true;a,b\n")).unwrap();
        assert_eq!(row.get("id"), Some(&Value::Int(7)));
        assert_eq!(row.get("t"), Some(&Value::Float(21.5)));
        assert_eq!(row.get("on"), Some(&Value::Bool(true)));
        assert_eq!(row.get("name"), Some(&Value::string("a,b")));
        let short = Decoder::new(&typed).decode(bytes("8;")).unwrap();
        assert_eq!(
            (short.get("id"), short.get("t"), short.get("name")),
            (Some(&Value::Int(8)), Some(&Value::Null), Some(&Value::Null))
        );
        assert!(Decoder::new(&typed).decode(bytes("x;1")).unwrap_err().contains("\"x\" is not a BIGINT"));
        let loose = stream(r#"CREATE STREAM l () WITH (DATASOURCE="l", FORMAT="delimited")"#);
        let row = Decoder::new(&loose).decode(bytes("a,1")).unwrap();
        assert_eq!(row, Map::from([(Arc::from("col0"), Value::string("a")), (Arc::from("col1"), Value::string("1"))]));
    }

    #[test]
    fn schemaless_keeps_everything_and_binary_wraps_bytes() {
        let s = stream(r#"CREATE STREAM s () WITH (DATASOURCE="s")"#);
        assert_eq!(Decoder::new(&s).decode(bytes(r#"{"a": {"b": 1}}"#)).unwrap().len(), 1);
        let b = stream(r#"CREATE STREAM b () WITH (DATASOURCE="b", FORMAT="binary")"#);
        let row = Decoder::new(&b).decode(bytes("\u{1}\u{2}")).unwrap();
        assert_eq!(row.get("self"), Some(&Value::Bytes(vec![1u8, 2].into())));
    }
}
