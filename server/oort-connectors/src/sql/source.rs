//! The `sql` source (a table polled by its index column) and lookup tables.
//! Module documentation: [`super`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::json::{json_to_value, value_to_json};
use oort_engine::{
    ConnectorError, ConnectorOption, Guarantee, Lookup, Map, OptionKind, Payload, Source, SourceConfig, SourceEvent,
    SourceFactory, SourceOutput, SourcePositions, Value,
};
use tokio_util::sync::CancellationToken;

use super::db::{self, Client, Db};
use super::{SqlConfig, SqlContext, identifier};
use crate::connections::Origin;
use crate::holds::{Pending, RuleHolds};

/// The most rows one query may ask for.
const MAX_LIMIT: u32 = 100_000;

/// The options of a `sql` stream or table (module documentation).
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "CONF_KEY",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The named connection (type sql) of the database.",
    },
    ConnectorOption {
        key: "INDEX_FIELD",
        kind: OptionKind::Text,
        default: "",
        description: "The column that orders the rows and only grows; each query reads the rows after the last one read.",
    },
    ConnectorOption {
        key: "INDEX_VALUE",
        kind: OptionKind::Text,
        default: "",
        description: "Start with the rows whose index is greater than this.",
    },
    ConnectorOption {
        key: "INTERVAL",
        kind: OptionKind::Millis,
        default: "10000",
        description: "Milliseconds between two queries that read fewer than LIMIT rows.",
    },
    ConnectorOption { key: "LIMIT", kind: OptionKind::Count, default: "1000", description: "Rows per query." },
];

/// A stream's options, checked.
#[derive(Debug, Clone)]
struct TableOptions {
    connection: String,
    table: String,
    index: Option<String>,
    start: Option<serde_json::Value>,
    interval: Duration,
    limit: u32,
}

impl TableOptions {
    fn of(config: &SourceConfig) -> Result<Self, ConnectorError> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &str, message: String| ConnectorError::Option { key: key.into(), message };
        let connection = option("CONF_KEY")
            .ok_or_else(|| invalid("CONF_KEY", "sql: CONF_KEY names the connection (type sql) of the database".into()))?
            .to_owned();
        let table = identifier(&config.datasource, "DATASOURCE (the table)", true)?;
        let index = option("INDEX_FIELD").map(|f| identifier(f, "INDEX_FIELD", false)).transpose()?;
        let start = option("INDEX_VALUE").map(|v| {
            serde_json::from_str::<serde_json::Value>(v)
                .ok()
                .filter(serde_json::Value::is_number)
                .unwrap_or_else(|| serde_json::Value::String(v.to_owned()))
        });
        if start.is_some() && index.is_none() {
            return Err(invalid("INDEX_VALUE", "sql: INDEX_VALUE needs INDEX_FIELD".into()));
        }
        let interval = option("INTERVAL").map_or(Ok(10_000), str::parse::<u64>).unwrap_or(0);
        if !(10..=86_400_000).contains(&interval) {
            return Err(invalid("INTERVAL", "sql: INTERVAL is 10 ms to a day".into()));
        }
        let limit = option("LIMIT").map_or(Ok(1000), str::parse::<u32>).unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid("LIMIT", format!("sql: LIMIT is 1 to {MAX_LIMIT}")));
        }
        Ok(Self { connection, table, index, start, interval: Duration::from_millis(interval), limit })
    }
}

/// Builds `sql` sources and lookup tables.
pub struct SqlSourceFactory {
    context: SqlContext,
    /// The holds of rules that replay, by rule id.
    holds: RuleHolds<SqlHold>,
}

impl SqlSourceFactory {
    /// Sources whose connections are those of `context`.
    pub fn new(context: SqlContext) -> Self {
        Self { context, holds: RuleHolds::default() }
    }

    fn target(&self, config: &SourceConfig) -> Result<(TableOptions, SqlConfig, Origin), ConnectorError> {
        let options = TableOptions::of(config)?;
        let (database, origin) = self
            .context
            .connection(&options.connection)
            .map_err(|e| ConnectorError::Option { key: "CONF_KEY".into(), message: format!("sql: {e}") })?;
        Ok((options, database, origin))
    }

    fn client(&self, origin: &Origin, config: &SourceConfig) -> Result<Client, ConnectorError> {
        let link = origin.link(&self.context.connections, &config.rule_id, &format!("source_{}_0", config.stream))?;
        Ok(Client { context: self.context.clone(), trusted: origin.trusted, link })
    }
}

impl SourceFactory for SqlSourceFactory {
    fn description(&self) -> &'static str {
        "Polls a table of SQLite or PostgreSQL (the `sql` connection of CONF_KEY), reading the rows past the last INDEX_FIELD value; also a lookup table queried at join time. DATASOURCE is the table."
    }

    fn formats(&self) -> &'static [&'static str] {
        &["json"]
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.target(config).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        let (options, database, origin) = self.target(config)?;
        let hold = (config.qos >= Guarantee::AtLeastOnce).then(|| self.holds.get(&config.rule_id)).flatten();
        let restored = match (&hold, &config.resume_state) {
            (Some(_), Some(state)) => Some(decode_index(state)?),
            _ => None,
        };
        Ok(Box::new(SqlSource {
            client: self.client(&origin, config)?,
            database,
            last: restored.or_else(|| options.start.clone()),
            options,
            last_position: config.resume_after.unwrap_or(0),
            hold,
        }))
    }

    fn supports_lookup(&self) -> bool {
        true
    }

    fn lookup(&self, config: &SourceConfig) -> Result<Option<Arc<dyn Lookup>>, ConnectorError> {
        let (options, database, origin) = self.target(config)?;
        Ok(Some(Arc::new(SqlLookup {
            client: self.client(&origin, config)?,
            database,
            table: options.table,
            db: tokio::sync::Mutex::default(),
        })))
    }

    fn positions(&self, config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        if config.qos < Guarantee::AtLeastOnce || TableOptions::of(config)?.index.is_none() {
            return Ok(None);
        }
        let base = config.resume_state.as_deref().map(decode_index).transpose()?;
        let hold = Arc::new(SqlHold {
            after: config.resume_after.unwrap_or(0),
            state: Mutex::new(HoldState { base, pending: Pending::default() }),
        });
        self.holds.insert(&config.rule_id, &hold);
        Ok(Some(hold))
    }
}

/// A checkpoint's index value.
fn decode_index(state: &[u8]) -> Result<serde_json::Value, ConnectorError> {
    serde_json::from_slice(state)
        .map_err(|e| ConnectorError::Config(format!("sql: the checkpoint's index value does not decode: {e}")))
}

/// A rule's hold on its sql source: the index value of each position handed
/// to the rule, so that a checkpoint saves where to read from again.
struct SqlHold {
    after: u64,
    state: Mutex<HoldState>,
}

struct HoldState {
    /// The index value as of the last released position.
    base: Option<serde_json::Value>,
    /// (position, index value) handed to the rule since.
    pending: Pending<serde_json::Value>,
}

impl HoldState {
    fn index_at(&self, position: u64) -> Option<serde_json::Value> {
        self.pending.up_to(position).last().cloned().or(self.base.clone())
    }
}

#[async_trait]
impl SourcePositions for SqlHold {
    /// The database keeps the rows: nothing to do.
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn release(&self, position: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.base = state.index_at(position);
        state.pending.release(position);
    }

    fn position(&self) -> Option<u64> {
        Some(self.after)
    }

    fn resume_state(&self, position: u64) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.index_at(position).and_then(|index| serde_json::to_vec(&index).ok())
    }
}

struct SqlSource {
    client: Client,
    database: SqlConfig,
    options: TableOptions,
    /// The greatest index value read.
    last: Option<serde_json::Value>,
    last_position: u64,
    hold: Option<Arc<SqlHold>>,
}

#[async_trait]
impl Source for SqlSource {
    async fn run(mut self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let db = self.client.open(&self.database).await?;
        let index_type = match (&db, &self.options.index) {
            (Db::Postgres(_), Some(index)) => {
                Some(db::pg_type(&db.column_types(&self.options.table).await?, index)?.to_owned())
            }
            _ => None,
        };
        loop {
            let rows = match self.poll(&db, index_type.as_deref()).await {
                Ok(rows) => rows,
                Err(error) => {
                    self.client.failed(&error);
                    return Err(error);
                }
            };
            let full = rows.len() >= self.options.limit as usize;
            for row in rows {
                let mut event = SourceEvent::new(Payload::Map(row.clone()), Arc::default());
                if let Some(index) = &self.options.index {
                    let value = row.get(index.as_str()).map(value_to_json).unwrap_or_default();
                    if let Some(hold) = &self.hold {
                        self.last_position += 1;
                        event.position = Some(self.last_position);
                        hold.state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .pending
                            .push(self.last_position, value.clone());
                    }
                    self.last = Some(value);
                }
                // A table is read at the rule's pace: wait for room rather than drop.
                let sent = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    sent = out.send_waiting(event) => sent,
                };
                if sent.is_err() {
                    return Ok(());
                }
            }
            // A full page means more rows wait: read them now.
            if full && self.options.index.is_some() {
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.options.interval) => {}
            }
        }
    }
}

impl SqlSource {
    /// The next page of rows.
    async fn poll(&self, db: &Db, index_type: Option<&str>) -> Result<Vec<Map>, ConnectorError> {
        let TableOptions { table, index, limit, .. } = &self.options;
        let after = self.last.as_ref().filter(|v| !v.is_null());
        match db {
            Db::Postgres(pool) => {
                let sql = match (index, after, index_type) {
                    (Some(index), Some(_), Some(ty)) => format!(
                        "SELECT to_jsonb(t) FROM {table} AS t WHERE {index} > CAST($1 AS {ty}) ORDER BY {index} LIMIT {limit}"
                    ),
                    (Some(index), ..) => format!("SELECT to_jsonb(t) FROM {table} AS t ORDER BY {index} LIMIT {limit}"),
                    (None, ..) => format!("SELECT to_jsonb(t) FROM {table} AS t LIMIT {limit}"),
                };
                let mut query = sqlx::query(&sql);
                if let Some(after) = after.filter(|_| sql.contains("$1")) {
                    query = query.bind(db::pg_text(&json_to_value(after)));
                }
                db::timed(query.fetch_all(pool)).await?.iter().map(db::pg_row).collect()
            }
            Db::Sqlite(pool) => {
                let sql = match (index, after) {
                    (Some(index), Some(_)) => {
                        format!("SELECT * FROM {table} WHERE {index} > ? ORDER BY {index} LIMIT {limit}")
                    }
                    (Some(index), None) => format!("SELECT * FROM {table} ORDER BY {index} LIMIT {limit}"),
                    (None, _) => format!("SELECT * FROM {table} LIMIT {limit}"),
                };
                let mut query = sqlx::query(&sql);
                if let Some(after) = after.filter(|_| sql.contains('?')) {
                    query = db::bind_sqlite(query, &json_to_value(after));
                }
                db::timed(query.fetch_all(pool)).await?.iter().map(db::sqlite_row).collect()
            }
        }
    }
}

/// A `sql` lookup table: `SELECT * FROM table WHERE key = value` per event.
struct SqlLookup {
    client: Client,
    database: SqlConfig,
    table: String,
    /// The database once reached, with its columns' types.
    db: tokio::sync::Mutex<Option<(Db, HashMap<String, String>)>>,
}

impl SqlLookup {
    async fn db(&self) -> Result<(Db, HashMap<String, String>), ConnectorError> {
        let mut held = self.db.lock().await;
        if let Some(db) = held.as_ref() {
            return Ok(db.clone());
        }
        let db = self.client.open(&self.database).await?;
        let types = db.column_types(&self.table).await?;
        Ok(held.insert((db, types)).clone())
    }
}

#[async_trait]
impl Lookup for SqlLookup {
    async fn lookup(&self, fields: &[Arc<str>], values: &[Value]) -> Result<Vec<Map>, ConnectorError> {
        let (db, types) = self.db().await?;
        let columns = fields.iter().map(|f| identifier(f, "key column", false)).collect::<Result<Vec<_>, _>>()?;
        let table = &self.table;
        let result = match &db {
            Db::Postgres(pool) => {
                let mut conditions = Vec::with_capacity(columns.len());
                for (i, column) in columns.iter().enumerate() {
                    conditions.push(format!("{column} = CAST(${} AS {})", i + 1, db::pg_type(&types, column)?));
                }
                let sql = format!(
                    "SELECT to_jsonb(t) FROM {table} AS t WHERE {} LIMIT {}",
                    conditions.join(" AND "),
                    oort_engine::MAX_LOOKUP_ROWS + 1
                );
                let query = values.iter().fold(sqlx::query(&sql), |query, value| query.bind(db::pg_text(value)));
                db::timed(query.fetch_all(pool)).await.and_then(|rows| rows.iter().map(db::pg_row).collect())
            }
            Db::Sqlite(pool) => {
                let conditions: Vec<String> = columns.iter().map(|c| format!("{c} = ?")).collect();
                let sql = format!(
                    "SELECT * FROM {table} WHERE {} LIMIT {}",
                    conditions.join(" AND "),
                    oort_engine::MAX_LOOKUP_ROWS + 1
                );
                let query = values.iter().fold(sqlx::query(&sql), db::bind_sqlite);
                db::timed(query.fetch_all(pool)).await.and_then(|rows| rows.iter().map(db::sqlite_row).collect())
            }
        };
        match &result {
            Err(error) => self.client.failed(error),
            Ok(_) => self.client.link.set(crate::connections::LinkState::Connected),
        }
        let rows: Vec<Map> = result?;
        if rows.len() > oort_engine::MAX_LOOKUP_ROWS {
            return Err(ConnectorError::External(format!(
                "sql lookup: more than {} rows of {table} match, the most a lookup gives",
                oort_engine::MAX_LOOKUP_ROWS
            )));
        }
        Ok(rows)
    }
}
