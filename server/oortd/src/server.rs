//! Assembles the gRPC services with health and reflection, and serves them
//! until the shutdown future completes; then flushes the catalog.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use oort_connectors::connections::Connections;
use oort_connectors::journal::Journals;
use oort_connectors::websocket::WebsocketHub;
use oort_connectors::{Buses, TopicBus};
use oort_engine::sink_cache::SinkCaches;
use oort_engine::{CheckpointStore, ConnectorRegistry, Engine, FunctionRegistry};
use oort_plugin_host::{PluginHost, Plugins};
use oort_policy::{EgressPolicy, FileRoots};
use oort_proto::v1::connection_service_server::ConnectionServiceServer;
use oort_proto::v1::connector_service_server::ConnectorServiceServer;
use oort_proto::v1::event_service_server::EventServiceServer;
use oort_proto::v1::external_service_server::ExternalServiceServer;
use oort_proto::v1::function_service_server::FunctionServiceServer;
use oort_proto::v1::plugin_service_server::PluginServiceServer;
use oort_proto::v1::rule_service_server::RuleServiceServer;
use oort_proto::v1::schema_service_server::SchemaServiceServer;
use oort_proto::v1::state_service_server::StateServiceServer;
use oort_proto::v1::stream_service_server::StreamServiceServer;
use oort_store::{Catalog, EtcdCatalog, SledCatalog, SledConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::{ServerTlsConfig, TcpIncoming};
use tonic::transport::{Certificate, Identity};

use crate::api::CatalogHandle;
use crate::api::connections::ConnectionApi;
use crate::api::connectors::ConnectorApi;
use crate::api::events::EventApi;
use crate::api::external::ExternalApi;
use crate::api::functions::FunctionApi;
use crate::api::plugins::PluginApi;
use crate::api::rules::RuleApi;
use crate::api::schemas::SchemaApi;
use crate::api::state::{CatalogKeyedState, StateApi};
use crate::api::streams::StreamApi;
use crate::auth::{AuthLayer, Authenticator, Role, TokenEntry, token};
use crate::config::{CatalogLocation, Config};
use crate::rules::RuleController;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    /// The catalog could not be opened (locked by another server, damaged...).
    #[error("cannot open the catalog in {path}: {source}")]
    Catalog { path: std::path::PathBuf, source: oort_store::StoreError },
    /// The shared catalog could not be reached.
    #[error("cannot open the shared catalog in etcd {endpoints} (prefix {prefix}): {source}")]
    SharedCatalog { endpoints: String, prefix: String, source: oort_store::StoreError },
    /// A connection the configuration declares does not pass its checks.
    #[error("connection {name:?} of the configuration: {message}")]
    Connection { name: String, message: String },
    /// An HTTP endpoint (push, metrics) could not listen on the address configured for it.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Http { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    /// The runtime of external calls could not start.
    #[error("cannot start the runtime of external calls: {0}")]
    ExternalRuntime(std::io::Error),
    /// The portable plugin host could not start (its socket directory, its runtime).
    #[error("cannot start the portable plugin host: {0}")]
    Plugins(oort_plugin_host::HostError),
    /// gRPC reflection could not load the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The TLS files cannot be read or used.
    #[error("cannot set up TLS: {0}")]
    Tls(tonic::transport::Error),
    /// A TLS file cannot be read.
    #[error("cannot read {path}: {source}")]
    TlsFile { path: std::path::PathBuf, source: std::io::Error },
    /// The file roots cannot be created, or would expose the server's own files.
    #[error("file roots: {0}")]
    FileRoots(String),
    /// The admin token cannot be read or written.
    #[error("cannot set up the admin token in {path}: {source}")]
    AdminToken { path: std::path::PathBuf, source: std::io::Error },
    /// The transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Starts the watchdog of native plugin calls: when a call has not returned
/// after `timeout`, the rules that use its plugin are failed.
fn fail_rules_of_stuck_plugins(engine: &Arc<Engine>, timeout: std::time::Duration) {
    let (engine, runtime) = (Arc::downgrade(engine), tokio::runtime::Handle::current());
    oort_plugin_host::native::watchdog::start(timeout, move |stuck| {
        let Some(engine) = engine.upgrade() else { return };
        runtime.spawn(async move {
            for rule in engine.rules_calling(oort_engine::FunctionOrigin::Native, &stuck.plugin).await {
                engine.fail(&rule, format!("plugin {}: {}", stuck.plugin, stuck.message)).await;
            }
        });
    });
}

/// Opens the catalog under `config.data_dir` and serves the API on `listener`
/// until `shutdown` completes. Returns once in-flight calls have finished and the
/// catalog is flushed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    Node::open(&config).await?.serve(&config, listener, shutdown).await
}

/// A server opened but not serving yet: its catalog read, its registries
/// filled, its plugins and external services loaded, its rules restored.
pub struct Node {
    catalog: Arc<dyn Catalog>,
    handle: CatalogHandle,
    functions: Arc<FunctionRegistry>,
    buses: Buses,
    connections: Arc<Connections>,
    files: Arc<FileRoots>,
    uploads: Arc<FileRoots>,
    plugins: Arc<Plugins>,
    plugin_controller: crate::plugins::PluginController,
    engine: Arc<Engine>,
    rules: RuleController,
    external: ExternalApi,
    external_calls: crate::metrics::ExternalCalls,
}

impl Node {
    /// Opens the data directory and everything in it; runs the rules that ran.
    pub async fn open(config: &Config) -> Result<Node, ServerError> {
        create_private_dir(&config.data_dir)
            .map_err(|source| ServerError::DataDir { path: config.data_dir.clone(), source })?;
        let catalog_dir = config.data_dir.join("catalog");
        let catalog: Arc<dyn Catalog> = match &config.catalog {
            CatalogLocation::Sled => {
                let sled_config = SledConfig { cache_capacity: config.cache_capacity_bytes };
                let catalog = SledCatalog::open(&catalog_dir, &sled_config)
                    .map_err(|source| ServerError::Catalog { path: catalog_dir.clone(), source })?;
                restrict_tree(&catalog_dir)
                    .map_err(|source| ServerError::DataDir { path: catalog_dir.clone(), source })?;
                Arc::new(catalog)
            }
            CatalogLocation::Etcd(etcd) => {
                let catalog = EtcdCatalog::connect(etcd).map_err(|source| ServerError::SharedCatalog {
                    endpoints: etcd.endpoints.join(","),
                    prefix: etcd.prefix.clone(),
                    source,
                })?;
                tracing::info!(endpoints = %etcd.endpoints.join(","), prefix = %etcd.prefix, "the catalog is shared, in etcd");
                Arc::new(catalog)
            }
        };
        // A shared catalog's changes, from before anything is read: one
        // made meanwhile is seen twice, and applies alike.
        let changes = catalog.watch().map_err(|source| ServerError::Catalog { path: catalog_dir.clone(), source })?;
        // Read every record once at start-up: it proves the catalog decodes (a
        // damaged record fails here, not in the middle of a request), and the rules
        // read are the ones restored below.
        let load = |catalog: &dyn Catalog| {
            Ok::<_, oort_store::StoreError>((
                catalog.list_streams()?.len(),
                catalog.list_rules()?,
                catalog.list_plugins()?,
                catalog.list_services()?,
                catalog.list_connections()?,
                catalog.list_schemas()?,
            ))
        };
        let (streams, stored_rules, stored_plugins, stored_services, stored_connections, stored_schemas) =
            load(catalog.as_ref()).map_err(|source| ServerError::Catalog { path: catalog_dir.clone(), source })?;
        tracing::info!(data_dir = %config.data_dir.display(), streams, rules = stored_rules.len(), plugins = stored_plugins.len(), "catalog open");
        let handle = CatalogHandle::new(Arc::clone(&catalog));

        let functions = Arc::new(FunctionRegistry::new());
        oort_engine::register_builtins(&functions);
        functions.register(oort_engine::keyed_state_function(Arc::new(CatalogKeyedState(Arc::clone(&catalog)))));
        let connectors = Arc::new(ConnectorRegistry::new());
        crate::api::schemas::load_all(&stored_schemas, connectors.schemas());
        // A published stream read by a rule with qos >= 1 is journaled, to be replayed after a restart.
        let journals = config.data_dir.join("journals");
        let journaled =
            |dir: &str| Arc::new(TopicBus::journaled(Journals::new(journals.join(dir), config.max_journal_bytes)));
        let buses = Buses {
            memory: Arc::default(),
            grpc: journaled("grpc"),
            http: journaled("http"),
            websocket: Arc::new(WebsocketHub::new(journaled("websocket"))),
        };
        let files = file_roots(config, "files")?;
        let uploads = file_roots(config, "uploads")?;
        tracing::info!(files = %files.describe(), uploads = %uploads.describe(), egress_allow = %config.egress, "file roots and egress");
        // Declared connections first: they are checked here, and a stored one
        // of the same name (from before it was declared) gives way.
        let connections = Connections::new();
        for def in &config.connections {
            oort_connectors::connections::check(def, &files)
                .map_err(|e| ServerError::Connection { name: def.name.clone(), message: e.to_string() })?;
        }
        let stored_connections: Vec<_> =
            stored_connections.into_iter().filter(|c| !config.connections.iter().any(|d| d.name == c.name)).collect();
        crate::api::connections::load_all(&stored_connections, &connections, &files);
        config.connections.iter().for_each(|def| connections.put(def.clone()));
        let builtins = oort_connectors::Builtins {
            buses: &buses,
            files: &files,
            egress: &config.egress,
            connections: &connections,
        };
        oort_connectors::register_all(&connectors, &builtins);
        // Plugins register their symbols before rules are restored, so that rules
        // using them start as they did before the restart.
        let plugin_host =
            Arc::new(PluginHost::new(config.data_dir.join("plugins"), Arc::clone(&functions), Arc::clone(&connectors)));
        let portable_host = Arc::new(
            oort_plugin_host::PortableHost::new(
                config.data_dir.join("plugins"),
                Arc::clone(&functions),
                Arc::clone(&connectors),
                config.portable.clone(),
            )
            .map_err(ServerError::Plugins)?,
        );
        let plugins = Arc::new(Plugins::new(plugin_host, portable_host));
        // A shared catalog keeps the plugins' archives: each server installs its own copies.
        let copies = changes.is_some().then(|| {
            let path = config.data_dir.join("plugins").join("shared-copies.json");
            Arc::new(crate::shared_plugins::LocalCopies::open(path))
        });
        let loaded = crate::plugins::load_installed(&plugins, &handle, copies.as_deref(), &stored_plugins).await;
        tracing::info!(plugins = loaded, "plugins loaded");
        let checkpoint_dir = config.data_dir.join("checkpoints");
        let checkpoints = CheckpointStore::open(&checkpoint_dir)
            .map_err(|source| ServerError::DataDir { path: checkpoint_dir, source })?;
        let engine = Arc::new(
            Engine::new(Arc::clone(&functions), connectors)
                .with_limits(config.rule_limits)
                .with_checkpoints(checkpoints)
                .with_sink_caches(SinkCaches::new(config.data_dir.join("sink-cache"))),
        );
        fail_rules_of_stuck_plugins(&engine, config.portable.call_timeout);
        // External services register their functions before any rule is restored,
        // so that rules calling them start.
        let policy = oort_external::AddressPolicy {
            allowed_hosts: config.external_service_hosts.clone(),
            egress: Arc::clone(&config.egress),
        };
        let external_calls = crate::metrics::ExternalCalls::default();
        let io = match config.external_io_threads {
            0 => oort_runtimes::IoRuntime::on(tokio::runtime::Handle::current()),
            threads => oort_runtimes::IoRuntime::new(threads, "oort-external", oort_engine::THREAD_STACK_BYTES)
                .map_err(ServerError::ExternalRuntime)?,
        };
        let services = Arc::new(
            oort_external::ExternalServices::on(Arc::clone(&functions), policy, Arc::new(io))
                .with_observer(Arc::new(external_calls.clone())),
        );
        let loaded = crate::api::external::load_all(&stored_services, &services);
        tracing::info!(services = loaded, "external services loaded");
        let mut rules = RuleController::new(handle.clone(), Arc::clone(&engine), config.data_dir.join("logs"));
        // With a shared catalog, each rule runs on the one server that owns it.
        let instance = format!("oortd-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let ownership = catalog
            .ownership(&instance)
            .map_err(|source| ServerError::Catalog { path: catalog_dir.clone(), source })?;
        if let Some(ownership) = &ownership {
            tracing::info!(%instance, "this server's name among those sharing the catalog");
            rules = rules.with_ownership(Arc::clone(ownership));
        }
        let mut plugin_controller = crate::plugins::PluginController::new(Arc::clone(&plugins), rules.clone());
        if let Some(copies) = copies {
            plugin_controller = plugin_controller.with_copies(copies);
        }
        let restored = rules.restore(&stored_rules).await;
        if let Some(changes) = changes {
            let registries = crate::catalog_watch::Registries {
                plugins: plugin_controller.clone(),
                rules: rules.clone(),
                connections: Arc::clone(&connections),
                files: Arc::clone(&files),
                schemas: Arc::clone(engine.connectors().schemas()),
                services: Arc::clone(&services),
            };
            crate::catalog_watch::follow(registries, changes);
        }
        if let Some(events) = ownership.as_ref().and_then(|o| o.events()) {
            crate::catalog_watch::follow_ownership(rules.clone(), events);
            crate::partitions::report(rules.clone(), Arc::clone(&connections));
        }
        let external = ExternalApi::new(services, rules.clone());
        tracing::info!(rules = restored, "rules restored");
        Ok(Node {
            catalog,
            handle,
            functions,
            buses,
            connections,
            files,
            uploads,
            plugins,
            plugin_controller,
            engine,
            rules,
            external,
            external_calls,
        })
    }

    /// Serves the API on `listener` (and the HTTP endpoints `config` names)
    /// until `shutdown` completes; then, once in-flight calls have finished
    /// (or the grace period is over), stops the rules and flushes the catalog.
    pub async fn serve(
        self,
        config: &Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let auth = auth_layer(config)?;
        let tls = tls_config(config)?;
        let Node {
            catalog,
            handle,
            functions,
            buses,
            connections,
            files,
            uploads,
            plugins,
            plugin_controller,
            engine,
            rules,
            external,
            external_calls,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in [
            StreamServiceServer::<StreamApi>::NAME,
            RuleServiceServer::<RuleApi>::NAME,
            PluginServiceServer::<PluginApi>::NAME,
            ExternalServiceServer::<ExternalApi>::NAME,
            FunctionServiceServer::<FunctionApi>::NAME,
            ConnectorServiceServer::<ConnectorApi>::NAME,
            EventServiceServer::<EventApi>::NAME,
            StateServiceServer::<StateApi>::NAME,
            ConnectionServiceServer::<ConnectionApi>::NAME,
            SchemaServiceServer::<SchemaApi>::NAME,
        ] {
            health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
        }
        // v1alpha too: older tools (Python's grpc reflection client among them) only speak it.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(oort_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        // After the signal, in-flight calls get a grace period; then the server stops
        // anyway, so that a client holding a stream open cannot keep it alive.
        let stopping = CancellationToken::new();
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.cancel();
                let _ = signalled_tx.send(());
            }
        };
        let push = match config.http_push_listen {
            Some(addr) => {
                let app = oort_connectors::httppush::router(Arc::clone(&buses.http), Arc::clone(&buses.websocket));
                serve_http("http push", addr, config.http_push_explicit, app, config.http_push_limits, stopping.clone())
                    .await?
            }
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => {
                // Beyond loopback, scrapes need a token like any call (Prometheus's `authorization`).
                let guard = (!addr.ip().is_loopback()).then(|| auth.authenticator()).flatten();
                let router = crate::metrics::router(
                    rules.clone(),
                    Arc::clone(plugins.portable()),
                    external_calls.clone(),
                    Arc::clone(&connections),
                    guard,
                );
                serve_http("metrics", addr, true, router, Default::default(), stopping.clone()).await?
            }
            None => None,
        };
        if config.allow_insecure_listen && !config.listen.ip().is_loopback() && config.tls.is_none() {
            tracing::warn!(addr = %config.listen, "allow_insecure_listen: the API is served in plaintext beyond loopback; tokens cross the network in clear");
        }
        let api = listener.local_addr().unwrap_or(config.listen);
        tracing::info!(addr = %api, "oortd listening");
        announce_ready(api, push.as_ref().map(|(addr, _)| *addr), metrics.as_ref().map(|(addr, _)| *addr));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(ServerError::Tls)?;
        }
        // Every service takes and sends messages up to max_message_bytes: a client
        // cannot make the server buffer more for one message.
        let max = config.max_message_bytes;
        macro_rules! bounded {
            ($server:expr) => {
                $server.max_decoding_message_size(max).max_encoding_message_size(max)
            };
        }
        let connection_api =
            ConnectionApi::new(handle.clone(), Arc::clone(&connections), Arc::clone(&files), rules.clone());
        let schema_api = SchemaApi::new(handle.clone(), Arc::clone(engine.connectors().schemas()), rules.clone());
        let rule_api = RuleApi::new(rules.clone())
            .with_plugins(Arc::clone(&plugins))
            .with_connections(Arc::clone(&connections))
            .with_max_buffer_length(config.max_buffer_length);
        let plugin_api = PluginApi::new(
            plugin_controller,
            match config.plugin_allow_private_urls {
                true => Arc::new(EgressPolicy::allow_all()),
                false => Arc::clone(&config.egress),
            },
            uploads,
        );
        let decode_errors = crate::status::decode_errors_are_invalid_arguments
            as fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>;
        let serve = builder
            .layer(tower::util::MapResponseLayer::new(decode_errors))
            .layer(auth)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(bounded!(StreamServiceServer::new(StreamApi::new(
                handle.clone(),
                Arc::clone(engine.connectors()),
                buses.clone(),
            ))))
            .add_service(bounded!(RuleServiceServer::new(rule_api)))
            .add_service(bounded!(PluginServiceServer::new(plugin_api)))
            .add_service(bounded!(ExternalServiceServer::new(external)))
            .add_service(bounded!(FunctionServiceServer::new(FunctionApi::new(functions))))
            .add_service(bounded!(ConnectorServiceServer::new(ConnectorApi::new(Arc::clone(engine.connectors())))))
            .add_service(bounded!(StateServiceServer::new(StateApi::new(handle.clone()))))
            .add_service(bounded!(ConnectionServiceServer::new(connection_api)))
            .add_service(bounded!(SchemaServiceServer::new(schema_api)))
            .add_service(bounded!(EventServiceServer::new(EventApi::new(handle, Arc::clone(&buses.grpc)))))
            // No Nagle: results streamed to TailRule and acks are small writes that must go at once.
            .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown);
        tokio::select! {
            served = serve => served?,
            () = async {
                if signalled_rx.await.is_ok() {
                    tokio::time::sleep(config.shutdown_grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => tracing::warn!(grace = ?config.shutdown_grace, "grace period over: closing the remaining connections"),
        }

        stopping.cancel();
        for (_, endpoint) in [push, metrics].into_iter().flatten() {
            let _ = endpoint.await;
        }
        tracing::info!("shutting down: stopping rules, flushing the catalog");
        engine.stop_all().await;
        rules.resign();
        plugins.shutdown().await;
        if let Err(error) = catalog.flush() {
            tracing::error!(%error, "flushing the catalog failed");
        }
        Ok(())
    }
}

/// Creates `path` if needed and makes it the server user's alone (0700): the
/// catalog holds secrets, and the admin token lives there too.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Directories 0700 and files 0600 under `root` (sled creates them with the umask's modes).
fn restrict_tree(root: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            restrict_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
}

/// `<data_dir>/<default>` and the configured `file_roots`, none of which may
/// hold (or lie inside) the catalog, the plugins or the admin token.
fn file_roots(config: &Config, default: &str) -> Result<Arc<FileRoots>, ServerError> {
    let dirs = std::iter::once(config.data_dir.join(default)).chain(config.file_roots.iter().cloned());
    let roots = FileRoots::create(dirs).map_err(|e| ServerError::FileRoots(e.to_string()))?;
    for protected in ["catalog", "plugins", token::ADMIN_TOKEN_FILE] {
        let path = config.data_dir.join(protected);
        if roots.overlaps(&path) {
            return Err(ServerError::FileRoots(format!(
                "file roots {} overlap {}: clients could read or write it",
                roots.describe(),
                path.display()
            )));
        }
    }
    Ok(Arc::new(roots))
}

/// The authentication of every call: the configured tokens or, when there
/// are none, the generated `<data_dir>/admin.token`.
fn auth_layer(config: &Config) -> Result<AuthLayer, ServerError> {
    if !config.auth.enabled {
        tracing::warn!(addr = %config.listen, "auth = false: every call is accepted from anyone who reaches the port, as an admin");
        return Ok(AuthLayer::disabled());
    }
    let mut tokens = config.auth.tokens.clone();
    if tokens.is_empty() {
        let (admin, path, created) = token::load_or_create_admin(&config.data_dir)
            .map_err(|source| ServerError::AdminToken { path: config.data_dir.clone(), source })?;
        if created {
            tracing::info!(path = %path.display(), "no token configured: generated an admin token (the oort CLI reads it from there)");
        } else {
            tracing::info!(path = %path.display(), "no token configured: using the admin token");
        }
        tokens.push(TokenEntry { name: "admin.token".into(), role: Role::Admin, hash: token::hash(admin.as_bytes()) });
    }
    tracing::info!(tokens = tokens.len(), client_certs = config.auth.client_certs.len(), "authentication on");
    Ok(AuthLayer::new(Arc::new(Authenticator::new(tokens, config.auth.client_certs.clone()))))
}

/// The API's TLS, from the configured PEM files.
fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    let Some(tls) = &config.tls else { return Ok(None) };
    let read = |path: &Path| std::fs::read(path).map_err(|source| ServerError::TlsFile { path: path.into(), source });
    let mut server = ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        // Optional: a caller without a certificate may still use a token.
        server = server.client_ca_root(Certificate::from_pem(read(ca)?)).client_auth_optional(true);
    }
    tracing::info!(cert = %tls.cert.display(), client_ca = tls.client_ca.is_some(), "TLS on");
    Ok(Some(server))
}

/// Serves an HTTP endpoint (`what`: HTTP push, metrics) until `stopping`. An
/// address that is only the default may be taken (the endpoint is then off,
/// with a warning); an address chosen in the configuration must work.
async fn serve_http(
    what: &'static str,
    addr: std::net::SocketAddr,
    explicit: bool,
    app: axum::Router,
    limits: crate::http::HttpLimits,
    stopping: CancellationToken,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, ServerError> {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(source) if explicit => return Err(ServerError::Http { what, addr, source }),
        Err(error) => {
            tracing::warn!(%addr, %error, "{what} disabled: its default address is taken");
            return Ok(None);
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, "{what} listening");
    Ok(Some((addr, tokio::spawn(crate::http::serve(what, listener, app, limits, stopping)))))
}

/// Says on stdout, in one JSON line, that the server is ready and where each
/// endpoint listens: `{"oortd":"ready","api":"127.0.0.1:9081","http_push":
/// "127.0.0.1:10081","metrics":null}`. This line is the readiness contract
/// of scripts and test harnesses (a port of 0 is resolved here); logs go to
/// stderr in any format.
fn announce_ready(api: SocketAddr, http_push: Option<SocketAddr>, metrics: Option<SocketAddr>) {
    use std::io::Write as _;
    let line = serde_json::json!({
        "oortd": "ready",
        "api": api.to_string(),
        "http_push": http_push.map(|a| a.to_string()),
        "metrics": metrics.map(|a| a.to_string()),
    });
    let mut stdout = std::io::stdout().lock();
    // A closed stdout is no reason not to serve.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
