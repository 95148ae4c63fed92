//! Portable plugins: programs in any language that speak `oort.plugin.v1`
//! (`proto/oort/plugin/v1/plugin.proto`, `plugins/PROTOCOL.md`) over a Unix
//! socket, supervised by the server.
//!
//! Lifecycle of a plugin:
//!
//! 1. **Install** ([`PortableHost::stage`], [`PortableHost::install`]): the zip is
//!    unpacked safely into `<root>/<name>/<install id>/`; the manifest must be
//!    of kind `portable` with a `language` and an `executable` in the archive.
//!    The process is started once: it must print its handshake, report SERVING
//!    and `Describe` exactly the manifest's name, version and symbols, or
//!    nothing is installed. A Python plugin that declares requirements first
//!    gets an environment of its own, with its bundled wheels ([`environment`]).
//!    Its symbols are then registered in the engine's
//!    registries ([`PortableFunction`] with `FunctionOrigin::Portable`,
//!    source and sink factories), where rules find them like built-ins.
//! 2. **Boot** ([`PortableHost::load_installed`]): the catalog's portable plugins
//!    are registered synchronously, before rules are restored, without
//!    starting anything.
//! 3. **Run** ([`supervisor`]): a process starts when a rule first needs one of
//!    its symbols (a call, a source or sink instance). It gets the protocol's
//!    environment (cookie, protocol version, a socket path in this server's
//!    private directory, mode 0700, and the shutdown grace), a stdin pipe the
//!    server holds, and its stdout and stderr go into the log under the
//!    plugin's name, within a budget of lines a second ([`output`]).
//!    It is health-checked every `health_interval`; one that crashes, is
//!    killed, fails a health check or overruns `call_timeout` is killed and
//!    started again with backoff, and the rules using it carry on (a function
//!    batch during the restart fails, sources reopen, sinks re-send). One that
//!    nothing used for `idle_timeout` is shut down.
//! 4. **Update** ([`PortableHost::update`]): the new version is started and
//!    checked, the symbols switch to it between two batches, then the old
//!    process is shut down.
//! 5. **Delete** ([`PortableHost::remove`]): symbols unregistered, process shut
//!    down (`Shutdown`, stdin closed, killed after the grace period).
//!
//! Modules: [`environment`] (a Python plugin's venv), [`process`] (one OS process), [`output`] (its log budget), [`supervisor`], [`function`],
//! [`source`], [`sink`] (the engine adapters), [`host`]; values convert with [`crate::convert`].

pub mod environment;
pub mod function;
pub mod host;
pub mod output;
pub mod process;
pub mod sink;
pub mod source;
pub mod supervisor;

use std::time::Duration;

pub use environment::EnvironmentConfig;
pub use function::PortableFunction;
pub use host::{PortableHost, PortableInfo, StagedPortable};
pub use supervisor::ProcessStatus;

/// How portable plugins are run; every timeout is configurable (oortd's
/// `plugin_*` settings).
#[derive(Debug, Clone)]
pub struct PortableConfig {
    /// Interpreter of `language: "python"` plugins.
    pub python: String,
    /// Interpreter of `language: "node"` plugins.
    pub node: String,
    /// How long a process may take from its start to a handshake, SERVING and `Describe`.
    pub start_timeout: Duration,
    /// How long one call (a function batch, a sink acknowledgement, a health
    /// check) may take before the process is restarted.
    pub call_timeout: Duration,
    /// Time between two health checks of a running process.
    pub health_interval: Duration,
    /// How long `Shutdown` may take before the process is killed; also passed
    /// to the plugin as `OORT_PLUGIN_SHUTDOWN_GRACE_MS`.
    pub shutdown_grace: Duration,
    /// A process that no source, sink or call used for this long is stopped.
    pub idle_timeout: Duration,
    /// First delay before restarting a process that failed; doubled after each
    /// failure in a row, up to 10 s.
    pub restart_backoff: Duration,
    /// Worker threads of the runtime that runs plugin I/O.
    pub io_threads: usize,
    /// How Python plugins with requirements get their environments.
    pub environment: environment::EnvironmentConfig,
}

impl Default for PortableConfig {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            node: "node".into(),
            start_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            restart_backoff: Duration::from_millis(200),
            io_threads: 2,
            environment: environment::EnvironmentConfig { index_url: None, timeout: Duration::from_secs(300) },
        }
    }
}
