//! The `redis` sink, as eKuiper's: each row stored in Redis, as a string or
//! pushed on a list, keyed by one of its fields or a fixed key.
//!
//! ```json
//! {"redis": {"connectionSelector": "cache", "field": "deviceId", "dataType": "string", "expiration": 600}}
//! ```
//!
//! The server comes from a named connection of type `redis`
//! (`connectionSelector`; properties `addr` `host:port`, `password`, `db`,
//! and for TLS `rootCaPath`, `certificationPath`, `privateKeyPath`,
//! `insecureSkipVerify`, or `tls: true` with the system's CAs; the files
//! inside the file roots unless the connection is declared), or from the
//! action's own properties, eKuiper's way (its address then passes the
//! egress policy). The action's properties:
//!
//! | property | meaning |
//! |---|---|
//! | `field` | The row field whose value is the key (`keyType` single). |
//! | `key` | A fixed key, when `field` is not given (`keyType` single). |
//! | `keyType` | `single` (default): the row as JSON under its key; `multiple`: each field of the row under its own name. |
//! | `dataType` | `string` (default: `SET`) or `list` (`LPUSH`). |
//! | `expiration` | Seconds a string lives; `-1` (default) for ever. |
//! | `rowkindField` | A field saying what to do with the row: `insert`, `update` or `upsert` store it, `delete` deletes its key. |
//!
//! Every row of a result is written in one pipeline (`MULTI`/`EXEC`), all or
//! nothing; `collect` returns once Redis answered. A failure is
//! `ConnectorError::External`, and the engine retries the result.
//!
//! # Lookup tables
//!
//! ```sql
//! CREATE TABLE alerts () WITH (TYPE="redis", KIND="lookup", CONF_KEY="cache", DATASOURCE="0")
//! SELECT * FROM events INNER JOIN alerts ON events.kind = alerts.id
//! ```
//!
//! A `redis` table is a lookup table (`KIND="lookup"`), queried when an
//! event joins it: the value the event gives the table's key column (the
//! first equality of `ON`) is the Redis key. `CONF_KEY` names the connection
//! (type `redis`), `DATASOURCE` the database (0 to 15). With `DATA_TYPE`
//! `string` (the default), `GET` gives one row, the stored JSON object; with
//! `list`, `LRANGE` gives a row per element (at most 10,000: a longer list
//! fails the lookup, counted as an exception of the join). A key that does not
//! exist gives no row. This is what the `redis` sink writes: the two make
//! eKuiper's updatable lookup table.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, ConnectorOption, Lookup, Map, OptionKind, Sink, SinkConfig, SinkFactory, Source, SourceConfig,
    SourceFactory, Value,
};
use oort_policy::{EgressPolicy, FileRoots};
use serde::Deserialize;

use crate::connections::{ClientLink, Connections, LinkState, Origin};
use crate::rowkind::RowKind;

/// How long connecting, and each command, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The properties a named `redis` connection may hold.
pub const CONNECTION_PROPS: &[&str] =
    &["addr", "password", "db", "tls", "rootCaPath", "certificationPath", "privateKeyPath", "insecureSkipVerify"];

/// The settings of a Redis server, with eKuiper's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `host:port`.
    pub addr: String,
    /// The password (`AUTH`), if the server wants one.
    pub password: Option<String>,
    /// The database number.
    pub db: i64,
    /// TLS with the system's CAs, when no TLS file says so already.
    pub tls: bool,
    /// TLS files and verification.
    #[serde(flatten)]
    pub tls_files: crate::tls::TlsProps,
}

impl RedisConfig {
    /// The settings of a named connection's properties; an unknown property is refused.
    pub fn from_connection(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        crate::connections::settings::<Self>(props, CONNECTION_PROPS, "redis")?.checked()
    }

    /// The settings among an action's properties.
    fn of(props: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConnectorError> {
        crate::encode::props_subset::<Self>(props, CONNECTION_PROPS)?.checked()
    }

    fn checked(self) -> Result<Self, ConnectorError> {
        self.host_port()?;
        if !(0..=15).contains(&self.db) {
            return Err(ConnectorError::Config(format!("redis: db is 0 to 15, not {}", self.db)));
        }
        Ok(self)
    }

    /// The TLS of these settings, its files read now (from inside `files`
    /// when given; a trusted connection's as named); `None` without TLS.
    fn tls(&self, files: Option<&FileRoots>) -> Result<Option<Tls>, ConnectorError> {
        if !(self.tls || self.tls_files.any()) {
            return Ok(None);
        }
        let read = |key: &str, path: &str| -> Result<Vec<u8>, ConnectorError> {
            let path = match files {
                Some(files) => files
                    .resolve(path, oort_policy::PathUse::ReadFile)
                    .map_err(|e| ConnectorError::Config(format!("redis: {key}: {e}")))?,
                None => std::path::PathBuf::from(path),
            };
            std::fs::read(&path).map_err(|e| ConnectorError::Config(format!("redis: {key} {}: {e}", path.display())))
        };
        let files = &self.tls_files;
        let root_cert = files.root_ca_path.as_deref().map(|p| read("rootCaPath", p)).transpose()?;
        let client_tls = match (&files.certification_path, &files.private_key_path) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("certificationPath", cert)?,
                client_key: read("privateKeyPath", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(ConnectorError::Config(
                    "redis: a client certificate needs both certificationPath and privateKeyPath".into(),
                ));
            }
        };
        Ok(Some(Tls {
            certificates: redis::TlsCertificates { client_tls, root_cert },
            insecure: files.insecure_skip_verify,
        }))
    }

    fn host_port(&self) -> Result<(String, u16), ConnectorError> {
        crate::connections::host_port(&self.addr, "redis")
    }
}

/// TLS to a server: its certificates, and whether the server's is checked.
#[derive(Clone)]
struct Tls {
    certificates: redis::TlsCertificates,
    insecure: bool,
}

/// Checks a named connection's properties, reading its TLS files (inside
/// the file roots unless it is declared).
pub(crate) fn check_connection(
    def: &crate::connections::ConnectionDef,
    files: &FileRoots,
) -> Result<(), ConnectorError> {
    RedisConfig::from_connection(&def.props)?.tls((!def.declared).then_some(files)).map(drop)
}

/// Builds `redis` sinks.
pub struct RedisSinkFactory {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// What servers a client named may be.
    pub egress: Arc<EgressPolicy>,
    /// Where a client's TLS files may be read from.
    pub files: Arc<FileRoots>,
}

/// eKuiper's rules set it; every row is written on its own either way.
pub(crate) const SEND_SINGLE: ConnectorOption = ConnectorOption {
    key: "sendSingle",
    kind: OptionKind::Bool,
    default: "false",
    description: "Accepted as in eKuiper's rules: each row is written on its own either way.",
};

/// The sink's own properties, for the docs and the API.
const OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "connectionSelector",
        kind: OptionKind::Text,
        default: "",
        description: "The named connection (type redis); else addr, password and db.",
    },
    ConnectorOption {
        key: "addr",
        kind: OptionKind::Text,
        default: "",
        description: "host:port of the action's own server.",
    },
    ConnectorOption {
        key: "field",
        kind: OptionKind::Text,
        default: "",
        description: "The row field whose value is the key.",
    },
    ConnectorOption { key: "key", kind: OptionKind::Text, default: "", description: "A fixed key, without field." },
    ConnectorOption {
        key: "keyType",
        kind: OptionKind::OneOf(&["single", "multiple"]),
        default: "single",
        description: "single: the row as JSON under its key; multiple: each field under its own name.",
    },
    ConnectorOption {
        key: "dataType",
        kind: OptionKind::OneOf(&["string", "list"]),
        default: "string",
        description: "string: SET; list: LPUSH.",
    },
    ConnectorOption {
        key: "expiration",
        kind: OptionKind::Text,
        default: "-1",
        description: "Seconds a string lives; -1 for ever.",
    },
    crate::rowkind::ROWKIND_FIELD,
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Props {
    connection_selector: Option<String>,
    field: Option<String>,
    key: Option<String>,
    #[serde(default)]
    key_type: Option<String>,
    #[serde(default)]
    data_type: Option<String>,
    #[serde(default)]
    expiration: Option<serde_json::Value>,
    rowkind_field: Option<String>,
}

/// Where a row goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keying {
    Field(String),
    Fixed(String),
    Multiple,
}

impl SinkFactory for RedisSinkFactory {
    fn description(&self) -> &'static str {
        "Writes results to Redis: a string or hash per key, or a list; the key from a field or fixed."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(crate::connections::with_connection_props([OPTIONS, &[SEND_SINGLE]].concat(), CONNECTION_PROPS))
    }

    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        let props: Props = serde_json::from_value(serde_json::Value::Object(config.props.clone()))
            .map_err(|e| ConnectorError::Config(format!("redis action: {e}")))?;
        let (server, origin) = match &props.connection_selector {
            Some(name) => {
                if let Some(key) = config.props.keys().find(|k| CONNECTION_PROPS.contains(&k.as_str())) {
                    return Err(ConnectorError::Config(format!(
                        "redis action: {key:?} belongs to the connection {name:?}: set it there, or leave out connectionSelector"
                    )));
                }
                let def = self.connections.lookup(name, "redis")?;
                (RedisConfig::from_connection(&def.props)?, Origin::of(&def))
            }
            None => (RedisConfig::of(&config.props)?, Origin { connection: String::new(), trusted: false }),
        };
        let keying = match (props.key_type.as_deref().map(str::to_ascii_lowercase).as_deref(), props.field, props.key) {
            (None | Some("single"), Some(field), _) if !field.is_empty() => Keying::Field(field),
            (None | Some("single"), _, Some(key)) if !key.is_empty() => Keying::Fixed(key),
            (None | Some("single"), ..) => {
                return Err(ConnectorError::Config("redis action: give field (a row field) or key".into()));
            }
            (Some("multiple"), ..) => Keying::Multiple,
            (Some(other), ..) => {
                return Err(ConnectorError::Config(format!(
                    "redis action: keyType is single or multiple, not {other:?}"
                )));
            }
        };
        let list = match props.data_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("string") => false,
            Some("list") => true,
            Some(other) => {
                return Err(ConnectorError::Config(format!("redis action: dataType is string or list, not {other:?}")));
            }
        };
        let expiration = match props.expiration {
            None => -1,
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(-1),
            Some(serde_json::Value::String(s)) => s.trim().parse().map_err(|_| {
                ConnectorError::Config(format!("redis action: expiration is a number of seconds, not {s:?}"))
            })?,
            Some(other) => {
                return Err(ConnectorError::Config(format!("redis action: expiration is seconds, not {other}")));
            }
        };
        Ok(Box::new(RedisSink {
            tls: server.tls((!origin.trusted).then_some(self.files.as_ref()))?,
            server,
            egress: (!origin.trusted).then(|| Arc::clone(&self.egress)),
            origin,
            registry: Arc::clone(&self.connections),
            keying,
            list,
            expiration,
            rowkind_field: props.rowkind_field.filter(|f| !f.is_empty()),
            rule_id: config.rule_id.clone(),
            operator: format!("sink_redis_{}", config.index),
            link: None,
            conn: None,
        }))
    }
}

struct RedisSink {
    server: RedisConfig,
    tls: Option<Tls>,
    egress: Option<Arc<EgressPolicy>>,
    origin: Origin,
    registry: Arc<Connections>,
    keying: Keying,
    list: bool,
    expiration: i64,
    rowkind_field: Option<String>,
    rule_id: String,
    operator: String,
    link: Option<Arc<ClientLink>>,
    conn: Option<redis::aio::MultiplexedConnection>,
}

/// Connects to `server`, its address through `egress` when given, reporting to `link`.
async fn connect(
    server: &RedisConfig,
    tls: Option<&Tls>,
    egress: Option<&EgressPolicy>,
    link: &ClientLink,
) -> Result<redis::aio::MultiplexedConnection, ConnectorError> {
    link.set(LinkState::Connecting);
    let failed = |why: String| {
        link.set(LinkState::Disconnected(why.clone()));
        ConnectorError::External(format!("redis {}: {why}", server.addr))
    };
    let (host, port) = server.host_port()?;
    if let Some(policy) = egress {
        crate::connections::check_egress(policy, &host, port).await.map_err(failed)?;
    }
    let redis = redis::RedisConnectionInfo { db: server.db, password: server.password.clone(), ..Default::default() };
    let client = match tls {
        None => redis::Client::open(redis::ConnectionInfo { addr: redis::ConnectionAddr::Tcp(host, port), redis }),
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let addr = redis::ConnectionAddr::TcpTls { host, port, insecure: tls.insecure, tls_params: None };
            redis::Client::build_with_tls(redis::ConnectionInfo { addr, redis }, tls.certificates.clone())
        }
    }
    .map_err(|e| failed(e.to_string()))?;
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
    let conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| failed(e.to_string()))?;
    link.set(LinkState::Connected);
    Ok(conn)
}

/// A value as Redis stores it: text as is, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => oort_engine::json::value_to_json(other).to_string(),
    }
}

impl RedisSink {
    async fn connection(&mut self) -> Result<redis::aio::MultiplexedConnection, ConnectorError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let link = match &self.link {
            Some(link) => Arc::clone(link),
            None => Arc::clone(self.link.insert(self.origin.link(&self.registry, &self.rule_id, &self.operator)?)),
        };
        let conn = connect(&self.server, self.tls.as_ref(), self.egress.as_deref(), &link).await?;
        Ok(self.conn.insert(conn).clone())
    }

    /// The commands that store `row`.
    fn store(&self, pipe: &mut redis::Pipeline, row: &Map) -> Result<(), ConnectorError> {
        let kind = match &self.rowkind_field {
            Some(field) => RowKind::of(row, field, "redis")?.unwrap_or(RowKind::Insert),
            None => RowKind::Insert,
        };
        let pairs: Vec<(String, String)> = match &self.keying {
            Keying::Field(field) => {
                let key = row.get(field.as_str()).filter(|v| !matches!(v, Value::Null)).ok_or_else(|| {
                    ConnectorError::External(format!("redis: the row has no field {field:?} to key it by"))
                })?;
                vec![(text(key), oort_engine::json::map_to_json(row).to_string())]
            }
            Keying::Fixed(key) => vec![(key.clone(), oort_engine::json::map_to_json(row).to_string())],
            Keying::Multiple => row.iter().map(|(k, v)| (k.to_string(), text(v))).collect(),
        };
        for (key, value) in pairs {
            match kind {
                RowKind::Delete => {
                    pipe.del(&key).ignore();
                }
                _ if self.list => {
                    pipe.lpush(&key, value).ignore();
                }
                _ if self.expiration > 0 => {
                    pipe.set_ex(&key, value, self.expiration as u64).ignore();
                }
                _ => {
                    pipe.set(&key, value).ignore();
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        self.connection().await.map(drop)
    }

    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for row in rows {
            self.store(&mut pipe, row)?;
        }
        let mut conn = self.connection().await?;
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            self.conn = None;
            if let Some(link) = &self.link {
                link.set(LinkState::Disconnected(e.to_string()));
            }
            return Err(ConnectorError::External(format!("redis {}: {e}", self.server.addr)));
        }
        Ok(())
    }
}

/// The options of a `redis` lookup table.
const TABLE_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "CONF_KEY",
        kind: OptionKind::Text,
        default: "",
        description: "Required. The named connection (type redis) of the server.",
    },
    ConnectorOption {
        key: "DATA_TYPE",
        kind: OptionKind::OneOf(&["string", "list"]),
        default: "string",
        description: "string: GET gives the row; list: LRANGE gives a row per element.",
    },
];

/// Builds `redis` lookup tables.
pub struct RedisSourceFactory {
    /// The named connections.
    pub connections: Arc<Connections>,
    /// What servers a client named may be.
    pub egress: Arc<EgressPolicy>,
    /// Where a client's TLS files may be read from.
    pub files: Arc<FileRoots>,
}

impl RedisSourceFactory {
    /// A table's server (its connection, with DATASOURCE as the database) and data type.
    fn table(&self, config: &SourceConfig) -> Result<(RedisConfig, Origin, bool), ConnectorError> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim());
        if !option("KIND").is_some_and(|k| k.eq_ignore_ascii_case("lookup")) {
            return Err(ConnectorError::Config(
                "a redis source is a lookup table: CREATE TABLE ... WITH (TYPE=\"redis\", KIND=\"lookup\", ...)".into(),
            ));
        }
        let name = option("CONF_KEY").filter(|k| !k.is_empty()).ok_or_else(|| ConnectorError::Option {
            key: "CONF_KEY".into(),
            message: "a redis table needs CONF_KEY, the named connection (type redis)".into(),
        })?;
        let def = self.connections.lookup(name, "redis")?;
        let mut server = RedisConfig::from_connection(&def.props)?;
        if !config.datasource.trim().is_empty() {
            server.db = config.datasource.trim().parse().map_err(|_| {
                ConnectorError::Config(format!(
                    "redis: DATASOURCE is the database, 0 to 15, not {:?}",
                    config.datasource
                ))
            })?;
        }
        let list = match option("DATA_TYPE").map(str::to_ascii_lowercase).as_deref() {
            None | Some("string") => false,
            Some("list") => true,
            Some(other) => {
                return Err(ConnectorError::Option {
                    key: "DATA_TYPE".into(),
                    message: format!("redis: DATA_TYPE is string or list, not {other:?}"),
                });
            }
        };
        Ok((server.checked()?, Origin::of(&def), list))
    }
}

impl SourceFactory for RedisSourceFactory {
    fn description(&self) -> &'static str {
        "A lookup table in Redis, queried at join time (KIND=\"lookup\"): a string or list per key. DATASOURCE is the database number."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(TABLE_OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.table(config).map(drop)
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        self.table(config)?;
        Err(ConnectorError::Config(format!(
            "redis table {}: a lookup table is queried at join time, by an ON equality with one of its columns",
            config.stream
        )))
    }

    fn supports_lookup(&self) -> bool {
        true
    }

    fn lookup(&self, config: &SourceConfig) -> Result<Option<Arc<dyn Lookup>>, ConnectorError> {
        let (server, origin, list) = self.table(config)?;
        let link = origin.link(&self.connections, &config.rule_id, &format!("source_{}_0", config.stream))?;
        let egress = (!origin.trusted).then(|| Arc::clone(&self.egress));
        let tls = server.tls((!origin.trusted).then_some(self.files.as_ref()))?;
        Ok(Some(Arc::new(RedisLookup { server, tls, egress, link, list, conn: tokio::sync::Mutex::default() })))
    }
}

/// A `redis` lookup table's store.
struct RedisLookup {
    server: RedisConfig,
    tls: Option<Tls>,
    egress: Option<Arc<EgressPolicy>>,
    link: Arc<ClientLink>,
    list: bool,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl RedisLookup {
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, ConnectorError> {
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_ref() {
            return Ok(conn.clone());
        }
        let conn = connect(&self.server, self.tls.as_ref(), self.egress.as_deref(), &self.link).await?;
        Ok(held.insert(conn).clone())
    }
}

/// A stored value as a row: a JSON object's fields, else `{"value": ...}`.
fn row_of(stored: &str) -> Map {
    match serde_json::from_str::<serde_json::Value>(stored) {
        Ok(serde_json::Value::Object(object)) => {
            object.iter().map(|(k, v)| (Arc::from(k.as_str()), oort_engine::json::json_to_value(v))).collect()
        }
        Ok(other) => Map::from([(Arc::from("value"), oort_engine::json::json_to_value(&other))]),
        Err(_) => Map::from([(Arc::from("value"), Value::from(stored))]),
    }
}

#[async_trait]
impl Lookup for RedisLookup {
    async fn lookup(&self, _fields: &[Arc<str>], values: &[Value]) -> Result<Vec<Map>, ConnectorError> {
        let key = values.first().map(text).ok_or_else(|| ConnectorError::External("redis lookup: no key".into()))?;
        let mut conn = self.connection().await?;
        let stored: Result<Vec<String>, redis::RedisError> = if self.list {
            // One more than the most a lookup gives, to tell a list that has too many.
            redis::cmd("LRANGE").arg(&key).arg(0).arg(oort_engine::MAX_LOOKUP_ROWS).query_async(&mut conn).await
        } else {
            redis::cmd("GET").arg(&key).query_async::<Option<String>>(&mut conn).await.map(|v| v.into_iter().collect())
        };
        match stored {
            Ok(values) if values.len() > oort_engine::MAX_LOOKUP_ROWS => Err(ConnectorError::External(format!(
                "redis lookup: the list {key:?} holds more than {} elements, the most a lookup gives",
                oort_engine::MAX_LOOKUP_ROWS
            ))),
            Ok(values) => Ok(values.iter().map(|v| row_of(v)).collect()),
            Err(e) => {
                *self.conn.lock().await = None;
                self.link.set(LinkState::Disconnected(e.to_string()));
                Err(ConnectorError::External(format!("redis {}: {e}", self.server.addr)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let props = |json: serde_json::Value| json.as_object().cloned().unwrap();
        assert_eq!(RedisConfig::of(&props(serde_json::json!({"addr": "h:6379", "db": 2}))).unwrap().db, 2);
        for (json, why) in
            [(serde_json::json!({"addr": "h"}), "host:port"), (serde_json::json!({"addr": "h:1", "db": 16}), "0 to 15")]
        {
            assert!(RedisConfig::of(&props(json.clone())).unwrap_err().to_string().contains(why), "{json}");
        }
        let unknown = RedisConfig::from_connection(&props(serde_json::json!({"addr": "h:1", "field": "x"})));
        assert!(unknown.unwrap_err().to_string().contains("unknown property"));
    }
}
