//! `oort.v1.RuleService`: rule definitions in the catalog. Running rules, their
//! status, plans and output belong to the engine, which is not built yet; those
//! calls answer UNIMPLEMENTED rather than pretend.

use std::pin::Pin;

use oort_proto::v1::rule_service_server::RuleService;
use oort_proto::v1::{
    CreateRuleRequest, CreateRuleResponse, DeleteRuleRequest, DeleteRuleResponse, ExplainRuleRequest,
    ExplainRuleResponse, GetRuleRequest, GetRuleResponse, GetRuleStatusRequest, GetRuleStatusResponse,
    ListRulesRequest, ListRulesResponse, RestartRuleRequest, RestartRuleResponse, Rule, RuleInfo, RuleState,
    StartRuleRequest, StartRuleResponse, StopRuleRequest, StopRuleResponse, TailRuleRequest, TailRuleResponse,
    UpdateRuleRequest, UpdateRuleResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{CatalogHandle, now, required};
use crate::error::{ApiError, ApiResult};

const NO_ENGINE: &str = "rules are stored but not run yet: the streaming engine (start, stop, status, tail, explain) is not built in this version of oortd";

/// Longest accepted rule id.
const MAX_ID_LEN: usize = 128;

/// Serves `RuleService` over the catalog.
pub struct RuleApi {
    catalog: CatalogHandle,
}

impl RuleApi {
    /// A service over `catalog`.
    pub fn new(catalog: CatalogHandle) -> Self {
        Self { catalog }
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

fn validate_options(rule: &Rule) -> ApiResult<()> {
    let Some(options) = &rule.options else { return Ok(()) };
    let invalid = |m: String| Err(ApiError::InvalidArgument(format!("rule {}: {m}", rule.id)));
    if options.qos > 2 {
        return invalid(format!("qos must be 0, 1 or 2, not {}", options.qos));
    }
    if options.late_tolerance_ms.is_some_and(|t| t < 0) {
        return invalid("late_tolerance_ms must not be negative".into());
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
    let time = now();
    rule.triggered = Some(rule.triggered.unwrap_or(true));
    rule.create_time = Some(time);
    rule.update_time = Some(time);
    let sources = query.source_names().map(str::to_owned).collect();
    Ok((rule, sources))
}

/// The state a stored rule is in. Without an engine nothing runs.
fn state_of(_rule: &Rule) -> RuleState {
    RuleState::Stopped
}

type TailStream = Pin<Box<dyn Stream<Item = Result<TailRuleResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuleService for RuleApi {
    async fn create_rule(&self, request: Request<CreateRuleRequest>) -> Result<Response<CreateRuleResponse>, Status> {
        let (rule, sources) = prepare_rule(request.into_inner().rule)?;
        let stored = rule.clone();
        self.catalog.call(move |c| c.create_rule(&stored, &sources)).await?;
        tracing::info!(rule = %rule.id, "rule created");
        Ok(Response::new(CreateRuleResponse { rule: Some(rule) }))
    }

    async fn get_rule(&self, request: Request<GetRuleRequest>) -> Result<Response<GetRuleResponse>, Status> {
        let id = request.into_inner().id;
        let rule = self.catalog.call(move |c| c.get_rule(&id)).await?;
        Ok(Response::new(GetRuleResponse { rule: Some(rule) }))
    }

    async fn list_rules(&self, _request: Request<ListRulesRequest>) -> Result<Response<ListRulesResponse>, Status> {
        let rules = self.catalog.call(|c| c.list_rules()).await?;
        let rules =
            rules.into_iter().map(|rule| RuleInfo { state: state_of(&rule) as i32, rule: Some(rule) }).collect();
        Ok(Response::new(ListRulesResponse { rules }))
    }

    async fn update_rule(&self, request: Request<UpdateRuleRequest>) -> Result<Response<UpdateRuleResponse>, Status> {
        let (mut rule, sources) = prepare_rule(request.into_inner().rule)?;
        let id = rule.id.clone();
        let previous = self.catalog.call(move |c| c.get_rule(&id)).await?;
        rule.create_time = previous.create_time;
        let stored = rule.clone();
        self.catalog.call(move |c| c.update_rule(&stored, &sources)).await?;
        tracing::info!(rule = %rule.id, "rule updated");
        Ok(Response::new(UpdateRuleResponse { rule: Some(rule) }))
    }

    async fn delete_rule(&self, request: Request<DeleteRuleRequest>) -> Result<Response<DeleteRuleResponse>, Status> {
        let id = request.into_inner().id;
        let deleted = id.clone();
        self.catalog.call(move |c| c.delete_rule(&deleted)).await?;
        tracing::info!(rule = %id, "rule deleted");
        Ok(Response::new(DeleteRuleResponse {}))
    }

    async fn start_rule(&self, _: Request<StartRuleRequest>) -> Result<Response<StartRuleResponse>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
    }

    async fn stop_rule(&self, _: Request<StopRuleRequest>) -> Result<Response<StopRuleResponse>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
    }

    async fn restart_rule(&self, _: Request<RestartRuleRequest>) -> Result<Response<RestartRuleResponse>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
    }

    async fn get_rule_status(
        &self,
        _: Request<GetRuleStatusRequest>,
    ) -> Result<Response<GetRuleStatusResponse>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
    }

    type TailRuleStream = TailStream;

    async fn tail_rule(&self, _: Request<TailRuleRequest>) -> Result<Response<Self::TailRuleStream>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
    }

    async fn explain_rule(&self, _: Request<ExplainRuleRequest>) -> Result<Response<ExplainRuleResponse>, Status> {
        Err(ApiError::Unimplemented(NO_ENGINE).into())
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
