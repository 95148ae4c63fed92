//! The planner: rule SQL and the streams it reads → a validated [`RulePlan`],
//! the pipeline source → decode → filter → window → aggregate → having →
//! project → order → sinks. Everything a rule needs is checked here, so that
//! a rule that cannot run is refused at creation, with positions.

use std::fmt::Write as _;

use oort_sql::sqlparser::ast::{Expr as SqlExpr, JoinConstraint, JoinOperator, Select, Spanned};
use oort_sql::{Position, SqlError, StreamDef, StreamKind, WindowSpec};

use crate::analytic::{AnalyticCall, AnalyticCalls};
use crate::connector::ConnectorRegistry;
use crate::expr::{self, CompileContext, Expr, Projection, SourceSchema};
use crate::function::{FunctionMeta, FunctionRegistry};
use crate::rule::{ActionDefinition, RuleDefinition, RuleOptions};

/// Why a rule cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The SQL is wrong; carries the position.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A stream the rule reads does not exist.
    #[error("stream '{0}' not found")]
    UnknownStream(String),
    /// The rule uses something the engine cannot do yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A stream's TYPE has no registered source.
    #[error("stream '{stream}' has TYPE=\"{source_type}\", which is not a known source; known: {known}")]
    UnknownSource { stream: String, source_type: String, known: String },
    /// An action's type has no registered sink.
    #[error("action {index} has type \"{sink_type}\", which is not a known sink; known: {known}")]
    UnknownSink { index: usize, sink_type: String, known: String },
    /// An action's properties are wrong where the engine reads them (the sink cache's).
    #[error("action {index}: {message}")]
    ActionProps { index: usize, message: String },
}

/// Finds stream definitions by name.
pub trait StreamLookup {
    /// The definition of a stream or table, if it exists.
    fn stream(&self, name: &str) -> Option<StreamDef>;
}

impl<F: Fn(&str) -> Option<StreamDef>> StreamLookup for F {
    fn stream(&self, name: &str) -> Option<StreamDef> {
        self(name)
    }
}

/// A compiled expression with its SQL text, for EXPLAIN.
#[derive(Debug)]
pub struct Compiled {
    /// The expression.
    pub expr: Expr,
    /// Its SQL text.
    pub sql: String,
}

/// How an event meets a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only events with a matching table row go on.
    Inner,
    /// Every event goes on; without a match the table's columns are NULL.
    Left,
}

/// A table joined to the rule's stream.
#[derive(Debug)]
pub struct TableJoin {
    /// The table's definition.
    pub table: StreamDef,
    /// The name expressions use for it (its alias, or its name).
    pub reference: String,
    /// INNER or LEFT.
    pub kind: JoinKind,
    /// The ON condition; `None` for a CROSS join.
    pub on: Option<Compiled>,
}

/// A validated rule, ready to run.
#[derive(Debug)]
pub struct RulePlan {
    /// Rule id.
    pub rule_id: String,
    /// The rule's SQL, as written.
    pub sql: String,
    /// The stream the rule reads.
    pub stream: StreamDef,
    /// The name expressions use for the stream (its alias, or its name).
    pub stream_reference: String,
    /// Tables joined to each event, in order.
    pub tables: Vec<TableJoin>,
    /// WHERE.
    pub filter: Option<Compiled>,
    /// The window in GROUP BY.
    pub window: Option<WindowSpec>,
    /// The window's `FILTER (WHERE …)`: the rows that enter it.
    pub window_filter: Option<Compiled>,
    /// A sliding window's `OVER (WHEN …)`: the rows that trigger one.
    pub window_trigger: Option<Compiled>,
    /// A state window's condition, or its `begin` and `emit`.
    pub window_conditions: Vec<Compiled>,
    /// A state window's `OVER (PARTITION BY …)`.
    pub window_partition: Vec<Compiled>,
    /// GROUP BY expressions other than the window.
    pub dimensions: Vec<Compiled>,
    /// HAVING.
    pub having: Option<Compiled>,
    /// The SELECT list.
    pub projection: Projection,
    /// SELECT list text, for EXPLAIN.
    pub projection_sql: String,
    /// ORDER BY expressions (over the output columns) and whether ascending.
    pub order_by: Vec<(Compiled, bool)>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// The analytic calls, evaluated on each event before WHERE, in this
    /// order; [`Expr::Analytic`] reads a call's result by its index here.
    pub analytics: Vec<AnalyticCall>,
    /// Whether it reads its hits (`last_hit_*`, `last_agg_hit_*`): its events
    /// (or window groups) then go through WHERE (HAVING) and SELECT one by one.
    pub reads_hits: bool,
    /// Where results go.
    pub actions: Vec<ActionDefinition>,
    /// Runtime options.
    pub options: RuleOptions,
}

impl RulePlan {
    /// Every expression of the plan: WHERE, joins, GROUP BY, HAVING, SELECT, ORDER BY.
    pub fn expressions(&self) -> Vec<&Expr> {
        let mut all: Vec<&Expr> = Vec::new();
        for call in &self.analytics {
            all.extend(call.args.iter().chain(&call.partition).chain(&call.when));
        }
        all.extend(self.filter.iter().map(|c| &c.expr));
        all.extend(self.window_filter.iter().chain(&self.window_trigger).map(|c| &c.expr));
        all.extend(self.window_conditions.iter().chain(&self.window_partition).map(|c| &c.expr));
        all.extend(self.tables.iter().filter_map(|t| t.on.as_ref()).map(|c| &c.expr));
        all.extend(self.dimensions.iter().map(|c| &c.expr));
        all.extend(self.having.iter().map(|c| &c.expr));
        all.extend(self.projection.exprs().map(|(_, e)| e));
        all.extend(self.order_by.iter().map(|(c, _)| &c.expr));
        all
    }

    /// Whether the rule calls a function of this origin provided by `owner`
    /// (a plugin or an external service).
    pub fn calls_owner(&self, origin: crate::FunctionOrigin, owner: &str) -> bool {
        let mut found = false;
        for expr in self.expressions() {
            expr.walk(&mut |e| {
                if let Expr::Call(call) = e {
                    let meta = call.function.meta();
                    found |= meta.origin == origin && meta.owner == owner;
                }
            });
        }
        found
    }

    /// Whether the rule calls a function answered by another process or a
    /// service ([`Calling::is_remote`](crate::function::Calling::is_remote)), whose
    /// answers the rule task overlaps with the next batches' evaluation.
    pub fn calls_remote(&self) -> bool {
        self.functions().iter().any(|f| f.calling.is_remote())
    }

    /// Whether the rule calls a function whose calls hold the calling thread
    /// ([`Calling::Blocking`](crate::function::Calling::Blocking)).
    pub fn calls_blocking(&self) -> bool {
        self.functions().iter().any(|f| f.calling == crate::function::Calling::Blocking)
    }

    /// Whether results come per group (a window or GROUP BY) rather than per event.
    pub fn is_grouped(&self) -> bool {
        self.window.is_some() || !self.dimensions.is_empty()
    }

    /// Whether WHERE applies to a window's rows rather than to each event: as in
    /// eKuiper, count and sliding windows are triggered by every event, including
    /// those WHERE drops.
    pub fn filters_after_window(&self) -> bool {
        matches!(self.window, Some(WindowSpec::Count { .. } | WindowSpec::Sliding { .. }))
    }

    /// The functions the rule calls, each once, ordered by name: what a plugin
    /// host needs to know which rules use a plugin.
    pub fn functions(&self) -> Vec<FunctionMeta> {
        let mut found: Vec<FunctionMeta> = Vec::new();
        for expr in self.expressions() {
            expr.walk(&mut |e| {
                if let Expr::Call(call) = e
                    && !found.iter().any(|f| f.name == *call.name && f.origin == call.function.meta().origin)
                {
                    found.push(call.function.meta().clone());
                }
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.origin.cmp(&b.origin)));
        found
    }

    /// The source types the rule reads (its stream's, then its tables') and the
    /// sink types it writes, lower-case.
    pub fn connector_types(&self) -> (Vec<String>, Vec<String>) {
        let mut sources = vec![self.stream.source_type().to_ascii_lowercase()];
        for join in &self.tables {
            let t = join.table.source_type().to_ascii_lowercase();
            if !sources.contains(&t) {
                sources.push(t);
            }
        }
        let mut sinks: Vec<String> = Vec::new();
        for action in &self.actions {
            let t = action.sink_type.to_ascii_lowercase();
            if !sinks.contains(&t) {
                sinks.push(t);
            }
        }
        (sources, sinks)
    }

    /// The rule's operators in pipeline order: what `ExplainRule` shows and
    /// `GetRuleStatus` counts, one list for both.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Source];
        stages.extend((0..self.tables.len()).map(Stage::Table));
        stages.push(Stage::Decoder);
        let filter = self.filter.is_some();
        let optional = [
            (!self.tables.is_empty(), Stage::Join),
            (!self.analytics.is_empty(), Stage::Analytic),
            (filter && !self.filters_after_window(), Stage::Filter),
            (self.window_filter.is_some(), Stage::WindowFilter),
            (self.window.is_some(), Stage::Window),
            (filter && self.filters_after_window(), Stage::Filter),
            (!self.dimensions.is_empty(), Stage::Aggregate),
            (self.having.is_some(), Stage::Having),
            (true, Stage::Project),
            (!self.order_by.is_empty(), Stage::Order),
            (self.limit.is_some(), Stage::Limit),
        ];
        stages.extend(optional.into_iter().filter_map(|(present, stage)| present.then_some(stage)));
        stages.extend((0..self.actions.len()).map(Stage::Sink));
        stages
    }

    /// A stage's name, as eKuiper names operators: `source_demo_0`,
    /// `op_filter_0`, `sink_log_1`.
    pub fn stage_name(&self, stage: Stage) -> String {
        match stage {
            Stage::Source => format!("source_{}_0", self.stream.name),
            Stage::Table(i) => format!("source_{}_0", self.tables[i].table.name),
            Stage::Decoder => "op_decoder_0".into(),
            Stage::Join => "op_join_0".into(),
            Stage::Analytic => "op_analytic_0".into(),
            Stage::Filter => "op_filter_0".into(),
            Stage::WindowFilter => "op_window_filter_0".into(),
            Stage::Window => "op_window_0".into(),
            Stage::Aggregate => "op_aggregate_0".into(),
            Stage::Having => "op_having_0".into(),
            Stage::Project => "op_project_0".into(),
            Stage::Order => "op_order_0".into(),
            Stage::Limit => "op_limit_0".into(),
            Stage::Sink(i) => format!("sink_{}_{i}", self.actions[i].sink_type),
        }
    }

    /// What a stage does, for EXPLAIN; empty for sinks.
    fn stage_detail(&self, stage: Stage) -> String {
        let source = |s: &StreamDef| {
            let datasource = s.datasource().unwrap_or_default();
            format!("{} (DATASOURCE=\"{datasource}\", FORMAT={})", s.source_type(), s.format())
        };
        match stage {
            Stage::Source => source(&self.stream),
            Stage::Table(i) => format!("table, {}", source(&self.tables[i].table)),
            Stage::Decoder => format!("{} schema", if self.stream.is_schemaless() { "schemaless" } else { "declared" }),
            Stage::Join => {
                let joins: Vec<String> = self
                    .tables
                    .iter()
                    .map(|join| {
                        let kind = match join.kind {
                            JoinKind::Inner => "INNER JOIN",
                            JoinKind::Left => "LEFT JOIN",
                        };
                        let on = join.on.as_ref().map(|c| format!(" ON {}", c.sql)).unwrap_or_default();
                        format!("{kind} table {} AS {}{on}", join.table.name, join.reference)
                    })
                    .collect();
                joins.join("; ")
            }
            Stage::Analytic => self.analytics.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            Stage::Filter => format!("WHERE {}", self.filter.as_ref().map_or("", |f| f.sql.as_str())),
            Stage::WindowFilter => {
                format!("FILTER (WHERE {})", self.window_filter.as_ref().map_or("", |f| f.sql.as_str()))
            }
            Stage::Window => {
                let time = if self.options.is_event_time { "event time" } else { "processing time" };
                let mut window = self.window.as_ref().map(ToString::to_string).unwrap_or_default();
                let sql = |clause: &[Compiled]| clause.iter().map(|c| c.sql.as_str()).collect::<Vec<_>>().join(", ");
                if !self.window_conditions.is_empty() {
                    window = format!("STATEWINDOW({})", sql(&self.window_conditions));
                }
                if !self.window_partition.is_empty() {
                    window.push_str(&format!(" OVER (PARTITION BY {})", sql(&self.window_partition)));
                }
                if let Some(trigger) = &self.window_trigger {
                    window.push_str(&format!(" OVER (WHEN {})", trigger.sql));
                }
                format!("{window} ({time})")
            }
            Stage::Aggregate => {
                let dims: Vec<&str> = self.dimensions.iter().map(|d| d.sql.as_str()).collect();
                format!("GROUP BY {}", dims.join(", "))
            }
            Stage::Having => format!("HAVING {}", self.having.as_ref().map_or("", |h| h.sql.as_str())),
            Stage::Project => format!("SELECT {}", self.projection_sql),
            Stage::Order => {
                let keys: Vec<String> = self
                    .order_by
                    .iter()
                    .map(|(e, asc)| format!("{}{}", e.sql, if *asc { "" } else { " DESC" }))
                    .collect();
                format!("ORDER BY {}", keys.join(", "))
            }
            Stage::Limit => format!("LIMIT {}", self.limit.unwrap_or_default()),
            Stage::Sink(_) => String::new(),
        }
    }

    /// The operators, one a line, as `ExplainRule` prints them: the source,
    /// then the others indented, each with what it does.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for stage in self.stages() {
            let indent = if stage == Stage::Source { "" } else { "  " };
            let name = self.stage_name(stage);
            let _ = match self.stage_detail(stage) {
                detail if detail.is_empty() => writeln!(out, "{indent}{name}"),
                detail => writeln!(out, "{indent}{name}: {detail}"),
            };
        }
        out
    }
}

/// One operator of a rule; see [`RulePlan::stages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The stream's source.
    Source,
    /// The source of the joined table at this index of [`RulePlan::tables`].
    Table(usize),
    /// Payloads to rows.
    Decoder,
    /// The joins with tables.
    Join,
    /// The analytic calls, on each event before WHERE.
    Analytic,
    /// WHERE (before the window, or after it for count and sliding windows).
    Filter,
    /// The window's `FILTER (WHERE …)`, before it.
    WindowFilter,
    /// The window.
    Window,
    /// GROUP BY keys.
    Aggregate,
    /// HAVING.
    Having,
    /// SELECT.
    Project,
    /// ORDER BY.
    Order,
    /// LIMIT.
    Limit,
    /// The action at this index of [`RulePlan::actions`].
    Sink(usize),
}

fn position_of(expr: &SqlExpr) -> Option<Position> {
    Position::from_location(expr.span().start)
}

fn compile(expr: &SqlExpr, ctx: &CompileContext<'_>) -> Result<Compiled, PlanError> {
    Ok(Compiled { expr: expr::compile(expr, ctx)?, sql: expr.to_string() })
}

/// Plans a rule: parses its SQL, finds its streams, compiles and checks every
/// expression, and checks that its source and sinks exist.
pub fn plan(
    def: &RuleDefinition,
    streams: &dyn StreamLookup,
    functions: &FunctionRegistry,
    connectors: &ConnectorRegistry,
) -> Result<RulePlan, PlanError> {
    let query = oort_sql::parse_rule_sql(&def.sql)?;
    let first = query.stream().ok_or_else(|| PlanError::Unsupported("a rule without FROM".into()))?;
    // `FROM table JOIN stream` (eKuiper allows it): the stream is the rule's,
    // the table joined to it by the first join.
    let table_first = streams.stream(&first.name).is_some_and(|s| s.kind == StreamKind::Table)
        && query.sources.get(1).and_then(|s| streams.stream(&s.name)).is_some_and(|s| s.kind == StreamKind::Stream);
    let mut sources: Vec<&oort_sql::SourceRef> = query.sources.iter().collect();
    if table_first {
        sources.swap(0, 1);
    }
    let source = sources[0];
    let stream = streams.stream(&source.name).ok_or_else(|| PlanError::UnknownStream(source.name.clone()))?;
    if stream.kind == StreamKind::Table {
        return Err(PlanError::Sql(SqlError::semantic(
            format!("'{}' is a table: a rule reads a stream, and joins tables to it", stream.name),
            source.position,
        )));
    }
    let source_type = stream.source_type().to_owned();
    if connectors.source(&source_type).is_none() {
        return Err(PlanError::UnknownSource {
            stream: stream.name.clone(),
            source_type,
            known: connectors.source_types().join(", "),
        });
    }
    for (index, action) in def.actions.iter().enumerate() {
        if connectors.sink(&action.sink_type).is_none() {
            return Err(PlanError::UnknownSink {
                index,
                sink_type: action.sink_type.clone(),
                known: connectors.sink_types().join(", "),
            });
        }
        crate::sink_cache::SinkCacheConfig::from_props(&action.props)
            .map_err(|e| PlanError::ActionProps { index, message: e.to_string() })?;
    }

    let mut schemas = vec![schema_of(&stream, source.alias.clone())];
    let mut table_defs = Vec::new();
    for table_ref in sources.iter().skip(1) {
        let table = streams.stream(&table_ref.name).ok_or_else(|| PlanError::UnknownStream(table_ref.name.clone()))?;
        if table.kind != StreamKind::Table {
            return Err(PlanError::Sql(SqlError::semantic(
                format!(
                    "'{}' is a stream: a rule joins tables to its stream, not streams (declare it with CREATE TABLE)",
                    table.name
                ),
                table_ref.position,
            )));
        }
        if connectors.source(table.source_type()).is_none() {
            return Err(PlanError::UnknownSource {
                stream: table.name.clone(),
                source_type: table.source_type().to_owned(),
                known: connectors.source_types().join(", "),
            });
        }
        schemas.push(schema_of(&table, table_ref.alias.clone()));
        table_defs.push((table, table_ref.alias.clone().unwrap_or_else(|| table_ref.name.clone())));
    }
    // Joins come before the analytic calls, which see the joined rows.
    let on_ctx = CompileContext { sources: &schemas, registry: functions, rule_id: &def.id, analytics: None };
    let select = &query.select;
    let analytics = AnalyticCalls::default();
    let ctx = CompileContext { analytics: Some(&analytics), ..on_ctx };

    // The SELECT list first: ON and WHERE may name its aliases.
    let mut projection = expr::compile_projection(&select.projection, &ctx)?;
    projection.hide(&query.invisible)?;
    let tables = plan_joins(select, table_defs, &on_ctx, &projection, table_first)?;
    let filter = select.selection.as_ref().map(|e| compile_over_aliases(e, &ctx, &projection)).transpose()?;
    if let Some((name, position)) = filter.as_ref().and_then(|f| f.expr.first_aggregate()) {
        let message = format!("aggregate function {name} is not allowed in WHERE; use HAVING");
        return Err(SqlError::semantic(message, position).into());
    }
    let window_filter = query.window_filter.as_ref().map(|e| compile(e, &ctx)).transpose()?;
    let window_trigger = query.window_trigger.as_ref().map(|e| compile(e, &ctx)).transpose()?;
    let window_conditions = query.window_conditions.iter().map(|e| compile(e, &ctx)).collect::<Result<Vec<_>, _>>()?;
    let window_partition = query.window_partition.iter().map(|e| compile(e, &ctx)).collect::<Result<Vec<_>, _>>()?;
    let clauses = (window_filter.iter().map(|c| ("FILTER", c)))
        .chain(window_trigger.iter().map(|c| ("OVER (WHEN …)", c)))
        .chain(window_conditions.iter().map(|c| ("conditions", c)))
        .chain(window_partition.iter().map(|c| ("PARTITION BY", c)));
    for (clause, compiled) in clauses {
        if let Some((name, position)) = compiled.expr.first_aggregate() {
            let message = format!("aggregate function {name} is not allowed in the window's {clause}");
            return Err(SqlError::semantic(message, position).into());
        }
    }
    let dimension_sql: Vec<&SqlExpr> = query.dimensions().collect();
    let dimensions = dimension_sql.iter().map(|e| compile(e, &ctx)).collect::<Result<Vec<_>, _>>()?;
    let grouped = query.window.is_some() || !dimensions.is_empty();
    if let Some((name, position)) = projection.exprs().find_map(|(_, e)| e.first_aggregate()).filter(|_| !grouped) {
        let message =
            format!("aggregate function {name} needs a window or GROUP BY (e.g. GROUP BY TUMBLINGWINDOW(ss, 10))");
        return Err(SqlError::semantic(message, position).into());
    }
    let having = select.having.as_ref().map(|e| compile_over_output(e, &ctx, &projection)).transpose()?;
    if having.is_some() && !grouped {
        return Err(SqlError::semantic(
            "HAVING needs a window or GROUP BY",
            select.having.as_ref().and_then(position_of),
        )
        .into());
    }
    let order_by = query
        .order_by
        .iter()
        .map(|o| {
            Ok((
                compile_over_output(&o.expr, &ctx, &projection)?,
                !matches!(o.options.sort, Some(oort_sql::sqlparser::ast::OrderBySort::Desc)),
            ))
        })
        .collect::<Result<Vec<_>, PlanError>>()?;

    let analytics = analytics.into_calls();
    let main: Vec<&Expr> = (filter.iter().chain(&having).chain(order_by.iter().map(|(c, _)| c)))
        .map(|c| &c.expr)
        .chain(projection.exprs().map(|(_, e)| e))
        .collect();
    let others: Vec<&Expr> = (window_filter.iter().chain(&window_trigger).chain(&window_conditions).chain(&dimensions))
        .map(|c| &c.expr)
        .chain(analytics.iter().flat_map(|a| a.args.iter().chain(&a.partition).chain(&a.when)))
        .collect();
    check_hits(&main, &others, grouped)?;
    let reads_hits = main.iter().any(|e| reads_hits(e));
    // Set-returning calls are whole SELECT items (compile_projection checks those).
    let elsewhere = filter.iter().chain(&window_filter).chain(&window_trigger).chain(&dimensions).chain(&having);
    let elsewhere = elsewhere.chain(&window_conditions).chain(&window_partition);
    let elsewhere = elsewhere.chain(order_by.iter().map(|(c, _)| c));
    for expr in elsewhere.map(|c| &c.expr).chain(analytics.iter().flat_map(|a| a.args.iter().chain(&a.partition))) {
        expr::check_no_set_returning(expr)?;
    }

    let stateful = query.window.is_some()
        || !dimensions.is_empty()
        || !analytics.is_empty()
        || reads_hits
        || projection.changed_cols() > 0
        || def.options.is_event_time;
    if def.options.concurrency > 1 && stateful {
        return Err(PlanError::Unsupported(format!(
            "concurrency {} for a rule that keeps state from one event to the next (a window, GROUP BY, an analytic \
             function, changed_cols, last_hit_*, or event-time order): its events are taken one batch after another",
            def.options.concurrency
        )));
    }

    Ok(RulePlan {
        rule_id: def.id.clone(),
        sql: def.sql.clone(),
        stream_reference: source.alias.clone().unwrap_or_else(|| stream.name.clone()),
        stream,
        tables,
        filter,
        window: query.window,
        window_filter,
        window_trigger,
        window_conditions,
        window_partition,
        dimensions,
        having,
        projection_sql: select.projection.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
        projection,
        order_by,
        limit: query.limit,
        analytics,
        reads_hits,
        actions: def.actions.clone(),
        options: def.options.clone(),
    })
}

/// Whether an expression calls `last_hit_*` or `last_agg_hit_*`.
fn reads_hits(expr: &Expr) -> bool {
    let mut found = false;
    expr.walk(&mut |e| found |= matches!(e, Expr::LastHit { .. }));
    found
}

/// Where the hit functions may be: `last_hit_*` in a rule without a window
/// (WHERE, SELECT), `last_agg_hit_*` in one with a window (HAVING, SELECT), as
/// eKuiper; not in `others` (the window's clauses, GROUP BY, analytic calls).
fn check_hits(main: &[&Expr], others: &[&Expr], grouped: bool) -> Result<(), PlanError> {
    let refuse = |message: String| Err(PlanError::Sql(SqlError::semantic(message, None)));
    if others.iter().any(|e| reads_hits(e)) {
        return refuse(
            "the hit functions (last_hit_*, last_agg_hit_*) are not supported in a window's clauses, GROUP BY or an \
             analytic function"
                .into(),
        );
    }
    let mut misplaced = None;
    for expr in main {
        expr.walk(&mut |e| {
            if let Expr::LastHit { time, aggregate } = e
                && *aggregate != grouped
            {
                misplaced = Some((*time, *aggregate));
            }
        });
    }
    match misplaced {
        None => Ok(()),
        Some((time, true)) => refuse(format!(
            "{} counts the window groups of a rule with a window; without one, use {}",
            crate::expr::last_hit_name(time, true),
            crate::expr::last_hit_name(time, false)
        )),
        Some((time, false)) => refuse(format!(
            "{} counts the events of a rule without a window; with one, use {}",
            crate::expr::last_hit_name(time, false),
            crate::expr::last_hit_name(time, true)
        )),
    }
}

/// Compiles HAVING and ORDER BY, which may name SELECT aliases as well as columns.
fn compile_over_output(e: &SqlExpr, ctx: &CompileContext<'_>, projection: &Projection) -> Result<Compiled, PlanError> {
    Ok(Compiled { expr: expr::compile_with_aliases(e, ctx, projection)?, sql: e.to_string() })
}

/// Compiles WHERE and ON, which may name the SELECT list's aliases.
fn compile_over_aliases(e: &SqlExpr, ctx: &CompileContext<'_>, projection: &Projection) -> Result<Compiled, PlanError> {
    Ok(Compiled { expr: expr::compile_with_select_aliases(e, ctx, projection)?, sql: e.to_string() })
}

fn schema_of(def: &StreamDef, alias: Option<String>) -> SourceSchema {
    SourceSchema { name: def.name.clone(), alias, fields: (!def.is_schemaless()).then(|| def.fields.clone()) }
}

/// Pairs each joined table with its kind and ON condition, from the FROM
/// clause. With `table_first` (`FROM table JOIN stream`), the first join is
/// the table's, seen from the stream: `table RIGHT JOIN stream` is the
/// stream's LEFT JOIN. ON may name the aliases of the SELECT list, but not
/// one of an analytic call's (those come after the joins).
fn plan_joins(
    select: &Select,
    tables: Vec<(StreamDef, String)>,
    ctx: &CompileContext<'_>,
    projection: &Projection,
    table_first: bool,
) -> Result<Vec<TableJoin>, PlanError> {
    let joins = select.from.first().map(|f| f.joins.as_slice()).unwrap_or_default();
    tables
        .into_iter()
        .zip(joins)
        .enumerate()
        .map(|(i, ((table, reference), join))| {
            let mirrored = table_first && i == 0;
            let (kind, constraint) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) if !mirrored => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) if mirrored => (JoinKind::Left, Some(c)),
                JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
                _ if mirrored => {
                    return Err(PlanError::Sql(SqlError::semantic(
                        "a table first in FROM joins its stream with INNER JOIN, or RIGHT JOIN to keep every event \
                         (LEFT and FULL would emit table rows without events)",
                        Position::from_location(join.span().start),
                    )));
                }
                _ => {
                    return Err(PlanError::Sql(SqlError::semantic(
                        "a stream joins tables with INNER, LEFT or CROSS JOIN (RIGHT and FULL would emit table rows without events)",
                        Position::from_location(join.span().start),
                    )));
                }
            };
            let on = match constraint {
                Some(JoinConstraint::On(e)) => {
                    let compiled = compile_over_aliases(e, ctx, projection)?;
                    if let Some((name, position)) = compiled.expr.first_aggregate() {
                        let message = format!("aggregate function {name} is not allowed in ON");
                        return Err(SqlError::semantic(message, position).into());
                    }
                    let mut analytic = false;
                    compiled.expr.walk(&mut |e| analytic |= matches!(e, Expr::Analytic { .. } | Expr::LastHit { .. }));
                    if analytic {
                        return Err(SqlError::semantic(
                            "ON cannot use an analytic or hit function (evaluated after the joins), nor an alias of one",
                            Position::from_location(e.span().start),
                        )
                        .into());
                    }
                    Some(compiled)
                }
                _ => None,
            };
            Ok(TableJoin { table, reference, kind, on })
        })
        .collect()
}

#[cfg(test)]
mod tests;
