//! The compiled expression tree: [`Expr`] and its parts. `Display` renders
//! it back as SQL-like text (for EXPLAIN and error messages).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oort_sql::Position;
use regex::Regex;

use crate::function::{Function, FunctionKind};
use crate::value::Value;

/// A compiled, validated expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A constant.
    Literal(Value),
    /// A column: `name` or `qualifier.name`. The qualifier is the source's
    /// reference name (alias or name); `None` reads the only source, or the
    /// first part of a join that has the field.
    Column {
        /// Source name or alias.
        qualifier: Option<Arc<str>>,
        /// Field name.
        name: Arc<str>,
    },
    /// `base->name`: a field of a map.
    Field(Box<Expr>, Arc<str>),
    /// `base[index]`: an element of an array, negative indexes from the end.
    Index(Box<Expr>, Box<Expr>),
    /// `base[start:end]`: part of an array, end excluded.
    Slice {
        /// The array.
        base: Box<Expr>,
        /// First index, from the start when absent.
        start: Option<Box<Expr>>,
        /// Index after the last, to the end when absent.
        end: Option<Box<Expr>>,
    },
    /// `-x`, `+x`, `NOT x`.
    Unary(UnaryOp, Box<Expr>),
    /// `left op right`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        /// The value compared with each `WHEN` (simple form), or `None` (searched form).
        operand: Option<Box<Expr>>,
        /// `(WHEN, THEN)` pairs, in order.
        branches: Vec<(Expr, Expr)>,
        /// `ELSE`, NULL when absent.
        else_result: Option<Box<Expr>>,
    },
    /// `expr [NOT] IN array`: eKuiper's membership in an array value.
    InArray {
        /// The value looked for.
        expr: Box<Expr>,
        /// The array.
        array: Box<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `expr [NOT] IN (list)`.
    InList {
        /// The value looked for.
        expr: Box<Expr>,
        /// The candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `expr [NOT] BETWEEN low AND high` (bounds included).
    Between {
        /// The value tested.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `expr [NOT] LIKE pattern` (or `ILIKE`).
    Like {
        /// The string matched.
        expr: Box<Expr>,
        /// The pattern, compiled once when it is a literal.
        pattern: LikePattern,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `expr IS [NOT] NULL`.
    IsNull {
        /// The value tested.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// A function from the registry.
    Call(Box<Call>),
    /// `meta(key)` / `meta(src.key)`: a metadata value of the source, as a string.
    Meta {
        /// The source, for joins.
        qualifier: Option<Arc<str>>,
        /// The metadata key.
        key: Arc<str>,
    },
    /// `meta(*)`: all metadata as a map.
    MetaAll,
    /// `window_start()`: the window start in Unix milliseconds, NULL outside a window.
    WindowStart,
    /// `window_end()`: the window end in Unix milliseconds, NULL outside a window.
    WindowEnd,
    /// `event_time()`: the event's time in Unix milliseconds; over a window's
    /// rows (an aggregate), the window's end, as eKuiper.
    EventTime,
    /// `self`: the whole row as a map.
    SelfRow,
    /// `*` or `src.*` as a function argument: the row (or the source's part) as a map.
    Wildcard {
        /// The source, for `src.*`.
        qualifier: Option<Arc<str>>,
    },
    /// The `*` of `count(*)`: `1` for each row, so that `count` counts rows.
    CountStar,
    /// `last_hit_count()`, `last_hit_time()` and their `last_agg_hit_`
    /// forms: the rule's hits before this event or group ([`super::EvalEnv::hits`]).
    LastHit {
        /// `_time` rather than `_count`.
        time: bool,
        /// The `last_agg_hit_` form (for groups).
        aggregate: bool,
    },
    /// The result of the rule's analytic call in `slot` ([`crate::analytic`]),
    /// evaluated for each event before WHERE and kept in the row.
    Analytic {
        /// The call's index in [`crate::plan::RulePlan::analytics`].
        slot: usize,
        /// The function's name.
        name: &'static str,
        /// The call as SQL, for EXPLAIN.
        text: Arc<str>,
    },
}

/// A call site's identity, unique in the process: the key of its answers
/// when its calls are made per batch. Given by the compiler ([`Call::new`]);
/// a copy of the call (an inlined SELECT alias) keeps it, which is right,
/// since it makes the same calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(u64);

impl CallId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        CallId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A call of a registered function.
#[derive(Clone)]
pub struct Call {
    /// The call site.
    pub id: CallId,
    /// The function's name, lower-case.
    pub name: Arc<str>,
    /// The function.
    pub function: Arc<dyn Function>,
    /// The arguments.
    pub args: Vec<Expr>,
    /// Whether it is an aggregate (each argument becomes a list over the group).
    pub aggregate: bool,
    /// Whether its calls are made once per batch of rows or groups rather
    /// than one by one ([`Calling::is_batched`](crate::function::Calling::is_batched)).
    /// Calls of aggregates never are: their one call per group sees every row.
    pub batched: bool,
    /// Where the call is in the SQL.
    pub position: Option<Position>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("args", &self.args)
            .field("aggregate", &self.aggregate)
            .field("batched", &self.batched)
            .field("position", &self.position)
            .finish()
    }
}

impl Call {
    /// A call of `function` with `args`.
    pub fn new(function: Arc<dyn Function>, args: Vec<Expr>, position: Option<Position>) -> Self {
        let meta = function.meta();
        let aggregate = meta.kind == FunctionKind::Aggregate;
        Call {
            id: CallId::next(),
            name: Arc::from(meta.name.as_str()),
            aggregate,
            batched: !aggregate && meta.calling.is_batched(),
            function,
            args,
            position,
        }
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x` (checks that `x` is a number)
    Plus,
    /// `NOT x`
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `||` (string concatenation)
    Concat,
    /// `=`
    Eq,
    /// `!=` / `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
}

impl BinaryOp {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
        }
    }

    /// Whether this is one of the six comparisons.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq)
    }
}

/// The pattern of a `LIKE`.
#[derive(Debug, Clone)]
pub enum LikePattern {
    /// A literal pattern, compiled at plan time.
    Compiled {
        /// The pattern as written.
        source: Arc<str>,
        /// The anchored regular expression it became.
        regex: Regex,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// A pattern computed per row, compiled at each evaluation.
    Dynamic {
        /// The pattern expression.
        expr: Box<Expr>,
        /// The `ESCAPE` character; `\` when absent.
        escape: Option<char>,
        /// `ILIKE`.
        case_insensitive: bool,
    },
}

impl Expr {
    /// Whether an aggregate function is called anywhere in the expression.
    pub fn contains_aggregate(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if let Expr::Call(call) = e {
                found |= call.aggregate;
            }
        });
        found
    }

    /// The first aggregate call (in evaluation order), with its name and position.
    pub fn first_aggregate(&self) -> Option<(&str, Option<Position>)> {
        let mut found: Option<(&str, Option<Position>)> = None;
        self.walk(&mut |e| {
            if let (None, Expr::Call(call)) = (&found, e)
                && call.aggregate
            {
                found = Some((&call.name, call.position));
            }
        });
        found
    }

    /// Whether the expression reads nothing from rows or the window (only literals
    /// and scalar calls of literals).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            constant &= match e {
                Expr::Call(call) => !call.aggregate,
                Expr::Column { .. }
                | Expr::Meta { .. }
                | Expr::MetaAll
                | Expr::WindowStart
                | Expr::WindowEnd
                | Expr::EventTime
                | Expr::SelfRow
                | Expr::Wildcard { .. }
                | Expr::CountStar
                | Expr::LastHit { .. }
                | Expr::Analytic { .. } => false,
                _ => true,
            }
        });
        constant
    }

    /// Visits this node and every node below it, parents first.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Literal(_)
            | Expr::Column { .. }
            | Expr::Meta { .. }
            | Expr::MetaAll
            | Expr::WindowStart
            | Expr::WindowEnd
            | Expr::EventTime
            | Expr::SelfRow
            | Expr::Wildcard { .. }
            | Expr::CountStar
            | Expr::LastHit { .. }
            | Expr::Analytic { .. } => {}
            Expr::Field(base, _) => base.walk(visit),
            Expr::Index(base, index) => {
                base.walk(visit);
                index.walk(visit);
            }
            Expr::Slice { base, start, end } => {
                base.walk(visit);
                start.iter().chain(end).for_each(|e| e.walk(visit));
            }
            Expr::Unary(_, e) | Expr::IsNull { expr: e, .. } => e.walk(visit),
            Expr::Binary(_, l, r) => {
                l.walk(visit);
                r.walk(visit);
            }
            Expr::Case { operand, branches, else_result } => {
                operand.iter().for_each(|e| e.walk(visit));
                for (w, t) in branches {
                    w.walk(visit);
                    t.walk(visit);
                }
                else_result.iter().for_each(|e| e.walk(visit));
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(visit);
                list.iter().for_each(|e| e.walk(visit));
            }
            Expr::InArray { expr, array, .. } => {
                expr.walk(visit);
                array.walk(visit);
            }
            Expr::Between { expr, low, high, .. } => {
                expr.walk(visit);
                low.walk(visit);
                high.walk(visit);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(visit);
                if let LikePattern::Dynamic { expr, .. } = pattern {
                    expr.walk(visit);
                }
            }
            Expr::Call(call) => call.args.iter().for_each(|e| e.walk(visit)),
        }
    }
}

/// Writes an identifier bare when it is a plain word, else in backticks.
pub(crate) fn write_ident(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let mut chars = name.chars();
    let plain =
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_');
    if plain { f.write_str(name) } else { write!(f, "`{}`", name.replace('`', "``")) }
}

fn write_literal(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::String(s) => write!(f, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Float(x) if x.fract() == 0.0 && x.is_finite() => write!(f, "{x:.1}"),
        other => write!(f, "{other}"),
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

/// SQL-like text; binary operations are parenthesized so the grouping is explicit.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => write_literal(f, v),
            Expr::Column { qualifier, name } => {
                if let Some(q) = qualifier {
                    write_ident(f, q)?;
                    f.write_str(".")?;
                }
                write_ident(f, name)
            }
            Expr::Field(base, name) => {
                write!(f, "{base}->")?;
                write_ident(f, name)
            }
            Expr::Index(base, index) => write!(f, "{base}[{index}]"),
            Expr::Slice { base, start, end } => {
                write!(f, "{base}[")?;
                if let Some(s) = start {
                    write!(f, "{s}")?;
                }
                f.write_str(":")?;
                if let Some(e) = end {
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
            Expr::Unary(UnaryOp::Neg, e) => write!(f, "-{e}"),
            Expr::Unary(UnaryOp::Plus, e) => write!(f, "+{e}"),
            Expr::Unary(UnaryOp::Not, e) => write!(f, "NOT {e}"),
            Expr::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Case { operand, branches, else_result } => {
                f.write_str("CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in branches {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_result {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::InList { expr, list, negated } => {
                write!(f, "{expr} {}IN (", if *negated { "NOT " } else { "" })?;
                write_list(f, list)?;
                f.write_str(")")
            }
            Expr::InArray { expr, array, negated } => {
                write!(f, "{expr} {}IN {array}", if *negated { "NOT " } else { "" })
            }
            Expr::Between { expr, low, high, negated } => {
                write!(f, "{expr} {}BETWEEN {low} AND {high}", if *negated { "NOT " } else { "" })
            }
            Expr::Like { expr, pattern, negated } => {
                let not = if *negated { "NOT " } else { "" };
                match pattern {
                    LikePattern::Compiled { source, case_insensitive, .. } => {
                        write!(f, "{expr} {not}{} ", if *case_insensitive { "ILIKE" } else { "LIKE" })?;
                        write_literal(f, &Value::String(source.clone()))
                    }
                    LikePattern::Dynamic { expr: p, case_insensitive, .. } => {
                        write!(f, "{expr} {not}{} {p}", if *case_insensitive { "ILIKE" } else { "LIKE" })
                    }
                }
            }
            Expr::IsNull { expr, negated } => write!(f, "{expr} IS {}NULL", if *negated { "NOT " } else { "" }),
            Expr::Call(call) => {
                write!(f, "{}(", call.name)?;
                write_list(f, &call.args)?;
                f.write_str(")")
            }
            Expr::Meta { qualifier, key } => {
                f.write_str("meta(")?;
                if let Some(q) = qualifier {
                    write_ident(f, q)?;
                    f.write_str(".")?;
                }
                write_ident(f, key)?;
                f.write_str(")")
            }
            Expr::MetaAll => f.write_str("meta(*)"),
            Expr::WindowStart => f.write_str("window_start()"),
            Expr::WindowEnd => f.write_str("window_end()"),
            Expr::EventTime => f.write_str("event_time()"),
            Expr::SelfRow => f.write_str("self"),
            Expr::Wildcard { qualifier: Some(q) } => {
                write_ident(f, q)?;
                f.write_str(".*")
            }
            Expr::Wildcard { qualifier: None } | Expr::CountStar => f.write_str("*"),
            Expr::Analytic { text, .. } => f.write_str(text),
            Expr::LastHit { time, aggregate } => write!(f, "{}()", last_hit_name(*time, *aggregate)),
        }
    }
}

/// The SQL name of a [`Expr::LastHit`].
pub(crate) fn last_hit_name(time: bool, aggregate: bool) -> &'static str {
    match (aggregate, time) {
        (false, false) => "last_hit_count",
        (false, true) => "last_hit_time",
        (true, false) => "last_agg_hit_count",
        (true, true) => "last_agg_hit_time",
    }
}
