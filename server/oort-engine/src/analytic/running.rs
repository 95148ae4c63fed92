//! eKuiper's `inc_*` functions (`funcs_inc_agg.go`): running aggregates of
//! the events a rule without a window projects, one state per call. Unlike
//! the other analytic functions they are evaluated where eKuiper evaluates
//! them, in the SELECT list, so only the events that passed `WHERE` count.
//! A NULL argument gives NULL and leaves the state as it was.

use std::cmp::Ordering;
use std::sync::Arc;

use super::AnalyticKind;
use crate::functions::conversion::cast_value;
use crate::value::{Map, Value};

/// One `inc_*` call's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) enum Running {
    /// `inc_count`.
    Count(i64),
    /// `inc_sum` and `inc_avg`: the sum and how many values.
    Sum { sum: f64, count: i64 },
    /// `inc_min`, `inc_max`, `inc_last_value`: the value so far, NULL before one.
    Value(Value),
    /// `inc_collect`: every value.
    Collect(Vec<Value>),
    /// `inc_merge_agg`: the maps merged, later keys over earlier ones.
    Merge(Map),
}

impl Running {
    /// The state before any event.
    pub(super) fn new(kind: AnalyticKind) -> Self {
        match kind {
            AnalyticKind::IncCount => Running::Count(0),
            AnalyticKind::IncSum | AnalyticKind::IncAvg => Running::Sum { sum: 0.0, count: 0 },
            AnalyticKind::IncCollect => Running::Collect(Vec::new()),
            AnalyticKind::IncMergeAgg => Running::Merge(Map::new()),
            _ => Running::Value(Value::Null),
        }
    }

    /// The values it holds, for the rule's bound on analytic state.
    pub(super) fn size(&self) -> usize {
        match self {
            Running::Collect(values) => values.len().max(1),
            Running::Merge(map) => map.len().max(1),
            _ => 1,
        }
    }

    /// Takes an event's arguments; returns the call's result.
    pub(super) fn step(&mut self, kind: AnalyticKind, args: &[Value]) -> Result<Value, String> {
        if args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        let value = &args[0];
        match self {
            Running::Count(count) => {
                *count += 1;
                Ok(Value::Int(*count))
            }
            Running::Sum { sum, count } => {
                let x = match cast_value(kind.name(), value, "float").map_err(|e| e.to_string())? {
                    Value::Float(x) => x,
                    other => return Err(format!("cannot add {}", other.type_name())),
                };
                *sum += x;
                *count += 1;
                Ok(Value::Float(if kind == AnalyticKind::IncAvg { *sum / *count as f64 } else { *sum }))
            }
            Running::Value(kept) => {
                let replace = match kind {
                    AnalyticKind::IncLastValue => match args.get(1) {
                        Some(Value::Bool(_)) => true,
                        other => {
                            return Err(format!(
                                "the second argument (ignore null) must be a boolean, got {}",
                                other.map_or("nothing", Value::type_name)
                            ));
                        }
                    },
                    _ if kept.is_null() => true,
                    _ => {
                        let order = compare(value, kept)?;
                        if kind == AnalyticKind::IncMin { order == Ordering::Less } else { order == Ordering::Greater }
                    }
                };
                if replace {
                    *kept = value.clone();
                }
                Ok(kept.clone())
            }
            Running::Collect(values) => {
                values.push(value.clone());
                Ok(Value::list(values.clone()))
            }
            Running::Merge(merged) => {
                let Value::Map(map) = value else {
                    return Err(format!("the argument must be a struct, got {}", value.type_name()));
                };
                merged.extend(map.iter().map(|(k, v)| (Arc::clone(k), v.clone())));
                Ok(Value::map(merged.clone()))
            }
        }
    }
}

/// How two values of `inc_min`/`inc_max` compare: numbers, or strings.
fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            x.partial_cmp(&y).ok_or_else(|| "NaN has no order".to_owned())
        }
        _ => Err(format!("cannot compare {} with {}", a.type_name(), b.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_max_take_numbers_or_strings_not_both() {
        let mut max = Running::new(AnalyticKind::IncMax);
        assert_eq!(max.step(AnalyticKind::IncMax, &[Value::string("b")]), Ok(Value::string("b")));
        assert_eq!(max.step(AnalyticKind::IncMax, &[Value::string("a")]), Ok(Value::string("b")));
        assert!(max.step(AnalyticKind::IncMax, &[Value::Int(1)]).is_err());
        let mut min = Running::new(AnalyticKind::IncMin);
        assert_eq!(min.step(AnalyticKind::IncMin, &[Value::Int(3)]), Ok(Value::Int(3)));
        assert_eq!(min.step(AnalyticKind::IncMin, &[Value::Float(2.5)]), Ok(Value::Float(2.5)));
        assert_eq!(min.step(AnalyticKind::IncMin, &[Value::Null]), Ok(Value::Null), "NULL leaves the state");
        assert_eq!(min.step(AnalyticKind::IncMin, &[Value::Int(4)]), Ok(Value::Float(2.5)));
    }

    #[test]
    fn sum_reads_numeric_text_and_merge_takes_structs_only() {
        let mut sum = Running::new(AnalyticKind::IncSum);
        assert_eq!(sum.step(AnalyticKind::IncSum, &[Value::string("1.5")]), Ok(Value::Float(1.5)));
        assert!(sum.step(AnalyticKind::IncSum, &[Value::string("x")]).is_err());
        let mut merge = Running::new(AnalyticKind::IncMergeAgg);
        assert!(merge.step(AnalyticKind::IncMergeAgg, &[Value::Int(1)]).is_err());
        assert_eq!(merge.size(), 1);
    }
}
