//! The `sql` sink: each result's rows inserted, upserted, updated or deleted
//! in one transaction. Module documentation: [`super`].

use std::collections::HashMap;

use async_trait::async_trait;
use oort_engine::{ConnectorError, ConnectorOption, Map, OptionKind, Sink, SinkConfig, SinkFactory, Value};
use serde::Deserialize;

use super::db::{self, Client, Db};
use super::{CONNECTION_PROPS, SqlConfig, SqlContext, identifier};
use crate::connections::Origin;
use crate::rowkind::RowKind;

/// What is done with one row.
type Op = RowKind;

/// The sink's own properties, for the docs and the API.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "",
        description: "The named connection (type sql); else url (and password).",
    },
    ConnectorOption {
        key: "url",
        kind: OptionKind::Text,
        default: "",
        description: "sqlite:<path> or postgres://..., the action's own database.",
    },
    ConnectorOption { key: "table", kind: OptionKind::Text, default: "", description: "Required. The table." },
    ConnectorOption {
        key: "fields",
        kind: OptionKind::List,
        default: "",
        description: "The columns written, each a field of the row; default: every field.",
    },
    ConnectorOption {
        key: "tableDataField",
        kind: OptionKind::Text,
        default: "",
        description: "A field holding the row, or a list of rows, to write instead.",
    },
    ConnectorOption {
        key: "keyField",
        kind: OptionKind::Text,
        default: "",
        description: "The key column: rows are upserted by it, and updated or deleted by it.",
    },
    crate::rowkind::ROWKIND_FIELD,
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Props {
    connection_selector: Option<String>,
    table: Option<String>,
    fields: Option<Vec<String>>,
    table_data_field: Option<String>,
    key_field: Option<String>,
    rowkind_field: Option<String>,
}

/// Builds `sql` sinks.
pub struct SqlSinkFactory(pub SqlContext);

impl SinkFactory for SqlSinkFactory {
    fn description(&self) -> &'static str {
        "Writes results into a table of SQLite or PostgreSQL: inserts, upserts on keyField, or what each row's rowkindField says; one transaction a result."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        let options = [OPTIONS, &[crate::redis::SEND_SINGLE]].concat();
        Some(crate::connections::with_connection_props(options, CONNECTION_PROPS))
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let props: Props = serde_json::from_value(serde_json::Value::Object(config.props.clone()))
            .map_err(|e| ConnectorError::Config(format!("sql action: {e}")))?;
        let (database, origin) = match props.connection_selector.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => {
                if let Some(key) = config.props.keys().find(|k| CONNECTION_PROPS.contains(&k.as_str())) {
                    return Err(ConnectorError::Config(format!(
                        "sql action: {key:?} belongs to the connection {name:?}: set it there, or leave out connectionSelector"
                    )));
                }
                self.0.connection(name)?
            }
            None => {
                let own = crate::encode::props_subset::<SqlConfig>(&config.props, CONNECTION_PROPS)?;
                super::db::Location::parse(&own.url)?;
                (own, Origin { connection: String::new(), trusted: false })
            }
        };
        let table = identifier(props.table.as_deref().unwrap_or_default(), "table", true)?;
        let fields = props
            .fields
            .map(|fields| fields.iter().map(|f| identifier(f, "field", false)).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let key = props.key_field.filter(|k| !k.is_empty()).map(|k| identifier(&k, "keyField", false)).transpose()?;
        if let (Some(fields), Some(key)) = (&fields, &key)
            && !fields.contains(key)
        {
            return Err(ConnectorError::Config(format!("sql action: keyField {key:?} must be among fields")));
        }
        let link = origin.link(&self.0.connections, &config.rule_id, &format!("sink_sql_{}", config.index))?;
        Ok(Box::new(SqlSink {
            client: Client { context: self.0.clone(), trusted: origin.trusted, link },
            database,
            layout: Layout {
                table,
                fields,
                key,
                data_field: props.table_data_field.filter(|f| !f.is_empty()),
                rowkind_field: props.rowkind_field.filter(|f| !f.is_empty()),
            },
            db: None,
        }))
    }
}

/// Which rows of a result are written, to which columns, and how.
#[derive(Debug)]
struct Layout {
    table: String,
    fields: Option<Vec<String>>,
    key: Option<String>,
    data_field: Option<String>,
    rowkind_field: Option<String>,
}

/// One statement: its kind, the columns it names and the values bound, in
/// the order of its parameters.
#[derive(Debug, PartialEq)]
struct Statement {
    op: Op,
    columns: Vec<String>,
    values: Vec<Value>,
}

impl Layout {
    /// The statements that write `rows`.
    fn statements(&self, rows: &[Map]) -> Result<Vec<Statement>, ConnectorError> {
        let mut statements = Vec::with_capacity(rows.len());
        for row in rows {
            match &self.data_field {
                None => statements.push(self.statement(row)?),
                Some(field) => match row.get(field.as_str()) {
                    Some(Value::Map(inner)) => statements.push(self.statement(inner)?),
                    Some(Value::List(items)) => {
                        for item in items.iter() {
                            let Value::Map(inner) = item else {
                                return Err(ConnectorError::External(format!(
                                    "sql: tableDataField {field:?} holds a {}, not a row",
                                    item.type_name()
                                )));
                            };
                            statements.push(self.statement(inner)?);
                        }
                    }
                    Some(Value::Null) | None => {}
                    Some(other) => {
                        return Err(ConnectorError::External(format!(
                            "sql: tableDataField {field:?} holds a {}, not a row or a list of rows",
                            other.type_name()
                        )));
                    }
                },
            }
        }
        Ok(statements)
    }

    fn statement(&self, row: &Map) -> Result<Statement, ConnectorError> {
        let kind = match &self.rowkind_field {
            Some(field) => RowKind::of(row, field, "sql")?,
            None => None,
        };
        // Without a row kind, a keyed table is upserted: a result written twice is stored once.
        let op = kind.unwrap_or(if self.key.is_some() { Op::Upsert } else { Op::Insert });
        let columns = match &self.fields {
            Some(fields) => fields.clone(),
            None => row
                .keys()
                .filter(|k| self.rowkind_field.as_deref() != Some(&**k))
                .map(|k| identifier(k, "field", false))
                .collect::<Result<_, _>>()?,
        };
        let value = |column: &str| row.get(column).cloned().unwrap_or_default();
        if op == Op::Insert {
            let values = columns.iter().map(|c| value(c)).collect();
            return Ok(Statement { op, columns, values });
        }
        let key = self.key.as_deref().ok_or_else(|| {
            ConnectorError::External(format!("sql: a row to {} needs keyField, the key column", op.as_str()))
        })?;
        if matches!(value(key), Value::Null) {
            return Err(ConnectorError::External(format!("sql: the row has no value for the key {key:?}")));
        }
        let (columns, values) = match op {
            Op::Delete => (vec![key.to_owned()], vec![value(key)]),
            Op::Update => {
                let mut set: Vec<String> = columns.into_iter().filter(|c| c != key).collect();
                set.push(key.to_owned());
                let values = set.iter().map(|c| value(c)).collect();
                (set, values)
            }
            _ => {
                let mut columns = columns;
                if !columns.iter().any(|c| c == key) {
                    columns.push(key.to_owned());
                }
                let values = columns.iter().map(|c| value(c)).collect();
                (columns, values)
            }
        };
        Ok(Statement { op, columns, values })
    }

    /// The SQL of `statement`, `param(n, column)` giving the n-th (from 1) placeholder.
    fn sql(
        &self,
        statement: &Statement,
        param: impl Fn(usize, &str) -> Result<String, ConnectorError>,
    ) -> Result<String, ConnectorError> {
        let table = &self.table;
        let columns = &statement.columns;
        let params = columns.iter().enumerate().map(|(i, c)| param(i + 1, c)).collect::<Result<Vec<_>, _>>()?;
        let key = self.key.as_deref().unwrap_or_default();
        Ok(match statement.op {
            Op::Insert | Op::Upsert => {
                let mut sql = format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), params.join(", "));
                if statement.op == Op::Upsert {
                    let set: Vec<String> =
                        columns.iter().filter(|c| *c != key).map(|c| format!("{c} = excluded.{c}")).collect();
                    if set.is_empty() {
                        sql.push_str(&format!(" ON CONFLICT ({key}) DO NOTHING"));
                    } else {
                        sql.push_str(&format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", ")));
                    }
                }
                sql
            }
            Op::Update => {
                let (last, set) = params.split_last().expect("the key is the last parameter");
                let set: Vec<String> = columns.iter().zip(set).map(|(c, p)| format!("{c} = {p}")).collect();
                if set.is_empty() {
                    return Err(ConnectorError::External("sql: an update needs a column besides the key".into()));
                }
                format!("UPDATE {table} SET {} WHERE {key} = {last}", set.join(", "))
            }
            Op::Delete => format!("DELETE FROM {table} WHERE {key} = {}", params[0]),
        })
    }
}

struct SqlSink {
    client: Client,
    database: SqlConfig,
    layout: Layout,
    /// The database once reached, with its columns' types.
    db: Option<(Db, HashMap<String, String>)>,
}

impl SqlSink {
    async fn db(&mut self) -> Result<(Db, HashMap<String, String>), ConnectorError> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        let db = self.client.open(&self.database).await?;
        let types = db.column_types(&self.layout.table).await?;
        Ok(self.db.insert((db, types)).clone())
    }

    async fn write(&mut self, statements: &[Statement]) -> Result<(), ConnectorError> {
        let (db, types) = self.db().await?;
        match db {
            Db::Postgres(pool) => {
                let mut tx = db::timed(pool.begin()).await?;
                for statement in statements {
                    let sql = self
                        .layout
                        .sql(statement, |n, column| Ok(format!("CAST(${n} AS {})", db::pg_type(&types, column)?)))?;
                    let query = statement.values.iter().fold(sqlx::query(&sql), |q, v| q.bind(db::pg_text(v)));
                    db::timed(query.execute(&mut *tx)).await?;
                }
                db::timed(tx.commit()).await
            }
            Db::Sqlite(pool) => {
                let mut tx = db::timed(pool.begin()).await?;
                for statement in statements {
                    let sql = self.layout.sql(statement, |_, _| Ok("?".into()))?;
                    let query = statement.values.iter().fold(sqlx::query(&sql), db::bind_sqlite);
                    db::timed(query.execute(&mut *tx)).await?;
                }
                db::timed(tx.commit()).await
            }
        }
    }
}

#[async_trait]
impl Sink for SqlSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.db().await.map(drop)
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let statements = self.layout.statements(rows)?;
        if statements.is_empty() {
            return Ok(());
        }
        let written = self.write(&statements).await;
        match &written {
            Ok(()) => self.client.link.set(crate::connections::LinkState::Connected),
            Err(error) => self.client.failed(error),
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(key: Option<&str>, rowkind: Option<&str>) -> Layout {
        Layout {
            table: "t".into(),
            fields: None,
            key: key.map(str::to_owned),
            data_field: None,
            rowkind_field: rowkind.map(str::to_owned),
        }
    }

    fn row(pairs: &[(&str, Value)]) -> Map {
        pairs.iter().map(|(k, v)| (std::sync::Arc::from(*k), v.clone())).collect()
    }

    fn sql_of(layout: &Layout, row: Map) -> String {
        let statement = layout.statements(&[row]).unwrap().remove(0);
        layout.sql(&statement, |n, _| Ok(format!("${n}"))).unwrap()
    }

    #[test]
    fn statements_by_rowkind_and_key() {
        let plain = layout(None, None);
        assert_eq!(
            sql_of(&plain, row(&[("a", Value::Int(1)), ("b", Value::Int(2))])),
            "INSERT INTO t (a, b) VALUES ($1, $2)"
        );
        let keyed = layout(Some("id"), Some("op"));
        assert_eq!(
            sql_of(&keyed, row(&[("id", Value::Int(1)), ("v", Value::Int(2))])),
            "INSERT INTO t (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v"
        );
        assert_eq!(
            sql_of(&keyed, row(&[("id", Value::Int(1)), ("op", Value::String("update".into())), ("v", Value::Int(2))])),
            "UPDATE t SET v = $1 WHERE id = $2"
        );
        assert_eq!(
            sql_of(&keyed, row(&[("id", Value::Int(1)), ("op", Value::String("DELETE".into()))])),
            "DELETE FROM t WHERE id = $1"
        );
        let error = plain.statements(&[row(&[("a b", Value::Int(1))])]).unwrap_err().to_string();
        assert!(error.contains("not an identifier"), "{error}");
        let error = layout(None, Some("op"))
            .statements(&[row(&[("op", Value::String("delete".into())), ("a", Value::Int(1))])])
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs keyField"), "{error}");
    }

    #[test]
    fn table_data_field_rows() {
        let mut nested = layout(None, None);
        nested.data_field = Some("telemetry".into());
        let items =
            Value::list(vec![Value::map(row(&[("t", Value::Int(1))])), Value::map(row(&[("t", Value::Int(2))]))]);
        let statements = nested.statements(&[row(&[("telemetry", items)])]).unwrap();
        assert_eq!(statements.iter().map(|s| s.values.clone()).collect::<Vec<_>>(), [[Value::Int(1)], [Value::Int(2)]]);
    }
}
