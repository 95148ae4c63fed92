//! Reaching a database (SQLite or PostgreSQL) and moving values in and out.
//!
//! PostgreSQL types its parameters strictly, so every value is bound as text
//! and cast to the column's own type (`CAST($1 AS timestamp)`), the types
//! read from the catalog once; rows come back as one `to_jsonb(row)`, which
//! turns every column type (numeric, uuid, arrays...) into JSON. SQLite is
//! typed per value: values are bound and read as they are.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use oort_engine::json::{json_to_value, value_to_json};
use oort_engine::{ConnectorError, Map, Value};
use oort_policy::{EgressPolicy, FileRoots, PathUse};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::SqlConfig;
use crate::connections::{ClientLink, LinkState};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement (a poll, a lookup, a result's transaction) may take.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a database is, from its URL.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A SQLite file's path, as given.
    Sqlite(String),
    /// A PostgreSQL server.
    Postgres(Box<PgConnectOptions>),
}

impl Location {
    /// Parses `url`; never shows it in an error (it may hold a password).
    pub(crate) fn parse(url: &str) -> Result<Self, ConnectorError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.contains('?') || path.starts_with(":memory:") {
                return Err(ConnectorError::Config(format!(
                    "sql: {url:?}: a sqlite url is sqlite:<path of a database file>, without options"
                )));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| ConnectorError::Config(format!("sql: the postgres url does not parse: {e}")))?;
            return Ok(Self::Postgres(Box::new(options)));
        }
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        Err(ConnectorError::Config(format!(
            "sql: the url must be sqlite:<path> or postgres://...; this build has no driver for {scheme:?}"
        )))
    }
}

/// A database reached: a small pool of connections.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What a client may reach: `None` for a trusted (declared) connection.
pub(crate) struct Reach<'a> {
    pub files: &'a FileRoots,
    pub egress: Option<&'a EgressPolicy>,
}

impl Db {
    /// Connects to `config`'s database, checking it against `reach`, and
    /// reports the state to `link`.
    pub(crate) async fn open(config: &SqlConfig, reach: Reach<'_>, link: &ClientLink) -> Result<Self, ConnectorError> {
        link.set(LinkState::Connecting);
        let opened = Self::connect(config, &reach).await;
        match &opened {
            Ok(_) => link.set(LinkState::Connected),
            Err(e) => link.set(LinkState::Disconnected(e.to_string())),
        }
        opened
    }

    async fn connect(config: &SqlConfig, reach: &Reach<'_>) -> Result<Self, ConnectorError> {
        match Location::parse(&config.url)? {
            Location::Sqlite(path) => {
                let path = match reach.egress {
                    None => PathBuf::from(&path),
                    Some(_) => reach
                        .files
                        .resolve(&path, PathUse::Write)
                        .map_err(|e| ConnectorError::Config(format!("sql: {e}")))?,
                };
                let options = SqliteConnectOptions::new().filename(&path).create_if_missing(false);
                let pool = SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| ConnectorError::External(format!("sql: cannot open {}: {e}", path.display())))?;
                Ok(Self::Sqlite(pool))
            }
            Location::Postgres(options) => {
                let mut options = *options;
                if let Some(password) = config.password.as_deref().filter(|p| !p.is_empty()) {
                    options = options.password(password);
                }
                let (host, port) = (options.get_host().to_owned(), options.get_port());
                if let Some(policy) = reach.egress {
                    if host.starts_with('/') {
                        return Err(ConnectorError::Config(
                            "sql: a Unix socket is only for a connection declared in the server's configuration".into(),
                        ));
                    }
                    crate::connections::check_egress(policy, &host, port)
                        .await
                        .map_err(|why| ConnectorError::Config(format!("sql: postgres {host}:{port}: {why}")))?;
                }
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| ConnectorError::External(format!("sql: postgres {host}:{port}: {e}")))?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// The columns of `table` and their types, lower-case names (PostgreSQL only;
    /// SQLite needs none).
    pub(crate) async fn column_types(&self, table: &str) -> Result<HashMap<String, String>, ConnectorError> {
        let Self::Postgres(pool) = self else { return Ok(HashMap::new()) };
        let rows: Vec<(String, String)> = timed(
            sqlx::query_as(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = CAST($1 AS regclass) AND a.attnum > 0 AND NOT a.attisdropped",
            )
            .bind(table)
            .fetch_all(pool),
        )
        .await?;
        if rows.is_empty() {
            return Err(ConnectorError::External(format!("sql: table {table} has no columns")));
        }
        Ok(rows.into_iter().collect())
    }
}

/// What a source, sink or lookup table needs to reach its database: the
/// policies (unless its connection is trusted) and the link its state shows on.
pub(crate) struct Client {
    pub(crate) context: super::SqlContext,
    pub(crate) trusted: bool,
    pub(crate) link: std::sync::Arc<ClientLink>,
}

impl Client {
    /// Connects to `database`.
    pub(crate) async fn open(&self, database: &SqlConfig) -> Result<Db, ConnectorError> {
        let reach =
            Reach { files: &self.context.files, egress: (!self.trusted).then_some(self.context.egress.as_ref()) };
        Db::open(database, reach, &self.link).await
    }

    /// Shows a failure on the link.
    pub(crate) fn failed(&self, error: &ConnectorError) {
        self.link.set(LinkState::Disconnected(error.to_string()));
    }
}

/// A column's PostgreSQL type, for a cast.
pub(crate) fn pg_type<'a>(types: &'a HashMap<String, String>, column: &str) -> Result<&'a str, ConnectorError> {
    types
        .get(&column.to_ascii_lowercase())
        .map(String::as_str)
        .ok_or_else(|| ConnectorError::External(format!("sql: the table has no column {column:?}")))
}

/// Waits for `query` at most [`QUERY_TIMEOUT`].
pub(crate) async fn timed<T>(
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ConnectorError> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(result) => result.map_err(|e| ConnectorError::External(format!("sql: {e}"))),
        Err(_) => Err(ConnectorError::External(format!("sql: no answer within {}s", QUERY_TIMEOUT.as_secs()))),
    }
}

/// A value as PostgreSQL text input, to cast to its column's type.
pub(crate) fn pg_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bytes(bytes) => Some(bytes.iter().fold(String::from("\\x"), |mut hex, b| {
            hex.push_str(&format!("{b:02x}"));
            hex
        })),
        Value::Timestamp(_) | Value::List(_) | Value::Map(_) => match value_to_json(value) {
            serde_json::Value::String(s) => Some(s),
            json => Some(json.to_string()),
        },
    }
}

/// Binds `value` to a SQLite statement, as the value it is (lists and
/// objects as JSON text, datetimes as RFC 3339 text).
pub(crate) fn bind_sqlite<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    value: &Value,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match value {
        Value::Null => query.bind(None::<i64>),
        Value::Bool(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        Value::Float(f) => query.bind(*f),
        Value::String(s) => query.bind(s.to_string()),
        Value::Bytes(b) => query.bind(b.to_vec()),
        other => query.bind(pg_text(other)),
    }
}

/// A SQLite row as a map, each value as stored.
pub(crate) fn sqlite_row(row: &SqliteRow) -> Result<Map, ConnectorError> {
    let failed = |e: sqlx::Error| ConnectorError::External(format!("sql: {e}"));
    let mut map = Map::default();
    for column in row.columns() {
        let i = column.ordinal();
        let raw = row.try_get_raw(i).map_err(failed)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked::<i64, _>(i).map_err(failed)?),
                "REAL" => Value::Float(row.try_get_unchecked::<f64, _>(i).map_err(failed)?),
                "BLOB" => Value::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(failed)?.into()),
                _ => Value::String(row.try_get_unchecked::<String, _>(i).map_err(failed)?.into()),
            }
        };
        map.insert(column.name().into(), value);
    }
    Ok(map)
}

/// A PostgreSQL row selected as `to_jsonb(t)`, as a map.
pub(crate) fn pg_row(row: &PgRow) -> Result<Map, ConnectorError> {
    let json: sqlx::types::Json<serde_json::Value> =
        row.try_get(0).map_err(|e| ConnectorError::External(format!("sql: {e}")))?;
    match json_to_value(&json.0) {
        Value::Map(map) => Ok(Map::clone(&map)),
        other => Err(ConnectorError::External(format!("sql: a row read as {}, not an object", other.type_name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_without_showing_passwords() {
        assert!(matches!(Location::parse("sqlite:data/a.db").unwrap(), Location::Sqlite(p) if p == "data/a.db"));
        assert!(matches!(Location::parse("sqlite:///tmp/a.db").unwrap(), Location::Sqlite(p) if p == "/tmp/a.db"));
        assert!(Location::parse("sqlite::memory:").is_err());
        let Location::Postgres(options) = Location::parse("postgres://u:hunter2@db:6543/shop").unwrap() else {
            panic!()
        };
        assert_eq!((options.get_host(), options.get_port()), ("db", 6543));
        let error = Location::parse("mysql://u:hunter2@db/shop").unwrap_err().to_string();
        assert!(error.contains("no driver for \"mysql\"") && !error.contains("hunter2"), "{error}");
    }

    #[test]
    fn postgres_text_of_values() {
        assert_eq!(pg_text(&Value::Bytes(vec![1, 0xab].into())).unwrap(), "\\x01ab");
        assert_eq!(pg_text(&Value::Int(-3)).unwrap(), "-3");
        assert_eq!(pg_text(&Value::Null), None);
        let list = Value::list(vec![Value::Int(1), Value::String("a".into())]);
        assert_eq!(pg_text(&list).unwrap(), r#"[1,"a"]"#);
    }
}
