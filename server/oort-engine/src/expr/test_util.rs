//! Test helpers: a registry with a few tiny functions, sample rows, and
//! compiling expressions out of `SELECT ... FROM demo`.

use std::sync::Arc;

use oort_sql::sqlparser::ast::SelectItem;
use oort_sql::{Field, FieldType, SqlError};

use super::{CompileContext, EvalEnv, Expr, SourceSchema, compile};
use crate::function::{ArgInfo, CallContext, Function, FunctionError, FunctionKind, FunctionMeta, FunctionRegistry};
use crate::row::Row;
use crate::value::{Map, Value};

/// `upper(s)`: scalar, one string argument.
struct Upper(FunctionMeta);

impl Function for Upper {
    fn meta(&self) -> &FunctionMeta {
        &self.0
    }
    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        match &args[0] {
            Value::Null => Ok(Value::Null),
            Value::String(s) => Ok(Value::string(s.to_uppercase())),
            other => Err(FunctionError::argument_type("upper", 1, "string", other)),
        }
    }
}

/// `mysum(x)`: aggregate, sums the bigints of its list, skipping NULLs.
struct MySum(FunctionMeta);

impl Function for MySum {
    fn meta(&self) -> &FunctionMeta {
        &self.0
    }
    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        let Value::List(values) = &args[0] else {
            return Err(FunctionError::failed("mysum", "expects a list"));
        };
        Ok(Value::Int(values.iter().filter_map(Value::as_i64).sum()))
    }
}

/// `count(x)`: aggregate, counts the non-NULL entries of its list.
struct Count(FunctionMeta);

impl Function for Count {
    fn meta(&self) -> &FunctionMeta {
        &self.0
    }
    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        let Value::List(values) = &args[0] else {
            return Err(FunctionError::failed("count", "expects a list"));
        };
        Ok(Value::Int(values.iter().filter(|v| !v.is_null()).count() as i64))
    }
}

/// `pick(list, i)`: scalar; `i` must be an integer literal when it is a literal.
struct Pick(FunctionMeta);

impl Function for Pick {
    fn meta(&self) -> &FunctionMeta {
        &self.0
    }
    fn validate(&self, args: &[ArgInfo<'_>]) -> Result<(), String> {
        crate::function::check_arity(&self.0, args.len())?;
        match args[1].literal {
            Some(Value::Int(_)) | None => Ok(()),
            Some(other) => Err(format!("pick: the index must be a bigint, got {}", other.type_name())),
        }
    }
    fn call(&self, _: &CallContext<'_>, args: &[Value]) -> Result<Value, FunctionError> {
        match (&args[0], &args[1]) {
            (Value::List(items), Value::Int(i)) => Ok(items.get(*i as usize).cloned().unwrap_or_default()),
            _ => Ok(Value::Null),
        }
    }
}

/// A registry with `upper`, `mysum`, `count` and `pick`.
pub(crate) fn registry() -> FunctionRegistry {
    let registry = FunctionRegistry::new();
    registry.register(Arc::new(Upper(FunctionMeta::builtin("upper", FunctionKind::Scalar, 1, Some(1), "upper"))));
    registry.register(Arc::new(MySum(FunctionMeta::builtin("mysum", FunctionKind::Aggregate, 1, Some(1), "sum"))));
    registry.register(Arc::new(Count(FunctionMeta::builtin("count", FunctionKind::Aggregate, 1, Some(1), "count"))));
    registry.register(Arc::new(Pick(FunctionMeta::builtin("pick", FunctionKind::Scalar, 2, Some(2), "pick"))));
    registry
}

/// An evaluation environment outside any window.
pub(crate) fn env() -> EvalEnv<'static> {
    EvalEnv { rule_id: "test_rule", window: None, prefetch: None, hits: None }
}

/// The SELECT items of `sql`.
pub(crate) fn select_items(sql: &str) -> Vec<SelectItem> {
    oort_sql::parse_rule_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}")).select.projection
}

/// The first SELECT expression of `sql`.
pub(crate) fn first_expr(sql: &str) -> oort_sql::sqlparser::ast::Expr {
    match select_items(sql).into_iter().next() {
        Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => e,
        other => panic!("{sql}: not an expression: {other:?}"),
    }
}

/// Compiles `expr` (SQL text) against the schemaless stream `demo`.
pub(crate) fn compile_one(expr: &str) -> Expr {
    let sql = format!("SELECT {expr} FROM demo");
    let registry = registry();
    let sources = [SourceSchema::schemaless("demo")];
    let ctx = CompileContext { sources: &sources, registry: &registry, rule_id: "test_rule", analytics: None };
    compile(&first_expr(&sql), &ctx).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The schema of the declared stream `demo`.
pub(crate) fn demo_fields() -> Vec<Field> {
    vec![
        Field::new("temp", FieldType::Bigint),
        Field::new("hum", FieldType::Float),
        Field::new("name", FieldType::String),
        Field::new(
            "loc",
            FieldType::Struct(vec![Field::new("lat", FieldType::Float), Field::new("lng", FieldType::Float)]),
        ),
        Field::new("tags", FieldType::Array(Box::new(FieldType::String))),
        Field::new("id", FieldType::Bigint),
    ]
}

/// Compiles the first SELECT expression of a full rule against `sources`.
pub(crate) fn compile_with(sql: &str, sources: &[SourceSchema]) -> Result<Expr, SqlError> {
    let registry = registry();
    let ctx = CompileContext { sources, registry: &registry, rule_id: "test_rule", analytics: None };
    compile(&first_expr(sql), &ctx)
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries.into_iter().map(|(k, v)| (Arc::from(k), v)).collect())
}

/// A row with scalars, a struct, arrays, and a bigint at its maximum.
pub(crate) fn sample_row() -> Row {
    let fields: Map = [
        ("temp", Value::Int(25)),
        ("hum", Value::Float(60.5)),
        ("name", Value::from("dev1")),
        ("prefix", Value::from("de")),
        ("big", Value::Int(i64::MAX)),
        ("loc", map(vec![("lat", Value::Float(1.5)), ("path", Value::list(vec![Value::Int(10), Value::Int(20)]))])),
        ("tags", Value::list(vec![Value::from("a"), Value::from("b"), Value::from("c")])),
        ("readings", Value::list(vec![map(vec![("v", Value::Int(1))]), map(vec![("v", Value::Int(2))])])),
    ]
    .into_iter()
    .map(|(k, v)| (Arc::from(k), v))
    .collect();
    Row::new(fields, 1_000)
}

/// A row of bigint columns.
pub(crate) fn row_of(fields: &[(&str, i64)]) -> Row {
    Row::new(fields.iter().map(|(k, v)| (Arc::from(*k), Value::Int(*v))).collect(), 0)
}
