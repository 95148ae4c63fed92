//! The SQL signature of each built-in function: its argument names, optional
//! ones in brackets, for the function reference and `oort function list`.
//!
//! Conventions: an optional trailing argument is `[, name]` (nested when there
//! are several: `f(a [, b [, c]])`; a pair that goes together shares one pair of
//! brackets: `acc_sum(x [, begin, reset])`); a repeatable last argument is
//! followed by `, ...`. An analytic function's OVER clause is not an argument and
//! is not shown.

/// Every built-in function's signature, family by family, in the order of
/// [`super::all`]; `get_keyed_state` (registered by the server, with its store)
/// comes last.
const SIGNATURES: &[(&str, &str)] = &[
    // math
    ("abs", "abs(x)"),
    ("acos", "acos(x)"),
    ("asin", "asin(x)"),
    ("atan", "atan(x)"),
    ("atan2", "atan2(y, x)"),
    ("bitand", "bitand(x, y)"),
    ("bitor", "bitor(x, y)"),
    ("bitxor", "bitxor(x, y)"),
    ("bitnot", "bitnot(x)"),
    ("ceil", "ceil(x)"),
    ("ceiling", "ceiling(x)"),
    ("conv", "conv(n, from_base, to_base)"),
    ("cos", "cos(x)"),
    ("cosh", "cosh(x)"),
    ("cot", "cot(x)"),
    ("degrees", "degrees(x)"),
    ("exp", "exp(x)"),
    ("floor", "floor(x)"),
    ("ln", "ln(x)"),
    ("log", "log([base,] x)"),
    ("mod", "mod(x, y)"),
    ("pi", "pi()"),
    ("power", "power(x, y)"),
    ("pow", "pow(x, y)"),
    ("radians", "radians(x)"),
    ("rand", "rand()"),
    ("round", "round(x [, digits])"),
    ("sign", "sign(x)"),
    ("sin", "sin(x)"),
    ("sinh", "sinh(x)"),
    ("sqrt", "sqrt(x)"),
    ("tan", "tan(x)"),
    ("tanh", "tanh(x)"),
    // string
    ("concat", "concat(s, ...)"),
    ("endswith", "endswith(s, suffix)"),
    ("format", "format(x, digits [, locale])"),
    ("indexof", "indexof(s, substr)"),
    ("length", "length(value)"),
    ("lower", "lower(s)"),
    ("lpad", "lpad(s, n)"),
    ("ltrim", "ltrim(s)"),
    ("numbytes", "numbytes(s)"),
    ("regexp_matches", "regexp_matches(s, pattern)"),
    ("regexp_replace", "regexp_replace(s, pattern, replacement)"),
    ("regexp_substr", "regexp_substr(s, pattern)"),
    ("reverse", "reverse(s)"),
    ("rpad", "rpad(s, n)"),
    ("rtrim", "rtrim(s)"),
    ("split_value", "split_value(s, separator, index)"),
    ("startswith", "startswith(s, prefix)"),
    ("substring", "substring(s, start [, end])"),
    ("trim", "trim(s)"),
    ("upper", "upper(s)"),
    // array
    ("array_create", "array_create([value, ...])"),
    ("array_position", "array_position(array, value)"),
    ("array_last_position", "array_last_position(array, value)"),
    ("element_at", "element_at(array, index)"),
    ("array_contains", "array_contains(array, value)"),
    ("array_contains_any", "array_contains_any(array1, array2)"),
    ("array_remove", "array_remove(array, value)"),
    ("array_intersect", "array_intersect(array1, array2)"),
    ("array_union", "array_union(array1, array2)"),
    ("array_except", "array_except(array1, array2)"),
    ("array_max", "array_max(array)"),
    ("array_min", "array_min(array)"),
    ("repeat", "repeat(value, count)"),
    ("sequence", "sequence(start, stop [, step])"),
    ("array_cardinality", "array_cardinality(array)"),
    ("array_flatten", "array_flatten(array)"),
    ("array_distinct", "array_distinct(array)"),
    ("array_map", "array_map(function, array)"),
    ("array_join", "array_join(array, delimiter [, null_replacement])"),
    ("array_shuffle", "array_shuffle(array)"),
    ("array_sort", "array_sort(array)"),
    ("array_concat", "array_concat(array, ...)"),
    ("kvpair_array_to_obj", "kvpair_array_to_obj(array)"),
    // object
    ("cardinality", "cardinality(array)"),
    ("keys", "keys(obj)"),
    ("values", "values(obj)"),
    ("object", "object(keys, values)"),
    ("zip", "zip(entries)"),
    ("items", "items(obj)"),
    ("object_concat", "object_concat(obj1, obj2, ...)"),
    ("object_construct", "object_construct([key, value, ...])"),
    ("erase", "erase(obj, key)"),
    ("object_size", "object_size(obj)"),
    ("object_pick", "object_pick(obj, key, ...)"),
    ("obj_to_kvpair_array", "obj_to_kvpair_array(obj)"),
    // conversion
    ("cast", "cast(value, type)"),
    ("chr", "chr(code)"),
    ("decode", "decode(s, format)"),
    ("dec2hex", "dec2hex(x)"),
    ("encode", "encode(value, format)"),
    ("hex2dec", "hex2dec(s)"),
    ("parse_json", "parse_json(s)"),
    ("to_json", "to_json(value)"),
    ("trunc", "trunc(x, digits)"),
    // compression
    ("compress", "compress(value, method)"),
    ("decompress", "decompress(value, method)"),
    // hashing
    ("md5", "md5(s)"),
    ("sha1", "sha1(s)"),
    ("sha256", "sha256(s)"),
    ("sha384", "sha384(s)"),
    ("sha512", "sha512(s)"),
    ("crc32", "crc32(s)"),
    // date and time
    ("now", "now([fsp])"),
    ("current_timestamp", "current_timestamp([fsp])"),
    ("local_time", "local_time([fsp])"),
    ("local_timestamp", "local_timestamp([fsp])"),
    ("cur_date", "cur_date()"),
    ("current_date", "current_date()"),
    ("cur_time", "cur_time([fsp])"),
    ("current_time", "current_time([fsp])"),
    ("format_time", "format_time(time, format)"),
    ("date_calc", "date_calc(date, duration)"),
    ("convert_tz", "convert_tz(time, zone)"),
    ("date_diff", "date_diff(date1, date2)"),
    ("day_name", "day_name(date)"),
    ("day_of_month", "day_of_month(date)"),
    ("day", "day(date)"),
    ("day_of_week", "day_of_week(date)"),
    ("day_of_year", "day_of_year(date)"),
    ("from_days", "from_days(days)"),
    ("from_unix_time", "from_unix_time(seconds)"),
    ("hour", "hour(time)"),
    ("last_day", "last_day(date)"),
    ("microsecond", "microsecond(time)"),
    ("minute", "minute(time)"),
    ("month", "month(date)"),
    ("month_name", "month_name(date)"),
    ("second", "second(time)"),
    ("year", "year(date)"),
    ("to_seconds", "to_seconds(time)"),
    // json
    ("json_path_exists", "json_path_exists(value, path)"),
    ("json_path_query", "json_path_query(value, path)"),
    ("json_path_query_first", "json_path_query_first(value, path)"),
    // aggregate
    ("avg", "avg(x)"),
    ("count", "count(x)"),
    ("max", "max(x)"),
    ("min", "min(x)"),
    ("sum", "sum(x)"),
    ("collect", "collect(x)"),
    ("deduplicate", "deduplicate(x, all)"),
    ("last_value", "last_value(x, ignore_null)"),
    ("merge_agg", "merge_agg(x)"),
    ("stddev", "stddev(x)"),
    ("stddevs", "stddevs(x)"),
    ("var", "var(x)"),
    ("vars", "vars(x)"),
    ("median", "median(x)"),
    ("percentile_cont", "percentile_cont(x, percentile)"),
    ("percentile_disc", "percentile_disc(x, percentile)"),
    // other
    ("isnull", "isnull(value)"),
    ("coalesce", "coalesce(value, ...)"),
    ("newuuid", "newuuid()"),
    ("tstamp", "tstamp()"),
    ("rule_id", "rule_id()"),
    ("bypass", "bypass(value, ...)"),
    ("props", "props(key)"),
    ("delay", "delay(ms, value)"),
    ("window_trigger", "window_trigger()"),
    ("unnest", "unnest(array)"),
    ("extract", "extract(obj)"),
    ("meta", "meta(key)"),
    ("window_start", "window_start()"),
    ("window_end", "window_end()"),
    ("event_time", "event_time()"),
    ("mqtt", "mqtt(key)"),
    ("row_number", "row_number()"),
    ("last_hit_count", "last_hit_count()"),
    ("last_hit_time", "last_hit_time()"),
    ("last_agg_hit_count", "last_agg_hit_count()"),
    ("last_agg_hit_time", "last_agg_hit_time()"),
    ("rule_start", "rule_start()"),
    // analytic
    ("lag", "lag(x [, offset [, default [, ignore_null]]])"),
    ("latest", "latest(x [, default])"),
    ("changed_col", "changed_col(ignore_null, x)"),
    ("had_changed", "had_changed(ignore_null, x, ...)"),
    ("changed_cols", "changed_cols(prefix, ignore_null, x, ...)"),
    ("acc_sum", "acc_sum(x [, begin, reset])"),
    ("acc_min", "acc_min(x [, begin, reset])"),
    ("acc_max", "acc_max(x [, begin, reset])"),
    ("acc_count", "acc_count(x [, begin, reset])"),
    ("acc_avg", "acc_avg(x [, begin, reset])"),
    ("inc_count", "inc_count(x)"),
    ("inc_sum", "inc_sum(x)"),
    ("inc_avg", "inc_avg(x)"),
    ("inc_min", "inc_min(x)"),
    ("inc_max", "inc_max(x)"),
    ("inc_collect", "inc_collect(x)"),
    ("inc_merge_agg", "inc_merge_agg(x)"),
    ("inc_last_value", "inc_last_value(x, ignore_null)"),
    // keyed state
    ("get_keyed_state", "get_keyed_state(key, type, default)"),
];

/// `name(args)` of the built-in `name` (lower-case), e.g. `round(x [, digits])`.
pub fn signature(name: &str) -> Option<&'static str> {
    SIGNATURES.iter().find(|(key, _)| *key == name).map(|(_, signature)| *signature)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::{SIGNATURES, signature};
    use crate::function::Function;
    use crate::functions::keyed_state::{KeyedStateStore, keyed_state_function};
    use crate::value::Value;

    struct NoState;

    impl KeyedStateStore for NoState {
        fn get(&self, _: &str) -> Result<Option<Value>, String> {
            Ok(None)
        }
    }

    /// Every built-in: the families' and the server's `get_keyed_state`.
    fn builtins() -> Vec<Arc<dyn Function>> {
        let mut all = super::super::all();
        all.push(keyed_state_function(Arc::new(NoState)));
        all
    }

    /// The argument names of an argument list (brackets already removed);
    /// `...` is not a name. `Err` for an empty or malformed one.
    fn names(list: &str) -> Result<Vec<&str>, String> {
        if list.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for (i, part) in list.split(',').map(str::trim).enumerate() {
            match part {
                "..." if i > 0 => {}
                _ if part.starts_with(|c: char| c.is_ascii_lowercase())
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
                {
                    names.push(part)
                }
                _ => return Err(format!("bad argument {part:?} in {list:?}")),
            }
        }
        Ok(names)
    }

    /// What a signature `f(...)` says: (required arguments, most arguments or
    /// `None` when the last one repeats).
    fn arity(signature: &str) -> Result<(usize, Option<usize>), String> {
        let args = signature
            .split_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .ok_or_else(|| format!("{signature:?} is not name(args)"))?;
        let (mut depth, mut required) = (0usize, String::new());
        for c in args.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.checked_sub(1).ok_or_else(|| format!("unbalanced ] in {signature:?}"))?,
                _ if depth == 0 => required.push(c),
                _ => {}
            }
        }
        if depth != 0 {
            return Err(format!("unbalanced [ in {signature:?}"));
        }
        let all: String = args.chars().filter(|c| !matches!(c, '[' | ']')).collect();
        let (required, total) = (names(&required)?.len(), names(&all)?.len());
        let variadic = all.trim_end().ends_with("...");
        if all.matches("...").count() > usize::from(variadic) {
            return Err(format!("`...` is not last in {signature:?}"));
        }
        Ok((required, (!variadic).then_some(total)))
    }

    #[test]
    fn the_counting_reads_brackets_and_ellipses() {
        assert_eq!(arity("pi()"), Ok((0, Some(0))));
        assert_eq!(arity("abs(x)"), Ok((1, Some(1))));
        assert_eq!(arity("round(x [, digits])"), Ok((1, Some(2))));
        assert_eq!(arity("log([base,] x)"), Ok((1, Some(2))));
        assert_eq!(arity("lag(x [, offset [, default [, ignore_null]]])"), Ok((1, Some(4))));
        assert_eq!(arity("acc_sum(x [, begin, reset])"), Ok((1, Some(3))));
        assert_eq!(arity("concat(s, ...)"), Ok((1, None)));
        assert_eq!(arity("object_concat(obj1, obj2, ...)"), Ok((2, None)));
        assert_eq!(arity("array_create([value, ...])"), Ok((0, None)));
        for bad in ["abs", "abs(x", "f(x [, y)", "f(x ], y)", "f(x,, y)", "f(..., x)", "f(X)", "f(...)"] {
            assert!(arity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_builtin_has_a_signature_that_agrees_with_its_arity() {
        let mut wrong = Vec::new();
        for function in builtins() {
            let meta = function.meta();
            let name = meta.name.as_str();
            let Some(signature) = signature(name) else {
                wrong.push(format!("{name}: no signature"));
                continue;
            };
            if !signature.starts_with(&format!("{name}(")) || !signature.ends_with(')') {
                wrong.push(format!("{name}: {signature:?} is not {name}(...)"));
                continue;
            }
            match arity(signature) {
                Ok(said) if said == (meta.min_args, meta.max_args) => {}
                Ok(said) => wrong.push(format!(
                    "{name}: {signature:?} says {said:?}, the function takes {:?}",
                    (meta.min_args, meta.max_args)
                )),
                Err(e) => wrong.push(format!("{name}: {e}")),
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_signature_is_of_a_builtin_and_given_once() {
        let builtins: HashSet<String> = builtins().iter().map(|f| f.meta().name.clone()).collect();
        let mut seen = HashSet::new();
        for (name, _) in SIGNATURES {
            assert!(builtins.contains(*name), "{name} has a signature but is no built-in");
            assert!(seen.insert(*name), "{name} has two signatures");
        }
        assert_eq!(seen.len(), builtins.len());
        assert_eq!(signature("no_such_function"), None);
        assert_eq!(signature("round"), Some("round(x [, digits])"));
    }
}
