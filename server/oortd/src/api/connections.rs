//! `oort.v1.ConnectionService`: named connections, kept in the catalog and
//! in the connectors' registry ([`Connections`]) that sources and sinks
//! resolve `CONF_KEY` and `connectionSelector` with. Every write checks
//! first, then stores, then updates the registry, under one lock.

use std::sync::Arc;

use oort_connectors::connections::{self, ConnectionDef, ConnectionStatus, Connections, LinkState};
use oort_policy::FileRoots;
use oort_proto::v1 as pb;
use oort_proto::v1::connection_service_server::ConnectionService;
use oort_store::{Catalog, EntityKind};
use tonic::{Request, Response, Status};

use super::{CatalogHandle, Users, action_text, required};
use crate::convert::{json_to_struct, struct_to_json};
use crate::error::{ApiError, ApiResult};
use crate::redact;
use crate::rules::RuleController;

/// The longest connection name, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// Serves `ConnectionService`.
pub struct ConnectionApi {
    catalog: CatalogHandle,
    registry: Arc<Connections>,
    files: Arc<FileRoots>,
    rules: RuleController,
    /// Serializes writers: check, store and register happen as one step.
    writes: tokio::sync::Mutex<()>,
}

/// A connection's state as the API shows it.
pub fn state_to_proto(state: &LinkState) -> pb::ConnectionState {
    match state {
        LinkState::Idle => pb::ConnectionState::Idle,
        LinkState::Connecting => pb::ConnectionState::Connecting,
        LinkState::Connected => pb::ConnectionState::Connected,
        LinkState::Disconnected(_) => pb::ConnectionState::Disconnected,
    }
}

fn status_to_proto(status: ConnectionStatus) -> pb::ConnectionStatus {
    let (last_error, last_error_time) = match status.last_error {
        Some((message, at)) => (message, Some(at.into())),
        None => (String::new(), None),
    };
    pb::ConnectionStatus {
        state: state_to_proto(&status.state).into(),
        last_error,
        last_error_time,
        clients: status.clients,
        connected: status.connected,
    }
}

/// The definition the registry holds for a stored connection.
fn definition(record: &pb::Connection) -> ConnectionDef {
    ConnectionDef {
        name: record.name.clone(),
        kind: record.r#type.clone(),
        props: record.props.as_ref().map(struct_to_json).unwrap_or_default(),
        declared: false,
    }
}

/// Loads the stored connections into the registry (at start-up, before rules
/// are restored). One that no longer passes its checks is logged and loaded
/// anyway: the rules that use it then fail with its reason.
pub fn load_all(records: &[pb::Connection], registry: &Connections, files: &Arc<FileRoots>) {
    for record in records {
        let def = definition(record);
        if let Err(error) = connections::check(&def, files) {
            tracing::error!(connection = %def.name, %error, "stored connection does not pass its checks");
        }
        registry.put(def);
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidArgument(format!(
            "connection name {name:?}: 1 to {MAX_NAME_BYTES} letters, digits, '_', '-' or '.'"
        )))
    }
}

/// Whether a stream's options name connection `name`: its `CONF_KEY`, for
/// the types that take a connection (an `mqtt` stream without one uses `default`).
fn stream_uses(stream: &pb::Stream, name: &str) -> bool {
    let option = |key: &str| stream.options.get(key).map(|v| v.trim());
    let kind = option("TYPE").unwrap_or_default().to_ascii_lowercase();
    match (kind.as_str(), option("CONF_KEY").filter(|k| !k.is_empty())) {
        ("mqtt", None) => name == connections::DEFAULT,
        ("mqtt", Some(key)) if key.eq_ignore_ascii_case(connections::DEFAULT) => name == connections::DEFAULT,
        (kind, Some(key)) => connections::TYPES.contains(&kind) && key == name,
        _ => false,
    }
}

/// What refers to connection `name`.
fn users(catalog: &dyn Catalog, name: &str) -> Result<Users, oort_store::StoreError> {
    Users::find(catalog, |s| stream_uses(s, name), |props| action_text(props, "connectionSelector") == Some(name))
}

impl ConnectionApi {
    /// The API over the catalog and the connectors' registry.
    pub fn new(
        catalog: CatalogHandle,
        registry: Arc<Connections>,
        files: Arc<FileRoots>,
        rules: RuleController,
    ) -> Self {
        Self { catalog, registry, files, rules, writes: tokio::sync::Mutex::new(()) }
    }

    /// A connection as the API shows it: its secrets redacted, its state.
    fn to_proto(&self, def: &ConnectionDef, stored: Option<&pb::Connection>) -> pb::Connection {
        let mut props = json_to_struct(&def.props);
        redact::redact_struct(&mut props);
        pb::Connection {
            name: def.name.clone(),
            r#type: def.kind.clone(),
            props: Some(props),
            declared: def.declared,
            status: Some(status_to_proto(self.registry.status(&def.name))),
            create_time: stored.and_then(|s| s.create_time),
            update_time: stored.and_then(|s| s.update_time),
        }
    }

    /// A client-created connection's stored record, or why it cannot be changed.
    async fn stored(&self, name: &str) -> ApiResult<pb::Connection> {
        check_name(name)?;
        if self.registry.get(name).is_some_and(|def| def.declared) {
            return Err(ApiError::FailedPrecondition(format!(
                "connection {name:?} is declared in the server's configuration; change it there"
            )));
        }
        let name = name.to_owned();
        self.catalog.call(move |c| c.get_connection(&name)).await
    }

    /// Checks a connection from a request, as a client would use it.
    fn checked(&self, connection: &pb::Connection) -> ApiResult<ConnectionDef> {
        check_name(&connection.name)?;
        let def = definition(connection);
        connections::check(&def, &self.files)
            .map_err(|e| ApiError::InvalidArgument(format!("connection {:?}: {e}", def.name)))?;
        Ok(def)
    }
}

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    async fn create_connection(
        &self,
        request: Request<pb::CreateConnectionRequest>,
    ) -> Result<Response<pb::CreateConnectionResponse>, Status> {
        let connection = required(request.into_inner().connection, "connection")?;
        let _writing = self.writes.lock().await;
        let def = self.checked(&connection)?;
        if self.registry.get(&def.name).is_some_and(|d| d.declared) {
            let name = def.name.clone();
            return Err(
                ApiError::Store(oort_store::StoreError::AlreadyExists { kind: EntityKind::Connection, name }).into()
            );
        }
        let now = super::now();
        let record = pb::Connection {
            name: def.name.clone(),
            r#type: def.kind.clone(),
            props: connection.props,
            create_time: Some(now),
            update_time: Some(now),
            ..Default::default()
        };
        let stored = record.clone();
        self.catalog.call(move |c| c.create_connection(&stored)).await?;
        self.registry.put(def.clone());
        tracing::info!(connection = %def.name, r#type = %def.kind, "connection created");
        Ok(Response::new(pb::CreateConnectionResponse { connection: Some(self.to_proto(&def, Some(&record))) }))
    }

    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::GetConnectionResponse>, Status> {
        let name = request.into_inner().name;
        let def = self.registry.get(&name).ok_or_else(|| ApiError::NotFound(format!("no connection {name:?}")))?;
        let stored = if def.declared { None } else { self.catalog.call(move |c| c.get_connection(&name)).await.ok() };
        Ok(Response::new(pb::GetConnectionResponse { connection: Some(self.to_proto(&def, stored.as_ref())) }))
    }

    async fn list_connections(
        &self,
        _request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let stored = self.catalog.call(|c| c.list_connections()).await?;
        let connections = self
            .registry
            .list()
            .iter()
            .map(|def| self.to_proto(def, stored.iter().find(|s| s.name == def.name && !def.declared)))
            .collect();
        Ok(Response::new(pb::ListConnectionsResponse { connections }))
    }

    async fn update_connection(
        &self,
        request: Request<pb::UpdateConnectionRequest>,
    ) -> Result<Response<pb::UpdateConnectionResponse>, Status> {
        let mut connection = required(request.into_inner().connection, "connection")?;
        let _writing = self.writes.lock().await;
        let previous = self.stored(&connection.name).await?;
        if connection.r#type != previous.r#type {
            return Err(ApiError::InvalidArgument(format!(
                "connection {:?} is of type {}; its type cannot change (delete it and create it anew)",
                connection.name, previous.r#type
            ))
            .into());
        }
        if let (Some(props), Some(old)) = (&mut connection.props, &previous.props) {
            redact::restore_struct(props, old);
        }
        let def = self.checked(&connection)?;
        let record = pb::Connection {
            name: def.name.clone(),
            r#type: def.kind.clone(),
            props: connection.props,
            create_time: previous.create_time,
            update_time: Some(super::now()),
            ..Default::default()
        };
        let stored = record.clone();
        let name = def.name.clone();
        let users = self
            .catalog
            .call(move |c| {
                c.update_connection(&stored)?;
                users(c, &name)
            })
            .await?;
        self.registry.put(def.clone());
        let running_rules = users.running(&self.rules).await;
        tracing::info!(connection = %def.name, ?running_rules, "connection updated");
        Ok(Response::new(pb::UpdateConnectionResponse {
            connection: Some(self.to_proto(&def, Some(&record))),
            running_rules,
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<pb::DeleteConnectionResponse>, Status> {
        let name = request.into_inner().name;
        let _writing = self.writes.lock().await;
        self.stored(&name).await?;
        let deleting = name.clone();
        let users = self
            .catalog
            .call(move |c| {
                let users = users(c, &deleting)?;
                if !users.any() {
                    c.delete_connection(&deleting)?;
                }
                Ok(users)
            })
            .await?;
        if users.any() {
            return Err(ApiError::FailedPrecondition(format!(
                "connection {name:?} is in use by streams {:?} and the actions of rules {:?}; change or delete them first",
                users.streams, users.actions
            ))
            .into());
        }
        self.registry.remove(&name);
        tracing::info!(connection = %name, "connection deleted");
        Ok(Response::new(pb::DeleteConnectionResponse {}))
    }
}
