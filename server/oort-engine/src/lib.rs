//! Oort's streaming engine. It knows nothing of gRPC, sled or plugins: it sees
//! values, rows, and functions from a registry.
//!
//! - [`value`]: [`Value`], the dynamically typed value of a column.
//! - [`row`]: [`Row`], one event flowing through a rule.
//! - [`function`]: the [`Function`] trait and the [`FunctionRegistry`] that
//!   built-in, native, portable and external functions all register in.

pub mod function;
pub mod row;
pub mod value;

pub use function::{
    CallContext, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin, FunctionRegistry,
};
pub use row::Row;
pub use value::{Map, Value};
