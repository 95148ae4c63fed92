//! The external-function benchmark: a local tonic server of
//! `demo.v1.Demo/Square` (generated from the demo .proto, served on its own
//! one-thread runtime), called
//!
//! 1. by a hand-written tonic client (the generated one, typed), one call in
//!    flight at a time, then from as many tasks as an interface allows in flight,
//!    without a deadline and with the interface's (as the dynamic calls send it);
//! 2. through `oort-external` directly: `Function::call` (argument mapping,
//!    DynamicMessage codec, the blocking bridge) one at a time, then
//!    `Function::call_batch` over batches of events, as a rule calls it;
//! 3. by a rule `SELECT square(humidity) AS y FROM demo` running in the engine
//!    (one worker thread), events from a generator source, the calls on the
//!    engine's runtime (the server's default: the rule task awaits them) and
//!    on a runtime of their own (`external_io_threads = 1`); and with the call
//!    under a `CASE` that every event meets (the call deferred to the batch).
//!
//! Each figure is calls per second over `calls` calls, and the callers' CPU
//! time per call (the process's, but the service thread's): the cost of a
//! call, which the two cores' contention does not blur as it does the rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oort_engine::{ActionDefinition, CallContext, ConnectorRegistry, Engine, FunctionRegistry, RuleDefinition, Value};
use oort_external::{AddressPolicy, Description, ExternalServices, ServiceDef};
use oort_runtimes::IoRuntime;

pub mod demo {
    // prost maps the wrapper types of the responses to primitives, and tonic's
    // generated modules name them through `super::`.
    #![allow(non_camel_case_types, clippy::all)]
    type i64 = ::core::primitive::i64;
    type f64 = ::core::primitive::f64;
    tonic::include_proto!("demo.v1");
}

use demo::demo_client::DemoClient;
use demo::demo_server::{Demo, DemoServer};
use demo::{SquareReply, SquareRequest};

/// The service: y = x * x; every other method is left unimplemented.
struct Squares;

#[tonic::async_trait]
impl Demo for Squares {
    async fn square(
        &self,
        request: tonic::Request<SquareRequest>,
    ) -> Result<tonic::Response<SquareReply>, tonic::Status> {
        let x = request.into_inner().x;
        Ok(tonic::Response::new(SquareReply { y: x.wrapping_mul(x) }))
    }
    async fn get_feature(
        &self,
        _: tonic::Request<demo::FeatureRequest>,
    ) -> Result<tonic::Response<demo::FeatureResult>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn upper(&self, _: tonic::Request<String>) -> Result<tonic::Response<String>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn size(&self, _: tonic::Request<Vec<u8>>) -> Result<tonic::Response<i64>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn scale(&self, _: tonic::Request<demo::ScaleRequest>) -> Result<tonic::Response<f64>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn slow(&self, _: tonic::Request<demo::SlowRequest>) -> Result<tonic::Response<SquareReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn check(&self, _: tonic::Request<SquareRequest>) -> Result<tonic::Response<SquareReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
    async fn get_item(
        &self,
        _: tonic::Request<demo::ItemRequest>,
    ) -> Result<tonic::Response<demo::Item>, tonic::Status> {
        Err(tonic::Status::unimplemented("bench"))
    }
}

/// The name of the service's threads, whose CPU time is not the callers'.
const SERVICE_THREAD: &str = "demo-service";

/// The CPU time this process has used, but for the service's threads: what
/// the callers cost. The process's from getrusage (every thread, exited ones
/// too, to the microsecond), less the service threads' from their schedstat
/// (nanoseconds): precise enough to add up many short phases.
fn caller_cpu() -> Result<Duration> {
    use nix::sys::time::TimeValLike;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let micros = |t: nix::sys::time::TimeVal| Duration::from_micros(t.num_microseconds().max(0) as u64);
    let process = micros(usage.user_time()) + micros(usage.system_time());
    let mut service = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == SERVICE_THREAD) {
            let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
            let nanos = schedstat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            service += Duration::from_nanos(nanos);
        }
    }
    Ok(process.saturating_sub(service))
}

/// Calls made, the time they took, and the callers' CPU time: summed over
/// the slices of a phase.
#[derive(Default, Clone, Copy)]
struct Tally {
    calls: usize,
    elapsed: Duration,
    cpu: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.calls += other.calls;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }

    /// Calls per second.
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// The callers' CPU time per call, in microseconds.
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.calls as f64
    }
}

/// The figures of one round.
#[derive(Default)]
struct Round {
    /// The generated tonic client, one call in flight.
    hand: Tally,
    /// `Function::call`, one call in flight.
    dynamic: Tally,
    /// The generated tonic client, as many calls in flight as an interface allows.
    hand_many: Tally,
    /// The same, each call with the interface's deadline, as the dynamic calls send it.
    hand_deadline: Tally,
    /// `Function::call_batch` over batches of events.
    batches: Tally,
    /// The rule calling the function.
    rule: Tally,
    /// The rule, the calls on a runtime of their own.
    rule_own: Tally,
    /// The same rule with a built-in instead of the call.
    plain: Tally,
    /// The rule with its call under a condition every event meets.
    rule_cond: Tally,
}

impl Round {
    /// Adds the calls of `other`'s phases to this one's.
    fn add(&mut self, other: &Round) {
        for (sum, tally) in [
            (&mut self.hand, other.hand),
            (&mut self.dynamic, other.dynamic),
            (&mut self.hand_many, other.hand_many),
            (&mut self.hand_deadline, other.hand_deadline),
            (&mut self.batches, other.batches),
            (&mut self.rule, other.rule),
            (&mut self.rule_own, other.rule_own),
            (&mut self.plain, other.plain),
            (&mut self.rule_cond, other.rule_cond),
        ] {
            sum.add(tally);
        }
    }

    /// The rule's CPU per event less that of the same rule with a built-in:
    /// the call's share of the rule.
    fn call_in_rule_us(&self) -> f64 {
        self.rule.cpu_us() - self.plain.cpu_us()
    }
}

/// Runs a phase of `calls` calls, timing it and the callers' CPU.
fn measure(calls: usize, phase: impl FnOnce() -> Result<()>) -> Result<Tally> {
    let cpu = caller_cpu()?;
    let started = Instant::now();
    phase()?;
    let elapsed = started.elapsed();
    Ok(Tally { calls, elapsed, cpu: caller_cpu()?.saturating_sub(cpu) })
}

/// Starts the server on a runtime of its own (one thread); returns its port and the runtime.
fn serve() -> Result<(u16, tokio::runtime::Runtime)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVICE_THREAD)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    runtime.spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = tonic::transport::Server::builder()
            .add_service(DemoServer::new(Squares))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok((port, runtime))
}

fn proto_files() -> Result<Vec<(String, String)>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/external/proto");
    ["demo/v1/demo.proto", "demo/v1/types.proto"]
        .iter()
        .map(|name| Ok(((*name).to_owned(), std::fs::read_to_string(root.join(name)).context("demo proto")?)))
        .collect()
}

/// Registers the service's `square` in `functions`, its calls on a runtime of
/// `io_threads` of their own, or on the caller's with 0.
fn register(functions: &Arc<FunctionRegistry>, port: u16, io_threads: usize) -> Result<ExternalServices> {
    let io = match io_threads {
        // The server's default: the calls on the runtime of the rule tasks (the caller's).
        0 => IoRuntime::on(tokio::runtime::Handle::current()),
        threads => IoRuntime::new(threads, "oort-external", oort_engine::THREAD_STACK_BYTES)?,
    };
    // The benchmark's service is on loopback.
    let policy = AddressPolicy { egress: Arc::new(oort_policy::EgressPolicy::allow_all()), ..AddressPolicy::default() };
    let services = ExternalServices::on(Arc::clone(functions), policy, Arc::new(io));
    let json = format!(
        r#"{{"interfaces": {{"g": {{"address": "127.0.0.1:{port}", "protocol": "grpc", "schemaType": "protobuf",
            "schemaFile": "demo/v1/demo.proto", "functions": [{{"name": "square", "serviceName": "Square"}}]}}}}}}"#
    );
    let def =
        ServiceDef { name: "bench".into(), description: Description::from_json(&json)?, proto_files: proto_files()? };
    services.install(services.prepare(def)?);
    Ok(services)
}

/// Generated tonic client, one call in flight.
async fn static_client(port: u16, calls: usize) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = DemoClient::new(channel);
    for i in 0..calls {
        let y = client.square(SquareRequest { x: i as i64 }).await?.into_inner().y;
        if y != (i as i64) * (i as i64) {
            bail!("wrong answer");
        }
    }
    Ok(())
}

/// Generated tonic client, `lanes` calls in flight (one task each, one shared
/// channel); each call with `deadline`, if given, as `Request::set_timeout`
/// sends it (the `grpc-timeout` header, which tonic also enforces).
async fn static_concurrent(port: u16, calls: usize, lanes: usize, deadline: Option<Duration>) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let tasks: Vec<_> = (0..lanes)
        .map(|_| {
            let mut client = DemoClient::new(channel.clone());
            tokio::spawn(async move {
                for i in 0..calls / lanes {
                    let mut request = tonic::Request::new(SquareRequest { x: i as i64 });
                    if let Some(deadline) = deadline {
                        request.set_timeout(deadline);
                    }
                    client.square(request).await?;
                }
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// `Function::call_batch` in batches of `batch` rows, as a rule calls it for
/// each batch of events: the calls of a batch run concurrently.
async fn dynamic_batches(functions: &Arc<FunctionRegistry>, calls: usize, batch: usize) -> Result<()> {
    let function = functions.get("square").context("square is registered")?;
    let ctx = CallContext { rule_id: "bench" };
    let args: Vec<[Value; 1]> = (0..batch as i64).map(|i| [Value::Int(i)]).collect();
    let rows: Vec<&[Value]> = args.iter().map(|a| a.as_slice()).collect();
    for _ in 0..calls / batch {
        for (i, y) in function.call_batch(&ctx, &rows).await.into_iter().enumerate() {
            let y = y.map_err(|e| anyhow::anyhow!("{e}"))?;
            if y != Value::Int((i * i) as i64) {
                bail!("wrong answer {y:?}");
            }
        }
    }
    Ok(())
}

/// `Function::call` of the external function, one call in flight, from a runtime worker as in a rule.
async fn dynamic_calls(functions: &Arc<FunctionRegistry>, calls: usize) -> Result<()> {
    let function = functions.get("square").context("square is registered")?;
    let ctx = CallContext { rule_id: "bench" };
    for i in 0..calls as i64 {
        let y = function.call(&ctx, &[Value::Int(i)]).map_err(|e| anyhow::anyhow!("{e}"))?;
        if y != Value::Int(i * i) {
            bail!("wrong answer {y:?}");
        }
    }
    Ok(())
}

/// The rule calling the external function for every event.
const RULE: &str = "SELECT square(humidity) AS y FROM demo";
/// The same rule with the built-in arithmetic instead: what the rule costs without the call.
const RULE_BUILT_IN: &str = "SELECT humidity * humidity AS y FROM demo";
/// The call under a condition that every event meets: deferred to the batch
/// (each event evaluated up to it, then again with the answers).
const RULE_CONDITIONAL: &str = "SELECT CASE WHEN humidity >= 0 THEN square(humidity) END AS y FROM demo";

/// A rule run over `calls` events (a call each, when it calls the function).
async fn rule_calls(functions: &Arc<FunctionRegistry>, calls: usize, sql: &str) -> Result<()> {
    let connectors = Arc::new(ConnectorRegistry::new());
    let payloads = Arc::new(crate::engine::events(calls, 100));
    connectors.register_source("generator", Arc::new(crate::engine::GeneratorFactory(Arc::clone(&payloads))));
    connectors.register_sink("count", Arc::new(crate::engine::CountFactory(Arc::default())));
    let engine = Engine::new(Arc::clone(functions), connectors);
    let stream = oort_sql::parse_stream_ddl(crate::engine::STREAM)?;
    let lookup = move |name: &str| (name == "demo").then(|| stream.clone());
    let def = RuleDefinition {
        id: "bench".into(),
        sql: sql.into(),
        actions: vec![ActionDefinition { sink_type: "count".into(), props: Default::default() }],
        options: Default::default(),
    };
    let plan = engine.plan(&def, &lookup)?;
    let started = Instant::now();
    engine.start(plan).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Some(status) = engine.status("bench").await else { bail!("the rule stopped") };
        let op = status.operators.iter().find(|o| o.name == "op_project_0").context("project")?;
        if op.exceptions_total > 0 {
            bail!("calls failed: {:?}", op.last_exception);
        }
        if op.records_out_total >= calls as u64 {
            engine.stop("bench").await;
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("{} of {calls} calls after 300 s", op.records_out_total);
        }
    }
}

/// The four phases of calls in flight alternate in slices this many times a
/// round, so that the machine's drifts fall on all of them alike.
const SLICES: usize = 8;

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A phase of calls in flight, for `--only`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Phase {
    /// The hand-written tonic client, without a deadline.
    Hand,
    /// The hand-written tonic client with the interface's deadline.
    Deadline,
    /// `Function::call_batch`.
    Batches,
    /// The rule calling the function.
    Rule,
    /// The rule, the calls on a runtime of their own (`external_io_threads = 1`).
    Own,
    /// The rule with the built-in instead.
    Plain,
    /// The rule with the call under `CASE`.
    Cond,
}

/// Prints the figures as markdown tables (of `only` that phase, if given).
pub fn run(calls: usize, rounds: usize, batch: usize, only: Option<Phase>) -> Result<()> {
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    let (port, _server) = serve()?;
    // The client side: one worker thread, like one rule task.
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let _services = client.block_on(async { register(&functions, port, 0) })?;
    let own = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&own);
    let _own_services = client.block_on(async { register(&own, port, 1) })?;
    // The default in-flight bound and deadline of an interface.
    const LANES: usize = oort_external::description::DEFAULT_MAX_IN_FLIGHT as usize;
    let deadline = Duration::from_millis(oort_external::description::DEFAULT_TIMEOUT_MS);
    // A multiple of both the batch and LANES, so that every phase makes as many calls.
    let multiple = batch / gcd(batch, LANES) * LANES;
    let slice = (calls * 4 / SLICES).div_ceil(multiple) * multiple;
    // Connects both clients and warms them up.
    client.block_on(static_client(port, 100))?;
    client.block_on(dynamic_calls(&functions, 100))?;
    let phase = |phase: Phase| {
        measure(slice, || match phase {
            Phase::Hand => client.block_on(static_concurrent(port, slice, LANES, None)),
            Phase::Deadline => client.block_on(static_concurrent(port, slice, LANES, Some(deadline))),
            // A task of the runtime, as a rule's batches are.
            Phase::Batches => {
                let functions = Arc::clone(&functions);
                client.block_on(async move {
                    tokio::spawn(async move { dynamic_batches(&functions, slice, batch).await }).await?
                })
            }
            Phase::Rule => client.block_on(rule_calls(&functions, slice, RULE)),
            Phase::Own => client.block_on(rule_calls(&own, slice, RULE)),
            Phase::Plain => client.block_on(rule_calls(&functions, slice, RULE_BUILT_IN)),
            Phase::Cond => client.block_on(rule_calls(&functions, slice, RULE_CONDITIONAL)),
        })
    };
    if let Some(only) = only {
        let mut tally = Tally::default();
        for _ in 0..rounds * SLICES {
            tally.add(phase(only)?);
        }
        crate::out!("{only:?}: {:.0} calls/s, {:.2} µs of the callers' CPU a call", tally.rate(), tally.cpu_us());
        return Ok(());
    }
    let mut rows = Vec::new();
    for _ in 0..rounds {
        let hand = measure(calls, || client.block_on(static_client(port, calls)))?;
        let dynamic = measure(calls, || client.block_on(dynamic_calls(&functions, calls)))?;
        let [mut hand_many, mut hand_deadline, mut batches, mut rule, mut rule_own, mut plain, mut rule_cond] =
            [Tally::default(); 7];
        for _ in 0..SLICES {
            hand_many.add(phase(Phase::Hand)?);
            hand_deadline.add(phase(Phase::Deadline)?);
            batches.add(phase(Phase::Batches)?);
            rule.add(phase(Phase::Rule)?);
            rule_own.add(phase(Phase::Own)?);
            plain.add(phase(Phase::Plain)?);
            rule_cond.add(phase(Phase::Cond)?);
        }
        rows.push(Round { hand, dynamic, hand_many, hand_deadline, batches, rule, rule_own, plain, rule_cond });
    }
    // Cost: how much more the callers' CPU per call than the hand-written client's.
    let cost = |hand: f64, other: f64| (other / hand - 1.0) * 100.0;
    let cell = |hand: &Tally, other: &Tally| {
        format!("{:.0} calls/s, {:.1} µs ({:+.0}%)", other.rate(), other.cpu_us(), cost(hand.cpu_us(), other.cpu_us()))
    };
    // Against the hand-written client with the same deadline (the same work), then without one.
    let costs = |r: &Round, us: f64| {
        format!("{:+.0}% / {:+.0}%", cost(r.hand_deadline.cpu_us(), us), cost(r.hand_many.cpu_us(), us))
    };
    crate::out!("Calls per second, and the callers' CPU time per call (cost against the hand-written client).\n");
    crate::out!("One call in flight:\n");
    crate::out!("| round | hand-written tonic client | oort-external `Function::call` |");
    crate::out!("|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        crate::out!(
            "| {i} | {:.0} calls/s, {:.1} µs | {} |",
            r.hand.rate(),
            r.hand.cpu_us(),
            cell(&r.hand, &r.dynamic)
        );
    }
    crate::out!(
        "\nConcurrent ({LANES} in flight; batches of {batch} events; the seven alternate in {SLICES} slices a round); \
         costs against the hand-written client with the {}-ms deadline / without one:\n",
        deadline.as_millis()
    );
    crate::out!(
        "| round | hand-written tonic client, {LANES} tasks | the same with the deadline | `Function::call_batch` | \
         rule `{RULE}` | the call in the rule: less `{RULE_BUILT_IN}` | the rule, calls on a runtime of their own | \
         rule `{RULE_CONDITIONAL}` |"
    );
    crate::out!("|---|---|---|---|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        crate::out!(
            "| {i} | {:.0} calls/s, {:.1} µs | {:.0} calls/s, {:.1} µs | {:.1} µs ({}) | {:.0} calls/s, {:.1} µs ({}) | \
             {:.1} µs ({}) | {:.0} calls/s, {:.1} µs ({}) | {:.0} calls/s, {:.1} µs ({}) |",
            r.hand_many.rate(),
            r.hand_many.cpu_us(),
            r.hand_deadline.rate(),
            r.hand_deadline.cpu_us(),
            r.batches.cpu_us(),
            costs(r, r.batches.cpu_us()),
            r.rule.rate(),
            r.rule.cpu_us(),
            costs(r, r.rule.cpu_us()),
            r.call_in_rule_us(),
            costs(r, r.call_in_rule_us()),
            r.rule_own.rate(),
            r.rule_own.cpu_us(),
            costs(r, r.rule_own.cpu_us()),
            r.rule_cond.rate(),
            r.rule_cond.cpu_us(),
            costs(r, r.rule_cond.cpu_us()),
        );
    }
    // Over all rounds: every call of a phase counted once.
    let mut all = Round::default();
    for r in &rows {
        all.add(r);
    }
    crate::out!(
        "\nAll {rounds} rounds (goal ≤ +20%; against the client with the deadline / without): hand-written {:.1} µs \
         a call, {:.1} µs with the deadline; `Function::call_batch` {:.1} µs ({}), the rule {:.1} µs ({}), the call in \
         the rule {:.1} µs ({}); the rule {:.0} calls/s (goal ≥ 20,000); with the calls on a runtime of their own, the \
         rule {:.1} µs ({}); with the call under `CASE`, the rule {:.1} µs ({})",
        all.hand_many.cpu_us(),
        all.hand_deadline.cpu_us(),
        all.batches.cpu_us(),
        costs(&all, all.batches.cpu_us()),
        all.rule.cpu_us(),
        costs(&all, all.rule.cpu_us()),
        all.call_in_rule_us(),
        costs(&all, all.call_in_rule_us()),
        all.rule.rate(),
        all.rule_own.cpu_us(),
        costs(&all, all.rule_own.cpu_us()),
        all.rule_cond.cpu_us(),
        costs(&all, all.rule_cond.cpu_us()),
    );
    let hand = ("hand-written tonic client with the deadline", all.hand_deadline.cpu_us());
    crate::report::against("external call_batch: callers' CPU a call", all.batches.cpu_us(), "µs", hand.0, hand.1);
    crate::report::against("external call in a rule: CPU a call", all.call_in_rule_us(), "µs", hand.0, hand.1);
    crate::report::figure("external function in a rule: calls", all.rule.rate(), "calls/s");
    Ok(())
}
