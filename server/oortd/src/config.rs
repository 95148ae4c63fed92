//! Server configuration: defaults, then `oort.toml`, then environment variables
//! and flags (clap merges those two; a flag wins over its variable).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use oort_connectors::connections::{self, ConnectionDef};
use oort_policy::EgressPolicy;
use serde::Deserialize;

use crate::auth::{Role, TokenEntry, token};

/// Default listen address: loopback only; listening elsewhere is a choice.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9081";
/// Default address of the HTTP push endpoint: eKuiper's httppush port, on loopback.
pub const DEFAULT_HTTP_PUSH_LISTEN: &str = "127.0.0.1:10081";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default of `max_buffer_length`: the largest `bufferLength` a rule may ask for.
pub const DEFAULT_MAX_BUFFER_LENGTH: u32 = 100_000;
/// Default of `max_message_bytes`: the largest gRPC message the API takes or sends.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;
/// The configuration file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "oort.toml";

/// Command line of `oortd`.
#[derive(Debug, Parser)]
#[command(
    name = "oortd",
    version,
    about = "Oort server: streaming SQL for the edge, managed over gRPC",
    after_help = "Configuration is read from (later wins): built-in defaults, the file oort.toml \
(in the working directory, or --config), the environment variables OORT_LISTEN, OORT_DATA_DIR, \
OORT_AUTH_TOKEN and OORT_TLS_*, then flags. With no arguments oortd listens on 127.0.0.1:9081, keeps its \
data in ./data and, at its first start, writes an admin token to ./data/admin.token (mode 0600): \
every call but health needs `authorization: Bearer <token>`.\n\nExample oort.toml:\n  listen = \"127.0.0.1:9081\"\n  data_dir = \"/var/lib/oort\"\n  http_push_listen = \"127.0.0.1:10081\"  # or \"off\"\n  metrics_listen = \"127.0.0.1:9090\"  # Prometheus /metrics; off by default\n  mqtt_server = \"tcp://127.0.0.1:1883\"  # the broker of mqtt streams (the connection `default`)\n  log_level = \"info\"    # or a filter such as \"oortd=debug,info\"\n  log_format = \"text\"   # or \"json\"\n  tls_cert = \"/etc/oort/server.pem\"   # with tls_key; needed to listen beyond loopback\n  tls_key = \"/etc/oort/server.key\"\n  [[tokens]]                          # `oort token new --name ci --role editor` prints one\n  name = \"ci\"\n  role = \"editor\"                     # admin, editor, viewer or publisher\n  hash = \"sha256:...\"\n  [connections.plant]                 # a named connection: CONF_KEY=\"plant\" in a stream\n  type = \"mqtt\"\n  server = \"ssl://broker.plant:8883\"\n  username = \"gw\"\n  password = \"...\"\n  rootCaPath = \"/etc/oort/ca.pem\"       # inside a file root"
)]
pub struct Args {
    /// Address to listen on for the gRPC API (port 0 picks a free port) [default: 127.0.0.1:9081]
    #[arg(long, env = "OORT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the catalog and installed plugins [default: ./data]
    #[arg(long, env = "OORT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file; an error if it does not exist [default: ./oort.toml if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP endpoint of `httppush` streams, or `off` [default: 127.0.0.1:10081]
    #[arg(long, env = "OORT_HTTP_PUSH_LISTEN", value_name = "ADDR|off")]
    pub http_push_listen: Option<String>,
    /// Address of the Prometheus endpoint (GET /metrics), or `off` [default: off]
    #[arg(long, env = "OORT_METRICS_LISTEN", value_name = "ADDR|off")]
    pub metrics_listen: Option<String>,
    /// Where the catalog lives: `sled` (in <data_dir>/catalog) or
    /// `etcd://host:port[,host:port...][/prefix]`, shared by every oortd that names it [default: sled]
    #[arg(long, env = "OORT_CATALOG", value_name = "sled|URL")]
    pub catalog: Option<String>,
    /// The MQTT broker of `mqtt` streams, and of `mqtt` actions without `server` [default: tcp://127.0.0.1:1883]
    #[arg(long, env = "OORT_MQTT_SERVER", value_name = "URL")]
    pub mqtt_server: Option<String>,
    /// Log filter, e.g. `info` or `oortd=debug,info`; RUST_LOG wins if set [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// One admin token, accepted besides those of oort.toml; prefer the variable (a flag shows in `ps`)
    #[arg(long, env = "OORT_AUTH_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// Certificate chain (PEM) to serve the API over TLS with
    #[arg(long, env = "OORT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, env = "OORT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates are verified (mTLS); their Common Name maps to a role in oort.toml
    #[arg(long, env = "OORT_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// A directory, besides <DATA_DIR>/files and <DATA_DIR>/uploads, that client-named paths may be in (repeat, or colon-separate in the variable)
    #[arg(long = "file-root", env = "OORT_FILE_ROOTS", value_delimiter = ':', value_name = "DIR")]
    pub file_roots: Vec<PathBuf>,
    /// An internal address, network or host the server may connect to for rules, services and plugin URLs (repeat, or comma-separate in the variable)
    #[arg(long = "egress-allow", env = "OORT_EGRESS_ALLOW", value_delimiter = ',', value_name = "ENTRY")]
    pub egress_allow: Vec<String>,
    /// Serve the API in plaintext on a non-loopback address (tokens then cross the network in clear)
    #[arg(long, env = "OORT_ALLOW_INSECURE_LISTEN")]
    pub allow_insecure_listen: bool,
}

/// A token of `oort.toml` (`[[tokens]]`): its name, role and hash; never the token itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in audit lines.
    pub name: String,
    /// admin, editor, viewer or publisher.
    pub role: String,
    /// `sha256:<hex>`, as `oort token new` prints it.
    pub hash: String,
}

/// A client certificate's role (`[[client_certs]]`), by its subject's Common Name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// The Common Name (CN) of the certificate's subject.
    pub common_name: String,
    /// admin, editor, viewer or publisher.
    pub role: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The contents of `oort.toml`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP push endpoint, or "off".
    pub http_push_listen: Option<String>,
    /// Address of the Prometheus endpoint, or "off".
    pub metrics_listen: Option<String>,
    /// The broker of `mqtt` streams and of `mqtt` actions without `server`.
    pub mqtt_server: Option<String>,
    /// Named connections (`[connections.<name>]`: `type` and its properties).
    pub connections: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Log format: text or json.
    pub log_format: Option<LogFormat>,
    /// sled page cache, in bytes.
    pub cache_capacity_bytes: Option<u64>,
    /// `sled`, or the etcd cluster of a shared catalog.
    pub catalog: Option<String>,
    /// Seconds in-flight calls get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: Option<u64>,
    /// Whether plugins may be downloaded from any address (else `egress_allow` applies).
    pub plugin_allow_private_urls: Option<bool>,
    /// Hosts (`name` or `name:port`) external services may be called at; any when absent.
    pub external_service_hosts: Option<Vec<String>>,
    /// Threads of a runtime of external calls' own; 0 (the default): the server's.
    pub external_io_threads: Option<usize>,
    /// Interpreter of portable plugins in Python.
    pub plugin_python: Option<String>,
    /// Interpreter of portable plugins in JavaScript (node).
    pub plugin_node: Option<String>,
    /// The package index pip may install Python plugins' requirements from;
    /// none by default: from the wheels the plugin bundles only.
    pub plugin_pip_index_url: Option<String>,
    /// How long making a Python plugin's environment may take.
    pub plugin_environment_timeout_ms: Option<u64>,
    /// Whether calls must authenticate (default true); false only on loopback.
    pub auth: Option<bool>,
    /// Accepted tokens.
    pub tokens: Option<Vec<TokenConfig>>,
    /// Roles of client certificates (needs `tls_client_ca`).
    pub client_certs: Option<Vec<ClientCertConfig>>,
    /// Certificate chain (PEM) of the API's TLS.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) of accepted client certificates.
    pub tls_client_ca: Option<PathBuf>,
    /// Whether the API may listen beyond loopback without TLS.
    pub allow_insecure_listen: Option<bool>,
    /// Directories client-named paths may be in, besides `<data_dir>/files` and `<data_dir>/uploads`.
    pub file_roots: Option<Vec<PathBuf>>,
    /// Internal addresses, networks and hosts the server may connect to on a client's behalf.
    pub egress_allow: Option<Vec<String>>,
    /// The largest `bufferLength` a rule may ask for.
    pub max_buffer_length: Option<u32>,
    /// The largest gRPC message the API takes or sends, in bytes.
    pub max_message_bytes: Option<usize>,
    /// Bytes of results one TailRule reader may fall behind by.
    pub max_tail_buffer_bytes: Option<usize>,
    /// Bytes of its last results a rule retains for TailRule readers that
    /// resume; 0 retains none.
    pub tail_retain_bytes: Option<usize>,
    /// Bytes of rows one rule's windows may hold.
    pub max_window_state_bytes: Option<usize>,
    /// Bytes on disk of the journal of one stream read by rules with qos >= 1.
    pub max_journal_bytes: Option<usize>,
    /// Bytes on disk of the cache of one sink (`enableCache`).
    pub max_sink_cache_bytes: Option<usize>,
    /// HTTP push connections served at once.
    pub http_push_max_connections: Option<usize>,
    /// Milliseconds an HTTP push client has to send a request's headers (and longest idle time).
    pub http_push_read_timeout_ms: Option<u64>,
    /// Milliseconds a portable plugin may take to start (handshake, SERVING, Describe).
    pub plugin_start_timeout_ms: Option<u64>,
    /// Milliseconds one call to a portable plugin may take before it is restarted.
    pub plugin_call_timeout_ms: Option<u64>,
    /// Milliseconds between two health checks of a portable plugin.
    pub plugin_health_interval_ms: Option<u64>,
    /// Milliseconds a portable plugin gets to shut down before it is killed.
    pub plugin_shutdown_grace_ms: Option<u64>,
    /// Milliseconds a portable plugin may stay unused before its process is stopped.
    pub plugin_idle_timeout_ms: Option<u64>,
    /// First delay, in milliseconds, before restarting a failed portable plugin (doubled per failure).
    pub plugin_restart_backoff_ms: Option<u64>,
}

/// Where the catalog lives.
#[derive(Debug, Clone)]
pub enum CatalogLocation {
    /// sled, in `<data_dir>/catalog`: this server's own.
    Sled,
    /// etcd, shared by every oortd that names the same cluster and prefix.
    Etcd(oort_store::EtcdConfig),
}

/// The effective configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory; the catalog lives in `<data_dir>/catalog` unless it is shared.
    pub data_dir: PathBuf,
    /// Where `httppush` streams receive events; `None` when off.
    pub http_push_listen: Option<SocketAddr>,
    /// Whether `http_push_listen` was chosen (a bind failure is then fatal) or is the default.
    pub http_push_explicit: bool,
    /// Where Prometheus scrapes `/metrics`; `None` (the default) when off.
    pub metrics_listen: Option<SocketAddr>,
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// sled page cache, in bytes.
    pub cache_capacity_bytes: u64,
    /// Where the catalog lives.
    pub catalog: CatalogLocation,
    /// How long in-flight calls get to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// Whether `InstallPlugin`/`UpdatePlugin` may download from private and
    /// loopback addresses (off: the API must not be a proxy into the local network).
    pub plugin_allow_private_urls: bool,
    /// Hosts external services may be called at; `None` allows any.
    pub external_service_hosts: Option<Vec<String>>,
    /// Threads of a runtime of external calls' own; 0: they run on the
    /// server's, where the rule tasks that await them are (the fastest).
    pub external_io_threads: usize,
    /// How portable plugins are run (the `plugin_*` settings).
    pub portable: oort_plugin_host::PortableConfig,
    /// Who may call.
    pub auth: AuthConfig,
    /// TLS of the API; `None`: plaintext (loopback, or `allow_insecure_listen`).
    pub tls: Option<TlsConfig>,
    /// Whether plaintext beyond loopback was chosen (warned about at every start).
    pub allow_insecure_listen: bool,
    /// Directories added to both `<data_dir>/files` (file connectors) and
    /// `<data_dir>/uploads` (plugin archives named by path).
    pub file_roots: Vec<PathBuf>,
    /// Which internal addresses rules, external services and plugin URLs may reach.
    pub egress: Arc<EgressPolicy>,
    /// The named connections the configuration declares, `default` (the
    /// broker of `mqtt_server`) among them.
    pub connections: Vec<ConnectionDef>,
    /// The largest `bufferLength` a rule may ask for.
    pub max_buffer_length: u32,
    /// The largest gRPC message the API takes or sends, in bytes.
    pub max_message_bytes: usize,
    /// What a rule may hold for others: results for a TailRule reader
    /// (`max_tail_buffer_bytes`), rows of its windows (`max_window_state_bytes`).
    pub rule_limits: oort_engine::runtime::RuleLimits,
    /// Bytes on disk of the journal of one `grpc` or `httppush` stream read by
    /// rules with qos >= 1 (`max_journal_bytes`); past it, publishing is refused.
    pub max_journal_bytes: u64,
    /// Connections and timeouts of the HTTP push endpoint.
    pub http_push_limits: crate::http::HttpLimits,
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `auth = false` turns it off (refused unless the API listens on loopback).
    pub enabled: bool,
    /// Tokens of `oort.toml` and `OORT_AUTH_TOKEN`; when empty the server
    /// generates `<data_dir>/admin.token`.
    pub tokens: Vec<TokenEntry>,
    /// Client certificate Common Name → role.
    pub client_certs: HashMap<String, Role>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { enabled: true, tokens: Vec::new(), client_certs: HashMap::new() }
    }
}

/// PEM files of the API's TLS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA of client certificates, when they are verified.
    pub client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            http_push_listen: Some(DEFAULT_HTTP_PUSH_LISTEN.parse().expect("the default address parses")),
            http_push_explicit: false,
            metrics_listen: None,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            cache_capacity_bytes: oort_store::SledConfig::default().cache_capacity,
            catalog: CatalogLocation::Sled,
            shutdown_grace: Duration::from_secs(5),
            plugin_allow_private_urls: false,
            external_service_hosts: None,
            external_io_threads: 0,
            portable: oort_plugin_host::PortableConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
            allow_insecure_listen: false,
            file_roots: Vec::new(),
            egress: Arc::default(),
            connections: vec![oort_connectors::mqtt::default_connection(oort_connectors::mqtt::DEFAULT_SERVER)],
            max_buffer_length: DEFAULT_MAX_BUFFER_LENGTH,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            rule_limits: oort_engine::runtime::RuleLimits::default(),
            max_journal_bytes: 256 << 20,
            http_push_limits: crate::http::HttpLimits::default(),
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A value is not valid.
    #[error("invalid {key}: {message}")]
    Value { key: &'static str, message: String },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
}

/// An address such as `127.0.0.1:9090`, or `off`.
fn optional_address(key: &'static str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value == "off" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| ConfigError::Value {
        key,
        message: format!("{value:?} is neither an address such as 127.0.0.1:9090 (IP:port) nor \"off\""),
    })
}

impl Config {
    /// Merges defaults, the config file and the command line.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => Some(read_file(Path::new(DEFAULT_CONFIG_FILE))?),
            None => None,
        }
        .unwrap_or_default();
        let defaults = Config::default();
        let portable = portable_config(&file, defaults.portable.clone())?;
        let tls = tls_config(
            args.tls_cert.or(file.tls_cert.clone()),
            args.tls_key.or(file.tls_key.clone()),
            args.tls_client_ca.or(file.tls_client_ca.clone()),
        )?;
        let auth = auth_config(&file, args.auth_token, tls.as_ref())?;
        let push = args.http_push_listen.or(file.http_push_listen);
        let http_push_listen = match push.as_deref() {
            None => defaults.http_push_listen,
            Some(value) => optional_address("http_push_listen", value)?,
        };
        let metrics = args.metrics_listen.or(file.metrics_listen);
        let metrics_listen = match metrics.as_deref() {
            None => defaults.metrics_listen,
            Some(value) => optional_address("metrics_listen", value)?,
        };
        let listen = args.listen.or(file.listen).unwrap_or(defaults.listen);
        let allow_insecure_listen = args.allow_insecure_listen || file.allow_insecure_listen.unwrap_or(false);
        if !listen.ip().is_loopback() && tls.is_none() && !allow_insecure_listen {
            return Err(ConfigError::Value {
                key: "listen",
                message: format!(
                    "{listen} is not a loopback address and no TLS is configured: set tls_cert and tls_key, or allow_insecure_listen = true to accept plaintext on the network"
                ),
            });
        }
        if !auth.enabled && !listen.ip().is_loopback() {
            return Err(ConfigError::Value {
                key: "auth",
                message: format!("auth = false is only allowed on a loopback address, not {listen}"),
            });
        }
        let mut file_roots = file.file_roots.clone().unwrap_or_default();
        file_roots.extend(args.file_roots);
        let mut egress_allow = file.egress_allow.clone().unwrap_or_default();
        egress_allow.extend(args.egress_allow);
        let egress =
            EgressPolicy::new(&egress_allow).map_err(|message| ConfigError::Value { key: "egress_allow", message })?;
        let positive = |key: &'static str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(ConfigError::Value { key, message: "must be at least 1".into() }),
            value => Ok(value.unwrap_or(default)),
        };
        Ok(Config {
            max_buffer_length: positive(
                "max_buffer_length",
                file.max_buffer_length.map(|v| v as usize),
                DEFAULT_MAX_BUFFER_LENGTH as usize,
            )? as u32,
            max_message_bytes: positive("max_message_bytes", file.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES)?,
            rule_limits: oort_engine::runtime::RuleLimits {
                tail_bytes: positive(
                    "max_tail_buffer_bytes",
                    file.max_tail_buffer_bytes,
                    defaults.rule_limits.tail_bytes,
                )?,
                tail_retain_bytes: file.tail_retain_bytes.unwrap_or(defaults.rule_limits.tail_retain_bytes),
                window_bytes: positive(
                    "max_window_state_bytes",
                    file.max_window_state_bytes,
                    defaults.rule_limits.window_bytes,
                )?,
                sink_cache_bytes: positive(
                    "max_sink_cache_bytes",
                    file.max_sink_cache_bytes,
                    defaults.rule_limits.sink_cache_bytes as usize,
                )? as u64,
            },
            max_journal_bytes: positive(
                "max_journal_bytes",
                file.max_journal_bytes,
                defaults.max_journal_bytes as usize,
            )? as u64,
            http_push_limits: crate::http::HttpLimits {
                max_connections: positive(
                    "http_push_max_connections",
                    file.http_push_max_connections,
                    defaults.http_push_limits.max_connections,
                )?,
                read_timeout: Duration::from_millis(positive(
                    "http_push_read_timeout_ms",
                    file.http_push_read_timeout_ms.map(|ms| ms as usize),
                    defaults.http_push_limits.read_timeout.as_millis() as usize,
                )? as u64),
            },
            file_roots,
            egress: Arc::new(egress),
            connections: declared_connections(
                args.mqtt_server.or(file.mqtt_server),
                file.connections.unwrap_or_default(),
            )?,
            listen,
            tls,
            auth,
            allow_insecure_listen,
            http_push_listen,
            http_push_explicit: push.is_some(),
            metrics_listen,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or(defaults.data_dir),
            log_level: args.log_level.or(file.log_level).unwrap_or(defaults.log_level),
            log_format: file.log_format.unwrap_or(defaults.log_format),
            cache_capacity_bytes: file.cache_capacity_bytes.unwrap_or(defaults.cache_capacity_bytes),
            catalog: match args.catalog.or(file.catalog).as_deref() {
                None | Some("sled") => CatalogLocation::Sled,
                Some(url) => CatalogLocation::Etcd(oort_store::EtcdConfig::parse(url).map_err(|message| {
                    ConfigError::Value { key: "catalog", message: format!("{message}; or \"sled\"") }
                })?),
            },
            shutdown_grace: file.shutdown_grace_secs.map(Duration::from_secs).unwrap_or(defaults.shutdown_grace),
            plugin_allow_private_urls: file.plugin_allow_private_urls.unwrap_or(defaults.plugin_allow_private_urls),
            external_service_hosts: file.external_service_hosts.or(defaults.external_service_hosts),
            external_io_threads: file.external_io_threads.unwrap_or(defaults.external_io_threads),
            portable,
        })
    }
}

/// The connections `oort.toml` declares (`[connections.<name>]`: `type` and
/// the connection's properties), and `default`, the broker of `mqtt_server`,
/// unless declared there. Their settings are checked when the server starts.
fn declared_connections(
    mqtt_server: Option<String>,
    tables: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<ConnectionDef>, ConfigError> {
    let mut declared = Vec::with_capacity(tables.len() + 1);
    for (name, mut props) in tables {
        let Some(serde_json::Value::String(kind)) = props.remove("type") else {
            let message = format!("[connections.{name}] needs `type`, e.g. type = \"mqtt\"");
            return Err(ConfigError::Value { key: "connections", message });
        };
        declared.push(ConnectionDef { name, kind, props, declared: true });
    }
    match (declared.iter().any(|c| c.name == connections::DEFAULT), mqtt_server) {
        (true, Some(_)) => Err(ConfigError::Value {
            key: "mqtt_server",
            message: "give the default broker once: mqtt_server or [connections.default], not both".into(),
        }),
        (true, None) => Ok(declared),
        (false, server) => {
            let server = server.as_deref().unwrap_or(oort_connectors::mqtt::DEFAULT_SERVER);
            declared.push(oort_connectors::mqtt::default_connection(server));
            Ok(declared)
        }
    }
}

/// TLS from its three files: a certificate and its key together, a client CA only with them.
fn tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsConfig>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig { cert, key, client_ca })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err(ConfigError::Value { key: "tls_client_ca", message: "needs tls_cert and tls_key".into() }),
        (Some(_), None) => Err(ConfigError::Value { key: "tls_key", message: "tls_cert needs tls_key".into() }),
        (None, Some(_)) => Err(ConfigError::Value { key: "tls_cert", message: "tls_key needs tls_cert".into() }),
    }
}

/// Tokens of the file (by hash) and of `OORT_AUTH_TOKEN`, client certificate roles.
fn auth_config(
    file: &FileConfig,
    env_token: Option<String>,
    tls: Option<&TlsConfig>,
) -> Result<AuthConfig, ConfigError> {
    let role =
        |key: &'static str, name: &str| name.parse::<Role>().map_err(|message| ConfigError::Value { key, message });
    let mut tokens = Vec::new();
    for entry in file.tokens.iter().flatten() {
        if entry.name.is_empty() || tokens.iter().any(|t: &TokenEntry| *t.name == *entry.name) {
            return Err(ConfigError::Value {
                key: "tokens",
                message: format!("token names must be unique and not empty: {:?}", entry.name),
            });
        }
        let hash = token::parse_hash(&entry.hash).map_err(|message| ConfigError::Value {
            key: "tokens",
            message: format!("token {:?}: {message}", entry.name),
        })?;
        tokens.push(TokenEntry { name: entry.name.as_str().into(), role: role("tokens", &entry.role)?, hash });
    }
    if let Some(value) = env_token.filter(|value| !value.is_empty()) {
        if value.trim().len() < token::MIN_TOKEN_LEN {
            return Err(ConfigError::Value {
                key: "OORT_AUTH_TOKEN",
                message: format!("must be at least {} characters", token::MIN_TOKEN_LEN),
            });
        }
        tokens.push(TokenEntry {
            name: "OORT_AUTH_TOKEN".into(),
            role: Role::Admin,
            hash: token::hash(value.trim().as_bytes()),
        });
    }
    let mut client_certs = HashMap::new();
    for entry in file.client_certs.iter().flatten() {
        if tls.is_none_or(|tls| tls.client_ca.is_none()) {
            return Err(ConfigError::Value {
                key: "client_certs",
                message: "need tls_client_ca (and tls_cert, tls_key)".into(),
            });
        }
        client_certs.insert(entry.common_name.clone(), role("client_certs", &entry.role)?);
    }
    Ok(AuthConfig { enabled: file.auth.unwrap_or(true), tokens, client_certs })
}

/// The `plugin_*` settings over their defaults; a zero timeout is refused.
fn portable_config(
    file: &FileConfig,
    defaults: oort_plugin_host::PortableConfig,
) -> Result<oort_plugin_host::PortableConfig, ConfigError> {
    let millis = |key: &'static str, value: Option<u64>, default: Duration| match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::Value { key, message: "must be at least 1 (milliseconds)".into() }),
        Some(ms) => Ok(Duration::from_millis(ms)),
    };
    Ok(oort_plugin_host::PortableConfig {
        python: file.plugin_python.clone().unwrap_or(defaults.python),
        node: file.plugin_node.clone().unwrap_or(defaults.node),
        start_timeout: millis("plugin_start_timeout_ms", file.plugin_start_timeout_ms, defaults.start_timeout)?,
        call_timeout: millis("plugin_call_timeout_ms", file.plugin_call_timeout_ms, defaults.call_timeout)?,
        health_interval: millis("plugin_health_interval_ms", file.plugin_health_interval_ms, defaults.health_interval)?,
        shutdown_grace: millis("plugin_shutdown_grace_ms", file.plugin_shutdown_grace_ms, defaults.shutdown_grace)?,
        idle_timeout: millis("plugin_idle_timeout_ms", file.plugin_idle_timeout_ms, defaults.idle_timeout)?,
        restart_backoff: millis("plugin_restart_backoff_ms", file.plugin_restart_backoff_ms, defaults.restart_backoff)?,
        io_threads: defaults.io_threads,
        environment: oort_plugin_host::EnvironmentConfig {
            index_url: file.plugin_pip_index_url.clone().filter(|url| !url.is_empty()),
            timeout: millis(
                "plugin_environment_timeout_ms",
                file.plugin_environment_timeout_ms,
                defaults.environment.timeout,
            )?,
        },
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
}

#[cfg(test)]
mod tests;
