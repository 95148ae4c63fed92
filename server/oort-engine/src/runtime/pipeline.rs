//! The rule task: events in, through the operators, results out to the sinks
//! and the tail, one batch after another or several batches at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checkpointer::Trigger;
use super::grouping::process_windows;
use super::project;
use super::sink::ToSink;
use super::{PIPELINE_DEPTH, RECEIVE_BATCH, Tail};
use crate::analytic::AnalyticState;
use crate::connector::{PARTITION_META, PARTITION_START_META, SourceEvent};
use crate::expr::EvalEnv;
use crate::metrics::{ErrorQueue, OperatorMetrics, now_ms};
use crate::plan::{Compiled, RulePlan, Stage};
use crate::row::Row;
use crate::value::{Map, Value};
use crate::window::{TimeMode, Verdict, WindowConditions, WindowOperator};
use crate::{decode, join};

/// Counters of the operators that run inside the rule task: those of the
/// plan's stages, `None` for a stage the plan lacks.
pub(super) struct RuleMetrics {
    /// The source's counters: what it emitted is counted as the rule task receives it.
    pub(super) source: Arc<OperatorMetrics>,
    /// The sources of the joined streams, likewise.
    pub(super) joined_sources: Vec<Arc<OperatorMetrics>>,
    pub(super) decoder: Arc<OperatorMetrics>,
    pub(super) join: Option<Arc<OperatorMetrics>>,
    pub(super) analytic: Option<Arc<OperatorMetrics>>,
    pub(super) filter: Option<Arc<OperatorMetrics>>,
    pub(super) window_filter: Option<Arc<OperatorMetrics>>,
    pub(super) window: Option<Arc<OperatorMetrics>>,
    pub(super) aggregate: Option<Arc<OperatorMetrics>>,
    pub(super) having: Option<Arc<OperatorMetrics>>,
    pub(super) project: Arc<OperatorMetrics>,
    pub(super) order: Option<Arc<OperatorMetrics>>,
    pub(super) limit: Option<Arc<OperatorMetrics>>,
    /// With `sendError`, the errors of the operators, for the sinks.
    pub(super) errors: Option<Arc<ErrorQueue>>,
}

impl RuleMetrics {
    pub(super) fn new(plan: &RulePlan, counters: &super::StageCounters) -> Self {
        Self {
            source: counters.stage(Stage::Source),
            joined_sources: (0..plan.joined_streams.len()).map(|i| counters.stage(Stage::Stream(i))).collect(),
            decoder: counters.stage(Stage::Decoder),
            join: counters.get(Stage::Join),
            analytic: counters.get(Stage::Analytic),
            filter: counters.get(Stage::Filter),
            window_filter: counters.get(Stage::WindowFilter),
            window: counters.get(Stage::Window),
            aggregate: counters.get(Stage::Aggregate),
            having: counters.get(Stage::Having),
            project: counters.stage(Stage::Project),
            order: counters.get(Stage::Order),
            limit: counters.get(Stage::Limit),
            errors: None,
        }
    }
}

/// What the rule task starts from and saves its state with.
pub(super) struct Recovery {
    /// The window state of the checkpoint the rule restarts from.
    pub(super) window: Option<Vec<u8>>,
    /// Its analytic calls' state.
    pub(super) analytic: Option<Vec<u8>>,
    /// Where the rule's checkpoints are taken; `None` when it takes none.
    pub(super) trigger: Option<Trigger>,
}

/// The rule task: decode → filter → window → aggregate → having → project → order → sinks.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_operators(
    plan: Arc<RulePlan>,
    window_bytes: usize,
    tables: join::Tables,
    decoders: Vec<decode::Decoder>,
    rx: mpsc::Receiver<SourceEvent>,
    joined_rx: Vec<mpsc::Receiver<SourceEvent>>,
    output: Output,
    metrics: RuleMetrics,
    recovery: Recovery,
    cancel: CancellationToken,
) {
    let mode = if plan.options.is_event_time {
        TimeMode::Event { late_tolerance_ms: plan.options.late_tolerance_ms }
    } else {
        TimeMode::Processing
    };
    let mut window = plan.window.as_ref().map(|spec| {
        let streams = plan.joined_streams.len() + 1;
        let window = WindowOperator::new(spec, mode).with_max_bytes(window_bytes).with_streams(streams);
        let window = match &metrics.window {
            Some(counters) if plan.window_trigger.is_some() || !plan.window_conditions.is_empty() => {
                window.with_conditions(conditions(&plan, counters))
            }
            _ => window,
        };
        // Read again from each partition's oldest open window, a partition keeps its own time.
        if plan.replays_from_source() { window.with_partitions(crate::PARTITION_META) } else { window }
    });
    // Event time without a window: the rows in event-time order, late ones dropped.
    if window.is_none()
        && let TimeMode::Event { late_tolerance_ms } = mode
    {
        window = Some(WindowOperator::event_order(late_tolerance_ms).with_max_bytes(window_bytes));
    }
    if let (Some(window), Some(saved)) = (window.as_mut(), &recovery.window)
        && let Err(e) = window.restore(saved)
    {
        let m = metrics.window.as_ref().unwrap_or(&metrics.project);
        m.record_exception(format!("the checkpoint's window state was not restored: {e}"));
    }
    let (calls, columns) = (plan.analytics.len(), plan.projection.changed_cols());
    let mut analytic = (calls + columns > 0 || plan.reads_hits).then(|| AnalyticState::new(calls, columns));
    if let (Some(state), Some(saved)) = (analytic.as_mut(), &recovery.analytic) {
        match AnalyticState::restore(saved, calls, columns) {
            Ok(restored) => *state = restored,
            Err(e) => metrics
                .analytic
                .as_ref()
                .unwrap_or(&metrics.project)
                .record_exception(format!("the checkpoint's analytic state was not restored: {e}")),
        }
    }
    // The analytic calls' state goes from one batch to the next: in order.
    let pipelined = window.is_none() && analytic.is_none() && (plan.calls_remote() || plan.options.concurrency > 1);
    // A rule that joins streams keeps each row apart as a part of its stream's
    // name until the window's join.
    let references = match plan.joined_streams.is_empty() {
        true => Vec::new(),
        false => std::iter::once(plan.stream_reference.as_str())
            .chain(plan.joined_streams.iter().map(|j| j.reference.as_str()))
            .map(Arc::from)
            .collect(),
    };
    let partition_key = match &plan.distribution {
        crate::Distribution::Split { key: Some(key) } => Some(Arc::from(key.as_str())),
        _ => None,
    };
    let stages = Stages { decoders, references, plan, tables, metrics, partition_key };
    if pipelined {
        run_pipelined(Arc::new(stages), rx, output, recovery.trigger, cancel).await
    } else {
        let state = State { window, analytic };
        run_in_order(stages, state, (rx, joined_rx), output, recovery.trigger, cancel).await
    }
}

/// The window's conditions: a sliding window's `OVER (WHEN condition)`, a
/// state window's conditions and partitions ([`WindowConditions`]). A
/// condition that fails is false, counted as the window's error.
fn conditions(plan: &Arc<RulePlan>, counters: &Arc<OperatorMetrics>) -> WindowConditions {
    let (plan, counters) = (Arc::clone(plan), Arc::clone(counters));
    WindowConditions(Arc::new(move |row: &Row| {
        let env = EvalEnv { rule_id: &plan.rule_id, window: None, prefetch: None, hits: None };
        let holds = |condition: Option<&Compiled>| match condition.map(|c| c.expr.eval(row, &env)) {
            None => true,
            Some(Ok(Value::Bool(holds))) => holds,
            Some(Ok(_)) => false,
            Some(Err(e)) => {
                counters.record_exception(format!("window condition {}: {e}", condition.map_or("", |c| &c.sql)));
                false
            }
        };
        let mut verdict = Verdict::default();
        if plan.window_conditions.is_empty() {
            verdict.first = holds(plan.window_trigger.as_ref());
        } else {
            verdict.first = holds(plan.window_conditions.first());
            verdict.second = plan.window_conditions.get(1).is_some_and(|emit| holds(Some(emit)));
        }
        if !plan.window_partition.is_empty() {
            let keys: Vec<Value> =
                plan.window_partition.iter().map(|p| p.expr.eval(row, &env).unwrap_or(Value::Null)).collect();
            verdict.partition = crate::group::partition_key(&keys);
        }
        verdict
    }))
}

/// Where a rule's results go.
pub(super) struct Output {
    /// With `debug`, the rule's id: every result is logged.
    pub(super) debug: Option<String>,
    pub(super) sinks: Vec<mpsc::Sender<ToSink>>,
    pub(super) tail: Arc<Tail>,
    /// The sequence number of the next result ([`crate::Sink::collect_numbered`]).
    pub(super) next_sequence: u64,
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The greatest source position of a batch of events.
fn last_position(batch: &[SourceEvent]) -> Option<u64> {
    batch.iter().filter_map(|e| e.position).max()
}

/// What a rule keeps from one batch to the next, and saves in its checkpoints.
#[derive(Default)]
pub(super) struct State {
    pub(super) window: Option<WindowOperator>,
    pub(super) analytic: Option<AnalyticState>,
}

/// One batch after another, on the rule task, with the window's timer. The
/// events of joined streams come one at a time, numbered by stream from 1.
async fn run_in_order(
    stages: Stages,
    mut state: State,
    (mut rx, joined_rx): (mpsc::Receiver<SourceEvent>, Vec<mpsc::Receiver<SourceEvent>>),
    mut output: Output,
    mut checkpoints: Option<Trigger>,
    cancel: CancellationToken,
) {
    // Grown by recv_many as events come: an idle rule costs no buffer.
    let mut batch = Vec::new();
    let joins_streams = !joined_rx.is_empty();
    let mut joined = futures::stream::select_all(
        joined_rx
            .into_iter()
            .enumerate()
            .map(|(i, mut rx)| futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |event| (i + 1, event))),
    );
    loop {
        let window_due = state
            .window
            .as_ref()
            .and_then(|w| w.next_deadline())
            .map(|at| tokio::time::Instant::now() + Duration::from_millis((at - now_ms()).max(0) as u64));
        let checkpoint_due = checkpoints.as_ref().and_then(Trigger::deadline);
        let (results, position) = tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep_until(window_due) => match state.window.as_mut() {
                Some(w) => {
                    let closed = w.on_tick(now_ms());
                    (process_windows(&stages.plan, &stages.metrics, closed, state.analytic.as_mut()).await, None)
                }
                None => (Vec::new(), None),
            },
            () = sleep_until(checkpoint_due) => (Vec::new(), None),
            received = rx.recv_many(&mut batch, RECEIVE_BATCH) => {
                if received == 0 {
                    // The source ended: the open windows close (not when the rule stops).
                    if let Some(w) = state.window.as_mut().filter(|_| !cancel.is_cancelled()) {
                        let closed = w.finish();
                        let results = process_windows(&stages.plan, &stages.metrics, closed, state.analytic.as_mut()).await;
                        output.emit(stages.metrics.with_errors(results)).await;
                    }
                    return;
                }
                stages.metrics.source.set_buffer_length(rx.len() as u64);
                let position = last_position(&batch);
                (stages.on_source_events(std::mem::take(&mut batch), &mut state).await, position)
            }
            Some((stream, event)) = joined.next(), if joins_streams => {
                (stages.on_events(stream, vec![event], &mut state).await, None)
            }
        };
        output.emit(stages.metrics.with_errors(results)).await;
        if let Some(trigger) = checkpoints.as_mut() {
            trigger.saw(position);
            trigger.take_if_due(&mut state, &output).await;
        }
    }
}

/// Up to [`PIPELINE_DEPTH`] batches at once, results emitted in the order the
/// batches came: while one batch waits for a plugin's or a service's answers,
/// the next ones are decoded and their calls sent, so the plugin or service
/// never idles between batches. For rules without a window only, whose
/// batches are independent of each other. The batches are futures of the
/// rule task itself, or, where the rule's calls hold the thread that makes
/// them ([`Calling::Blocking`](crate::function::Calling::Blocking)), each is
/// evaluated on a blocking thread.
async fn run_pipelined(
    stages: Arc<Stages>,
    mut rx: mpsc::Receiver<SourceEvent>,
    mut output: Output,
    mut checkpoints: Option<Trigger>,
    cancel: CancellationToken,
) {
    let on_blocking_threads = stages.plan.calls_blocking();
    // eKuiper's `concurrency`: that many batches evaluated at once, each a task
    // of its own (on the server's threads), their results in order.
    let concurrency = stages.plan.options.concurrency;
    let depth = PIPELINE_DEPTH.max(concurrency);
    let mut pending = FuturesOrdered::new();
    let mut batch = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        let checkpoint_due = checkpoints.as_ref().and_then(Trigger::deadline);
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            Some((done, position)) = pending.next(), if !pending.is_empty() => {
                match done {
                    Ok(results) => output.emit(stages.metrics.with_errors(results)).await,
                    // A panic in a function loses that batch, not the rule.
                    Err(e) => stages.metrics.project.record_exception(format!("evaluation failed: {e}")),
                }
                if let Some(trigger) = checkpoints.as_mut() {
                    trigger.saw(position);
                    trigger.take_if_due(&mut State::default(), &output).await;
                }
            },
            () = sleep_until(checkpoint_due) => {
                if let Some(trigger) = checkpoints.as_mut() {
                    trigger.take_if_due(&mut State::default(), &output).await;
                }
            },
            received = rx.recv_many(&mut batch, RECEIVE_BATCH), if open && pending.len() < depth => {
                if received == 0 {
                    // The source is gone: finish the batches under way, then stop.
                    open = false;
                    continue;
                }
                stages.metrics.source.set_buffer_length(rx.len() as u64);
                let position = last_position(&batch);
                let (stages, events) = (Arc::clone(&stages), std::mem::take(&mut batch));
                // Boxed: the future of a spawned task must be nameable as `Send`
                // for every lifetime, which the closure's inferred type is not.
                let evaluation: BoxFuture<'static, Result<Vec<Vec<Map>>, String>> = if on_blocking_threads {
                    // The calls hold the thread that makes them: a blocking thread
                    // drives the whole batch's evaluation (it has the runtime's
                    // context, for the I/O and timers of other calls).
                    tokio::task::spawn_blocking(move || futures::executor::block_on(stages.on_events(0, events, &mut State::default())))
                        .map(|done| done.map_err(|e| e.to_string()))
                        .boxed()
                } else if concurrency > 1 {
                    tokio::spawn(async move { stages.on_events(0, events, &mut State::default()).await })
                        .map(|done| done.map_err(|e| e.to_string()))
                        .boxed()
                } else {
                    std::panic::AssertUnwindSafe(async move { stages.on_events(0, events, &mut State::default()).await })
                        .catch_unwind()
                        .map(|done| done.map_err(|panic| panic_message(&panic)))
                        .boxed()
                };
                pending.push_back(evaluation.map(move |done| (done, position)));
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

impl RuleMetrics {
    /// With `sendError`, `results` followed by the errors counted since the
    /// last call, each a result `{"error": "..."}` of its own.
    fn with_errors(&self, mut results: Vec<Vec<Map>>) -> Vec<Vec<Map>> {
        self.send_errors(&mut results);
        results
    }

    /// With `sendError`, appends the errors counted so far to `results`, each
    /// a result `{"error": "..."}` of its own.
    pub(super) fn send_errors(&self, results: &mut Vec<Vec<Map>>) {
        if let Some(queue) = &self.errors {
            let error = |message: String| vec![Map::from([(Arc::from("error"), Value::string(message))])];
            results.extend(queue.take().into_iter().map(error));
        }
    }
}

impl Output {
    /// Hands results to the live tail and to every sink. A full sink buffer
    /// holds the rule back: backpressure, not loss.
    async fn emit(&mut self, results: Vec<Vec<Map>>) {
        if results.is_empty() {
            return;
        }
        if let Some(rule) = &self.debug {
            for (i, rows) in results.iter().enumerate() {
                let rows: Vec<serde_json::Value> = rows.iter().map(crate::json::map_to_json).collect();
                let sequence = self.next_sequence + i as u64;
                tracing::info!(target: "oort::rule_debug", rule = %rule, sequence, result = %serde_json::Value::Array(rows));
            }
        }
        let first = self.next_sequence;
        self.next_sequence += results.len() as u64;
        let results = Arc::new(results);
        self.tail.send(first, &results);
        for sink in &self.sinks {
            let _ = sink.send(ToSink::Results(first, Arc::clone(&results))).await;
        }
    }

    /// Sends checkpoint `id`'s marker down every sink's queue, after the
    /// results emitted so far.
    pub(super) async fn barrier(&self, id: u64) {
        for sink in &self.sinks {
            let _ = sink.send(ToSink::Barrier(id)).await;
        }
    }
}

/// The operators of a rule but its window: they keep no state between batches.
struct Stages {
    plan: Arc<RulePlan>,
    tables: join::Tables,
    /// Each stream's decoder, which knows its event-time field: the rule's,
    /// then its joined streams'.
    decoders: Vec<decode::Decoder>,
    /// With joined streams, the name of each stream, as `decoders`; else empty.
    references: Vec<Arc<str>>,
    metrics: RuleMetrics,
    /// For a rule split by its stream's partition key: that field, which each
    /// event's message key must be ([`crate::connector::MESSAGE_KEY_META`]).
    partition_key: Option<Arc<str>>,
}

impl Stages {
    /// The source's events. With windows per partition, the events read
    /// again of a partition from its committed position (the first one
    /// marked [`PARTITION_START_META`]) start that partition's windows afresh,
    /// after the events before them.
    async fn on_source_events(&self, batch: Vec<SourceEvent>, state: &mut State) -> Vec<Vec<Map>> {
        if !state.window.as_ref().is_some_and(WindowOperator::is_partitioned) {
            return self.on_events(0, batch, state).await;
        }
        let (mut results, mut run) = (Vec::new(), Vec::with_capacity(batch.len()));
        for event in batch {
            if event.meta.contains_key(PARTITION_START_META) {
                if !run.is_empty() {
                    results.extend(self.on_events(0, std::mem::take(&mut run), state).await);
                }
                if let (Some(window), Some(partition)) = (state.window.as_mut(), event.meta.get(PARTITION_META)) {
                    window.restart_partition(partition);
                }
            }
            run.push(event);
        }
        if !run.is_empty() {
            results.extend(self.on_events(0, run, state).await);
        }
        results
    }

    /// Runs a batch of events through the operators (and the window, if any);
    /// returns their results in order. Each stage takes the whole batch, so that
    /// a function of a plugin or an external service is called once per batch,
    /// not once per row.
    async fn on_events(&self, stream: usize, batch: Vec<SourceEvent>, state: &mut State) -> Vec<Vec<Map>> {
        let window = state.window.as_mut();
        let now = now_ms();
        let started = Instant::now();
        let received = batch.len() as u64;
        let m = &self.metrics;
        let source = if stream == 0 { &m.source } else { &m.joined_sources[stream - 1] };
        source.record_in(received, now);
        source.record_out(received);
        m.decoder.record_in(received, now);
        let env = EvalEnv { rule_id: &self.plan.rule_id, window: None, prefetch: None, hits: None };
        let mut rows = Vec::with_capacity(batch.len());
        // An event-time window sees the events that leave no row (joined to
        // nothing, dropped by WHERE) too: the watermark moves at the source,
        // as eKuiper's. For it, the time of each event and the event each row
        // came from.
        let filters_first = self.plan.filter.is_some() && !self.plan.filters_after_window();
        let filtered = filters_first || self.plan.window_filter.is_some();
        // Tables join each event here; streams join at the window's end.
        let table_join = m.join.as_ref().filter(|_| !self.plan.tables.is_empty());
        let track = window.as_ref().is_some_and(|w| w.is_event_time()) && (table_join.is_some() || filtered);
        let (mut times, mut origins) = (Vec::new(), Vec::new());
        let decoded: Vec<Row> = batch.into_iter().filter_map(|event| self.decode(stream, event, now)).collect();
        // Lookup tables are asked about the whole batch at once.
        let mut found = match table_join {
            Some(_) if self.tables.lookups.iter().any(Option::is_some) => {
                join::look_up(&self.tables.lookups, &decoded, &env).await.into_iter()
            }
            _ => Vec::new().into_iter(),
        };
        for row in decoded {
            m.decoder.record_out(1);
            let origin = times.len();
            if track {
                times.push(row.timestamp);
            }
            match table_join {
                None => {
                    rows.push(row);
                    if track {
                        origins.push(origin);
                    }
                }
                Some(jm) => {
                    jm.record_in(1, now);
                    let looked_up = match found.next() {
                        Some(Err(why)) => {
                            jm.record_exception(why);
                            continue;
                        }
                        Some(Ok(rows)) => rows,
                        None => Vec::new(),
                    };
                    match join::join_event(row, &self.plan, &self.tables.loaded, &looked_up, &env) {
                        Ok(joined) => {
                            jm.record_out(joined.len() as u64);
                            if track {
                                origins.extend(std::iter::repeat_n(origin, joined.len()));
                            }
                            rows.extend(joined);
                        }
                        Err(e) => jm.record_exception(e.to_string()),
                    }
                }
            }
        }
        if let (Some(analytic), Some(am)) = (state.analytic.as_mut(), &m.analytic) {
            am.record_in(rows.len() as u64, now);
            let failures = analytic.apply(&self.plan.analytics, &mut rows, &env, false).await;
            let passed = failures.iter().filter(|f| f.is_none()).count();
            if passed < rows.len() {
                for e in failures.iter().flatten() {
                    am.record_exception(e.to_string());
                }
                let mut keep = failures.iter().map(Option::is_none);
                rows.retain(|_| keep.next().unwrap_or(false));
                if !origins.is_empty() {
                    let mut keep = failures.iter().map(Option::is_none);
                    origins.retain(|_| keep.next().unwrap_or(false));
                }
            }
            am.record_out(passed as u64);
        }
        // A rule that reads its hits filters each event in turn (`hits::events`).
        if filters_first && !(self.plan.reads_hits && self.plan.window.is_none()) {
            rows = filter_rows((self.plan.filter.as_ref(), m.filter.as_ref()), rows, &mut origins, &env, now).await;
        }
        if self.plan.window_filter.is_some() {
            let condition = (self.plan.window_filter.as_ref(), m.window_filter.as_ref());
            rows = filter_rows(condition, rows, &mut origins, &env, now).await;
        }
        let mut results = Vec::new();
        match window {
            Some(w) => {
                let (evicted, late) = (w.evicted(), w.late_dropped());
                let mut rows =
                    rows.into_iter().zip(origins.into_iter().map(Some).chain(std::iter::repeat(None))).peekable();
                // Untracked: every row at once, as from one event.
                let times = if track { times } else { vec![0] };
                for (origin, time) in times.into_iter().enumerate() {
                    let mut passed = false;
                    while let Some((row, _)) = rows.next_if(|(_, from)| from.is_none_or(|from| from == origin)) {
                        passed = true;
                        if let Some(wm) = &m.window {
                            wm.record_in(1, now);
                        }
                        let batches = w.on_event_from(stream, row, now_ms());
                        if let Some(wm) = &m.window {
                            wm.set_buffer_length(w.buffered() as u64);
                        }
                        results.extend(process_windows(&self.plan, m, batches, state.analytic.as_mut()).await);
                    }
                    // An event that left no row still moves the watermark, after the
                    // rows before it, as a watermark from the source would.
                    if track && !passed {
                        let closed = w.observe(stream, time);
                        if !closed.is_empty() {
                            results.extend(process_windows(&self.plan, m, closed, state.analytic.as_mut()).await);
                        }
                    }
                }
                // Late rows (behind the watermark) are dropped and counted, as eKuiper drops them.
                let late = w.late_dropped() - late;
                if late > 0 {
                    m.window.as_ref().unwrap_or(&m.project).record_dropped(late);
                }
                let dropped = w.evicted() - evicted;
                if let Some(wm) = m.window.as_ref().filter(|_| dropped > 0) {
                    wm.record_dropped(dropped);
                    wm.record_exception(format!(
                        "the window's rows passed the server's max_window_state_bytes: its {dropped} oldest rows were dropped"
                    ));
                }
            }
            None => results = project::events(&self.plan, m, rows, state.analytic.as_mut(), &env, now).await,
        }
        // One clock read per batch: the latency reported is the batch's mean.
        m.project.record_latency((started.elapsed().as_micros() / u128::from(received.max(1))) as i64);
        results
    }

    /// Decodes an event of a stream into a row at its event or processing
    /// time (with joined streams, a row of one part); counts a bad event.
    fn decode(&self, stream: usize, event: SourceEvent, now: i64) -> Option<Row> {
        let (meta, source_time) = (Arc::clone(&event.meta), event.timestamp);
        let decoder = &self.decoders[stream];
        let decoded = decoder.decode(event).and_then(|fields| {
            let timestamp = match (decoder.timestamp_field(), self.plan.options.is_event_time) {
                (Some(field), true) => field.event_time(&fields)?,
                _ => source_time.unwrap_or(now),
            };
            let row = Row { fields, timestamp, meta, joined: None, analytic: Vec::new() };
            self.check_partition_key(&row);
            Ok(match self.references.get(stream) {
                Some(reference) => {
                    let parts = vec![(Arc::clone(reference), row)];
                    Row { joined: Some(Arc::new(crate::expr::JoinedRow { parts })), ..Row::new(Map::new(), timestamp) }
                }
                None => row,
            })
        });
        decoded.inspect_err(|e| self.metrics.decoder.record_exception(e.clone())).ok()
    }

    /// Counts an event whose message key is not its partition key field: the
    /// producer does not key the topic as the stream says, so a key's events
    /// may be on several servers and their windows split between them.
    fn check_partition_key(&self, row: &Row) {
        let Some(field) = &self.partition_key else { return };
        let Some(key) = row.meta.get(crate::connector::MESSAGE_KEY_META) else { return };
        let value = row.fields.get(field.as_ref());
        // Text is compared as it is, other values by their text (no allocation per event for the usual key).
        let matches = |v: &crate::value::Value| v.as_str().map_or_else(|| v.to_string() == *key, |s| s == key);
        if !value.is_some_and(matches) {
            let value = value.map_or_else(|| "missing".to_owned(), |v| format!("{:?}", v.to_string()));
            self.metrics.decoder.record_exception(format!(
                "a message keyed {key:?} has {field} {value}: the topic is not keyed by its PARTITION_KEY, so a key's \
                 events may be split between servers"
            ));
        }
    }
}

/// The rows that pass a condition (WHERE, a window's FILTER; all of them
/// without one), in order; counts them in its stage. `origins`, when not
/// empty, says which event each row came from, and keeps those of the rows
/// that pass.
pub(super) async fn filter_rows(
    condition: (Option<&Compiled>, Option<&Arc<OperatorMetrics>>),
    rows: Vec<Row>,
    origins: &mut Vec<usize>,
    env: &EvalEnv<'_>,
    now: i64,
) -> Vec<Row> {
    let (Some(filter), Some(m)) = condition else { return rows };
    m.record_in(rows.len() as u64, now);
    let verdicts = filter.expr.eval_batch(&rows, env).await;
    let mut kept = Vec::with_capacity(if origins.is_empty() { 0 } else { rows.len() });
    let passed: Vec<Row> = rows
        .into_iter()
        .zip(verdicts)
        .filter_map(|(row, verdict)| {
            let pass = match verdict {
                Ok(Value::Bool(true)) => true,
                Ok(_) => false,
                Err(e) => {
                    m.record_exception(e.to_string());
                    false
                }
            };
            if !origins.is_empty() {
                kept.push(pass);
            }
            pass.then_some(row)
        })
        .collect();
    if !origins.is_empty() {
        let mut verdict = kept.into_iter();
        origins.retain(|_| verdict.next().unwrap_or(false));
    }
    m.record_out(passed.len() as u64);
    passed
}
