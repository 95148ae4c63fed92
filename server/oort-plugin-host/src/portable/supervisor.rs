//! [`Supervisor`]: the life of one installed version of a portable plugin.
//!
//! It starts the process on demand ([`Supervisor::acquire`]), checks that it
//! answers health checks and that its `Describe` matches the manifest, then
//! watches it: a health check every `health_interval`, and its exit. A process
//! that dies, fails a health check or times out a call is killed and counted as
//! a restart; while the plugin is wanted (an open source or sink, or a call
//! within the idle timeout) it is started again with exponential backoff. A
//! process nothing used for `idle_timeout` is shut down.
//!
//! [`Target`] is what registered symbols point to: `UpdatePlugin` swaps the
//! supervisor behind it, so rules switch to the new version between two batches.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use oort_proto::plugin::v1::DescribeRequest;
use tokio::runtime::Handle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::PortableConfig;
use super::process::{self, Launch, PROTOCOL_VERSION, Process};
use crate::error::HostError;
use crate::native::{SymbolKind, describe_symbols};

/// The gRPC service name a plugin reports SERVING for.
pub const SERVICE_NAME: &str = "oort.plugin.v1.PluginService";
/// Most a restart waits after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long resets the backoff when it ends.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Whether a plugin is in use: open sources and sinks, and the last call.
/// Shared by the versions of one plugin, so an update keeps it.
pub struct Usage {
    users: AtomicUsize,
    base: Instant,
    last_used_ms: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Self { users: AtomicUsize::new(0), base: Instant::now(), last_used_ms: AtomicU64::new(0) }
    }
}

impl Usage {
    /// Records a use now.
    pub fn touch(&self) {
        self.last_used_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }

    fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }
}

/// A use that keeps the process up while it lives (an open source or sink).
pub struct Lease(Arc<Usage>);

impl Lease {
    /// Takes a lease.
    pub fn new(usage: &Arc<Usage>) -> Self {
        usage.users.fetch_add(1, Ordering::Relaxed);
        usage.touch();
        Lease(Arc::clone(usage))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.touch();
        self.0.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A started, checked process.
pub struct Running {
    /// Counts the starts of this supervisor; streams opened on another
    /// generation are stale.
    pub generation: u64,
    /// The process.
    pub process: Process,
    reason: Mutex<Option<String>>,
    stopping: AtomicBool,
    started: Instant,
}

#[derive(Default)]
struct Stats {
    restarts: u32,
    last_error: Option<String>,
    failures: u32,
    not_before: Option<Instant>,
}

/// What the API shows of a plugin's process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessStatus {
    /// Whether a process runs now.
    pub running: bool,
    /// Its process id, if it runs.
    pub pid: Option<u32>,
    /// Times it ended without being asked to (crash, kill, failed health check, call timeout).
    pub restarts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// How to run one version of a plugin, and the symbols it must describe.
pub struct Spec {
    /// Plugin name.
    pub name: String,
    /// Version from the manifest.
    pub version: String,
    /// Program and arguments.
    pub program: PathBuf,
    /// Arguments (the script of an interpreted plugin).
    pub args: Vec<PathBuf>,
    /// The unpacked folder.
    pub dir: PathBuf,
    /// The manifest's symbols: (kind, lower-case name, aggregate).
    pub symbols: BTreeSet<(SymbolKind, String, bool)>,
}

/// Supervises the processes of one version of a portable plugin.
pub struct Supervisor {
    spec: Spec,
    config: Arc<PortableConfig>,
    socket_dir: PathBuf,
    runtime: Handle,
    usage: Arc<Usage>,
    starting: tokio::sync::Mutex<()>,
    current: Mutex<Option<Arc<Running>>>,
    stats: Mutex<Stats>,
    closed: AtomicBool,
    generations: AtomicU64,
    me: Weak<Supervisor>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    /// A supervisor; nothing starts until [`Supervisor::acquire`]. Its tasks
    /// run on `runtime`.
    pub fn new(
        spec: Spec,
        config: Arc<PortableConfig>,
        socket_dir: PathBuf,
        runtime: Handle,
        usage: Arc<Usage>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Supervisor {
            spec,
            config,
            socket_dir,
            runtime,
            usage,
            starting: tokio::sync::Mutex::new(()),
            current: Mutex::new(None),
            stats: Mutex::default(),
            closed: AtomicBool::new(false),
            generations: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// Plugin name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The configuration.
    pub fn config(&self) -> &PortableConfig {
        &self.config
    }

    /// The usage shared by the plugin's versions.
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// The running process, if it is up.
    pub fn live(&self) -> Option<Arc<Running>> {
        lock(&self.current).as_ref().filter(|r| !r.process.has_exited()).cloned()
    }

    /// The process, started if needed. With `wait_backoff` false a plugin that
    /// failed recently (and is still in its backoff) fails at once with its
    /// last error: a function call does not wait for a restart.
    pub async fn acquire(&self, wait_backoff: bool) -> Result<Arc<Running>, HostError> {
        self.usage.touch();
        if let Some(running) = self.live() {
            return Ok(running);
        }
        if !wait_backoff {
            let stats = lock(&self.stats);
            if stats.not_before.is_some_and(|t| t > Instant::now()) {
                let why = stats.last_error.clone().unwrap_or_else(|| "it failed".into());
                return Err(self.start_error(format!("it is restarting after a failure: {why}")));
            }
        }
        let me = self.me.upgrade().ok_or_else(|| self.start_error("the plugin was removed".into()))?;
        // Started on the supervisor's runtime, which owns the process's tasks.
        self.runtime
            .spawn(async move { me.start_locked().await })
            .await
            .map_err(|e| self.start_error(format!("the start task failed: {e}")))?
    }

    fn start_error(&self, message: String) -> HostError {
        HostError::Start { plugin: self.spec.name.clone(), message }
    }

    async fn start_locked(self: Arc<Self>) -> Result<Arc<Running>, HostError> {
        let _starting = self.starting.lock().await;
        if let Some(running) = self.live() {
            return Ok(running);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(self.start_error("the plugin was removed or replaced".into()));
        }
        let not_before = lock(&self.stats).not_before;
        if let Some(at) = not_before {
            tokio::time::sleep_until(at.into()).await;
        }
        match self.start_process().await {
            Ok(running) => {
                *lock(&self.current) = Some(Arc::clone(&running));
                let (me, watched) = (Arc::downgrade(&self), Arc::clone(&running));
                self.runtime.spawn(watch(me, watched));
                tracing::info!(plugin = %self.spec.name, version = %self.spec.version, pid = running.process.pid, "portable plugin started");
                Ok(running)
            }
            Err(error) => {
                tracing::warn!(plugin = %self.spec.name, %error, "portable plugin failed to start");
                let mut stats = lock(&self.stats);
                stats.last_error = Some(error.to_string());
                stats.failures += 1;
                stats.not_before = Some(Instant::now() + self.backoff(stats.failures));
                Err(error)
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.config.restart_backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// Starts a process and checks it: health SERVING, then `Describe`.
    pub(crate) async fn start_process(&self) -> Result<Arc<Running>, HostError> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let launch = Launch {
            plugin: self.spec.name.clone(),
            program: self.spec.program.clone(),
            args: self.spec.args.clone(),
            dir: self.spec.dir.clone(),
            socket: self.socket_dir.join(socket_name(&self.spec.name)),
            start_timeout: self.config.start_timeout,
            shutdown_grace: self.config.shutdown_grace,
        };
        let started = Instant::now();
        let process = process::spawn(&launch).await?;
        let deadline = started + self.config.start_timeout;
        let stderr = process.stderr.clone();
        let fail = |message: String| self.start_error(format!("{message}; stderr: {}", stderr.text()));
        wait_serving(&process, deadline).await.map_err(&fail)?;
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let mut client = process.client.clone();
        let describe = match tokio::time::timeout(remaining, client.describe(DescribeRequest {})).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(fail(format!("Describe failed: {}", status.message()))),
            Err(_) => return Err(fail("Describe did not answer in time".into())),
        };
        self.check_describe(&describe)?;
        Ok(Arc::new(Running {
            generation,
            process,
            reason: Mutex::new(None),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
        }))
    }

    fn check_describe(&self, describe: &oort_proto::plugin::v1::DescribeResponse) -> Result<(), HostError> {
        if describe.protocol_version != PROTOCOL_VERSION {
            return Err(self.start_error(format!(
                "it speaks protocol version {} but this server speaks {PROTOCOL_VERSION}",
                describe.protocol_version
            )));
        }
        if describe.name != self.spec.name {
            return Err(HostError::Manifest(format!(
                "the manifest names the plugin '{}' but its Describe says '{}'",
                self.spec.name, describe.name
            )));
        }
        if describe.version != self.spec.version {
            return Err(HostError::Manifest(format!(
                "the manifest says version {} but its Describe says version {}",
                self.spec.version, describe.version
            )));
        }
        let mut actual = BTreeSet::new();
        for symbol in &describe.symbols {
            use oort_proto::plugin::v1::SymbolKind as K;
            let kind = match K::try_from(symbol.kind) {
                Ok(K::Source) => SymbolKind::Source,
                Ok(K::Sink) => SymbolKind::Sink,
                Ok(K::Function) => SymbolKind::Function,
                _ => {
                    return Err(HostError::Manifest(format!(
                        "its Describe gives symbol '{}' an unknown kind {}",
                        symbol.name, symbol.kind
                    )));
                }
            };
            actual.insert((kind, symbol.name.to_ascii_lowercase(), symbol.aggregate && kind == SymbolKind::Function));
        }
        if actual != self.spec.symbols {
            let missing: BTreeSet<_> = self.spec.symbols.difference(&actual).cloned().collect();
            let extra: BTreeSet<_> = actual.difference(&self.spec.symbols).cloned().collect();
            return Err(HostError::Manifest(format!(
                "the manifest does not match the plugin's Describe: declared but not provided: {}; provided but not declared: {}",
                describe_symbols(&missing),
                describe_symbols(&extra)
            )));
        }
        Ok(())
    }

    /// Kills a process that misbehaved (a call timed out, a health check
    /// failed); it counts as a restart with this reason.
    pub fn fail(&self, running: &Running, reason: String) {
        lock(&running.reason).get_or_insert(reason);
        running.process.kill();
    }

    fn on_exit(&self, running: &Arc<Running>) {
        {
            let mut current = lock(&self.current);
            if current.as_ref().is_some_and(|c| c.generation == running.generation) {
                *current = None;
            }
        }
        if running.stopping.load(Ordering::Acquire) {
            return;
        }
        let how = running.process.exited.borrow().clone().unwrap_or_default();
        let reason = lock(&running.reason).clone().unwrap_or_else(|| {
            format!("process {} {how}; stderr: {}", running.process.pid, running.process.stderr.text())
        });
        tracing::warn!(plugin = %self.spec.name, pid = running.process.pid, error = %reason, "portable plugin process ended; restarting");
        {
            let mut stats = lock(&self.stats);
            stats.restarts += 1;
            stats.last_error = Some(reason);
            if running.started.elapsed() > STABLE_AFTER {
                stats.failures = 0;
            }
            stats.failures += 1;
            stats.not_before = Some(Instant::now() + self.backoff(stats.failures));
        }
        let Some(me) = self.me.upgrade() else { return };
        self.runtime.spawn(async move {
            while me.wanted() && me.live().is_none() {
                match me.acquire(true).await {
                    Ok(_) => break,
                    Err(error) => tracing::warn!(plugin = %me.spec.name, %error, "portable plugin restart failed"),
                }
            }
        });
    }

    /// Whether a process should run: not removed, and used now or lately.
    fn wanted(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && (self.usage.users() > 0 || self.usage.idle_for() < self.config.idle_timeout)
    }

    /// Shuts the process down (asked, then killed after the grace period).
    pub async fn stop(&self) {
        let running = lock(&self.current).take();
        if let Some(running) = running {
            running.stopping.store(true, Ordering::Release);
            running.process.shutdown(self.config.shutdown_grace).await;
            tracing::info!(plugin = %self.spec.name, pid = running.process.pid, "portable plugin stopped");
        }
    }

    /// Stops the process for good: it is not started again.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _starting = self.starting.lock().await;
        self.stop().await;
    }

    /// The process's status.
    pub fn status(&self) -> ProcessStatus {
        let live = self.live();
        let stats = lock(&self.stats);
        ProcessStatus {
            running: live.is_some(),
            pid: live.map(|r| r.process.pid),
            restarts: stats.restarts,
            last_error: stats.last_error.clone(),
        }
    }

    /// Carries the counters of the version this one replaces.
    pub fn inherit(&self, old: &Supervisor) {
        let old = lock(&old.stats);
        let mut stats = lock(&self.stats);
        stats.restarts += old.restarts;
        if stats.last_error.is_none() {
            stats.last_error = old.last_error.clone();
        }
    }
}

/// A socket file name unique in this server: the plugin name's first 16
/// bytes (for people reading `ls`), then a counter; at most 43 bytes.
fn socket_name(plugin: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let short: String = plugin.chars().take(16).collect();
    format!("{short}-{n}.sock")
}

/// Polls the health service until it says SERVING, or the deadline.
async fn wait_serving(process: &Process, deadline: Instant) -> Result<(), String> {
    let mut health = HealthClient::new(process.channel.clone());
    let mut last = String::from("no answer");
    loop {
        if process.has_exited() {
            let how = process.exited.borrow().clone().unwrap_or_default();
            return Err(format!("it {how} after its handshake"));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("its health service did not report SERVING in time ({last})"));
        }
        let request = HealthCheckRequest { service: SERVICE_NAME.to_owned() };
        match tokio::time::timeout(remaining, health.check(request)).await {
            Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(Ok(response)) => last = format!("status {}", response.get_ref().status),
            Ok(Err(status)) => last = status.message().to_owned(),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watches a running process: health checks, idleness, exit.
async fn watch(supervisor: Weak<Supervisor>, running: Arc<Running>) {
    let mut exited = running.process.exited.clone();
    let Some(config) = supervisor.upgrade().map(|s| Arc::clone(&s.config)) else { return };
    let mut health = HealthClient::new(running.process.channel.clone());
    let mut tick = tokio::time::interval(config.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = process::wait_exit(&mut exited) => break,
            _ = tick.tick() => {
                let Some(supervisor) = supervisor.upgrade() else {
                    running.process.kill();
                    return;
                };
                if running.stopping.load(Ordering::Acquire) {
                    continue;
                }
                if supervisor.usage.users() == 0 && supervisor.usage.idle_for() >= config.idle_timeout {
                    tracing::info!(plugin = %supervisor.spec.name, "portable plugin idle; stopping it");
                    let current = lock(&supervisor.current).take_if(|c| c.generation == running.generation);
                    if current.is_some() {
                        running.stopping.store(true, Ordering::Release);
                        running.process.shutdown(config.shutdown_grace).await;
                    }
                    continue;
                }
                let request = HealthCheckRequest { service: SERVICE_NAME.to_owned() };
                let verdict = match tokio::time::timeout(config.call_timeout, health.check(request)).await {
                    Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => None,
                    Ok(Ok(r)) => Some(format!("status {}", r.get_ref().status)),
                    Ok(Err(status)) => Some(status.message().to_owned()),
                    Err(_) => Some(format!("no answer within {} ms", config.call_timeout.as_millis())),
                };
                if let Some(why) = verdict && !running.process.has_exited() {
                    supervisor.fail(&running, format!("health check failed ({why}); the process was killed"));
                }
            }
        }
    }
    if let Some(supervisor) = supervisor.upgrade() {
        supervisor.on_exit(&running);
    }
}

/// What registered symbols point to: the current version's supervisor.
pub struct Target(RwLock<Arc<Supervisor>>);

impl Target {
    /// A target pointing to `supervisor`.
    pub fn new(supervisor: Arc<Supervisor>) -> Arc<Self> {
        Arc::new(Target(RwLock::new(supervisor)))
    }

    /// The current version.
    pub fn get(&self) -> Arc<Supervisor> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Points to a new version; returns the old one.
    pub fn swap(&self, supervisor: Arc<Supervisor>) -> Arc<Supervisor> {
        std::mem::replace(&mut *self.0.write().unwrap_or_else(|p| p.into_inner()), supervisor)
    }
}
