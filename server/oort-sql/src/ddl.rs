//! Stream DDL: `CREATE STREAM` / `CREATE TABLE` → [`StreamDef`].
//!
//! Grammar (keywords and option keys are case-insensitive):
//!
//! ```text
//! ddl     := CREATE (STREAM | TABLE) name '(' [field {',' field}] ')'
//!            [WITH '(' [option {',' option}] ')'] [';']
//! field   := name type
//! type    := BIGINT | FLOAT | STRING | DATETIME | BOOLEAN | BYTEA
//!          | ARRAY '(' type ')' | STRUCT '(' field {',' field} ')'
//! option  := key '=' string          -- "double" or 'single' quoted
//! name    := word | `backtick quoted`
//! ```
//!
//! An empty field list declares a schemaless stream. `DATASOURCE` is
//! required, as in eKuiper.
//!
//! `WITH` is an open map: the keys of [`option_key::STREAM`] are the
//! stream's own (the engine reads them, and their values are checked here);
//! any other key belongs to the stream's connector (`TYPE`), which declares
//! and checks its options when the stream is created. The position of every
//! key is kept ([`OptionPositions`]) so that those checks point at it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use sqlparser::tokenizer::Token;

use crate::cursor::Cursor;
use crate::error::{Position, SqlError};
use crate::types::{Field, FieldType, QuotedIdent, write_fields};

/// The option keys of every stream in `WITH (...)`, in UPPERCASE: eKuiper's
/// stream properties. Any other key is an option of the stream's connector.
pub mod option_key {
    /// The source's topic, path or table, depending on `TYPE`. Required.
    pub const DATASOURCE: &str = "DATASOURCE";
    /// The payload format: `json` (default), `binary`, `protobuf`, `delimited`, ...
    pub const FORMAT: &str = "FORMAT";
    /// The primary key of a lookup table.
    pub const KEY: &str = "KEY";
    /// The name of the source configuration profile to use.
    pub const CONF_KEY: &str = "CONF_KEY";
    /// The source connector type: `mqtt` (default), `memory`, `file`, ...
    pub const TYPE: &str = "TYPE";
    /// `"true"` to reject events that do not match the schema.
    pub const STRICT_VALIDATION: &str = "STRICT_VALIDATION";
    /// The field that carries the event time.
    pub const TIMESTAMP: &str = "TIMESTAMP";
    /// The pattern a string in the `TIMESTAMP` field is read with
    /// (`yyyy-MM-dd HH:mm:ss`); needs `TIMESTAMP`.
    pub const TIMESTAMP_FORMAT: &str = "TIMESTAMP_FORMAT";
    /// eKuiper's `"true"` shares one source instance among rules. Oort gives
    /// each rule its own instance: the engine accepts `"false"` and refuses
    /// `"true"` when a stream is created.
    pub const SHARED: &str = "SHARED";
    /// The schema id for formats that need one (for example `protobuf`).
    pub const SCHEMAID: &str = "SCHEMAID";
    /// For tables: `scan` (default) or `lookup`.
    pub const KIND: &str = "KIND";
    /// The field separator of the `delimited` format.
    pub const DELIMITER: &str = "DELIMITER";
    /// For scan tables: how many rows to keep.
    pub const RETAIN_SIZE: &str = "RETAIN_SIZE";
    /// For lookup tables queried at join time: whether answers are cached.
    pub const CACHE: &str = "CACHE";
    /// For lookup tables: seconds a cached answer is used.
    pub const CACHE_TTL: &str = "CACHE_TTL";
    /// For lookup tables: whether an empty answer is cached too.
    pub const CACHE_MISSING_KEY: &str = "CACHE_MISSING_KEY";

    /// Every stream's own keys, whatever its connector.
    pub const STREAM: [&str; 16] = [
        DATASOURCE,
        FORMAT,
        KEY,
        CONF_KEY,
        TYPE,
        STRICT_VALIDATION,
        TIMESTAMP,
        TIMESTAMP_FORMAT,
        SHARED,
        SCHEMAID,
        KIND,
        DELIMITER,
        RETAIN_SIZE,
        CACHE,
        CACHE_TTL,
        CACHE_MISSING_KEY,
    ];
}

/// Deepest `ARRAY`/`STRUCT` nesting accepted, to bound recursion on
/// hostile input.
const MAX_TYPE_DEPTH: usize = 32;

/// Whether a definition creates a stream or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `CREATE STREAM`: an unbounded sequence of events.
    Stream,
    /// `CREATE TABLE`: a snapshot (scan) or keyed (lookup) relation.
    Table,
}

impl StreamKind {
    /// `"STREAM"` or `"TABLE"`.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Stream => "STREAM",
            Self::Table => "TABLE",
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A parsed `CREATE STREAM` or `CREATE TABLE` statement.
///
/// `Display` renders canonical DDL that parses back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDef {
    /// The stream or table name, without quotes.
    pub name: String,
    /// Stream or table.
    pub kind: StreamKind,
    /// The declared schema; empty for a schemaless stream.
    pub fields: Vec<Field>,
    /// `WITH (...)` options; keys are UPPERCASE, values as written.
    pub options: BTreeMap<String, String>,
}

impl StreamDef {
    /// True when no schema was declared (`CREATE STREAM s () WITH ...`).
    pub fn is_schemaless(&self) -> bool {
        self.fields.is_empty()
    }

    /// The top-level field called `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The value of option `key` (case-insensitive), as written.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(&key.to_ascii_uppercase()).map(String::as_str)
    }

    /// `DATASOURCE`: the topic, path or table the source reads.
    pub fn datasource(&self) -> Option<&str> {
        self.option(option_key::DATASOURCE)
    }

    /// `TYPE`: the source connector; eKuiper's default is `mqtt`.
    pub fn source_type(&self) -> &str {
        self.option(option_key::TYPE).unwrap_or("mqtt")
    }

    /// `FORMAT` as written (compare case-insensitively); defaults to `json`.
    pub fn format(&self) -> &str {
        self.option(option_key::FORMAT).unwrap_or("json")
    }

    /// `TIMESTAMP`: the event-time field, if any.
    pub fn timestamp_field(&self) -> Option<&str> {
        self.option(option_key::TIMESTAMP)
    }

    /// `TIMESTAMP_FORMAT`, if any.
    pub fn timestamp_format(&self) -> Option<&str> {
        self.option(option_key::TIMESTAMP_FORMAT)
    }

    /// `KEY`: the primary key of a lookup table, if any.
    pub fn key(&self) -> Option<&str> {
        self.option(option_key::KEY)
    }

    /// `CONF_KEY`: the source configuration profile, if any.
    pub fn conf_key(&self) -> Option<&str> {
        self.option(option_key::CONF_KEY)
    }

    /// `SHARED`: whether the stream asks rules to share one source instance
    /// (default false), which the engine refuses.
    pub fn shared(&self) -> bool {
        self.bool_option(option_key::SHARED)
    }

    /// `STRICT_VALIDATION`: whether to reject events not matching the
    /// schema (default false).
    pub fn strict_validation(&self) -> bool {
        self.bool_option(option_key::STRICT_VALIDATION)
    }

    /// True for `CREATE TABLE ... WITH (KIND="lookup")`.
    pub fn is_lookup_table(&self) -> bool {
        self.kind == StreamKind::Table
            && self.option(option_key::KIND).is_some_and(|k| k.eq_ignore_ascii_case("lookup"))
    }

    fn bool_option(&self, key: &str) -> bool {
        self.option(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

impl fmt::Display for StreamDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE {} {} (", self.kind, QuotedIdent(&self.name))?;
        write_fields(f, &self.fields)?;
        f.write_str(")")?;
        if !self.options.is_empty() {
            f.write_str(" WITH (")?;
            for (i, (key, value)) in self.options.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "{key}=\"{escaped}\"")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Where each `WITH` key of a statement is, for checks made after parsing
/// (a connector's options) to point at the key they refuse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionPositions {
    keys: HashMap<String, Option<Position>>,
    with: Option<Position>,
}

impl OptionPositions {
    /// The position of option `key` (case-insensitive) if it was written,
    /// else of `WITH` (or of the end of the statement without one).
    pub fn of(&self, key: &str) -> Option<Position> {
        self.keys.get(&key.to_ascii_uppercase()).copied().flatten().or(self.with)
    }
}

/// Parses one eKuiper `CREATE STREAM` / `CREATE TABLE` statement.
///
/// Validates field names (no duplicates, case-insensitively), type names,
/// option keys (no duplicates) and the values of the stream's own options
/// ([`option_key::STREAM`]), that `DATASOURCE` is present, and that
/// `TIMESTAMP` names a declared field. A trailing `;` is allowed; anything
/// after it is an error. The connector's options are its to check.
///
/// ```
/// let def = oort_sql::parse_stream_ddl(
///     r#"CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE="demo", FORMAT="json")"#,
/// )?;
/// assert_eq!(def.datasource(), Some("demo"));
/// assert_eq!(def.source_type(), "mqtt");
/// # Ok::<(), oort_sql::SqlError>(())
/// ```
pub fn parse_stream_ddl(sql: &str) -> Result<StreamDef, SqlError> {
    parse_stream_ddl_with_positions(sql).map(|(def, _)| def)
}

/// [`parse_stream_ddl`], and where each option key is.
pub fn parse_stream_ddl_with_positions(sql: &str) -> Result<(StreamDef, OptionPositions), SqlError> {
    let mut cursor = Cursor::new(sql)?;
    cursor.expect_keyword("CREATE")?;
    let kind = if cursor.peek_keyword("STREAM") {
        StreamKind::Stream
    } else if cursor.peek_keyword("TABLE") {
        StreamKind::Table
    } else {
        return Err(cursor.unexpected("STREAM or TABLE"));
    };
    cursor.next_token();

    let (name, _) = cursor.expect_word(&format!("a {} name", kind.keyword().to_lowercase()))?;
    cursor.expect(&Token::LParen, "`(` to start the field list")?;
    let fields = if cursor.consume(&Token::RParen) {
        Vec::new()
    } else {
        let fields = parse_fields(&mut cursor, 0)?;
        cursor.expect(&Token::RParen, "`,` or `)` in the field list")?;
        fields
    };

    let with_position = cursor.position();
    let options = if cursor.peek_keyword("WITH") {
        cursor.next_token();
        parse_options(&mut cursor, kind)?
    } else {
        ParsedOptions::default()
    };

    cursor.consume(&Token::SemiColon);
    if !cursor.is_at_end() {
        let expected = if options.values.is_empty() { "WITH, `;` or end of input" } else { "`;` or end of input" };
        return Err(cursor.unexpected(expected));
    }

    let def = StreamDef { name: name.value, kind, fields, options: options.values };
    validate(&def, &options.value_positions, with_position)?;
    Ok((def, OptionPositions { keys: options.key_positions, with: with_position }))
}

/// Parses `name type {, name type}` (at least one field).
fn parse_fields(cursor: &mut Cursor, depth: usize) -> Result<Vec<Field>, SqlError> {
    let mut fields = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let (name, position) = cursor.expect_word("a field name")?;
        if !seen.insert(name.value.to_lowercase()) {
            return Err(SqlError::semantic(format!("duplicate field name `{}`", name.value), position));
        }
        let field_type = parse_type(cursor, depth)?;
        fields.push(Field::new(name.value, field_type));
        if !cursor.consume(&Token::Comma) {
            return Ok(fields);
        }
    }
}

/// Parses a field type.
fn parse_type(cursor: &mut Cursor, depth: usize) -> Result<FieldType, SqlError> {
    if depth >= MAX_TYPE_DEPTH {
        return Err(SqlError::semantic(
            format!("types are nested more than {MAX_TYPE_DEPTH} levels deep"),
            cursor.position(),
        ));
    }
    let position = cursor.position();
    let name = match cursor.peek().map(|t| &t.token) {
        Some(Token::Word(word)) if word.quote_style.is_none() => word.value.clone(),
        _ => return Err(cursor.unexpected(&format!("a type ({})", FieldType::VALID_NAMES))),
    };
    cursor.next_token();

    if let Some(scalar) = FieldType::scalar_from_name(&name) {
        return Ok(scalar);
    }
    if name.eq_ignore_ascii_case("ARRAY") {
        cursor.expect(&Token::LParen, "`(` after ARRAY")?;
        let element = parse_type(cursor, depth + 1)?;
        cursor.expect(&Token::RParen, "`)` to close ARRAY(...)")?;
        return Ok(FieldType::Array(Box::new(element)));
    }
    if name.eq_ignore_ascii_case("STRUCT") {
        cursor.expect(&Token::LParen, "`(` after STRUCT")?;
        if cursor.peek().is_some_and(|t| t.token == Token::RParen) {
            return Err(SqlError::semantic("STRUCT must declare at least one field", cursor.position()));
        }
        let fields = parse_fields(cursor, depth + 1)?;
        cursor.expect(&Token::RParen, "`,` or `)` in STRUCT(...)")?;
        return Ok(FieldType::Struct(fields));
    }

    let hint = FieldType::suggestion_for(&name).map(|t| format!(" (did you mean {t}?)")).unwrap_or_default();
    Err(SqlError::semantic(
        format!("unknown type `{name}`{hint}; valid types are {}", FieldType::VALID_NAMES),
        position,
    ))
}

/// Options as parsed, with the position of each key and value for later checks.
#[derive(Default)]
struct ParsedOptions {
    values: BTreeMap<String, String>,
    key_positions: HashMap<String, Option<Position>>,
    value_positions: HashMap<String, Option<Position>>,
}

/// Parses `( KEY = "value" {, KEY = "value"} )` after `WITH`.
fn parse_options(cursor: &mut Cursor, kind: StreamKind) -> Result<ParsedOptions, SqlError> {
    let mut options = ParsedOptions::default();
    cursor.expect(&Token::LParen, "`(` after WITH")?;
    if cursor.consume(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let (word, key_position) = cursor.expect_word("an option name")?;
        let key = word.value.to_ascii_uppercase();
        if options.values.contains_key(&key) {
            return Err(SqlError::semantic(format!("option {key} is given more than once"), key_position));
        }
        cursor.expect(&Token::Eq, &format!("`=` after {key}"))?;
        let value_position = cursor.position();
        let value = match cursor.peek().map(|t| &t.token) {
            Some(Token::DoubleQuotedString(s) | Token::SingleQuotedString(s)) => s.clone(),
            _ => {
                return Err(SqlError::syntax(
                    format!(
                        "expected a quoted string value for {key} (e.g. {key}=\"...\"), found {}",
                        cursor.describe_next()
                    ),
                    value_position,
                ));
            }
        };
        cursor.next_token();
        validate_option_value(&key, &value, kind, value_position)?;
        options.values.insert(key.clone(), value);
        options.key_positions.insert(key.clone(), key_position);
        options.value_positions.insert(key, value_position);

        if !cursor.consume(&Token::Comma) {
            cursor.expect(&Token::RParen, "`,` or `)` in the WITH options")?;
            return Ok(options);
        }
    }
}

/// Checks the values of options whose values have a fixed form.
fn validate_option_value(key: &str, value: &str, kind: StreamKind, position: Option<Position>) -> Result<(), SqlError> {
    let bad =
        |expected: &str| Err(SqlError::semantic(format!("option {key} must be {expected}, got \"{value}\""), position));
    let one_of = |choices: [&str; 2]| choices.iter().any(|c| value.eq_ignore_ascii_case(c));
    match key {
        option_key::SHARED | option_key::STRICT_VALIDATION | option_key::CACHE | option_key::CACHE_MISSING_KEY
            if !one_of(["true", "false"]) =>
        {
            bad("\"true\" or \"false\"")
        }
        option_key::CACHE | option_key::CACHE_TTL | option_key::CACHE_MISSING_KEY if kind != StreamKind::Table => {
            Err(SqlError::semantic(format!("option {key} only applies to lookup tables"), position))
        }
        option_key::CACHE_TTL if value.parse::<u64>().is_err() => bad("a non-negative integer of seconds"),
        option_key::RETAIN_SIZE if value.parse::<u64>().is_err() => bad("a non-negative integer"),
        option_key::KIND if kind != StreamKind::Table => {
            Err(SqlError::semantic("option KIND only applies to tables (CREATE TABLE)", position))
        }
        option_key::KIND if !one_of(["scan", "lookup"]) => bad("\"scan\" or \"lookup\""),
        option_key::DATASOURCE if value.trim().is_empty() => bad("a non-empty string"),
        _ => Ok(()),
    }
}

/// Checks the statement as a whole.
fn validate(
    def: &StreamDef,
    value_positions: &HashMap<String, Option<Position>>,
    with_position: Option<Position>,
) -> Result<(), SqlError> {
    let position_of = |key: &str| value_positions.get(key).copied().flatten();
    let noun = def.kind.keyword().to_lowercase();

    if def.datasource().is_none() {
        return Err(SqlError::semantic(
            format!("missing required option DATASOURCE: every {noun} needs WITH (DATASOURCE=\"...\")"),
            with_position,
        ));
    }

    if let Some(ts) = def.timestamp_field() {
        if !def.is_schemaless() && def.field(ts).is_none() {
            return Err(SqlError::semantic(
                format!("TIMESTAMP names `{ts}`, which is not a field of {noun} `{}`", def.name),
                position_of(option_key::TIMESTAMP),
            ));
        }
    }

    if def.format().eq_ignore_ascii_case("binary") {
        let position = position_of(option_key::FORMAT);
        if def.kind == StreamKind::Table {
            return Err(SqlError::semantic("FORMAT \"binary\" is not supported for tables", position));
        }
        let single_bytea = matches!(def.fields.as_slice(), [f] if f.field_type == FieldType::Bytea);
        if !def.is_schemaless() && !single_bytea {
            return Err(SqlError::semantic(
                "a stream with FORMAT \"binary\" must be schemaless or have exactly one BYTEA field",
                position,
            ));
        }
    }

    if def.is_lookup_table() && def.source_type().eq_ignore_ascii_case("memory") && def.key().is_none() {
        return Err(SqlError::semantic("a memory lookup table needs the KEY option", position_of(option_key::KIND)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
