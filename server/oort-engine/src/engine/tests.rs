//! Tests of the parent module.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::connector::{ConnectorError, Source, SourceConfig, SourceEvent, SourceFactory};
use crate::rule::{ActionDefinition, RestartStrategy, RuleOptions};
use crate::runtime::RuleState;

/// A source that dies at once, counting how often it was built.
struct Dying(Arc<AtomicU32>);

struct DyingSource;

impl SourceFactory for Dying {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(DyingSource))
    }
}

#[async_trait]
impl Source for DyingSource {
    async fn run(
        self: Box<Self>,
        _: crate::connector::SourceOutput,
        _: CancellationToken,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::External("broker gone".into()))
    }
}

/// An engine running rule `r`, `SELECT * FROM s` into a sink that drops,
/// over a stream of `source`, restarted per `restart`.
async fn start_restarting(source: Arc<dyn SourceFactory>, restart: RestartStrategy) -> Engine {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("test", source);
    connectors.register_sink("log", Arc::new(NullSink));
    let engine = Engine::new(Arc::new(FunctionRegistry::new()), connectors);
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s () WITH (TYPE="test", DATASOURCE="s")"#).unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: "r".into(),
        sql: "SELECT * FROM s".into(),
        actions: vec![ActionDefinition { sink_type: "log".into(), props: Default::default() }],
        options: RuleOptions { restart, ..Default::default() },
    };
    engine.start(engine.plan(&def, &lookup).unwrap()).await.unwrap();
    engine
}

#[tokio::test]
async fn a_dying_source_is_restarted_per_the_strategy_then_the_rule_fails() {
    let builds = Arc::new(AtomicU32::new(0));
    let restart = RestartStrategy { attempts: 2, delay_ms: 5, multiplier: 2.0, max_delay_ms: 50, jitter_factor: 0.0 };
    let engine = start_restarting(Arc::new(Dying(Arc::clone(&builds))), restart).await;
    let status = loop {
        let status = engine.status("r").await.unwrap();
        if status.state != RuleState::Running {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(status.state, RuleState::Failed);
    assert_eq!(status.restart_count, 2);
    assert_eq!(builds.load(Ordering::SeqCst), 3, "built once, then once per restart");
    assert_eq!(status.last_error.as_deref(), Some("broker gone"));
    assert_eq!(status.operators[0].exceptions_total, 3);
}

/// A source that hands three numbered events to the rule, then dies; records
/// where each of its builds was told to resume.
struct Numbered(Arc<std::sync::Mutex<Vec<Option<u64>>>>);

struct NumberedSource(u64);

impl SourceFactory for Numbered {
    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        self.0.lock().unwrap().push(config.resume_after);
        Ok(Box::new(NumberedSource(config.resume_after.unwrap_or(0))))
    }
}

#[async_trait]
impl Source for NumberedSource {
    async fn run(
        self: Box<Self>,
        out: crate::connector::SourceOutput,
        _: CancellationToken,
    ) -> Result<(), ConnectorError> {
        for position in self.0 + 1..=self.0 + 3 {
            let mut event = SourceEvent::map(crate::value::Map::new());
            event.position = Some(position);
            out.send_waiting(event).await.map_err(|e| ConnectorError::External(e.to_string()))?;
        }
        Err(ConnectorError::External("broker gone".into()))
    }
}

#[tokio::test]
async fn a_source_restarted_inside_a_running_rule_goes_on_after_what_the_rule_has() {
    let builds = Arc::new(std::sync::Mutex::new(Vec::new()));
    let restart = RestartStrategy { attempts: 2, delay_ms: 5, multiplier: 1.0, max_delay_ms: 5, jitter_factor: 0.0 };
    let engine = start_restarting(Arc::new(Numbered(Arc::clone(&builds))), restart).await;
    while engine.status("r").await.unwrap().state == RuleState::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*builds.lock().unwrap(), [None, Some(3), Some(6)]);
}

/// Plans and starts rule `id` over the stream `s (i BIGINT)` of source type
/// `source`, with one action of sink type `sink`.
async fn start(engine: &Engine, source: &str, id: &str, sql: &str, sink: &str) {
    let ddl = format!(r#"CREATE STREAM s (i BIGINT) WITH (TYPE="{source}", DATASOURCE="s")"#);
    let stream = oort_sql::parse_stream_ddl(&ddl).unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: id.into(),
        sql: sql.into(),
        actions: vec![ActionDefinition { sink_type: sink.into(), props: Default::default() }],
        // These tests count every event: the source waits rather than drops.
        options: RuleOptions { buffer_full: crate::BufferFull::Block, ..RuleOptions::default() },
    };
    engine.start(engine.plan(&def, &lookup).unwrap()).await.unwrap();
}

#[tokio::test]
async fn status_lists_the_operators_explain_shows_and_counts_each_stage() {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(30));
    let sink = Recording::default();
    connectors.register_sink("rec", Arc::new(sink.clone()));
    let functions = Arc::new(FunctionRegistry::new());
    crate::functions::register_builtins(&functions);
    let engine = Engine::new(functions, connectors);
    let sql = "SELECT i % 3 AS k, count(*) AS i FROM s WHERE i >= 0 GROUP BY i % 3, COUNTWINDOW(30) \
                   HAVING count(*) > 5 ORDER BY k DESC LIMIT 2";
    start(&engine, "burst", "r", sql, "rec").await;
    let started = std::time::Instant::now();
    while sink.0.lock().unwrap().0.is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let explained: Vec<String> = engine
        .explain("r")
        .await
        .unwrap()
        .lines()
        .map(|line| line.trim().split(':').next().unwrap().to_owned())
        .collect();
    let status = engine.status("r").await.unwrap();
    engine.stop_all().await;
    let names: Vec<&str> = status.operators.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, explained);
    let counts = |name: &str| {
        let op = status.operators.iter().find(|o| o.name == name).unwrap();
        (op.records_in_total, op.records_out_total)
    };
    assert_eq!(counts("op_aggregate_0"), (30, 3), "30 rows in three groups");
    assert_eq!(counts("op_having_0"), (3, 3));
    assert_eq!(counts("op_order_0"), (3, 3));
    assert_eq!(counts("op_limit_0"), (3, 2));
    assert_eq!(sink.0.lock().unwrap().0, vec![vec![10, 10]], "two of the three groups of ten, LIMIT 2");
}

/// A sink that never finishes delivering.
struct Stuck;

impl crate::connector::SinkFactory for Stuck {
    fn build(&self, _: &crate::connector::SinkConfig) -> Result<Box<dyn crate::connector::Sink>, ConnectorError> {
        Ok(Box::new(Stuck))
    }
}

#[async_trait]
impl crate::connector::Sink for Stuck {
    async fn collect(&mut self, _: &[crate::value::Map]) -> Result<(), ConnectorError> {
        std::future::pending().await
    }
}

/// Runs `SELECT i FROM s` over a burst of `events` into a stuck sink, with
/// a buffer of 16 events full as `when_full` says; returns the source's
/// counters once the burst is pushed (or after 2 s).
async fn burst_into_a_stuck_sink(events: i64, when_full: crate::BufferFull) -> crate::OperatorStatus {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(events));
    connectors.register_sink("stuck", Arc::new(Stuck));
    let engine = Engine::new(Arc::new(FunctionRegistry::new()), connectors);
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s (i BIGINT) WITH (TYPE="burst", DATASOURCE="s")"#);
    let stream = stream.unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: "r".into(),
        sql: "SELECT i FROM s".into(),
        actions: vec![ActionDefinition { sink_type: "stuck".into(), props: Default::default() }],
        options: RuleOptions { buffer_length: 16, buffer_full: when_full, ..RuleOptions::default() },
    };
    engine.start(engine.plan(&def, &lookup).unwrap()).await.unwrap();
    let started = std::time::Instant::now();
    let source = loop {
        let source = engine.status("r").await.unwrap().operators.remove(0);
        if source.records_in_total + source.records_dropped_total >= events as u64 - 100
            || started.elapsed() > Duration::from_secs(2)
        {
            break source;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    engine.stop_all().await;
    source
}

#[tokio::test]
async fn a_full_buffer_drops_for_that_rule_and_counts_or_holds_the_source_as_the_rule_chose() {
    let dropping = burst_into_a_stuck_sink(5_000, crate::BufferFull::Drop).await;
    assert!(dropping.records_dropped_total >= 4_000, "the source never waited: {dropping:?}");
    let blocking = burst_into_a_stuck_sink(5_000, crate::BufferFull::Block).await;
    assert_eq!(blocking.records_dropped_total, 0);
    assert!(blocking.records_in_total < 1_000, "the source waits for the stuck rule: {blocking:?}");
}

/// Emits `{"i": k}` for k in 0..count, `every` apart (all at once when
/// zero), then stays open.
#[derive(Clone, Copy)]
struct Counting {
    count: i64,
    every: Duration,
}

/// `count` events at once.
fn burst(count: i64) -> Arc<Counting> {
    Arc::new(Counting { count, every: Duration::ZERO })
}

impl SourceFactory for Counting {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(*self))
    }
}

#[async_trait]
impl Source for Counting {
    async fn run(
        self: Box<Self>,
        out: crate::connector::SourceOutput,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        for i in 0..self.count {
            let fields = crate::value::Map::from([(Arc::from("i"), crate::value::Value::Int(i))]);
            let _ = out.send(SourceEvent::map(fields)).await;
            if !self.every.is_zero() {
                tokio::time::sleep(self.every).await;
            }
        }
        cancel.cancelled().await;
        Ok(())
    }
}

/// Records the `i` of every row of each delivered result; fails call
/// number `.1` (none when 0).
#[derive(Clone, Default)]
struct Recording(Arc<std::sync::Mutex<(Vec<Vec<i64>>, u32)>>, u32);

impl crate::connector::SinkFactory for Recording {
    fn build(&self, _: &crate::connector::SinkConfig) -> Result<Box<dyn crate::connector::Sink>, ConnectorError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl crate::connector::Sink for Recording {
    async fn collect(&mut self, rows: &[crate::value::Map]) -> Result<(), ConnectorError> {
        let mut state = self.0.lock().unwrap();
        state.1 += 1;
        if state.1 == self.1 {
            return Err(ConnectorError::External("flaky".into()));
        }
        state.0.push(rows.iter().map(|r| r["i"].as_i64().unwrap()).collect());
        Ok(())
    }
}

#[tokio::test]
async fn each_result_is_one_sink_message_delivered_once_even_in_batches_and_after_an_error() {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(600));
    let sink = Recording(Arc::default(), 3);
    connectors.register_sink("rec", Arc::new(sink.clone()));
    let engine = Engine::new(Arc::new(FunctionRegistry::new()), connectors);
    start(&engine, "burst", "r", "SELECT i FROM s WHERE i % 2 = 0", "rec").await;
    let delivered = loop {
        let delivered = sink.0.lock().unwrap().0.clone();
        if delivered.len() >= 300 {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expected: Vec<Vec<i64>> = (0..600).step_by(2).map(|i| vec![i]).collect();
    assert_eq!(delivered, expected, "one message per event, in order, none lost or repeated");
    let status = engine.status("r").await.unwrap();
    let sink_status = status.operators.last().unwrap();
    assert_eq!((sink_status.records_in_total, sink_status.records_out_total), (300, 300));
    assert_eq!(sink_status.exceptions_total, 1);
    assert_eq!(sink.0.lock().unwrap().0.len(), 300, "nothing after the last result");
}

/// A function of an external service `svc`.
struct Ext(crate::FunctionMeta);

impl crate::Function for Ext {
    fn meta(&self) -> &crate::FunctionMeta {
        &self.0
    }
    fn call(
        &self,
        _: &crate::CallContext<'_>,
        args: &[crate::value::Value],
    ) -> Result<crate::value::Value, crate::FunctionError> {
        Ok(args.first().cloned().unwrap_or_default())
    }
}

#[tokio::test]
async fn rules_calling_names_the_running_rules_that_call_an_owners_functions() {
    let functions = Arc::new(FunctionRegistry::new());
    let mut meta = crate::FunctionMeta::builtin("ext", crate::FunctionKind::Scalar, 0, None, "");
    (meta.origin, meta.owner) = (crate::FunctionOrigin::External, "svc".into());
    functions.register(Arc::new(Ext(meta)));
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(0));
    connectors.register_sink("log", Arc::new(NullSink));
    let engine = Engine::new(functions, connectors);
    for (id, sql) in
        [("a", "SELECT ext(i) AS x FROM s"), ("b", "SELECT i FROM s WHERE ext(i) > 1"), ("c", "SELECT i FROM s")]
    {
        start(&engine, "burst", id, sql, "log").await;
    }
    assert_eq!(engine.rules_calling(crate::FunctionOrigin::External, "svc").await, ["a", "b"]);
    assert!(engine.rules_calling(crate::FunctionOrigin::External, "other").await.is_empty());
    assert!(engine.rules_calling(crate::FunctionOrigin::Native, "svc").await.is_empty());
    engine.stop_all().await;
}

/// An external function answering its first batch after 300 ms and every
/// other after 20 ms, counting how many batches it has at once; awaited
/// ([`Calling::Remote`](crate::Calling::Remote)), or holding the thread that
/// makes the call ([`Calling::Blocking`](crate::Calling::Blocking), as a
/// portable plugin's does); panicking on a batch
/// holding `panic_on`, if set. Counts its calls of a single row too.
struct Slow {
    meta: crate::FunctionMeta,
    asynchronous: bool,
    panic_on: Option<i64>,
    batches: AtomicU32,
    blocked: AtomicU32,
    single: AtomicU32,
    now: Arc<AtomicU32>,
    most: Arc<AtomicU32>,
}

type Args<'a> = &'a [&'a [crate::value::Value]];

impl Slow {
    fn new(asynchronous: bool, panic_on: Option<i64>) -> Arc<Self> {
        let mut meta = crate::FunctionMeta::builtin("slow", crate::FunctionKind::Scalar, 1, Some(1), "");
        (meta.origin, meta.owner) = (crate::FunctionOrigin::External, "svc".into());
        meta.calling = if asynchronous { crate::Calling::Remote } else { crate::Calling::Blocking };
        let [batches, blocked, single] = [0, 0, 0].map(AtomicU32::new);
        let (now, most) = (Arc::default(), Arc::default());
        Arc::new(Self { meta, asynchronous, panic_on, batches, blocked, single, now, most })
    }

    /// Counts a batch in; its delay and answers.
    fn start(&self, rows: Args<'_>) -> (Duration, crate::BatchAnswers) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let first = self.batches.fetch_add(1, Ordering::SeqCst) == 0;
        let panics = self.panic_on.is_some_and(|p| rows.iter().any(|args| args[0].as_i64() == Some(p)));
        assert!(!panics, "a function that panics");
        (Duration::from_millis(if first { 300 } else { 20 }), rows.iter().map(|args| Ok(args[0].clone())).collect())
    }
}

impl crate::Function for Slow {
    fn meta(&self) -> &crate::FunctionMeta {
        &self.meta
    }
    fn call(
        &self,
        _: &crate::CallContext<'_>,
        args: &[crate::value::Value],
    ) -> Result<crate::value::Value, crate::FunctionError> {
        self.single.fetch_add(1, Ordering::SeqCst);
        Ok(args[0].clone())
    }
    /// Awaited; or, not asynchronous, blocking the thread that polls it.
    fn call_batch(&self, _: &crate::CallContext<'_>, rows: Args<'_>) -> crate::BatchCall {
        let (delay, answers) = self.start(rows);
        let now = Arc::clone(&self.now);
        if self.asynchronous {
            return Box::pin(async move {
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                answers
            });
        }
        self.blocked.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            std::thread::sleep(delay);
            now.fetch_sub(1, Ordering::SeqCst);
            answers
        })
    }
}

/// Runs `sql` over 40 events 2 ms apart; what the sink got, in order, once
/// it got the last event.
async fn run_slow(slow: &Arc<Slow>, sql: &str) -> (Engine, Vec<Vec<i64>>) {
    let functions = Arc::new(FunctionRegistry::new());
    crate::functions::register_builtins(&functions);
    functions.register(Arc::clone(slow) as Arc<dyn crate::Function>);
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("trickle", Arc::new(Counting { count: 40, every: Duration::from_millis(2) }));
    let sink = Recording::default();
    connectors.register_sink("rec", Arc::new(sink.clone()));
    let engine = Engine::new(functions, connectors);
    start(&engine, "trickle", "r", sql, "rec").await;
    let started = std::time::Instant::now();
    let delivered = loop {
        let delivered = sink.0.lock().unwrap().0.clone();
        if delivered.last().and_then(|r| r.last()) == Some(&39) || started.elapsed() > Duration::from_secs(10) {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    (engine, delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_calling_a_service_overlap_and_their_results_keep_the_order_of_events() {
    for asynchronous in [false, true] {
        let slow = Slow::new(asynchronous, None);
        let (engine, delivered) = run_slow(&slow, "SELECT slow(i) AS i FROM s").await;
        engine.stop_all().await;
        let expected: Vec<Vec<i64>> = (0..40).map(|i| vec![i]).collect();
        assert_eq!(delivered, expected, "in the order of the events, although the first batch answered last");
        let most = slow.most.load(Ordering::SeqCst);
        assert!(most >= 2, "batches overlapped: at most {most} at once");
        assert!(most as usize <= crate::runtime::PIPELINE_DEPTH, "{most} batches at once");
        let blocked = slow.blocked.load(Ordering::SeqCst);
        if asynchronous {
            assert_eq!(blocked, 0, "an asynchronous function is awaited, never blocked on");
        } else {
            assert_eq!(blocked, slow.batches.load(Ordering::SeqCst), "every batch blocked the thread making it");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_awaits_the_calls_of_its_projection_and_of_its_where() {
    let slow = Slow::new(true, None);
    let sql = "SELECT slow(i) AS i FROM s WHERE slow(i) >= 0 GROUP BY COUNTWINDOW(10)";
    let (engine, delivered) = run_slow(&slow, sql).await;
    engine.stop_all().await;
    let expected: Vec<Vec<i64>> = (0..4).map(|w| (w * 10..w * 10 + 10).collect()).collect();
    assert_eq!(delivered, expected, "four windows of ten rows");
    assert!(slow.batches.load(Ordering::SeqCst) >= 8, "WHERE and the projection called slow() per batch");
    assert_eq!(slow.blocked.load(Ordering::SeqCst), 0, "awaited, never blocked on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_under_a_condition_are_awaited_in_batches_of_the_rows_that_reach_them() {
    let slow = Slow::new(true, None);
    let sql = "SELECT CASE WHEN i % 2 = 0 THEN slow(i) ELSE i END AS i FROM s WHERE i < 0 OR slow(i) >= 0";
    let (engine, delivered) = run_slow(&slow, sql).await;
    engine.stop_all().await;
    assert_eq!(delivered, (0..40).map(|i| vec![i]).collect::<Vec<_>>());
    assert!(slow.batches.load(Ordering::SeqCst) >= 2, "slow() was called in batches");
    assert_eq!(slow.single.load(Ordering::SeqCst), 0, "never row by row");
    assert_eq!(slow.blocked.load(Ordering::SeqCst), 0, "awaited, never blocked on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_groups_of_a_window_await_the_calls_of_having_projection_and_order_by_in_batches() {
    let slow = Slow::new(true, None);
    let sql = "SELECT slow(max(i)) AS i FROM s GROUP BY COUNTWINDOW(10), slow(i % 2) \
                   HAVING slow(count(*)) = 5 ORDER BY slow(max(s.i))";
    let (engine, delivered) = run_slow(&slow, sql).await;
    engine.stop_all().await;
    let expected: Vec<Vec<i64>> = (0..4).map(|w| vec![w * 10 + 8, w * 10 + 9]).collect();
    assert_eq!(delivered, expected, "per window, the maximum of the even and of the odd rows");
    // Per window: GROUP BY, HAVING, the projection and ORDER BY, one batch each.
    assert_eq!(slow.batches.load(Ordering::SeqCst), 16);
    assert_eq!(slow.single.load(Ordering::SeqCst), 0, "never group by group");
    assert_eq!(slow.blocked.load(Ordering::SeqCst), 0, "awaited, never blocked on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_in_an_aggregates_arguments_are_awaited_in_one_batch_a_window() {
    let slow = Slow::new(true, None);
    let (engine, delivered) = run_slow(&slow, "SELECT max(slow(i)) AS i FROM s GROUP BY COUNTWINDOW(10)").await;
    engine.stop_all().await;
    assert_eq!(delivered, vec![vec![9], vec![19], vec![29], vec![39]]);
    assert_eq!(slow.batches.load(Ordering::SeqCst), 4, "one batch of ten rows a window");
    assert_eq!(slow.single.load(Ordering::SeqCst), 0, "never row by row");
    assert_eq!(slow.blocked.load(Ordering::SeqCst), 0, "awaited, never blocked on");
}

#[tokio::test]
async fn a_window_larger_than_a_grouping_chunk_loses_no_row() {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(10_000));
    let sink = Recording::default();
    connectors.register_sink("rec", Arc::new(sink.clone()));
    let functions = Arc::new(FunctionRegistry::new());
    crate::functions::register_builtins(&functions);
    let engine = Engine::new(functions, connectors);
    start(&engine, "burst", "r", "SELECT count(*) AS i FROM s GROUP BY COUNTWINDOW(10000), i % 3", "rec").await;
    let started = std::time::Instant::now();
    let mut counts = loop {
        let counts: Vec<i64> = sink.0.lock().unwrap().0.concat();
        if counts.len() >= 3 || started.elapsed() > Duration::from_secs(10) {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    engine.stop_all().await;
    counts.sort_unstable();
    assert_eq!(counts, vec![3333, 3333, 3334], "every row of the window in its group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_batch_that_panics_loses_that_batch_not_the_rule() {
    let slow = Slow::new(true, Some(2));
    let (engine, delivered) = run_slow(&slow, "SELECT slow(i) AS i FROM s").await;
    let status = engine.status("r").await.unwrap();
    engine.stop_all().await;
    let got: Vec<i64> = delivered.concat();
    assert!(!got.contains(&2) && got.contains(&0) && got.contains(&39), "the rest went on: {got:?}");
    let project = status.operators.iter().find(|o| o.name == "op_project_0").unwrap();
    assert_eq!(project.exceptions_total, 1);
    assert!(project.last_exception.as_ref().is_some_and(|(e, _)| e.contains("panicked")), "{project:?}");
    assert_eq!(status.state, RuleState::Running);
}

struct NullSink;

impl crate::connector::SinkFactory for NullSink {
    fn build(&self, _: &crate::connector::SinkConfig) -> Result<Box<dyn crate::connector::Sink>, ConnectorError> {
        Ok(Box::new(Null))
    }
}

struct Null;

#[async_trait]
impl crate::connector::Sink for Null {
    async fn collect(&mut self, _: &[crate::value::Map]) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Records, for each result, the number the sink was handed with it, if any.
#[derive(Clone, Default)]
struct Numbers(Arc<std::sync::Mutex<Vec<Option<u64>>>>);

impl crate::connector::SinkFactory for Numbers {
    fn build(&self, _: &crate::connector::SinkConfig) -> Result<Box<dyn crate::connector::Sink>, ConnectorError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl crate::connector::Sink for Numbers {
    async fn collect(&mut self, _: &[crate::value::Map]) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().push(None);
        Ok(())
    }

    async fn collect_numbered(&mut self, sequence: u64, _: &[crate::value::Map]) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().push(Some(sequence));
        Ok(())
    }
}

#[tokio::test]
async fn a_rule_that_does_not_restore_its_checkpoints_hands_its_sinks_no_result_numbers() {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("burst", burst(5));
    let sink = Numbers::default();
    connectors.register_sink("numbers", Arc::new(sink.clone()));
    let engine = Engine::new(Arc::new(FunctionRegistry::new()), connectors);
    start(&engine, "burst", "r", "SELECT i FROM s", "numbers").await;
    while sink.0.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Numbered from 0 again at each start, they would make receivers drop new results as repeats.
    assert_eq!(*sink.0.lock().unwrap(), [None; 5]);
}

/// A partitioned source (by `device`) whose events say which key they were
/// produced under: `(device, message key)`.
struct Keyed(&'static [(&'static str, &'static str)]);

impl SourceFactory for Keyed {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(Keyed(self.0)))
    }

    fn partitioning(&self, _: &SourceConfig) -> Option<crate::Partitioning> {
        Some(crate::Partitioning::ByKey("device".into()))
    }
}

#[async_trait]
impl Source for Keyed {
    async fn run(self: Box<Self>, out: crate::SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        for (device, key) in self.0 {
            let fields = crate::value::Map::from([(Arc::from("device"), crate::value::Value::from(*device))]);
            let meta = Arc::new(BTreeMap::from([(crate::MESSAGE_KEY_META.to_owned(), (*key).to_owned())]));
            let _ = out.send(SourceEvent::new(crate::Payload::Map(fields), meta)).await;
        }
        cancel.cancelled().await;
        Ok(())
    }
}

#[tokio::test]
async fn an_event_whose_message_key_is_not_its_partition_key_is_counted() {
    let connectors = Arc::new(ConnectorRegistry::new());
    connectors.register_source("keyed", Arc::new(Keyed(&[("a", "a"), ("b", "c"), ("d", "d")])));
    connectors.register_sink("numbers", Arc::new(Numbers::default()));
    let engine = Engine::new(Arc::new(FunctionRegistry::new()), connectors);
    let ddl = r#"CREATE STREAM s (device STRING) WITH (TYPE="keyed", DATASOURCE="s", PARTITION_KEY="device")"#;
    let stream = oort_sql::parse_stream_ddl(ddl).unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: "r".into(),
        sql: "SELECT device FROM s".into(),
        actions: vec![ActionDefinition { sink_type: "numbers".into(), props: Default::default() }],
        options: RuleOptions::default(),
    };
    let plan = engine.plan(&def, &lookup).unwrap();
    assert_eq!(plan.distribution, crate::Distribution::Split { key: Some("device".into()) });
    engine.start(plan).await.unwrap();
    let decoder = loop {
        let status = engine.status("r").await.unwrap();
        let decoder = status.operators.iter().find(|o| o.name == "op_decoder_0").cloned();
        if let Some(decoder) = decoder.filter(|d| d.records_out_total == 3) {
            break decoder;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    engine.stop_all().await;
    // Counted, not dropped: the event still goes through.
    assert_eq!(decoder.exceptions_total, 1);
    let last = decoder.last_exception.as_ref().map(|(message, _)| message.as_str()).unwrap_or_default();
    assert!(last.contains(r#"keyed "c" has device "b""#), "{decoder:?}");
}
