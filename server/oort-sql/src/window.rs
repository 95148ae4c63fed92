//! Windows: [`TimeUnit`] and [`WindowSpec`], read from the window function
//! call in a rule's `GROUP BY`.
//!
//! | call                                   | meaning                                         |
//! |----------------------------------------|-------------------------------------------------|
//! | `TUMBLINGWINDOW(unit, length)`         | fixed, non-overlapping windows                  |
//! | `HOPPINGWINDOW(unit, length, interval)`| windows of `length`, one every `interval`       |
//! | `SLIDINGWINDOW(unit, length [, delay])`| on each event, the `length` before it (+ delay) |
//! | `SESSIONWINDOW(unit, length, timeout)` | closes after `timeout` idle, at most `length`   |
//! | `COUNTWINDOW(count [, interval])`      | every `interval` events, the last `count`       |

use std::fmt;
use std::time::Duration;

use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Spanned, Value};

use crate::error::{Position, SqlError};

/// The time unit of a time-based window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `ms`
    Millisecond,
    /// `ss`
    Second,
    /// `mi`
    Minute,
    /// `hh`
    Hour,
    /// `dd`
    Day,
}

impl TimeUnit {
    /// The valid unit keywords, for error messages.
    pub const VALID_KEYWORDS: &'static str = "ms, ss, mi, hh, dd";

    /// Parses an eKuiper unit keyword (`ms`, `ss`, `mi`, `hh`, `dd`;
    /// case-insensitive).
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        match keyword.to_ascii_lowercase().as_str() {
            "ms" => Some(Self::Millisecond),
            "ss" => Some(Self::Second),
            "mi" => Some(Self::Minute),
            "hh" => Some(Self::Hour),
            "dd" => Some(Self::Day),
            _ => None,
        }
    }

    /// The eKuiper keyword for this unit, lowercase.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Millisecond => "ms",
            Self::Second => "ss",
            Self::Minute => "mi",
            Self::Hour => "hh",
            Self::Day => "dd",
        }
    }

    /// How many milliseconds one unit lasts.
    pub fn millis(self) -> u64 {
        match self {
            Self::Millisecond => 1,
            Self::Second => 1_000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// `count` units as a [`Duration`]; `None` on overflow.
    pub fn duration(self, count: u64) -> Option<Duration> {
        count.checked_mul(self.millis()).map(Duration::from_millis)
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A window, as declared by the window function in `GROUP BY`.
///
/// Lengths, intervals and timeouts are counts of `unit` (or of events, for
/// [`WindowSpec::Count`]) and are always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// `TUMBLINGWINDOW(unit, length)`.
    Tumbling {
        /// Time unit.
        unit: TimeUnit,
        /// Window size.
        length: u64,
    },
    /// `HOPPINGWINDOW(unit, length, interval)`.
    Hopping {
        /// Time unit.
        unit: TimeUnit,
        /// Window size.
        length: u64,
        /// How often a window starts (the hop).
        interval: u64,
    },
    /// `SLIDINGWINDOW(unit, length [, delay])`.
    Sliding {
        /// Time unit.
        unit: TimeUnit,
        /// How far back each window reaches from its triggering event.
        length: u64,
        /// How long to wait after the triggering event before emitting.
        delay: Option<u64>,
    },
    /// `SESSIONWINDOW(unit, length, timeout)`.
    Session {
        /// Time unit.
        unit: TimeUnit,
        /// The maximum duration of a session.
        length: u64,
        /// The idle time after which a session closes.
        timeout: u64,
    },
    /// `COUNTWINDOW(length [, interval])`.
    Count {
        /// How many events each window holds.
        length: u64,
        /// Emit every `interval` events (at most `length`); `None` means
        /// every `length` events.
        interval: Option<u64>,
    },
    /// `STATEWINDOW(condition)` or `STATEWINDOW(begin, emit)`; the conditions
    /// are expressions, in [`crate::RuleQuery::window_conditions`].
    State {
        /// Whether it has `begin` and `emit` conditions rather than one.
        begin_and_emit: bool,
    },
}

impl WindowSpec {
    /// The window function names, uppercase, that eKuiper accepts.
    pub const FUNCTION_NAMES: [&'static str; 6] =
        ["TUMBLINGWINDOW", "HOPPINGWINDOW", "SLIDINGWINDOW", "SESSIONWINDOW", "COUNTWINDOW", "STATEWINDOW"];

    /// The function name of this window kind, uppercase.
    pub fn function_name(&self) -> &'static str {
        match self {
            Self::Tumbling { .. } => "TUMBLINGWINDOW",
            Self::Hopping { .. } => "HOPPINGWINDOW",
            Self::Sliding { .. } => "SLIDINGWINDOW",
            Self::Session { .. } => "SESSIONWINDOW",
            Self::Count { .. } => "COUNTWINDOW",
            Self::State { .. } => "STATEWINDOW",
        }
    }

    /// The time unit; `None` for count windows.
    pub fn unit(&self) -> Option<TimeUnit> {
        match *self {
            Self::Tumbling { unit, .. }
            | Self::Hopping { unit, .. }
            | Self::Sliding { unit, .. }
            | Self::Session { unit, .. } => Some(unit),
            Self::Count { .. } | Self::State { .. } => None,
        }
    }

    /// True when `name` (case-insensitive) is a window function, supported or
    /// not: such calls belong in `GROUP BY` and nowhere else.
    pub fn is_window_function(name: &str) -> bool {
        Self::FUNCTION_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Reads a window from a function call. `Ok(None)` when `function` is
    /// not a window function; an error when it is one with bad arguments.
    pub(crate) fn from_function(function: &Function) -> Result<Option<Self>, SqlError> {
        let Some(name) = single_name(function) else {
            return Ok(None);
        };
        if !Self::is_window_function(name) {
            return Ok(None);
        }
        let name = name.to_ascii_uppercase();
        let position = Position::from_location(function.name.span().start);
        let args = plain_args(function, &name, position)?;
        let args = WindowArgs { name: &name, args: &args };

        let spec = match name.as_str() {
            "TUMBLINGWINDOW" => {
                args.expect_count(&[2], "(unit, length)", position)?;
                Self::Tumbling { unit: args.unit()?, length: args.positive(1, "length")? }
            }
            "HOPPINGWINDOW" => {
                args.expect_count(&[3], "(unit, length, interval)", position)?;
                Self::Hopping {
                    unit: args.unit()?,
                    length: args.positive(1, "length")?,
                    interval: args.positive(2, "interval")?,
                }
            }
            "SLIDINGWINDOW" => {
                args.expect_count(&[2, 3], "(unit, length [, delay])", position)?;
                Self::Sliding {
                    unit: args.unit()?,
                    length: args.positive(1, "length")?,
                    delay: args.optional_positive(2, "delay")?,
                }
            }
            "STATEWINDOW" => {
                args.expect_count(&[1, 2], "(condition) or (begin, emit)", position)?;
                Self::State { begin_and_emit: args.args.len() == 2 }
            }
            "SESSIONWINDOW" => {
                args.expect_count(&[3], "(unit, length, timeout)", position)?;
                Self::Session {
                    unit: args.unit()?,
                    length: args.positive(1, "length")?,
                    timeout: args.positive(2, "timeout")?,
                }
            }
            _ => {
                args.expect_count(&[1, 2], "(length [, interval])", position)?;
                let length = args.positive(0, "length")?;
                let interval = args.optional_positive(1, "interval")?;
                if let Some(interval) = interval.filter(|&i| i > length) {
                    return Err(SqlError::semantic(
                        format!("COUNTWINDOW interval ({interval}) must not be greater than its length ({length})"),
                        args.position(1),
                    ));
                }
                Self::Count { length, interval }
            }
        };
        Ok(Some(spec))
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.function_name();
        match *self {
            Self::Tumbling { unit, length } => write!(f, "{name}({unit}, {length})"),
            Self::Hopping { unit, length, interval } => write!(f, "{name}({unit}, {length}, {interval})"),
            Self::Sliding { unit, length, delay: None } => write!(f, "{name}({unit}, {length})"),
            Self::Sliding { unit, length, delay: Some(delay) } => write!(f, "{name}({unit}, {length}, {delay})"),
            Self::Session { unit, length, timeout } => write!(f, "{name}({unit}, {length}, {timeout})"),
            Self::Count { length, interval: None } => write!(f, "{name}({length})"),
            Self::Count { length, interval: Some(interval) } => write!(f, "{name}({length}, {interval})"),
            Self::State { begin_and_emit: false } => write!(f, "{name}(condition)"),
            Self::State { begin_and_emit: true } => write!(f, "{name}(begin, emit)"),
        }
    }
}

/// The function's name when it is a single unqualified identifier.
fn single_name(function: &Function) -> Option<&str> {
    match function.name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.as_str()),
        _ => None,
    }
}

/// The call's arguments, rejecting anything but plain positional ones.
fn plain_args<'a>(function: &'a Function, name: &str, position: Option<Position>) -> Result<Vec<&'a Expr>, SqlError> {
    let unsupported = |what: &str| Err(SqlError::semantic(format!("{name} does not take {what}"), position));
    // FILTER and OVER are read by the rule (`rule::window`).
    if !function.within_group.is_empty() {
        return unsupported("WITHIN GROUP");
    }
    if function.null_treatment.is_some() {
        return unsupported("IGNORE/RESPECT NULLS");
    }
    if !matches!(function.parameters, FunctionArguments::None) {
        return unsupported("a second argument list");
    }
    let list = match &function.args {
        FunctionArguments::List(list) => list,
        FunctionArguments::None => return Ok(Vec::new()),
        FunctionArguments::Subquery(_) => return unsupported("a subquery"),
    };
    if list.duplicate_treatment.is_some() {
        return unsupported("DISTINCT or ALL");
    }
    if !list.clauses.is_empty() {
        return unsupported("clauses inside its argument list");
    }
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
            other => Err(SqlError::semantic(
                format!("{name} takes plain positional arguments, got `{other}`"),
                Position::from_location(other.span().start).or(position),
            )),
        })
        .collect()
}

/// Positional arguments of a window call, with typed accessors.
struct WindowArgs<'a> {
    name: &'a str,
    args: &'a [&'a Expr],
}

impl WindowArgs<'_> {
    fn expect_count(&self, counts: &[usize], signature: &str, position: Option<Position>) -> Result<(), SqlError> {
        if counts.contains(&self.args.len()) {
            return Ok(());
        }
        Err(SqlError::semantic(
            format!(
                "{} takes {signature}, got {} argument{}",
                self.name,
                self.args.len(),
                if self.args.len() == 1 { "" } else { "s" }
            ),
            position,
        ))
    }

    fn position(&self, index: usize) -> Option<Position> {
        self.args.get(index).and_then(|e| Position::from_location(e.span().start))
    }

    /// The first argument as a time unit.
    fn unit(&self) -> Result<TimeUnit, SqlError> {
        let unit = match self.args.first() {
            Some(Expr::Identifier(ident)) if ident.quote_style.is_none() => TimeUnit::from_keyword(&ident.value),
            _ => None,
        };
        unit.ok_or_else(|| {
            let got = self.args.first().map(|e| e.to_string()).unwrap_or_default();
            SqlError::semantic(
                format!(
                    "the first argument of {} must be a time unit (one of {}), got `{got}`",
                    self.name,
                    TimeUnit::VALID_KEYWORDS
                ),
                self.position(0),
            )
        })
    }

    /// Argument `index` as a positive integer literal.
    fn positive(&self, index: usize, what: &str) -> Result<u64, SqlError> {
        let value = match self.args.get(index) {
            Some(Expr::Value(v)) => match &v.value {
                Value::Number(n, _) => n.parse::<u64>().ok(),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(v) if v > 0 => Ok(v),
            _ => {
                let got = self.args.get(index).map(|e| e.to_string()).unwrap_or_default();
                Err(SqlError::semantic(
                    format!("the {what} of {} must be a positive integer, got `{got}`", self.name),
                    self.position(index),
                ))
            }
        }
    }

    /// Argument `index` as a positive integer, if present.
    fn optional_positive(&self, index: usize, what: &str) -> Result<Option<u64>, SqlError> {
        if index < self.args.len() { self.positive(index, what).map(Some) } else { Ok(None) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        for unit in [TimeUnit::Millisecond, TimeUnit::Second, TimeUnit::Minute, TimeUnit::Hour, TimeUnit::Day] {
            assert_eq!(TimeUnit::from_keyword(unit.keyword()), Some(unit));
            assert_eq!(TimeUnit::from_keyword(&unit.keyword().to_uppercase()), Some(unit));
        }
        assert_eq!(TimeUnit::from_keyword("s"), None);
        assert_eq!(TimeUnit::Minute.duration(2), Some(Duration::from_secs(120)));
        assert_eq!(TimeUnit::Day.duration(u64::MAX), None);
    }

    #[test]
    fn display() {
        let cases = [
            (WindowSpec::Tumbling { unit: TimeUnit::Second, length: 10 }, "TUMBLINGWINDOW(ss, 10)"),
            (WindowSpec::Hopping { unit: TimeUnit::Second, length: 10, interval: 5 }, "HOPPINGWINDOW(ss, 10, 5)"),
            (
                WindowSpec::Sliding { unit: TimeUnit::Millisecond, length: 10, delay: Some(2) },
                "SLIDINGWINDOW(ms, 10, 2)",
            ),
            (WindowSpec::Session { unit: TimeUnit::Minute, length: 10, timeout: 2 }, "SESSIONWINDOW(mi, 10, 2)"),
            (WindowSpec::Count { length: 5, interval: None }, "COUNTWINDOW(5)"),
        ];
        for (spec, text) in cases {
            assert_eq!(spec.to_string(), text);
        }
    }
}
