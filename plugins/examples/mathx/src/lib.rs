//! `mathx`, an example native plugin of functions:
//!
//! - `mx_abs(x)`: the absolute value, the same work as the built-in `abs` (the benchmark compares them);
//! - `mx_clamp(x, lo, hi)`: `x` bounded to `[lo, hi]`; refuses literal bounds with `lo > hi` at rule creation;
//! - `mx_div(a, b)`: integer division, which panics when `b` is 0 (the panic becomes that row's error);
//! - `mx_geomean(x)`: an aggregate, the geometric mean of a group;
//! - `mx_instance()`: an id of the loaded copy of the library, to see a hot reload happen.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use oort_plugin::{Context, Function, Plugin, Value};

fn number(name: &str, v: &Value) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| format!("{name}: expects a number, got {}", v.type_name()))
}

struct Abs;

impl Function for Abs {
    fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
        if args.len() != 1 {
            return Err(format!("mx_abs takes 1 argument, got {}", args.len()));
        }
        Ok(())
    }
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        match &args[0] {
            Value::Int(i) => Ok(Value::Int(i.wrapping_abs())),
            Value::Float(f) => Ok(Value::Float(f.abs())),
            Value::Null => Ok(Value::Null),
            other => Err(format!("mx_abs: expects a number, got {}", other.type_name())),
        }
    }
    fn description(&self) -> &str {
        "absolute value of a number"
    }
}

struct Clamp;

impl Function for Clamp {
    fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
        if args.len() != 3 {
            return Err(format!("mx_clamp takes 3 arguments, got {}", args.len()));
        }
        if let (Some(lo), Some(hi)) =
            (args[1].as_ref().and_then(Value::as_f64), args[2].as_ref().and_then(Value::as_f64))
            && lo > hi
        {
            return Err(format!("mx_clamp: the lower bound {lo} is above the upper bound {hi}"));
        }
        Ok(())
    }
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let (x, lo, hi) = (number("mx_clamp", &args[0])?, number("mx_clamp", &args[1])?, number("mx_clamp", &args[2])?);
        Ok(Value::Float(x.max(lo).min(hi)))
    }
    fn description(&self) -> &str {
        "a number bounded to [lo, hi]"
    }
}

struct Div;

impl Function for Div {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        match (args.first(), args.get(1)) {
            // Panics when b == 0, on purpose: the SDK turns it into this row's error.
            (Some(Value::Int(a)), Some(Value::Int(b))) => Ok(Value::Int(a / b)),
            _ => Err("mx_div: expects two integers".to_owned()),
        }
    }
    fn description(&self) -> &str {
        "integer division (panics on division by zero)"
    }
}

struct GeoMean;

impl Function for GeoMean {
    fn exec(&self, _: &Context<'_>, args: &[Value]) -> Result<Value, String> {
        let Some(Value::List(values)) = args.first() else { return Err("mx_geomean: expects a group".to_owned()) };
        let numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
        if numbers.is_empty() {
            return Ok(Value::Null);
        }
        let log_sum: f64 = numbers.iter().map(|x| x.ln()).sum();
        Ok(Value::Float((log_sum / numbers.len() as f64).exp()))
    }
    fn is_aggregate(&self) -> bool {
        true
    }
    fn description(&self) -> &str {
        "geometric mean of a group"
    }
}

/// When this copy of the library was initialised (ns since the epoch): each load differs.
static INSTANCE: OnceLock<i64> = OnceLock::new();

struct Instance;

impl Function for Instance {
    fn exec(&self, _: &Context<'_>, _: &[Value]) -> Result<Value, String> {
        Ok(Value::Int(*INSTANCE.get_or_init(now_ns)))
    }
    fn description(&self) -> &str {
        "an id of the loaded copy of the plugin"
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

/// The plugin.
pub fn plugin() -> Plugin {
    INSTANCE.get_or_init(now_ns);
    Plugin::new("mathx", env!("CARGO_PKG_VERSION"))
        .function("mx_abs", Abs)
        .function("mx_clamp", Clamp)
        .function("mx_div", Div)
        .function("mx_geomean", GeoMean)
        .function("mx_instance", Instance)
}

oort_plugin::export_plugin!(plugin());

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context<'static> = Context { rule_id: "test" };

    #[test]
    fn functions_compute() {
        assert_eq!(Abs.exec(&CTX, &[Value::Int(-3)]).unwrap(), Value::Int(3));
        assert_eq!(Clamp.exec(&CTX, &[Value::Int(12), Value::Int(0), Value::Int(10)]).unwrap(), Value::Float(10.0));
        assert!(Clamp.validate(&[None, Some(Value::Int(5)), Some(Value::Int(1))]).is_err());
        let group = Value::List(vec![Value::Int(1), Value::Int(4)]);
        assert_eq!(GeoMean.exec(&CTX, &[group]).unwrap(), Value::Float(2.0));
    }
}
