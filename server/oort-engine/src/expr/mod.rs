//! The expression layer: rule SQL expressions (the sqlparser AST from
//! `oort-sql`) compiled into a typed, validated [`Expr`] tree, and evaluated
//! against rows.
//!
//! # Map
//!
//! | module       | what                                                                                   |
//! |--------------|----------------------------------------------------------------------------------------|
//! | `tree`       | [`Expr`], [`Call`], [`BinaryOp`], [`UnaryOp`], [`LikePattern`]; `Display` as SQL text    |
//! | `compile`    | [`CompileContext`], [`SourceSchema`], [`compile`], [`compile_with_aliases`]              |
//! | `projection` | [`Projection`], [`ProjectionColumn`], [`compile_projection`]; output column naming      |
//! | `eval`       | [`Expr::eval`] (one row) and [`Expr::eval_group`] (a window or group)                   |
//! | `batch`      | [`Expr::eval_batch`]: a batch of rows, plugin and external calls made once per batch    |
//! | `ops`        | operator semantics: arithmetic, comparison, logic, bitwise, `IN`, `BETWEEN`            |
//! | `like`       | `LIKE` patterns to regular expressions                                                 |
//! | `tuple`      | [`Tuple`], what an expression reads; implemented by [`Row`](crate::Row) and [`JoinedRow`] |
//! | (here)       | [`EvalEnv`], [`EvalError`]                                                             |
//!
//! # Entry points
//!
//! ```text
//! compile(&sql_expr, &ctx)                         -> Result<Expr, SqlError>       WHERE, GROUP BY, ON
//! compile_with_aliases(&sql_expr, &ctx, &proj)     -> Result<Expr, SqlError>       HAVING, ORDER BY
//! compile_projection(&select.projection, &ctx)     -> Result<Projection, SqlError> SELECT list
//! expr.eval(&row, &env)                            -> Result<Value, EvalError>     per event
//! expr.eval_group(&rows, &env)                     -> Result<Value, EvalError>     per window / group
//! expr.eval_batch(&rows, &env)                     -> Vec<Result<Value, EvalError>> per batch of events
//! projection.eval(&row, &env) / .eval_group(..)    -> Result<Map, EvalError>
//! expr.contains_aggregate(), projection.has_aggregate()
//! ```
//!
//! # Compile-time checks
//!
//! Every error is a [`SqlError::Semantic`](oort_sql::SqlError) with the
//! position of the offending token: an unknown field of a source that has a
//! schema (the message names the source and lists its fields), a field that
//! two joined sources both declare and that is not qualified, an unknown
//! source qualifier in `src.*`, an unknown function, a call the function's
//! [`validate`](crate::Function::validate) refuses (arity, literal arguments),
//! an aggregate inside an aggregate, a missing field of a declared `STRUCT`,
//! a circular reference between SELECT aliases, and SQL that eKuiper does not
//! have (subqueries, `OVER`, `DISTINCT` arguments, ...: "... is not supported").
//!
//! # Semantics (eKuiper's, with the choices made)
//!
//! * **Name resolution.** `src.col` reads `col` of the source named or aliased
//!   `src`; `a.b` where `a` is not a source means `a->b` (eKuiper). Unqualified
//!   names in a join resolve to the one source whose schema declares them.
//!   Field names match exactly, else case-insensitively (eKuiper looks fields
//!   up case-insensitively). Unquoted `self` is the whole row as a map.
//!   In the SELECT list, a name that is the alias of another SELECT item means
//!   that item's expression (`SELECT a + 1 AS s1, s1 + 1 AS s2`), and in
//!   HAVING / ORDER BY ([`compile_with_aliases`]) an output column name wins
//!   over a source column, as in eKuiper; in WHERE
//!   ([`compile_with_select_aliases`]) an alias (`AS name`) does. An item's own alias names the source
//!   column inside that item (`SELECT a + 1 AS a`).
//! * **NULL.** A missing field is NULL. Arithmetic, bitwise, `||`, unary
//!   operators, `->`, `[i]`, `IN` and `LIKE` give NULL when an operand is NULL.
//!   Comparisons follow eKuiper's `simpleDataEval` and always give a boolean:
//!   `NULL = NULL`, `NULL <= NULL`, `NULL >= NULL` are true, `x != NULL` is
//!   true for non-null `x`, every other comparison involving NULL is false.
//!   `AND`/`OR`/`NOT` are three-valued (SQL); WHERE/HAVING keep a row only when
//!   the result is `true`.
//! * **Numbers.** `bigint op bigint` stays `bigint`, including `/` (integer
//!   division truncating toward zero, as eKuiper); any float operand makes the
//!   result a float. Division or modulo by zero is [`EvalError::DivisionByZero`]
//!   (eKuiper: "divided by zero"); integer overflow and a non-finite float
//!   result are [`EvalError::Overflow`] (eKuiper wraps silently: Oort refuses).
//!   Comparisons mix `bigint` and `float`; strings compare by bytes; datetimes
//!   compare with datetimes, Unix-millisecond integers and RFC 3339 strings.
//!   Operands of other, mismatched types are an [`EvalError::Type`]
//!   ("invalid operation", as eKuiper).
//! * **`->`** on a map gives the field, NULL when it is missing or the value
//!   is not a map (eKuiper's project tests). **`[i]`** counts from 0, negative
//!   from the end; an index out of range or a value that is not an array gives
//!   NULL (eKuiper errors with "out of index"; Oort follows the brief: NULL).
//!   **`[a:b]`** slices (end excluded, negative from the end, clamped).
//! * **Calls.** `window_start()` / `window_end()` are the window bounds in Unix
//!   milliseconds (`bigint`, eKuiper), NULL outside a window; `meta(key)` reads
//!   the source metadata (`meta(*)` all of it, `meta(src.key)` one source's).
//!   Aggregate arguments are evaluated over every row of the group and passed
//!   as one `Value::List` per argument; `count(*)` passes a list of `1` per
//!   row. Outside aggregates, columns read the group's first row (eKuiper).
//!   In a per-event context an aggregate sees a group of one row.
//! * **Projection.** Output names: the alias; else a column's name; else the
//!   function's name (`avg`); else `kuiper_field_N`, numbered among unnamed
//!   items. `*` (and `src.*`) copy the row's fields first; named columns are
//!   then set in SELECT order, so a later duplicate name wins over an earlier
//!   one and over `*`. A column whose value is NULL is left out of the output
//!   map, as eKuiper does.

mod batch;
mod changed_cols;
mod compile;
mod eval;
mod like;
mod ops;
mod projection;
mod row_number;
mod tree;
mod tuple;

#[cfg(test)]
mod test_util;

pub(crate) use batch::eval_rows;
pub use changed_cols::{ChangedCols, ChangedItem};
pub use compile::{CompileContext, SourceSchema, compile, compile_with_aliases, compile_with_select_aliases};
pub use ops::SortOrder;
pub(crate) use projection::check_no_set_returning;
pub use projection::{Projection, ProjectionColumn, SetReturning, compile_projection};
pub use row_number::RowNumber;
pub(crate) use tree::last_hit_name;
pub use tree::{BinaryOp, Call, CallId, Expr, LikePattern, UnaryOp};
pub use tuple::{JoinedRow, Tuple};

use crate::function::FunctionError;

/// What evaluation needs besides the row: the rule and the window, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalEnv<'a> {
    /// Id of the rule, passed to functions.
    pub rule_id: &'a str,
    /// The window being evaluated, as `(start, end)` in Unix milliseconds;
    /// `None` outside a window.
    pub window: Option<(i64, i64)>,
    /// The results of the batch's batched calls, when the row is evaluated
    /// as part of a batch ([`Expr::eval_batch`]).
    pub prefetch: Option<batch::Prefetch<'a>>,
    /// What `last_hit_*()` (per event) or `last_agg_hit_*()` (per window
    /// group) read: the rule's hits before this one; `None` in a rule
    /// without them.
    pub hits: Option<crate::analytic::Hits>,
}

/// Why an expression could not be evaluated for an event or a group. The rule
/// counts it as an error for that event and goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A function call failed.
    #[error(transparent)]
    Function(#[from] FunctionError),
    /// An operator got operands of types it does not take.
    #[error("invalid operation: {message}")]
    Type {
        /// What was attempted, e.g. `string("a") * bigint(3)`.
        message: String,
    },
    /// Division or modulo by zero.
    #[error("divided by zero")]
    DivisionByZero,
    /// An integer result does not fit in a `bigint`, or a float result is not finite.
    #[error("overflow: {message}")]
    Overflow {
        /// The operation that overflowed.
        message: String,
    },
    /// Another runtime problem (a bad dynamic `LIKE` pattern, a non-integer index).
    #[error("{0}")]
    Invalid(String),
}

/// How far one item's evaluation got in a batch: its value, or a [`Stop`].
pub(crate) type Step<T> = Result<T, Stop>;

/// Why an item's evaluation stopped before its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// It failed; the rule counts the error.
    Failed(EvalError),
    /// It reached a batched call whose answer is not there yet: the item is
    /// evaluated again once the batch's call is made (`batch`'s docs).
    Pending,
}

impl From<EvalError> for Stop {
    fn from(error: EvalError) -> Self {
        Stop::Failed(error)
    }
}

impl From<FunctionError> for Stop {
    fn from(error: FunctionError) -> Self {
        Stop::Failed(error.into())
    }
}

impl Stop {
    /// The error of an evaluation outside a batch, where no call is pending.
    pub(crate) fn into_error(self) -> EvalError {
        match self {
            Stop::Failed(error) => error,
            Stop::Pending => EvalError::Invalid("a batched call was never answered".into()),
        }
    }
}

impl EvalError {
    /// A type error with this message.
    pub fn type_error(message: impl Into<String>) -> Self {
        EvalError::Type { message: message.into() }
    }

    /// An overflow error with this message.
    pub fn overflow(message: impl Into<String>) -> Self {
        EvalError::Overflow { message: message.into() }
    }
}
