//! Named connections, as eKuiper's connection resources and `CONF_KEY`
//! profiles: the settings of a broker (its address, credentials, TLS files,
//! protocol) kept once under a name, that streams (`CONF_KEY="name"`) and
//! actions (`"connectionSelector": "name"`) refer to.
//!
//! A connection is a profile, not one shared socket: each rule's source or
//! sink opens its own client with the connection's settings. A rule that
//! asks for at least once keeps a broker session of its own, acknowledged at
//! its own checkpoints, which a socket shared between rules could not give.
//! The registry follows every client opened from a connection, so that the
//! connection's state (`connected`, `connecting`, `disconnected` and the last
//! error) is that of its clients, shown by the API, each rule's status and
//! `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use oort_engine::ConnectorError;
use oort_engine::ConnectorOption;
use oort_policy::{EgressPolicy, FileRoots};

/// The connection a stream without `CONF_KEY` uses: the server's `mqtt_server`.
pub const DEFAULT: &str = "default";

/// The types a connection may have.
pub const TYPES: &[&str] = &["kafka", "mqtt", "nats", "redis", "sql", "websocket"];

/// The host and port of an `addr` property, `host:port` (`[v6]:port`);
/// `what` names the connector in the message.
pub(crate) fn host_port(addr: &str, what: &str) -> Result<(String, u16), ConnectorError> {
    let bad = || ConnectorError::Config(format!("{what}: addr {addr:?} must be host:port"));
    let (host, port) = addr.trim().rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Whether a client may connect to `host`: every address it resolves to must
/// pass `policy`. Checked just before each connection attempt.
pub(crate) async fn check_egress(policy: &EgressPolicy, host: &str, port: u16) -> Result<(), String> {
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for addr in addrs {
        policy.check(host, addr).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `options` with a text option for each of a connection type's properties
/// (`props`) it does not declare: an action may set them itself, instead of
/// naming a connection.
pub(crate) fn with_connection_props(mut options: Vec<ConnectorOption>, props: &[&'static str]) -> Vec<ConnectorOption> {
    for &key in props {
        if !options.iter().any(|o| o.key == key) {
            options.push(ConnectorOption {
                key,
                kind: oort_engine::OptionKind::Text,
                default: "",
                description: "The action's own connection setting, as in a named connection (without connectionSelector).",
            });
        }
    }
    options
}

/// The settings `T` of a named connection's properties, every key among
/// `known`: an unknown one (a typo) is refused rather than ignored.
pub(crate) fn settings<T: serde::de::DeserializeOwned>(
    props: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
    what: &str,
) -> Result<T, ConnectorError> {
    if let Some(key) = props.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ConnectorError::Config(format!(
            "{what} connection: unknown property {key:?}; known: {}",
            known.join(", ")
        )));
    }
    crate::encode::props_subset(props, known).map_err(|e| ConnectorError::Config(format!("{what} connection: {e}")))
}

/// Checks a connection's type and settings as a client would use them
/// (its TLS files read from inside `files`), without connecting.
pub fn check(def: &ConnectionDef, files: &Arc<FileRoots>) -> Result<(), ConnectorError> {
    match def.kind.as_str() {
        "mqtt" => crate::mqtt::check_connection(&def.props, files),
        "nats" => crate::nats::NatsConfig::from_connection(&def.props)?.check(files),
        "kafka" => crate::kafka::check_connection(def, files),
        "redis" => crate::redis::check_connection(def, files),
        "sql" => crate::sql::SqlConfig::from_connection(&def.props).map(drop),
        "websocket" => crate::websocket::check_connection(&def.props, files),
        other => Err(ConnectorError::Config(format!("unknown connection type {other:?}; known: {}", TYPES.join(", ")))),
    }
}

/// A named connection: its type and settings (eKuiper's `props`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDef {
    /// Its name, unique among connections.
    pub name: String,
    /// The connector type it is for: `mqtt`.
    pub kind: String,
    /// Its settings, with eKuiper's property names.
    pub props: serde_json::Map<String, serde_json::Value>,
    /// Declared by the server's configuration (trusted: the egress policy
    /// does not apply; read-only through the API), not created by a client.
    pub declared: bool,
}

/// The state of one client, or of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// No client uses the connection.
    Idle,
    /// Connecting, or waiting to connect again.
    Connecting,
    /// Connected.
    Connected,
    /// The last attempt failed, or the connection was lost: why.
    Disconnected(String),
}

impl LinkState {
    /// Its name in the API, the CLI and `/metrics`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected(_) => "disconnected",
        }
    }
}

/// What a connection's clients add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// Disconnected if any client is, else connecting if any is, else
    /// connected; idle without clients.
    pub state: LinkState,
    /// The last error of any of its clients, kept after they close.
    pub last_error: Option<(String, SystemTime)>,
    /// Clients open.
    pub clients: u32,
    /// Of them, connected.
    pub connected: u32,
}

/// One client of a rule, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleClient {
    /// The operator that opened it: `source_<stream>_0` or `sink_<type>_<n>`.
    pub operator: String,
    /// The connection it was opened from; empty for an action's own settings.
    pub connection: String,
    /// Its state.
    pub state: LinkState,
    /// The partitions a broker assigned it, in a consumer group.
    pub partitions: Vec<AssignedPartition>,
}

/// A partition a broker assigned to a client in its consumer group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssignedPartition {
    /// The topic.
    pub topic: String,
    /// The partition's number.
    pub partition: i32,
    /// Messages in it after the client's position; `None` until known.
    pub lag: Option<i64>,
}

/// Where a client's settings came from: what it may reach, and under which
/// name its state is shown.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The named connection; empty for an action's own settings.
    pub connection: String,
    /// Declared by the server's configuration: the egress policy does not apply.
    pub trusted: bool,
}

impl Origin {
    /// The origin of a client of connection `def`.
    pub(crate) fn of(def: &ConnectionDef) -> Self {
        Origin { connection: def.name.clone(), trusted: def.declared }
    }

    /// Registers a client of `rule_id`'s `operator` whose protocol has no
    /// client ids to keep apart (NATS, Kafka): it gets a fresh one.
    pub(crate) fn link(
        &self,
        registry: &Arc<Connections>,
        rule_id: &str,
        operator: &str,
    ) -> Result<Arc<ClientLink>, ConnectorError> {
        let owner = ClientOwner {
            connection: self.connection.clone(),
            rule_id: rule_id.to_owned(),
            operator: operator.to_owned(),
        };
        let id = format!("{rule_id}/{operator}/{:08x}", fastrand::u32(..));
        Ok(Arc::new(registry.open_client(owner, &id)?))
    }
}

/// Who opens a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOwner {
    /// The connection it is opened from; empty for settings of its own.
    pub connection: String,
    /// The rule.
    pub rule_id: String,
    /// The rule's operator.
    pub operator: String,
}

struct Client {
    owner: ClientOwner,
    client_id: String,
    state: LinkState,
    partitions: Vec<AssignedPartition>,
}

/// The named connections and the clients open from them.
#[derive(Default)]
pub struct Connections {
    defs: RwLock<BTreeMap<String, Arc<ConnectionDef>>>,
    clients: Mutex<BTreeMap<u64, Client>>,
    last_errors: Mutex<BTreeMap<String, (String, SystemTime)>>,
    next_client: AtomicU64,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Adds or replaces a connection; its clients open from now on use it.
    pub fn put(&self, def: ConnectionDef) {
        self.defs.write().unwrap_or_else(|p| p.into_inner()).insert(def.name.clone(), Arc::new(def));
    }

    /// Removes a connection.
    pub fn remove(&self, name: &str) {
        self.defs.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        self.last_errors.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// A connection by name.
    pub fn get(&self, name: &str) -> Option<Arc<ConnectionDef>> {
        self.defs.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every connection, by name.
    pub fn list(&self) -> Vec<Arc<ConnectionDef>> {
        self.defs.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The connection `name` of type `kind`, or an error that says what is wrong.
    pub fn lookup(&self, name: &str, kind: &str) -> Result<Arc<ConnectionDef>, ConnectorError> {
        match self.get(name) {
            Some(def) if def.kind == kind => Ok(def),
            Some(def) => {
                Err(ConnectorError::Config(format!("connection {name:?} is of type {}, not {kind}", def.kind)))
            }
            None => Err(ConnectorError::Config(format!(
                "there is no connection {name:?}; create it first (ConnectionService, `oort connection create`)"
            ))),
        }
    }

    /// Registers a client about to connect. A client id already open is
    /// refused: the broker would disconnect one of the two clients each
    /// time the other connects.
    pub fn open_client(self: &Arc<Self>, owner: ClientOwner, client_id: &str) -> Result<ClientLink, ConnectorError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(other) = clients.values().find(|c| c.client_id == client_id) {
            return Err(ConnectorError::Config(format!(
                "client id {client_id:?} is already in use by {} of rule {:?}; give each stream or action its own \
                 client id (or none: one is then made per rule)",
                other.owner.operator, other.owner.rule_id
            )));
        }
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        clients.insert(
            id,
            Client { owner, client_id: client_id.to_owned(), state: LinkState::Connecting, partitions: Vec::new() },
        );
        Ok(ClientLink { registry: Arc::clone(self), id })
    }

    /// The state of connection `name`, from its clients.
    pub fn status(&self, name: &str) -> ConnectionStatus {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut status = ConnectionStatus { state: LinkState::Idle, last_error: None, clients: 0, connected: 0 };
        for client in clients.values().filter(|c| c.owner.connection == name) {
            status.clients += 1;
            status.state = match (&status.state, &client.state) {
                (LinkState::Disconnected(_), _) => status.state,
                (_, LinkState::Disconnected(why)) => LinkState::Disconnected(why.clone()),
                (LinkState::Connecting, _) | (_, LinkState::Connecting) => LinkState::Connecting,
                _ => LinkState::Connected,
            };
            status.connected += u32::from(client.state == LinkState::Connected);
        }
        drop(clients);
        status.last_error = self.last_errors.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        status
    }

    /// The clients rule `rule_id` has open, by operator.
    pub fn rule_clients(&self, rule_id: &str) -> Vec<RuleClient> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<RuleClient> = clients
            .values()
            .filter(|c| c.owner.rule_id == rule_id)
            .map(|c| RuleClient {
                operator: c.owner.operator.clone(),
                connection: c.owner.connection.clone(),
                state: c.state.clone(),
                partitions: c.partitions.clone(),
            })
            .collect();
        found.sort_by(|a, b| a.operator.cmp(&b.operator));
        found
    }

    fn set(&self, id: u64, state: LinkState) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let Some(client) = clients.get_mut(&id) else { return };
        if let LinkState::Disconnected(why) = &state
            && !client.owner.connection.is_empty()
        {
            let error = (why.clone(), SystemTime::now());
            self.last_errors.lock().unwrap_or_else(|p| p.into_inner()).insert(client.owner.connection.clone(), error);
        }
        client.state = state;
    }
}

/// A client's entry in the registry: it reports its state through it, and
/// dropping it closes the entry.
pub struct ClientLink {
    registry: Arc<Connections>,
    id: u64,
}

impl ClientLink {
    /// The client's state is now `state`.
    pub fn set(&self, state: LinkState) {
        self.registry.set(self.id, state);
    }

    /// The broker now assigns the client these partitions.
    pub fn set_partitions(&self, partitions: Vec<AssignedPartition>) {
        let mut clients = self.registry.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get_mut(&self.id) {
            client.partitions = partitions;
        }
    }
}

impl Drop for ClientLink {
    fn drop(&mut self) {
        self.registry.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl std::fmt::Debug for ClientLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLink").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(connection: &str, rule: &str, operator: &str) -> ClientOwner {
        ClientOwner { connection: connection.into(), rule_id: rule.into(), operator: operator.into() }
    }

    #[test]
    fn a_connections_state_is_that_of_its_clients() {
        let registry = Connections::new();
        assert_eq!(registry.status("plant").state, LinkState::Idle);
        let a = registry.open_client(owner("plant", "r1", "source_s_0"), "a").unwrap();
        let b = registry.open_client(owner("plant", "r2", "sink_mqtt_0"), "b").unwrap();
        assert_eq!(registry.status("plant").state, LinkState::Connecting);
        a.set(LinkState::Connected);
        b.set(LinkState::Connected);
        let status = registry.status("plant");
        assert_eq!((status.state, status.clients, status.connected), (LinkState::Connected, 2, 2));
        b.set(LinkState::Disconnected("refused".into()));
        assert_eq!(registry.status("plant").state, LinkState::Disconnected("refused".into()));
        assert_eq!(registry.rule_clients("r2")[0].state, LinkState::Disconnected("refused".into()));
        drop(b);
        let status = registry.status("plant");
        assert_eq!((status.state, status.clients), (LinkState::Connected, 1));
        assert_eq!(status.last_error.map(|e| e.0).as_deref(), Some("refused"), "kept after the client closed");
        drop(a);
        assert_eq!(registry.status("plant").state, LinkState::Idle);
    }

    #[test]
    fn a_client_id_is_open_once() {
        let registry = Connections::new();
        let first = registry.open_client(owner("c", "r1", "source_s_0"), "gw").unwrap();
        let error = registry.open_client(owner("c", "r2", "source_t_0"), "gw").unwrap_err().to_string();
        assert!(error.contains("already in use by source_s_0 of rule \"r1\""), "{error}");
        drop(first);
        registry.open_client(owner("c", "r2", "source_t_0"), "gw").unwrap();
    }

    #[test]
    fn lookups_say_what_is_wrong() {
        let registry = Connections::new();
        registry.put(ConnectionDef {
            name: "k".into(),
            kind: "kafka".into(),
            props: Default::default(),
            declared: false,
        });
        assert!(registry.lookup("k", "mqtt").unwrap_err().to_string().contains("of type kafka, not mqtt"));
        assert!(registry.lookup("x", "mqtt").unwrap_err().to_string().contains("no connection \"x\""));
        assert_eq!(registry.lookup("k", "kafka").unwrap().name, "k");
    }
}
