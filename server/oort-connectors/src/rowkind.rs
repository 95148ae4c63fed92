//! eKuiper's `rowkindField`: a row's field saying what a sink that keeps
//! rows by key does with it (the `redis`, `sql` and `memory` sinks).

use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Value};

/// The `rowkindField` property.
pub(crate) const ROWKIND_FIELD: ConnectorOption = ConnectorOption {
    key: "rowkindField",
    kind: OptionKind::Text,
    default: "",
    description: "A field saying insert, update, upsert or delete.",
};

/// What to do with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl RowKind {
    /// The kind `row`'s `field` says; `None` when the row has no such field
    /// (or NULL there). Other text, or another type, is an error: `what`
    /// names the sink.
    pub(crate) fn of(row: &Map, field: &str, what: &str) -> Result<Option<Self>, ConnectorError> {
        let kind = match row.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(ConnectorError::External(format!("{what}: rowkind is a {}, not text", other.type_name())));
            }
        };
        match kind.to_ascii_lowercase().as_str() {
            "insert" => Ok(Some(Self::Insert)),
            "update" => Ok(Some(Self::Update)),
            "upsert" => Ok(Some(Self::Upsert)),
            "delete" => Ok(Some(Self::Delete)),
            other => Err(ConnectorError::External(format!(
                "{what}: rowkind {other:?} is not insert, update, upsert or delete"
            ))),
        }
    }

    /// Its name, lower-case.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Upsert => "upsert",
            Self::Delete => "delete",
        }
    }
}
