use super::*;
use crate::functions::testing::{list, s, validate};

crate::functions::testing::shorthands!(functions);

fn is_type_error(error: FunctionError) -> bool {
    matches!(error, FunctionError::ArgumentType { .. })
}

#[test]
fn concat_joins_strings_or_arrays() {
    assert_eq!(f("concat", &[s("a"), Value::Int(1), Value::Float(1.5), Value::Bool(true)]), s("a11.5true"));
    assert_eq!(f("concat", &[s("a"), Value::Null, s("b")]), s("ab"), "NULLs are skipped");
    assert_eq!(f("concat", &[Value::Null]), s(""));
    let joined = f("concat", &[list(vec![Value::Int(1)]), Value::Null, list(vec![Value::Int(2)])]);
    assert_eq!(joined, list(vec![Value::Int(1), Value::Int(2)]));
    assert_eq!(f("concat", &[s("x="), list(vec![Value::Int(1)])]), s("x=[1]"), "arrays in strings are JSON");
}

#[test]
fn prefixes_and_suffixes() {
    assert_eq!(f("startswith", &[s("hello"), s("he")]), Value::Bool(true));
    assert_eq!(f("startswith", &[s("hello"), s("lo")]), Value::Bool(false));
    assert_eq!(f("endswith", &[s("hello"), s("lo")]), Value::Bool(true));
    for name in ["startswith", "endswith"] {
        assert_eq!(f(name, &[Value::Null, s("x")]), Value::Bool(false), "NULL is false, as eKuiper");
        assert!(is_type_error(e(name, &[Value::Int(1), s("1")])));
    }
    assert!(validate(&functions(), "endswith", &[None, Some(Value::Int(1))]).is_err());
}

#[test]
fn indexof_and_lengths_count_characters() {
    assert_eq!(f("indexof", &[s("héllo"), s("l")]), Value::Int(2));
    assert_eq!(f("indexof", &[s("hello"), s("z")]), Value::Int(-1));
    assert_eq!(f("indexof", &[Value::Null, s("z")]), Value::Int(-1));
    assert!(is_type_error(e("indexof", &[s("a"), Value::Int(1)])));
    assert_eq!(f("length", &[s("héllo")]), Value::Int(5));
    assert_eq!(f("length", &[list(vec![Value::Int(1), Value::Int(2)])]), Value::Int(2));
    assert_eq!(f("length", &[Value::Int(1234)]), Value::Int(4));
    assert_eq!(f("length", &[Value::Null]), Value::Int(0));
    assert_eq!(f("numbytes", &[s("héllo")]), Value::Int(6));
    assert_eq!(f("numbytes", &[Value::Null]), Value::Int(0));
    assert!(is_type_error(e("numbytes", &[Value::Int(1)])));
}

#[test]
fn case_trimming_and_reversal() {
    assert_eq!(f("lower", &[s("HeLLo")]), s("hello"));
    assert_eq!(f("upper", &[s("HeLLo")]), s("HELLO"));
    assert_eq!(f("trim", &[s(" \t a b \n")]), s("a b"));
    assert_eq!(f("ltrim", &[s("  a ")]), s("a "));
    assert_eq!(f("rtrim", &[s("  a ")]), s("  a"));
    assert_eq!(f("reverse", &[s("abç")]), s("çba"));
    for name in ["lower", "upper", "trim", "ltrim", "rtrim", "reverse"] {
        assert_eq!(f(name, &[Value::Null]), Value::Null, "{name}");
        assert!(is_type_error(e(name, &[Value::Int(1)])), "{name}");
    }
}

#[test]
fn padding_adds_spaces() {
    assert_eq!(f("lpad", &[s("ab"), Value::Int(2)]), s("  ab"));
    assert_eq!(f("rpad", &[s("ab"), Value::Int(2)]), s("ab  "));
    assert_eq!(f("lpad", &[Value::Null, Value::Int(2)]), Value::Null);
    assert!(matches!(e("rpad", &[s("ab"), Value::Int(-1)]), FunctionError::Failed { .. }));
    assert!(matches!(e("lpad", &[s("ab"), Value::Int(i64::MAX)]), FunctionError::Failed { .. }));
    assert!(is_type_error(e("lpad", &[s("ab"), s("2")])));
    assert!(validate(&functions(), "lpad", &[None, Some(Value::Int(-2))]).is_err());
}

#[test]
fn regular_expressions() {
    assert_eq!(f("regexp_matches", &[s("abc123"), s(r"\d+")]), Value::Bool(true));
    assert_eq!(f("regexp_matches", &[s("abc"), s(r"^\d+$")]), Value::Bool(false));
    assert_eq!(f("regexp_matches", &[Value::Null, s("a")]), Value::Bool(false));
    assert_eq!(f("regexp_replace", &[s("a1b22"), s(r"(\d+)"), s("<$1>")]), s("a<1>b<22>"));
    assert_eq!(f("regexp_replace", &[Value::Null, s("a"), s("b")]), Value::Null);
    assert_eq!(f("regexp_substr", &[s("ab123cd45"), s(r"\d+")]), s("123"));
    assert_eq!(f("regexp_substr", &[s("abc"), s(r"\d+")]), s(""));
    assert_eq!(f("regexp_substr", &[Value::Null, s("a")]), Value::Null);
    for (name, args) in [
        ("regexp_matches", vec![s("a"), s("(")]),
        ("regexp_replace", vec![s("a"), s("("), s("")]),
        ("regexp_substr", vec![s("a"), s("[")]),
    ] {
        assert!(matches!(e(name, &args), FunctionError::Failed { .. }), "{name}");
        let literals: Vec<Option<Value>> = args.into_iter().map(Some).collect();
        assert!(validate(&functions(), name, &literals).unwrap_err().contains("invalid regular expression"));
    }
    assert!(validate(&functions(), "regexp_matches", &[None, Some(s(r"^\w+$"))]).is_ok());
    assert!(is_type_error(e("regexp_substr", &[Value::Int(1), s("1")])));
}

#[test]
fn substring_uses_start_and_end_indexes() {
    assert_eq!(f("substring", &[s("héllo"), Value::Int(1)]), s("éllo"));
    assert_eq!(f("substring", &[s("hello"), Value::Int(1), Value::Int(3)]), s("el"));
    assert_eq!(f("substring", &[s("hello"), Value::Int(1), Value::Int(30)]), s("ello"));
    assert_eq!(f("substring", &[s("hello"), Value::Int(10)]), s(""));
    assert_eq!(f("substring", &[Value::Null, Value::Int(1)]), Value::Null);
    assert!(matches!(e("substring", &[s("hello"), Value::Int(-1)]), FunctionError::Failed { .. }));
    assert!(matches!(e("substring", &[s("hello"), Value::Int(3), Value::Int(1)]), FunctionError::Failed { .. }));
    assert!(is_type_error(e("substring", &[s("hello"), s("1")])));
    assert!(validate(&functions(), "substring", &[None, Some(Value::Int(-1))]).is_err());
    assert!(validate(&functions(), "substring", &[None, Some(Value::Int(3)), Some(Value::Int(1))]).is_err());
    assert!(validate(&functions(), "substring", &[None, Some(Value::Int(1)), Some(Value::Int(3))]).is_ok());
}

#[test]
fn split_value_picks_a_part() {
    let path = s("/test/device001/message");
    assert_eq!(f("split_value", &[path.clone(), s("/"), Value::Int(0)]), s(""));
    assert_eq!(f("split_value", &[path.clone(), s("/"), Value::Int(3)]), s("message"));
    assert_eq!(f("split_value", &[path.clone(), s("/"), Value::Int(-2)]), s("device001"));
    assert_eq!(f("split_value", &[s("ab"), s(""), Value::Int(1)]), s("b"));
    assert_eq!(f("split_value", &[Value::Null, s("/"), Value::Int(0)]), Value::Null);
    assert!(matches!(e("split_value", &[path, s("/"), Value::Int(4)]), FunctionError::Failed { .. }));
    assert!(is_type_error(e("split_value", &[s("a"), s("/"), s("0")])));
}

#[test]
fn format_rounds_or_groups() {
    assert_eq!(f("format", &[Value::Float(12332.1234567), Value::Int(4)]), s("12332.1235"));
    assert_eq!(f("format", &[Value::Int(12), Value::Int(2)]), s("12.00"));
    assert_eq!(f("format", &[Value::Float(2.5), Value::Int(0)]), s("2"));
    // eKuiper's testFormatLocale: rounded, then written in the locale.
    let cases = [
        (12332.123456, 4, "en_US", "12,332.1235"),
        (12332.1, 4, "en_US", "12,332.1000"),
        (12332.2, 0, "en_US", "12,332"),
        (12332.2, 2, "en_US", "12,332.20"),
        (12332.1234567, 4, "en_US", "12,332.1235"),
        (12332.2, 2, "de_DE", "12.332,20"),
        (12332.2, 2, "zh_CN", "12,332.20"),
        (12332.2, 2, "zh_HK", "12,332.20"),
        (-123456.7899, 2, "de_CH", "-123’456.79"),
        (1234567.0, 0, "hi_IN", "12,34,567"),
    ];
    for (x, d, locale, expected) in cases {
        assert_eq!(f("format", &[Value::Float(x), Value::Int(d), s(locale)]), s(expected), "{x} {d} {locale}");
    }
    assert_eq!(f("format", &[Value::Int(-1234567), Value::Int(2), s("en_US")]), s("-1,234,567.00"));
    assert_eq!(f("format", &[Value::Float(123.0), Value::Int(0), s("en_US")]), s("123"));
    assert_eq!(f("format", &[Value::Null, Value::Int(2)]), Value::Null);
    assert!(matches!(e("format", &[Value::Int(1), Value::Int(-1)]), FunctionError::Failed { .. }));
    assert!(matches!(
        e("format", &[Value::Int(1), Value::Int(1), s("not_exist_locale")]),
        FunctionError::Failed { .. }
    ));
    assert!(is_type_error(e("format", &[s("1"), Value::Int(1)])));
    assert!(validate(&functions(), "format", &[None, Some(Value::Int(2)), Some(s("en_US"))]).is_ok());
    assert!(validate(&functions(), "format", &[None, Some(Value::Int(2)), Some(s("zh_CN"))]).is_ok());
    assert!(validate(&functions(), "format", &[None, Some(Value::Int(2)), Some(s("ff"))]).is_err());
    assert!(validate(&functions(), "format", &[None, Some(Value::Int(-2))]).is_err());
    assert!(validate(&functions(), "format", &[None, Some(Value::Float(1.5))]).is_err());
}
