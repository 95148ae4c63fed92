//! [`ExternalFunction`]: a method of a registered service as an engine
//! [`Function`], so a rule cannot tell it from a built-in.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use oort_engine::function::ArgInfo;
use oort_engine::{CallContext, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin, Value};
use prost_reflect::MethodDescriptor;
use tokio::sync::Semaphore;

use crate::error::CallError;
use crate::grpc::GrpcClient;
use crate::io::IoRuntime;
use crate::mapping;
use crate::rest::{RestClient, RestRoute};
use crate::rpc::RpcClient;

/// How one interface is reached, shared by its functions.
pub struct Interface {
    /// The transport.
    pub transport: Transport,
    /// Deadline of one call (retries included).
    pub timeout: Duration,
    /// Bounds the calls in flight to the interface.
    pub in_flight: Arc<Semaphore>,
}

/// The client of one protocol.
pub enum Transport {
    /// gRPC.
    Grpc(GrpcClient),
    /// REST.
    Rest(RestClient),
    /// tarpc.
    Rpc(RpcClient),
}

/// What a function calls.
pub enum Target {
    /// A method of the .proto (grpc, rpc; rest with its route).
    Method { method: MethodDescriptor, route: Option<RestRoute> },
    /// A schemaless REST interface: `fn(verb, path, body...)`.
    Schemaless,
}

/// Everything one call needs; replaced as a whole when the service is updated.
pub struct Binding {
    /// The interface it calls.
    pub interface: Arc<Interface>,
    /// The method (or none, schemaless).
    pub target: Target,
    /// The runtime calls run on.
    pub io: Arc<IoRuntime>,
}

/// A SQL function provided by an external service.
pub struct ExternalFunction {
    meta: FunctionMeta,
    binding: RwLock<Arc<Binding>>,
}

impl ExternalFunction {
    /// A function `name` of `service`.
    pub fn new(name: &str, service: &str, binding: Binding) -> Self {
        let meta = FunctionMeta {
            name: name.to_ascii_lowercase(),
            kind: FunctionKind::Scalar,
            origin: FunctionOrigin::External,
            owner: service.to_owned(),
            min_args: 0,
            max_args: None,
            description: format!("{}; external service '{service}'", describe(&binding)),
        };
        Self { meta, binding: RwLock::new(Arc::new(binding)) }
    }

    /// Points the function at a new binding (its service was updated): the
    /// registry and the rules that run it keep this object, and use the new
    /// binding from their next call.
    pub fn rebind(&self, binding: Binding) {
        *self.binding.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(binding);
    }

    fn binding(&self) -> Arc<Binding> {
        Arc::clone(&self.binding.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// One call, with its error as the rule reports it.
    fn invoke(&self, args: &[Value]) -> Result<Value, CallError> {
        let binding = self.binding();
        let interface = Arc::clone(&binding.interface);
        let timeout = interface.timeout;
        let millis = timeout.as_millis() as u64;
        match &binding.target {
            Target::Method { method, route } => {
                let request = mapping::request(&method.input(), args)?;
                let (method, route) = (method.clone(), route.clone());
                let call = async move {
                    let _permit =
                        interface.in_flight.acquire().await.map_err(|_| CallError::Unavailable("closed".into()))?;
                    match &interface.transport {
                        Transport::Grpc(client) => {
                            client.call(&method, request, timeout).await.map(|m| mapping::response(&m))
                        }
                        Transport::Rpc(client) => {
                            client.call(&method, request, timeout).await.map(|m| mapping::response(&m))
                        }
                        Transport::Rest(client) => match &route {
                            Some(route) => client.call(&method, route, request).await.map(|m| mapping::response(&m)),
                            None => Err(CallError::Convert("REST method without a route".into())),
                        },
                    }
                };
                run(&binding.io, call, timeout, millis)
            }
            Target::Schemaless => {
                let (verb, path, body) = crate::rest::schemaless_args(args)?;
                let call = async move {
                    let _permit =
                        interface.in_flight.acquire().await.map_err(|_| CallError::Unavailable("closed".into()))?;
                    match &interface.transport {
                        Transport::Rest(client) => client.call_schemaless(&verb, &path, body).await,
                        _ => Err(CallError::Convert("schemaless calls need a REST interface".into())),
                    }
                };
                run(&binding.io, call, timeout, millis)
            }
        }
    }
}

/// Runs a call on the I/O runtime within its deadline.
fn run<F>(io: &IoRuntime, call: F, timeout: Duration, millis: u64) -> Result<Value, CallError>
where
    F: std::future::Future<Output = Result<Value, CallError>> + Send + 'static,
{
    let bounded = async move { tokio::time::timeout(timeout, call).await.unwrap_or(Err(CallError::Deadline(millis))) };
    io.block(bounded).unwrap_or_else(|| Err(CallError::Unavailable("the server is shutting down".into())))
}

fn describe(binding: &Binding) -> String {
    match &binding.target {
        Target::Method { method, .. } => {
            format!("calls {} ({} → {})", method.full_name(), method.input().full_name(), method.output().full_name())
        }
        Target::Schemaless => "calls a REST service: fn(verb, path[, body])".to_owned(),
    }
}

impl Function for ExternalFunction {
    fn meta(&self) -> &FunctionMeta {
        &self.meta
    }

    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        let binding = self.binding();
        match &binding.target {
            Target::Method { method, .. } => {
                let fields = method.input().fields().len();
                // One argument may be a map of the fields by name.
                if args.len() == fields || (args.len() == 1 && fields > 0) {
                    Ok(())
                } else {
                    Err(format!(
                        "function {} takes {fields} argument(s) (the fields of {}), or one map of them",
                        self.meta.name,
                        method.input().full_name()
                    ))
                }
            }
            Target::Schemaless if args.len() >= 2 => Ok(()),
            Target::Schemaless => Err(format!(
                "function {} takes a verb, a path and optionally a body: {}(\"post\", \"/path\", self)",
                self.meta.name, self.meta.name
            )),
        }
    }

    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        self.invoke(args).map_err(|e| FunctionError::failed(&self.meta.name, e.to_string()))
    }
}
