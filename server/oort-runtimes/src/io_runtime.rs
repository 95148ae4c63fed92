//! [`IoRuntime`]: the multi-threaded runtime that connections to services
//! and plugin processes live on, or the engine's own.

use std::future::Future;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// The runtime of external calls: one of its own, shut down (without
/// waiting) when dropped, or the engine's ([`IoRuntime::on`]).
pub struct IoRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl IoRuntime {
    /// A runtime with `threads` workers whose threads are called `name` and
    /// have stacks of `stack_bytes` (the engine's, since expressions are
    /// evaluated on them too).
    pub fn new(threads: usize, name: &str, stack_bytes: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_stack_size(stack_bytes)
            .thread_name(name)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self { runtime: Some(runtime), handle })
    }

    /// Calls on an existing runtime, the engine's own: a rule task that
    /// awaits them ([`IoRuntime::run`]) then shares their connections'
    /// threads and crosses none. It must be multi-threaded, since
    /// [`IoRuntime::block`] waits for it inside one of its tasks.
    ///
    /// # Panics
    /// If the runtime is a current-thread one.
    pub fn on(handle: Handle) -> Self {
        assert_eq!(handle.runtime_flavor(), RuntimeFlavor::MultiThread, "calls need a multi-threaded runtime");
        Self { runtime: None, handle }
    }

    /// `future` (which uses connections made in this runtime) as a future
    /// of the caller's: polled by the caller itself when this is the
    /// engine's runtime ([`IoRuntime::on`]), else spawned on this runtime's
    /// threads, where its connections are, and awaited. `None` if the runtime
    /// shut down meanwhile.
    pub fn run<F, T>(&self, future: F) -> BoxFuture<'static, Option<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if self.runtime.is_none() {
            future.map(Some).boxed()
        } else {
            self.handle.spawn(future).map(Result::ok).boxed()
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of the thread a future is polled on.
    async fn polled_on() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[test]
    fn run_polls_on_the_callers_runtime_when_it_is_the_engines_and_spawns_on_its_own_otherwise() {
        let engine = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("engine")
            .enable_all()
            .build()
            .unwrap();
        let shared = IoRuntime::on(engine.handle().clone());
        let own = IoRuntime::new(1, "own-io", 2 << 20).unwrap();
        let on = |io: &IoRuntime| {
            let run = io.run(polled_on());
            engine.block_on(engine.spawn(run)).unwrap().flatten()
        };
        assert_eq!(on(&shared).as_deref(), Some("engine"));
        assert_eq!(on(&own).as_deref(), Some("own-io"));
        // Blocking on the engine's runtime from one of its tasks, too.
        let blocked = engine.block_on(engine.spawn(async move { shared.block(polled_on()) })).unwrap().flatten();
        assert_eq!(blocked.as_deref(), Some("engine"));
    }

    #[test]
    #[should_panic(expected = "multi-threaded")]
    fn a_current_thread_runtime_cannot_be_the_engines() {
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = IoRuntime::on(current.handle().clone());
    }
}
