//! [`IoRuntime`]: a tokio runtime that blocking-looking calls (external
//! services, portable plugins) run on, and the
//! bridge from the engine's synchronous `Function::call` to it.
//!
//! The engine evaluates a rule's expressions synchronously on its rule task,
//! calling such a function once per batch of events (`call_batch`: an external
//! function runs the batch's calls concurrently here, a portable plugin sends
//! it as one message). A batch therefore blocks that task until the answers,
//! or the deadline, whichever comes first: `block` spawns the work on this
//! runtime and waits for it, inside `block_in_place` when the caller is a
//! worker of a multi-threaded runtime (so the caller's other tasks move to
//! another thread and the server keeps serving).

use std::future::Future;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// Owns the runtime of external calls; shut down (without waiting) when dropped.
pub struct IoRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl IoRuntime {
    /// A runtime with `threads` workers, for external calls.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::named(threads, "oort-external")
    }

    /// A runtime with `threads` workers whose threads are called `name`.
    pub fn named(threads: usize, name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self { runtime: Some(runtime), handle })
    }

    /// The runtime's handle, to build clients inside it (`handle().enter()`).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` on this runtime and blocks the calling thread until it
    /// finishes. `None` if the runtime shut down meanwhile.
    pub fn block<F, T>(&self, future: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        let wait = move || rx.recv().ok();
        match Handle::try_current() {
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            // A current-thread runtime (tests) or no runtime: the call runs on
            // this runtime's threads, so blocking here cannot deadlock it.
            _ => wait(),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
