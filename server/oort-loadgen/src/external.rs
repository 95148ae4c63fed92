//! The external-function benchmark: a local tonic server of
//! `demo.v1.Demo/Square` (generated from the demo .proto, served on its own
//! one-thread runtime), called
//!
//! 1. by a hand-written tonic client (the generated one, typed), one call in
//!    flight at a time, then from as many tasks as an interface allows in flight;
//! 2. through `oort-external` directly: `Function::call` (argument mapping,
//!    DynamicMessage codec, the blocking bridge) one at a time, then
//!    `Function::call_batch` over batches of events, as a rule calls it;
//! 3. by a rule `SELECT square(humidity) AS y FROM demo` running in the engine
//!    (one worker thread), events from a generator source.
//!
//! Each figure is calls per second over `calls` calls, and the callers' CPU
//! time per call (the process's, but the service thread's): the cost of a
//! call, which the two cores' contention does not blur as it does the rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oort_engine::{ActionDefinition, CallContext, ConnectorRegistry, Engine, FunctionRegistry, RuleDefinition, Value};
use oort_external::{AddressPolicy, Description, ExternalServices, ServiceDef};

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
/// the callers cost. From /proc, in clock ticks of 10 ms.
fn caller_cpu() -> Result<Duration> {
    fn ticks(stat: &str) -> Option<u64> {
        // The fields after the command name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }
    let total = ticks(&std::fs::read_to_string("/proc/self/stat")?).context("/proc/self/stat")?;
    let mut service = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == SERVICE_THREAD) {
            service += std::fs::read_to_string(path.join("stat")).ok().as_deref().and_then(ticks).unwrap_or(0);
        }
    }
    Ok(Duration::from_millis(total.saturating_sub(service) * 10))
}

/// A figure: calls per second, and the callers' CPU time per call.
struct Figure {
    rate: f64,
    cpu_us: f64,
}

/// The figures of one round, each phase run once.
struct Round {
    /// The generated tonic client, one call in flight.
    hand: Figure,
    /// `Function::call`, one call in flight.
    dynamic: Figure,
    /// The generated tonic client, as many calls in flight as an interface allows.
    hand_many: Figure,
    /// `Function::call_batch` over batches of events.
    batches: Figure,
    /// The rule calling the function.
    rule: Figure,
    /// The rule's CPU per event less that of the same rule with a built-in instead of the call.
    call_in_rule: Figure,
}

/// Runs a phase of `calls` calls that returns its rate; adds the callers' CPU per call.
fn measure(calls: usize, phase: impl FnOnce() -> Result<f64>) -> Result<Figure> {
    let before = caller_cpu()?;
    let rate = phase()?;
    let cpu = caller_cpu()?.saturating_sub(before);
    Ok(Figure { rate, cpu_us: cpu.as_secs_f64() * 1e6 / calls as f64 })
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

fn register(functions: &Arc<FunctionRegistry>, port: u16) -> Result<ExternalServices> {
    let services = ExternalServices::new(Arc::clone(functions), AddressPolicy::default(), 1)?;
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
async fn static_client(port: u16, calls: usize) -> Result<f64> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = DemoClient::new(channel);
    client.square(SquareRequest { x: 1 }).await?;
    let started = Instant::now();
    for i in 0..calls {
        let y = client.square(SquareRequest { x: i as i64 }).await?.into_inner().y;
        if y != (i as i64) * (i as i64) {
            bail!("wrong answer");
        }
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

/// Generated tonic client, `lanes` calls in flight (one task each, one shared channel).
async fn static_concurrent(port: u16, calls: usize, lanes: usize) -> Result<f64> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..lanes)
        .map(|_| {
            let mut client = DemoClient::new(channel.clone());
            tokio::spawn(async move {
                for i in 0..calls / lanes {
                    client.square(SquareRequest { x: i as i64 }).await?;
                }
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok((calls / lanes * lanes) as f64 / started.elapsed().as_secs_f64())
}

/// `Function::call_batch` in batches of `batch` rows, as a rule calls it for
/// each batch of events: the calls of a batch run concurrently.
async fn dynamic_batches(functions: &Arc<FunctionRegistry>, calls: usize, batch: usize) -> Result<f64> {
    let function = functions.get("square").context("square is registered")?;
    let ctx = CallContext { rule_id: "bench" };
    let args: Vec<[Value; 1]> = (0..batch as i64).map(|i| [Value::Int(i)]).collect();
    let rows: Vec<&[Value]> = args.iter().map(|a| a.as_slice()).collect();
    let started = Instant::now();
    for _ in 0..calls / batch {
        for (i, y) in function.call_batch(&ctx, &rows).into_iter().enumerate() {
            let y = y.map_err(|e| anyhow::anyhow!("{e}"))?;
            if y != Value::Int((i * i) as i64) {
                bail!("wrong answer {y:?}");
            }
        }
    }
    Ok((calls / batch * batch) as f64 / started.elapsed().as_secs_f64())
}

/// `Function::call` of the external function, one call in flight, from a runtime worker as in a rule.
async fn dynamic_calls(functions: &Arc<FunctionRegistry>, calls: usize) -> Result<f64> {
    let function = functions.get("square").context("square is registered")?;
    let ctx = CallContext { rule_id: "bench" };
    function.call(&ctx, &[Value::Int(1)]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    for i in 0..calls as i64 {
        let y = function.call(&ctx, &[Value::Int(i)]).map_err(|e| anyhow::anyhow!("{e}"))?;
        if y != Value::Int(i * i) {
            bail!("wrong answer {y:?}");
        }
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

/// The rule calling the external function for every event.
const RULE: &str = "SELECT square(humidity) AS y FROM demo";
/// The same rule with the built-in arithmetic instead: what the rule costs without the call.
const RULE_BUILT_IN: &str = "SELECT humidity * humidity AS y FROM demo";

/// A rule run over `calls` events (a call each, when it calls the function): its rate.
async fn rule_calls(functions: &Arc<FunctionRegistry>, calls: usize, sql: &str) -> Result<f64> {
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
            let elapsed = started.elapsed();
            engine.stop("bench").await;
            return Ok(calls as f64 / elapsed.as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("{} of {calls} calls after 300 s", op.records_out_total);
        }
    }
}

/// Prints the figures as a markdown table.
pub fn run(calls: usize, rounds: usize) -> Result<()> {
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    let (port, _server) = serve()?;
    // The client side: one worker thread, like one rule task.
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let _services = client.block_on(async { register(&functions, port) })?;
    // The default in-flight bound of an interface, and the engine's batch of events.
    const LANES: usize = oort_external::description::DEFAULT_MAX_IN_FLIGHT as usize;
    const BATCH: usize = 256;
    let mut rows = Vec::new();
    for _ in 0..rounds {
        let hand = measure(calls, || client.block_on(static_client(port, calls)))?;
        let dynamic = measure(calls, || client.block_on(dynamic_calls(&functions, calls)))?;
        let hand_many = measure(calls * 4, || client.block_on(static_concurrent(port, calls * 4, LANES)))?;
        let batches = measure(calls * 4, || client.block_on(dynamic_batches(&functions, calls * 4, BATCH)))?;
        let rule = measure(calls * 4, || client.block_on(rule_calls(&functions, calls * 4, RULE)))?;
        let plain = measure(calls * 4, || client.block_on(rule_calls(&functions, calls * 4, RULE_BUILT_IN)))?;
        // The call's share of the rule: the rule's CPU less that of the same rule without the call.
        let call_in_rule = Figure { rate: rule.rate, cpu_us: rule.cpu_us - plain.cpu_us };
        rows.push(Round { hand, dynamic, hand_many, batches, rule, call_in_rule });
    }
    // Cost: how much more the callers' CPU per call than the hand-written client's.
    let cost = |hand: &Figure, other: &Figure| other.cpu_us / hand.cpu_us - 1.0;
    let cell = |hand: &Figure, other: &Figure| {
        format!("{:.0} calls/s, {:.1} µs ({:+.0}%)", other.rate, other.cpu_us, cost(hand, other) * 100.0)
    };
    println!("Calls per second, and the callers' CPU time per call (cost against the hand-written client).\n");
    println!("One call in flight:\n");
    println!("| round | hand-written tonic client | oort-external `Function::call` |");
    println!("|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        println!("| {i} | {:.0} calls/s, {:.1} µs | {} |", r.hand.rate, r.hand.cpu_us, cell(&r.hand, &r.dynamic));
    }
    println!("\nConcurrent ({LANES} in flight; batches of {BATCH} events):\n");
    println!(
        "| round | hand-written tonic client, {LANES} tasks | `Function::call_batch` | rule `{RULE}` | the call in the \
         rule: less `{RULE_BUILT_IN}` |"
    );
    println!("|---|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        println!(
            "| {i} | {:.0} calls/s, {:.1} µs | {} | {} | {:.1} µs ({:+.0}%) |",
            r.hand_many.rate,
            r.hand_many.cpu_us,
            cell(&r.hand_many, &r.batches),
            cell(&r.hand_many, &r.rule),
            r.call_in_rule.cpu_us,
            cost(&r.hand_many, &r.call_in_rule) * 100.0
        );
    }
    let median = |of: &dyn Fn(&Round) -> &Figure| {
        let mut costs: Vec<f64> = rows.iter().map(|r| cost(&r.hand_many, of(r))).collect();
        costs.sort_by(f64::total_cmp);
        costs[costs.len() / 2] * 100.0
    };
    println!(
        "\nMedian cost over {rounds} rounds (goal ≤ +20%): `Function::call_batch` {:+.0}%, the rule {:+.0}%, the call in \
         the rule {:+.0}%",
        median(&|r| &r.batches),
        median(&|r| &r.rule),
        median(&|r| &r.call_in_rule)
    );
    Ok(())
}
