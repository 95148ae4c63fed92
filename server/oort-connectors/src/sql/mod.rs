//! The `sql` connector, as eKuiper's: a table polled incrementally as a
//! stream, rows written to a table (insert, update, delete or upsert by key),
//! and lookup tables queried at join time. SQLite and PostgreSQL.
//!
//! # The database
//!
//! A named connection of type `sql` holds where the database is:
//!
//! | property | meaning |
//! |---|---|
//! | `url` | `sqlite:<path>` (a file inside the server's file roots, unless the connection is declared in `oort.toml`), or `postgres://user@host:port/db?sslmode=...` |
//! | `password` | PostgreSQL's password, kept out of the URL so that it reads back as `***` |
//!
//! A PostgreSQL host named by a client passes the egress policy; a Unix
//! socket is refused to it. Other databases (`mysql://`, `sqlserver://`) are
//! refused: this build has no driver for them.
//!
//! # Stream (source)
//!
//! ```sql
//! CREATE STREAM orders () WITH (TYPE="sql", CONF_KEY="shop", DATASOURCE="orders",
//!   INDEX_FIELD="id", INDEX_VALUE="0", INTERVAL="1000", LIMIT="500")
//! ```
//!
//! | option | meaning |
//! |---|---|
//! | `CONF_KEY` | The named connection (type `sql`); required. |
//! | `DATASOURCE` | The table (`name` or `schema.name`). |
//! | `INDEX_FIELD` | The column that orders the rows and only grows (a serial id, an insert time): each query asks for the rows after the greatest value read, in its order. Without it, each query reads the first `LIMIT` rows again. |
//! | `INDEX_VALUE` | Where to start: the rows whose index is greater. Default: from the first row. |
//! | `INTERVAL` | Milliseconds between two queries when the last one read fewer than `LIMIT` rows (else the next is made at once); default 10000, at least 10. |
//! | `LIMIT` | Rows per query; default 1000, at most 100000. |
//!
//! Each row is one event, its columns the event's fields. A rule with
//! `qos` ≥ 1 saves the index of the last row its checkpoint covers, and a
//! restart reads from there: exactly once when the index column is unique.
//! At qos 0 a restart starts from `INDEX_VALUE` again.
//!
//! # Action (sink)
//!
//! ```json
//! {"sql": {"connectionSelector": "shop", "table": "totals", "keyField": "id"}}
//! ```
//!
//! | property | meaning |
//! |---|---|
//! | `connectionSelector` | The named connection; or the action's own `url` (its password reads back as `***`). |
//! | `table` | The table written to. |
//! | `fields` | The columns written, each a field of the row; default: every field of the row. |
//! | `tableDataField` | A field holding a row or a list of rows: those are written instead. |
//! | `keyField` | The key column: with it, rows are upserted (`INSERT ... ON CONFLICT (key) DO UPDATE`), so a result written twice (a retry, a replay after a crash) is stored once. The column needs a unique index. |
//! | `rowkindField` | A field saying what to do with each row: `insert`, `update` (by `keyField`), `upsert` or `delete` (by `keyField`). |
//!
//! Each result is written in one transaction. Names are written into the
//! SQL as they are, unquoted, and must be identifiers
//! (`[A-Za-z_][A-Za-z0-9_]*`, a table may have a schema): anything else is
//! refused, never spliced into a statement. Values are always bound.
//!
//! # Lookup table
//!
//! ```sql
//! CREATE TABLE customers () WITH (TYPE="sql", KIND="lookup", CONF_KEY="shop", DATASOURCE="customers")
//! SELECT * FROM orders INNER JOIN customers ON orders.customer = customers.id
//! ```
//!
//! Each event's key values (the `ON` equalities) select the rows:
//! `SELECT * FROM customers WHERE id = $1`, with the join's cache options.

pub(crate) mod db;
mod sink;
mod source;

use std::sync::Arc;

use oort_engine::ConnectorError;
use oort_policy::{EgressPolicy, FileRoots};
use serde::Deserialize;

use crate::connections::{Connections, Origin};

pub use sink::SqlSinkFactory;
pub use source::SqlSourceFactory;

/// The properties a named `sql` connection may hold.
pub const CONNECTION_PROPS: &[&str] = &["url", "password"];

/// Where a database is, with eKuiper's property names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SqlConfig {
    /// `sqlite:<path>` or `postgres://...`.
    pub url: String,
    /// PostgreSQL's password.
    pub password: Option<String>,
}

impl SqlConfig {
    /// The settings of a named connection's properties; an unknown property is refused.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        let config = crate::connections::settings::<Self>(props, CONNECTION_PROPS, "sql")?;
        db::Location::parse(&config.url)?;
        Ok(config)
    }
}

/// What the sql source and sink share.
#[derive(Clone)]
pub struct SqlContext {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// Where SQLite files may be.
    pub files: Arc<FileRoots>,
    /// What servers a client named may be.
    pub egress: Arc<EgressPolicy>,
}

impl SqlContext {
    /// The settings of connection `name` (of type sql), and where they come from.
    fn connection(&self, name: &str) -> Result<(SqlConfig, Origin), ConnectorError> {
        let def = self.connections.lookup(name, "sql")?;
        Ok((SqlConfig::from_connection(&def.props)?, Origin::of(&def)))
    }
}

/// Checks a name written into SQL: an identifier, or `schema.name` when
/// `qualified`.
pub(crate) fn identifier(name: &str, what: &str, qualified: bool) -> Result<String, ConnectorError> {
    let name = name.trim();
    let part_ok = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && part.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= if qualified { 2 } else { 1 } && parts.iter().all(|p| part_ok(p)) {
        Ok(name.to_owned())
    } else {
        Err(ConnectorError::Config(format!(
            "sql: {what} {name:?} is not an identifier ([A-Za-z_][A-Za-z0-9_]*{})",
            if qualified { ", optionally schema.name" } else { "" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_not_quoted() {
        assert_eq!(identifier("orders", "table", true).unwrap(), "orders");
        assert_eq!(identifier("shop.orders", "table", true).unwrap(), "shop.orders");
        for bad in ["", "1a", "a b", "a;drop table x", "\"a\"", "a.b.c", "a-b"] {
            assert!(identifier(bad, "table", true).is_err(), "{bad}");
        }
        assert!(identifier("shop.orders", "column", false).is_err());
    }

    #[test]
    fn connections_are_checked() {
        let props = |json: serde_json::Value| json.as_object().unwrap().clone();
        assert!(SqlConfig::from_connection(&props(serde_json::json!({"url": "sqlite:a.db"}))).is_ok());
        let typo = SqlConfig::from_connection(&props(serde_json::json!({"url": "sqlite:a.db", "pasword": "x"})));
        assert!(typo.unwrap_err().to_string().contains("unknown property \"pasword\""));
        let mysql = SqlConfig::from_connection(&props(serde_json::json!({"url": "mysql://h/db"})));
        assert!(mysql.unwrap_err().to_string().contains("sqlite:<path> or postgres://"));
    }
}
