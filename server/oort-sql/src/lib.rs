//! Parsing of eKuiper-dialect SQL for Oort: stream DDL and rule queries.
//!
//! This crate turns SQL text into typed values and reports errors with the
//! line and column of the offending token. It knows nothing of the runtime,
//! storage or the API; planning and evaluation live elsewhere.
//!
//! # Entry points
//!
//! * [`parse_stream_ddl`]: `CREATE STREAM` / `CREATE TABLE` → [`StreamDef`].
//! * [`parse_rule_sql`]: a rule's `SELECT` → [`RuleQuery`], which keeps the
//!   [`sqlparser`] AST for the planner together with its [`SourceRef`]s and
//!   its [`WindowSpec`].
//!
//! Both return [`SqlError`], whose [`position`](SqlError::position) is the
//! 1-based [`Position`] of the problem whenever it is known.
//!
//! # Module map
//!
//! | module      | concept                                                        |
//! |-------------|----------------------------------------------------------------|
//! | `error`     | [`SqlError`] and [`Position`]; parsing sqlparser's locations    |
//! | `dialect`   | [`EkuiperDialect`]: backtick identifiers, `"strings"`, `->`, `[i]` |
//! | `cursor`    | token cursor for the hand-written DDL grammar (private)        |
//! | `types`     | [`FieldType`] and [`Field`], with canonical `Display`          |
//! | `ddl`       | [`StreamDef`], [`StreamKind`], [`option_key`], [`parse_stream_ddl`] |
//! | `window`    | [`TimeUnit`] and [`WindowSpec`], read from `GROUP BY`          |
//! | `rule`      | [`RuleQuery`], [`SourceRef`], [`parse_rule_sql`]               |
//! | `limits`    | depth and operator bounds, checked before anything recurses   |
//! | `over`      | eKuiper's `OVER (… WHEN cond)`, carried through sqlparser      |
//!
//! # Dialect notes
//!
//! In eKuiper, `"text"` is a string literal and `` `name` `` a quoted
//! identifier. The sqlparser AST therefore contains
//! `Value::DoubleQuotedString` for double-quoted literals; consumers must
//! treat it exactly like `Value::SingleQuotedString`. `a->b` is
//! `BinaryOperator::Arrow` with a plain identifier on the right, binding as
//! tightly as `[i]` subscripts (see [`EkuiperDialect`]).
//!
//! The [`sqlparser`] crate is re-exported so downstream crates use the same
//! AST version.

#![warn(missing_docs)]

mod cursor;
mod ddl;
mod dialect;
mod error;
mod limits;
mod over;
mod rule;
mod types;
mod window;

pub use sqlparser;

pub use ddl::{OptionPositions, StreamDef, StreamKind, option_key, parse_stream_ddl, parse_stream_ddl_with_positions};
pub use dialect::EkuiperDialect;
pub use error::{Position, SqlError};
pub use limits::{MAX_EXPRESSION_DEPTH, MAX_OPERATORS};
pub use over::{WHEN_MARKER, when_condition};
pub use rule::{RuleQuery, SourceRef, parse_rule_sql};
pub use types::{Field, FieldType};
pub use window::{TimeUnit, WindowSpec};
