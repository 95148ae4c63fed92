//! The operators of a plan, in pipeline order: the one list `ExplainRule`
//! shows and `GetRuleStatus` counts.

use std::fmt::Write as _;

use oort_sql::StreamDef;

use super::{Compiled, RulePlan};

impl RulePlan {
    /// The rule's operators in pipeline order: what `ExplainRule` shows and
    /// `GetRuleStatus` counts, one list for both.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Source];
        stages.extend((0..self.tables.len()).map(Stage::Table));
        stages.extend((0..self.joined_streams.len()).map(Stage::Stream));
        stages.push(Stage::Decoder);
        let filter = self.filter.is_some();
        let optional = [
            (!self.tables.is_empty(), Stage::Join),
            (!self.analytics.is_empty(), Stage::Analytic),
            (filter && !self.filters_after_window(), Stage::Filter),
            (self.window_filter.is_some(), Stage::WindowFilter),
            (self.window.is_some(), Stage::Window),
            (!self.joined_streams.is_empty(), Stage::Join),
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
            Stage::Table(i) => format!("source_{}_0", self.tables[i].source.name),
            Stage::Stream(i) => format!("source_{}_0", self.joined_streams[i].source.name),
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
            Stage::Table(i) => format!("table, {}", source(&self.tables[i].source)),
            Stage::Stream(i) => format!("stream, {}", source(&self.joined_streams[i].source)),
            Stage::Decoder => format!("{} schema", if self.stream.is_schemaless() { "schemaless" } else { "declared" }),
            Stage::Join => {
                let tables = self
                    .tables
                    .iter()
                    .map(|join| join.explain(if join.lookup.is_some() { "lookup table" } else { "table" }));
                let streams = self.joined_streams.iter().map(|join| join.explain("stream"));
                tables.chain(streams).collect::<Vec<_>>().join("; ")
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
                    .map(|(e, order)| {
                        let direction = if order.ascending { "" } else { " DESC" };
                        format!("{}{direction}{}", e.sql, if order.nulls_first { " NULLS FIRST" } else { "" })
                    })
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
            let indent = if matches!(stage, Stage::Source | Stage::Stream(_)) { "" } else { "  " };
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
    /// The source of the joined stream at this index of [`RulePlan::joined_streams`].
    Stream(usize),
    /// Payloads to rows.
    Decoder,
    /// The joins: with tables, on each event; with streams, at each window's end.
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
