//! The engine benchmark: rules run in this process on one core (a
//! current-thread runtime), fed by a generator source of pre-encoded JSON events
//! and drained by a counting sink, so that what is measured is the engine:
//! decode → filter → window → aggregate → project → sink.
//!
//! Each figure comes with the pass-through rule `SELECT * FROM demo` measured
//! in the same run as its baseline; the window rule with checkpoints (qos 1)
//! comes with the same rule at qos 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use async_trait::async_trait;
use oort_engine::{
    ActionDefinition, CheckpointStore, ConnectorError, ConnectorRegistry, Engine, FunctionRegistry, Guarantee, Map,
    Payload, RuleDefinition, RuleOptions, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceEvent,
    SourceFactory, SourceOutput, SourcePositions, TimeMode, WindowOperator,
};
use tokio_util::sync::CancellationToken;

pub(crate) const STREAM: &str = r#"CREATE STREAM demo (temperature FLOAT, humidity BIGINT, deviceId STRING) WITH (TYPE="generator", DATASOURCE="demo")"#;

/// Emits the same pre-encoded events, in order, as fast as the rule takes them.
pub(crate) struct GeneratorFactory(pub(crate) Arc<Vec<Vec<u8>>>);

struct Generator(Arc<Vec<Vec<u8>>>);

impl SourceFactory for GeneratorFactory {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(Generator(Arc::clone(&self.0))))
    }

    /// Its events are in memory and numbered: a rule with qos >= 1 takes
    /// checkpoints, and keeping the events costs nothing, so that what is
    /// measured is the checkpoints themselves.
    fn positions(&self, _: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        Ok(Some(Arc::new(InMemory)))
    }
}

/// The positions of events that are all in memory.
struct InMemory;

#[async_trait]
impl SourcePositions for InMemory {
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn release(&self, _: u64) {}

    fn position(&self) -> Option<u64> {
        None
    }
}

#[async_trait]
impl Source for Generator {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        for (position, payload) in self.0.iter().enumerate() {
            let mut event = SourceEvent::new(Payload::Bytes(payload.clone()), Arc::default());
            event.position = Some(position as u64 + 1);
            if out.send_waiting(event).await.is_err() || cancel.is_cancelled() {
                break;
            }
        }
        // Stay open: a source that ends would make the rule restart it.
        cancel.cancelled().await;
        Ok(())
    }
}

/// Counts the rows it receives.
pub(crate) struct CountFactory(pub(crate) Arc<AtomicU64>);

struct Count(Arc<AtomicU64>);

impl SinkFactory for CountFactory {
    fn build(&self, _: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Count(Arc::clone(&self.0))))
    }
}

#[async_trait]
impl Sink for Count {
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError> {
        self.0.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

pub(crate) fn events(count: usize, keys: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            // Temperatures spread over 0..40, so `temperature > 20` keeps about half.
            let temperature = (i * 7919 % 4000) as f64 / 100.0;
            format!(r#"{{"temperature":{temperature},"humidity":{},"deviceId":"dev{}"}}"#, i % 100, i % keys)
                .into_bytes()
        })
        .collect()
}

/// Runs one rule over the events; returns events per second through the operator
/// named `until_operator` (all events must reach it).
async fn measure(sql: &str, payloads: &Arc<Vec<Vec<u8>>>, until_operator: &str) -> Result<f64> {
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    measure_with(functions, sql, payloads, until_operator).await
}

/// [`measure`] with the functions of `functions` (e.g. with a plugin's).
pub(crate) async fn measure_with(
    functions: Arc<FunctionRegistry>,
    sql: &str,
    payloads: &Arc<Vec<Vec<u8>>>,
    until_operator: &str,
) -> Result<f64> {
    measure_rule(functions, sql, RuleOptions::default(), None, payloads, until_operator).await
}

/// [`measure`] with rule options and, for checkpoints, a store.
async fn measure_rule(
    functions: Arc<FunctionRegistry>,
    sql: &str,
    options: RuleOptions,
    checkpoints: Option<CheckpointStore>,
    payloads: &Arc<Vec<Vec<u8>>>,
    until_operator: &str,
) -> Result<f64> {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("generator", Arc::new(GeneratorFactory(Arc::clone(payloads))));
    connectors.register_sink("count", Arc::new(CountFactory(Arc::default())));
    let mut engine = Engine::new(functions, connectors);
    if let Some(store) = checkpoints {
        engine = engine.with_checkpoints(store);
    }
    let stream = oort_sql::parse_stream_ddl(STREAM)?;
    let lookup = move |name: &str| (name == "demo").then(|| stream.clone());
    let def = RuleDefinition {
        id: "bench".into(),
        sql: sql.into(),
        actions: vec![ActionDefinition { sink_type: "count".into(), props: Default::default() }],
        options,
    };
    let plan = engine.plan(&def, &lookup)?;
    let started = Instant::now();
    engine.start(plan).await?;
    let total = payloads.len() as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Some(status) = engine.status("bench").await else { bail!("the rule stopped") };
        let Some(op) = status.operators.iter().find(|o| o.name == until_operator) else {
            bail!("no operator {until_operator}")
        };
        if op.records_in_total + op.exceptions_total >= total {
            let elapsed = started.elapsed();
            engine.stop("bench").await;
            return Ok(total as f64 / elapsed.as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{until_operator} saw {} of {total} events after 120 s", op.records_in_total);
        }
    }
}

/// Prints the engine figures as a markdown table.
pub async fn run(events_per_run: usize, keys: usize) -> Result<()> {
    let payloads = Arc::new(events(events_per_run, keys));
    let baseline = measure("SELECT * FROM demo", &payloads, "op_project_0").await?;
    let filter = measure(
        "SELECT temperature * 1.8 + 32 AS f, deviceId FROM demo WHERE temperature > 20",
        &payloads,
        "op_filter_0",
    )
    .await?;
    // Windows close on natural-time boundaries, so the time to the last result
    // includes waiting up to a window length for the last one: the figure is the
    // rate at which the window operator takes events in (every window but the
    // last is closed and aggregated on the way, in the same task).
    let window = measure(WINDOW, &payloads, "op_window_0").await?;
    // Stateful per event (a state per device) and one event to several rows.
    let lag = measure(LAG, &payloads, "op_project_0").await?;
    let unnest = measure(UNNEST, &payloads, "op_project_0").await?;
    let checkpoints = tempfile::tempdir()?;
    let functions = Arc::new(FunctionRegistry::new());
    oort_engine::register_builtins(&functions);
    let qos1 = RuleOptions { qos: Guarantee::AtLeastOnce, checkpoint_interval_ms: 1000, ..Default::default() };
    let store = CheckpointStore::open(checkpoints.path())?;
    let checkpointed = measure_rule(functions, WINDOW, qos1, Some(store), &payloads, "op_window_0").await?;
    let costs = [100_000, 1_000_000].map(|rows| checkpoint_costs(rows, keys, checkpoints.path()));
    crate::out!("| rule (one core, {events_per_run} JSON events, {keys} keys) | events/s | ratio to pass-through |");
    crate::out!("|---|---|---|");
    crate::out!("| pass-through `SELECT * FROM demo` (baseline) | {baseline:.0} | 1.00 |");
    crate::out!("| filter + project | {filter:.0} | {:.2} |", filter / baseline);
    crate::out!("| TUMBLINGWINDOW(ss, 1) GROUP BY deviceId avg/max/count | {window:.0} | {:.2} |", window / baseline);
    crate::out!(
        "| the same, qos 1, a checkpoint every second | {checkpointed:.0} | {:.2} ({:.2} of qos 0) |",
        checkpointed / baseline,
        checkpointed / window
    );
    crate::out!("| `{LAG}` | {lag:.0} | {:.2} |", lag / baseline);
    crate::out!("| `{UNNEST}` (two rows an event) | {unnest:.0} | {:.2} |", unnest / baseline);
    let pass = "pass-through SELECT * FROM demo";
    crate::report::figure(format!("engine, one core: {pass}"), baseline, "events/s");
    for (name, rate) in [
        ("filter + project", filter),
        ("TUMBLINGWINDOW(ss, 1) GROUP BY deviceId", window),
        ("lag() OVER (PARTITION BY deviceId)", lag),
        ("unnest of two items", unnest),
    ] {
        crate::report::against(format!("engine, one core: {name}"), rate, "events/s", pass, baseline);
    }
    crate::report::against("engine, one core: the window at qos 1", checkpointed, "events/s", "qos 0", window);
    crate::out!();
    crate::out!(
        "| checkpoint of that window, {keys} keys | snapshot (the rule waits) | encoded | saved (write, sync, rename) | size | restored (read, check, decode) |"
    );
    crate::out!("|---|---|---|---|---|---|");
    for (rows, costs) in [100_000, 1_000_000].into_iter().zip(costs) {
        let Costs { snapshot, encode, save, restore, bytes } = costs?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        crate::out!(
            "| {rows} rows held | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MB | {:.1} ms |",
            ms(snapshot),
            ms(encode),
            ms(save),
            bytes as f64 / 1e6,
            ms(restore)
        );
    }
    Ok(())
}

const LAG: &str = "SELECT lag(temperature) OVER (PARTITION BY deviceId) AS previous, temperature FROM demo";

const UNNEST: &str = "SELECT unnest(array_create(temperature, humidity)) AS v, deviceId FROM demo";

const WINDOW: &str = "SELECT deviceId, avg(temperature) AS a, max(temperature) AS m, count(*) AS n FROM demo GROUP BY deviceId, TUMBLINGWINDOW(ss, 1)";

/// What a checkpoint of the window rule's state costs.
struct Costs {
    /// Taking the window's state (the rule waits for it).
    snapshot: Duration,
    /// Encoding it (on another thread).
    encode: Duration,
    /// Writing, syncing and renaming its file (another thread).
    save: Duration,
    /// From the file to a window operator that holds the rows again.
    restore: Duration,
    /// The file's size.
    bytes: usize,
}

/// The costs of a checkpoint of the window rule holding `rows` of the
/// benchmark's events (over `keys` devices), saved in `dir`.
fn checkpoint_costs(rows: usize, keys: usize, dir: &std::path::Path) -> Result<Costs> {
    let spec = oort_sql::WindowSpec::Tumbling { unit: oort_sql::TimeUnit::Second, length: 1 };
    let mut window = WindowOperator::new(&spec, TimeMode::Processing);
    let now = 1_800_000_000_000;
    for i in 0..rows {
        let fields = Map::from([
            (Arc::from("temperature"), oort_engine::Value::Float((i * 7919 % 4000) as f64 / 100.0)),
            (Arc::from("humidity"), oort_engine::Value::Int((i % 100) as i64)),
            (Arc::from("deviceId"), oort_engine::Value::from(format!("dev{}", i % keys))),
        ]);
        window.on_event(oort_engine::Row::new(fields, now), now);
    }
    let started = Instant::now();
    let taken = window.snapshot();
    let snapshot = started.elapsed();
    let started = Instant::now();
    let saved = taken.encode().map_err(anyhow::Error::msg)?;
    let encode = started.elapsed();
    let store = CheckpointStore::open(dir)?;
    let checkpoint = oort_engine::Checkpoint {
        id: 1,
        fingerprint: 0,
        taken_ms: now,
        position: Some(rows as u64),
        window: Some(saved),
        sinks: vec![None],
        results: 0,
        source_state: None,
        analytic: None,
    };
    let started = Instant::now();
    let bytes = store.save("costs", &checkpoint)?;
    let save = started.elapsed();
    let started = Instant::now();
    let Some(loaded) = store.load("costs")? else { bail!("the checkpoint was not saved") };
    let mut restored = WindowOperator::new(&spec, TimeMode::Processing);
    restored.restore(&loaded.window.unwrap_or_default()).map_err(anyhow::Error::msg)?;
    let restore = started.elapsed();
    if restored.buffered() != rows {
        bail!("{} rows restored of {rows}", restored.buffered());
    }
    Ok(Costs { snapshot, encode, save, restore, bytes })
}
