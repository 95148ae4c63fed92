//! [`ExternalFunction`]: a method of a registered service as an engine
//! [`Function`], so a rule cannot tell it from a built-in.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};

use oort_engine::function::ArgInfo;
use oort_engine::{
    BatchAnswers, BatchCall, CallContext, Calling, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin,
    Value,
};
use prost_reflect::MethodDescriptor;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::CallError;
use crate::grpc::GrpcClient;
use crate::mapping;
use crate::rest::{RestClient, RestRoute};
use crate::tarpc_service::RpcClient;
use oort_runtimes::IoRuntime;

/// How one interface is reached, shared by its functions.
pub struct Interface {
    /// The transport.
    pub transport: Transport,
    /// Deadline of one call (retries included).
    pub timeout: Duration,
    /// Most calls in flight to the interface (`maxInFlight`).
    pub max_in_flight: usize,
    /// Bounds the calls in flight to the interface, across every rule.
    pub in_flight: Arc<Semaphore>,
}

/// One call's request, built from its row before anything is sent.
enum Request {
    Method { method: MethodDescriptor, route: Option<RestRoute>, message: prost_reflect::DynamicMessage },
    Schemaless { verb: String, path: String, body: Option<serde_json::Value> },
}

impl Interface {
    /// Waits for room within the in-flight limit.
    async fn permit(&self) -> Result<SemaphorePermit<'_>, CallError> {
        self.in_flight.acquire().await.map_err(|_| closed())
    }

    /// Sends one request, within the in-flight limit but not the deadline (the
    /// caller sets that: one timer per call, or one for a whole batch).
    async fn send(&self, request: Request) -> Result<Value, CallError> {
        let _permit = self.permit().await?;
        self.send_now(request).await
    }

    /// Sends one request with a permit already held. The REST and tarpc
    /// futures are boxed: they are several times the size of the gRPC one,
    /// and every call's future is as large as the largest.
    async fn send_now(&self, request: Request) -> Result<Value, CallError> {
        let timeout = self.timeout;
        match (request, &self.transport) {
            (Request::Method { method, message, .. }, Transport::Grpc(client)) => {
                client.call(&method, message, timeout).await.map(|m| mapping::response(&m))
            }
            (Request::Method { method, message, .. }, Transport::Rpc(client)) => {
                Box::pin(client.call(&method, message, timeout)).await.map(|m| mapping::response(&m))
            }
            (Request::Method { method, message, route: Some(route) }, Transport::Rest(client)) => {
                Box::pin(client.call(&method, &route, message)).await.map(|m| mapping::response(&m))
            }
            (Request::Method { route: None, .. }, Transport::Rest(_)) => {
                Err(CallError::Convert("REST method without a route".into()))
            }
            (Request::Schemaless { verb, path, body }, Transport::Rest(client)) => {
                Box::pin(client.call_schemaless(&verb, &path, body)).await
            }
            (Request::Schemaless { .. }, _) => Err(CallError::Convert("schemaless calls need a REST interface".into())),
        }
    }
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
    /// Told of every call's outcome and latency, if set.
    pub observer: Option<Arc<dyn CallObserver>>,
}

impl Binding {
    /// The request of one call, from its arguments.
    fn request(&self, args: &[Value]) -> Result<Request, CallError> {
        Ok(match &self.target {
            Target::Method { method, route } => Request::Method {
                message: mapping::request(&method.input(), args)?,
                method: method.clone(),
                route: route.clone(),
            },
            Target::Schemaless => {
                let (verb, path, body) = crate::rest::schemaless_args(args)?;
                Request::Schemaless { verb, path, body }
            }
        })
    }
}

/// Told of every external call once it ended: its service, SQL function,
/// latency (deadline included) and whether it succeeded. oortd exports this
/// as a Prometheus histogram.
pub trait CallObserver: Send + Sync + 'static {
    /// One call ended.
    fn observe(&self, service: &str, function: &str, elapsed: Duration, ok: bool);
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
            calling: Calling::Remote,
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

    /// Tells the observer, if any, of a call's outcome.
    fn observe(&self, binding: &Binding, elapsed: Duration, ok: bool) {
        if let Some(observer) = &binding.observer {
            observer.observe(&self.meta.owner, &self.meta.name, elapsed, ok);
        }
    }

    fn error(&self, e: CallError) -> FunctionError {
        FunctionError::failed(&self.meta.name, e.to_string())
    }
}

/// A call that outlived the interface's timeout.
fn deadline(timeout: Duration) -> CallError {
    CallError::Deadline(timeout.as_millis() as u64)
}

/// The in-flight limit of an interface that is gone.
fn closed() -> CallError {
    CallError::Unavailable("closed".into())
}

/// Why nothing was called: the I/O runtime is gone.
fn shutting_down() -> CallError {
    CallError::Unavailable("the server is shutting down".into())
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
        let binding = self.binding();
        let request = binding.request(args).map_err(|e| self.error(e))?;
        let interface = Arc::clone(&binding.interface);
        let timeout = interface.timeout;
        let started = Instant::now();
        let timed = async move {
            tokio::time::timeout(timeout, interface.send(request)).await.unwrap_or(Err(deadline(timeout)))
        };
        let result = binding.io.block(timed).unwrap_or_else(|| Err(shutting_down()));
        self.observe(&binding, started.elapsed(), result.is_ok());
        result.map_err(|e| self.error(e))
    }

    /// Every call of the batch concurrently ([`ExternalFunction::batch`]),
    /// awaited by the caller (a rule's task): where the I/O runtime is the
    /// engine's, no thread hands them to another.
    fn call_batch(&self, _: &CallContext<'_>, rows: &[&[Value]]) -> BatchCall {
        let binding = self.binding();
        let batch = binding.io.run(self.batch(Arc::clone(&binding), rows));
        let (rows, name) = (rows.len(), self.meta.name.clone());
        batch
            .map(move |done| {
                done.unwrap_or_else(|| vec![Err(FunctionError::failed(&name, shutting_down().to_string())); rows])
            })
            .boxed()
    }
}

impl ExternalFunction {
    /// Every call of the batch concurrently, up to the interface's in-flight
    /// limit, all under one deadline (one timer for the batch, not one per
    /// call): a batch takes about as long as its slowest calls, not the sum of
    /// them. The requests are built now; a call's future is made only when
    /// it can be sent, so that no more than the limit exist at once (a gRPC
    /// call's future is kilobytes: a batch's made up front was 700 KB).
    fn batch(&self, binding: Arc<Binding>, rows: &[&[Value]]) -> impl Future<Output = BatchAnswers> + Send + 'static {
        let mut results: Vec<Option<Result<Value, CallError>>> = Vec::with_capacity(rows.len());
        let mut requests = Vec::with_capacity(rows.len());
        for (i, args) in rows.iter().enumerate() {
            match binding.request(args) {
                Ok(request) => {
                    requests.push((i, request));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let (name, owner) = (self.meta.name.clone(), self.meta.owner.clone());
        async move {
            let interface = &binding.interface;
            let timeout = interface.timeout;
            let started = Instant::now();
            let observe = |elapsed: Duration, ok: bool| {
                if let Some(observer) = &binding.observer {
                    observer.observe(&owner, &name, elapsed, ok);
                }
            };
            for (i, answer, ended) in all_answers(interface, requests).await {
                observe(ended - started, answer.is_ok());
                results[i] = Some(answer);
            }
            results
                .into_iter()
                .map(|slot| {
                    // Past the deadline, or the server is shutting down (nothing came back).
                    let answer = slot.unwrap_or_else(|| {
                        observe(started.elapsed(), false);
                        Err(if started.elapsed() >= timeout { deadline(timeout) } else { shutting_down() })
                    });
                    answer.map_err(|e| FunctionError::failed(&name, e.to_string()))
                })
                .collect()
        }
    }
}

/// The answers to `requests` that came within the interface's deadline, with
/// the row of each and when it came.
async fn all_answers(
    interface: &Interface,
    requests: Vec<(usize, Request)>,
) -> Vec<(usize, Result<Value, CallError>, Instant)> {
    let mut answers = Vec::with_capacity(requests.len());
    // A call's future (kilobytes) is made only once it holds a permit:
    // batches of several rules (or of one pipelined rule) waiting for
    // room keep small futures, not a limit's worth of large ones each.
    let semaphore = Arc::clone(&interface.in_flight);
    let mut calls = std::pin::pin!(
        futures::stream::iter(requests)
            .then(move |(i, request)| Arc::clone(&semaphore).acquire_owned().map(move |p| (i, request, p)))
            .map(|(i, request, permit)| async move {
                let answer = match permit {
                    Ok(_permit) => interface.send_now(request).await,
                    Err(_) => Err(closed()),
                };
                (i, answer, Instant::now())
            })
            .buffer_unordered(interface.max_in_flight)
    );
    let expired = tokio::time::sleep(interface.timeout);
    tokio::pin!(expired);
    // tonic arms a timer for each call (its `grpc-timeout`), and tokio
    // wakes its driver (an eventfd write) for every timer registered
    // while its wheel had none when the driver last ran
    // (tokio-rs/tokio#5207), as it has at the start of a batch. So
    // register the batch's timer first and let the driver run once
    // (`yield_now`): the calls' timers, later than it, then wake nothing.
    let _ = futures::poll!(expired.as_mut());
    tokio::task::yield_now().await;
    loop {
        tokio::select! {
            answer = calls.next() => match answer {
                Some(answer) => answers.push(answer),
                None => break,
            },
            () = &mut expired => break,
        }
    }
    answers
}
