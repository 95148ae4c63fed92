//! `oort.v1.RuleService`: rule definitions in the catalog, run by the engine
//! through the [`RuleController`].

use std::pin::Pin;
use std::sync::Arc;

use oort_engine::runtime::{TailBatch, TailEvent, TailPosition};
use oort_proto::v1::rule_service_server::RuleService;
use oort_proto::v1::{BufferFull, Event, OperatorStatus};
use oort_proto::v1::{
    CreateRuleRequest, CreateRuleResponse, DeleteRuleRequest, DeleteRuleResponse, ExplainRuleRequest,
    ExplainRuleResponse, GetRuleRequest, GetRuleResponse, GetRuleStatusRequest, GetRuleStatusResponse,
    ListRulesRequest, ListRulesResponse, RestartRuleRequest, RestartRuleResponse, Rule, RuleInfo, RuleState,
    StartRuleRequest, StartRuleResponse, StopRuleRequest, StopRuleResponse, TailEncoding, TailRuleRequest,
    TailRuleResponse, UpdateRuleRequest, UpdateRuleResponse,
};
use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{now, required};
use crate::convert::map_to_proto;
use crate::convert::timestamp_ms;
use crate::error::{ApiError, ApiResult};
use crate::redact;
use crate::rules::RuleController;

/// Longest accepted rule id.
const MAX_ID_LEN: usize = 128;

/// Most results a batched TailRule response carries, whatever `max_batch` asks.
const MAX_TAIL_BATCH: usize = 4096;

/// Size past which a batched TailRule response takes no more results: well
/// under the 4 MiB a gRPC client accepts by default, however large the rows.
const MAX_TAIL_BATCH_BYTES: usize = 1 << 20;

/// Serves `RuleService`.
pub struct RuleApi {
    rules: RuleController,
    plugins: Option<Arc<oort_plugin_host::Plugins>>,
    /// The clients rules open to brokers, for their operators' connection state.
    connections: Option<Arc<oort_connectors::connections::Connections>>,
    /// The largest `buffer_length` a rule may ask for.
    max_buffer_length: u32,
}

impl RuleApi {
    /// A service over the rule controller.
    pub fn new(rules: RuleController) -> Self {
        Self { rules, plugins: None, connections: None, max_buffer_length: crate::config::DEFAULT_MAX_BUFFER_LENGTH }
    }

    /// Refuses rules whose `buffer_length` is above `max` (`max_buffer_length`).
    pub fn with_max_buffer_length(mut self, max: u32) -> Self {
        self.max_buffer_length = max;
        self
    }

    /// Checks a rule against the server's limits.
    fn check_limits(&self, rule: &Rule) -> ApiResult<()> {
        match rule.options.as_ref().and_then(|o| o.buffer_length) {
            Some(length) if length > self.max_buffer_length => Err(ApiError::InvalidArgument(format!(
                "rule {}: buffer_length {length} is above the server's max_buffer_length of {}",
                rule.id, self.max_buffer_length
            ))),
            _ => Ok(()),
        }
    }

    /// Also reports, in `GetRuleStatus`, the portable plugins a rule uses.
    pub fn with_plugins(mut self, plugins: Arc<oort_plugin_host::Plugins>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Shows the state of the clients the rule opened on its operators.
    pub fn with_connections(mut self, connections: Arc<oort_connectors::connections::Connections>) -> Self {
        self.connections = Some(connections);
        self
    }

    /// The operators' statuses, each with the state of the client it opened.
    fn operators(&self, rule_id: &str, operators: Vec<oort_engine::OperatorStatus>) -> Vec<OperatorStatus> {
        let clients = self.connections.as_ref().map(|c| c.rule_clients(rule_id)).unwrap_or_default();
        let mut operators: Vec<OperatorStatus> = operators.into_iter().map(operator_to_proto).collect();
        for client in clients {
            if let Some(op) = operators.iter_mut().find(|op| op.name == client.operator) {
                op.connection = client.connection;
                op.connection_state = crate::api::connections::state_to_proto(&client.state).into();
                if let oort_connectors::connections::LinkState::Disconnected(why) = client.state {
                    op.connection_error = why;
                }
            }
        }
        operators
    }

    async fn plugin_statuses(&self, rule_id: &str) -> Vec<oort_proto::v1::RulePluginStatus> {
        let Some(plugins) = &self.plugins else { return Vec::new() };
        let plans = self.rules.engine().plans().await;
        match plans.iter().find(|p| p.rule_id == rule_id) {
            Some(plan) => crate::plugins::rule_plugins(plan, plugins),
            None => Vec::new(),
        }
    }

    async fn load(&self, id: String) -> ApiResult<Rule> {
        self.rules.catalog().call(move |c| c.get_rule(&id)).await
    }

    /// Sets whether a rule should run, in the catalog.
    async fn set_triggered(&self, mut rule: Rule, triggered: bool) -> ApiResult<Rule> {
        if rule.triggered != Some(triggered) {
            rule.triggered = Some(triggered);
            rule.update_time = Some(now());
            let (stored, sources) = (rule.clone(), self.sources_of(&rule)?);
            self.rules.catalog().call(move |c| c.update_rule(&stored, &sources)).await?;
        }
        Ok(rule)
    }

    fn sources_of(&self, rule: &Rule) -> ApiResult<Vec<String>> {
        Ok(oort_sql::parse_rule_sql(&rule.sql)?.source_names().map(str::to_owned).collect())
    }

    async fn state_of(&self, rule: &Rule) -> RuleState {
        match self.rules.status(&rule.id).await {
            Some(status) => state_to_proto(status.state),
            None => RuleState::Stopped,
        }
    }
}

fn state_to_proto(state: oort_engine::RuleState) -> RuleState {
    match state {
        oort_engine::RuleState::Running => RuleState::Running,
        oort_engine::RuleState::Stopped => RuleState::Stopped,
        oort_engine::RuleState::Failed => RuleState::Failed,
        oort_engine::RuleState::Finished => RuleState::Finished,
    }
}

fn operator_to_proto(op: oort_engine::OperatorStatus) -> OperatorStatus {
    let (last_exception, last_exception_time) = match op.last_exception {
        Some((message, at)) => (message, timestamp_ms(at)),
        None => (String::new(), None),
    };
    OperatorStatus {
        name: op.name,
        records_in_total: op.records_in_total,
        records_out_total: op.records_out_total,
        exceptions_total: op.exceptions_total,
        records_dropped_total: op.records_dropped_total,
        process_latency_us: op.process_latency_us,
        buffer_length: op.buffer_length,
        last_exception,
        last_exception_time,
        last_invocation: timestamp_ms(op.last_invocation_ms),
        ..Default::default()
    }
}

fn validate_id(id: &str) -> ApiResult<()> {
    let valid_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if id.is_empty() || id.len() > MAX_ID_LEN || !valid_chars {
        return Err(ApiError::InvalidArgument(format!(
            "invalid rule id {id:?}: use 1 to {MAX_ID_LEN} letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

/// The most batches a rule may evaluate at once (`concurrency`).
const MAX_CONCURRENCY: u32 = 64;

/// The most tags a rule may have, and the longest name or tag.
const MAX_TAGS: usize = 64;
const MAX_LABEL_CHARS: usize = 256;

/// A rule's name and tags: bounded, and tags non-empty and without duplicates.
fn validate_labels(rule: &Rule) -> ApiResult<()> {
    let invalid = |m: String| Err(ApiError::InvalidArgument(format!("rule {}: {m}", rule.id)));
    if rule.name.chars().count() > MAX_LABEL_CHARS {
        return invalid(format!("the name is longer than {MAX_LABEL_CHARS} characters"));
    }
    if rule.tags.len() > MAX_TAGS {
        return invalid(format!("{} tags, more than {MAX_TAGS}", rule.tags.len()));
    }
    for (i, tag) in rule.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.chars().count() > MAX_LABEL_CHARS {
            return invalid(format!("tag {i} must be 1 to {MAX_LABEL_CHARS} characters, not blank"));
        }
        if rule.tags[..i].contains(tag) {
            return invalid(format!("the tag {tag:?} is given twice"));
        }
    }
    Ok(())
}

fn validate_options(rule: &Rule) -> ApiResult<()> {
    let Some(options) = &rule.options else { return Ok(()) };
    let invalid = |m: String| Err(ApiError::InvalidArgument(format!("rule {}: {m}", rule.id)));
    if let Err(e) = crate::schedule::Schedule::of(options) {
        return invalid(e);
    }
    if options.concurrency.is_some_and(|c| !(1..=MAX_CONCURRENCY).contains(&c)) {
        return invalid(format!("concurrency must be 1 to {MAX_CONCURRENCY}"));
    }
    if options.qos > 2 {
        return invalid(format!("qos must be 0, 1 or 2, not {}", options.qos));
    }
    if options.late_tolerance_ms.is_some_and(|t| t < 0) {
        return invalid("late_tolerance_ms must not be negative".into());
    }
    if BufferFull::try_from(options.buffer_full).is_err() {
        return invalid(format!("buffer_full must be DROP or BLOCK, not {}", options.buffer_full));
    }
    if !options.log_filename.is_empty() {
        crate::rule_logs::check_name(&options.log_filename)
            .map_err(|e| ApiError::InvalidArgument(format!("rule {}: {e}", rule.id)))?;
    }
    if options.buffer_length == Some(0) {
        return invalid("buffer_length must be at least 1".into());
    }
    if options.checkpoint_interval_ms.is_some_and(|t| t <= 0) {
        return invalid("checkpoint_interval_ms must be positive".into());
    }
    if let Some(restart) = &options.restart_strategy {
        if restart.delay_ms.is_some_and(|d| d < 0) || restart.max_delay_ms.is_some_and(|d| d < 0) {
            return invalid("restart_strategy delays must not be negative".into());
        }
        if restart.multiplier.is_some_and(|m| !(m >= 1.0 && m.is_finite())) {
            return invalid("restart_strategy.multiplier must be at least 1".into());
        }
        if restart.jitter_factor.is_some_and(|j| !(0.0..=1.0).contains(&j)) {
            return invalid("restart_strategy.jitter_factor must be between 0 and 1".into());
        }
    }
    Ok(())
}

/// Checks a rule and returns it normalized for storage (output-only fields
/// set, `triggered` explicit) with the names of the streams it reads.
fn prepare_rule(rule: Option<Rule>) -> ApiResult<(Rule, Vec<String>)> {
    let mut rule = required(rule, "rule")?;
    validate_id(&rule.id)?;
    let query = oort_sql::parse_rule_sql(&rule.sql)?;
    if rule.actions.is_empty() {
        return Err(ApiError::InvalidArgument(format!("rule {} has no actions: give at least one sink", rule.id)));
    }
    if let Some(i) = rule.actions.iter().position(|a| a.r#type.trim().is_empty()) {
        return Err(ApiError::InvalidArgument(format!("rule {}: action {i} has no type", rule.id)));
    }
    validate_options(&rule)?;
    validate_labels(&rule)?;
    let time = now();
    rule.triggered = Some(rule.triggered.unwrap_or(true));
    rule.create_time = Some(time);
    rule.update_time = Some(time);
    let sources = query.source_names().map(str::to_owned).collect();
    Ok((rule, sources))
}

type TailStream = Pin<Box<dyn Stream<Item = Result<TailRuleResponse, Status>> + Send>>;

/// The responses that carry one batch of results from the engine, in order:
/// one event a response, batches of events, or JSON arrays, as the request
/// asked. (A function of its own, collected: the same iterator inside the
/// `stream!` of `tail_rule` fails rustc's check that the stream is `Send`.)
fn tail_responses(batch: &TailBatch, max_batch: usize, encoding: TailEncoding) -> Vec<TailRuleResponse> {
    // Each response says where its rows start and where the next one's do.
    let positioned = |positions: Vec<TailPosition>, response: TailRuleResponse| TailRuleResponse {
        first: positions.first().map(|p| tail_position(*p)),
        next: positions.last().map(|p| tail_position(batch.after(*p))),
        ..response
    };
    match encoding {
        TailEncoding::Unspecified => {
            let timestamp = Some(now());
            let events = batch.rows().map(|(position, row)| {
                let event = Event { fields: map_to_proto(row), timestamp, meta: Default::default() };
                (event.encoded_len(), (position, event))
            });
            (batches(events, max_batch.max(1)))
                .map(|rows| {
                    let (positions, mut events): (Vec<TailPosition>, Vec<Event>) = rows.into_iter().unzip();
                    let response = match max_batch {
                        0 => TailRuleResponse { event: events.pop(), ..Default::default() },
                        _ => TailRuleResponse { events, ..Default::default() },
                    };
                    positioned(positions, response)
                })
                .collect()
        }
        TailEncoding::Json => {
            let objects = batch.rows().map(|(position, row)| {
                let object = oort_engine::json::map_to_json(row).to_string();
                (object.len(), (position, object))
            });
            (batches(objects, max_batch.max(1)))
                .map(|rows| {
                    let (positions, objects): (Vec<TailPosition>, Vec<String>) = rows.into_iter().unzip();
                    let json = format!("[{}]", objects.join(",")).into();
                    positioned(positions, TailRuleResponse { json, ..Default::default() })
                })
                .collect()
        }
    }
}

fn tail_position(position: TailPosition) -> oort_proto::v1::TailPosition {
    oort_proto::v1::TailPosition { result: position.result, row: position.row as u32 }
}

/// Cuts items (with their encoded sizes), in order, into batches of at most
/// `max` items and at most `MAX_TAIL_BATCH_BYTES` (an item larger than that
/// goes alone).
fn batches<T>(items: impl Iterator<Item = (usize, T)>, max: usize) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.peekable();
    std::iter::from_fn(move || {
        let (mut bytes, first) = items.next()?;
        let mut batch = vec![first];
        while batch.len() < max {
            let Some((len, item)) = items.next_if(|(len, _)| bytes + len <= MAX_TAIL_BATCH_BYTES) else { break };
            bytes += len;
            batch.push(item);
        }
        Some(batch)
    })
}

#[tonic::async_trait]
impl RuleService for RuleApi {
    async fn create_rule(&self, request: Request<CreateRuleRequest>) -> Result<Response<CreateRuleResponse>, Status> {
        let (rule, sources) = prepare_rule(request.into_inner().rule)?;
        self.check_limits(&rule)?;
        self.rules.validate(&rule)?;
        let id = rule.id.clone();
        if self.rules.catalog().call(move |c| c.get_rule(&id)).await.is_ok() {
            return Err(ApiError::Store(oort_store::StoreError::AlreadyExists {
                kind: oort_store::EntityKind::Rule,
                name: rule.id.clone(),
            })
            .into());
        }
        // Start before storing: a rule whose connectors refuse to start is not created.
        if rule.triggered == Some(true) {
            self.rules.run(&rule).await?;
        }
        let stored = rule.clone();
        if let Err(error) = self.rules.catalog().call(move |c| c.create_rule(&stored, &sources)).await {
            self.rules.halt(&rule.id).await;
            return Err(error.into());
        }
        tracing::info!(rule = %rule.id, "rule created");
        Ok(Response::new(CreateRuleResponse { rule: Some(redact::redact_rule(rule)) }))
    }

    async fn get_rule(&self, request: Request<GetRuleRequest>) -> Result<Response<GetRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        Ok(Response::new(GetRuleResponse { rule: Some(redact::redact_rule(rule)) }))
    }

    async fn list_rules(&self, request: Request<ListRulesRequest>) -> Result<Response<ListRulesResponse>, Status> {
        let tags = request.into_inner().tags;
        let rules = self.rules.catalog().call(|c| c.list_rules()).await?;
        let mut infos = Vec::with_capacity(rules.len());
        for rule in rules.into_iter().filter(|r| tags.iter().all(|t| r.tags.contains(t))) {
            infos.push(RuleInfo { state: self.state_of(&rule).await as i32, rule: Some(redact::redact_rule(rule)) });
        }
        Ok(Response::new(ListRulesResponse { rules: infos }))
    }

    async fn update_rule(&self, request: Request<UpdateRuleRequest>) -> Result<Response<UpdateRuleResponse>, Status> {
        let (mut rule, sources) = prepare_rule(request.into_inner().rule)?;
        self.check_limits(&rule)?;
        let previous = self.load(rule.id.clone()).await?;
        // Secrets sent back as read (redacted) keep their stored values.
        redact::restore_rule(&mut rule, &previous);
        self.rules.validate(&rule)?;
        rule.create_time = previous.create_time;
        let stored = rule.clone();
        self.rules.catalog().call(move |c| c.update_rule(&stored, &sources)).await?;
        if rule.triggered == Some(true) {
            self.rules.run(&rule).await?;
        } else {
            self.rules.halt(&rule.id).await;
        }
        tracing::info!(rule = %rule.id, "rule updated");
        Ok(Response::new(UpdateRuleResponse { rule: Some(redact::redact_rule(rule)) }))
    }

    async fn delete_rule(&self, request: Request<DeleteRuleRequest>) -> Result<Response<DeleteRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        let (deleted, id) = (rule.id.clone(), rule.id.clone());
        self.rules.catalog().call(move |c| c.delete_rule(&deleted)).await?;
        self.rules.remove(&rule).await;
        tracing::info!(rule = %id, "rule deleted");
        Ok(Response::new(DeleteRuleResponse {}))
    }

    async fn start_rule(&self, request: Request<StartRuleRequest>) -> Result<Response<StartRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        self.rules.run(&rule).await?;
        self.set_triggered(rule, true).await?;
        Ok(Response::new(StartRuleResponse {}))
    }

    async fn stop_rule(&self, request: Request<StopRuleRequest>) -> Result<Response<StopRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        self.rules.halt(&rule.id).await;
        self.set_triggered(rule, false).await?;
        Ok(Response::new(StopRuleResponse {}))
    }

    async fn restart_rule(
        &self,
        request: Request<RestartRuleRequest>,
    ) -> Result<Response<RestartRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        self.rules.restart(&rule).await?;
        self.set_triggered(rule, true).await?;
        Ok(Response::new(RestartRuleResponse {}))
    }

    async fn get_rule_status(
        &self,
        request: Request<GetRuleStatusRequest>,
    ) -> Result<Response<GetRuleStatusResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        let next_run_time = self.rules.next_run(&rule.id).and_then(|at| timestamp_ms(at.timestamp_millis()));
        let response = match self.rules.status(&rule.id).await {
            Some(status) => GetRuleStatusResponse {
                plugins: self.plugin_statuses(&rule.id).await,
                operators: self.operators(&rule.id, status.operators),
                id: rule.id.clone(),
                state: state_to_proto(status.state) as i32,
                last_error: status.last_error.unwrap_or_default(),
                start_time: timestamp_ms(status.start_time_ms),
                restart_count: status.restart_count,
                tail_missed_total: status.tail_missed,
                delivery: Some(crate::convert::delivery_to_proto(&status.delivery)),
                checkpoints: Some(crate::convert::checkpoints_to_proto(&status.checkpoints)),
                ..Default::default()
            },
            None => {
                GetRuleStatusResponse { id: rule.id.clone(), state: RuleState::Stopped as i32, ..Default::default() }
            }
        };
        let (split, distribution) = (self.rules.is_split(&rule.id), self.rules.distribution(&rule).unwrap_or_default());
        let owner = if split { String::new() } else { self.rules.owner(&response.id).unwrap_or_default() };
        let partitions = crate::partitions::status(&self.rules, self.connections.as_deref(), &rule.id).await;
        let response = GetRuleStatusResponse { next_run_time, owner, distribution, partitions, ..response };
        Ok(Response::new(response))
    }

    type TailRuleStream = TailStream;

    async fn tail_rule(&self, request: Request<TailRuleRequest>) -> Result<Response<Self::TailRuleStream>, Status> {
        let TailRuleRequest { id, max_batch, encoding, from } = request.into_inner();
        let from = from.map(|p| TailPosition { result: p.result, row: p.row as usize });
        let max_batch = (max_batch as usize).min(MAX_TAIL_BATCH);
        let encoding = TailEncoding::try_from(encoding)
            .map_err(|_| ApiError::InvalidArgument(format!("unknown TailRule encoding {encoding}")))?;
        let rule = self.load(id.clone()).await?;
        let mut reader = self
            .rules
            .engine()
            .subscribe(&rule.id, from)
            .await
            .ok_or_else(|| {
                ApiError::FailedPrecondition(format!("rule {id} is not running: start it to tail its output"))
            })?
            .map_err(|e| Status::out_of_range(format!("rule {id}: {e}")))?;
        let stream = async_stream::stream! {
            loop {
                match reader.recv().await {
                    // Each batch from the engine goes out at once, in as many
                    // responses as it needs: batching adds no wait.
                    TailEvent::Results(batch) => {
                        for response in tail_responses(&batch, max_batch, encoding) {
                            yield Ok(response);
                        }
                    }
                    // Nothing is lost in silence: the reader is told, the count kept.
                    TailEvent::Missed(lost) => {
                        tracing::warn!(rule = %id, lost, "TailRule reader fell behind; its stream ends with DATA_LOSS");
                        yield Err(Status::data_loss(format!(
                            "this TailRule reader fell more than {} MiB of results behind rule {id} and missed {lost} results; reopen the tail, and read faster or ask for batches (max_batch)",
                            reader.max_bytes >> 20
                        )));
                        break;
                    }
                    TailEvent::Closed => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn explain_rule(
        &self,
        request: Request<ExplainRuleRequest>,
    ) -> Result<Response<ExplainRuleResponse>, Status> {
        let rule = self.load(request.into_inner().id).await?;
        let plan = self.rules.validate(&rule)?;
        Ok(Response::new(ExplainRuleResponse { plan }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_proto::v1::{Action, RestartStrategy, RuleOptions};

    fn rule(id: &str, sql: &str) -> Rule {
        Rule {
            id: id.into(),
            sql: sql.into(),
            actions: vec![Action { r#type: "log".into(), props: None }],
            ..Default::default()
        }
    }

    #[test]
    fn tail_batches_keep_the_order_within_the_count_and_the_size() {
        let event = |kib: usize| {
            let value =
                oort_proto::v1::Value { kind: Some(oort_proto::v1::value::Kind::StringValue("x".repeat(kib << 10))) };
            Event { fields: [("s".to_owned(), value)].into(), ..Default::default() }
        };
        let cut = |events: Vec<Event>, max: usize| {
            let sized = events.clone().into_iter().map(|event| (event.encoded_len(), event));
            let batches: Vec<Vec<Event>> = batches(sized, max).collect();
            assert_eq!(batches.concat(), events, "every event, in order");
            batches.iter().map(Vec::len).collect::<Vec<_>>()
        };
        assert_eq!(cut((0..10).map(|_| event(0)).collect(), 4), [4, 4, 2]);
        assert_eq!(cut(vec![], 4), [0usize; 0]);
        // Two of 400 KiB fit in 1 MiB, three do not; one of 2 MiB goes alone.
        assert_eq!(cut([400, 400, 400, 2048, 1].map(event).into(), 100), [2, 1, 1, 1]);
    }

    #[test]
    fn prepares_a_valid_rule() {
        let (rule, sources) = prepare_rule(Some(rule("r-1.a", "SELECT * FROM demo"))).unwrap();
        assert_eq!(rule.triggered, Some(true));
        assert!(rule.create_time.is_some());
        assert_eq!(sources, ["demo"]);
    }

    #[test]
    fn refuses_bad_rules_with_reasons() {
        let cases = [
            (Some(rule("", "SELECT * FROM demo")), "invalid rule id"),
            (Some(rule("a b", "SELECT * FROM demo")), "invalid rule id"),
            (Some(rule("r", "SELEC * FROM demo")), "line 1"),
            (Some(Rule { actions: vec![], ..rule("r", "SELECT * FROM demo") }), "no actions"),
            (None, "`rule` is required"),
        ];
        for (input, expected) in cases {
            let err = prepare_rule(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
        let mut bad = rule("r", "SELECT * FROM demo");
        bad.options = Some(RuleOptions {
            restart_strategy: Some(RestartStrategy { jitter_factor: Some(2.0), ..Default::default() }),
            ..Default::default()
        });
        assert!(prepare_rule(Some(bad)).unwrap_err().to_string().contains("jitter_factor"));
    }
}
