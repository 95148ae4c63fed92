//! Stream schema types: [`FieldType`] and [`Field`].
//!
//! `Display` renders the canonical eKuiper spelling (`BIGINT`,
//! `ARRAY(STRING)`, `STRUCT(lat FLOAT, lng FLOAT)`), which
//! [`parse_stream_ddl`](crate::parse_stream_ddl) accepts back unchanged.

use std::fmt;

/// The type of a stream field, as declared in `CREATE STREAM`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `BIGINT`: a 64-bit signed integer.
    Bigint,
    /// `FLOAT`: a 64-bit floating-point number.
    Float,
    /// `STRING`: UTF-8 text.
    String,
    /// `DATETIME`: a point in time.
    Datetime,
    /// `BOOLEAN`.
    Boolean,
    /// `BYTEA`: raw bytes.
    Bytea,
    /// `ARRAY(<type>)`: a list whose elements all have the given type.
    Array(Box<FieldType>),
    /// `STRUCT(<name> <type>, ...)`: a nested record.
    Struct(Vec<Field>),
}

impl FieldType {
    /// Spellings of the valid type names, for error messages.
    pub const VALID_NAMES: &'static str =
        "BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, ARRAY(<type>), STRUCT(<name> <type>, ...)";

    /// The scalar type named `name` (case-insensitive), if it is one.
    /// `ARRAY` and `STRUCT` take arguments and so are not returned here.
    pub fn scalar_from_name(name: &str) -> Option<Self> {
        const SCALARS: [(&str, FieldType); 6] = [
            ("BIGINT", FieldType::Bigint),
            ("FLOAT", FieldType::Float),
            ("STRING", FieldType::String),
            ("DATETIME", FieldType::Datetime),
            ("BOOLEAN", FieldType::Boolean),
            ("BYTEA", FieldType::Bytea),
        ];
        SCALARS.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, t)| t)
    }

    /// The eKuiper type a user probably meant when writing a type name from
    /// another SQL dialect (`INT` → `BIGINT`), for "did you mean" hints.
    pub(crate) fn suggestion_for(name: &str) -> Option<&'static str> {
        const ALIASES: [(&[&str], &str); 6] = [
            (&["INT", "INTEGER", "SMALLINT", "TINYINT", "LONG", "INT64"], "BIGINT"),
            (&["DOUBLE", "REAL", "DECIMAL", "NUMERIC", "FLOAT64"], "FLOAT"),
            (&["TEXT", "VARCHAR", "CHAR", "STR"], "STRING"),
            (&["BOOL"], "BOOLEAN"),
            (&["TIMESTAMP", "DATE", "TIME"], "DATETIME"),
            (&["BYTES", "BLOB", "BINARY", "VARBINARY"], "BYTEA"),
        ];
        ALIASES
            .iter()
            .find(|(aliases, _)| aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
            .map(|(_, canonical)| *canonical)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bigint => f.write_str("BIGINT"),
            Self::Float => f.write_str("FLOAT"),
            Self::String => f.write_str("STRING"),
            Self::Datetime => f.write_str("DATETIME"),
            Self::Boolean => f.write_str("BOOLEAN"),
            Self::Bytea => f.write_str("BYTEA"),
            Self::Array(element) => write!(f, "ARRAY({element})"),
            Self::Struct(fields) => {
                f.write_str("STRUCT(")?;
                write_fields(f, fields)?;
                f.write_str(")")
            }
        }
    }
}

/// A named, typed field of a stream schema or of a `STRUCT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field name, without quotes.
    pub name: String,
    /// The declared type.
    pub field_type: FieldType,
}

impl Field {
    /// Creates a field.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self { name: name.into(), field_type }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", QuotedIdent(&self.name), self.field_type)
    }
}

/// Writes `a BIGINT, b STRING`.
pub(crate) fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Field]) -> fmt::Result {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{field}")?;
    }
    Ok(())
}

/// Displays an identifier bare when it is a plain word and in backticks
/// (doubling any backtick inside) otherwise.
pub(crate) struct QuotedIdent<'a>(pub &'a str);

impl fmt::Display for QuotedIdent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0;
        let mut chars = name.chars();
        let plain = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_');
        if plain { f.write_str(name) } else { write!(f, "`{}`", name.replace('`', "``")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_display() {
        assert_eq!(FieldType::Bigint.to_string(), "BIGINT");
        assert_eq!(FieldType::Float.to_string(), "FLOAT");
        assert_eq!(FieldType::String.to_string(), "STRING");
        assert_eq!(FieldType::Datetime.to_string(), "DATETIME");
        assert_eq!(FieldType::Boolean.to_string(), "BOOLEAN");
        assert_eq!(FieldType::Bytea.to_string(), "BYTEA");
    }

    #[test]
    fn nested_display() {
        let t = FieldType::Array(Box::new(FieldType::Struct(vec![
            Field::new("lat", FieldType::Float),
            Field::new("my tag", FieldType::Array(Box::new(FieldType::String))),
        ])));
        assert_eq!(t.to_string(), "ARRAY(STRUCT(lat FLOAT, `my tag` ARRAY(STRING)))");
    }

    #[test]
    fn scalar_names_are_case_insensitive() {
        assert_eq!(FieldType::scalar_from_name("bigint"), Some(FieldType::Bigint));
        assert_eq!(FieldType::scalar_from_name("Bytea"), Some(FieldType::Bytea));
        assert_eq!(FieldType::scalar_from_name("ARRAY"), None);
        assert_eq!(FieldType::scalar_from_name("int"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(FieldType::suggestion_for("int"), Some("BIGINT"));
        assert_eq!(FieldType::suggestion_for("VARCHAR"), Some("STRING"));
        assert_eq!(FieldType::suggestion_for("nonsense"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(QuotedIdent("abc_1").to_string(), "abc_1");
        assert_eq!(QuotedIdent("my stream").to_string(), "`my stream`");
        assert_eq!(QuotedIdent("a`b").to_string(), "`a``b`");
        assert_eq!(QuotedIdent("1a").to_string(), "`1a`");
        assert_eq!(QuotedIdent("").to_string(), "``");
    }
}
