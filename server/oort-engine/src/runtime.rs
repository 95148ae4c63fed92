//! Running one rule: a supervised source task, the rule task that runs the
//! operators in order, and one task per sink. Every task is owned by the
//! rule's cancellation token and stops with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connector::{ConnectorRegistry, SinkConfig, SourceConfig, SourceEvent, SourceOutput};
use crate::expr::{CallMode, EvalEnv, EvalError, Expr, blocking, eval_rows};
use crate::group::GroupKey;
use crate::metrics::{OperatorMetrics, OperatorStatus, now_ms};
use crate::plan::RulePlan;
use crate::row::Row;
use crate::value::{Map, Value};
use crate::window::{TimeMode, WindowBatch, WindowOperator};
use crate::{decode, join};

/// Most events the rule task takes from its source buffer at once.
const RECEIVE_BATCH: usize = 256;

/// How many batches of events a rule that calls plugin processes or external
/// services evaluates at once (see [`run_pipelined`]).
pub(crate) const PIPELINE_DEPTH: usize = 4;

/// How long a stopping rule waits for its tasks to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How much memory a rule may hold for what others are slow to take, in
/// bytes as estimated in memory ([`crate::value::Value::approx_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLimits {
    /// Results one TailRule reader may fall behind by before it misses some.
    pub tail_bytes: usize,
    /// Rows a rule's windows may hold; past it the oldest are dropped, counted
    /// in the window operator's `records_dropped_total` and its exceptions.
    pub window_bytes: usize,
}

impl Default for RuleLimits {
    fn default() -> Self {
        Self { tail_bytes: 64 << 20, window_bytes: 256 << 20 }
    }
}

/// The results of a rule for one batch of events, in order. Each result is
/// one message for a sink (one event's row, or one window's rows): results
/// travel in batches so that a fast stream costs one channel hand-off per
/// batch, not per event.
pub type Results = Arc<Vec<Vec<Map>>>;

/// The state of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleState {
    /// Running.
    Running,
    /// Stopped on request.
    Stopped,
    /// The source died and its restart attempts ran out.
    Failed,
}

/// What `GetRuleStatus` reports.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    /// State now.
    pub state: RuleState,
    /// The last error that restarted or stopped the source.
    pub last_error: Option<String>,
    /// When the rule started (Unix ms).
    pub start_time_ms: i64,
    /// How many times the source was restarted.
    pub restart_count: u32,
    /// Counters per operator, in pipeline order.
    pub operators: Vec<OperatorStatus>,
    /// Results that TailRule readers missed by falling behind.
    pub tail_missed: u64,
}

/// Shared between the rule's tasks and the status calls.
struct Shared {
    operators: Vec<Arc<OperatorMetrics>>,
    state: Mutex<(RuleState, Option<String>, u32)>,
    start_time_ms: i64,
}

/// The live copies of a rule's results that `TailRule` readers read, each
/// its own queue bounded in bytes. Nothing is queued while no one reads.
pub struct Tail {
    readers: Mutex<Vec<Arc<ReaderState>>>,
    /// Results that readers fell too far behind to get, since the rule started.
    missed: Arc<AtomicU64>,
    /// The most bytes of results one reader may have waiting.
    max_bytes: usize,
}

/// What a rule's task and one reader share.
struct ReaderState {
    tx: mpsc::UnboundedSender<(Results, usize)>,
    /// Bytes of the results queued and not read yet.
    queued: AtomicUsize,
    /// Results this reader missed; once above 0, nothing more is queued for it.
    lost: AtomicU64,
}

/// What a TailRule reader gets next.
#[derive(Debug)]
pub enum TailEvent {
    /// The next batch of results.
    Results(Results),
    /// The reader fell more than its byte budget behind and missed this many
    /// results (counted in the rule's status); it gets nothing more.
    Missed(u64),
    /// The rule stopped.
    Closed,
}

/// One reader of a rule's results.
pub struct TailReader {
    rx: mpsc::UnboundedReceiver<(Results, usize)>,
    state: Arc<ReaderState>,
    /// The rule's count, not the tail itself: a reader must not keep the
    /// tail alive, or its stream would not end when the rule stops.
    missed: Arc<AtomicU64>,
    /// The byte budget, for messages.
    pub max_bytes: usize,
}

impl TailReader {
    /// The next results; what was queued before a loss comes first, then the loss.
    pub async fn recv(&mut self) -> TailEvent {
        let next = match self.rx.try_recv() {
            Ok(next) => Some(next),
            Err(empty_or_closed) => {
                let lost = self.state.lost.load(Ordering::Relaxed);
                if lost > 0 {
                    self.missed.fetch_add(lost, Ordering::Relaxed);
                    return TailEvent::Missed(lost);
                }
                match empty_or_closed {
                    mpsc::error::TryRecvError::Disconnected => None,
                    // A loss needs something queued, so none can happen while this waits.
                    mpsc::error::TryRecvError::Empty => self.rx.recv().await,
                }
            }
        };
        match next {
            Some((results, bytes)) => {
                self.state.queued.fetch_sub(bytes, Ordering::Relaxed);
                TailEvent::Results(results)
            }
            None => TailEvent::Closed,
        }
    }
}

impl Tail {
    /// A tail whose readers may each have `max_bytes` of results waiting.
    fn new(max_bytes: usize) -> Self {
        Self { readers: Mutex::default(), missed: Arc::default(), max_bytes }
    }

    /// A new reader of the results.
    pub fn subscribe(&self) -> TailReader {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(ReaderState { tx, queued: AtomicUsize::new(0), lost: AtomicU64::new(0) });
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&state));
        TailReader { rx, state, missed: Arc::clone(&self.missed), max_bytes: self.max_bytes }
    }

    /// Queues a batch of results for every reader with room for it (one with
    /// nothing queued always has); a reader without room misses them, and
    /// everything after. Readers that are gone are forgotten.
    fn send(&self, results: &Results) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.is_empty() {
            return;
        }
        let bytes: usize = results.iter().flatten().map(crate::value::map_approx_bytes).sum();
        readers.retain(|reader| {
            if reader.lost.load(Ordering::Relaxed) > 0 {
                reader.lost.fetch_add(results.len() as u64, Ordering::Relaxed);
                return !reader.tx.is_closed();
            }
            let queued = reader.queued.load(Ordering::Relaxed);
            if queued > 0 && queued + bytes > self.max_bytes {
                reader.lost.fetch_add(results.len() as u64, Ordering::Relaxed);
                return !reader.tx.is_closed();
            }
            reader.queued.fetch_add(bytes, Ordering::Relaxed);
            reader.tx.send((Arc::clone(results), bytes)).is_ok()
        });
    }
}

/// A running rule, owned by the engine.
pub struct RunningRule {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    tail: Arc<Tail>,
    /// The plan it runs, for EXPLAIN.
    pub plan: Arc<RulePlan>,
}

impl RunningRule {
    /// Status now.
    pub fn status(&self) -> RuleStatus {
        let (state, last_error, restart_count) = self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        RuleStatus {
            state,
            last_error,
            start_time_ms: self.shared.start_time_ms,
            restart_count,
            operators: self.shared.operators.iter().map(|m| m.snapshot()).collect(),
            tail_missed: self.tail.missed.load(Ordering::Relaxed),
        }
    }

    /// Marks the rule failed with `message` and tells its tasks to stop,
    /// without waiting for them (one may be stuck in a plugin's call).
    pub fn fail(&self, message: String) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = (RuleState::Failed, Some(message), state.2);
        self.cancel.cancel();
    }

    /// A live copy of the rule's results.
    pub fn subscribe(&self) -> TailReader {
        self.tail.subscribe()
    }

    /// Stops every task of the rule and waits for them, [`STOP_GRACE`] at
    /// most: a task still busy then (a sink's `close` that hangs) is aborted.
    /// A thread stuck in a native plugin's call cannot be stopped; it is left
    /// behind, and the rule stops without it.
    pub async fn stop(self) {
        self.cancel.cancel();
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!(rule = %self.plan.rule_id, "a task of the rule did not stop in time; abandoned");
            }
        }
    }
}

/// Starts a planned rule on the current tokio runtime, within `limits`.
pub fn start(
    plan: Arc<RulePlan>,
    connectors: &ConnectorRegistry,
    limits: &RuleLimits,
) -> Result<RunningRule, crate::ConnectorError> {
    let stream = &plan.stream;
    let source_factory = connectors
        .source(stream.source_type())
        .ok_or_else(|| crate::ConnectorError::Config(format!("unknown source type {}", stream.source_type())))?;
    let source_config = SourceConfig::for_stream(stream, &plan.rule_id);
    // Build everything before spawning anything, so a bad configuration starts nothing.
    let source = source_factory.build(&source_config)?;
    let mut sinks = Vec::with_capacity(plan.actions.len());
    for action in &plan.actions {
        let factory = connectors
            .sink(&action.sink_type)
            .ok_or_else(|| crate::ConnectorError::Config(format!("unknown sink type {}", action.sink_type)))?;
        let config = SinkConfig {
            sink_type: action.sink_type.clone(),
            props: action.props.clone(),
            rule_id: plan.rule_id.clone(),
        };
        sinks.push(factory.build(&config)?);
    }

    let cancel = CancellationToken::new();
    // A table whose source cannot be built stops the loaders already started.
    let join::Loaders { tables, mut tasks, metrics: table_metrics } =
        join::start_loaders(&plan, connectors, &cancel).inspect_err(|_| cancel.cancel())?;
    let source_metrics = Arc::new(OperatorMetrics::new(format!("source_{}_0", stream.name)));
    let rule_metrics = RuleMetrics::new(&plan, Arc::clone(&source_metrics));
    let sink_metrics: Vec<Arc<OperatorMetrics>> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(OperatorMetrics::new(format!("sink_{}_{i}", a.sink_type))))
        .collect();
    let mut operators = vec![Arc::clone(&source_metrics)];
    operators.extend(table_metrics);
    operators.extend(rule_metrics.all());
    operators.extend(sink_metrics.iter().cloned());
    let shared =
        Arc::new(Shared { operators, state: Mutex::new((RuleState::Running, None, 0)), start_time_ms: now_ms() });

    let buffer = plan.options.buffer_length.max(1);
    let (source_tx, source_rx) = mpsc::channel(buffer);
    let source_tx = SourceOutput::new(source_tx, plan.options.buffer_full, Arc::clone(&source_metrics));
    let tail = Arc::new(Tail::new(limits.tail_bytes));

    let mut sink_txs = Vec::with_capacity(sinks.len());
    for (sink, metrics) in sinks.into_iter().zip(sink_metrics) {
        // The buffer counts batches of up to RECEIVE_BATCH results.
        let (tx, rx) = mpsc::channel::<Results>(buffer.div_ceil(RECEIVE_BATCH).max(2));
        sink_txs.push(tx);
        tasks.push(tokio::spawn(run_sink(sink, rx, metrics, cancel.clone())));
    }
    tasks.push(tokio::spawn(supervise_source(
        source,
        source_factory,
        source_config,
        source_tx,
        Arc::clone(&shared),
        source_metrics,
        plan.options.restart.clone(),
        cancel.clone(),
    )));
    tasks.push(tokio::spawn(run_operators(
        Arc::clone(&plan),
        limits.window_bytes,
        tables,
        source_rx,
        Output { sinks: sink_txs, tail: Arc::clone(&tail) },
        rule_metrics,
        cancel.clone(),
    )));

    Ok(RunningRule { cancel, tasks, shared, tail, plan })
}

/// Runs the source; when it dies, restarts it per the strategy, then marks the rule failed.
#[allow(clippy::too_many_arguments)]
async fn supervise_source(
    source: Box<dyn crate::Source>,
    factory: Arc<dyn crate::SourceFactory>,
    config: SourceConfig,
    tx: SourceOutput,
    shared: Arc<Shared>,
    metrics: Arc<OperatorMetrics>,
    restart: crate::rule::RestartStrategy,
    cancel: CancellationToken,
) {
    let mut attempt = 0;
    let mut next = Some(source);
    loop {
        // The first run uses the source built at start; each restart builds a fresh one.
        let source = match next.take() {
            Some(source) => source,
            None => match factory.build(&config) {
                Ok(source) => source,
                Err(e) => {
                    metrics.record_exception(e.to_string());
                    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                    *state = (RuleState::Failed, Some(e.to_string()), state.2);
                    break;
                }
            },
        };
        let result = source.run(tx.clone(), cancel.clone()).await;
        if cancel.is_cancelled() {
            break;
        }
        let message = match result {
            Ok(()) => "source ended".to_owned(),
            Err(e) => e.to_string(),
        };
        metrics.record_exception(message.clone());
        if attempt >= restart.attempts {
            tracing::error!(rule = %config.rule_id, error = %message, "source stopped; rule failed");
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            *state = (RuleState::Failed, Some(message), state.2);
            break;
        }
        let delay = restart.delay(attempt);
        attempt += 1;
        tracing::warn!(rule = %config.rule_id, error = %message, ?delay, attempt, "source died; restarting");
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1 = Some(message);
            state.2 += 1;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Delivers results to one sink, retrying with backoff; what was acknowledged
/// is never sent again, what was not is retried until the rule stops.
async fn run_sink(
    mut sink: Box<dyn crate::Sink>,
    mut rx: mpsc::Receiver<Results>,
    metrics: Arc<OperatorMetrics>,
    cancel: CancellationToken,
) {
    const RETRY: crate::rule::RestartStrategy = crate::rule::RestartStrategy {
        attempts: u32::MAX,
        delay_ms: 100,
        multiplier: 2.0,
        max_delay_ms: 10_000,
        jitter_factor: 0.0,
    };
    let mut opened = false;
    loop {
        let results = tokio::select! {
            () = cancel.cancelled() => break,
            results = rx.recv() => match results { Some(results) => results, None => break },
        };
        let rows: usize = results.iter().map(Vec::len).sum();
        metrics.record_in(rows as u64, now_ms());
        metrics.set_buffer_length(rx.len() as u64);
        let started = Instant::now();
        let deliver_all = async {
            for rows in results.iter() {
                let mut attempt = 0;
                while let Err(e) = deliver(sink.as_mut(), &mut opened, rows).await {
                    metrics.record_exception(e.to_string());
                    tokio::time::sleep(RETRY.delay(attempt)).await;
                    attempt += 1;
                }
                metrics.record_out(rows.len() as u64);
            }
        };
        // One select a batch, not a result: a sink that hangs (a peer that
        // never answers) must not keep the rule from stopping.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = deliver_all => {}
        }
        // One clock read per batch: the latency reported is the batch's mean per result.
        metrics.record_latency((started.elapsed().as_micros() / results.len().max(1) as u128) as i64);
    }
    if opened {
        let _ = tokio::time::timeout(STOP_GRACE, sink.close()).await;
    }
}

/// Opens the sink if it is not open yet, then hands it the rows.
async fn deliver(sink: &mut dyn crate::Sink, opened: &mut bool, rows: &[Map]) -> Result<(), crate::ConnectorError> {
    if !*opened {
        sink.open().await?;
        *opened = true;
    }
    sink.collect(rows).await
}

/// Counters of the operators that run inside the rule task.
struct RuleMetrics {
    /// The source's counters: what it emitted is counted as the rule task receives it.
    source: Arc<OperatorMetrics>,
    decoder: Arc<OperatorMetrics>,
    join: Option<Arc<OperatorMetrics>>,
    filter: Option<Arc<OperatorMetrics>>,
    window: Option<Arc<OperatorMetrics>>,
    project: Arc<OperatorMetrics>,
}

impl RuleMetrics {
    fn new(plan: &RulePlan, source: Arc<OperatorMetrics>) -> Self {
        Self {
            source,
            decoder: Arc::new(OperatorMetrics::new("op_decoder_0")),
            join: (!plan.tables.is_empty()).then(|| Arc::new(OperatorMetrics::new("op_join_0"))),
            filter: plan.filter.as_ref().map(|_| Arc::new(OperatorMetrics::new("op_filter_0"))),
            window: plan.window.as_ref().map(|_| Arc::new(OperatorMetrics::new("op_window_0"))),
            project: Arc::new(OperatorMetrics::new("op_project_0")),
        }
    }

    fn all(&self) -> Vec<Arc<OperatorMetrics>> {
        [Some(&self.decoder), self.join.as_ref(), self.filter.as_ref(), self.window.as_ref(), Some(&self.project)]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// The rule task: decode → filter → window → aggregate → having → project → order → sinks.
async fn run_operators(
    plan: Arc<RulePlan>,
    window_bytes: usize,
    tables: Vec<Arc<join::TableRows>>,
    rx: mpsc::Receiver<SourceEvent>,
    output: Output,
    metrics: RuleMetrics,
    cancel: CancellationToken,
) {
    let mode = if plan.options.is_event_time {
        TimeMode::Event { late_tolerance_ms: plan.options.late_tolerance_ms }
    } else {
        TimeMode::Processing
    };
    let window = plan.window.as_ref().map(|spec| WindowOperator::new(spec, mode).with_max_bytes(window_bytes));
    let pipelined = window.is_none() && plan.calls_out_of_process();
    let stages = Stages {
        timestamp_field: plan.stream.timestamp_field().map(str::to_owned),
        decoder: decode::Decoder::new(&plan.stream),
        plan,
        tables,
        metrics,
    };
    if pipelined {
        run_pipelined(Arc::new(stages), rx, output, cancel).await
    } else {
        run_in_order(stages, window, rx, output, cancel).await
    }
}

/// Where a rule's results go.
struct Output {
    sinks: Vec<mpsc::Sender<Results>>,
    tail: Arc<Tail>,
}

/// One batch after another, on the rule task, with the window's timer.
async fn run_in_order(
    stages: Stages,
    mut window: Option<WindowOperator>,
    mut rx: mpsc::Receiver<SourceEvent>,
    output: Output,
    cancel: CancellationToken,
) {
    // Grown by recv_many as events come: an idle rule costs no buffer.
    let mut batch = Vec::new();
    loop {
        let deadline = window.as_ref().and_then(|w| w.next_deadline());
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await,
                None => std::future::pending().await,
            }
        };
        let results = tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep => match window.as_mut() {
                Some(w) => process_windows(&stages.plan, &stages.metrics, w.on_tick(now_ms()), CallMode::Awaited).await,
                None => Vec::new(),
            },
            received = rx.recv_many(&mut batch, RECEIVE_BATCH) => {
                if received == 0 {
                    return;
                }
                stages.metrics.source.set_buffer_length(rx.len() as u64);
                stages.on_events(std::mem::take(&mut batch), window.as_mut(), CallMode::Awaited).await
            }
        };
        output.emit(results).await;
    }
}

/// Up to [`PIPELINE_DEPTH`] batches at once, results emitted in the order the
/// batches came: while one batch waits for a plugin's or a service's answers,
/// the next ones are decoded and their calls sent, so the plugin or service
/// never idles between batches. For rules without a window only, whose
/// batches are independent of each other.
///
/// Where every out-of-process function of the rule can be awaited (external
/// services), the batches are futures of the rule task itself; otherwise each
/// is evaluated on a blocking thread, which blocks on the calls.
async fn run_pipelined(
    stages: Arc<Stages>,
    mut rx: mpsc::Receiver<SourceEvent>,
    output: Output,
    cancel: CancellationToken,
) {
    let on_task = stages.plan.awaits_every_call();
    let mut pending = FuturesOrdered::new();
    let mut batch = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            Some(done) = pending.next(), if !pending.is_empty() => match done {
                Ok(results) => output.emit(results).await,
                // A panic in a function loses that batch, not the rule.
                Err(e) => stages.metrics.project.record_exception(format!("evaluation failed: {e}")),
            },
            received = rx.recv_many(&mut batch, RECEIVE_BATCH), if open && pending.len() < PIPELINE_DEPTH => {
                if received == 0 {
                    // The source is gone: finish the batches under way, then stop.
                    open = false;
                    continue;
                }
                stages.metrics.source.set_buffer_length(rx.len() as u64);
                let (stages, events) = (Arc::clone(&stages), std::mem::take(&mut batch));
                let evaluation: BoxFuture<'static, Result<Vec<Vec<Map>>, String>> = if on_task {
                    std::panic::AssertUnwindSafe(async move { stages.on_events(events, None, CallMode::Awaited).await })
                        .catch_unwind()
                        .map(|done| done.map_err(|panic| panic_message(&panic)))
                        .boxed()
                } else {
                    tokio::task::spawn_blocking(move || blocking(stages.on_events(events, None, CallMode::Blocking)))
                        .map(|done| done.map_err(|e| e.to_string()))
                        .boxed()
                };
                pending.push_back(evaluation);
            }
        }
    }
}

/// What a caught panic says.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => format!("panicked: {text}"),
        (_, Some(text)) => format!("panicked: {text}"),
        _ => "panicked".to_owned(),
    }
}

impl Output {
    /// Hands results to the live tail and to every sink. A full sink buffer
    /// holds the rule back: backpressure, not loss.
    async fn emit(&self, results: Vec<Vec<Map>>) {
        if results.is_empty() {
            return;
        }
        let results = Arc::new(results);
        self.tail.send(&results);
        for sink in &self.sinks {
            let _ = sink.send(Arc::clone(&results)).await;
        }
    }
}

/// The operators of a rule but its window: they keep no state between batches.
struct Stages {
    plan: Arc<RulePlan>,
    tables: Vec<Arc<join::TableRows>>,
    decoder: decode::Decoder,
    timestamp_field: Option<String>,
    metrics: RuleMetrics,
}

impl Stages {
    /// Runs a batch of events through the operators (and the window, if any);
    /// returns their results in order. Each stage takes the whole batch, so that
    /// a function of a plugin or an external service is called once per batch,
    /// not once per row; `mode` says whether those calls are awaited.
    async fn on_events(
        &self,
        batch: Vec<SourceEvent>,
        window: Option<&mut WindowOperator>,
        mode: CallMode,
    ) -> Vec<Vec<Map>> {
        let now = now_ms();
        let started = Instant::now();
        let received = batch.len() as u64;
        let m = &self.metrics;
        m.source.record_in(received, now);
        m.source.record_out(received);
        m.decoder.record_in(received, now);
        let env = EvalEnv { rule_id: &self.plan.rule_id, window: None, prefetch: None };
        let mut rows = Vec::with_capacity(batch.len());
        for event in batch {
            let Some(row) = self.decode(event, now) else { continue };
            m.decoder.record_out(1);
            match &m.join {
                None => rows.push(row),
                Some(jm) => {
                    jm.record_in(1, now);
                    match join::join_event(row, &self.plan, &self.tables, &env) {
                        Ok(joined) => {
                            jm.record_out(joined.len() as u64);
                            rows.extend(joined);
                        }
                        Err(e) => jm.record_exception(e.to_string()),
                    }
                }
            }
        }
        if !self.plan.filters_after_window() {
            rows = filter_rows(&self.plan, m, rows, &env, now, mode).await;
        }
        let mut results = Vec::new();
        match window {
            Some(w) => {
                let evicted = w.evicted();
                for row in rows {
                    if let Some(wm) = &m.window {
                        wm.record_in(1, now);
                    }
                    let batches = w.on_event(row, now_ms());
                    if let Some(wm) = &m.window {
                        wm.set_buffer_length(w.buffered() as u64);
                    }
                    results.extend(process_windows(&self.plan, m, batches, mode).await);
                }
                let dropped = w.evicted() - evicted;
                if let Some(wm) = m.window.as_ref().filter(|_| dropped > 0) {
                    wm.record_dropped(dropped);
                    wm.record_exception(format!(
                        "the window's rows passed the server's max_window_state_bytes: its {dropped} oldest rows were dropped"
                    ));
                }
            }
            None => {
                m.project.record_in(rows.len() as u64, now);
                for out in self.plan.projection.eval_batch_with(&rows, &env, mode).await {
                    match out {
                        Ok(out) => {
                            m.project.record_out(1);
                            results.push(vec![out]);
                        }
                        Err(e) => m.project.record_exception(e.to_string()),
                    }
                }
            }
        }
        // One clock read per batch: the latency reported is the batch's mean.
        m.project.record_latency((started.elapsed().as_micros() / u128::from(received.max(1))) as i64);
        results
    }

    /// Decodes an event into a row at its event or processing time; counts a bad event.
    fn decode(&self, event: SourceEvent, now: i64) -> Option<Row> {
        let (meta, source_time) = (Arc::clone(&event.meta), event.timestamp);
        let decoded = self.decoder.decode(event).and_then(|fields| {
            let timestamp = match (&self.timestamp_field, self.plan.options.is_event_time) {
                (Some(field), true) => decode::event_time(&fields, field)?,
                _ => source_time.unwrap_or(now),
            };
            Ok(Row { fields, timestamp, meta, joined: None })
        });
        decoded.inspect_err(|e| self.metrics.decoder.record_exception(e.clone())).ok()
    }
}

/// The rows that pass WHERE (all of them with no WHERE), in order; counts them.
async fn filter_rows(
    plan: &RulePlan,
    metrics: &RuleMetrics,
    rows: Vec<Row>,
    env: &EvalEnv<'_>,
    now: i64,
    mode: CallMode,
) -> Vec<Row> {
    let (Some(filter), Some(m)) = (&plan.filter, &metrics.filter) else { return rows };
    m.record_in(rows.len() as u64, now);
    let verdicts = filter.expr.eval_batch_with(&rows, env, mode).await;
    let passed: Vec<Row> = rows
        .into_iter()
        .zip(verdicts)
        .filter_map(|(row, verdict)| match verdict {
            Ok(Value::Bool(true)) => Some(row),
            Ok(_) => None,
            Err(e) => {
                m.record_exception(e.to_string());
                None
            }
        })
        .collect();
    m.record_out(passed.len() as u64);
    passed
}

/// Groups each closed window by the GROUP BY keys, applies HAVING, projects
/// each group, and orders the results: one result set per window. `mode`
/// says whether the batched calls of WHERE (count and sliding windows) and
/// of a per-row projection are awaited.
async fn process_windows(
    plan: &RulePlan,
    metrics: &RuleMetrics,
    batches: Vec<WindowBatch>,
    mode: CallMode,
) -> Vec<Vec<Map>> {
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        if let Some(m) = &metrics.window {
            m.record_out(1);
        }
        let env = EvalEnv { rule_id: &plan.rule_id, window: Some((batch.start, batch.end)), prefetch: None };
        let mut rows = batch.rows;
        if plan.filters_after_window() {
            rows = filter_rows(plan, metrics, rows, &env, now_ms(), mode).await;
        }
        let groups = group_rows(plan, rows, &env, metrics, mode).await;
        let groups = having_groups(plan, metrics, groups, &env, mode).await;
        // eKuiper: a window with no aggregate and no GROUP BY key emits every row;
        // otherwise each group gives one row.
        let per_row = plan.dimensions.is_empty() && !plan.projection.has_aggregate();
        let units: Vec<&[Row]> = if per_row {
            groups.iter().flat_map(|group| group.chunks(1)).collect()
        } else {
            groups.iter().map(Vec::as_slice).collect()
        };
        // Per row, the projection runs over each group as a batch of rows; per
        // group, over the groups as a batch: either way, its plugin and
        // external calls are made once for the batch.
        let projected = if per_row {
            let mut projected = Vec::with_capacity(units.len());
            for group in &groups {
                projected.extend(plan.projection.eval_batch_with(group, &env, mode).await);
            }
            projected
        } else {
            plan.projection.eval_groups_with(&units, &env, mode).await
        };
        let mut out: Vec<(Vec<Value>, Map)> = Vec::with_capacity(units.len());
        for (keys, projected) in order_keys(plan, &units, &env, mode).await.into_iter().zip(projected) {
            match projected {
                Ok(row) => {
                    metrics.project.record_out(1);
                    out.push((keys, row));
                }
                Err(e) => metrics.project.record_exception(e.to_string()),
            }
        }
        if !plan.order_by.is_empty() {
            out.sort_by(|(a, _), (b, _)| {
                for ((x, y), (_, asc)) in a.iter().zip(b).zip(&plan.order_by) {
                    let ord = compare(x, y);
                    if ord != std::cmp::Ordering::Equal {
                        return if *asc { ord } else { ord.reverse() };
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let mut rows: Vec<Map> = out.into_iter().map(|(_, row)| row).collect();
        if let Some(limit) = plan.limit {
            rows.truncate(limit as usize);
        }
        // A window whose groups HAVING filtered out sends nothing.
        if !rows.is_empty() {
            results.push(rows);
        }
    }
    results
}

/// How many rows of a window [`group_rows`] computes the keys of at a time
/// (and so the batch of the calls the keys make).
const GROUPING_CHUNK: usize = 4096;

/// Splits a window's rows by the GROUP BY keys, keeping the order in which groups first appear.
async fn group_rows(
    plan: &RulePlan,
    rows: Vec<Row>,
    env: &EvalEnv<'_>,
    metrics: &RuleMetrics,
    mode: CallMode,
) -> Vec<Vec<Row>> {
    if plan.dimensions.is_empty() {
        return if rows.is_empty() { Vec::new() } else { vec![rows] };
    }
    let dimensions: Vec<&Expr> = plan.dimensions.iter().map(|d| &d.expr).collect();
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    let mut groups: Vec<Vec<Row>> = Vec::new();
    let mut owned = rows.into_iter();
    // The keys of a chunk at a time, not of the whole window (up to millions
    // of rows) at once: the memory held stays bounded.
    while !owned.as_slice().is_empty() {
        let chunk = &owned.as_slice()[..owned.len().min(GROUPING_CHUNK)];
        let keys = eval_rows(&dimensions, chunk, env, mode, |row, env| {
            dimensions.iter().map(|d| d.eval(row, env)).collect::<Result<Vec<Value>, EvalError>>()
        })
        .await;
        // Keys first: zip takes from its first iterator before it finds the
        // second one empty, and a row taken past the chunk would be lost.
        for (key, row) in keys.into_iter().zip(owned.by_ref()) {
            match key {
                Ok(key) => {
                    let slot = *index.entry(GroupKey(key)).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[slot].push(row);
                }
                // A row whose key cannot be computed belongs to no group.
                Err(e) => metrics.project.record_exception(e.to_string()),
            }
        }
    }
    groups
}

/// The groups that pass HAVING (all of them with no HAVING), in order; counts
/// each group in.
async fn having_groups(
    plan: &RulePlan,
    metrics: &RuleMetrics,
    groups: Vec<Vec<Row>>,
    env: &EvalEnv<'_>,
    mode: CallMode,
) -> Vec<Vec<Row>> {
    for group in &groups {
        metrics.project.record_in(group.len() as u64, now_ms());
    }
    let Some(having) = &plan.having else { return groups };
    let refs: Vec<&[Row]> = groups.iter().map(Vec::as_slice).collect();
    let verdicts = having.expr.eval_groups_with(&refs, env, mode).await;
    groups
        .into_iter()
        .zip(verdicts)
        .filter_map(|(group, verdict)| match verdict {
            Ok(Value::Bool(true)) => Some(group),
            Ok(_) => None,
            Err(e) => {
                metrics.project.record_exception(e.to_string());
                None
            }
        })
        .collect()
}

/// The ORDER BY keys of each unit (a group, or a row of a window that emits
/// rows); a key that cannot be computed is NULL.
async fn order_keys(plan: &RulePlan, units: &[&[Row]], env: &EvalEnv<'_>, mode: CallMode) -> Vec<Vec<Value>> {
    let mut keys: Vec<Vec<Value>> = (0..units.len()).map(|_| Vec::with_capacity(plan.order_by.len())).collect();
    for (order, _) in &plan.order_by {
        for (key, value) in keys.iter_mut().zip(order.expr.eval_groups_with(units, env, mode).await) {
            key.push(value.unwrap_or(Value::Null));
        }
    }
    keys
}

/// Orders values for ORDER BY: NULL first, numbers numerically, then by text.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}
