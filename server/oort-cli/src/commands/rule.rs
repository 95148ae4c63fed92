//! `oort rule create|update|list|describe|drop|start|stop|restart|status|explain|tail`.

use std::path::Path;

use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::{
    Action, CreateRuleRequest, DeleteRuleRequest, DeliveryGuarantee, ExplainRuleRequest, GetRuleRequest,
    GetRuleStatusRequest, GetRuleStatusResponse, ListRulesRequest, RestartRuleRequest, Rule, RuleInfo, RuleOptions,
    StartRuleRequest, StopRuleRequest, TailRuleRequest, TailRuleResponse, UpdateRuleRequest,
};

use super::{Ctx, input_name, read_input};
use crate::cli::{RuleCommand, RuleInput};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{self, emit, indent, key_values, or_dash, print_json, print_table, render, table, timestamp};
use crate::rule_file;

/// Longest SQL cell in `rule list` before it is cut.
const SQL_WIDTH: usize = 60;

/// Results per TailRule response that `rule tail` asks for: a fast rule costs
/// a message per batch, not per result; each result still prints on its line.
const TAIL_BATCH: u32 = 256;

/// Runs one `oort rule` subcommand.
pub async fn run(ctx: &Ctx, command: RuleCommand) -> Result<(), Error> {
    match command {
        RuleCommand::Create(input) => create(ctx, rule_for_create(&input)?).await,
        RuleCommand::Update(input) => update(ctx, &input).await,
        RuleCommand::List { tags } => list(ctx, tags).await,
        RuleCommand::Describe(rule) => describe(ctx, rule.id).await,
        RuleCommand::Drop(rule) => delete(ctx, rule.id).await,
        RuleCommand::Start(rule) => start(ctx, rule.id).await,
        RuleCommand::Stop(rule) => stop(ctx, rule.id).await,
        RuleCommand::Restart(rule) => restart(ctx, rule.id).await,
        RuleCommand::Status(rule) => status(ctx, rule.id).await,
        RuleCommand::Explain(rule) => explain(ctx, rule.id).await,
        RuleCommand::Tail(args) => tail(ctx, args.id, args.from).await,
    }
}

async fn client(ctx: &Ctx) -> Result<RuleServiceClient<Conn>, Error> {
    Ok(RuleServiceClient::new(ctx.channel().await?))
}

/// The rule to create, from `--file` or from `ID --sql --action...`.
fn rule_for_create(input: &RuleInput) -> Result<Rule, Error> {
    let mut rule = match &input.file {
        Some(path) => rule_from_file(path, input.id.as_deref())?,
        None => {
            let id = input.id.as_deref().ok_or_else(|| {
                Error::usage("give the rule ID with --sql and --action, or --file with a rule JSON file")
            })?;
            let sql = input.sql.as_deref().ok_or_else(|| Error::usage("--sql is required unless --file is given"))?;
            rule_file::rule_from_flags(id, sql, &input.actions, input.options.as_deref()).map_err(Error::Usage)?
        }
    };
    if input.no_start {
        rule.triggered = Some(false);
    }
    Ok(rule)
}

fn rule_from_file(path: &Path, cli_id: Option<&str>) -> Result<Rule, Error> {
    let text = read_input(path)?;
    rule_file::rule_from_json(&text, cli_id).map_err(|e| Error::usage(format!("{}: {e}", input_name(path))))
}

async fn create(ctx: &Ctx, rule: Rule) -> Result<(), Error> {
    let response = client(ctx).await?.create_rule(CreateRuleRequest { rule: Some(rule) }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let rule = response.rule.unwrap_or_default();
    let suffix = if rule.triggered == Some(false) { " (not started)" } else { "" };
    emit(&format!("Rule {} created{suffix}.", rule.id))
}

/// The parts of a rule that `rule update ID --flags` replaces; the rest is
/// kept from the current rule, so users need not restate everything.
#[derive(Debug, Default)]
struct RulePatch {
    sql: Option<String>,
    actions: Option<Vec<Action>>,
    options: Option<RuleOptions>,
    stop: bool,
}

impl RulePatch {
    /// Parses the flags before connecting, so mistakes exit with 2.
    fn from_input(input: &RuleInput) -> Result<Self, Error> {
        let actions = input
            .actions
            .iter()
            .map(|a| rule_file::action_from_flag(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Usage)?;
        let patch = RulePatch {
            sql: input.sql.clone(),
            actions: if actions.is_empty() { None } else { Some(actions) },
            options: input.options.as_deref().map(rule_file::options_from_json).transpose().map_err(Error::Usage)?,
            stop: input.no_start,
        };
        if patch.sql.is_none() && patch.actions.is_none() && patch.options.is_none() && !patch.stop {
            return Err(Error::usage("nothing to update: give --sql, --action, --options or --no-start, or --file"));
        }
        Ok(patch)
    }

    fn apply(self, mut rule: Rule) -> Rule {
        rule.sql = self.sql.unwrap_or(rule.sql);
        rule.actions = self.actions.unwrap_or(rule.actions);
        rule.options = self.options.or(rule.options);
        if self.stop {
            rule.triggered = Some(false);
        }
        rule.create_time = None;
        rule.update_time = None;
        rule
    }
}

/// With `--file`, the file replaces the rule; with flags, they patch it.
async fn update(ctx: &Ctx, input: &RuleInput) -> Result<(), Error> {
    let rule = if input.file.is_some() {
        let rule = rule_for_create(input)?;
        client(ctx).await?.update_rule(UpdateRuleRequest { rule: Some(rule) }).await?.into_inner()
    } else {
        let id = input.id.clone().ok_or_else(|| Error::usage("give the ID of the rule to update, or --file"))?;
        let patch = RulePatch::from_input(input)?;
        let mut client = client(ctx).await?;
        let current = client.get_rule(GetRuleRequest { id }).await?.into_inner().rule.unwrap_or_default();
        let rule = patch.apply(current);
        client.update_rule(UpdateRuleRequest { rule: Some(rule) }).await?.into_inner()
    };
    if ctx.json {
        return print_json(&rule);
    }
    emit(&format!("Rule {} updated.", rule.rule.unwrap_or_default().id))
}

async fn list(ctx: &Ctx, tags: Vec<String>) -> Result<(), Error> {
    let response = client(ctx).await?.list_rules(ListRulesRequest { tags }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.rules.is_empty() {
        return emit("No rules.");
    }
    print_table(&list_table(&response.rules))
}

/// ID, STATE, SQL (flattened and cut), ACTIONS, TAGS: one row per rule.
fn list_table(rules: &[RuleInfo]) -> comfy_table::Table {
    let mut table = table(["ID", "STATE", "SQL", "ACTIONS", "TAGS"]);
    for info in rules {
        let rule = info.rule.clone().unwrap_or_default();
        let actions: Vec<&str> = rule.actions.iter().map(|a| a.r#type.as_str()).collect();
        table.add_row(vec![
            rule.id.clone(),
            output::state_word(info.state()).to_string(),
            output::one_line(&rule.sql, SQL_WIDTH),
            or_dash(&actions.join(",")),
            or_dash(&rule.tags.join(",")),
        ]);
    }
    table
}

async fn describe(ctx: &Ctx, id: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_rule(GetRuleRequest { id }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&describe_text(&response.rule.unwrap_or_default()))
}

/// Id and times, then the SQL, then actions and options in eKuiper JSON, so
/// they can be pasted back into a rule file.
fn describe_text(rule: &Rule) -> String {
    let triggered = match rule.triggered {
        Some(false) => "no",
        Some(true) | None => "yes",
    };
    let header = key_values(&[
        ("ID", rule.id.clone()),
        ("Triggered", triggered.to_string()),
        ("Created", timestamp(rule.create_time.as_ref())),
        ("Updated", timestamp(rule.update_time.as_ref())),
    ]);
    let actions = pretty(&rule_file::actions_to_json(&rule.actions));
    let options =
        rule.options.as_ref().map_or_else(|| "(defaults)".to_string(), |o| pretty(&rule_file::options_to_json(o)));
    format!(
        "{}\n\nSQL:\n{}\n\nActions:\n{}\n\nOptions:\n{}",
        render(&header),
        indent(rule.sql.trim()),
        indent(&actions),
        indent(&options)
    )
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

async fn delete(ctx: &Ctx, id: String) -> Result<(), Error> {
    let request = DeleteRuleRequest { id: id.clone() };
    let response = client(ctx).await?.delete_rule(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Rule {id} dropped."))
}

async fn start(ctx: &Ctx, id: String) -> Result<(), Error> {
    let request = StartRuleRequest { id: id.clone() };
    let response = client(ctx).await?.start_rule(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Rule {id} started."))
}

async fn stop(ctx: &Ctx, id: String) -> Result<(), Error> {
    let request = StopRuleRequest { id: id.clone() };
    let response = client(ctx).await?.stop_rule(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Rule {id} stopped."))
}

async fn restart(ctx: &Ctx, id: String) -> Result<(), Error> {
    let request = RestartRuleRequest { id: id.clone() };
    let response = client(ctx).await?.restart_rule(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&format!("Rule {id} restarted."))
}

async fn status(ctx: &Ctx, id: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_rule_status(GetRuleStatusRequest { id }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&status_text(&response))
}

/// State, last error, restart count and delivery guarantee, then one row of
/// eKuiper-named counters per operator.
fn status_text(status: &GetRuleStatusResponse) -> String {
    let mut rows = vec![
        ("Rule", status.id.clone()),
        ("State", output::state_word(status.state()).to_string()),
        ("Started", timestamp(status.start_time.as_ref())),
        ("Restarts", status.restart_count.to_string()),
        ("Last error", or_dash(&status.last_error)),
        ("Delivery", status.delivery.as_ref().map_or_else(|| "-".to_owned(), delivery_text)),
        ("Checkpoints", status.checkpoints.as_ref().map_or_else(|| "-".to_owned(), checkpoints_text)),
    ];
    if !status.owner.is_empty() {
        rows.insert(2, ("Runs on", status.owner.clone()));
    }
    if !status.distribution.is_empty() {
        rows.insert(2, ("Distribution", status.distribution.clone()));
    }
    let mut header = render(&key_values(&rows));
    if !status.partitions.is_empty() {
        let mut partitions = table(["TOPIC", "PARTITION", "OWNER", "LAG"]);
        for p in &status.partitions {
            let lag = p.lag.map_or_else(|| "-".to_owned(), |lag| lag.to_string());
            partitions.add_row(vec![p.topic.clone(), p.partition.to_string(), or_dash(&p.owner), lag]);
        }
        header = format!("{header}\n\n{}", render(&partitions));
    }
    if status.operators.is_empty() {
        return header;
    }
    let mut operators = table([
        "OPERATOR",
        "records_in_total",
        "records_out_total",
        "exceptions_total",
        "records_dropped_total",
        "process_latency_us",
        "buffer_length",
        "connection",
        "last_exception",
    ]);
    for op in &status.operators {
        operators.add_row(vec![
            op.name.clone(),
            op.records_in_total.to_string(),
            op.records_out_total.to_string(),
            op.exceptions_total.to_string(),
            op.records_dropped_total.to_string(),
            op.process_latency_us.to_string(),
            op.buffer_length.to_string(),
            output::connection_text(op),
            or_dash(&op.last_exception),
        ]);
    }
    format!("{header}\n\n{}", render(&operators))
}

/// "none", or the last checkpoint, the one restored, and failures.
fn checkpoints_text(checkpoints: &oort_proto::v1::Checkpoints) -> String {
    if !checkpoints.enabled {
        return "none".to_owned();
    }
    let one = |c: &oort_proto::v1::Checkpoint| {
        format!(
            "#{} at {}, {} bytes, {} ms, source position {}",
            c.id,
            timestamp(c.taken_time.as_ref()),
            c.size_bytes,
            c.duration_ms,
            c.source_position
        )
    };
    let mut parts =
        vec![checkpoints.last.as_ref().map_or_else(|| "none saved yet".to_owned(), |c| format!("last {}", one(c)))];
    if let Some(restored) = &checkpoints.restored {
        parts.push(format!("restarted from {}, {} events replayed", one(restored), checkpoints.replayed_events));
    }
    if checkpoints.failures_total > 0 {
        parts.push(format!("{} failed", checkpoints.failures_total));
    }
    if !checkpoints.last_error.is_empty() {
        parts.push(checkpoints.last_error.clone());
    }
    parts.join("; ")
}

/// "at most once", or "at most once (qos asks for at least once): why".
fn delivery_text(delivery: &oort_proto::v1::Delivery) -> String {
    let words = |g: DeliveryGuarantee| match g {
        DeliveryGuarantee::AtMostOnce => "at most once",
        DeliveryGuarantee::AtLeastOnce => "at least once",
        DeliveryGuarantee::ExactlyOnce => "exactly once",
        DeliveryGuarantee::Unspecified => "-",
    };
    let provided = words(delivery.provided());
    if delivery.reason.is_empty() {
        return provided.to_owned();
    }
    format!("{provided} (qos asks for {}): {}", words(delivery.requested()), delivery.reason)
}

async fn explain(ctx: &Ctx, id: String) -> Result<(), Error> {
    let response = client(ctx).await?.explain_rule(ExplainRuleRequest { id }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&response.plan)
}

/// Prints results until the server ends the stream or the user presses Ctrl-C;
/// both are a normal end (exit 0). An explicit `--timeout` ends it too, as
/// an error.
async fn tail(ctx: &Ctx, id: String, from: Option<oort_proto::v1::TailPosition>) -> Result<(), Error> {
    let request = TailRuleRequest { id, max_batch: TAIL_BATCH, from, ..Default::default() };
    let mut stream = RuleServiceClient::new(ctx.long_channel().await?).tail_rule(request).await?.into_inner();
    // One future for the whole loop, so a Ctrl-C between two events is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let deadline = async {
        match ctx.timeout() {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            message = stream.message() => match message? {
                Some(message) => print_tail(ctx, message)?,
                None => return Ok(()),
            },
            _ = &mut ctrl_c => return Ok(()),
            () = &mut deadline => {
                return Err(tonic::Status::deadline_exceeded("the tail reached --timeout").into());
            }
        }
    }
}

/// One line per event: with `--json`, a TailRuleResponse of that event alone
/// (in `event`, as an unbatched tail sends it) in proto3 JSON, the last of
/// the response with its `next`; otherwise the event's columns as a plain
/// JSON object.
fn print_tail(ctx: &Ctx, message: TailRuleResponse) -> Result<(), Error> {
    // An oortd older than `max_batch` answers in `event`.
    let events: Vec<_> = message.event.into_iter().chain(message.events).collect();
    let last = events.len().saturating_sub(1);
    for (i, event) in events.into_iter().enumerate() {
        if ctx.json {
            let next = if i == last { message.next } else { None };
            output::print_json_line(&TailRuleResponse { event: Some(event), next, ..Default::default() })?;
        } else {
            emit(&output::event_to_json(&event).to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oort_proto::v1::{GetRuleStatusResponse, OperatorStatus, RuleState};

    use super::*;

    fn input(args: &[&str]) -> RuleInput {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["oort", "rule", "create"].iter().chain(args)).expect("parses");
        match cli.command {
            crate::cli::Command::Rule(RuleCommand::Create(input)) => input,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn create_from_flags() {
        let rule =
            rule_for_create(&input(&["r1", "--sql", "SELECT * FROM demo", "--action", "log", "--no-start"])).unwrap();
        assert_eq!(rule.id, "r1");
        assert_eq!(rule.actions[0].r#type, "log");
        assert_eq!(rule.triggered, Some(false));
    }

    #[test]
    fn create_from_flags_needs_id_sql_and_action() {
        for args in
            [&["--sql", "SELECT 1", "--action", "log"][..], &["r1", "--action", "log"], &["r1", "--sql", "SELECT 1"]]
        {
            assert!(matches!(rule_for_create(&input(args)), Err(Error::Usage(_))), "{args:?}");
        }
    }

    #[test]
    fn create_from_missing_file_is_a_usage_error() {
        let err = rule_for_create(&input(&["--file", "/nonexistent/rule.json"])).unwrap_err();
        assert!(matches!(err, Error::Usage(_)));
    }

    #[test]
    fn patch_keeps_what_is_not_given() {
        let current = rule_file::rule_from_json(
            r#"{"id":"r","sql":"SELECT 1 FROM s","actions":[{"log":{}}],"options":{"qos":1},"triggered":true}"#,
            None,
        )
        .unwrap();
        let patch = RulePatch::from_input(&input(&["r", "--sql", "SELECT 2 FROM s"])).unwrap();
        let updated = patch.apply(current);
        assert_eq!(updated.sql, "SELECT 2 FROM s");
        assert_eq!(updated.actions[0].r#type, "log");
        assert_eq!(updated.options.map(|o| o.qos), Some(1));
        assert_eq!(updated.triggered, Some(true));
    }

    #[test]
    fn empty_patch_is_a_usage_error() {
        assert!(matches!(RulePatch::from_input(&input(&["r"])), Err(Error::Usage(_))));
    }

    #[test]
    fn list_row_has_state_and_flat_sql() {
        let rule = rule_file::rule_from_json(
            r#"{"id":"r1","sql":"SELECT *\nFROM demo","actions":[{"log":{}},{"mqtt":{}}]}"#,
            None,
        )
        .unwrap();
        let info = RuleInfo { rule: Some(rule), state: RuleState::Running as i32 };
        let text = render(&list_table(&[info]));
        let row = text.lines().nth(1).unwrap_or_default();
        assert!(row.starts_with("r1") && row.contains("running") && row.contains("SELECT * FROM demo"), "{text}");
        assert!(row.contains("log,mqtt"), "{text}");
    }

    #[test]
    fn describe_shows_actions_as_ekuiper_json() {
        let rule = rule_file::rule_from_json(
            r#"{"id":"r1","sql":"SELECT * FROM demo","actions":[{"mqtt":{"topic":"out"}}]}"#,
            None,
        )
        .unwrap();
        let text = describe_text(&rule);
        assert!(text.contains("\"mqtt\": {"), "{text}");
        assert!(text.contains("\"topic\": \"out\""), "{text}");
        assert!(text.contains("(defaults)"), "{text}");
    }

    #[test]
    fn status_shows_counters_by_ekuiper_name() {
        let status = GetRuleStatusResponse {
            id: "r1".into(),
            state: RuleState::Running as i32,
            operators: vec![OperatorStatus {
                name: "source_demo_0".into(),
                records_in_total: 10,
                records_out_total: 9,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = status_text(&status);
        for part in
            ["State:", "running", "Restarts:", "Delivery:", "records_in_total", "last_exception", "source_demo_0"]
        {
            assert!(text.contains(part), "{part} missing in\n{text}");
        }
    }

    #[test]
    fn status_shows_a_split_rules_distribution_and_partitions() {
        let partition = |partition: i32, owner: &str, lag: Option<i64>| oort_proto::v1::PartitionStatus {
            topic: "readings".into(),
            partition,
            owner: owner.into(),
            lag,
        };
        let status = GetRuleStatusResponse {
            id: "r1".into(),
            distribution: "split over its source's partitions, by device".into(),
            partitions: vec![partition(0, "oortd-a", Some(3)), partition(1, "oortd-b", None)],
            ..Default::default()
        };
        let text = status_text(&status);
        assert!(text.contains("Distribution:") && text.contains("by device"), "{text}");
        let row = |p: &str| text.lines().find(|l| l.contains("readings") && l.contains(p)).unwrap_or_default();
        assert!(row("oortd-a").contains('3'), "{text}");
        assert!(row("oortd-b").contains('-'), "an unknown lag is a dash:\n{text}");
        assert!(!text.contains("Runs on"), "{text}");
    }
}
