//! [`SinkEncoder`]: turns a rule's results into the payloads a sink sends,
//! following eKuiper's common sink properties.
//!
//! A sink hands the encoder its whole action properties; the encoder reads its
//! own keys and ignores the others (they belong to the sink or to the engine).
//!
//! | property | type, default | meaning |
//! |---|---|---|
//! | `sendSingle` | bool, `false` | `true`: one payload per row. `false`: one payload per result, a JSON array of its rows. |
//! | `omitIfEmpty` | bool, `false` | `true`: an empty result produces no payload (instead of `[]`). |
//! | `dataTemplate` | string, none | A template rendering each payload (see below). |
//! | `dataField` | string, none | Keep only this field of each row (or of the template's JSON output). |
//! | `fields` | list of strings, none | Keep only these fields of each row, in this order; a missing field is `null`. |
//! | `format` | `"json"` (default) or `"binary"` | `binary`: the payload is the value of the row's single BYTEA field, as is. |
//!
//! The steps, in eKuiper's order: group the rows (`sendSingle`), render the
//! template, extract `dataField`, select `fields`, encode per `format`.
//!
//! Before the encoder, the engine's sink task takes `batchSize` and
//! `lingerInterval` (`oort_engine::sink_batch`): with them, a sink gets the
//! rows of several results as one result, `batchSize` rows at a time or what
//! came within `lingerInterval` of the first.
//!
//! # Templates
//!
//! A `dataTemplate` is written in eKuiper's Go `text/template` syntax, as is,
//! or in [minijinja](https://docs.rs/minijinja)'s (Jinja2); the syntax is read
//! from its actions (`encode/template.rs`): `{{.temperature}}`, `{{json .}}`,
//! `{{range .}}…{{end}}` are Go's, `{{ temperature }}`, `{% for … %}` minijinja's.
//!
//! | eKuiper (Go), as is | the same in minijinja |
//! |---|---|
//! | `{{.temperature}}` | `{{ temperature }}` |
//! | `{{json .}}` / `{{toJson .}}` (sendSingle) | `{{ row \| tojson }}` |
//! | `{{json .}}` (array) | `{{ rows \| tojson }}` |
//! | `{{index . 0 "ab"}}` | `{{ rows[0].ab }}` |
//! | `{{range .}}{{.ab}}{{end}}` | `{% for r in rows %}{{ r.ab }}{% endfor %}` |
//! | `{{if lt .t 30.0}}a{{else}}b{{end}}` | `{% if t < 30 %}a{% else %}b{% endif %}` |
//!
//! In a Go template, `.` is the row (`sendSingle: true`) or the list of rows;
//! Go's built-in functions are there (`printf`, `index`, `len`, `eq`, …) and
//! eKuiper's `json`, `toJson`, `base64` and `prop` (a server property,
//! `OORT_PROPS_<KEY>`); eKuiper's other (sprig) functions are not. A NULL
//! prints as `<nil>`, as in Go.
//!
//! What a minijinja template sees:
//! - with `sendSingle: true`, it is rendered once per row; every field of the
//!   row is a variable (`{{ temperature }}`), and `row` is the whole row (a
//!   field named `row` takes precedence over it);
//! - with `sendSingle: false`, it is rendered once per result; `rows` and its
//!   alias `data` are the list of rows.
//!
//! Values appear as in Oort's JSON output: BYTEA as base64 text, DATETIME as
//! RFC 3339 text. A NULL prints as `null` and booleans as `true`/`false` (so
//! `{"t": {{ t }}}` stays valid JSON); an undefined variable (a field the row does not have) prints as
//! nothing; strings print without quotes (use `{{ s | tojson }}` to quote
//! them). There is no HTML escaping. minijinja's built-in filters and tests are
//! available (`tojson`, `round`, `upper`, `default`, `length`, `urlencode`, ...).
//!
//! The template's output is the payload as is, unless `dataField` or `fields`
//! is also set: then the output must be JSON, which is parsed, narrowed, and
//! encoded again. A template with a syntax error is rejected when the rule is
//! created.
//!
//! # Not supported yet
//!
//! `format` value `custom`,
//! `compression` and `encryption` are rejected as configuration errors rather
//! than ignored. eKuiper's sprig template functions are not there (Go's own and
//! eKuiper's `json`, `toJson`, `base64`, `prop` are). The sink cache's properties (`enableCache`
//! and the others) are the engine's, for every sink
//! ([`oort_engine::sink_cache`]).

use std::sync::Arc;

use oort_engine::json::{JsonValue, value_to_json};
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Value};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use template::DataTemplate;

/// The properties the encoder reads, as a sink declares them after its own;
/// every other key is ignored.
pub const COMMON_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "sendSingle",
        kind: OptionKind::Bool,
        default: "false",
        description: "true: one payload per row; false: one JSON array per result.",
    },
    ConnectorOption {
        key: "omitIfEmpty",
        kind: OptionKind::Bool,
        default: "false",
        description: "true: an empty result produces no payload.",
    },
    ConnectorOption {
        key: "dataTemplate",
        kind: OptionKind::Text,
        default: "",
        description: "A template rendering each payload: eKuiper's Go text/template syntax, or minijinja's.",
    },
    ConnectorOption {
        key: "dataField",
        kind: OptionKind::Text,
        default: "",
        description: "Keep only this field of each row.",
    },
    ConnectorOption {
        key: "fields",
        kind: OptionKind::List,
        default: "",
        description: "Keep only these fields of each row, in this order.",
    },
    ConnectorOption {
        key: "format",
        kind: OptionKind::OneOf(&["json", "binary", "delimited", "protobuf"]),
        default: "json",
        description: "binary: the payload is the row's single BYTEA value; delimited: each row's values joined by \
                      delimiter, a result's rows on lines.",
    },
    ConnectorOption {
        key: "schemaId",
        kind: OptionKind::Text,
        default: "",
        description: "protobuf: the message, <schema>.<Message>, of a schema registered with SchemaService.",
    },
    ConnectorOption {
        key: "delimiter",
        kind: OptionKind::Text,
        default: ",",
        description: "delimited, and the file sink's csv: the field separator.",
    },
    ConnectorOption {
        key: "hasHeader",
        kind: OptionKind::Bool,
        default: "false",
        description: "delimited: a result's payload starts with a line of the field names; the file sink's csv: a \
                      header line in a new or empty file.",
    },
];

/// eKuiper common sink properties Oort does not implement yet: rejected when set.
const UNSUPPORTED_KEYS: [&str; 2] = ["compression", "encryption"];

/// The encoder's properties, as written in a rule action.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct EncoderProps {
    /// One payload per row instead of one JSON array per result.
    send_single: bool,
    /// No payload at all for an empty result.
    omit_if_empty: bool,
    /// A template rendering each payload (Go's or minijinja's syntax); empty means none.
    data_template: Option<String>,
    /// The one field to keep of each row (or of the template's output); empty means none.
    data_field: Option<String>,
    /// The fields to keep, in order.
    fields: Option<Vec<String>>,
    /// `json` (default), `binary` or `delimited`.
    format: Option<String>,
    /// The separator of `delimited` (and of the file sink's CSV).
    delimiter: Option<String>,
    /// `protobuf`: `<schema>.<Message>`.
    schema_id: Option<String>,
    /// A header line (`delimited`, and the file sink's CSV).
    has_header: bool,
}

/// How a payload is serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// JSON text.
    Json,
    /// The bytes of a BYTEA value, as they are.
    Binary,
    /// eKuiper's `delimited`: a row's values joined by `delimiter` (in
    /// `fields` order, else by name), a result's rows on lines after an
    /// optional header line. Nothing is quoted, as in eKuiper.
    Delimited {
        /// The separator.
        delimiter: String,
        /// Whether a result starts with a line of the field names.
        header: bool,
    },
    /// A message of a registered schema (`schemaId`), one per row.
    Protobuf(oort_schema::MessageDescriptor),
}

/// A payload, and the values of the dynamic props rendered for it.
pub type PayloadWithProps = (Vec<u8>, Vec<String>);

/// A sink property whose value may come from the result, as eKuiper's
/// dynamic props: plain text, or a template such as `{{.deviceId}}` (Go's
/// syntax, or minijinja's, as `dataTemplate`) rendered for the row
/// (`sendSingle`) or the rows each payload carries.
#[derive(Debug)]
pub struct DynamicProp {
    name: &'static str,
    text: String,
    template: Option<DataTemplate>,
}

impl DynamicProp {
    /// The property `name` of value `text`; a template that does not compile is refused.
    pub fn new(name: &'static str, text: &str) -> Result<Self, ConnectorError> {
        let template = if text.contains("{{") || text.contains("{%") {
            let compiled = DataTemplate::compile(text.to_owned())
                .map_err(|e| ConnectorError::Config(format!("sink property `{name}`: {e}")))?;
            Some(compiled)
        } else {
            None
        };
        Ok(Self { name, text: text.to_owned(), template })
    }

    /// Whether its value depends on the result.
    pub fn is_dynamic(&self) -> bool {
        self.template.is_some()
    }

    /// Its text, as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its value for one row.
    pub fn render_row(&self, row: &Map) -> Result<String, ConnectorError> {
        self.render(Unit::Row(row))
    }

    /// Its value for a whole result.
    pub fn render_rows(&self, rows: &[Map]) -> Result<String, ConnectorError> {
        self.render(Unit::Rows(rows))
    }

    fn render(&self, unit: Unit<'_>) -> Result<String, ConnectorError> {
        match &self.template {
            None => Ok(self.text.clone()),
            Some(template) => {
                template.render(unit).map_err(|e| encode_error(format!("sink property `{}`: {e}", self.name)))
            }
        }
    }
}

/// Encodes results into payloads per eKuiper's common sink properties; see the
/// [module documentation](self) for the properties and the template syntax.
#[derive(Debug)]
pub struct SinkEncoder {
    send_single: bool,
    omit_if_empty: bool,
    template: Option<DataTemplate>,
    data_field: Option<Arc<str>>,
    fields: Option<Vec<Arc<str>>>,
    format: Format,
}

/// What `dataField` or `fields` yields for a missing field.
static NULL: Value = Value::Null;

impl SinkEncoder {
    /// Reads the encoder's properties out of an action's properties, ignoring
    /// the keys that are not the encoder's. A wrong type or value, or a
    /// template with a syntax error, is a [`ConnectorError::Config`].
    pub fn from_props(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        Self::with_schemas(props, None)
    }

    /// The encoder of a sink's action, whose `format: "protobuf"` finds its
    /// `schemaId` among the server's schemas.
    pub fn of(config: &oort_engine::SinkConfig) -> Result<Self, ConnectorError> {
        Self::with_schemas(&config.props, Some(&config.schemas))
    }

    fn with_schemas(
        props: &serde_json::Map<String, serde_json::Value>,
        schemas: Option<&oort_schema::SchemaRegistry>,
    ) -> Result<Self, ConnectorError> {
        for key in UNSUPPORTED_KEYS {
            if props.get(key).is_some_and(|v| !v.is_null() && v.as_str() != Some("")) {
                return Err(ConnectorError::Config(format!("the sink property `{key}` is not supported yet")));
            }
        }
        let props: EncoderProps = props_subset(props, &keys(COMMON_OPTIONS))?;

        let format = match props.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("json") => Format::Json,
            Some("binary") => Format::Binary,
            Some("delimited") => {
                if props.has_header && props.send_single {
                    return Err(ConnectorError::Config(
                        "hasHeader puts a header line before a result's rows: it needs sendSingle false".into(),
                    ));
                }
                let delimiter = match props.delimiter.as_deref() {
                    None | Some("") => ",".to_owned(),
                    Some("\\t") => "\t".to_owned(),
                    Some(other) => other.to_owned(),
                };
                Format::Delimited { delimiter, header: props.has_header }
            }
            Some("protobuf") => {
                if !props.send_single {
                    return Err(ConnectorError::Config(
                        "format \"protobuf\" encodes one message per row: set sendSingle to true".into(),
                    ));
                }
                let id = props.schema_id.as_deref().filter(|id| !id.trim().is_empty()).ok_or_else(|| {
                    ConnectorError::Config("format \"protobuf\" needs schemaId, \"<schema>.<Message>\"".into())
                })?;
                let schemas = schemas.ok_or_else(|| {
                    ConnectorError::Config("format \"protobuf\" is not available to this sink".into())
                })?;
                Format::Protobuf(schemas.message(id).map_err(|e| ConnectorError::Config(format!("schemaId: {e}")))?)
            }
            Some(f @ "custom") => {
                return Err(ConnectorError::Config(format!(
                    "the sink format \"{f}\" is not supported yet; use json, binary, delimited or protobuf"
                )));
            }
            Some(other) => {
                return Err(ConnectorError::Config(format!(
                    "unknown sink format \"{other}\"; use json, binary, delimited or protobuf"
                )));
            }
        };
        if !matches!(format, Format::Protobuf(_)) && props.schema_id.as_deref().is_some_and(|id| !id.is_empty()) {
            return Err(ConnectorError::Config("schemaId applies to format \"protobuf\" only".into()));
        }
        let template = match props.data_template.filter(|t| !t.is_empty()) {
            Some(source) => Some(DataTemplate::compile(source)?),
            None => None,
        };
        let data_field = props.data_field.filter(|f| !f.is_empty()).map(Arc::from);
        let fields: Option<Vec<Arc<str>>> = props.fields.map(|fields| fields.into_iter().map(Arc::from).collect());
        if let Some(fields) = &fields
            && let Some(empty) = fields.iter().position(|f| f.is_empty())
        {
            return Err(ConnectorError::Config(format!("sink property `fields`: entry {empty} is empty")));
        }
        if format == Format::Binary {
            if template.is_some() {
                return Err(ConnectorError::Config(
                    "format \"binary\" sends a BYTEA value as is and cannot be combined with dataTemplate".into(),
                ));
            }
            if !props.send_single {
                return Err(ConnectorError::Config(
                    "format \"binary\" sends one BYTEA value per payload: set sendSingle to true".into(),
                ));
            }
        }
        Ok(Self {
            send_single: props.send_single,
            omit_if_empty: props.omit_if_empty,
            template,
            data_field,
            fields,
            format,
        })
    }

    /// Whether each row is a payload of its own.
    pub fn send_single(&self) -> bool {
        self.send_single
    }

    /// Whether a `dataTemplate` is set.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The payload format.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Encodes one result (the rows a rule emitted at once) into the payloads
    /// to send, in order. An error means a row could not be encoded (a
    /// template failing on it, a `binary` row without a single BYTEA field):
    /// retrying the same rows fails the same way.
    pub fn encode(&self, rows: &[Map]) -> Result<Vec<Vec<u8>>, ConnectorError> {
        if rows.is_empty() && self.omit_if_empty {
            return Ok(Vec::new());
        }
        if self.send_single {
            rows.iter().map(|row| self.encode_unit(Unit::Row(row))).collect()
        } else {
            Ok(vec![self.encode_unit(Unit::Rows(rows))?])
        }
    }

    /// [`encode`](Self::encode), with `props` rendered for each payload's
    /// rows: the payloads in order, each with its props' values.
    pub fn encode_with(&self, rows: &[Map], props: &[&DynamicProp]) -> Result<Vec<PayloadWithProps>, ConnectorError> {
        if rows.is_empty() && self.omit_if_empty {
            return Ok(Vec::new());
        }
        let units: Vec<Unit<'_>> =
            if self.send_single { rows.iter().map(Unit::Row).collect() } else { vec![Unit::Rows(rows)] };
        units
            .into_iter()
            .map(|unit| {
                let values = props.iter().map(|p| p.render(unit)).collect::<Result<Vec<_>, _>>()?;
                Ok((self.encode_unit(unit)?, values))
            })
            .collect()
    }

    /// The rows as records of (name, value) in column order, with `dataField`
    /// and `fields` applied, for sinks that write tables (CSV). Ignores
    /// `sendSingle`, `dataTemplate` and `format`, which such sinks reject.
    pub fn records<'a>(&'a self, rows: &'a [Map]) -> Result<Vec<Vec<(&'a str, &'a Value)>>, ConnectorError> {
        rows.iter()
            .map(|row| match self.narrow(Node::Map(row))? {
                Node::Map(map) => Ok(map.iter().map(|(k, v)| (k.as_ref(), v)).collect()),
                Node::Object(pairs) => Ok(pairs),
                other => Err(encode_error(format!("a row narrowed by dataField is {}, not a struct", other.kind()))),
            })
            .collect()
    }

    fn encode_unit(&self, unit: Unit<'_>) -> Result<Vec<u8>, ConnectorError> {
        let parsed;
        let node = match &self.template {
            Some(template) => {
                let text = template.render(unit)?;
                if self.data_field.is_none() && self.fields.is_none() {
                    return Ok(text.into_bytes());
                }
                let JsonValue(value) = serde_json::from_str(&text).map_err(|e| {
                    encode_error(format!("dataTemplate output is not JSON ({e}), so dataField/fields cannot apply"))
                })?;
                parsed = value;
                Node::of(&parsed)
            }
            None => match unit {
                Unit::Row(row) => Node::Map(row),
                Unit::Rows(rows) => Node::List(rows.iter().map(Node::Map).collect()),
            },
        };
        let node = self.narrow(node)?;
        match &self.format {
            Format::Json => serde_json::to_vec(&node).map_err(|e| encode_error(e.to_string())),
            Format::Binary => node.into_bytes(),
            Format::Delimited { delimiter, header } => delimited::encode(&node, delimiter, *header),
            Format::Protobuf(message) => {
                let json = serde_json::to_value(&node).map_err(|e| encode_error(e.to_string()))?;
                oort_schema::encode(message, &json).map_err(|e| encode_error(e.to_string()))
            }
        }
    }

    /// Applies `dataField`, then `fields`.
    fn narrow<'a>(&'a self, node: Node<'a>) -> Result<Node<'a>, ConnectorError> {
        let node = match &self.data_field {
            Some(field) => node.data_field(field),
            None => node,
        };
        match &self.fields {
            Some(fields) => node.select(fields),
            None => Ok(node),
        }
    }
}

/// What one payload is made of.
#[derive(Clone, Copy)]
enum Unit<'a> {
    /// One row (`sendSingle`).
    Row(&'a Map),
    /// A whole result.
    Rows(&'a [Map]),
}

/// A payload's content before serialization, borrowing the rows.
enum Node<'a> {
    /// A row or a struct value.
    Map(&'a Map),
    /// A row narrowed by `fields`: its pairs in order.
    Object(Vec<(&'a str, &'a Value)>),
    /// A result, or a list value.
    List(Vec<Node<'a>>),
    /// Any other value.
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Map(map) => Node::Map(map),
            Value::List(items) => Node::List(items.iter().map(Node::of).collect()),
            other => Node::Value(other),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Map(_) | Node::Object(_) => "a struct",
            Node::List(_) => "an array",
            Node::Value(v) => v.type_name(),
        }
    }

    /// The field `name` of a row; of each row of a list.
    fn data_field(self, name: &str) -> Self {
        match self {
            Node::Map(map) => Node::of(map.get(name).unwrap_or(&NULL)),
            Node::Object(pairs) => Node::of(pairs.iter().find(|(k, _)| *k == name).map_or(&NULL, |(_, v)| *v)),
            Node::List(items) => Node::List(items.into_iter().map(|n| n.data_field(name)).collect()),
            Node::Value(_) => Node::Value(&NULL),
        }
    }

    /// The fields `names` of a row, in order; of each row of a list.
    fn select(self, names: &'a [Arc<str>]) -> Result<Self, ConnectorError> {
        match self {
            Node::Map(map) => {
                Ok(Node::Object(names.iter().map(|n| (n.as_ref(), map.get(n.as_ref()).unwrap_or(&NULL))).collect()))
            }
            Node::Object(pairs) => Ok(Node::Object(
                names
                    .iter()
                    .map(|n| (n.as_ref(), pairs.iter().find(|(k, _)| *k == n.as_ref()).map_or(&NULL, |(_, v)| *v)))
                    .collect(),
            )),
            Node::List(items) => Ok(Node::List(items.into_iter().map(|n| n.select(names)).collect::<Result<_, _>>()?)),
            Node::Value(v) => Err(encode_error(format!("fields cannot be selected from a {} value", v.type_name()))),
        }
    }

    /// The bytes of the single BYTEA value this node is or holds.
    fn into_bytes(self) -> Result<Vec<u8>, ConnectorError> {
        let value = match &self {
            Node::Value(v) => Some(*v),
            Node::Map(map) if map.len() == 1 => map.values().next(),
            Node::Object(pairs) if pairs.len() == 1 => pairs.first().map(|(_, v)| *v),
            _ => None,
        };
        match value {
            Some(Value::Bytes(bytes)) => Ok(bytes.to_vec()),
            Some(other) => Err(encode_error(format!(
                "format \"binary\" needs a BYTEA value, got {} (use dataField or fields to pick one)",
                other.type_name()
            ))),
            None => Err(encode_error(format!(
                "format \"binary\" needs a row with exactly one field, a BYTEA value; got {} (use dataField or \
                 fields to pick one)",
                match &self {
                    Node::Map(map) => format!("{} fields", map.len()),
                    Node::Object(pairs) => format!("{} fields", pairs.len()),
                    other => other.kind().to_owned(),
                }
            ))),
        }
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Map(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map.iter() {
                    out.serialize_entry(k.as_ref(), &value_to_json(v))?;
                }
                out.end()
            }
            Node::Object(pairs) => {
                let mut out = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    out.serialize_entry(k, &value_to_json(v))?;
                }
                out.end()
            }
            Node::List(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(item)?;
                }
                out.end()
            }
            Node::Value(v) => value_to_json(v).serialize(serializer),
        }
    }
}

/// Deserializes the properties named in `keys` (ignoring the others, and
/// null values) into a config type; an error names the faulty property.
/// The keys of declared options.
pub(crate) fn keys(options: &[ConnectorOption]) -> Vec<&'static str> {
    options.iter().map(|o| o.key).collect()
}

pub(crate) fn props_subset<T: DeserializeOwned>(
    props: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Result<T, ConnectorError> {
    let own = |only: Option<&str>| -> serde_json::Value {
        serde_json::Value::Object(
            props
                .iter()
                .filter(|(k, v)| keys.contains(&k.as_str()) && !v.is_null() && only.is_none_or(|o| o == k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    serde_json::from_value(own(None)).map_err(|e| {
        // Find the property at fault: the first that fails on its own.
        let key = keys.iter().find(|k| props.contains_key(**k) && serde_json::from_value::<T>(own(Some(k))).is_err());
        match key {
            Some(key) => ConnectorError::Config(format!("property `{key}`: {e}")),
            None => ConnectorError::Config(format!("properties: {e}")),
        }
    })
}

/// A minijinja error with its line and its causes.
/// A result that cannot be encoded.
fn encode_error(message: String) -> ConnectorError {
    ConnectorError::External(format!("cannot encode the result: {message}"))
}

/// How far a result of several payloads got before it failed, so that the
/// engine's retry of the same result skips the payloads already delivered.
#[derive(Debug, Default)]
pub struct Progress {
    /// Fingerprint of the result being sent, and how many payloads went out.
    current: Option<(u64, usize)>,
    failed: Option<(u64, usize)>,
}

impl Progress {
    /// Starts sending `payloads`; returns the index of the first one to send.
    pub fn start<'a>(&mut self, payloads: impl IntoIterator<Item = &'a [u8]>) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for payload in payloads {
            payload.hash(&mut hasher);
        }
        let key = hasher.finish();
        let done = match self.failed {
            Some((k, done)) if k == key => done,
            _ => 0,
        };
        self.current = Some((key, done));
        done
    }

    /// Payload `index` of the current result failed: a retry resumes there.
    pub fn failed_at(&mut self, index: usize) {
        self.failed = self.current.map(|(key, _)| (key, index));
    }

    /// The current result went out whole.
    pub fn done(&mut self) {
        self.failed = None;
        self.current = None;
    }
}

mod delimited;
mod template;

#[cfg(test)]
mod tests;
