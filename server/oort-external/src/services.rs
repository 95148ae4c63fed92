//! [`ExternalServices`]: the registered services and their functions in the
//! engine's registry. Registering is two steps, so that nothing changes
//! unless everything checks: [`ExternalServices::prepare`] compiles and checks
//! a description (no side effect), then [`ExternalServices::install`] puts its
//! functions in the registry, replacing those of an earlier version in place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use oort_engine::{FunctionOrigin, FunctionRegistry};
use tokio::sync::Semaphore;

use oort_policy::EgressPolicy;

use crate::description::{Description, FunctionMapping, Protocol};
use crate::error::ExternalError;
use crate::function::{Binding, CallObserver, ExternalFunction, Interface, Target, Transport};
use crate::grpc::GrpcClient;
use crate::rest::{RestClient, RestRoute};
use crate::schema;
use crate::tarpc_service::RpcClient;
use oort_runtimes::IoRuntime;

/// A service as registered: its name, description and .proto files.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDef {
    /// Unique name.
    pub name: String,
    /// The description.
    pub description: Description,
    /// `(name, content)` of each .proto file.
    pub proto_files: Vec<(String, String)>,
}

/// Which addresses services may be called at: the server's egress policy
/// (`egress_allow`), and optionally a list of hosts (`external_service_hosts`).
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Hosts (`name` or `name:port`) allowed; `None` allows any the egress policy allows.
    pub allowed_hosts: Option<Vec<String>>,
    /// Internal addresses are refused unless this allows them; checked at
    /// registration for an address written in the description, at every
    /// connection (and redirect) for what a name resolves to.
    pub egress: Arc<EgressPolicy>,
}

impl AddressPolicy {
    /// Checks an interface address against the policy.
    pub fn check(&self, address: &str) -> Result<(), ExternalError> {
        let uri = crate::grpc::endpoint_uri(address);
        if let Ok(url) = reqwest::Url::parse(&uri) {
            self.egress.check_url(&url).map_err(|e| ExternalError::Description(e.to_string()))?;
        }
        let Some(allowed) = &self.allowed_hosts else { return Ok(()) };
        let authority = uri.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if allowed.iter().any(|a| a == "*" || a == authority || a == host) {
            return Ok(());
        }
        Err(ExternalError::Description(format!(
            "address \"{address}\" is not allowed: its host is not in external_service_hosts of the server's configuration"
        )))
    }
}

/// A checked service, ready to install.
pub struct Prepared {
    def: ServiceDef,
    functions: Vec<(String, Binding)>,
}

impl Prepared {
    /// The SQL functions it provides, lower-case.
    pub fn function_names(&self) -> Vec<String> {
        self.functions.iter().map(|(n, _)| n.clone()).collect()
    }
}

struct Installed {
    def: ServiceDef,
    functions: BTreeMap<String, Arc<ExternalFunction>>,
}

/// The registered services of a server.
pub struct ExternalServices {
    registry: Arc<FunctionRegistry>,
    io: Arc<IoRuntime>,
    policy: AddressPolicy,
    observer: Option<Arc<dyn CallObserver>>,
    installed: Mutex<BTreeMap<String, Installed>>,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ExternalServices {
    /// No service yet; calls run on a runtime of their own with `io_threads` workers.
    pub fn new(registry: Arc<FunctionRegistry>, policy: AddressPolicy, io_threads: usize) -> std::io::Result<Self> {
        Ok(Self::on(
            registry,
            policy,
            Arc::new(IoRuntime::new(io_threads, "oort-external", oort_engine::THREAD_STACK_BYTES)?),
        ))
    }

    /// No service yet; calls run on `io`.
    pub fn on(registry: Arc<FunctionRegistry>, policy: AddressPolicy, io: Arc<IoRuntime>) -> Self {
        Self { registry, io, policy, observer: None, installed: Mutex::default() }
    }

    /// Tells `observer` of every call of the services installed from now on.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn installed(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Installed>> {
        self.installed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compiles and checks a service: its .proto files compile, every mapped
    /// method exists, every function name is free (or the service's own).
    pub fn prepare(&self, def: ServiceDef) -> Result<Prepared, ExternalError> {
        let bad = |m: String| Err(ExternalError::Description(m));
        if !is_identifier(&def.name) && !def.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return bad(format!("service name \"{}\" must be letters, digits, _ - or .", def.name));
        }
        if def.name.is_empty() {
            return bad("`name` is required".into());
        }
        if def.description.interfaces.is_empty() {
            return bad("the description has no interface".into());
        }
        let needs_schema = def.description.interfaces.values().any(|i| !i.schemaless);
        let pool = if needs_schema { Some(schema::compile(&def.proto_files)?) } else { None };
        let mut functions = Vec::new();
        let mut seen = BTreeSet::new();
        // Declared names win over the methods' own names (`exported`).
        let declared: BTreeSet<String> = def.description.function_names().into_iter().collect();
        let _runtime = self.io.handle().enter();
        for (iname, i) in &def.description.interfaces {
            let context = |m: String| ExternalError::Description(format!("interface {iname}: {m}"));
            if i.address.trim().is_empty() {
                return Err(context("`address` is required".into()));
            }
            self.policy.check(&i.address).map_err(|e| context(e.to_string()))?;
            if i.schemaless && i.protocol != Protocol::Rest {
                return Err(context("only a rest interface can be schemaless".into()));
            }
            if !i.schemaless {
                match i.schema_type.as_deref() {
                    Some(t) if t.eq_ignore_ascii_case("protobuf") => {}
                    Some(t) => return Err(context(format!("schemaType \"{t}\" is not supported; use protobuf"))),
                    None => return Err(context("`schemaType` is required (protobuf), or `schemaless: true`".into())),
                }
            }
            let timeout = i.options.timeout();
            let transport = match i.protocol {
                Protocol::Grpc => Transport::Grpc(
                    GrpcClient::new(&i.address, &i.options.headers, timeout, &self.policy.egress)
                        .map_err(|e| context(e.to_string()))?,
                ),
                Protocol::Rest => Transport::Rest(
                    RestClient::new(&i.address, &i.options, &self.policy.egress).map_err(|e| context(e.to_string()))?,
                ),
                Protocol::Rpc => {
                    Transport::Rpc(RpcClient::new(&i.address, &self.policy.egress).map_err(|e| context(e.to_string()))?)
                }
            };
            let interface = Arc::new(Interface {
                transport,
                timeout,
                max_in_flight: i.options.max_in_flight(),
                in_flight: Arc::new(Semaphore::new(i.options.max_in_flight())),
            });
            for (f, implicit) in exported(iname, i, pool.as_ref()) {
                let name = f.name.to_ascii_lowercase();
                // A method exported under its own name gives way to any name taken
                // (declared in this service, or another function): it is only a default.
                let taken = seen.contains(&name)
                    || declared.contains(&name)
                    || self.registry.get(&name).is_some_and(|e| e.meta().owner != def.name);
                if implicit && (taken || !is_identifier(&name)) {
                    tracing::info!(service = %def.name, interface = %iname, method = %f.method(), "a method not exported under its own name, which is taken");
                    continue;
                }
                let f = &f;
                if !is_identifier(&name) {
                    return Err(context(format!("function name \"{}\" is not a SQL identifier", f.name)));
                }
                if !seen.insert(name.clone()) {
                    return bad(format!("function {name} is declared twice"));
                }
                if let Some(existing) = self.registry.get(&name) {
                    let meta = existing.meta();
                    if meta.origin != FunctionOrigin::External {
                        return Err(ExternalError::NameTaken(format!(
                            "function {name} is already a {} function; an external one would never be called",
                            format!("{:?}", meta.origin).to_ascii_lowercase()
                        )));
                    }
                    if meta.owner != def.name {
                        return Err(ExternalError::NameTaken(format!(
                            "function {name} is already provided by service '{}'",
                            meta.owner
                        )));
                    }
                }
                let target = match (&pool, i.schemaless) {
                    (Some(pool), false) => {
                        let file =
                            i.schema_file.as_deref().ok_or_else(|| context("`schemaFile` is required".into()))?;
                        let method = schema::find_method(pool, file, f.method()).map_err(|e| {
                            ExternalError::MissingMethod(format!("interface {iname}, function {}: {e}", f.name))
                        })?;
                        let route = match i.protocol {
                            Protocol::Rest => Some(RestRoute::of(&method).map_err(|e| context(e.to_string()))?),
                            _ => None,
                        };
                        Target::Method { method, route }
                    }
                    _ => Target::Schemaless,
                };
                functions.push((
                    name,
                    Binding {
                        interface: Arc::clone(&interface),
                        target,
                        io: Arc::clone(&self.io),
                        observer: self.observer.clone(),
                    },
                ));
            }
        }
        Ok(Prepared { def, functions })
    }

    /// Installs a prepared service, replacing its earlier version: functions it
    /// still has are rebound in place (running rules use the new version from
    /// their next call), the ones it dropped leave the registry.
    pub fn install(&self, prepared: Prepared) -> Vec<String> {
        let Prepared { def, functions } = prepared;
        let mut installed = self.installed();
        let mut old = installed.remove(&def.name).map(|i| i.functions).unwrap_or_default();
        let mut now = BTreeMap::new();
        for (name, binding) in functions {
            let function = match old.remove(&name) {
                Some(existing) => {
                    existing.rebind(binding);
                    existing
                }
                None => Arc::new(ExternalFunction::new(&name, &def.name, binding)),
            };
            self.registry.register(function.clone());
            now.insert(name, function);
        }
        for name in old.keys() {
            self.registry.unregister(FunctionOrigin::External, name);
        }
        let names = now.keys().cloned().collect();
        tracing::info!(service = %def.name, functions = ?names, "external service installed");
        installed.insert(def.name.clone(), Installed { def, functions: now });
        names
    }

    /// Removes a service and its functions; returns its definition.
    pub fn remove(&self, name: &str) -> Option<ServiceDef> {
        let removed = self.installed().remove(name)?;
        for function in removed.functions.keys() {
            self.registry.unregister(FunctionOrigin::External, function);
        }
        tracing::info!(service = %name, "external service removed");
        Some(removed.def)
    }

    /// The SQL functions of a service, if it is installed.
    pub fn functions(&self, name: &str) -> Option<Vec<String>> {
        self.installed().get(name).map(|i| i.functions.keys().cloned().collect())
    }
}

/// The functions an interface exports, as eKuiper's, each with whether it
/// is implicit: the declared mappings (aliases), and every other unary method
/// of its `.proto` under its own name; a schemaless REST interface without
/// mappings exports one function named after the interface.
fn exported(
    name: &str,
    interface: &crate::description::Interface,
    pool: Option<&prost_reflect::DescriptorPool>,
) -> Vec<(FunctionMapping, bool)> {
    let mut functions: Vec<(FunctionMapping, bool)> = interface.functions.iter().map(|f| (f.clone(), false)).collect();
    if interface.schemaless {
        if functions.is_empty() {
            functions.push((FunctionMapping { name: name.to_owned(), service_name: None }, true));
        }
        return functions;
    }
    let file = interface.schema_file.as_deref().and_then(|f| pool?.get_file_by_name(f));
    let methods = file.iter().flat_map(|file| file.services()).flat_map(|s| s.methods().collect::<Vec<_>>());
    for method in methods.filter(|m| !m.is_client_streaming() && !m.is_server_streaming()) {
        let mapped = functions.iter().any(|(f, _)| f.method() == method.name());
        if !mapped {
            functions.push((FunctionMapping { name: method.name().to_owned(), service_name: None }, true));
        }
    }
    functions
}
