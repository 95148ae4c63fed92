//! The runtimes that calls to plugins and services run on. [`IoRuntime`]:
//! the tokio runtime that external services' and plugin processes'
//! connections live on, and the bridge from a synchronous call to it;
//! and [`CallRuntime`], a runtime that the threads waiting on it drive
//! themselves, for single round trips where a hand-off between threads is
//! most of the cost.
//!
//! The engine calls such a function once per batch of events
//! (`Function::call_batch`, which returns a future: an external function
//! runs the batch's calls concurrently, a portable plugin sends it as one
//! message), and the rule's task awaits it:
//!
//! - an external function's batch is a future of this runtime
//!   ([`IoRuntime::run`]); on the engine's own runtime ([`IoRuntime::on`])
//!   the rule's task polls it itself, and no thread hands the calls to
//!   another;
//! - a portable plugin's batch runs on a blocking thread that drives a
//!   [`CallRuntime`] itself while it waits ([`CallRuntime::block`]): the
//!   answer wakes no thread but the caller's.
//!
//! A single call made outside a batch (a join's `ON`) blocks the thread
//! that evaluates it, until the answer or the deadline: `IoRuntime::block`
//! spawns the work on that runtime and waits for it, `CallRuntime::block`
//! drives it. Both wait inside `block_in_place` when the caller is a worker
//! of a multi-threaded runtime (so the caller's other tasks move to another
//! thread and the server keeps serving).

mod call_runtime;
mod io_runtime;

pub use call_runtime::CallRuntime;
pub use io_runtime::IoRuntime;
