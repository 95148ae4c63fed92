//! [`CallRuntime`]: a runtime that the threads waiting on it drive themselves.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// How long [`CallRuntime::block`] polls for an answer before it sleeps in
/// the I/O driver: most round trips to a plugin process end within it, and
/// waking a sleeping thread costs as much as the rest of the round trip
/// (about 20 µs on a virtual machine).
const SPIN: Duration = Duration::from_micros(500);

/// A current-thread runtime with no thread of its own: the threads that wait
/// in [`CallRuntime::block`] drive it, so the connections made inside it
/// read and write on the caller's thread, and an answer needs no thread to
/// be woken but the caller's (none while it polls). For request/response
/// clients (a portable plugin's `Invoke` streams): its tasks run only while
/// some thread waits in `block`, so nothing that must make progress on its
/// own (a source, a sink, a health check) belongs here. Several threads may
/// wait at once: one drives the runtime, the others are woken by it.
pub struct CallRuntime {
    runtime: Option<Runtime>,
}

impl CallRuntime {
    /// A new runtime, with I/O and timers.
    pub fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    /// Runs `future` on the calling thread, driving this runtime (its I/O,
    /// its timers, the tasks spawned in it) until the future is done. Polls
    /// the I/O without sleeping, yielding the CPU to other threads between
    /// polls, for up to [`SPIN`]; then sleeps in the I/O driver.
    pub fn block<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let Some(runtime) = &self.runtime else { unreachable!("the runtime lives until drop") };
        let run = move || runtime.block_on(spin_then_wait(future, SPIN));
        match Handle::try_current() {
            // A worker (or a blocking thread) of a multi-threaded runtime:
            // leave its context, so that this runtime may be entered.
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(run),
            // A task of a current-thread runtime (tests) cannot leave it: drive
            // this one from a thread of its own.
            Ok(_) => std::thread::scope(|scope| match scope.spawn(run).join() {
                Ok(output) => output,
                Err(panic) => std::panic::resume_unwind(panic),
            }),
            Err(_) => run(),
        }
    }
}

/// Polls `future` without letting the runtime sleep for up to `spin` (each
/// `yield_now` makes the runtime poll its I/O driver without blocking, and
/// `std::thread::yield_now` gives the CPU to the thread that will answer, if
/// it waits for one), then waits for it normally.
async fn spin_then_wait<F: Future>(future: F, spin: Duration) -> F::Output {
    let mut future = pin!(future);
    let started = Instant::now();
    while started.elapsed() < spin {
        if let Poll::Ready(output) = futures::poll!(future.as_mut()) {
            return output;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    future.await
}

impl Drop for CallRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another's context would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// An echo task spawned in `calls`: it runs only while some thread waits in `block`.
    fn echo(calls: &CallRuntime) -> mpsc::Sender<(u64, oneshot::Sender<u64>)> {
        calls.block(async {
            let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(16);
            tokio::spawn(async move {
                while let Some((x, reply)) = rx.recv().await {
                    // A timer of this runtime, too.
                    tokio::time::sleep(Duration::from_micros(50)).await;
                    let _ = reply.send(x * 2);
                }
            });
            tx
        })
    }

    async fn ask(echo: &mpsc::Sender<(u64, oneshot::Sender<u64>)>, x: u64) -> u64 {
        let (reply, answer) = oneshot::channel();
        echo.send((x, reply)).await.expect("the echo task runs");
        answer.await.expect("the echo task answers")
    }

    #[test]
    fn a_plain_thread_drives_the_tasks_of_the_runtime() {
        let calls = CallRuntime::new().unwrap();
        let echo = echo(&calls);
        assert_eq!(calls.block(ask(&echo, 21)), 42);
    }

    #[test]
    fn callers_on_several_threads_at_once_are_all_answered() {
        let calls = Arc::new(CallRuntime::new().unwrap());
        let echo = echo(&calls);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (calls, echo) = (Arc::clone(&calls), echo.clone());
                std::thread::spawn(move || (0..200).map(|i| calls.block(ask(&echo, t * 1000 + i))).sum::<u64>())
            })
            .collect();
        let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let expected: Vec<u64> = (0..4u64).map(|t| (0..200).map(|i| 2 * (t * 1000 + i)).sum()).collect();
        assert_eq!(sums, expected);
    }

    #[test]
    fn tasks_of_other_runtimes_may_wait_in_it() {
        let calls = Arc::new(CallRuntime::new().unwrap());
        let echo = echo(&calls);
        // A worker of a multi-threaded runtime, and one of its blocking threads.
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (c, e) = (Arc::clone(&calls), echo.clone());
        assert_eq!(multi.block_on(async move { tokio::spawn(async move { c.block(ask(&e, 1)) }).await.unwrap() }), 2);
        let (c, e) = (Arc::clone(&calls), echo.clone());
        assert_eq!(multi.block_on(multi.spawn_blocking(move || c.block(ask(&e, 2)))).unwrap(), 4);
        // A task of a current-thread runtime.
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(current.block_on(async { calls.block(ask(&echo, 3)) }), 6);
    }
}
