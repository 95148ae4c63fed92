//! The planner: rule SQL and the streams it reads → a validated [`RulePlan`],
//! the pipeline source → decode → filter → window → aggregate → having →
//! project → order → sinks. Everything a rule needs is checked here, so that
//! a rule that cannot run is refused at creation, with positions.

mod checks;
mod distribution;
mod joins;
mod stages;

pub use distribution::Distribution;
pub use joins::{Join, JoinKind, LookupKeys};
pub use stages::Stage;

use checks::{check_hits, check_joined_streams, check_running, elsewhere_than_select, reads_hits};

use oort_sql::sqlparser::ast::{Expr as SqlExpr, Spanned};
use oort_sql::{Position, SqlError, StreamDef, StreamKind, WindowSpec};

use crate::analytic::{AnalyticCall, AnalyticCalls};
use crate::connector::{ConnectorRegistry, SourceConfig};
use crate::expr::{self, CompileContext, Expr, Projection, SortOrder, SourceSchema};
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
    /// A rule that keeps state reads a stream whose readers each get part of
    /// its events.
    #[error(
        "stream {stream}: {reason}; a rule that keeps state from one event to the next (a window, GROUP BY, an \
         analytic function, changed_cols, last_hit_*, or event-time order) would see only part of each key's \
         events: read it in stateless rules only"
    )]
    SplitInput { stream: String, reason: String },
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
    pub tables: Vec<Join>,
    /// Streams joined to the stream within each window, in order (a rule
    /// joins either tables or streams).
    pub joined_streams: Vec<Join>,
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
    /// ORDER BY expressions (over the output columns), each with its
    /// direction: NULLs last unless `NULLS FIRST`, as eKuiper's sorter.
    pub order_by: Vec<(Compiled, SortOrder)>,
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
    /// Where it runs when several servers share the catalog.
    pub distribution: Distribution,
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
        let joins = self.tables.iter().chain(&self.joined_streams);
        all.extend(joins.filter_map(|t| t.on.as_ref()).map(|c| &c.expr));
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

    /// Whether it has running aggregates (`inc_*`), evaluated on the rows SELECT projects.
    pub fn has_running_aggregates(&self) -> bool {
        self.analytics.iter().any(|call| call.kind.running())
    }

    /// Whether results come per group (a window or GROUP BY) rather than per event.
    pub fn is_grouped(&self) -> bool {
        self.window.is_some() || !self.dimensions.is_empty()
    }

    /// Whether WHERE applies to a window's rows rather than to each event: as in
    /// eKuiper, count and sliding windows are triggered by every event, including
    /// those WHERE drops.
    /// So does it after the joins of streams, which happen at the window's end.
    pub fn filters_after_window(&self) -> bool {
        matches!(self.window, Some(WindowSpec::Count { .. } | WindowSpec::Sliding { .. }))
            || !self.joined_streams.is_empty()
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

    /// The source types the rule reads (its stream's, then its joins') and the
    /// sink types it writes, lower-case.
    pub fn connector_types(&self) -> (Vec<String>, Vec<String>) {
        let mut sources = vec![self.stream.source_type().to_ascii_lowercase()];
        for join in self.tables.iter().chain(&self.joined_streams) {
            let t = join.source.source_type().to_ascii_lowercase();
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
        let Some(sink) = connectors.sink(&action.sink_type) else {
            return Err(PlanError::UnknownSink {
                index,
                sink_type: action.sink_type.clone(),
                known: connectors.sink_types().join(", "),
            });
        };
        crate::sink_cache::SinkCacheConfig::from_props(&action.props)
            .map_err(|e| PlanError::ActionProps { index, message: e.to_string() })?;
        crate::sink_batch::BatchConfig::from_props(&action.props)
            .map_err(|e| PlanError::ActionProps { index, message: e.to_string() })?;
        // A plugin's sink that declares nothing takes any property.
        if let Some(declared) = sink.options() {
            crate::sink_props::check_action(&action.sink_type, &declared, &action.props)
                .map_err(|e| PlanError::ActionProps { index, message: e.to_string() })?;
        }
    }

    let mut schemas = vec![schema_of(&stream, source.alias.clone())];
    let mut joined = Vec::new();
    for joined_ref in sources.iter().skip(1) {
        let def = streams.stream(&joined_ref.name).ok_or_else(|| PlanError::UnknownStream(joined_ref.name.clone()))?;
        if connectors.source(def.source_type()).is_none() {
            return Err(PlanError::UnknownSource {
                stream: def.name.clone(),
                source_type: def.source_type().to_owned(),
                known: connectors.source_types().join(", "),
            });
        }
        schemas.push(schema_of(&def, joined_ref.alias.clone()));
        joined.push((def, joined_ref.alias.clone().unwrap_or_else(|| joined_ref.name.clone()), joined_ref.position));
    }
    let joins_streams = check_joined_streams(&joined, &query, def)?;
    let joined = joined.into_iter().map(|(def, reference, _)| (def, reference)).collect();
    // Joins come before the analytic calls, which see the joined rows.
    let on_ctx = CompileContext { sources: &schemas, registry: functions, rule_id: &def.id, analytics: None };
    let select = &query.select;
    let analytics = AnalyticCalls::default();
    let ctx = CompileContext { analytics: Some(&analytics), ..on_ctx };

    // The SELECT list first: ON and WHERE may name its aliases.
    let mut projection = expr::compile_projection(&select.projection, &ctx)?;
    projection.hide(&query.invisible)?;
    projection.keep_nulls = def.options.send_nil_field;
    let joins = joins::plan_joins(select, joined, &on_ctx, &projection, table_first, joins_streams)?;
    let (mut tables, joined_streams) = if joins_streams { (Vec::new(), joins) } else { (joins, Vec::new()) };
    joins::plan_lookups(&mut tables, connectors)?;
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
        .map(|o| Ok((compile_over_output(&o.expr, &ctx, &projection)?, SortOrder::of(&o.options, |_| false))))
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
    let before_select = elsewhere_than_select(&analytics, [&filter, &having, &window_filter, &window_trigger])
        .chain(window_conditions.iter().chain(&window_partition).chain(&dimensions).map(|c| &c.expr))
        .chain(order_by.iter().map(|(c, _)| &c.expr))
        .chain(tables.iter().filter_map(|t| t.on.as_ref().map(|c| &c.expr)));
    check_running(&analytics, before_select, grouped || reads_hits)?;
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
    if stateful {
        let streams = std::iter::once(&stream).chain(joined_streams.iter().map(|j| &j.source));
        for source in streams {
            let config = SourceConfig::for_stream(source, &def.id);
            if let Some(reason) = connectors.source(source.source_type()).and_then(|f| f.splits_input(&config)) {
                return Err(PlanError::SplitInput { stream: source.name.clone(), reason });
            }
        }
    }
    if def.options.concurrency > 1 && stateful {
        return Err(PlanError::Unsupported(format!(
            "concurrency {} for a rule that keeps state from one event to the next (a window, GROUP BY, an analytic \
             function, changed_cols, last_hit_*, or event-time order): its events are taken one batch after another",
            def.options.concurrency
        )));
    }

    let partitioning = connectors
        .source(stream.source_type())
        .and_then(|f| f.partitioning(&SourceConfig::for_stream(&stream, &def.id)));
    let mut plan = RulePlan {
        rule_id: def.id.clone(),
        sql: def.sql.clone(),
        stream_reference: source.alias.clone().unwrap_or_else(|| stream.name.clone()),
        stream,
        tables,
        joined_streams,
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
        distribution: Distribution::Single(String::new()),
    };
    plan.distribution = plan.distribution(partitioning);
    Ok(plan)
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

#[cfg(test)]
mod tests;
