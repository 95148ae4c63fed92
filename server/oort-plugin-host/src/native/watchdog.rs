//! The watchdog of native calls. A native plugin runs on the server's own
//! threads, and a call that never returns cannot be interrupted; what the
//! server can do is notice it, mark the plugin unhealthy (its further calls
//! fail at once) and fail the rules that use it, so that they can be deleted
//! and the server shut down: the stuck thread is abandoned.
//!
//! Each call marks its thread's slot with the current tick and clears it when
//! it returns (a thread-local and three relaxed atomic stores: no lock, no
//! clock read). The watchdog's thread advances the tick every [`TICK`] and
//! reports, once, a call whose mark is older than the call timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::ffi::Library;

/// How often the watchdog looks: the precision of the timeout.
pub const TICK: Duration = Duration::from_millis(100);

/// Ticks since the watchdog started; 0 means "no call" in a mark, so it starts at 1.
static NOW: AtomicU64 = AtomicU64::new(1);

/// The marks of every thread that ever called a plugin.
static MARKS: Mutex<Vec<Weak<Mark>>> = Mutex::new(Vec::new());

/// The loaded libraries, by id, for the watchdog to name and mark them.
static LIBRARIES: OnceLock<Mutex<HashMap<u64, Weak<Library>>>> = OnceLock::new();

/// Whether the watchdog's thread runs.
static STARTED: OnceLock<()> = OnceLock::new();

/// One thread's call in progress.
#[derive(Default)]
struct Mark {
    /// The tick its call started at; 0 between calls.
    since: AtomicU64,
    /// The library it is in.
    library: AtomicU64,
    /// The `since` of the call already reported, so each is reported once.
    reported: AtomicU64,
}

thread_local! {
    static MARK: Arc<Mark> = {
        let mark = Arc::new(Mark::default());
        MARKS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&mark));
        mark
    };
}

/// Runs `call` into `library` marked as in progress on this thread.
pub(crate) fn watched<T>(library: u64, call: impl FnOnce() -> T) -> T {
    MARK.with(|mark| {
        mark.library.store(library, Ordering::Relaxed);
        mark.since.store(NOW.load(Ordering::Relaxed), Ordering::Relaxed);
        let out = call();
        mark.since.store(0, Ordering::Relaxed);
        out
    })
}

/// Lets the watchdog find a loaded library by its id.
pub(crate) fn register(library: &Arc<Library>) {
    let libraries = LIBRARIES.get_or_init(Mutex::default);
    let mut libraries = libraries.lock().unwrap_or_else(|p| p.into_inner());
    libraries.retain(|_, l| l.strong_count() > 0);
    libraries.insert(library.id, Arc::downgrade(library));
}

/// A call that did not return in time.
#[derive(Debug, Clone)]
pub struct Stuck {
    /// The plugin's name.
    pub plugin: String,
    /// What the plugin's status says from now on.
    pub message: String,
}

/// Starts the watchdog (once per process; later calls do nothing): a call
/// that has not returned after `timeout` marks its library unhealthy, then
/// `on_stuck` is called, on the watchdog's thread.
pub fn start(timeout: Duration, on_stuck: impl Fn(Stuck) + Send + 'static) {
    if STARTED.set(()).is_err() {
        return;
    }
    let ticks = (timeout.as_millis() / TICK.as_millis()).max(1) as u64;
    let spawned = std::thread::Builder::new().name("oort-native-watchdog".into()).spawn(move || {
        loop {
            std::thread::sleep(TICK);
            let now = NOW.fetch_add(1, Ordering::Relaxed) + 1;
            for stuck in overdue(now, ticks) {
                let message = format!(
                    "a call did not return within {} ms, so its calls fail and the rules that use it were \
                     failed; the stuck thread cannot be stopped: delete the plugin, install it again, and \
                     restart the server to reclaim the thread",
                    timeout.as_millis()
                );
                if stuck.mark_stuck(&message) {
                    tracing::error!(plugin = %stuck.name, "{message}");
                    on_stuck(Stuck { plugin: stuck.name.clone(), message });
                }
            }
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the watchdog of native plugin calls");
    }
}

/// The libraries of the calls older than `ticks`, each call once.
fn overdue(now: u64, ticks: u64) -> Vec<Arc<Library>> {
    let mut marks = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    marks.retain(|m| m.strong_count() > 0);
    let libraries = LIBRARIES.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
    marks
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|mark| {
            let since = mark.since.load(Ordering::Relaxed);
            since != 0 && now.saturating_sub(since) >= ticks && mark.reported.swap(since, Ordering::Relaxed) != since
        })
        .filter_map(|mark| libraries.get(&mark.library.load(Ordering::Relaxed))?.upgrade())
        .collect()
}
