//! [`AnalyticState`]: the state of each analytic call of a rule, one per
//! partition, and the step each function takes on an event (eKuiper's
//! `funcs_analytic.go` and `funcs_acc.go` semantics).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{AnalyticCall, AnalyticKind};
use crate::expr::{EvalEnv, EvalError};
use crate::row::Row;
use crate::value::Value;

/// How many values the states of one rule may hold in all (the queues of
/// `lag` count their length, other states one each): a `PARTITION BY` over
/// an unbounded key, or a huge `lag` offset, fails its events with an error
/// instead of growing without bound.
pub const MAX_STATE_VALUES: usize = 1 << 22;

/// One call's state in one partition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum CallState {
    /// `lag`: the last `offset` values, oldest first.
    Lag(VecDeque<Value>),
    /// `latest`: the last non-NULL value, NULL before one.
    Latest(Value),
    /// `changed_col` (one) and `had_changed` (one per expression): the last
    /// value of each, NULL before one.
    Changed(Vec<Value>),
    /// The accumulators.
    Acc(Accumulator),
    /// The running aggregates, `inc_*`.
    Running(super::running::Running),
}

impl CallState {
    /// The values it holds, for [`MAX_STATE_VALUES`].
    fn size(&self) -> usize {
        match self {
            CallState::Lag(queue) => queue.len().max(1),
            CallState::Changed(values) => values.len().max(1),
            CallState::Running(running) => running.size(),
            CallState::Latest(_) | CallState::Acc(_) => 1,
        }
    }
}

/// An accumulator's state: eKuiper's `accStatus`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Accumulator {
    /// Between a `begin` and a `reset` (always, for a call without them).
    begun: bool,
    /// How many values it took.
    count: i64,
    /// Their sum.
    sum: f64,
    /// The least and the greatest, once there is one.
    min: Option<f64>,
    max: Option<f64>,
}

/// A rule's hits (eKuiper's `last_hit_*` and `last_agg_hit_*`): how many
/// events passed its WHERE (or window groups its HAVING), and the time of
/// the last one (0 before any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hits {
    /// How many.
    pub count: i64,
    /// The event time of the last one (a group's: its window's end), in Unix ms.
    pub time: i64,
}

impl Hits {
    /// One more hit, at `time`.
    pub fn hit(&mut self, time: i64) {
        self.count += 1;
        self.time = time;
    }
}

/// The state of every analytic call of a rule ([`super::AnalyticCall`]), by
/// partition. Saved in the rule's checkpoints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnalyticState {
    /// By call (the slot of [`crate::Expr::Analytic`]), then by partition key
    /// (the partition values, encoded: no two different keys collide).
    calls: Vec<HashMap<Vec<u8>, CallState>>,
    /// By `changed_cols` item ([`crate::expr::ChangedCols::slot`]): the last
    /// value of each name it output.
    columns: Vec<HashMap<Arc<str>, Value>>,
    /// The values held in all, bounded by [`MAX_STATE_VALUES`].
    values: usize,
    /// The rule's hits, per event or per window group.
    pub hits: Hits,
}

impl AnalyticState {
    /// The state of a rule with `calls` analytic calls and `columns`
    /// `changed_cols` items, none evaluated yet.
    pub fn new(calls: usize, columns: usize) -> Self {
        Self {
            calls: vec![HashMap::new(); calls],
            columns: vec![HashMap::new(); columns],
            values: 0,
            hits: Hits::default(),
        }
    }

    /// Its encoding, for a checkpoint.
    pub fn save(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(self).map_err(|e| format!("the analytic state could not be encoded: {e}"))
    }

    /// The state that [`save`](Self::save) encoded, for a rule with `calls`
    /// calls and `columns` `changed_cols` items.
    pub fn restore(saved: &[u8], calls: usize, columns: usize) -> Result<Self, String> {
        let state: Self =
            postcard::from_bytes(saved).map_err(|e| format!("the saved analytic state could not be read: {e}"))?;
        if (state.calls.len(), state.columns.len()) != (calls, columns) {
            return Err(format!(
                "the saved analytic state is of {} calls and {} changed_cols, the rule has {calls} and {columns}",
                state.calls.len(),
                state.columns.len()
            ));
        }
        Ok(state)
    }

    /// Whether `value` differs from the last value `changed_cols` item
    /// `slot` saw under `name` (NULL before any); remembers it.
    pub(crate) fn column_changed(&mut self, slot: usize, name: &Arc<str>, value: &Value) -> Result<bool, EvalError> {
        let columns = &mut self.columns[slot];
        match columns.get_mut(name) {
            Some(last) if same(last, value) => Ok(false),
            Some(last) => {
                *last = value.clone();
                Ok(true)
            }
            None if value.is_null() => Ok(false),
            None => {
                if self.values >= MAX_STATE_VALUES {
                    return Err(EvalError::Function(crate::FunctionError::failed(
                        "changed_cols",
                        format!("the rule's analytic functions hold {MAX_STATE_VALUES} values already"),
                    )));
                }
                self.values += 1;
                columns.insert(name.clone(), value.clone());
                Ok(true)
            }
        }
    }

    /// Evaluates every call for each row, in order (inner calls before the
    /// calls whose arguments hold them), appending each result to the row's
    /// [`Row::analytic`]. Returns, for each row, the first error of its
    /// calls: eKuiper drops such an event.
    ///
    /// With `running`, only the running aggregates (`inc_*`), on rows that
    /// went through the first pass, into their places; without, the others,
    /// with a NULL in the place of each running one.
    pub async fn apply(
        &mut self,
        calls: &[AnalyticCall],
        rows: &mut [Row],
        env: &EvalEnv<'_>,
        running: bool,
    ) -> Vec<Option<EvalError>> {
        let mut failed: Vec<Option<EvalError>> = vec![None; rows.len()];
        for row in rows.iter_mut() {
            row.analytic.resize(calls.len(), Value::Null);
        }
        for (slot, call) in calls.iter().enumerate() {
            if call.kind.running() != running {
                continue;
            }
            let args = eval_each(&call.args, rows, env).await;
            let partition = eval_each(&call.partition, rows, env).await;
            let when = match &call.when {
                Some(when) => Some(when.eval_batch(rows, env).await),
                None => None,
            };
            for (i, row) in rows.iter_mut().enumerate() {
                let result = if failed[i].is_some() {
                    Value::Null
                } else {
                    let inputs = Inputs { args: &args, partition: &partition, when: when.as_deref(), row: i };
                    match self.step(slot, call.kind, inputs) {
                        Ok(value) => value,
                        Err(e) => {
                            failed[i] = Some(e);
                            Value::Null
                        }
                    }
                };
                row.analytic[slot] = result;
            }
        }
        failed
    }

    /// One call on one event.
    fn step(&mut self, slot: usize, kind: AnalyticKind, inputs: Inputs<'_>) -> Result<Value, EvalError> {
        let args = inputs.args()?;
        // An event that WHEN does not take still reads the state (a WHEN that is
        // not a boolean takes it, as eKuiper's).
        let valid = !matches!(inputs.when()?, Some(Value::Bool(false)));
        let key = inputs.partition_key()?;
        let name = kind.name();
        let fail = |message: String| EvalError::Function(crate::FunctionError::failed(name, message));
        let states = &mut self.calls[slot];
        let state = match states.get_mut(&key) {
            Some(state) => state,
            None => {
                let state = initial(kind, &args).map_err(fail)?;
                if self.values + state.size() > MAX_STATE_VALUES {
                    return Err(fail(format!(
                        "the rule's analytic functions hold {MAX_STATE_VALUES} values already (PARTITION BY a key \
                         with too many values, or too large an offset?)"
                    )));
                }
                self.values += state.size();
                states.entry(key).or_insert(state)
            }
        };
        let before = state.size();
        let result = step(kind, state, &args, valid).map_err(fail)?;
        // `inc_collect` and `inc_merge_agg` grow with the events.
        let grown = state.size().saturating_sub(before);
        if grown > 0 {
            if self.values + grown > MAX_STATE_VALUES {
                return Err(fail(format!("the rule's analytic functions hold {MAX_STATE_VALUES} values already")));
            }
            self.values += grown;
        }
        Ok(result)
    }
}

/// The evaluated arguments of one call over a batch, by expression then row.
struct Inputs<'a> {
    args: &'a [Vec<Result<Value, EvalError>>],
    partition: &'a [Vec<Result<Value, EvalError>>],
    when: Option<&'a [Result<Value, EvalError>]>,
    row: usize,
}

impl Inputs<'_> {
    fn args(&self) -> Result<Vec<Value>, EvalError> {
        self.args.iter().map(|values| values[self.row].clone()).collect()
    }

    fn when(&self) -> Result<Option<&Value>, EvalError> {
        self.when.map(|values| values[self.row].as_ref().map_err(Clone::clone)).transpose()
    }

    fn partition_key(&self) -> Result<Vec<u8>, EvalError> {
        if self.partition.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<&Value> = self
            .partition
            .iter()
            .map(|values| values[self.row].as_ref().map_err(Clone::clone))
            .collect::<Result<_, _>>()?;
        Ok(crate::group::partition_key(values))
    }
}

async fn eval_each(exprs: &[crate::Expr], rows: &[Row], env: &EvalEnv<'_>) -> Vec<Vec<Result<Value, EvalError>>> {
    let mut all = Vec::with_capacity(exprs.len());
    for expr in exprs {
        all.push(expr.eval_batch(rows, env).await);
    }
    all
}

/// The state of a partition's first event (`lag` sizes its queue by that
/// event's offset and fills it with its default, as eKuiper).
fn initial(kind: AnalyticKind, args: &[Value]) -> Result<CallState, String> {
    Ok(match kind {
        AnalyticKind::Lag => {
            let offset = match args.get(1) {
                None => 1,
                Some(Value::Int(n)) if (0..=MAX_STATE_VALUES as i64).contains(n) => *n as usize,
                Some(Value::Int(n)) => {
                    return Err(format!("the offset must be between 0 and {MAX_STATE_VALUES}, got {n}"));
                }
                Some(other) => return Err(format!("the offset must be a bigint, got {}", other.type_name())),
            };
            let default = args.get(2).cloned().unwrap_or_default();
            CallState::Lag(std::iter::repeat_n(default, offset).collect())
        }
        AnalyticKind::Latest => CallState::Latest(Value::Null),
        AnalyticKind::ChangedCol => CallState::Changed(vec![Value::Null]),
        AnalyticKind::HadChanged => CallState::Changed(vec![Value::Null; args.len().saturating_sub(1)]),
        kind if kind.running() => CallState::Running(super::running::Running::new(kind)),
        _ => CallState::Acc(Accumulator { begun: args.len() == 1, ..Accumulator::default() }),
    })
}

/// Whether a value changed: SQL equality, but a NaN is the same as a NaN.
fn same(a: &Value, b: &Value) -> bool {
    a == b || matches!((a, b), (Value::Float(x), Value::Float(y)) if x.is_nan() && y.is_nan())
}

fn ignore_null(args: &[Value]) -> Result<bool, String> {
    match args.first() {
        Some(Value::Bool(b)) => Ok(*b),
        other => Err(format!("the first argument (ignore null) must be a boolean, got {}", type_of(other))),
    }
}

fn type_of(value: Option<&Value>) -> &'static str {
    value.map_or("nothing", Value::type_name)
}

fn step(kind: AnalyticKind, state: &mut CallState, args: &[Value], valid: bool) -> Result<Value, String> {
    match (kind, state) {
        (AnalyticKind::Lag, CallState::Lag(queue)) => {
            let value = args.first().cloned().unwrap_or_default();
            let ignore_null = match args.get(3) {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(format!("ignore_null must be a boolean, got {}", other.type_name())),
            };
            let front = queue.front().cloned().unwrap_or_default();
            if valid && !(ignore_null && value.is_null()) && !queue.is_empty() {
                queue.pop_front();
                queue.push_back(value);
            }
            Ok(front)
        }
        (AnalyticKind::Latest, CallState::Latest(last)) => {
            let value = args.first().cloned().unwrap_or_default();
            if valid && !value.is_null() {
                *last = value.clone();
                return Ok(value);
            }
            Ok(if last.is_null() { args.get(1).cloned().unwrap_or_default() } else { last.clone() })
        }
        (AnalyticKind::ChangedCol, CallState::Changed(last)) => {
            let ignore_null = ignore_null(args)?;
            let value = args.get(1).cloned().unwrap_or_default();
            if (ignore_null && value.is_null()) || !valid || same(&value, &last[0]) {
                return Ok(Value::Null);
            }
            last[0] = value.clone();
            Ok(value)
        }
        (AnalyticKind::HadChanged, CallState::Changed(last)) => {
            if !valid {
                return Ok(Value::Bool(false));
            }
            let ignore_null = ignore_null(args)?;
            let mut changed = false;
            for (value, last) in args[1..].iter().zip(last.iter_mut()) {
                if (ignore_null && value.is_null()) || same(value, last) {
                    continue;
                }
                *last = value.clone();
                changed = true;
            }
            Ok(Value::Bool(changed))
        }
        (kind, CallState::Acc(acc)) => accumulate(kind, acc, args, valid),
        (kind, CallState::Running(running)) => running.step(kind, args),
        (kind, state) => Err(format!("{} cannot use the state {state:?}", kind.name())),
    }
}

/// eKuiper's accumulators: without conditions they take every event; with
/// `begin, reset` they start afresh at an event where `begin` is true, take
/// it and those after it, up to and including one where `reset` is true.
fn accumulate(kind: AnalyticKind, acc: &mut Accumulator, args: &[Value], valid: bool) -> Result<Value, String> {
    let conditions = match args {
        [_] => None,
        [_, Value::Bool(begin), Value::Bool(reset)] => Some((*begin, *reset)),
        [_, begin, reset] => {
            return Err(format!(
                "begin and reset must be booleans, got {} and {}",
                begin.type_name(),
                reset.type_name()
            ));
        }
        _ => return Err(format!("takes 1 or 3 arguments, got {}", args.len())),
    };
    if let Some((begin, _)) = conditions {
        if !acc.begun {
            *acc = Accumulator::default();
        }
        acc.begun |= begin;
    }
    if acc.begun && valid {
        take(kind, acc, &args[0])?;
    }
    if let Some((_, true)) = conditions {
        acc.begun = false;
    }
    Ok(match kind {
        AnalyticKind::AccSum => Value::Float(acc.sum),
        AnalyticKind::AccCount => Value::Int(acc.count),
        AnalyticKind::AccMin => Value::Float(acc.min.unwrap_or(0.0)),
        AnalyticKind::AccMax => Value::Float(acc.max.unwrap_or(0.0)),
        _ => Value::Float(if acc.count == 0 { 0.0 } else { acc.sum / acc.count as f64 }),
    })
}

/// Adds a value to an accumulator. `acc_sum` and `acc_count` skip NULL; the
/// others, as eKuiper's, take only numbers.
fn take(kind: AnalyticKind, acc: &mut Accumulator, value: &Value) -> Result<(), String> {
    if value.is_null() && matches!(kind, AnalyticKind::AccSum | AnalyticKind::AccCount) {
        return Ok(());
    }
    if kind == AnalyticKind::AccCount {
        acc.count += 1;
        return Ok(());
    }
    let x = match value {
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        other => return Err(format!("the value should be a number, got {}", other.type_name())),
    };
    acc.count += 1;
    acc.sum += x;
    acc.min = Some(acc.min.map_or(x, |m| m.min(x)));
    acc.max = Some(acc.max.map_or(x, |m| m.max(x)));
    Ok(())
}
