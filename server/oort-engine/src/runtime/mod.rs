//! Running one rule: a supervised source task ([`source`]), the rule task
//! that runs the operators in order ([`pipeline`], [`grouping`]), one task
//! per sink ([`sink`]), the live copies of its results ([`tail`]) and, for a
//! rule whose `qos` asks for at least once, its checkpoints
//! ([`checkpointer`]). Every task is owned by the rule's cancellation token
//! and stops with it.

mod checkpointer;
mod grouping;
mod hits;
mod pipeline;
mod project;
mod sink;
mod source;
mod tail;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use checkpointer::{CheckpointStatus, SavedCheckpoint};
pub use tail::{ResumeError, Tail, TailBatch, TailEvent, TailPosition, TailReader};

use crate::checkpoint::{self, CheckpointStore};
use crate::connector::{ConnectorRegistry, SinkConfig, SourceConfig, SourceOutput};
use crate::delivery::{Delivery, Guarantee, Rewind};
use crate::join;
use crate::metrics::{ErrorQueue, OperatorMetrics, OperatorStatus, now_ms};
use crate::plan::{RulePlan, Stage};
use crate::sink_cache::{SinkCache, SinkCacheConfig, SinkCaches};
use crate::value::Map;
use checkpointer::{Checkpointer, Checkpointing, Trigger};
use pipeline::{Output, Recovery, RuleMetrics, run_operators};
use sink::{Resend, SinkTask, ToSink};
use source::supervise_source;

/// Most events the rule task takes from its source buffer at once.
const RECEIVE_BATCH: usize = 256;

/// How many batches of events a rule that calls plugin processes or external
/// services evaluates at once (see `pipeline::run_pipelined`).
pub(crate) const PIPELINE_DEPTH: usize = 4;

/// How long a stopping rule waits for its tasks to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How much memory a rule may hold for what others are slow to take, in
/// bytes as estimated in memory ([`crate::value::Value::approx_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLimits {
    /// Results one TailRule reader may fall behind by before it misses some.
    pub tail_bytes: usize,
    /// The last results a rule retains for TailRule readers that resume.
    pub tail_retain_bytes: usize,
    /// Rows a rule's windows may hold; past it the oldest are dropped, counted
    /// in the window operator's `records_dropped_total` and its exceptions.
    pub window_bytes: usize,
    /// Bytes on disk of one sink's cache, whatever its `maxDiskCache`; past
    /// it the oldest page is dropped, counted in the sink's
    /// `records_dropped_total` and its exceptions.
    pub sink_cache_bytes: u64,
}

impl Default for RuleLimits {
    fn default() -> Self {
        Self { tail_bytes: 64 << 20, tail_retain_bytes: 4 << 20, window_bytes: 256 << 20, sink_cache_bytes: 1 << 30 }
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
    /// The source ended (a bounded one, such as a file read once): the
    /// rule's open windows were emitted and it takes no more events.
    Finished,
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
    /// What its results survive.
    pub delivery: Delivery,
    /// Its checkpoints.
    pub checkpoints: CheckpointStatus,
}

/// Shared between the rule's tasks and the status calls.
struct Shared {
    operators: Vec<Arc<OperatorMetrics>>,
    state: Mutex<(RuleState, Option<String>, u32)>,
    start_time_ms: i64,
    delivery: Delivery,
    checkpoints: Arc<Mutex<CheckpointStatus>>,
    /// Events the source replayed ([`SourceOutput::record_replayed`]).
    replayed: Arc<std::sync::atomic::AtomicU64>,
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
            delivery: self.shared.delivery.clone(),
            checkpoints: CheckpointStatus {
                replayed: self.shared.replayed.load(Ordering::Relaxed),
                ..self.shared.checkpoints.lock().unwrap_or_else(|p| p.into_inner()).clone()
            },
        }
    }

    /// Marks the rule failed with `message` and tells its tasks to stop,
    /// without waiting for them (one may be stuck in a plugin's call).
    pub fn fail(&self, message: String) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = (RuleState::Failed, Some(message), state.2);
        self.cancel.cancel();
    }

    /// A live copy of the rule's results, or (`from`) of those it retains
    /// from that position on, then the live ones.
    pub fn subscribe(&self, from: Option<TailPosition>) -> Result<TailReader, ResumeError> {
        self.tail.subscribe(from)
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

/// The counters of every stage of a rule, in pipeline order: what
/// `GetRuleStatus` lists, the same stages as EXPLAIN.
struct StageCounters(Vec<(Stage, Arc<OperatorMetrics>)>);

impl StageCounters {
    fn new(plan: &RulePlan) -> Self {
        let counters = |stage| (stage, Arc::new(OperatorMetrics::new(plan.stage_name(stage))));
        Self(plan.stages().into_iter().map(counters).collect())
    }

    /// The counters of a stage the plan has.
    fn get(&self, stage: Stage) -> Option<Arc<OperatorMetrics>> {
        self.0.iter().find(|(s, _)| *s == stage).map(|(_, m)| Arc::clone(m))
    }

    /// The counters of a stage the plan has by construction (the source, the
    /// decoder, the projection, its tables and sinks). Were it missing, they
    /// would count unseen rather than fail the rule.
    fn stage(&self, stage: Stage) -> Arc<OperatorMetrics> {
        self.get(stage).unwrap_or_else(|| Arc::new(OperatorMetrics::new(format!("{stage:?}"))))
    }

    fn all(&self) -> Vec<Arc<OperatorMetrics>> {
        self.0.iter().map(|(_, m)| Arc::clone(m)).collect()
    }
}

/// Where rules keep what must survive the server: their checkpoints and
/// their sinks' caches. Without them, a rule whose qos asks for at least once
/// gets at most once, and `enableCache` is refused.
#[derive(Debug, Default)]
pub struct RuleStorage {
    /// The rules' checkpoints.
    pub checkpoints: Option<Arc<CheckpointStore>>,
    /// The caches of their sinks.
    pub sink_caches: Option<SinkCaches>,
}

/// Starts a planned rule on the current tokio runtime, within `limits`,
/// keeping its checkpoints (if its qos asks for them) and its sinks' caches
/// in `storage`.
pub fn start(
    plan: Arc<RulePlan>,
    connectors: &ConnectorRegistry,
    limits: &RuleLimits,
    storage: &RuleStorage,
) -> Result<RunningRule, crate::ConnectorError> {
    let checkpoints = storage.checkpoints.as_ref();
    let source_factory = connectors.source_for(&plan.stream)?;
    let mut source_config = SourceConfig::for_stream(&plan.stream, &plan.rule_id);
    source_config.qos = plan.options.qos;
    let mut checkpoint_status = CheckpointStatus::default();
    let sink_factories = plan
        .actions
        .iter()
        .map(|action| {
            connectors
                .sink(&action.sink_type)
                .ok_or_else(|| crate::ConnectorError::Config(format!("unknown sink type {}", action.sink_type)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (checkpointing, replay) = Checkpointing::prepare(
        &plan,
        checkpoints,
        source_factory.as_ref(),
        &mut source_config,
        &mut checkpoint_status,
    )?;
    let caches = open_caches(&plan, storage.sink_caches.as_ref(), limits.sink_cache_bytes)?;
    let batches = plan
        .actions
        .iter()
        .map(|action| crate::sink_batch::BatchConfig::from_props(&action.props))
        .collect::<Result<Vec<_>, _>>()?;
    // A cached result is sent after the checkpoint that counted it: a sink
    // with a cache cannot take back what followed a checkpoint.
    let cannot_rewind = plan
        .actions
        .iter()
        .zip(&sink_factories)
        .zip(&caches)
        .find(|((action, factory), cache)| !factory.rewinds(&action.props) || cache.is_some());
    let rewind = match cannot_rewind {
        Some(((action, factory), _)) if factory.rewinds(&action.props) => {
            Rewind::SinkCannot(format!("{} with enableCache", action.sink_type))
        }
        Some(((action, _), _)) => Rewind::SinkCannot(action.sink_type.clone()),
        None => Rewind::Yes,
    };
    let delivery = Delivery::of(plan.options.qos, &replay, &rewind);
    if delivery.shortfall.is_some() {
        tracing::warn!(rule = %plan.rule_id, delivery = %delivery.describe(), "the rule gets less than its qos asks for");
    }
    // Build everything before spawning anything, so a bad configuration starts nothing.
    // A protobuf stream's message is found before anything starts.
    let decoders = std::iter::once(&plan.stream)
        .chain(plan.joined_streams.iter().map(|j| &j.source))
        .map(|def| crate::decode::Decoder::for_stream(def, connectors.schemas()))
        .collect::<Result<Vec<_>, _>>()?;
    let source = source_factory.build(&source_config)?;
    let mut joined_sources = Vec::with_capacity(plan.joined_streams.len());
    for join in &plan.joined_streams {
        let (factory, config) =
            (connectors.source_for(&join.source)?, SourceConfig::for_stream(&join.source, &plan.rule_id));
        joined_sources.push((factory.build(&config)?, factory, config));
    }
    // Sinks take back what followed the checkpoint only for exactly once: a
    // file cut back at qos 1 could lose the lines of another writer.
    let marks = match checkpointing.as_ref().and_then(|c| c.restored.as_ref()) {
        Some(restored) if plan.options.qos == Guarantee::ExactlyOnce => restored.sinks.clone(),
        _ => Vec::new(),
    };
    let mut sinks = Vec::with_capacity(plan.actions.len());
    for (i, (action, factory)) in plan.actions.iter().zip(&sink_factories).enumerate() {
        let config = SinkConfig {
            schemas: Arc::clone(connectors.schemas()),
            sink_type: action.sink_type.clone(),
            props: action.props.clone(),
            rule_id: plan.rule_id.clone(),
            index: i,
            rewind_to: marks.get(i).cloned().flatten(),
        };
        sinks.push(factory.build(&config)?);
    }

    let cancel = CancellationToken::new();
    let counters = StageCounters::new(&plan);
    // sendError: the operators' errors also go to the sinks (not the source's or the sinks' own).
    let errors = plan.options.send_error.then(|| {
        let queue = Arc::new(ErrorQueue::default());
        for (stage, metrics) in &counters.0 {
            if !matches!(stage, Stage::Source | Stage::Table(_) | Stage::Stream(_) | Stage::Sink(_)) {
                metrics.forward_errors(Arc::clone(&queue));
            }
        }
        queue
    });
    // A table whose source cannot be built stops the loaders already started.
    let table_counters = |i| counters.stage(Stage::Table(i));
    let join::Loaders { tables, mut tasks } =
        join::start_loaders(&plan, connectors, &cancel, table_counters).inspect_err(|_| cancel.cancel())?;
    let source_metrics = counters.stage(Stage::Source);
    let mut rule_metrics = RuleMetrics::new(&plan, &counters);
    rule_metrics.errors = errors;
    let sink_metrics: Vec<Arc<OperatorMetrics>> =
        (0..plan.actions.len()).map(|i| counters.stage(Stage::Sink(i))).collect();
    let buffer = plan.options.buffer_length.max(1);
    let (source_tx, source_rx) = mpsc::channel(buffer);
    let source_tx = SourceOutput::new(source_tx, plan.options.buffer_full, Arc::clone(&source_metrics));
    let shared = Arc::new(Shared {
        operators: counters.all(),
        state: Mutex::new((RuleState::Running, None, 0)),
        start_time_ms: now_ms(),
        delivery,
        checkpoints: Arc::new(Mutex::new(checkpoint_status)),
        replayed: source_tx.replay_counter(),
    });

    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let mut sink_txs = Vec::with_capacity(sinks.len());
    for (i, (((sink, metrics), cache), batch)) in
        sinks.into_iter().zip(sink_metrics).zip(caches).zip(batches).enumerate()
    {
        // The buffer counts batches of up to RECEIVE_BATCH results; the action's bufferLength, else the rule's.
        let length = crate::sink_props::buffer_length(&plan.actions[i].props).ok().flatten().unwrap_or(buffer);
        let (tx, rx) = mpsc::channel::<ToSink>(length.div_ceil(RECEIVE_BATCH).max(2));
        sink_txs.push(tx);
        let task = SinkTask {
            sink,
            acks: checkpointing.as_ref().map(|_| (ack_tx.clone(), i)),
            metrics,
            cancel: cancel.clone(),
            resend: cache.map(|(cache, config)| Resend::new(cache, config)),
            batch: batch.map(crate::sink_batch::Batch::new),
            opened: false,
            stable_numbers: checkpointing.as_ref().is_some_and(|c| !c.from_source),
        };
        tasks.push(tokio::spawn(task.run(rx)));
    }
    let mut recovery = Recovery { window: None, analytic: None, trigger: None };
    // Results are numbered on from the checkpoint's: a replayed one keeps its number.
    let next_sequence = checkpointing.as_ref().and_then(|c| c.restored.as_ref()).map_or(0, |c| c.results);
    let tail = Arc::new(Tail::new(limits.tail_bytes, limits.tail_retain_bytes, next_sequence));
    if let Some(Checkpointing { store, positions, restored, position, from_source }) = checkpointing {
        let (taken_tx, taken_rx) = mpsc::channel(1);
        let interval = Duration::from_millis(plan.options.checkpoint_interval_ms.max(1));
        let trigger = Trigger::new(interval, checkpoint::fingerprint(&plan), position, taken_tx);
        recovery.trigger = Some(if from_source { trigger.holding_back_at(Arc::clone(&positions)) } else { trigger });
        if let Some(restored) = restored {
            recovery.window = restored.window;
            recovery.analytic = restored.analytic;
        }
        let checkpointer = Checkpointer {
            rule_id: plan.rule_id.clone(),
            store,
            positions,
            sinks: sink_txs.len(),
            status: Arc::clone(&shared.checkpoints),
            from_source,
        };
        tasks.push(tokio::spawn(checkpointer.run(taken_rx, ack_rx, cancel.clone())));
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
    // Each joined stream: a supervised source of its own, into a buffer of its own.
    let mut joined_rx = Vec::with_capacity(plan.joined_streams.len());
    for (i, (source, factory, config)) in joined_sources.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(buffer);
        let metrics = counters.stage(Stage::Stream(i));
        let tx = SourceOutput::new(tx, plan.options.buffer_full, Arc::clone(&metrics));
        let restart = plan.options.restart.clone();
        tasks.push(tokio::spawn(supervise_source(
            source,
            factory,
            config,
            tx,
            Arc::clone(&shared),
            metrics,
            restart,
            cancel.clone(),
        )));
        joined_rx.push(rx);
    }
    tasks.push(tokio::spawn(run_operators(
        Arc::clone(&plan),
        limits.window_bytes,
        tables,
        decoders,
        source_rx,
        joined_rx,
        Output {
            debug: plan.options.debug.then(|| plan.rule_id.clone()),
            sinks: sink_txs,
            tail: Arc::clone(&tail),
            next_sequence,
        },
        rule_metrics,
        recovery,
        cancel.clone(),
    )));

    Ok(RunningRule { cancel, tasks, shared, tail, plan })
}

/// Opens the cache of every action that asks for one (`enableCache`), by
/// action; drops the caches of actions the rule no longer has.
fn open_caches(
    plan: &RulePlan,
    caches: Option<&SinkCaches>,
    max_disk_bytes: u64,
) -> Result<Vec<Option<(SinkCache, SinkCacheConfig)>>, crate::ConnectorError> {
    let mut opened = Vec::with_capacity(plan.actions.len());
    let mut dirs = Vec::new();
    for (i, action) in plan.actions.iter().enumerate() {
        let Some(config) = SinkCacheConfig::from_props(&action.props)? else {
            opened.push(None);
            continue;
        };
        let Some(caches) = caches else {
            return Err(crate::ConnectorError::Config(
                "the sink property `enableCache` needs a data directory, which this engine has not".into(),
            ));
        };
        let dir = caches.dir(&plan.rule_id, i, action);
        let cache = SinkCache::open(&dir, config.sizes, max_disk_bytes)
            .map_err(|e| crate::ConnectorError::Config(e.to_string()))?;
        dirs.push(dir);
        opened.push(Some((cache, config)));
    }
    if let Some(caches) = caches {
        match caches.retain(&plan.rule_id, &dirs) {
            Ok(0) => {}
            Ok(dropped) => tracing::warn!(
                rule = %plan.rule_id, dropped,
                "the caches of the rule's former actions were dropped with the results they held"
            ),
            Err(e) => tracing::warn!(rule = %plan.rule_id, error = %e, "the caches of former actions were not removed"),
        }
    }
    Ok(opened)
}
