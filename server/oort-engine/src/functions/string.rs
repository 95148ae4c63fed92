//! String functions, as eKuiper's. Positions and lengths count characters, not bytes
//! (`numbytes` counts bytes). `format_time` is with the date and time functions.
//!
//! Regular expressions use the `regex` crate, whose syntax is RE2's like Go's: a literal
//! pattern is compiled at plan time, and compiled patterns are cached per function.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regex::Regex;

use super::{Builtin, Kind, int, literal, literal_str, num, text};
use crate::function::{ArgInfo, CallContext, Function, FunctionError};
use crate::value::Value;

/// The most characters `lpad` and `rpad` add, so that a bad argument cannot exhaust memory.
const MAX_PADDING: i64 = 1 << 24;
/// The most decimals `format` writes.
const MAX_DECIMALS: i64 = 100;

/// A value as text, as eKuiper's `ToStringAlways`: strings as they are, arrays and structs as JSON.
pub(crate) fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::List(_) | Value::Map(_) => super::json::to_json_string(value),
        other => other.to_string(),
    }
}

/// Compiled regular expressions by pattern.
#[derive(Default)]
struct RegexCache(Mutex<HashMap<String, Regex>>);

impl RegexCache {
    const CAPACITY: usize = 64;

    fn get(&self, name: &str, pattern: &str) -> Result<Regex, FunctionError> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(re) = cache.get(pattern) {
            return Ok(re.clone());
        }
        let re = compile(pattern).map_err(|e| FunctionError::failed(name, e))?;
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
        Ok(re)
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// Plan-time check: the pattern at `index`, if a literal, must compile.
fn validate_pattern(index: usize) -> impl Fn(&str, &[ArgInfo<'_>]) -> Result<(), String> + Send + Sync + 'static {
    move |name, args| match literal_str(args, index) {
        Some(pattern) => compile(pattern).map(|_| ()).map_err(|e| format!("function {name}: {e}")),
        None => Ok(()),
    }
}

/// A one-string-in, one-string-out function.
fn string_map(name: &str, description: &str, f: fn(&str) -> String) -> Arc<dyn Function> {
    Builtin::scalar(name, 1, Some(1), description, move |name, _, args| Ok(Value::string(f(text(name, 0, &args[0])?))))
        .kinds(&[Kind::Str])
        .build()
}

fn concat(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let present: Vec<&Value> = args.iter().filter(|a| !a.is_null()).collect();
    // Arrays concatenate into an array; anything else into a string.
    if !present.is_empty() && present.iter().all(|a| matches!(a, Value::List(_))) {
        let items = present.iter().flat_map(|a| match a {
            Value::List(items) => items.iter().cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        });
        return Ok(Value::list(items.collect()));
    }
    Ok(Value::string(present.iter().map(|a| to_text(a)).collect::<String>()))
}

/// `startswith`/`endswith`: false when either argument is NULL, as eKuiper.
fn affix(name: &str, args: &[Value], test: fn(&str, &str) -> bool) -> Result<Value, FunctionError> {
    if args.iter().any(Value::is_null) {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(test(text(name, 0, &args[0])?, text(name, 1, &args[1])?)))
}

fn indexof(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if args.iter().any(Value::is_null) {
        return Ok(Value::Int(-1));
    }
    let (haystack, needle) = (text(name, 0, &args[0])?, text(name, 1, &args[1])?);
    Ok(Value::Int(match haystack.find(needle) {
        Some(byte) => haystack[..byte].chars().count() as i64,
        None => -1,
    }))
}

fn length(_: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let n = match &args[0] {
        Value::Null => 0,
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(items) => items.len(),
        Value::Map(map) => map.len(),
        other => to_text(other).chars().count(),
    };
    Ok(Value::Int(n as i64))
}

fn numbytes(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let n = match &args[0] {
        Value::Null => 0,
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        other => return Err(FunctionError::argument_type(name, 1, "string", other)),
    };
    Ok(Value::Int(n as i64))
}

fn pad(name: &str, args: &[Value], left: bool) -> Result<Value, FunctionError> {
    let s = text(name, 0, &args[0])?;
    let n = int(name, 1, &args[1])?;
    if !(0..=MAX_PADDING).contains(&n) {
        return Err(FunctionError::failed(name, format!("the padding must be between 0 and {MAX_PADDING}, got {n}")));
    }
    let spaces = " ".repeat(n as usize);
    Ok(Value::string(if left { spaces + s } else { format!("{s}{spaces}") }))
}

fn substring(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let s = text(name, 0, &args[0])?;
    let start = int(name, 1, &args[1])?;
    if start < 0 {
        return Err(FunctionError::failed(name, "the start index must not be negative"));
    }
    let end = match args.get(2) {
        Some(end) => {
            let end = int(name, 2, end)?;
            if end < 0 {
                return Err(FunctionError::failed(name, "the end index must not be negative"));
            }
            if end < start {
                return Err(FunctionError::failed(name, "the start index must not be greater than the end index"));
            }
            Some(end as usize)
        }
        None => None,
    };
    let chars = s.chars().skip(start as usize);
    Ok(Value::string(match end {
        Some(end) => chars.take(end - start as usize).collect::<String>(),
        None => chars.collect::<String>(),
    }))
}

fn split_value(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let (s, separator) = (text(name, 0, &args[0])?, text(name, 1, &args[1])?);
    let index = int(name, 2, &args[2])?;
    let parts: Vec<String> = if separator.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(separator).map(str::to_owned).collect()
    };
    let len = parts.len() as i64;
    // A negative index counts from the end, as in eKuiper 2.
    let position = if index < 0 { len + index } else { index };
    if !(0..len).contains(&position) {
        return Err(FunctionError::failed(name, format!("index {index} is out of the split array (size {len})")));
    }
    Ok(Value::string(parts[position as usize].clone()))
}

/// `format(x, d[, locale])`: `x` rounded to `d` decimals; with a locale
/// (`de_DE`, `en_US`, `zh_CN`... as eKuiper: a language and a country), with
/// that locale's grouping, group separator, decimal mark and minus sign (from
/// CLDR, through `num-format`; digits stay ASCII).
fn format(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = &args[0];
    num(name, 0, x)?;
    let decimals = int(name, 1, &args[1])?;
    if !(0..=MAX_DECIMALS).contains(&decimals) {
        return Err(FunctionError::failed(name, format!("the decimal places must be between 0 and {MAX_DECIMALS}")));
    }
    let decimals = decimals as usize;
    let plain = match x {
        Value::Int(i) if decimals == 0 => i.to_string(),
        Value::Int(i) => format!("{i}.{}", "0".repeat(decimals)),
        _ => format!("{:.*}", decimals, x.as_f64().unwrap_or_default()),
    };
    match args.get(2) {
        None => Ok(Value::string(plain)),
        Some(tag) => {
            let tag = text(name, 2, tag)?;
            let locale = locale(tag).ok_or_else(|| FunctionError::failed(name, unsupported_locale(tag)))?;
            Ok(Value::string(localized(&plain, &locale)))
        }
    }
}

/// The locale of a tag with a country (`de_DE`, `de-CH`): the language's
/// own when CLDR has none for that country.
fn locale(tag: &str) -> Option<num_format::Locale> {
    let tag = tag.replace('_', "-");
    let (language, region) = tag.split_once('-')?;
    let country = region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase());
    if !country || language.is_empty() || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    num_format::Locale::from_name(&tag).or_else(|_| num_format::Locale::from_name(language)).ok()
}

fn unsupported_locale(tag: &str) -> String {
    format!("locale {tag:?} is not supported: give a language and a country, such as en_US or de_DE")
}

/// A plain decimal number (`-1234.5`) written in `locale`.
fn localized(number: &str, locale: &num_format::Locale) -> String {
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        // NaN or infinity.
        return number.to_owned();
    }
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    // Group sizes from the right: 3, 3, ... (standard), 3, 2, 2, ... (Indian), none (POSIX).
    let sizes: Box<dyn Iterator<Item = usize>> = match locale.grouping() {
        num_format::Grouping::Standard => Box::new(std::iter::repeat(3)),
        num_format::Grouping::Indian => Box::new(std::iter::once(3).chain(std::iter::repeat(2))),
        num_format::Grouping::Posix => Box::new(std::iter::once(usize::MAX)),
    };
    let mut groups = Vec::new();
    let mut rest = integer;
    for size in sizes {
        if rest.len() <= size {
            groups.push(rest);
            break;
        }
        let (head, tail) = rest.split_at(rest.len() - size);
        groups.push(tail);
        rest = head;
    }
    groups.reverse();
    let mut out = String::with_capacity(number.len() + groups.len() * 3);
    if negative {
        out.push_str(locale.minus_sign());
    }
    out.push_str(&groups.join(locale.separator()));
    if !fraction.is_empty() {
        out.push_str(locale.decimal());
        out.push_str(fraction);
    }
    out
}

fn validate_format(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    if literal(args, 1).and_then(Value::as_i64).is_some_and(|d| !(0..=MAX_DECIMALS).contains(&d)) {
        return Err(format!("function {name}: the decimal places must be between 0 and {MAX_DECIMALS}"));
    }
    match literal_str(args, 2) {
        Some(tag) if locale(tag).is_none() => Err(format!("function {name}: {}", unsupported_locale(tag))),
        _ => Ok(()),
    }
}

fn validate_non_negative(
    index: usize,
    what: &'static str,
) -> impl Fn(&str, &[ArgInfo<'_>]) -> Result<(), String> + Send + Sync {
    move |name, args| match literal(args, index).and_then(Value::as_i64) {
        Some(n) if n < 0 => Err(format!("function {name}: {what} must not be negative")),
        _ => Ok(()),
    }
}

fn validate_substring(name: &str, args: &[ArgInfo<'_>]) -> Result<(), String> {
    validate_non_negative(1, "the start index")(name, args)?;
    validate_non_negative(2, "the end index")(name, args)?;
    match (literal(args, 1).and_then(Value::as_i64), literal(args, 2).and_then(Value::as_i64)) {
        (Some(start), Some(end)) if end < start => {
            Err(format!("function {name}: the end index must not be smaller than the start index"))
        }
        _ => Ok(()),
    }
}

/// The string functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    let strings = &[Kind::Str];
    let matches_cache = Arc::new(RegexCache::default());
    let replace_cache = Arc::new(RegexCache::default());
    let substr_cache = Arc::new(RegexCache::default());
    vec![
        Builtin::scalar(
            "concat",
            1,
            None,
            "Concatenates strings (or arrays, into an array); NULLs are skipped.",
            concat,
        )
        .pass_nulls()
        .build(),
        Builtin::scalar("endswith", 2, Some(2), "Whether the first string ends with the second.", |name, _, args| {
            affix(name, args, |a, b| a.ends_with(b))
        })
        .kinds(strings)
        .pass_nulls()
        .build(),
        Builtin::scalar("format", 2, Some(3), "Formats a number to d decimals: format(x, d[, locale]).", format)
            .kinds(&[Kind::Number, Kind::Int, Kind::Str])
            .validate(validate_format)
            .build(),
        Builtin::scalar(
            "indexof",
            2,
            Some(2),
            "The first index (0-based) of the second string in the first, or -1.",
            indexof,
        )
        .kinds(strings)
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "length",
            1,
            Some(1),
            "The number of characters of a string (or items of an array or struct).",
            length,
        )
        .pass_nulls()
        .build(),
        string_map("lower", "The lower-case version of a string.", str::to_lowercase),
        Builtin::scalar(
            "lpad",
            2,
            Some(2),
            "The string with n spaces added on the left: lpad(str, n).",
            |name, _, args| pad(name, args, true),
        )
        .kinds(&[Kind::Str, Kind::Int])
        .validate(validate_non_negative(1, "the padding"))
        .build(),
        string_map("ltrim", "Removes leading whitespace.", |s| s.trim_start().to_owned()),
        Builtin::scalar("numbytes", 1, Some(1), "The number of bytes of the UTF-8 encoding of a string.", numbytes)
            .kinds(strings)
            .pass_nulls()
            .build(),
        Builtin::scalar(
            "regexp_matches",
            2,
            Some(2),
            "Whether the string contains a match of the regular expression.",
            move |name, _, args| {
                if args.iter().any(Value::is_null) {
                    return Ok(Value::Bool(false));
                }
                let re = matches_cache.get(name, text(name, 1, &args[1])?)?;
                Ok(Value::Bool(re.is_match(text(name, 0, &args[0])?)))
            },
        )
        .kinds(strings)
        .pass_nulls()
        .validate(validate_pattern(1))
        .build(),
        Builtin::scalar(
            "regexp_replace",
            3,
            Some(3),
            "Replaces every match of the regular expression ($1, ${name} refer to groups).",
            move |name, _, args| {
                let re = replace_cache.get(name, text(name, 1, &args[1])?)?;
                let (s, replacement) = (text(name, 0, &args[0])?, text(name, 2, &args[2])?);
                Ok(Value::string(re.replace_all(s, replacement).into_owned()))
            },
        )
        .kinds(strings)
        .validate(validate_pattern(1))
        .build(),
        Builtin::scalar(
            "regexp_substr",
            2,
            Some(2),
            "The first match of the regular expression in the string, or an empty string.",
            move |name, _, args| {
                let re = substr_cache.get(name, text(name, 1, &args[1])?)?;
                Ok(Value::string(re.find(text(name, 0, &args[0])?).map_or("", |m| m.as_str())))
            },
        )
        .kinds(strings)
        .validate(validate_pattern(1))
        .build(),
        string_map("reverse", "The string with its characters in reverse order.", |s| s.chars().rev().collect()),
        Builtin::scalar(
            "rpad",
            2,
            Some(2),
            "The string with n spaces added on the right: rpad(str, n).",
            |name, _, args| pad(name, args, false),
        )
        .kinds(&[Kind::Str, Kind::Int])
        .validate(validate_non_negative(1, "the padding"))
        .build(),
        string_map("rtrim", "Removes trailing whitespace.", |s| s.trim_end().to_owned()),
        Builtin::scalar(
            "split_value",
            3,
            Some(3),
            "Splits a string and returns the part at an index (negative: from the end).",
            split_value,
        )
        .kinds(&[Kind::Str, Kind::Str, Kind::Int])
        .build(),
        Builtin::scalar(
            "startswith",
            2,
            Some(2),
            "Whether the first string starts with the second.",
            |name, _, args| affix(name, args, |a, b| a.starts_with(b)),
        )
        .kinds(strings)
        .pass_nulls()
        .build(),
        Builtin::scalar(
            "substring",
            2,
            Some(3),
            "The characters from start (0-based, inclusive) to end (exclusive): substring(str, start[, end]).",
            substring,
        )
        .kinds(&[Kind::Str, Kind::Int])
        .validate(validate_substring)
        .build(),
        string_map("trim", "Removes leading and trailing whitespace.", |s| s.trim().to_owned()),
        string_map("upper", "The upper-case version of a string.", str::to_uppercase),
    ]
}

#[cfg(test)]
mod tests;
