//! Oort's streaming engine. It knows nothing of gRPC, sled or plugins: it sees
//! values, rows, and functions from a registry.
//!
//! - [`value`]: [`Value`], the dynamically typed value of a column.
//! - [`row`]: [`Row`], one event flowing through a rule.
//! - [`function`]: the [`Function`] trait and the [`FunctionRegistry`] that
//!   built-in, native, portable and external functions all register in.
//! - [`connector`]: the [`Source`] and [`Sink`] traits and their [`ConnectorRegistry`].
//! - [`expr`]: rule SQL expressions compiled to an [`Expr`] tree and evaluated against rows;
//!   [`analytic`]: the analytic functions (`lag`, `acc_sum`, ...), evaluated per event with state.
//! - [`json`]: JSON decoding of events and encoding of results.
//! - [`metrics`]: per-operator counters for rule status.
//! - [`rule`]: [`RuleDefinition`], what the engine is asked to run; [`delivery`]: what its results survive;
//!   [`checkpoint`]: the state a rule saves to survive a restart.
//! - [`plan`]: rule SQL → a validated [`RulePlan`]; [`decode`]: events → rows.
//! - [`runtime`]: the tasks of a running rule; [`engine`]: [`Engine`], all of them.

pub mod analytic;
pub mod checkpoint;
pub mod connector;
/// The stack of every thread that plans, compiles or evaluates rules (the
/// server's runtime, the runtimes of plugin and external calls). Planning and evaluation
/// recurse over expressions, which `oort_sql` bounds at
/// [`oort_sql::MAX_EXPRESSION_DEPTH`] levels; a debug build needs about 12 KiB
/// a level, tokio's default of 2 MiB held 150. 16 MiB is address space, not
/// memory: stack pages are only committed as they are touched.
pub const THREAD_STACK_BYTES: usize = 16 << 20;
pub mod decode;
pub mod delivery;
mod durable;
pub mod engine;
pub mod expr;
pub mod function;
pub mod functions;
pub mod group;
pub mod join;
pub mod json;
pub mod metrics;
pub mod plan;
pub mod row;
pub mod rule;
pub mod runtime;
pub mod sink_batch;
pub mod sink_cache;
pub mod sink_props;
pub mod value;
pub mod window;

pub use checkpoint::{Checkpoint, CheckpointStore};
pub use connector::{
    BufferFull, ConnectorError, ConnectorInfo, ConnectorOption, ConnectorRegistry, EVERY_SINK_OPTIONS, Lookup,
    MAX_LOOKUP_ROWS, MESSAGE_KEY_META, OptionKind, PARTITION_META, PARTITION_START_META, Partitioning, Payload,
    ROWKIND_META, RuleGone, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, SourcePositions, check_options,
};
pub use delivery::{Delivery, Guarantee};
pub use engine::{Engine, EngineError};
pub use expr::{
    CompileContext, EvalEnv, EvalError, Expr, JoinedRow, Projection, ProjectionColumn, SourceSchema, Tuple, compile,
    compile_projection, compile_with_aliases,
};
pub use function::{
    BatchAnswers, BatchCall, CallContext, Calling, Function, FunctionError, FunctionKind, FunctionMeta, FunctionOrigin,
    FunctionRegistry,
};
pub use functions::keyed_state::{KeyedStateStore, keyed_state_function};
pub use functions::register_builtins;
pub use metrics::{OperatorMetrics, OperatorStatus};
pub use plan::{Distribution, PlanError, RulePlan, StreamLookup};
pub use row::Row;
pub use rule::{ActionDefinition, RestartStrategy, RuleDefinition, RuleOptions};
pub use runtime::{Results, RuleState, RuleStatus};
pub use value::{Map, Value};
pub use window::{TimeMode, Verdict, WindowBatch, WindowConditions, WindowOperator, WindowSnapshot};
