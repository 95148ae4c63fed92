//! Mathematical functions, as eKuiper's: numbers in, numbers out. `abs` and `sign`
//! keep integers; the others compute in f64 and return FLOAT (so do `ceil`, `floor`,
//! `round` and `mod`, like eKuiper). A result that is not a number (`acos(2)`) is NULL.

use std::sync::Arc;

use super::{Builtin, Kind, float_or_null, int, literal, num};
use crate::function::{CallContext, Function, FunctionError};
use crate::value::Value;

/// A one-argument f64 function.
fn unary(name: &str, description: &str, f: fn(f64) -> f64) -> Arc<dyn Function> {
    Builtin::scalar(name, 1, Some(1), description, move |name, _, args| Ok(float_or_null(f(num(name, 0, &args[0])?))))
        .kinds(&[Kind::Number])
        .build()
}

/// A two-argument f64 function.
fn binary(name: &str, description: &str, f: fn(f64, f64) -> f64) -> Arc<dyn Function> {
    Builtin::scalar(name, 2, Some(2), description, move |name, _, args| {
        Ok(float_or_null(f(num(name, 0, &args[0])?, num(name, 1, &args[1])?)))
    })
    .kinds(&[Kind::Number])
    .build()
}

/// A two-argument bitwise function on integers.
fn bitwise(name: &str, description: &str, f: fn(i64, i64) -> i64) -> Arc<dyn Function> {
    Builtin::scalar(name, 2, Some(2), description, move |name, _, args| {
        Ok(Value::Int(f(int(name, 0, &args[0])?, int(name, 1, &args[1])?)))
    })
    .kinds(&[Kind::BigInt])
    .build()
}

/// `f(x)` where it is defined; elsewhere an error on that event, as
/// eKuiper's `ln`, `log` and `sqrt` (which name the argument).
fn defined(name: &str, x: f64, y: f64, domain: &str) -> Result<Value, FunctionError> {
    if y.is_finite() {
        Ok(Value::Float(y))
    } else {
        Err(FunctionError::failed(name, format!("the argument must be {domain}, got {x}")))
    }
}

const STRICTLY_POSITIVE: &str = "a strictly positive number";

fn ln(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    defined(name, x, x.ln(), STRICTLY_POSITIVE)
}

fn sqrt(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    defined(name, x, x.sqrt(), "a positive number")
}

fn abs(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    match &args[0] {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| FunctionError::failed(name, format!("abs({i}) overflows bigint"))),
        Value::Float(x) => Ok(Value::Float(x.abs())),
        other => Err(FunctionError::argument_type(name, 1, "number", other)),
    }
}

fn log(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    if let [x] = args {
        let x = num(name, 0, x)?;
        return defined(name, x, x.log10(), STRICTLY_POSITIVE);
    }
    // log(b, x): the base-b logarithm of x.
    let (base, x) = (num(name, 0, &args[0])?, num(name, 1, &args[1])?);
    if base <= 0.0 || base == 1.0 {
        return Err(FunctionError::failed(name, format!("the base must be positive and not 1, got {base}")));
    }
    defined(name, x, x.ln() / base.ln(), STRICTLY_POSITIVE)
}

fn round(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    let digits = match args.get(1) {
        Some(d) => int(name, 1, d)?,
        None => 0,
    };
    Ok(float_or_null(round_to(x, digits)))
}

/// Rounds half away from zero to `digits` decimal places (negative: to tens, hundreds...).
fn round_to(x: f64, digits: i64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let digits = digits.clamp(-400, 400) as i32;
    let factor = 10f64.powi(digits.abs());
    if digits >= 0 {
        let scaled = x * factor;
        // No fraction left at this scale (or past f64's range): nothing to round.
        if !scaled.is_finite() || scaled.abs() >= 2f64.powi(52) { x } else { scaled.round() / factor }
    } else if factor.is_infinite() {
        0.0
    } else {
        (x / factor).round() * factor
    }
}

fn sign(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    Ok(if x.is_nan() {
        Value::Null
    } else if x > 0.0 {
        Value::Int(1)
    } else if x < 0.0 {
        Value::Int(-1)
    } else {
        Value::Int(0)
    })
}

fn cot(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let x = num(name, 0, &args[0])?;
    let r = x.cos() / x.sin();
    if r.is_infinite() {
        return Err(FunctionError::failed(name, format!("cot({x}) is out of range")));
    }
    Ok(float_or_null(r))
}

fn bitnot(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(!int(name, 0, &args[0])?))
}

fn pi(_: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Float(std::f64::consts::PI))
}

fn rand(_: &str, _: &CallContext<'_>, _: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Float(fastrand::f64()))
}

fn ceil(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(float_or_null(num(name, 0, &args[0])?.ceil()))
}

fn power(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    Ok(float_or_null(num(name, 0, &args[0])?.powf(num(name, 1, &args[1])?)))
}

/// `conv(str, from_base, to_base)`, MySQL's and eKuiper's: converts a number written in one
/// base to another. A negative `from_base` reads the number as signed; a negative `to_base`
/// writes it as signed. Bases outside 2..=36 give NULL.
fn conv(name: &str, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
    let input = match &args[0] {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => return Err(FunctionError::argument_type(name, 1, "string", other)),
    };
    let (from, to) = (int(name, 1, &args[1])?, int(name, 2, &args[2])?);
    let (signed_in, signed_out) = (from < 0, to < 0);
    let (from, to) = (from.unsigned_abs(), to.unsigned_abs());
    if !(2..=36).contains(&from) || !(2..=36).contains(&to) {
        return Ok(Value::Null);
    }
    let trimmed = input.trim();
    let (negative, body) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    // Read the longest valid prefix, saturating at u64::MAX like MySQL.
    let mut magnitude: u64 = 0;
    for c in body.chars() {
        let Some(digit) = c.to_digit(from as u32) else { break };
        magnitude = magnitude.saturating_mul(from).saturating_add(u64::from(digit));
    }
    if signed_in {
        let limit = if negative { 1u64 << 63 } else { i64::MAX as u64 };
        magnitude = magnitude.min(limit);
    }
    let mut bits = if negative { magnitude.wrapping_neg() } else { magnitude };
    let negative_out = signed_out && (bits as i64) < 0;
    if negative_out {
        bits = bits.wrapping_neg();
    }
    let mut digits = Vec::new();
    loop {
        let d = (bits % to) as u32;
        digits.push(std::char::from_digit(d, to as u32).map_or('0', |c| c.to_ascii_uppercase()));
        bits /= to;
        if bits == 0 {
            break;
        }
    }
    if negative_out {
        digits.push('-');
    }
    Ok(Value::string(digits.iter().rev().collect::<String>()))
}

fn validate_log(name: &str, args: &[crate::function::ArgInfo<'_>]) -> Result<(), String> {
    if args.len() == 2 && literal(args, 0).and_then(Value::as_f64).is_some_and(|b| b <= 1.0) {
        return Err(format!("function {name}: the base must be greater than 1"));
    }
    Ok(())
}

/// The mathematical functions.
pub fn functions() -> Vec<Arc<dyn Function>> {
    let number = &[Kind::Number];
    vec![
        Builtin::scalar("abs", 1, Some(1), "The absolute value of a number; integers stay integers.", abs)
            .kinds(number)
            .build(),
        unary("acos", "The inverse cosine of a number, in radians.", f64::acos),
        unary("asin", "The inverse sine of a number, in radians.", f64::asin),
        unary("atan", "The inverse tangent of a number, in radians.", f64::atan),
        binary(
            "atan2",
            "The angle in radians between the positive x axis and the point (x, y): atan2(y, x).",
            f64::atan2,
        ),
        bitwise("bitand", "The bitwise AND of two integers.", |a, b| a & b),
        bitwise("bitor", "The bitwise OR of two integers.", |a, b| a | b),
        bitwise("bitxor", "The bitwise XOR of two integers.", |a, b| a ^ b),
        Builtin::scalar("bitnot", 1, Some(1), "The bitwise NOT of an integer.", bitnot).kinds(&[Kind::BigInt]).build(),
        Builtin::scalar("ceil", 1, Some(1), "The smallest integral value not less than the argument.", ceil)
            .kinds(number)
            .build(),
        Builtin::scalar("ceiling", 1, Some(1), "Synonym for ceil.", ceil).kinds(number).build(),
        Builtin::scalar(
            "conv",
            3,
            Some(3),
            "Converts a number written in one base to another: conv(str, from, to).",
            conv,
        )
        .kinds(&[Kind::Any, Kind::Int, Kind::Int])
        .build(),
        unary("cos", "The cosine of a number of radians.", f64::cos),
        unary("cosh", "The hyperbolic cosine of a number.", f64::cosh),
        Builtin::scalar("cot", 1, Some(1), "The cotangent of a number of radians.", cot).kinds(number).build(),
        unary("degrees", "Converts radians to degrees.", f64::to_degrees),
        unary("exp", "Euler's number e raised to the power of the argument.", f64::exp),
        unary("floor", "The largest integral value not greater than the argument.", f64::floor),
        Builtin::scalar("ln", 1, Some(1), "The natural logarithm of a strictly positive number.", ln)
            .kinds(number)
            .build(),
        Builtin::scalar(
            "log",
            1,
            Some(2),
            "log(x): base-10 logarithm; log(b, x): base-b logarithm; of a strictly positive number.",
            log,
        )
        .kinds(number)
        .validate(validate_log)
        .build(),
        binary("mod", "The remainder of the division of the first argument by the second.", |a, b| a % b),
        Builtin::scalar("pi", 0, Some(0), "The value of pi.", pi).build(),
        Builtin::scalar("power", 2, Some(2), "The first argument raised to the power of the second.", power)
            .kinds(number)
            .build(),
        Builtin::scalar("pow", 2, Some(2), "Synonym for power.", power).kinds(number).build(),
        unary("radians", "Converts degrees to radians.", f64::to_radians),
        Builtin::scalar("rand", 0, Some(0), "A random number in [0.0, 1.0).", rand).build(),
        Builtin::scalar(
            "round",
            1,
            Some(2),
            "Rounds half away from zero, to the given number of decimals (default 0).",
            round,
        )
        .kinds(&[Kind::Number, Kind::Int])
        .build(),
        Builtin::scalar("sign", 1, Some(1), "The sign of a number: -1, 0 or 1.", sign).kinds(number).build(),
        unary("sin", "The sine of a number of radians.", f64::sin),
        unary("sinh", "The hyperbolic sine of a number.", f64::sinh),
        Builtin::scalar("sqrt", 1, Some(1), "The square root of a positive number.", sqrt).kinds(number).build(),
        unary("tan", "The tangent of a number of radians.", f64::tan),
        unary("tanh", "The hyperbolic tangent of a number.", f64::tanh),
    ]
}

#[cfg(test)]
mod tests {
    use std::f64::consts::{E, FRAC_PI_2, FRAC_PI_4, PI, SQRT_2};

    use super::*;
    use crate::functions::testing::{assert_close, s, validate};

    crate::functions::testing::shorthands!(functions);

    #[test]
    fn abs_keeps_integers() {
        assert_eq!(f("abs", &[Value::Int(-3)]), Value::Int(3));
        assert!(matches!(f("abs", &[Value::Int(-3)]), Value::Int(3)));
        assert_close(&f("abs", &[Value::Float(-2.5)]), 2.5);
        assert_eq!(f("abs", &[Value::Null]), Value::Null);
        assert!(matches!(e("abs", &[s("x")]), FunctionError::ArgumentType { index: 1, .. }));
        assert!(matches!(e("abs", &[Value::Int(i64::MIN)]), FunctionError::Failed { .. }));
    }

    #[test]
    fn trigonometry() {
        assert_close(&f("acos", &[Value::Int(1)]), 0.0);
        assert_eq!(f("acos", &[Value::Int(2)]), Value::Null, "NaN is NULL");
        assert_close(&f("asin", &[Value::Int(1)]), FRAC_PI_2);
        assert_eq!(f("asin", &[Value::Float(1.5)]), Value::Null);
        assert_close(&f("atan", &[Value::Int(1)]), FRAC_PI_4);
        assert_close(&f("atan2", &[Value::Int(1), Value::Int(1)]), FRAC_PI_4);
        assert_close(&f("cos", &[Value::Int(0)]), 1.0);
        assert_close(&f("cosh", &[Value::Int(0)]), 1.0);
        assert_close(&f("cot", &[Value::Float(FRAC_PI_4)]), 1.0);
        assert!(matches!(e("cot", &[Value::Int(0)]), FunctionError::Failed { .. }));
        assert_close(&f("sin", &[Value::Float(FRAC_PI_2)]), 1.0);
        assert_close(&f("sinh", &[Value::Int(0)]), 0.0);
        assert_close(&f("tan", &[Value::Float(FRAC_PI_4)]), 1.0);
        assert_close(&f("tanh", &[Value::Int(0)]), 0.0);
        assert_close(&f("degrees", &[Value::Float(PI)]), 180.0);
        assert_close(&f("radians", &[Value::Int(180)]), PI);
        for name in ["acos", "asin", "atan", "cos", "cosh", "cot", "sin", "sinh", "tan", "tanh", "degrees", "radians"] {
            assert_eq!(f(name, &[Value::Null]), Value::Null, "{name}");
            assert!(matches!(e(name, &[Value::Bool(true)]), FunctionError::ArgumentType { .. }), "{name}");
        }
        assert_eq!(f("atan2", &[Value::Null, Value::Int(1)]), Value::Null);
        assert!(matches!(e("atan2", &[Value::Int(1), s("1")]), FunctionError::ArgumentType { index: 2, .. }));
    }

    #[test]
    fn bitwise_operators() {
        assert_eq!(f("bitand", &[Value::Int(12), Value::Int(10)]), Value::Int(8));
        assert_eq!(f("bitor", &[Value::Int(12), Value::Int(10)]), Value::Int(14));
        assert_eq!(f("bitxor", &[Value::Int(12), Value::Int(10)]), Value::Int(6));
        assert_eq!(f("bitnot", &[Value::Int(0)]), Value::Int(-1));
        assert_eq!(f("bitand", &[Value::Float(4.0), Value::Int(4)]), Value::Int(4), "integral floats are ints");
        let refused = validate(&functions(), "bitand", &[Some(Value::Float(1.0)), Some(Value::Int(1))]);
        assert!(refused.unwrap_err().contains("argument 1 must be bigint"), "a FLOAT literal, as eKuiper");
        assert!(validate(&functions(), "bitnot", &[Some(Value::Float(2.0))]).is_err());
        assert!(validate(&functions(), "bitor", &[None, Some(Value::Int(1))]).is_ok());
        for name in ["bitand", "bitor", "bitxor"] {
            assert_eq!(f(name, &[Value::Int(1), Value::Null]), Value::Null);
            assert!(matches!(e(name, &[Value::Float(1.5), Value::Int(1)]), FunctionError::ArgumentType { .. }));
        }
        assert_eq!(f("bitnot", &[Value::Null]), Value::Null);
        assert!(e("bitnot", &[s("1")]).to_string().contains("bigint"));
        assert!(validate(&functions(), "bitand", &[Some(Value::Float(1.5)), None]).is_err());
    }

    #[test]
    fn rounding_returns_floats() {
        assert_eq!(f("ceil", &[Value::Float(1.2)]), Value::Float(2.0));
        assert!(matches!(f("ceil", &[Value::Int(1)]), Value::Float(_)));
        assert_eq!(f("ceiling", &[Value::Float(-1.2)]), Value::Float(-1.0));
        assert_eq!(f("floor", &[Value::Float(1.8)]), Value::Float(1.0));
        assert_eq!(f("round", &[Value::Float(2.5)]), Value::Float(3.0));
        assert_eq!(f("round", &[Value::Float(-2.5)]), Value::Float(-3.0));
        assert_close(&f("round", &[Value::Float(1.2345), Value::Int(2)]), 1.23);
        assert_close(&f("round", &[Value::Float(1234.5), Value::Int(-2)]), 1200.0);
        assert_close(&f("round", &[Value::Float(1e300), Value::Int(400)]), 1e300);
        assert_eq!(f("round", &[Value::Float(1.5), Value::Int(-500)]), Value::Float(0.0));
        for name in ["ceil", "ceiling", "floor", "round"] {
            assert_eq!(f(name, &[Value::Null]), Value::Null);
            assert!(matches!(e(name, &[s("1.5")]), FunctionError::ArgumentType { .. }));
        }
        assert!(matches!(e("round", &[Value::Float(1.5), Value::Float(0.5)]), FunctionError::ArgumentType { .. }));
        assert!(validate(&functions(), "round", &[None, Some(s("2"))]).is_err());
    }

    #[test]
    fn exponents_and_logarithms() {
        assert_close(&f("exp", &[Value::Int(0)]), 1.0);
        assert_close(&f("ln", &[Value::Float(E)]), 1.0);
        // eKuiper: "The argument must be a strictly positive number but got -1".
        assert!(e("ln", &[Value::Int(0)]).to_string().contains("strictly positive number, got 0"));
        assert!(e("ln", &[Value::Int(-1)]).to_string().contains("got -1"));
        assert_close(&f("log", &[Value::Int(100)]), 2.0);
        assert_close(&f("log", &[Value::Int(2), Value::Int(8)]), 3.0);
        assert!(e("log", &[Value::Int(1), Value::Int(8)]).to_string().contains("base"));
        assert!(e("log", &[Value::Int(2), Value::Int(-8)]).to_string().contains("strictly positive"));
        assert!(e("log", &[Value::Int(0)]).to_string().contains("strictly positive"));
        assert!(validate(&functions(), "log", &[Some(Value::Int(1)), None]).is_err());
        assert!(validate(&functions(), "log", &[Some(Value::Int(1))]).is_ok(), "one argument is x, not a base");
        assert_close(&f("power", &[Value::Int(2), Value::Int(10)]), 1024.0);
        assert_close(&f("pow", &[Value::Int(2), Value::Float(0.5)]), SQRT_2);
        assert_close(&f("sqrt", &[Value::Int(4)]), 2.0);
        assert!(e("sqrt", &[Value::Int(-1)]).to_string().contains("a positive number, got -1"));
        assert_eq!(f("sqrt", &[Value::Int(0)]), Value::Float(0.0));
        for name in ["exp", "ln", "log", "sqrt"] {
            assert_eq!(f(name, &[Value::Null]), Value::Null);
            assert!(matches!(e(name, &[s("1")]), FunctionError::ArgumentType { .. }));
        }
        assert_eq!(f("power", &[Value::Null, Value::Int(2)]), Value::Null);
        assert!(matches!(e("pow", &[Value::Int(2), s("2")]), FunctionError::ArgumentType { index: 2, .. }));
    }

    #[test]
    fn modulo_sign_and_constants() {
        assert_eq!(f("mod", &[Value::Int(7), Value::Int(3)]), Value::Float(1.0));
        assert_close(&f("mod", &[Value::Float(-7.5), Value::Int(2)]), -1.5);
        assert_eq!(f("mod", &[Value::Int(7), Value::Int(0)]), Value::Null);
        assert_eq!(f("mod", &[Value::Null, Value::Int(0)]), Value::Null);
        assert!(matches!(e("mod", &[Value::Int(7), Value::Bool(true)]), FunctionError::ArgumentType { .. }));
        assert_eq!(f("sign", &[Value::Int(-2)]), Value::Int(-1));
        assert_eq!(f("sign", &[Value::Float(0.0)]), Value::Int(0));
        assert_eq!(f("sign", &[Value::Float(0.1)]), Value::Int(1));
        assert_eq!(f("sign", &[Value::Null]), Value::Null);
        assert!(matches!(e("sign", &[s("-1")]), FunctionError::ArgumentType { .. }));
        assert_close(&f("pi", &[]), PI);
        for _ in 0..100 {
            let Value::Float(x) = f("rand", &[]) else { panic!("rand is not a float") };
            assert!((0.0..1.0).contains(&x));
        }
        assert!(validate(&functions(), "pi", &[None]).is_err());
    }

    #[test]
    fn conv_changes_bases() {
        let conv = |n: Value, from: i64, to: i64| f("conv", &[n, Value::Int(from), Value::Int(to)]);
        assert_eq!(conv(s("a"), 16, 2), s("1010"));
        assert_eq!(conv(s("6E"), 18, 8), s("172"));
        assert_eq!(conv(s("-17"), 10, -18), s("-H"));
        assert_eq!(conv(Value::Int(255), 10, 16), s("FF"));
        assert_eq!(conv(s("12zz"), 10, 10), s("12"), "reads the valid prefix");
        assert_eq!(conv(s("1"), 1, 10), Value::Null, "bases outside 2..=36 are NULL");
        assert_eq!(conv(Value::Null, 10, 2), Value::Null);
        assert!(matches!(
            e("conv", &[Value::Bool(true), Value::Int(10), Value::Int(2)]),
            FunctionError::ArgumentType { .. }
        ));
        assert!(validate(&functions(), "conv", &[None, Some(s("10")), None]).is_err());
    }
}
