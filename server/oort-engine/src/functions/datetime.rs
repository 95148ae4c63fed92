//! Date and time functions, as eKuiper's. Times are UTC (eKuiper uses its configured
//! time zone), except a datetime `convert_tz` shows in another zone: it keeps that
//! zone's offset, and its fields and text are the zone's. Like eKuiper, the functions that produce a date or a time of day (`now`,
//! `cur_date`, `date_calc`, `from_unix_time`...) return formatted strings, and the ones
//! that take a datetime also take Unix milliseconds (BIGINT or FLOAT) and RFC 3339 strings.
//!
//! `format_time` patterns are eKuiper's Java-like ones: `yyyy-MM-dd HH:mm:ss.SSS`, with
//! `G y M d E H h a m s S z Z X` and `'quoted text'`; other characters are copied. The
//! same patterns parse a stream's string event times (`TIMESTAMP_FORMAT`, [`TimeParser`]).

use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};

use super::{Builtin, Kind, int, literal, literal_str, text};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::Value;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// The most fractional-second digits `now(fsp)` writes.
const MAX_FSP: i64 = 6;

/// Parses a datetime string: RFC 3339 (eKuiper's default `2006-01-02T15:04:05.000Z07:00`),
/// or, read as UTC, `2006-01-02 15:04:05[.fff]`, `2006-01-02T15:04:05[.fff]` or `2006-01-02`.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// The argument as a datetime: a DATETIME, Unix milliseconds, or a string [`parse_datetime`] reads.
/// A DATETIME keeps its offset; the others are read in UTC.
pub(crate) fn to_datetime(name: &str, index: usize, value: &Value) -> Result<DateTime<FixedOffset>, FunctionError> {
    let out_of_range = || FunctionError::failed(name, format!("{value} is out of the datetime range"));
    let utc = match value {
        Value::Timestamp(t) => return Ok(*t),
        Value::Int(ms) => DateTime::from_timestamp_millis(*ms).ok_or_else(out_of_range),
        Value::Float(ms) if ms.is_finite() && ms.abs() < 9.2e18 => {
            DateTime::from_timestamp_millis(ms.trunc() as i64).ok_or_else(out_of_range)
        }
        Value::Float(_) => Err(out_of_range()),
        Value::String(s) => parse_datetime(s)
            .ok_or_else(|| FunctionError::failed(name, format!("cannot read {s:?} as a datetime (RFC 3339 expected)"))),
        other => Err(FunctionError::argument_type(name, index + 1, "datetime", other)),
    };
    utc.map(|t| t.fixed_offset())
}

// ---------------------------------------------------------------------------
// format_time patterns
// ---------------------------------------------------------------------------

/// One piece of a format pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    Era,
    Year4,
    Year2,
    Month(usize),
    Day(usize),
    Weekday {
        long: bool,
    },
    Hour24(usize),
    Hour12(usize),
    AmPm,
    Minute(usize),
    Second(usize),
    /// Fractional seconds with this many digits, after a dot unless the pattern has one.
    Fraction {
        digits: usize,
        dot: bool,
    },
    ZoneName,
    ZoneOffset,
    IsoOffset(usize),
}

/// Parses a Java-like pattern, with eKuiper's rules (`yyyy` or `yy`, `EEE` or `EEEE`...).
fn parse_format(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let (token, used) = match c {
            'Y' | 'y' => match run {
                4 => (Token::Year4, 4),
                2 => (Token::Year2, 2),
                _ => return Err(format!("invalid pattern {pattern:?}: use yyyy or yy for the year")),
            },
            'G' => (Token::Era, run),
            'M' => (Token::Month(run.min(4)), run.min(4)),
            'd' => (Token::Day(run.min(2)), run.min(2)),
            'E' => match run {
                3 => (Token::Weekday { long: false }, 3),
                4 => (Token::Weekday { long: true }, 4),
                _ => return Err(format!("invalid pattern {pattern:?}: use EEE or EEEE for the day of the week")),
            },
            'H' => (Token::Hour24(run.min(2)), run.min(2)),
            'h' => (Token::Hour12(run.min(2)), run.min(2)),
            'a' => (Token::AmPm, 1),
            'm' => (Token::Minute(run.min(2)), run.min(2)),
            's' => (Token::Second(run.min(2)), run.min(2)),
            'S' => {
                // "ss.SSS" has its dot; "ssSSS" gets one, as in eKuiper where S stands for ".0".
                let dot = !literal.ends_with(['.', ',']);
                (Token::Fraction { digits: run.min(9), dot }, run.min(9))
            }
            'z' => (Token::ZoneName, 1),
            'Z' => (Token::ZoneOffset, 1),
            'X' => (Token::IsoOffset(run.min(3)), run.min(3)),
            '\'' => {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                // Quoted text up to the closing quote (or the end); '' inside is a quote, as in Java.
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            literal.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    literal.push(chars[i]);
                    i += 1;
                }
                continue;
            }
            other => {
                literal.push(other);
                i += 1;
                continue;
            }
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(token);
        i += used;
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

fn render(t: &DateTime<FixedOffset>, tokens: &[Token]) -> String {
    let mut out = String::new();
    let offset = t.offset().local_minus_utc();
    let (sign, hours, minutes) = (if offset < 0 { '-' } else { '+' }, offset.abs() / 3600, offset.abs() % 3600 / 60);
    for token in tokens {
        match token {
            Token::Literal(l) => out.push_str(l),
            Token::Era => out.push_str(if t.year() > 0 { "AD" } else { "BC" }),
            Token::Year4 => out.push_str(&format!("{:04}", t.year())),
            Token::Year2 => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Token::Month(1) => out.push_str(&t.month().to_string()),
            Token::Month(2) => out.push_str(&format!("{:02}", t.month())),
            Token::Month(3) => out.push_str(&MONTHS[t.month0() as usize][..3]),
            Token::Month(_) => out.push_str(MONTHS[t.month0() as usize]),
            Token::Day(1) => out.push_str(&t.day().to_string()),
            Token::Day(_) => out.push_str(&format!("{:02}", t.day())),
            Token::Weekday { long } => {
                let name = WEEKDAYS[t.weekday().num_days_from_monday() as usize];
                out.push_str(if *long { name } else { &name[..3] });
            }
            Token::Hour24(width) => push_padded(&mut out, t.hour(), *width),
            Token::Hour12(width) => {
                let h = t.hour() % 12;
                push_padded(&mut out, if h == 0 { 12 } else { h }, *width);
            }
            Token::AmPm => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Token::Minute(width) => push_padded(&mut out, t.minute(), *width),
            Token::Second(width) => push_padded(&mut out, t.second(), *width),
            Token::Fraction { digits, dot } => {
                if *dot {
                    out.push('.');
                }
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                out.push_str(&nanos[..*digits]);
            }
            // A zone known only by its offset is named by it, as Go names one.
            Token::ZoneName if offset == 0 => out.push_str("UTC"),
            Token::ZoneName if minutes == 0 => out.push_str(&format!("{sign}{hours:02}")),
            Token::ZoneName | Token::ZoneOffset | Token::IsoOffset(2) => {
                out.push_str(&format!("{sign}{hours:02}{minutes:02}"))
            }
            Token::IsoOffset(1) => out.push_str(&format!("{sign}{hours:02}")),
            Token::IsoOffset(_) => out.push_str(&format!("{sign}{hours:02}:{minutes:02}")),
        }
    }
    out
}

fn push_padded(out: &mut String, n: u32, width: usize) {
    out.push_str(&format!("{n:0width$}"));
}

/// Formats `t` with an eKuiper pattern.
pub(crate) fn format_time(t: &DateTime<FixedOffset>, pattern: &str) -> Result<String, String> {
    parse_format(pattern).map(|tokens| render(t, &tokens))
}

fn format_fixed(t: &DateTime<FixedOffset>, pattern: &str) -> String {
    format_time(t, pattern).unwrap_or_default()
}

/// An eKuiper pattern read for parsing, as eKuiper's `TIMESTAMP_FORMAT`:
/// its [`Token`]s made into a chrono format once, then each text parsed with it.
///
/// As Go's `time.Parse`, which eKuiper uses: digits need not be padded,
/// fractional seconds may have any number of digits (or be absent), month and
/// weekday names may be short or long, a missing month or day is the first,
/// a missing time is midnight, and a time without an offset is UTC. `Z`, `X`,
/// `XX` and `XXX` read an offset as `Z`, `+08`, `+0800` or `+08:00`; a zone
/// name (`z`) is skipped and the time read as UTC, as Go does with a name it
/// does not know. `G` stands for the text `AD`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeParser {
    pattern: String,
    chrono: String,
}

impl TimeParser {
    /// Reads `pattern`; a pattern with no year (`yyyy` or `yy`) cannot give
    /// a point in time and is refused, as one [`format_time`] refuses.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let tokens = parse_format(pattern)?;
        if !tokens.iter().any(|t| matches!(t, Token::Year4 | Token::Year2)) {
            return Err(format!("pattern {pattern:?} has no year (yyyy or yy), so it cannot give a point in time"));
        }
        let mut chrono = String::new();
        for token in &tokens {
            match token {
                Token::Literal(text) => chrono.push_str(&text.replace('%', "%%")),
                Token::Era => chrono.push_str("AD"),
                Token::Year4 => chrono.push_str("%Y"),
                Token::Year2 => chrono.push_str("%y"),
                Token::Month(1 | 2) => chrono.push_str("%m"),
                Token::Month(3) => chrono.push_str("%b"),
                Token::Month(_) => chrono.push_str("%B"),
                Token::Day(_) => chrono.push_str("%d"),
                Token::Weekday { long } => chrono.push_str(if *long { "%A" } else { "%a" }),
                Token::Hour24(_) => chrono.push_str("%H"),
                Token::Hour12(_) => chrono.push_str("%I"),
                Token::AmPm => chrono.push_str("%p"),
                Token::Minute(_) => chrono.push_str("%M"),
                Token::Second(_) => chrono.push_str("%S"),
                // `%.f`: a dot and any number of digits, or nothing.
                Token::Fraction { dot: true, .. } => chrono.push_str("%.f"),
                Token::Fraction { dot: false, .. } if chrono.ends_with('.') => {
                    chrono.pop();
                    chrono.push_str("%.f");
                }
                // After a comma: exactly this many digits, which chrono reads for 3, 6 or 9.
                Token::Fraction { digits: digits @ (3 | 6 | 9), dot: false } => chrono.push_str(&format!("%{digits}f")),
                Token::Fraction { .. } => {
                    return Err(format!(
                        "pattern {pattern:?}: fractional seconds after a comma are read as SSS, SSSSSS or SSSSSSSSS"
                    ));
                }
                Token::ZoneName => chrono.push_str("%Z"),
                Token::ZoneOffset | Token::IsoOffset(_) => chrono.push_str("%#z"),
            }
        }
        Ok(TimeParser { pattern: pattern.to_owned(), chrono })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Parses `text`: the point in time, at the offset the text gives (UTC without one).
    pub fn parse(&self, text: &str) -> Result<DateTime<FixedOffset>, String> {
        use chrono::format::{Parsed, StrftimeItems};
        let fail = |e: chrono::format::ParseError| format!("cannot read {text:?} as {:?}: {e}", self.pattern);
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, StrftimeItems::new(&self.chrono)).map_err(fail)?;
        // Go's defaults for what the pattern leaves out.
        if parsed.month().is_none() {
            parsed.set_month(1).map_err(fail)?;
        }
        if parsed.day().is_none() {
            parsed.set_day(1).map_err(fail)?;
        }
        if parsed.hour_mod_12().is_none() {
            parsed.set_hour(0).map_err(fail)?;
        }
        if parsed.hour_div_12().is_none() {
            parsed.set_ampm(false).map_err(fail)?;
        }
        if parsed.minute().is_none() {
            parsed.set_minute(0).map_err(fail)?;
        }
        match parsed.offset() {
            Some(_) => parsed.to_datetime().map_err(fail),
            None => parsed.to_naive_datetime_with_offset(0).map(|t| t.and_utc().fixed_offset()).map_err(fail),
        }
    }
}

const DATE: &str = "yyyy-MM-dd";
const DATE_TIME: &str = "yyyy-MM-dd HH:mm:ss";

// ---------------------------------------------------------------------------
// Durations for date_calc: Go's syntax, `1h30m`, `-1.5h`, `300ms`, `1h30m10s100ms200us300ns`.
// ---------------------------------------------------------------------------

pub(crate) fn parse_duration(input: &str) -> Result<TimeDelta, String> {
    let invalid = || format!("invalid duration {input:?} (expected e.g. 1h30m, -10s, 250ms)");
    let (negative, mut rest) = match input.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if total >= i64::MAX as f64 {
        return Err(format!("duration {input:?} is too long"));
    }
    let nanos = total.round() as i64;
    Ok(TimeDelta::nanoseconds(if negative { -nanos } else { nanos }))
}

// ---------------------------------------------------------------------------
// The functions.
// ---------------------------------------------------------------------------

fn fsp(name: &str, args: &[Value]) -> Result<usize, FunctionError> {
    match args.first() {
        None => Ok(0),
        Some(v) => {
            let n = int(name, 0, v)?;
            if (0..=MAX_FSP).contains(&n) {
                Ok(n as usize)
            } else {
                Err(FunctionError::failed(name, format!("the fractional seconds precision must be 0 to {MAX_FSP}")))
            }
        }
    }
}

fn validate_fsp(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal(args, 0).and_then(Value::as_i64) {
        Some(n) if !(0..=MAX_FSP).contains(&n) => {
            Err(format!("function {name}: the fractional seconds precision must be 0 to {MAX_FSP}"))
        }
        _ => Ok(()),
    }
}

fn clock_pattern(date: bool, digits: usize) -> String {
    let mut pattern = String::from(if date { DATE_TIME } else { "HH:mm:ss" });
    if digits > 0 {
        pattern.push('.');
        pattern.push_str(&"S".repeat(digits));
    }
    pattern
}

fn now(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(format_fixed(&Utc::now().fixed_offset(), &clock_pattern(true, fsp(name, args)?))))
}

fn cur_time(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(format_fixed(&Utc::now().fixed_offset(), &clock_pattern(false, fsp(name, args)?))))
}

fn cur_date(_: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::string(format_fixed(&Utc::now().fixed_offset(), DATE)))
}

fn format_time_fn(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = to_datetime(name, 0, &args[0])?;
    let pattern = text(name, 1, &args[1])?;
    format_time(&t, pattern).map(Value::string).map_err(|e| FunctionError::failed(name, e))
}

fn date_calc(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = to_datetime(name, 0, &args[0])?;
    let delta = parse_duration(text(name, 1, &args[1])?).map_err(|e| FunctionError::failed(name, e))?;
    let moved = t.checked_add_signed(delta).ok_or_else(|| FunctionError::failed(name, "the result is out of range"))?;
    Ok(Value::string(format_fixed(&moved, DATE_TIME)))
}

fn date_diff(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (from, to) = (to_datetime(name, 0, &args[0])?, to_datetime(name, 1, &args[1])?);
    Ok(Value::Int(to.signed_duration_since(from).num_days()))
}

fn from_days(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let days = int(name, 0, &args[0])?;
    if days == 0 {
        return Ok(Value::Null);
    }
    // eKuiper counts day 1 as 1970-01-01.
    let epoch = DateTime::UNIX_EPOCH;
    let t = days
        .checked_sub(1)
        .and_then(TimeDelta::try_days)
        .and_then(|d| epoch.checked_add_signed(d))
        .ok_or_else(|| FunctionError::failed(name, format!("{days} days is out of range")))?;
    Ok(Value::string(format_fixed(&t.fixed_offset(), DATE)))
}

fn from_unix_time(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let seconds = int(name, 0, &args[0])?;
    if seconds == 0 {
        return Ok(Value::Null);
    }
    let t = DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| FunctionError::failed(name, format!("{seconds} is out of the datetime range")))?;
    Ok(Value::string(format_fixed(&t.fixed_offset(), DATE_TIME)))
}

fn last_day(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = to_datetime(name, 0, &args[0])?;
    let (year, month) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    let last = NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .ok_or_else(|| FunctionError::failed(name, "the date is out of range"))?;
    Ok(Value::string(last.format("%Y-%m-%d").to_string()))
}

fn convert_tz(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let t = to_datetime(name, 0, &args[0])?;
    let zone = text(name, 1, &args[1])?;
    in_zone(&t, zone).map(Value::Timestamp).map_err(|e| FunctionError::failed(name, e))
}

/// `t` shown in `zone`: an IANA name, `UTC` (or empty) or `Local`.
fn in_zone(t: &DateTime<FixedOffset>, zone: &str) -> Result<DateTime<FixedOffset>, String> {
    match zone {
        "" | "UTC" => Ok(t.to_utc().fixed_offset()),
        "Local" => Ok(t.with_timezone(&chrono::Local).fixed_offset()),
        name => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => Ok(t.with_timezone(&tz).fixed_offset()),
            Err(_) => Err(format!("unknown time zone {name}")),
        },
    }
}

/// As eKuiper: the first argument is no literal number, string or boolean;
/// the second, if a literal, a known zone.
fn validate_convert_tz(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    if let Some(literal @ (Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::String(_))) =
        args.first().and_then(|a| a.literal)
    {
        return Err(format!("function {name}: argument 1 must be a datetime, got a {} literal", literal.type_name()));
    }
    match args.get(1).and_then(|a| a.literal) {
        Some(Value::String(zone)) => {
            in_zone(&DateTime::UNIX_EPOCH.fixed_offset(), zone).map(|_| ()).map_err(|e| format!("function {name}: {e}"))
        }
        Some(other) => Err(format!("function {name}: argument 2 must be a time zone name, got {}", other.type_name())),
        None => Ok(()),
    }
}

/// A function of one datetime.
fn part(name: &str, description: &str, f: fn(&DateTime<FixedOffset>) -> Value) -> Arc<dyn Function> {
    Builtin::scalar(name, 1, Some(1), description, move |name, _, args| Ok(f(&to_datetime(name, 0, &args[0])?)))
        .validate(validate_datetime_literal)
        .build()
}

fn validate_format(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(pattern) => parse_format(pattern).map(|_| ()).map_err(|e| format!("function {name}: {e}")),
        None => Ok(()),
    }
}

fn validate_duration(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    match literal_str(args, 1) {
        Some(duration) => parse_duration(duration).map(|_| ()).map_err(|e| format!("function {name}: {e}")),
        None => Ok(()),
    }
}

/// A literal where a datetime is expected is refused when the rule is
/// created unless it is a string that reads as a datetime: eKuiper refuses
/// `hour(1)` and `date_calc(1, "24h")` (and every literal string; Oort takes
/// those it can read).
fn validate_datetime_literal(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    for (index, arg) in args.iter().enumerate() {
        match arg.literal {
            Some(Value::String(s)) if parse_datetime(s).is_none() => {
                return Err(format!("function {name}: argument {} {s:?} is not a datetime", index + 1));
            }
            Some(literal @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => {
                return Err(format!(
                    "function {name}: argument {} must be a datetime (a column, a function's result or a string such \
                     as \"2024-01-01 10:00:00\"), got {}",
                    index + 1,
                    literal.type_name()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The date and time functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    let now_fn = |name: &str, description: &str| {
        Builtin::scalar(name, 0, Some(1), description, now).kinds(&[Kind::Int]).validate(validate_fsp).build()
    };
    let time_fn = |name: &str, description: &str| {
        Builtin::scalar(name, 0, Some(1), description, cur_time).kinds(&[Kind::Int]).validate(validate_fsp).build()
    };
    vec![
        now_fn("now", "The current time as \"yyyy-MM-dd HH:mm:ss\", with fsp (0 to 6) fractional digits: now([fsp])."),
        now_fn("current_timestamp", "Synonym for now."),
        now_fn("local_time", "Synonym for now."),
        now_fn("local_timestamp", "Synonym for now."),
        Builtin::scalar("cur_date", 0, Some(0), "The current date as \"yyyy-MM-dd\".", cur_date).build(),
        Builtin::scalar("current_date", 0, Some(0), "Synonym for cur_date.", cur_date).build(),
        time_fn("cur_time", "The current time of day as \"HH:mm:ss\", with fsp fractional digits: cur_time([fsp])."),
        time_fn("current_time", "Synonym for cur_time."),
        Builtin::scalar(
            "format_time",
            2,
            Some(2),
            "Formats a datetime with a pattern such as \"yyyy-MM-dd HH:mm:ss.SSS\".",
            format_time_fn,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .validate(|name, args| {
            validate_datetime_literal(name, args.get(..1).unwrap_or_default())?;
            validate_format(name, args)
        })
        .build(),
        Builtin::scalar(
            "date_calc",
            2,
            Some(2),
            "Adds a duration such as \"1h30m\" or \"-10s\" to a datetime; returns \"yyyy-MM-dd HH:mm:ss\".",
            date_calc,
        )
        .kinds(&[Kind::Any, Kind::Str])
        .validate(|name, args| {
            validate_datetime_literal(name, args.get(..1).unwrap_or_default())?;
            validate_duration(name, args)
        })
        .build(),
        Builtin::scalar(
            "convert_tz",
            2,
            Some(2),
            "The datetime shown in a time zone of the IANA database (\"Asia/Shanghai\"), \"UTC\" or \"Local\" (the \
             server's): the same instant, whose hour, day and text are the zone's.",
            convert_tz,
        )
        .validate(validate_convert_tz)
        .build(),
        Builtin::scalar(
            "date_diff",
            2,
            Some(2),
            "The number of whole days from the first datetime to the second.",
            date_diff,
        )
        .validate(validate_datetime_literal)
        .build(),
        part("day_name", "The name of the day of the week, such as Monday.", |t| {
            Value::string(WEEKDAYS[t.weekday().num_days_from_monday() as usize])
        }),
        part("day_of_month", "The day of the month, 1 to 31.", |t| Value::Int(i64::from(t.day()))),
        part("day", "Synonym for day_of_month.", |t| Value::Int(i64::from(t.day()))),
        part("day_of_week", "The day of the week, Sunday = 1 to Saturday = 7.", |t| {
            Value::Int(i64::from(t.weekday().number_from_sunday()))
        }),
        part("day_of_year", "The day of the year, 1 to 366.", |t| Value::Int(i64::from(t.ordinal()))),
        Builtin::scalar(
            "from_days",
            1,
            Some(1),
            "The date (\"yyyy-MM-dd\") of a day number, day 1 being 1970-01-01.",
            from_days,
        )
        .kinds(&[Kind::Int])
        .build(),
        Builtin::scalar(
            "from_unix_time",
            1,
            Some(1),
            "The datetime (\"yyyy-MM-dd HH:mm:ss\") of Unix seconds.",
            from_unix_time,
        )
        .kinds(&[Kind::Int])
        .build(),
        part("hour", "The hour, 0 to 23.", |t| Value::Int(i64::from(t.hour()))),
        Builtin::scalar("last_day", 1, Some(1), "The last day (\"yyyy-MM-dd\") of the month of a datetime.", last_day)
            .validate(validate_datetime_literal)
            .build(),
        part("microsecond", "The microseconds of the second, 0 to 999999.", |t| {
            Value::Int(i64::from(t.nanosecond() % 1_000_000_000 / 1_000))
        }),
        part("minute", "The minute, 0 to 59.", |t| Value::Int(i64::from(t.minute()))),
        part("month", "The month, 1 to 12.", |t| Value::Int(i64::from(t.month()))),
        part("month_name", "The name of the month, such as January.", |t| Value::string(MONTHS[t.month0() as usize])),
        part("second", "The second, 0 to 59.", |t| Value::Int(i64::from(t.second()))),
        part("year", "The year.", |t| Value::Int(i64::from(t.year()))),
        Builtin::scalar(
            "to_seconds",
            1,
            Some(1),
            "A datetime (or a string or Unix milliseconds read as one) as Unix seconds.",
            |name, _, args| Ok(Value::Int(to_datetime(name, 0, &args[0])?.timestamp())),
        )
        .build(),
    ]
}

#[cfg(test)]
mod tests;
