//! [`PortableHost`]: the installed portable plugins, their folders, their
//! supervisors and their symbols in the engine's registries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oort_engine::{ConnectorRegistry, FunctionOrigin, FunctionRegistry};
use oort_runtimes::{CallRuntime, IoRuntime};

use super::PortableConfig;
use super::environment;
use super::function::PortableFunction;
use super::sink::PortableSinkFactory;
use super::source::PortableSourceFactory;
use super::supervisor::{ProcessStatus, Spec, Supervisor, Target, Usage};
use crate::archive;
use crate::error::HostError;
use crate::manifest::{Manifest, PortableEntry};
use crate::native::host::check_name;
use crate::native::{SymbolInfo, SymbolKind};

/// What the API shows of an installed portable plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortableInfo {
    /// Name.
    pub name: String,
    /// Version (the manifest's, equal to `Describe`'s).
    pub version: String,
    /// Language.
    pub language: String,
    /// The executable, relative to its folder.
    pub executable: String,
    /// Symbols, from the manifest (checked against `Describe`).
    pub symbols: Vec<SymbolInfo>,
    /// Its folder, relative to the plugin root.
    pub dir: String,
    /// For a Python plugin with requirements: what its environment holds,
    /// `name version`.
    pub dependencies: Vec<String>,
}

/// An archive unpacked into its own folder, not installed yet.
#[derive(Debug)]
pub struct StagedPortable {
    name: String,
    dir: String,
    manifest: Manifest,
    entry: PortableEntry,
    /// A Python plugin's requirements, installed into an environment of its own.
    requirements: Option<Vec<String>>,
}

impl StagedPortable {
    /// Its folder, relative to the plugin root.
    pub fn dir(&self) -> &str {
        &self.dir
    }
}

struct Installed {
    info: PortableInfo,
    target: Arc<Target>,
    functions: BTreeMap<String, Arc<PortableFunction>>,
}

/// The portable plugins of a server.
pub struct PortableHost {
    root: PathBuf,
    functions: Arc<FunctionRegistry>,
    connectors: Arc<ConnectorRegistry>,
    config: Arc<PortableConfig>,
    sockets: SocketDir,
    /// Supervisors, sources and sinks run here.
    io: Arc<IoRuntime>,
    /// Function calls run here, driven by the calling threads.
    calls: Arc<CallRuntime>,
    installed: Mutex<BTreeMap<String, Installed>>,
}

/// The private directory of plugin sockets.
enum SocketDir {
    /// In the plugin root, kept (emptied at start).
    Data(PathBuf),
    /// A temporary directory, removed when the host is dropped.
    Temp(tempfile::TempDir),
}

/// Longest socket directory: `sun_path` holds 108 bytes on Linux and 104 on
/// macOS, and a socket's file name takes up to 43 (see `Supervisor`).
const MAX_SOCKET_DIR: usize = 104 - 43;

impl SocketDir {
    fn create(root: &Path) -> Result<Self, HostError> {
        use std::os::unix::fs::PermissionsExt;
        let secure = |path: &Path| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| HostError::io("securing the plugin socket directory", e))
        };
        let beside = root.join(".sockets");
        let beside = std::path::absolute(&beside).unwrap_or(beside);
        if beside.as_os_str().len() <= MAX_SOCKET_DIR {
            let _ = std::fs::remove_dir_all(&beside);
            std::fs::create_dir_all(&beside).map_err(|e| HostError::io("creating the plugin socket directory", e))?;
            secure(&beside)?;
            return Ok(SocketDir::Data(beside));
        }
        // Under the system's temporary directory, whose path is short.
        let temp = tempfile::Builder::new()
            .prefix("oort-plugins-")
            .tempdir()
            .map_err(|e| HostError::io("creating the plugin socket directory", e))?;
        secure(temp.path())?;
        Ok(SocketDir::Temp(temp))
    }

    fn path(&self) -> &Path {
        match self {
            SocketDir::Data(path) => path,
            SocketDir::Temp(temp) => temp.path(),
        }
    }
}

fn symbols_of(manifest: &Manifest) -> Vec<SymbolInfo> {
    let symbol = |kind, s: &crate::manifest::ManifestSymbol, aggregate| SymbolInfo {
        name: s.name.to_ascii_lowercase(),
        kind,
        aggregate,
        description: s.description.clone().unwrap_or_default(),
        index: 0,
    };
    let mut all: Vec<SymbolInfo> = Vec::new();
    all.extend(manifest.functions.iter().map(|f| symbol(SymbolKind::Function, f, f.aggregate)));
    all.extend(manifest.sources.iter().map(|s| symbol(SymbolKind::Source, s, false)));
    all.extend(manifest.sinks.iter().map(|s| symbol(SymbolKind::Sink, s, false)));
    all
}

impl PortableHost {
    /// A host keeping plugin folders under `root` (shared with native plugins)
    /// and sockets in a private directory of this server (mode 0700):
    /// `<root>/.sockets` (no plugin name starts with a dot; one server per
    /// data directory, so stale sockets there are a dead server's), or a
    /// temporary directory of its own when that path is too long for a socket
    /// address.
    pub fn new(
        root: PathBuf,
        functions: Arc<FunctionRegistry>,
        connectors: Arc<ConnectorRegistry>,
        config: PortableConfig,
    ) -> Result<Self, HostError> {
        let sockets = SocketDir::create(&root)?;
        let io = Arc::new(
            IoRuntime::new(config.io_threads, "oort-plugins", oort_engine::THREAD_STACK_BYTES)
                .map_err(|e| HostError::io("starting the plugin runtime", e))?,
        );
        let calls = Arc::new(CallRuntime::new().map_err(|e| HostError::io("starting the plugin call runtime", e))?);
        Ok(Self {
            root,
            functions,
            connectors,
            config: Arc::new(config),
            sockets,
            io,
            calls,
            installed: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Installed>> {
        self.installed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The private directory of plugin sockets.
    pub fn socket_dir(&self) -> &Path {
        self.sockets.path()
    }

    /// Unpacks an archive for plugin `name` into a new folder and checks its manifest.
    pub fn stage(&self, name: &str, archive: &[u8]) -> Result<StagedPortable, HostError> {
        check_name(name)?;
        let dir = format!("{name}/{}", uuid::Uuid::new_v4().simple());
        let path = self.root.join(&dir);
        std::fs::create_dir_all(&path).map_err(|e| HostError::io("creating the plugin folder", e))?;
        let staged = archive::unpack(archive, &path).and_then(|_| self.read_staged(name, &dir));
        if staged.is_err() {
            let _ = std::fs::remove_dir_all(&path);
            if let Some(parent) = path.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        staged
    }

    fn read_staged(&self, name: &str, dir: &str) -> Result<StagedPortable, HostError> {
        let path = self.root.join(dir);
        let manifest = match std::fs::read(path.join("manifest.json")) {
            Ok(bytes) => Manifest::parse(&bytes)?,
            Err(_) => return Err(HostError::Archive("the archive has no manifest.json at its root".to_owned())),
        };
        if manifest.name != name {
            return Err(HostError::Manifest(format!(
                "the request installs '{name}' but the manifest names the plugin '{}'",
                manifest.name
            )));
        }
        let entry = manifest.portable()?;
        let executable = path.join(&entry.executable);
        if !executable.is_file() {
            return Err(HostError::Archive(format!(
                "the manifest's executable '{}' is not in the archive",
                entry.executable
            )));
        }
        if !matches!(entry.language.as_str(), "python" | "node") {
            // Zip entries lose their mode when unpacked: a compiled program needs its x bit.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| HostError::io("making the executable runnable", e))?;
        }
        let mut seen = BTreeSet::new();
        for symbol in symbols_of(&manifest) {
            if !seen.insert((symbol.kind, symbol.name.clone())) {
                return Err(HostError::Manifest(format!("the manifest lists '{}' twice", symbol.name)));
            }
        }
        let requirements = match entry.language.as_str() {
            "python" => environment::requirements(&path, manifest.requirements.as_deref())?,
            _ if manifest.requirements.is_some() => {
                return Err(HostError::Manifest("requirements are for Python plugins".to_owned()));
            }
            _ => None,
        };
        Ok(StagedPortable { name: name.to_owned(), dir: dir.to_owned(), manifest, entry, requirements })
    }

    /// Removes a staged folder that will not be installed.
    pub fn discard(&self, staged: StagedPortable) {
        self.delete_files(&staged.dir);
    }

    fn supervisor(&self, staged: &StagedPortable, usage: Arc<Usage>) -> Arc<Supervisor> {
        let dir = self.root.join(&staged.dir);
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let script = dir.join(&staged.entry.executable);
        let (program, args) = match staged.entry.language.as_str() {
            "python" if staged.requirements.is_some() => (environment::interpreter(&dir), vec![script]),
            "python" => (PathBuf::from(&self.config.python), vec![script]),
            "node" => (PathBuf::from(&self.config.node), vec![script]),
            _ => (script, Vec::new()),
        };
        let symbols = symbols_of(&staged.manifest).into_iter().map(|s| (s.kind, s.name, s.aggregate)).collect();
        let spec =
            Spec { name: staged.name.clone(), version: staged.manifest.version.clone(), program, args, dir, symbols };
        Supervisor::new(spec, Arc::clone(&self.config), self.sockets.path().to_owned(), self.io.handle().clone(), usage)
    }

    fn info(&self, staged: &StagedPortable) -> PortableInfo {
        PortableInfo {
            dependencies: environment::installed(&self.root.join(&staged.dir)),
            name: staged.name.clone(),
            version: staged.manifest.version.clone(),
            language: staged.entry.language.clone(),
            executable: staged.entry.executable.clone(),
            symbols: symbols_of(&staged.manifest),
            dir: staged.dir.clone(),
        }
    }

    /// Fails if a symbol is provided by someone other than this plugin.
    fn check_conflicts(
        &self,
        owner: &str,
        symbols: &[SymbolInfo],
        ours: Option<&PortableInfo>,
    ) -> Result<(), HostError> {
        crate::native::host::check_conflicts(&self.functions, &self.connectors, owner, symbols, |symbol| {
            ours.is_some_and(|i| i.symbols.iter().any(|s| s.kind == symbol.kind && s.name == symbol.name))
        })
    }

    fn register(
        &self,
        owner: &str,
        symbol: &SymbolInfo,
        target: &Arc<Target>,
        functions: &mut BTreeMap<String, Arc<PortableFunction>>,
    ) {
        let io = Arc::clone(&self.io);
        match symbol.kind {
            SymbolKind::Function => {
                let f = Arc::new(PortableFunction::new(
                    &symbol.name,
                    owner,
                    symbol.aggregate,
                    &symbol.description,
                    Arc::clone(target),
                    Arc::clone(&self.calls),
                ));
                self.functions.register(f.clone());
                functions.insert(symbol.name.clone(), f);
            }
            SymbolKind::Source => {
                self.connectors.register_source(
                    &symbol.name,
                    Arc::new(PortableSourceFactory::new(&symbol.name, Arc::clone(target), io)),
                );
            }
            SymbolKind::Sink => {
                self.connectors.register_sink(
                    &symbol.name,
                    Arc::new(PortableSinkFactory::new(&symbol.name, Arc::clone(target), io)),
                );
            }
        }
    }

    fn unregister(&self, symbol: &SymbolInfo) {
        match symbol.kind {
            SymbolKind::Function => {
                self.functions.unregister(FunctionOrigin::Portable, &symbol.name);
            }
            SymbolKind::Source => {
                self.connectors.unregister_source(&symbol.name);
            }
            SymbolKind::Sink => {
                self.connectors.unregister_sink(&symbol.name);
            }
        }
    }

    /// Makes a Python plugin's environment, if it has requirements.
    async fn prepare_environment(&self, staged: &StagedPortable) -> Result<(), HostError> {
        let Some(requirements) = &staged.requirements else { return Ok(()) };
        let dir = self.root.join(&staged.dir);
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        environment::prepare(&staged.name, &dir, requirements, &self.config.python, &self.config.environment)
            .await
            .map(drop)
    }

    /// Starts the staged plugin once to check it, then registers its symbols.
    /// On failure the folder is removed and nothing is registered.
    pub async fn install(&self, staged: StagedPortable) -> Result<PortableInfo, HostError> {
        let result = self.install_inner(&staged).await;
        if result.is_err() {
            self.discard(staged);
        }
        result
    }

    async fn install_inner(&self, staged: &StagedPortable) -> Result<PortableInfo, HostError> {
        if self.lock().contains_key(&staged.name) {
            return Err(HostError::AlreadyExists(staged.name.clone()));
        }
        self.prepare_environment(staged).await?;
        let info = self.info(staged);
        self.check_conflicts(&staged.name, &info.symbols, None)?;
        let supervisor = self.supervisor(staged, Arc::default());
        if let Err(error) = supervisor.acquire(true).await {
            supervisor.close().await;
            return Err(error);
        }
        let registered = {
            let mut installed = self.lock();
            if installed.contains_key(&staged.name) {
                Err(HostError::AlreadyExists(staged.name.clone()))
            } else if let Err(error) = self.check_conflicts(&staged.name, &info.symbols, None) {
                Err(error)
            } else {
                let target = Target::new(Arc::clone(&supervisor));
                let mut functions = BTreeMap::new();
                for symbol in &info.symbols {
                    self.register(&staged.name, symbol, &target, &mut functions);
                }
                installed.insert(staged.name.clone(), Installed { info: info.clone(), target, functions });
                Ok(())
            }
        };
        if let Err(error) = registered {
            supervisor.close().await;
            return Err(error);
        }
        tracing::info!(plugin = %info.name, version = %info.version, language = %info.language, "portable plugin installed");
        Ok(info)
    }

    /// Registers a plugin installed earlier (at start-up) from its folder,
    /// without starting it.
    pub fn load_installed(&self, name: &str, dir: &str) -> Result<PortableInfo, HostError> {
        let staged = self.read_staged(name, dir)?;
        let info = self.info(&staged);
        let mut installed = self.lock();
        if installed.contains_key(name) {
            return Err(HostError::AlreadyExists(name.to_owned()));
        }
        self.check_conflicts(name, &info.symbols, None)?;
        let target = Target::new(self.supervisor(&staged, Arc::default()));
        let mut functions = BTreeMap::new();
        for symbol in &info.symbols {
            self.register(name, symbol, &target, &mut functions);
        }
        installed.insert(name.to_owned(), Installed { info: info.clone(), target, functions });
        Ok(info)
    }

    /// Replaces an installed plugin with a staged new version: the new process
    /// starts and is checked, the symbols switch to it, then the old process
    /// is shut down. Returns the new info and the old folder, which the caller
    /// removes once the catalog points to the new one.
    pub async fn update(&self, staged: StagedPortable) -> Result<(PortableInfo, String), HostError> {
        let result = self.update_inner(&staged).await;
        if result.is_err() {
            self.discard(staged);
        }
        result
    }

    async fn update_inner(&self, staged: &StagedPortable) -> Result<(PortableInfo, String), HostError> {
        let (target, old_info) = {
            let installed = self.lock();
            let Some(current) = installed.get(&staged.name) else {
                return Err(HostError::NotFound(staged.name.clone()));
            };
            (Arc::clone(&current.target), current.info.clone())
        };
        self.prepare_environment(staged).await?;
        let info = self.info(staged);
        self.check_conflicts(&staged.name, &info.symbols, Some(&old_info))?;
        let old = target.get();
        let supervisor = self.supervisor(staged, Arc::clone(old.usage()));
        if let Err(error) = supervisor.acquire(true).await {
            supervisor.close().await;
            return Err(error);
        }
        supervisor.inherit(&old);
        {
            let mut installed = self.lock();
            let Some(current) = installed.get_mut(&staged.name) else {
                return Err(HostError::NotFound(staged.name.clone()));
            };
            for symbol in &info.symbols {
                let known = current.info.symbols.iter().any(|s| s.kind == symbol.kind && s.name == symbol.name);
                if !known {
                    self.register(&staged.name, symbol, &target, &mut current.functions);
                }
            }
            target.swap(supervisor);
            for symbol in &current.info.symbols {
                if !info.symbols.iter().any(|s| s.kind == symbol.kind && s.name == symbol.name) {
                    self.unregister(symbol);
                    current.functions.remove(&symbol.name);
                }
            }
            current.info = info.clone();
        }
        old.close().await;
        tracing::info!(plugin = %info.name, version = %info.version, "portable plugin updated");
        Ok((info, old_info.dir))
    }

    /// Unregisters a plugin's symbols, shuts its process down and forgets it.
    pub async fn remove(&self, name: &str) -> Result<PortableInfo, HostError> {
        let Some(removed) = self.lock().remove(name) else { return Err(HostError::NotFound(name.to_owned())) };
        for symbol in &removed.info.symbols {
            self.unregister(symbol);
        }
        removed.target.get().close().await;
        tracing::info!(plugin = %name, "portable plugin removed");
        Ok(removed.info)
    }

    /// Shuts every process down (at server shutdown).
    pub async fn shutdown(&self) {
        let targets: Vec<Arc<Target>> = self.lock().values().map(|i| Arc::clone(&i.target)).collect();
        for target in targets {
            target.get().close().await;
        }
    }

    /// Deletes a plugin folder (`dir` relative to the root) and, if empty, its parent.
    pub fn delete_files(&self, dir: &str) {
        let path = self.root.join(dir);
        if let Err(error) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove a plugin folder");
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }

    /// Every installed portable plugin, by name.
    pub fn list(&self) -> Vec<PortableInfo> {
        self.lock().values().map(|i| i.info.clone()).collect()
    }

    /// One installed portable plugin.
    pub fn get(&self, name: &str) -> Option<PortableInfo> {
        self.lock().get(name).map(|i| i.info.clone())
    }

    /// The state of a plugin's process.
    pub fn status(&self, name: &str) -> Option<ProcessStatus> {
        let target = Arc::clone(&self.lock().get(name)?.target);
        Some(target.get().status())
    }

    /// A function of an installed plugin, to call it directly (benchmarks).
    pub fn function(&self, plugin: &str, name: &str) -> Option<Arc<PortableFunction>> {
        self.lock().get(plugin)?.functions.get(&name.to_ascii_lowercase()).cloned()
    }
}
