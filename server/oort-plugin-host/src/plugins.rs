//! [`Plugins`]: both plugin hosts behind one door. Callers install, update,
//! list and remove plugins by name whatever their kind ([`PluginKind`]);
//! names are unique across kinds. Each operation dispatches on the kind here,
//! so a third kind is one more arm in this file.

use std::sync::Arc;

use crate::error::HostError;
use crate::native::SymbolInfo;
use crate::native::host::{PluginHost, PluginInfo};
use crate::portable::{PortableHost, PortableInfo};

/// How a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A dynamic library in the server's process.
    Native,
    /// A process of its own, speaking `oort.plugin.v1`.
    Portable,
}

/// An installed plugin, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Name.
    pub name: String,
    /// Native or portable.
    pub kind: PluginKind,
    /// Version.
    pub version: String,
    /// Native: the library's ABI `major.minor`; portable: the protocol version.
    pub abi_version: String,
    /// Portable: its language; native: empty.
    pub language: String,
    /// What it provides.
    pub symbols: Vec<SymbolInfo>,
    /// Its folder, relative to the plugin root.
    pub dir: String,
    /// The library or executable in that folder.
    pub file: String,
    /// A Python plugin's installed requirements, `name version`; else empty.
    pub dependencies: Vec<String>,
}

impl From<PluginInfo> for Installed {
    fn from(info: PluginInfo) -> Self {
        Self {
            name: info.name,
            kind: PluginKind::Native,
            version: info.version,
            abi_version: info.abi_version,
            language: String::new(),
            symbols: info.symbols,
            dir: info.dir,
            file: info.library_file,
            dependencies: Vec::new(),
        }
    }
}

impl From<PortableInfo> for Installed {
    fn from(info: PortableInfo) -> Self {
        Self {
            name: info.name,
            kind: PluginKind::Portable,
            version: info.version,
            abi_version: crate::portable::process::PROTOCOL_VERSION.to_string(),
            language: info.language,
            symbols: info.symbols,
            dir: info.dir,
            file: info.executable,
            dependencies: info.dependencies,
        }
    }
}

/// How a plugin is doing now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Portable: whether its process runs.
    pub running: bool,
    /// Portable: its process id while it runs.
    pub pid: Option<u32>,
    /// Portable: how many times its process was restarted.
    pub restarts: u32,
    /// The last failure: a portable process's, or the call a native plugin never returned from.
    pub last_error: Option<String>,
}

/// The native and the portable plugins of a server.
pub struct Plugins {
    native: Arc<PluginHost>,
    portable: Arc<PortableHost>,
}

impl Plugins {
    /// Both hosts, behind one door.
    pub fn new(native: Arc<PluginHost>, portable: Arc<PortableHost>) -> Self {
        Self { native, portable }
    }

    /// The portable host (rule status shows its processes).
    pub fn portable(&self) -> &Arc<PortableHost> {
        &self.portable
    }

    /// The plugin of that name, of either kind.
    pub fn get(&self, name: &str) -> Option<Installed> {
        self.native.get(name).map(Installed::from).or_else(|| self.portable.get(name).map(Installed::from))
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Vec<Installed> {
        let mut all: Vec<Installed> = self.native.list().into_iter().map(Installed::from).collect();
        all.extend(self.portable.list().into_iter().map(Installed::from));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// How a plugin is doing; `None` if no plugin has that name.
    pub fn health(&self, name: &str) -> Option<Health> {
        match self.get(name)?.kind {
            PluginKind::Native => Some(Health { last_error: self.native.stuck(name), ..Health::default() }),
            PluginKind::Portable => {
                let status = self.portable.status(name).unwrap_or_default();
                Some(Health {
                    running: status.running,
                    pid: status.pid,
                    restarts: status.restarts,
                    last_error: status.last_error,
                })
            }
        }
    }

    /// Installs `archive` as plugin `name` of `kind`, refused if a plugin of
    /// either kind has that name. Unpacking and loading run off the reactor.
    pub async fn install(&self, kind: PluginKind, name: String, archive: Vec<u8>) -> Result<Installed, HostError> {
        if self.get(&name).is_some() {
            return Err(HostError::AlreadyExists(name));
        }
        match kind {
            PluginKind::Native => {
                let native = Arc::clone(&self.native);
                blocking(move || native.install(native.unpack(&name, &archive)?)).await.map(Installed::from)
            }
            PluginKind::Portable => {
                let portable = Arc::clone(&self.portable);
                let staged = blocking(move || portable.stage(&name, &archive)).await?;
                self.portable.install(staged).await.map(Installed::from)
            }
        }
    }

    /// Replaces plugin `name` with `archive`, of the same kind, while rules
    /// keep running; returns the new plugin and the old folder, which the
    /// caller deletes once the catalog points to the new one.
    pub async fn update(&self, name: String, archive: Vec<u8>) -> Result<(Installed, String), HostError> {
        let Some(current) = self.get(&name) else { return Err(HostError::NotFound(name)) };
        match current.kind {
            PluginKind::Native => {
                let native = Arc::clone(&self.native);
                let (info, old) = blocking(move || native.update(native.unpack(&name, &archive)?)).await?;
                Ok((info.into(), old))
            }
            PluginKind::Portable => {
                let portable = Arc::clone(&self.portable);
                let staged = blocking(move || portable.stage(&name, &archive)).await?;
                let (info, old) = self.portable.update(staged).await?;
                Ok((info.into(), old))
            }
        }
    }

    /// Unregisters plugin `name` and forgets it (its files stay; see
    /// [`delete_files`](Self::delete_files)).
    pub async fn remove(&self, name: &str) -> Result<Installed, HostError> {
        match self.get(name).map(|p| p.kind) {
            Some(PluginKind::Native) => self.native.remove(name).map(Installed::from),
            Some(PluginKind::Portable) => self.portable.remove(name).await.map(Installed::from),
            None => Err(HostError::NotFound(name.to_owned())),
        }
    }

    /// Deletes a plugin folder (relative to the root, as in [`Installed::dir`]).
    pub fn delete_files(&self, kind: PluginKind, dir: &str) {
        match kind {
            PluginKind::Native => self.native.delete_files(dir),
            PluginKind::Portable => self.portable.delete_files(dir),
        }
    }

    /// Registers a plugin installed earlier, from its folder (at start-up).
    pub fn load_installed(&self, kind: PluginKind, name: &str, dir: &str) -> Result<Installed, HostError> {
        match kind {
            PluginKind::Native => self.native.load_installed(name, dir).map(Installed::from),
            PluginKind::Portable => self.portable.load_installed(name, dir).map(Installed::from),
        }
    }

    /// Stops the portable plugins' processes (at shutdown).
    pub async fn shutdown(&self) {
        self.portable.shutdown().await;
    }
}

/// Runs blocking host work (file I/O, dlopen) off the reactor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HostError> + Send + 'static,
) -> Result<T, HostError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| HostError::Io(format!("plugin task failed: {e}")))?
}
