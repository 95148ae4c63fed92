//! Where a rule runs when several servers share a catalog: on every one of
//! them, each processing the partitions its source's broker gives it, or on
//! one. A rule may be split when each server can compute its results from
//! the events it gets alone: it keeps no state, or every state it keeps is
//! per value of the stream's partition key, whose events all go to one server.

use oort_sql::WindowSpec;

use super::RulePlan;
use crate::connector::Partitioning;
use crate::delivery::Guarantee;
use crate::expr::Expr;

/// Where a rule runs among the servers that share a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    /// On every server, each on the partitions the broker gives it; `key` is
    /// the stream's partition key, `None` for a stateless rule over a stream
    /// split message by message.
    Split {
        /// The stream's partition key.
        key: Option<String>,
    },
    /// On one server at a time, and why it cannot be split.
    Single(String),
}

impl Distribution {
    /// What `GetRuleStatus` says of it.
    pub fn describe(&self) -> String {
        match self {
            Self::Split { key: Some(key) } => format!("split over its source's partitions, by {key}"),
            Self::Split { key: None } => "split over its source's partitions (stateless)".into(),
            Self::Single(why) => format!("one server: {why}"),
        }
    }
}

impl RulePlan {
    /// Where this rule runs when its stream's broker splits it as `partitioning` says.
    pub(super) fn distribution(&self, partitioning: Option<Partitioning>) -> Distribution {
        let stream = &self.stream.name;
        let Some(partitioning) = partitioning else {
            return Distribution::Single(format!("stream {stream} is not read through a partitioned consumer group"));
        };
        let key = match &partitioning {
            Partitioning::ByKey(key) => Some(key.as_str()),
            Partitioning::ByMessage => None,
        };
        match self.state_needs_key() {
            Ok(false) => Distribution::Split { key: key.map(str::to_owned) },
            Ok(true) => match key {
                Some(key) => match self.keyed_by(key).and_then(|()| self.replayable()) {
                    Ok(()) => Distribution::Split { key: Some(key.to_owned()) },
                    Err(why) => Distribution::Single(why),
                },
                None => Distribution::Single(format!(
                    "it keeps state per key, and stream {stream} is split message by message: declare its \
                     PARTITION_KEY (the field its messages are keyed by) and group by it"
                )),
            },
            Err(why) => Distribution::Single(why),
        }
    }

    /// Whether a rule that keeps state and is split restarts from its source
    /// (its `qos` is 1): its windows are then read again from each
    /// partition's oldest open one, not restored from this server's
    /// checkpoints, which another server taking the partitions over would lack.
    pub fn replays_from_source(&self) -> bool {
        matches!(self.distribution, Distribution::Split { key: Some(_) })
            && self.options.qos == Guarantee::AtLeastOnce
            && self.state_needs_key() == Ok(true)
    }

    /// Whether a stateful rule's `qos` can be kept when it is split: at 1,
    /// its state must come back whole from reading each partition again from
    /// its oldest open window.
    fn replayable(&self) -> Result<(), String> {
        match self.options.qos {
            Guarantee::AtMostOnce => Ok(()),
            Guarantee::ExactlyOnce => {
                Err("at qos 2 a rule that keeps state runs on one server: exactly once needs its checkpoints".into())
            }
            Guarantee::AtLeastOnce => match &self.window {
                _ if !self.analytics.is_empty() => {
                    Err("at qos 1 an analytic function's state, which is not in a window, would not come back when \
                     another server takes its partition over"
                        .into())
                }
                Some(WindowSpec::Hopping { .. }) => {
                    Err("at qos 1 a HOPPINGWINDOW read again from its oldest open window would emit earlier windows \
                     with part of their rows"
                        .into())
                }
                _ => Ok(()),
            },
        }
    }

    /// Whether the rule keeps state (that must then be per key); `Err` when
    /// its state spans every key, whatever the partitioning.
    fn state_needs_key(&self) -> Result<bool, String> {
        if !self.joined_streams.is_empty() {
            return Err("it joins streams, whose partitions are not split alike".into());
        }
        if self.reads_hits {
            return Err("last_hit_* and last_agg_hit_* read the rule's previous hit, whatever its key".into());
        }
        if self.projection.changed_cols() > 0 {
            return Err("changed_cols compares each event with the one before, whatever its key".into());
        }
        if self.window.is_some() && self.limit.is_some() {
            return Err("LIMIT keeps the first rows of each window over all keys".into());
        }
        Ok(self.window.is_some() || !self.dimensions.is_empty() || !self.analytics.is_empty())
    }

    /// Whether every state the rule keeps is per value of `key`.
    fn keyed_by(&self, key: &str) -> Result<(), String> {
        match &self.window {
            Some(WindowSpec::State { .. }) => {
                if !self.window_partition.iter().any(|p| is_field(&p.expr, key)) {
                    return Err(format!("its STATEWINDOW is not partitioned by the stream's partition key {key}"));
                }
            }
            Some(WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. }) | None => {
                let grouped = self.dimensions.iter().any(|d| is_field(&d.expr, key));
                if (self.window.is_some() || !self.dimensions.is_empty()) && !grouped {
                    return Err(format!("its GROUP BY does not have the stream's partition key {key}"));
                }
            }
            Some(window) => {
                return Err(format!(
                    "a {} spans the events of every key: each window depends on all of them",
                    window.function_name()
                ));
            }
        }
        if let Some(call) = self.analytics.iter().find(|c| !c.partition.iter().any(|p| is_field(p, key))) {
            return Err(format!("{call} keeps a state over all keys: add PARTITION BY {key}"));
        }
        Ok(())
    }
}

/// Whether `expr` is the stream's field `name`.
fn is_field(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column { name: column, .. } if column.as_ref() == name)
}
