//! Operator semantics on [`Value`]s, following eKuiper's `simpleDataEval`
//! (see the module documentation of [`expr`](super) for the rules and the
//! places where Oort differs).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::EvalError;
use super::tree::{BinaryOp, UnaryOp};
use crate::value::Value;

/// `type(value)` for error messages, with long values shortened.
pub(crate) fn describe(value: &Value) -> String {
    const MAX: usize = 40;
    let text = match value {
        Value::String(s) => format!("{:?}", &**s),
        other => other.to_string(),
    };
    let text =
        if text.chars().count() > MAX { format!("{}...", text.chars().take(MAX).collect::<String>()) } else { text };
    format!("{}({text})", value.type_name())
}

fn invalid(left: &Value, op: BinaryOp, right: &Value) -> EvalError {
    EvalError::type_error(format!("{} {} {}", describe(left), op.symbol(), describe(right)))
}

/// `+ - * / %`. NULL in, NULL out; two bigints give a bigint (integer division
/// truncates toward zero), otherwise floats.
pub(crate) fn arithmetic(op: BinaryOp, left: &Value, right: &Value) -> Result<Value, EvalError> {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Int(a), Value::Int(b)) => int_arithmetic(op, *a, *b),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            // Both are numbers, so as_f64 is Some.
            float_arithmetic(op, left.as_f64().unwrap_or_default(), right.as_f64().unwrap_or_default())
        }
        _ => Err(invalid(left, op, right)),
    }
}

fn int_arithmetic(op: BinaryOp, a: i64, b: i64) -> Result<Value, EvalError> {
    let result = match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        BinaryOp::Div if b == 0 => return Err(EvalError::DivisionByZero),
        BinaryOp::Div => a.checked_div(b),
        BinaryOp::Mod if b == 0 => return Err(EvalError::DivisionByZero),
        // i64::MIN % -1 is 0; only the intermediate division overflows.
        BinaryOp::Mod => Some(a.wrapping_rem(b)),
        _ => return Err(invalid(&Value::Int(a), op, &Value::Int(b))),
    };
    result
        .map(Value::Int)
        .ok_or_else(|| EvalError::overflow(format!("{a} {} {b} does not fit in a bigint", op.symbol())))
}

fn float_arithmetic(op: BinaryOp, a: f64, b: f64) -> Result<Value, EvalError> {
    let result = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div if b == 0.0 => return Err(EvalError::DivisionByZero),
        BinaryOp::Div => a / b,
        BinaryOp::Mod if b == 0.0 => return Err(EvalError::DivisionByZero),
        BinaryOp::Mod => a % b,
        _ => return Err(invalid(&Value::Float(a), op, &Value::Float(b))),
    };
    if !result.is_finite() && a.is_finite() && b.is_finite() {
        return Err(EvalError::overflow(format!("{a} {} {b} is not a finite float", op.symbol())));
    }
    Ok(Value::Float(result))
}

/// `& | ^`: on two bigints bitwise, on two booleans logical (eKuiper). NULL in, NULL out.
pub(crate) fn bitwise(op: BinaryOp, left: &Value, right: &Value) -> Result<Value, EvalError> {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Int(a), Value::Int(b)) => Ok(Value::Int(match op {
            BinaryOp::BitAnd => a & b,
            BinaryOp::BitOr => a | b,
            _ => a ^ b,
        })),
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(match op {
            BinaryOp::BitAnd => *a && *b,
            BinaryOp::BitOr => *a || *b,
            _ => a != b,
        })),
        _ => Err(invalid(left, op, right)),
    }
}

/// `||`: the text of both operands (as the `concat` function renders values). NULL in, NULL out.
pub(crate) fn concat(left: &Value, right: &Value) -> Value {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (Value::String(a), Value::String(b)) => Value::string(format!("{a}{b}")),
        (a, b) => Value::string(format!("{a}{b}")),
    }
}

/// `-x`, `+x`, `NOT x`. NULL in, NULL out.
pub(crate) fn unary(op: UnaryOp, value: Value) -> Result<Value, EvalError> {
    match (op, value) {
        (_, Value::Null) => Ok(Value::Null),
        (UnaryOp::Neg, Value::Int(i)) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow(format!("-({i}) does not fit in a bigint"))),
        (UnaryOp::Neg, Value::Float(x)) => Ok(Value::Float(-x)),
        (UnaryOp::Plus, v @ (Value::Int(_) | Value::Float(_))) => Ok(v),
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, v) => Err(EvalError::type_error(format!("-{}", describe(&v)))),
        (UnaryOp::Plus, v) => Err(EvalError::type_error(format!("+{}", describe(&v)))),
        (UnaryOp::Not, v) => Err(EvalError::type_error(format!("NOT {}", describe(&v)))),
    }
}

/// An operand of `AND` / `OR`: a boolean, or NULL (`None`).
pub(crate) fn truth(value: &Value, op: BinaryOp) -> Result<Option<bool>, EvalError> {
    match value {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        other => Err(EvalError::type_error(format!("{} needs boolean operands, got {}", op.symbol(), describe(other)))),
    }
}

/// How two non-null values relate.
enum Relation {
    /// Ordered values; `None` when unordered (a NaN).
    Ordered(Option<Ordering>),
    /// Values with equality but no order (booleans, bytes, arrays, structs).
    EqualOnly(bool),
}

fn as_datetime(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Timestamp(t) => Some(t.to_utc()),
        Value::Int(ms) => DateTime::from_timestamp_millis(*ms),
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

fn relate(left: &Value, right: &Value) -> Option<Relation> {
    Some(match (left, right) {
        (Value::Int(a), Value::Int(b)) => Relation::Ordered(Some(a.cmp(b))),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            Relation::Ordered(left.as_f64()?.partial_cmp(&right.as_f64()?))
        }
        (Value::String(a), Value::String(b)) => Relation::Ordered(Some(a.cmp(b))),
        (Value::Timestamp(_), _) | (_, Value::Timestamp(_)) => {
            Relation::Ordered(Some(as_datetime(left)?.cmp(&as_datetime(right)?)))
        }
        (Value::Bool(a), Value::Bool(b)) => Relation::EqualOnly(a == b),
        (Value::Bytes(_), Value::Bytes(_)) | (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => {
            Relation::EqualOnly(left == right)
        }
        _ => return None,
    })
}

/// Orders values for ORDER BY: NULL first, numbers numerically, then by text.
pub(crate) fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}

/// The direction of one `ORDER BY` key: ascending or not, and whether NULLs
/// come before the other values or after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortOrder {
    /// `ASC` (the default) rather than `DESC`.
    pub ascending: bool,
    /// NULLs before the other values, whatever the direction.
    pub nulls_first: bool,
}

impl SortOrder {
    /// From the parser's `ASC`/`DESC` and `NULLS FIRST`/`NULLS LAST`;
    /// without the latter, NULLs go first when `default_nulls_first` says so
    /// for the direction (ascending or not).
    pub(crate) fn of(
        options: &oort_sql::sqlparser::ast::OrderByOptions,
        default_nulls_first: impl Fn(bool) -> bool,
    ) -> Self {
        let ascending = !matches!(options.sort, Some(oort_sql::sqlparser::ast::OrderBySort::Desc));
        SortOrder { ascending, nulls_first: options.nulls_first.unwrap_or_else(|| default_nulls_first(ascending)) }
    }

    /// Orders two values of the key: NULLs where [`nulls_first`](Self::nulls_first)
    /// puts them, the others by [`order`] in the key's direction.
    pub(crate) fn compare(self, a: &Value, b: &Value) -> Ordering {
        match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if self.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if self.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if self.ascending => order(a, b),
            (false, false) => order(a, b).reverse(),
        }
    }
}

/// `= != < <= > >=` with eKuiper's NULL rules: always a boolean.
pub(crate) fn compare(op: BinaryOp, left: &Value, right: &Value) -> Result<bool, EvalError> {
    // As eKuiper: a comparison with NULL on either side is false, `NULL = NULL`
    // and `NULL != 1` too (so WHERE drops the row either way).
    if left.is_null() || right.is_null() {
        return Ok(false);
    }
    match relate(left, right) {
        Some(Relation::Ordered(Some(ordering))) => Ok(match op {
            BinaryOp::Eq => ordering == Ordering::Equal,
            BinaryOp::NotEq => ordering != Ordering::Equal,
            BinaryOp::Lt => ordering == Ordering::Less,
            BinaryOp::LtEq => ordering != Ordering::Greater,
            BinaryOp::Gt => ordering == Ordering::Greater,
            _ => ordering != Ordering::Less,
        }),
        // NaN: equal to nothing, ordered with nothing.
        Some(Relation::Ordered(None)) => Ok(op == BinaryOp::NotEq),
        Some(Relation::EqualOnly(equal)) => match op {
            BinaryOp::Eq => Ok(equal),
            BinaryOp::NotEq => Ok(!equal),
            _ => Err(invalid(left, op, right)),
        },
        None => Err(invalid(left, op, right)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BinaryOp::*;

    fn int(i: i64) -> Value {
        Value::Int(i)
    }
    fn float(x: f64) -> Value {
        Value::Float(x)
    }

    #[test]
    fn a_sort_order_puts_nulls_where_it_says_in_either_direction() {
        use Ordering::*;
        let cases = [(true, false), (false, false), (true, true), (false, true)];
        let [asc_last, desc_last, asc_first, desc_first] =
            cases.map(|(ascending, nulls_first)| SortOrder { ascending, nulls_first });
        assert_eq!(asc_last.compare(&Value::Null, &int(1)), Greater);
        assert_eq!(desc_last.compare(&Value::Null, &int(1)), Greater);
        assert_eq!(asc_first.compare(&Value::Null, &int(1)), Less);
        assert_eq!(desc_first.compare(&int(1), &Value::Null), Greater);
        assert_eq!(desc_first.compare(&Value::Null, &Value::Null), Equal);
        assert_eq!(asc_first.compare(&int(1), &float(2.5)), Less);
        assert_eq!(desc_first.compare(&int(1), &float(2.5)), Greater);
    }

    #[test]
    fn integer_arithmetic_stays_integer() {
        assert_eq!(arithmetic(Add, &int(2), &int(3)).unwrap(), int(5));
        assert_eq!(arithmetic(Sub, &int(2), &int(3)).unwrap(), int(-1));
        assert_eq!(arithmetic(Mul, &int(4), &int(3)).unwrap(), int(12));
        assert_eq!(arithmetic(Div, &int(7), &int(2)).unwrap(), int(3));
        assert_eq!(arithmetic(Div, &int(-7), &int(2)).unwrap(), int(-3), "truncates toward zero");
        assert_eq!(arithmetic(Mod, &int(-7), &int(3)).unwrap(), int(-1), "sign of the dividend");
        assert_eq!(arithmetic(Mod, &int(i64::MIN), &int(-1)).unwrap(), int(0));
    }

    #[test]
    fn mixed_arithmetic_is_float() {
        assert_eq!(arithmetic(Add, &int(1), &float(0.5)).unwrap(), float(1.5));
        assert_eq!(arithmetic(Div, &int(7), &float(2.0)).unwrap(), float(3.5));
        assert_eq!(arithmetic(Mod, &float(7.5), &int(2)).unwrap(), float(1.5));
        assert!(matches!(arithmetic(Mul, &float(2.0), &float(3.0)).unwrap(), Value::Float(x) if x == 6.0));
    }

    #[test]
    fn arithmetic_errors() {
        assert_eq!(arithmetic(Div, &int(1), &int(0)), Err(EvalError::DivisionByZero));
        assert_eq!(arithmetic(Mod, &int(1), &int(0)), Err(EvalError::DivisionByZero));
        assert_eq!(arithmetic(Div, &float(1.0), &float(0.0)), Err(EvalError::DivisionByZero));
        assert_eq!(arithmetic(Mod, &float(1.0), &int(0)), Err(EvalError::DivisionByZero));
        assert!(matches!(arithmetic(Add, &int(i64::MAX), &int(1)), Err(EvalError::Overflow { .. })));
        assert!(matches!(arithmetic(Sub, &int(i64::MIN), &int(1)), Err(EvalError::Overflow { .. })));
        assert!(matches!(arithmetic(Mul, &int(i64::MAX), &int(2)), Err(EvalError::Overflow { .. })));
        assert!(matches!(arithmetic(Div, &int(i64::MIN), &int(-1)), Err(EvalError::Overflow { .. })));
        assert!(matches!(arithmetic(Mul, &float(1e308), &float(10.0)), Err(EvalError::Overflow { .. })));
        let e = arithmetic(Mul, &Value::from("abc"), &int(3)).unwrap_err();
        assert_eq!(e.to_string(), "invalid operation: string(\"abc\") * bigint(3)");
        assert!(arithmetic(Add, &Value::Bool(true), &int(1)).is_err());
        assert!(arithmetic(Add, &Value::from("a"), &Value::from("b")).is_err(), "no + on strings");
    }

    #[test]
    fn null_propagates_through_arithmetic_and_bitwise() {
        for op in [Add, Sub, Mul, Div, Mod] {
            assert_eq!(arithmetic(op, &Value::Null, &int(1)).unwrap(), Value::Null);
            assert_eq!(arithmetic(op, &int(1), &Value::Null).unwrap(), Value::Null);
        }
        assert_eq!(arithmetic(Div, &Value::Null, &int(0)).unwrap(), Value::Null);
        assert_eq!(bitwise(BitAnd, &Value::Null, &int(1)).unwrap(), Value::Null);
        assert_eq!(concat(&Value::Null, &Value::from("a")), Value::Null);
        assert_eq!(unary(UnaryOp::Neg, Value::Null).unwrap(), Value::Null);
        assert_eq!(unary(UnaryOp::Not, Value::Null).unwrap(), Value::Null);
    }

    #[test]
    fn bitwise_on_integers_and_booleans() {
        assert_eq!(bitwise(BitAnd, &int(6), &int(3)).unwrap(), int(2));
        assert_eq!(bitwise(BitOr, &int(6), &int(3)).unwrap(), int(7));
        assert_eq!(bitwise(BitXor, &int(6), &int(3)).unwrap(), int(5));
        assert_eq!(bitwise(BitXor, &Value::Bool(true), &Value::Bool(false)).unwrap(), Value::Bool(true));
        assert!(bitwise(BitAnd, &float(1.0), &int(1)).is_err());
    }

    #[test]
    fn unary_operators() {
        assert_eq!(unary(UnaryOp::Neg, int(3)).unwrap(), int(-3));
        assert_eq!(unary(UnaryOp::Neg, float(1.5)).unwrap(), float(-1.5));
        assert!(matches!(unary(UnaryOp::Neg, int(i64::MIN)), Err(EvalError::Overflow { .. })));
        assert_eq!(unary(UnaryOp::Not, Value::Bool(true)).unwrap(), Value::Bool(false));
        assert!(unary(UnaryOp::Not, int(1)).is_err());
        assert!(unary(UnaryOp::Neg, Value::from("x")).is_err());
        assert_eq!(unary(UnaryOp::Plus, int(2)).unwrap(), int(2));
        assert!(unary(UnaryOp::Plus, Value::from("x")).is_err());
    }

    #[test]
    fn comparisons() {
        assert!(compare(Lt, &int(1), &int(2)).unwrap());
        assert!(compare(Eq, &int(1), &float(1.0)).unwrap());
        assert!(compare(GtEq, &float(2.5), &int(2)).unwrap());
        assert!(compare(NotEq, &int(1), &int(2)).unwrap());
        assert!(compare(Lt, &Value::from("abc"), &Value::from("abd")).unwrap());
        assert!(compare(Gt, &Value::from("b"), &Value::from("abc")).unwrap());
        assert!(compare(Eq, &Value::Bool(true), &Value::Bool(true)).unwrap());
        assert!(compare(Lt, &Value::Bool(true), &Value::Bool(false)).is_err());
        assert!(compare(Eq, &int(1), &Value::from("1")).is_err(), "eKuiper: invalid operation");
        let nan = float(f64::NAN);
        assert!(!compare(Eq, &nan, &nan).unwrap());
        assert!(compare(NotEq, &nan, &int(1)).unwrap());
        assert!(!compare(Lt, &nan, &int(1)).unwrap());
        let list = Value::list(vec![int(1)]);
        assert!(compare(Eq, &list, &Value::list(vec![float(1.0)])).unwrap());
        assert!(compare(Lt, &list, &list).is_err());
    }

    #[test]
    fn comparisons_with_null_follow_ekuiper() {
        // eKuiper's SimpleDataEval: a NULL side makes every comparison false.
        let null = Value::Null;
        for op in [Eq, NotEq, Lt, LtEq, Gt, GtEq] {
            assert!(!compare(op, &null, &null).unwrap(), "NULL {op:?} NULL");
            assert!(!compare(op, &null, &int(1)).unwrap(), "NULL {op:?} 1");
        }
        assert!(!compare(Lt, &int(1), &null).unwrap());
        assert!(!compare(NotEq, &int(1), &null).unwrap());
    }

    #[test]
    fn datetimes_compare_with_datetimes_millis_and_rfc3339() {
        let t = Value::utc(DateTime::from_timestamp_millis(1_700_000_000_000).unwrap());
        let later = Value::utc(DateTime::from_timestamp_millis(1_700_000_000_001).unwrap());
        assert!(compare(Lt, &t, &later).unwrap());
        assert!(compare(Eq, &t, &int(1_700_000_000_000)).unwrap());
        assert!(compare(Gt, &int(1_700_000_000_001), &t).unwrap());
        assert!(compare(Eq, &t, &Value::from("2023-11-14T22:13:20Z")).unwrap());
        assert!(compare(Lt, &t, &Value::from("2023-11-14T23:13:20+01:00")).is_ok());
        assert!(compare(Lt, &t, &Value::from("yesterday")).is_err());
        assert!(compare(Lt, &t, &Value::Bool(true)).is_err());
    }

    #[test]
    fn concat_renders_text() {
        assert_eq!(concat(&Value::from("a"), &Value::from("b")), Value::from("ab"));
        assert_eq!(concat(&Value::from("n="), &int(3)), Value::from("n=3"));
    }

    #[test]
    fn truth_values() {
        assert_eq!(truth(&Value::Bool(true), And).unwrap(), Some(true));
        assert_eq!(truth(&Value::Null, Or).unwrap(), None);
        assert_eq!(
            truth(&int(1), And).unwrap_err().to_string(),
            "invalid operation: AND needs boolean operands, got bigint(1)"
        );
    }

    #[test]
    fn describe_shortens() {
        let long = Value::from("x".repeat(100));
        assert!(describe(&long).len() < 60);
        assert_eq!(describe(&Value::Null), "null(null)");
    }
}
