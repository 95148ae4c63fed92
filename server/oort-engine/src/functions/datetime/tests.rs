//! Tests of the parent module.

use chrono::TimeZone;

use super::*;
use crate::functions::testing::{s, validate};

crate::functions::testing::shorthands!(functions);

/// Thursday 2024-02-29 13:04:05.123456789 UTC.
fn t() -> DateTime<Utc> {
    let base = Utc.with_ymd_and_hms(2024, 2, 29, 13, 4, 5).single().unwrap_or_default();
    base + TimeDelta::nanoseconds(123_456_789)
}

fn ts() -> Value {
    Value::utc(t())
}

fn is_clock(value: &Value, pattern: &str) -> bool {
    let Value::String(text) = value else { return false };
    text.len() == pattern.len()
        && text.chars().zip(pattern.chars()).all(|(c, p)| if p == '9' { c.is_ascii_digit() } else { c == p })
}

#[test]
fn datetimes_are_read_from_numbers_and_strings() {
    assert_eq!(
        to_datetime("f", 0, &Value::Int(t().timestamp_millis())).ok(),
        Some((t() - TimeDelta::nanoseconds(456_789)).fixed_offset())
    );
    assert_eq!(to_datetime("f", 0, &Value::Float(1000.7)).ok().map(|t| t.timestamp_millis()), Some(1000));
    assert!(parse_datetime("2024-02-29T13:04:05.123456789Z").is_some());
    assert!(parse_datetime("2024-02-29T15:04:05+02:00").is_some());
    assert!(parse_datetime("2024-02-29 13:04:05").is_some());
    assert!(parse_datetime("2024-02-29 13:04:05.5").is_some());
    assert!(parse_datetime("2024-02-29T13:04:05").is_some());
    assert_eq!(parse_datetime("2024-02-29").map(|t| t.hour()), Some(0));
    assert!(parse_datetime("29/02/2024").is_none());
    assert!(matches!(to_datetime("f", 0, &Value::Float(f64::NAN)), Err(FunctionError::Failed { .. })));
    assert!(matches!(to_datetime("f", 0, &Value::Int(i64::MAX)), Err(FunctionError::Failed { .. })));
    assert!(matches!(to_datetime("f", 0, &Value::Bool(true)), Err(FunctionError::ArgumentType { .. })));
}

#[test]
fn format_time_uses_java_like_patterns() {
    assert_eq!(f("format_time", &[ts(), s("yyyy-MM-dd HH:mm:ss.SSS")]), s("2024-02-29 13:04:05.123"));
    assert_eq!(f("format_time", &[ts(), s("YYYY/MM/dd HH:mm:ssSSS XXX")]), s("2024/02/29 13:04:05.123 +00:00"));
    assert_eq!(
        f("format_time", &[ts(), s("yy M d h:m:s a EEE EEEE MMM MMMM G Z z X XX")]),
        s("24 2 29 1:4:5 PM Thu Thursday Feb February AD +0000 UTC +00 +0000")
    );
    assert_eq!(f("format_time", &[ts(), s("yyyy'T'HH 'o''clock' ''")]), s("2024T13 o'clock '"));
    assert_eq!(f("format_time", &[ts(), s("ss.SSSSSSSSS")]), s("05.123456789"));
    assert_eq!(f("format_time", &[Value::Int(0), s("yyyy-MM-dd hh a")]), s("1970-01-01 12 AM"));
    assert_eq!(f("format_time", &[s("2024-02-29T13:04:05Z"), s("dd/MM")]), s("29/02"));
    assert_eq!(f("format_time", &[Value::Null, s("yyyy")]), Value::Null);
    assert!(matches!(e("format_time", &[ts(), s("yyy")]), FunctionError::Failed { .. }));
    assert!(matches!(e("format_time", &[Value::Bool(true), s("yyyy")]), FunctionError::ArgumentType { .. }));
    assert!(matches!(e("format_time", &[s("not a date"), s("yyyy")]), FunctionError::Failed { .. }));
}

#[test]
fn format_patterns_are_checked_at_plan_time() {
    assert!(validate(&functions(), "format_time", &[None, Some(s("yyyy-MM-dd HH:mm:ss"))]).is_ok());
    for bad in ["y", "yyy", "yyyyy", "E", "EE", "EEEEE"] {
        let error = validate(&functions(), "format_time", &[None, Some(s(bad))]).unwrap_err();
        assert!(error.contains("invalid pattern"), "{bad}: {error}");
    }
    assert!(validate(&functions(), "format_time", &[Some(s("29/02/2024")), None]).is_err());
    assert!(validate(&functions(), "format_time", &[Some(s("2024-02-29")), None]).is_ok());
    assert!(validate(&functions(), "format_time", &[None, Some(Value::Int(1))]).is_err());
}

#[test]
fn current_time_functions() {
    for name in ["now", "current_timestamp", "local_time", "local_timestamp"] {
        assert!(is_clock(&f(name, &[]), "9999-99-99 99:99:99"), "{name}");
        assert!(is_clock(&f(name, &[Value::Int(3)]), "9999-99-99 99:99:99.999"), "{name}");
        assert_eq!(f(name, &[Value::Null]), Value::Null);
        assert!(matches!(e(name, &[Value::Int(7)]), FunctionError::Failed { .. }));
        assert!(matches!(e(name, &[s("3")]), FunctionError::ArgumentType { .. }));
        assert!(validate(&functions(), name, &[Some(Value::Int(9))]).is_err());
        assert!(validate(&functions(), name, &[Some(s("3"))]).is_err());
    }
    for name in ["cur_time", "current_time"] {
        assert!(is_clock(&f(name, &[]), "99:99:99"), "{name}");
        assert!(is_clock(&f(name, &[Value::Int(2)]), "99:99:99.99"), "{name}");
        assert!(matches!(e(name, &[Value::Int(-1)]), FunctionError::Failed { .. }));
    }
    for name in ["cur_date", "current_date"] {
        assert!(is_clock(&f(name, &[]), "9999-99-99"), "{name}");
        assert!(validate(&functions(), name, &[None]).is_err());
    }
}

#[test]
fn date_calc_adds_durations() {
    assert_eq!(f("date_calc", &[ts(), s("1h30m")]), s("2024-02-29 14:34:05"));
    assert_eq!(f("date_calc", &[ts(), s("-1h")]), s("2024-02-29 12:04:05"));
    assert_eq!(f("date_calc", &[ts(), s("11h")]), s("2024-03-01 00:04:05"));
    assert_eq!(f("date_calc", &[ts(), s("1.5h")]), s("2024-02-29 14:34:05"));
    assert_eq!(f("date_calc", &[s("2019-01-01"), s("1h30m10s100ms200us300ns")]), s("2019-01-01 01:30:10"));
    assert_eq!(f("date_calc", &[ts(), s("0")]), s("2024-02-29 13:04:05"));
    assert_eq!(f("date_calc", &[Value::Null, s("1h")]), Value::Null);
    for bad in ["1d", "h", "", "1h-2m", "--1h"] {
        assert!(matches!(e("date_calc", &[ts(), s(bad)]), FunctionError::Failed { .. }), "{bad}");
    }
    assert!(matches!(e("date_calc", &[ts(), s("9999999999h")]), FunctionError::Failed { .. }));
    assert!(matches!(e("date_calc", &[ts(), Value::Int(1)]), FunctionError::ArgumentType { .. }));
    assert!(validate(&functions(), "date_calc", &[None, Some(s("1x"))]).is_err());
    assert!(validate(&functions(), "date_calc", &[None, Some(s("2h45m"))]).is_ok());
}

#[test]
fn durations_follow_go() {
    assert_eq!(parse_duration("1h30m"), Ok(TimeDelta::minutes(90)));
    assert_eq!(parse_duration("-1.5s"), Ok(TimeDelta::milliseconds(-1500)));
    assert_eq!(parse_duration("+2µs"), Ok(TimeDelta::microseconds(2)));
    assert_eq!(parse_duration("3us4ns"), Ok(TimeDelta::nanoseconds(3004)));
    assert!(parse_duration("1").is_err(), "a unit is required");
    assert!(parse_duration("1.2.3s").is_err());
}

#[test]
fn date_diff_counts_days() {
    let later = Value::utc(t() + TimeDelta::days(3) + TimeDelta::hours(5));
    assert_eq!(f("date_diff", &[ts(), later.clone()]), Value::Int(3));
    assert_eq!(f("date_diff", &[later, ts()]), Value::Int(-3));
    assert_eq!(f("date_diff", &[s("2024-01-01"), s("2024-03-01")]), Value::Int(60));
    assert_eq!(f("date_diff", &[Value::Null, ts()]), Value::Null);
    assert!(matches!(e("date_diff", &[ts(), Value::Bool(false)]), FunctionError::ArgumentType { index: 2, .. }));
    assert!(validate(&functions(), "date_diff", &[Some(s("soon")), None]).is_err());
}

#[test]
fn parts_of_a_datetime() {
    let cases = [
        ("day_name", s("Thursday")),
        ("day_of_month", Value::Int(29)),
        ("day", Value::Int(29)),
        ("day_of_week", Value::Int(5)),
        ("day_of_year", Value::Int(60)),
        ("hour", Value::Int(13)),
        ("minute", Value::Int(4)),
        ("second", Value::Int(5)),
        ("microsecond", Value::Int(123_456)),
        ("month", Value::Int(2)),
        ("month_name", s("February")),
        ("year", Value::Int(2024)),
        ("last_day", s("2024-02-29")),
    ];
    for (name, expected) in cases {
        assert_eq!(f(name, &[ts()]), expected, "{name}");
        assert_eq!(f(name, &[Value::Null]), Value::Null, "{name}");
        assert!(matches!(e(name, &[Value::Bool(true)]), FunctionError::ArgumentType { .. }), "{name}");
    }
    assert_eq!(f("day_of_week", &[s("2024-03-03")]), Value::Int(1), "Sunday is 1");
    assert_eq!(f("day_of_week", &[s("2024-03-02")]), Value::Int(7), "Saturday is 7");
    assert_eq!(f("last_day", &[s("2023-12-05")]), s("2023-12-31"));
    assert_eq!(f("last_day", &[s("2023-02-05")]), s("2023-02-28"));
    assert_eq!(f("hour", &[Value::Int(3_600_000)]), Value::Int(1), "milliseconds are datetimes");
}

#[test]
fn from_days_and_unix_time() {
    assert_eq!(f("from_days", &[Value::Int(1)]), s("1970-01-01"));
    assert_eq!(f("from_days", &[Value::Int(32)]), s("1970-02-01"));
    assert_eq!(f("from_days", &[Value::Int(0)]), Value::Null);
    assert_eq!(f("from_days", &[Value::Null]), Value::Null);
    assert!(matches!(e("from_days", &[Value::Int(i64::MAX)]), FunctionError::Failed { .. }));
    assert!(matches!(e("from_days", &[s("1")]), FunctionError::ArgumentType { .. }));
    assert_eq!(f("from_unix_time", &[Value::Int(86_400)]), s("1970-01-02 00:00:00"));
    assert_eq!(f("from_unix_time", &[Value::Int(0)]), Value::Null);
    assert_eq!(f("from_unix_time", &[Value::Null]), Value::Null);
    assert!(matches!(e("from_unix_time", &[Value::Int(i64::MAX)]), FunctionError::Failed { .. }));
    assert!(matches!(e("from_unix_time", &[Value::Float(1.5)]), FunctionError::ArgumentType { .. }));
}

#[test]
fn a_literal_that_is_not_a_datetime_is_refused_when_the_rule_is_created() {
    let functions = functions();
    for name in ["day_name", "hour", "day_of_month", "minute", "year", "last_day"] {
        let refused = validate(&functions, name, &[Some(Value::Int(1))]).unwrap_err();
        assert!(refused.contains("argument 1 must be a datetime") && refused.contains("bigint"), "{refused}");
        assert!(validate(&functions, name, &[None]).is_ok(), "{name} of a column");
        assert!(validate(&functions, name, &[Some(s("2024-01-01 10:00:00"))]).is_ok(), "{name} of a readable string");
    }
    assert!(validate(&functions, "date_calc", &[Some(Value::Int(1)), Some(s("24h"))]).is_err());
    assert!(validate(&functions, "date_calc", &[None, Some(s("24h"))]).is_ok());
    assert!(validate(&functions, "date_diff", &[None, Some(Value::Bool(true))]).is_err());
    assert!(validate(&functions, "format_time", &[Some(Value::Float(1.5)), Some(s("yyyy"))]).is_err());
}

#[test]
fn to_seconds_reads_a_datetime_first() {
    assert_eq!(f("to_seconds", &[s("1970-01-02 00:00:00")]), Value::Int(86_400));
    assert_eq!(f("to_seconds", &[Value::Int(90_500)]), Value::Int(90), "milliseconds, truncated");
    assert_eq!(f("to_seconds", &[Value::Null]), Value::Null);
    assert!(matches!(e("to_seconds", &[Value::Bool(true)]), FunctionError::ArgumentType { .. }));
}

#[test]
fn convert_tz_shows_the_same_instant_in_another_zone() {
    let t = Value::utc(Utc.with_ymd_and_hms(2022, 4, 13, 6, 22, 32).unwrap() + TimeDelta::milliseconds(233));
    let shanghai = f("convert_tz", &[t.clone(), s("Asia/Shanghai")]);
    assert_eq!(shanghai, t, "the same instant");
    let Value::Timestamp(local) = &shanghai else { panic!("{shanghai:?}") };
    assert_eq!(local.to_rfc3339(), "2022-04-13T14:22:32.233+08:00");
    assert_eq!(f("hour", std::slice::from_ref(&shanghai)), Value::Int(14), "fields are the zone's");
    assert_eq!(f("format_time", &[shanghai.clone(), s("yyyy-MM-dd HH:mm z X")]), s("2022-04-13 14:22 +08 +08"));
    // Daylight saving time: the offset of that instant.
    let summer = Value::utc(Utc.with_ymd_and_hms(2022, 7, 1, 12, 0, 0).unwrap());
    let Value::Timestamp(ny) = f("convert_tz", &[summer, s("America/New_York")]) else { panic!() };
    assert_eq!(ny.to_rfc3339(), "2022-07-01T08:00:00-04:00");
    let Value::Timestamp(back) = f("convert_tz", &[shanghai, s("UTC")]) else { panic!() };
    assert_eq!(back.offset().local_minus_utc(), 0);
    assert!(matches!(e("convert_tz", &[t, s("Unknown")]), FunctionError::Failed { .. }));
    assert_eq!(f("convert_tz", &[Value::Null, s("UTC")]), Value::Null);
}

#[test]
fn convert_tz_is_checked_at_creation() {
    let check = |literals: &[Option<Value>]| validate(&functions(), "convert_tz", literals);
    assert!(check(&[None, Some(s("Asia/Shanghai"))]).is_ok());
    assert!(check(&[None, None]).is_ok());
    assert!(check(&[None, Some(s("Mars/Base"))]).unwrap_err().contains("unknown time zone Mars/Base"));
    assert!(check(&[Some(Value::Int(1)), None]).is_err());
    assert!(check(&[Some(s("2024-01-01")), None]).is_err(), "eKuiper refuses a string literal");
    assert!(check(&[None, Some(Value::Int(1))]).is_err());
}

/// `text` read with `pattern`, as Unix milliseconds and the offset in seconds.
fn parsed(pattern: &str, text: &str) -> Result<(i64, i32), String> {
    let t = TimeParser::new(pattern)?.parse(text)?;
    Ok((t.timestamp_millis(), t.offset().local_minus_utc()))
}

#[test]
fn a_pattern_parses_times_as_it_formats_them() {
    let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap().timestamp_millis();
    // Without a zone: UTC.
    assert_eq!(parsed("yyyy-MM-dd HH:mm:ss", "2024-02-29 13:04:05"), Ok((at(2024, 2, 29, 13, 4, 5), 0)));
    // Milliseconds, after a dot in the pattern or without one (S brings its dot).
    assert_eq!(parsed("yyyy-MM-dd HH:mm:ss.SSS", "2024-02-29 13:04:05.123"), Ok((at(2024, 2, 29, 13, 4, 5) + 123, 0)));
    assert_eq!(parsed("yyyyMMddHHmmssSSS", "20240229130405.120"), Ok((at(2024, 2, 29, 13, 4, 5) + 120, 0)));
    // With a zone: its offset, as +0800, +08:00, +08 or Z.
    let pattern = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";
    let shanghai = at(2024, 2, 29, 5, 4, 5) + 123;
    assert_eq!(parsed(pattern, "2024-02-29T13:04:05.123+0800"), Ok((shanghai, 8 * 3600)));
    assert_eq!(parsed(pattern, "2024-02-29T13:04:05.123+08:00"), Ok((shanghai, 8 * 3600)));
    assert_eq!(parsed("yyyy-MM-dd HH:mm X", "2024-02-29 13:04 +08"), Ok((at(2024, 2, 29, 5, 4, 0), 8 * 3600)));
    assert_eq!(parsed(pattern, "2024-02-29T13:04:05.123Z"), Ok((at(2024, 2, 29, 13, 4, 5) + 123, 0)));
    // Names, a 12-hour clock, quoted text, a two-digit year, unpadded digits.
    assert_eq!(parsed("EEE, d MMM yy h:mm a", "Thu, 29 Feb 24 1:04 PM"), Ok((at(2024, 2, 29, 13, 4, 0), 0)));
    assert_eq!(parsed("dd MMMM yyyy 'at' HH'h'", "29 February 2024 at 13h"), Ok((at(2024, 2, 29, 13, 0, 0), 0)));
    assert_eq!(parsed("yyyy/M/d H:m:s", "2024/2/9 3:4:5"), Ok((at(2024, 2, 9, 3, 4, 5), 0)));
    // What the pattern leaves out: midnight, the first month, the first day.
    assert_eq!(parsed("yyyy-MM-dd", "2024-02-29"), Ok((at(2024, 2, 29, 0, 0, 0), 0)));
    assert_eq!(parsed("yyyy", "2024"), Ok((at(2024, 1, 1, 0, 0, 0), 0)));
    // Formatting then parsing gives the time back.
    let pattern = "yyyy-MM-dd HH:mm:ss.SSSSSSSSS XXX";
    let text = format_time(&t().fixed_offset(), pattern).unwrap();
    assert_eq!(TimeParser::new(pattern).unwrap().parse(&text), Ok(t().fixed_offset()));
}

#[test]
fn a_text_that_does_not_fit_the_pattern_and_a_pattern_without_a_year_are_refused() {
    let error = parsed("yyyy-MM-dd HH:mm:ss", "2024-02-29T13:04:05").unwrap_err();
    assert!(error.contains("cannot read \"2024-02-29T13:04:05\" as \"yyyy-MM-dd HH:mm:ss\""), "{error}");
    assert!(parsed("yyyy-MM-dd", "2024-02-30").is_err(), "no such day");
    assert!(parsed("yyyy-MM-dd", "2024-02-29 and more").is_err());
    assert!(parsed("EEE yyyy-MM-dd", "Mon 2024-02-29").is_err(), "the 29th was a Thursday");
    let error = TimeParser::new("HH:mm:ss").unwrap_err();
    assert!(error.contains("no year"), "{error}");
    assert!(TimeParser::new("yyy-MM-dd").unwrap_err().contains("use yyyy or yy"));
    assert!(TimeParser::new("yyyy-MM-dd HH:mm:ss,SS").is_err(), "two digits after a comma");
    assert!(TimeParser::new("yyyy-MM-dd HH:mm:ss,SSS").is_ok());
}
