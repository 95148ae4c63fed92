//! Compiling sqlparser expressions into [`Expr`]: name resolution against the
//! rule's sources, function lookup and validation, and rejection of what
//! rules cannot do, each error with the position of the offending token.

use std::fmt::Display;
use std::sync::Arc;

use oort_sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DuplicateTreatment, Expr as SqlExpr, Function as SqlFunction, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, InTarget, ObjectName, ObjectNamePart, Spanned, Subscript, UnaryOperator,
    Value as SqlValue, ValueWithSpan,
};
use oort_sql::{Field, FieldType, Position, SqlError};

mod calls;
mod names;

use super::like::compile_like;
use super::ops;
use super::projection::Projection;
use super::tree::{BinaryOp, Call, Expr, LikePattern, UnaryOp};
use crate::analytic::AnalyticCalls;
use crate::function::{ArgInfo, FunctionKind, FunctionRegistry};
use crate::value::Value;

/// What the compiler needs to know: the rule's sources with their schemas,
/// and the functions it may call.
#[derive(Clone, Copy)]
pub struct CompileContext<'a> {
    /// The `FROM` stream first, then each joined source, in order.
    pub sources: &'a [SourceSchema],
    /// Where functions are looked up.
    pub registry: &'a FunctionRegistry,
    /// The rule being compiled.
    pub rule_id: &'a str,
    /// Where the analytic calls go (`lag`, `acc_sum`, ...); `None` where they
    /// are not allowed (a join's ON, evaluated before them).
    pub analytics: Option<&'a AnalyticCalls>,
}

/// One source of a rule and its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSchema {
    /// The stream or table name.
    pub name: String,
    /// The alias given in the rule, if any.
    pub alias: Option<String>,
    /// The declared fields; `None` for a schemaless stream.
    pub fields: Option<Vec<Field>>,
}

impl SourceSchema {
    /// A source with declared fields.
    pub fn new(name: impl Into<String>, fields: Vec<Field>) -> Self {
        Self { name: name.into(), alias: None, fields: Some(fields) }
    }

    /// A schemaless source.
    pub fn schemaless(name: impl Into<String>) -> Self {
        Self { name: name.into(), alias: None, fields: None }
    }

    /// The same source under an alias.
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// The name the query uses for the source: the alias if any, else the name.
    pub fn reference_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// A declared field by name (exact, then ignoring case); `None` when
    /// schemaless or absent.
    pub fn field(&self, name: &str) -> Option<&Field> {
        find_field(self.fields.as_deref()?, name)
    }
}

fn find_field<'f>(fields: &'f [Field], name: &str) -> Option<&'f Field> {
    fields.iter().find(|f| f.name == name).or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
}

/// `a, b, c` or the first few of them.
fn list_names<'n>(names: impl Iterator<Item = &'n str>) -> String {
    const MAX: usize = 12;
    let names: Vec<&str> = names.collect();
    let mut text = names.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        text.push_str(&format!(", ... ({} in all)", names.len()));
    }
    text
}

/// Compiles an expression of WHERE, GROUP BY or a join condition.
pub fn compile(expr: &SqlExpr, ctx: &CompileContext<'_>) -> Result<Expr, SqlError> {
    Compiler::new(ctx, Aliases::None).expr(expr)
}

/// Compiles an expression of HAVING or ORDER BY, where a name may also be an
/// output column of the SELECT list (an alias, a bare column, a function
/// name or `kuiper_field_N`). An output column wins over a source column of
/// the same name (eKuiper), and stands for the column's expression.
pub fn compile_with_aliases(
    expr: &SqlExpr,
    ctx: &CompileContext<'_>,
    projection: &Projection,
) -> Result<Expr, SqlError> {
    Compiler::new(ctx, Aliases::Output(projection)).expr(expr)
}

/// Compiles WHERE, where a name may also be an alias of the SELECT list
/// (`SELECT a + 1 AS b FROM s WHERE b > 2`, eKuiper): the alias wins over a
/// source column of the same name, as in HAVING, unless it is an aggregate's
/// (WHERE runs before any aggregate).
pub fn compile_with_select_aliases(
    expr: &SqlExpr,
    ctx: &CompileContext<'_>,
    projection: &Projection,
) -> Result<Expr, SqlError> {
    Compiler::new(ctx, Aliases::Where(projection)).expr(expr)
}

pub(crate) fn position(node: &impl Spanned) -> Option<Position> {
    Position::from_location(node.span().start)
}

fn ident_position(ident: &Ident) -> Option<Position> {
    Position::from_location(ident.span.start)
}

pub(crate) fn unsupported(what: impl Display, position: Option<Position>) -> SqlError {
    SqlError::semantic(format!("{what} is not supported in rules"), position)
}

/// How names that are not source columns may resolve.
pub(crate) enum Aliases<'a> {
    /// Only source columns.
    None,
    /// Inside the SELECT list: the aliases of its items (`None` for unaliased
    /// items), and the items being compiled, innermost last.
    Select { items: Vec<Option<(&'a str, &'a SqlExpr)>>, stack: Vec<usize> },
    /// HAVING / ORDER BY: the compiled SELECT list.
    Output(&'a Projection),
    /// WHERE: the aliases (`AS name`) of the compiled SELECT list.
    Where(&'a Projection),
}

pub(crate) struct Compiler<'a> {
    ctx: &'a CompileContext<'a>,
    aliases: Aliases<'a>,
    /// The aggregate whose arguments are being compiled, if any.
    aggregate: Option<Arc<str>>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(ctx: &'a CompileContext<'a>, aliases: Aliases<'a>) -> Self {
        Compiler { ctx, aliases, aggregate: None }
    }

    /// Compiles SELECT item `index`: inside it, its own alias names the source column.
    pub(crate) fn select_item(&mut self, index: usize, expr: &SqlExpr) -> Result<Expr, SqlError> {
        if let Aliases::Select { stack, .. } = &mut self.aliases {
            stack.clear();
            stack.push(index);
        }
        self.expr(expr)
    }

    pub(crate) fn expr(&mut self, expr: &SqlExpr) -> Result<Expr, SqlError> {
        match expr {
            SqlExpr::Identifier(ident) => self.identifier(ident),
            SqlExpr::CompoundIdentifier(idents) => self.compound_identifier(idents),
            SqlExpr::Value(value) => literal(value, false).map(Expr::Literal),
            SqlExpr::Nested(inner) => self.expr(inner),
            SqlExpr::UnaryOp { op, expr: operand } => self.unary(op, operand, expr),
            SqlExpr::BinaryOp { left, op: BinaryOperator::Arrow, right } => {
                let base = self.expr(left)?;
                match right.as_ref() {
                    SqlExpr::Identifier(ident) => self.field_access(base, ident),
                    other => Err(SqlError::semantic("a field name must follow `->`", position(other))),
                }
            }
            SqlExpr::BinaryOp { left, op, right } => {
                let op = binary_op(op).ok_or_else(|| unsupported(format!("the operator `{op}`"), position(expr)))?;
                Ok(Expr::Binary(op, Box::new(self.expr(left)?), Box::new(self.expr(right)?)))
            }
            SqlExpr::IsNull(inner) => Ok(Expr::IsNull { expr: Box::new(self.expr(inner)?), negated: false }),
            SqlExpr::IsNotNull(inner) => Ok(Expr::IsNull { expr: Box::new(self.expr(inner)?), negated: true }),
            SqlExpr::In { expr: needle, target, negated, .. } => match target {
                InTarget::List(list) => Ok(Expr::InList {
                    expr: Box::new(self.expr(needle)?),
                    list: list.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?,
                    negated: *negated,
                }),
                InTarget::Unnest(array) => Ok(Expr::InArray {
                    expr: Box::new(self.expr(needle)?),
                    array: Box::new(self.expr(array)?),
                    negated: *negated,
                }),
                InTarget::Subquery(_) => Err(unsupported("a subquery", position(expr))),
                _ => Err(unsupported(format!("`{expr}`"), position(expr))),
            },
            SqlExpr::Between { expr: value, negated, low, high } => Ok(Expr::Between {
                expr: Box::new(self.expr(value)?),
                low: Box::new(self.expr(low)?),
                high: Box::new(self.expr(high)?),
                negated: *negated,
            }),
            SqlExpr::Like { .. } | SqlExpr::ILike { .. } => self.like(expr),
            SqlExpr::Case { operand, conditions, else_result, .. } => {
                let operand = operand.as_ref().map(|o| self.expr(o).map(Box::new)).transpose()?;
                let mut branches = Vec::with_capacity(conditions.len());
                for when in conditions {
                    let condition = self.expr(&when.condition)?;
                    if operand.is_none()
                        && let Expr::Literal(v) = &condition
                        && !matches!(v, Value::Bool(_) | Value::Null)
                    {
                        return Err(SqlError::semantic(
                            format!("a WHEN condition must be boolean, got {}", v.type_name()),
                            position(&when.condition),
                        ));
                    }
                    branches.push((condition, self.expr(&when.result)?));
                }
                let else_result = else_result.as_ref().map(|e| self.expr(e).map(Box::new)).transpose()?;
                Ok(Expr::Case { operand, branches, else_result })
            }
            SqlExpr::Function(function) => self.call(function),
            SqlExpr::CompoundFieldAccess { root, access_chain } => {
                let mut base = self.expr(root)?;
                for access in access_chain {
                    base = match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            Expr::Index(Box::new(base), Box::new(self.expr(index)?))
                        }
                        AccessExpr::Subscript(Subscript::Slice { lower_bound, upper_bound, stride: None }) => {
                            Expr::Slice {
                                base: Box::new(base),
                                start: lower_bound.as_ref().map(|e| self.expr(e).map(Box::new)).transpose()?,
                                end: upper_bound.as_ref().map(|e| self.expr(e).map(Box::new)).transpose()?,
                            }
                        }
                        AccessExpr::Subscript(Subscript::Slice { stride: Some(stride), .. }) => {
                            return Err(unsupported("a slice with a step", position(stride)));
                        }
                        AccessExpr::Dot(SqlExpr::Identifier(ident)) => self.field_access(base, ident)?,
                        AccessExpr::Dot(other) => return Err(unsupported(format!("`.{other}`"), position(other))),
                    };
                }
                Ok(base)
            }
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } => Err(unsupported("a subquery", position(expr))),
            SqlExpr::Wildcard(_) | SqlExpr::QualifiedWildcard(..) => {
                Err(SqlError::semantic("`*` can only be a SELECT item or a function argument", position(expr)))
            }
            other => Err(unsupported(format!("the expression `{other}`"), position(other))),
        }
    }

    fn unary(&mut self, op: &UnaryOperator, operand: &SqlExpr, whole: &SqlExpr) -> Result<Expr, SqlError> {
        let op = match op {
            UnaryOperator::Minus => UnaryOp::Neg,
            UnaryOperator::Plus => UnaryOp::Plus,
            UnaryOperator::Not => UnaryOp::Not,
            other => return Err(unsupported(format!("the operator `{other}`"), position(whole))),
        };
        // `-9223372036854775808` only fits as a whole.
        if let (UnaryOp::Neg, SqlExpr::Value(value)) = (op, operand)
            && matches!(value.value, SqlValue::Number(..))
        {
            return literal(value, true).map(Expr::Literal);
        }
        let operand = self.expr(operand)?;
        if let Expr::Literal(v @ (Value::Int(_) | Value::Float(_))) = &operand
            && op != UnaryOp::Not
            && let Ok(folded) = ops::unary(op, v.clone())
        {
            return Ok(Expr::Literal(folded));
        }
        Ok(Expr::Unary(op, Box::new(operand)))
    }

    /// `[NOT] LIKE` / `[NOT] ILIKE`, with an optional `ESCAPE`.
    fn like(&mut self, whole: &SqlExpr) -> Result<Expr, SqlError> {
        let (negated, any, value, pattern, escape, case_insensitive) = match whole {
            SqlExpr::Like { negated, any, expr, pattern, escape_char } => {
                (*negated, *any, expr.as_ref(), pattern.as_ref(), escape_char.as_deref(), false)
            }
            SqlExpr::ILike { negated, any, expr, pattern, escape_char } => {
                (*negated, *any, expr.as_ref(), pattern.as_ref(), escape_char.as_deref(), true)
            }
            other => return Err(unsupported(format!("the expression `{other}`"), position(other))),
        };
        if any {
            return Err(unsupported("LIKE ANY", position(whole)));
        }
        let escape = match escape {
            None => None,
            Some(SqlExpr::Value(ValueWithSpan {
                value: SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s),
                ..
            })) if s.chars().count() == 1 => s.chars().next(),
            Some(other) => {
                return Err(SqlError::semantic("ESCAPE must be a single-character string", position(other)));
            }
        };
        let value = self.expr(value)?;
        let pattern = match self.expr(pattern)? {
            Expr::Literal(Value::String(source)) => LikePattern::Compiled {
                regex: compile_like(&source, escape, case_insensitive)
                    .map_err(|message| SqlError::semantic(message, position(pattern)))?,
                source,
                case_insensitive,
            },
            Expr::Literal(v) if !v.is_null() => {
                return Err(SqlError::semantic(
                    format!("a LIKE pattern must be a string, got {}", v.type_name()),
                    position(pattern),
                ));
            }
            dynamic => LikePattern::Dynamic { expr: Box::new(dynamic), escape, case_insensitive },
        };
        Ok(Expr::Like { expr: Box::new(value), pattern, negated })
    }
}

fn nested_aggregate(inner: &str, outer: &str, at: Option<Position>) -> SqlError {
    SqlError::semantic(format!("aggregate function `{inner}` cannot be used inside aggregate function `{outer}`"), at)
}

fn binary_op(op: &BinaryOperator) -> Option<BinaryOp> {
    Some(match op {
        BinaryOperator::Plus => BinaryOp::Add,
        BinaryOperator::Minus => BinaryOp::Sub,
        BinaryOperator::Multiply => BinaryOp::Mul,
        BinaryOperator::Divide => BinaryOp::Div,
        BinaryOperator::Modulo => BinaryOp::Mod,
        BinaryOperator::StringConcat => BinaryOp::Concat,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::BitwiseAnd => BinaryOp::BitAnd,
        BinaryOperator::BitwiseOr => BinaryOp::BitOr,
        BinaryOperator::BitwiseXor => BinaryOp::BitXor,
        _ => return None,
    })
}

/// A literal's value; `negative` for a number under a unary minus.
fn literal(value: &ValueWithSpan, negative: bool) -> Result<Value, SqlError> {
    let at = position(value);
    match &value.value {
        SqlValue::Number(text, _) => {
            let signed = if negative { format!("-{text}") } else { text.clone() };
            if text.bytes().all(|b| b.is_ascii_digit()) {
                signed
                    .parse::<i64>()
                    .map(Value::Int)
                    .map_err(|_| SqlError::semantic(format!("the integer {signed} does not fit in a bigint"), at))
            } else {
                match signed.parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(Value::Float(x)),
                    _ => Err(SqlError::semantic(format!("invalid number {signed}"), at)),
                }
            }
        }
        SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Ok(Value::string(s.as_str())),
        SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
        SqlValue::Null => Ok(Value::Null),
        other => Err(unsupported(format!("the literal `{other}`"), at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::test_util::*;

    fn at(line: u64, column: u64) -> Option<Position> {
        Some(Position::new(line, column))
    }

    fn demo() -> Vec<SourceSchema> {
        vec![SourceSchema::new("demo", demo_fields())]
    }

    fn error(sql: &str, sources: &[SourceSchema]) -> SqlError {
        match compile_with(sql, sources) {
            Ok(e) => panic!("{sql}: expected an error, got {e}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_field_of_a_declared_stream_has_its_position_and_the_fields() {
        let e = error("SELECT temp + nope FROM demo", &demo());
        assert_eq!(e.position(), at(1, 15));
        assert_eq!(e.message(), "unknown field `nope` in `demo`; its fields are temp, hum, name, loc, tags, id");
        let e = error("SELECT\n  upper(  Nme) FROM demo", &demo());
        assert_eq!(e.position(), at(2, 11));
    }

    #[test]
    fn declared_fields_resolve_ignoring_case_and_schemaless_accepts_anything() {
        let e = compile_with("SELECT TEMP FROM demo", &demo()).unwrap();
        assert!(matches!(e, Expr::Column { ref name, qualifier: None } if &**name == "temp"));
        let e = compile_with("SELECT whatever FROM demo", &[SourceSchema::schemaless("demo")]).unwrap();
        assert_eq!(e.to_string(), "whatever");
        let e =
            compile_with("SELECT d.temp FROM demo AS d", &[SourceSchema::new("demo", demo_fields()).with_alias("d")]);
        assert_eq!(e.unwrap().to_string(), "d.temp");
    }

    #[test]
    fn struct_fields_are_checked() {
        assert_eq!(compile_with("SELECT loc->lat FROM demo", &demo()).unwrap().to_string(), "loc->lat");
        assert_eq!(compile_with("SELECT loc.LNG FROM demo", &demo()).unwrap().to_string(), "loc->lng");
        let e = error("SELECT loc->alt FROM demo", &demo());
        assert_eq!(e.message(), "`loc` has no field `alt`; its fields are lat, lng");
        assert_eq!(e.position(), at(1, 13));
        let e = error("SELECT demo.loc.alt FROM demo", &demo());
        assert_eq!(e.position(), at(1, 17));
    }

    #[test]
    fn joins_qualify_and_detect_ambiguity() {
        let sources = vec![
            SourceSchema::new("demo", demo_fields()),
            SourceSchema::new(
                "lookup",
                vec![Field::new("id", FieldType::Bigint), Field::new("label", FieldType::String)],
            )
            .with_alias("t"),
        ];
        let sql = |e: &str| format!("SELECT {e} FROM demo JOIN lookup AS t ON demo.id = t.id");
        assert_eq!(compile_with(&sql("label"), &sources).unwrap().to_string(), "t.label");
        assert_eq!(compile_with(&sql("temp"), &sources).unwrap().to_string(), "demo.temp");
        assert_eq!(compile_with(&sql("t.id"), &sources).unwrap().to_string(), "t.id");
        assert_eq!(compile_with(&sql("lookup.id"), &sources).unwrap().to_string(), "t.id", "the name works too");
        let e = error(&sql("id"), &sources);
        assert_eq!(e.message(), "field `id` is ambiguous: demo, t all have it; qualify it, as in demo.id");
        assert_eq!(e.position(), at(1, 8));
        let e = error(&sql("nope"), &sources);
        assert_eq!(e.message(), "unknown field `nope`: none of demo, t has it");
        let e = error(&sql("t.temp"), &sources);
        assert!(e.message().starts_with("unknown field `temp` in `t`"), "{e}");
        assert_eq!(e.position(), at(1, 10));
        let e = error(&sql("x.temp"), &sources);
        assert!(e.message().contains("no source is named `x`"), "{e}");
        // A schemaless source makes unknown names acceptable (read at runtime).
        let mixed = vec![SourceSchema::new("demo", demo_fields()), SourceSchema::schemaless("t")];
        assert_eq!(compile_with(&sql("anything"), &mixed).unwrap().to_string(), "anything");
    }

    #[test]
    fn unknown_function_and_bad_arity() {
        let e = error("SELECT nosuch(temp) FROM demo", &demo());
        assert_eq!(e.message(), "unknown function `nosuch`");
        assert_eq!(e.position(), at(1, 8));
        let e = error("SELECT\n   upper(name, name) FROM demo", &demo());
        assert_eq!(e.message(), "function upper takes 1 argument(s), got 2");
        assert_eq!(e.position(), at(2, 4));
        let e = error("SELECT window_start(1) FROM demo", &demo());
        assert!(e.message().contains("takes 0 argument(s)"), "{e}");
        let e = error("SELECT meta(1) FROM demo", &demo());
        assert!(e.message().starts_with("meta() takes one metadata key"), "{e}");
        let e = error("SELECT meta(x.topic) FROM demo", &demo());
        assert!(e.message().starts_with("unknown source `x`"), "{e}");
    }

    #[test]
    fn validate_sees_literal_arguments() {
        assert!(compile_with("SELECT pick(tags, 1) FROM demo", &demo()).is_ok());
        assert!(compile_with("SELECT pick(tags, temp) FROM demo", &demo()).is_ok(), "not a literal");
        assert!(compile_with("SELECT pick(tags, -1) FROM demo", &demo()).is_ok(), "folded negative literal");
        let e = error(r#"SELECT pick(tags, "x") FROM demo"#, &demo());
        assert_eq!(e.message(), "pick: the index must be a bigint, got string");
        assert_eq!(e.position(), at(1, 8));
    }

    #[test]
    fn nested_aggregates_are_refused() {
        let e = error("SELECT mysum(temp + mysum(temp)) FROM demo", &demo());
        assert_eq!(e.message(), "aggregate function `mysum` cannot be used inside aggregate function `mysum`");
        assert_eq!(e.position(), at(1, 21));
        assert!(compile_with("SELECT mysum(temp) + mysum(hum) FROM demo", &demo()).unwrap().contains_aggregate());
        assert!(compile_with("SELECT upper(mysum(temp)) FROM demo", &demo()).is_ok());
        assert!(!compile_with("SELECT upper(name) FROM demo", &demo()).unwrap().contains_aggregate());
        let e = compile_with("SELECT 1 + count(*) FROM demo", &demo()).unwrap();
        assert_eq!(e.first_aggregate(), Some(("count", at(1, 12))));
        assert_eq!(e.to_string(), "(1 + count(*))");
    }

    #[test]
    fn unsupported_syntax() {
        let cases = [
            ("SELECT (SELECT 1) FROM demo", "a subquery is not supported"),
            ("SELECT temp IN (SELECT 1) FROM demo", "a subquery is not supported"),
            ("SELECT mysum(DISTINCT temp) FROM demo", "DISTINCT (in the call of mysum) is not supported"),
            ("SELECT mysum(temp) OVER () FROM demo", "OVER"),
            ("SELECT name SIMILAR TO 'a' FROM demo", "not supported"),
            ("SELECT tags[0:2:1] FROM demo", "a slice with a step is not supported"),
            ("SELECT temp XOR temp FROM demo", "the operator `XOR` is not supported"),
            ("SELECT ~temp FROM demo", "not supported"),
            ("SELECT x'AB' FROM demo", "not supported"),
            ("SELECT 99999999999999999999 FROM demo", "does not fit in a bigint"),
            (r#"SELECT name LIKE 3 FROM demo"#, "a LIKE pattern must be a string"),
            (r#"SELECT name LIKE "a" ESCAPE "ab" FROM demo"#, "ESCAPE must be a single-character string"),
            (r#"SELECT CASE WHEN 1 THEN 2 END FROM demo"#, "a WHEN condition must be boolean"),
        ];
        for (sql, message) in cases {
            let e = error(sql, &[SourceSchema::schemaless("demo")]);
            assert!(e.message().contains(message), "{sql}: {e}");
            assert!(e.position().is_some(), "{sql}: {e}");
        }
    }

    #[test]
    fn literals_fold_and_display() {
        let e = |sql: &str| compile_with(&format!("SELECT {sql} FROM demo"), &demo()).unwrap();
        assert!(matches!(e("-5"), Expr::Literal(Value::Int(-5))));
        assert!(matches!(e("-(2.5)"), Expr::Literal(Value::Float(x)) if x == -2.5));
        assert!(matches!(e("+3"), Expr::Literal(Value::Int(3))));
        assert!(matches!(e("-temp"), Expr::Unary(UnaryOp::Neg, _)));
        assert_eq!(
            e(r#"CASE name WHEN "a\"b" THEN 1.0 ELSE -temp END"#).to_string(),
            r#"CASE name WHEN "a\"b" THEN 1.0 ELSE -temp END"#
        );
        assert_eq!(
            e("temp NOT BETWEEN 1 AND 2 OR temp IN (3)").to_string(),
            "(temp NOT BETWEEN 1 AND 2 OR temp IN (3))"
        );
        assert_eq!(e(r#"name NOT LIKE "a%""#).to_string(), r#"name NOT LIKE "a%""#);
        assert_eq!(e("tags[1:]").to_string(), "tags[1:]");
        assert_eq!(e("meta(topic)").to_string(), "meta(topic)");
        let schemaless = compile_with("SELECT `my field` IS NOT NULL FROM demo", &[SourceSchema::schemaless("demo")]);
        assert_eq!(schemaless.unwrap().to_string(), "`my field` IS NOT NULL");
    }
}
