//! [`IoRuntime`]: a tokio runtime that blocking-looking calls (external
//! services, portable plugins) run on, and the
//! bridge from the engine's synchronous `Function::call` to it.
//!
//! The engine evaluates a rule's expressions synchronously on its rule task,
//! calling such a function once per batch of events (`call_batch`: an external
//! function runs the batch's calls concurrently here, a portable plugin sends
//! it as one message). A batch therefore blocks that task until the answers,
//! or the deadline, whichever comes first: `block` spawns the work on this
//! runtime and waits for it, `block_here` polls it on the calling thread in
//! this runtime's context (for single short round trips: no hand-off between
//! threads); both wait inside `block_in_place` when the caller is a worker of
//! a multi-threaded runtime (so the caller's other tasks move to another
//! thread and the server keeps serving).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// How long [`IoRuntime::block_here`] polls for an answer before it parks:
/// most round trips to a plugin process end within it, and parking (with
/// `block_in_place`, which hands the worker to another thread) costs more
/// than the round trip.
const SPIN: Duration = Duration::from_micros(500);

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

    /// Runs `future` on the calling thread, inside this runtime's context (the
    /// timers it sets and the tasks it spawns are this runtime's), and returns
    /// its output. Unlike [`IoRuntime::block`] nothing is handed to a worker of
    /// this runtime and back, which is a wake-up of a parked thread each way:
    /// what a single short round trip costs most. Polls, yielding the CPU, for
    /// up to [`SPIN`], then parks until woken, inside `block_in_place` when
    /// the caller is a worker of a multi-threaded runtime.
    pub fn block_here<F: Future>(&self, future: F) -> F::Output {
        // The caller's runtime, before this one's context is entered.
        let on_worker = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        let _context = self.handle.enter();
        // Unconstrained: the caller may be a task of another runtime that does
        // not yield while it waits here, so tokio's cooperative budget would run
        // out and every resource would answer Pending until it parks.
        let mut future = pin!(tokio::task::unconstrained(future));
        let signal = Arc::new(Signal { woken: AtomicBool::new(false), thread: std::thread::current() });
        let waker = Waker::from(Arc::clone(&signal));
        let mut cx = Context::from_waker(&waker);
        let started = Instant::now();
        while started.elapsed() < SPIN {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            while !signal.woken.swap(false, Ordering::AcqRel) && started.elapsed() < SPIN {
                std::thread::yield_now();
            }
        }
        let mut wait = move || loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            while !signal.woken.swap(false, Ordering::AcqRel) {
                std::thread::park();
            }
        };
        if on_worker { tokio::task::block_in_place(wait) } else { wait() }
    }
}

/// Wakes the thread of [`IoRuntime::block_here`].
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
