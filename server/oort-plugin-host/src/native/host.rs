//! [`PluginHost`]: the installed plugins, their files under the data directory,
//! and their symbols in the engine's registries.
//!
//! Layout: `<root>/<plugin>/<install id>/` holds one unpacked archive. Each
//! install or update unpacks into a new folder, so a new version is never
//! loaded from the path of the old one (the dynamic loader would hand back the
//! library already mapped).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oort_engine::{ConnectorRegistry, FunctionOrigin, FunctionRegistry};

use crate::archive;
use crate::error::HostError;
use crate::manifest::{Manifest, ManifestKind};
use crate::native::sink::NativeSinkFactory;
use crate::native::slot::Slot;
use crate::native::source::NativeSourceFactory;
use crate::native::{self, NativeFunction, NativePlugin, SymbolInfo, SymbolKind};

/// What the API shows of an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version (the library's, equal to the manifest's).
    pub version: String,
    /// ABI version of the library, `major.minor`.
    pub abi_version: String,
    /// Symbols.
    pub symbols: Vec<SymbolInfo>,
    /// Its folder, relative to the plugin root.
    pub dir: String,
    /// The library file in that folder.
    pub library_file: String,
}

/// An archive unpacked into its own folder, not loaded yet.
#[derive(Debug)]
pub struct Staged {
    name: String,
    dir: String,
    library_file: String,
    manifest: Manifest,
}

struct Installed {
    info: PluginInfo,
    slots: BTreeMap<(SymbolKind, String), Arc<Slot>>,
    functions: BTreeMap<String, Arc<NativeFunction>>,
}

/// The native plugins of a server.
pub struct PluginHost {
    root: PathBuf,
    functions: Arc<FunctionRegistry>,
    connectors: Arc<ConnectorRegistry>,
    installed: Mutex<BTreeMap<String, Installed>>,
}

/// Checks a plugin name: it becomes a folder name.
pub fn check_name(name: &str) -> Result<(), HostError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(HostError::Invalid(format!("bad plugin name '{name}': use 1 to 64 letters, digits, '_' or '-'")))
    }
}

/// Fails if one of `owner`'s symbols is already in the registries, unless
/// `is_ours` says it is `owner`'s own (an update): shared by both plugin kinds.
pub(crate) fn check_conflicts(
    functions: &FunctionRegistry,
    connectors: &ConnectorRegistry,
    owner: &str,
    symbols: &[SymbolInfo],
    is_ours: impl Fn(&SymbolInfo) -> bool,
) -> Result<(), HostError> {
    for symbol in symbols.iter().filter(|s| !is_ours(s)) {
        let taken = match symbol.kind {
            SymbolKind::Function => functions.get(&symbol.name).map(|f| {
                let meta = f.meta();
                match meta.origin {
                    FunctionOrigin::Builtin => "a built-in function".to_owned(),
                    _ => format!("a function of '{}'", meta.owner),
                }
            }),
            SymbolKind::Source => connectors.source(&symbol.name).map(|_| "a source type".to_owned()),
            SymbolKind::Sink => connectors.sink(&symbol.name).map(|_| "a sink type".to_owned()),
        };
        if let Some(taken) = taken {
            return Err(HostError::Conflict(format!(
                "plugin '{owner}' provides '{}', which is already {taken}",
                symbol.name
            )));
        }
    }
    Ok(())
}

impl PluginHost {
    /// A host keeping plugin files under `root`, registering into these registries.
    pub fn new(root: PathBuf, functions: Arc<FunctionRegistry>, connectors: Arc<ConnectorRegistry>) -> Self {
        Self { root, functions, connectors, installed: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Installed>> {
        self.installed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unpacks an archive for plugin `name` into a new folder and reads its manifest.
    pub fn unpack(&self, name: &str, archive: &[u8]) -> Result<Staged, HostError> {
        check_name(name)?;
        let dir = format!("{name}/{}", uuid::Uuid::new_v4().simple());
        let path = self.root.join(&dir);
        std::fs::create_dir_all(&path).map_err(|e| HostError::io("creating the plugin folder", e))?;
        let staged = self.stage(name, &dir, Some(archive));
        if staged.is_err() {
            let _ = std::fs::remove_dir_all(&path);
        }
        staged
    }

    fn stage(&self, name: &str, dir: &str, archive: Option<&[u8]>) -> Result<Staged, HostError> {
        let path = self.root.join(dir);
        let files = match archive {
            Some(bytes) => archive::unpack(bytes, &path)?,
            None => std::fs::read_dir(&path)
                .map_err(|e| HostError::io("reading the plugin folder", e))?
                .filter_map(Result::ok)
                .map(|e| PathBuf::from(e.file_name()))
                .collect(),
        };
        let manifest = match std::fs::read(path.join("manifest.json")) {
            Ok(bytes) => Manifest::parse(&bytes)?,
            Err(_) => return Err(HostError::Archive("the archive has no manifest.json at its root".to_owned())),
        };
        manifest.expect_kind(ManifestKind::Native)?;
        if manifest.name != name {
            return Err(HostError::Manifest(format!(
                "the request installs '{name}' but the manifest names the plugin '{}'",
                manifest.name
            )));
        }
        let is_library = |p: &Path| p.extension().is_some_and(|e| e == "so" || e == "dylib" || e == "dll");
        let library_file = match &manifest.library {
            Some(library) => {
                if !files.iter().any(|f| f == Path::new(library)) {
                    return Err(HostError::Archive(format!(
                        "the manifest's library '{library}' is not in the archive"
                    )));
                }
                library.clone()
            }
            None => {
                let libraries: Vec<&PathBuf> = files.iter().filter(|f| is_library(f)).collect();
                match libraries.as_slice() {
                    [one] => one.to_string_lossy().into_owned(),
                    [] => return Err(HostError::Archive("the archive has no library (.so, .dylib)".to_owned())),
                    _ => {
                        return Err(HostError::Manifest(
                            "the archive has several libraries: name one in `library`".to_owned(),
                        ));
                    }
                }
            }
        };
        Ok(Staged { name: name.to_owned(), dir: dir.to_owned(), library_file, manifest })
    }

    /// Removes a staged folder that will not be installed.
    pub fn discard(&self, staged: Staged) {
        let _ = std::fs::remove_dir_all(self.root.join(&staged.dir));
    }

    fn load(&self, staged: &Staged) -> Result<NativePlugin, HostError> {
        let plugin = native::load(&self.root.join(&staged.dir).join(&staged.library_file))?;
        native::check_manifest(&plugin, &staged.manifest)?;
        Ok(plugin)
    }

    /// Fails if a symbol of `plugin` is provided by someone other than `owner`.
    fn check_conflicts(&self, owner: &str, plugin: &NativePlugin, ours: Option<&Installed>) -> Result<(), HostError> {
        check_conflicts(&self.functions, &self.connectors, owner, &plugin.symbols, |symbol| {
            ours.is_some_and(|i| i.slots.contains_key(&(symbol.kind, symbol.name.clone())))
        })
    }

    fn register(
        &self,
        owner: &str,
        symbol: &SymbolInfo,
        slot: &Arc<Slot>,
        functions: &mut BTreeMap<String, Arc<NativeFunction>>,
    ) {
        match symbol.kind {
            SymbolKind::Function => {
                let function = Arc::new(NativeFunction::new(
                    &symbol.name,
                    owner,
                    symbol.aggregate,
                    &symbol.description,
                    Arc::clone(slot),
                ));
                self.functions.register(function.clone());
                functions.insert(symbol.name.clone(), function);
            }
            SymbolKind::Source => {
                self.connectors
                    .register_source(&symbol.name, Arc::new(NativeSourceFactory::new(&symbol.name, Arc::clone(slot))));
            }
            SymbolKind::Sink => {
                self.connectors
                    .register_sink(&symbol.name, Arc::new(NativeSinkFactory::new(&symbol.name, Arc::clone(slot))));
            }
        }
    }

    fn unregister(&self, kind: SymbolKind, name: &str) {
        match kind {
            SymbolKind::Function => {
                self.functions.unregister(FunctionOrigin::Native, name);
            }
            SymbolKind::Source => {
                self.connectors.unregister_source(name);
            }
            SymbolKind::Sink => {
                self.connectors.unregister_sink(name);
            }
        }
    }

    fn info(staged: &Staged, plugin: &NativePlugin) -> PluginInfo {
        let (major, minor) = plugin.library.abi;
        PluginInfo {
            name: staged.name.clone(),
            version: plugin.library.version.clone(),
            abi_version: format!("{major}.{minor}"),
            symbols: plugin.symbols.clone(),
            dir: staged.dir.clone(),
            library_file: staged.library_file.clone(),
        }
    }

    /// Loads a staged plugin and registers its symbols. On failure the staged
    /// folder is removed and nothing is registered.
    pub fn install(&self, staged: Staged) -> Result<PluginInfo, HostError> {
        let result = self.install_inner(&staged);
        if result.is_err() {
            self.discard(staged);
        }
        result
    }

    fn install_inner(&self, staged: &Staged) -> Result<PluginInfo, HostError> {
        let mut installed = self.lock();
        if installed.contains_key(&staged.name) {
            return Err(HostError::AlreadyExists(staged.name.clone()));
        }
        let plugin = self.load(staged)?;
        self.check_conflicts(&staged.name, &plugin, None)?;
        let mut slots = BTreeMap::new();
        let mut functions = BTreeMap::new();
        for symbol in &plugin.symbols {
            let slot = Slot::new(Arc::clone(&plugin.library), symbol.index);
            self.register(&staged.name, symbol, &slot, &mut functions);
            slots.insert((symbol.kind, symbol.name.clone()), slot);
        }
        let info = Self::info(staged, &plugin);
        installed.insert(staged.name.clone(), Installed { info: info.clone(), slots, functions });
        tracing::info!(plugin = %info.name, version = %info.version, abi = %info.abi_version, "native plugin loaded");
        Ok(info)
    }

    /// Loads a plugin installed earlier (at start-up), from its folder.
    pub fn load_installed(&self, name: &str, dir: &str) -> Result<PluginInfo, HostError> {
        let staged = self.stage(name, dir, None)?;
        self.install_inner(&staged)
    }

    /// Replaces an installed plugin with a staged new version. Symbols of both
    /// versions switch over in place (rules keep running); symbols the new
    /// version lacks are unregistered (rules that use them keep the old library
    /// until they stop). Returns the new info and the old folder, which the
    /// caller removes once the catalog points to the new one.
    pub fn update(&self, staged: Staged) -> Result<(PluginInfo, String), HostError> {
        let result = self.update_inner(&staged);
        if result.is_err() {
            self.discard(staged);
        }
        result
    }

    fn update_inner(&self, staged: &Staged) -> Result<(PluginInfo, String), HostError> {
        let mut installed = self.lock();
        let Some(current) = installed.get_mut(&staged.name) else {
            return Err(HostError::NotFound(staged.name.clone()));
        };
        // A swap waits for the calls in flight, and a stuck one never ends.
        if let Some(why) = current.slots.values().find_map(|slot| slot.current().library.stuck().map(str::to_owned)) {
            return Err(HostError::Invalid(format!("plugin '{}' cannot be updated in place: {why}", staged.name)));
        }
        let plugin = self.load(staged)?;
        self.check_conflicts(&staged.name, &plugin, Some(current))?;
        let mut slots = BTreeMap::new();
        for symbol in &plugin.symbols {
            let key = (symbol.kind, symbol.name.clone());
            let slot = match current.slots.remove(&key) {
                Some(slot) => {
                    slot.swap(Arc::clone(&plugin.library), symbol.index);
                    slot
                }
                None => {
                    let slot = Slot::new(Arc::clone(&plugin.library), symbol.index);
                    self.register(&staged.name, symbol, &slot, &mut current.functions);
                    slot
                }
            };
            slots.insert(key, slot);
        }
        for (kind, name) in current.slots.keys() {
            self.unregister(*kind, name);
            current.functions.remove(name);
        }
        current.slots = slots;
        let old_dir = std::mem::replace(&mut current.info, Self::info(staged, &plugin)).dir;
        let info = current.info.clone();
        tracing::info!(plugin = %info.name, version = %info.version, "native plugin reloaded");
        Ok((info, old_dir))
    }

    /// Unregisters a plugin's symbols and forgets it; its library is unloaded
    /// once the last rule using it has stopped. Returns what it was.
    pub fn remove(&self, name: &str) -> Result<PluginInfo, HostError> {
        let Some(removed) = self.lock().remove(name) else { return Err(HostError::NotFound(name.to_owned())) };
        for (kind, symbol) in removed.slots.keys() {
            self.unregister(*kind, symbol);
        }
        tracing::info!(plugin = %name, "native plugin removed");
        Ok(removed.info)
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

    /// Every installed plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.lock().values().map(|i| i.info.clone()).collect()
    }

    /// One installed plugin.
    pub fn get(&self, name: &str) -> Option<PluginInfo> {
        self.lock().get(name).map(|i| i.info.clone())
    }

    /// Why an installed plugin is unhealthy, if it is (a call that never returned).
    pub fn stuck(&self, name: &str) -> Option<String> {
        let installed = self.lock();
        installed.get(name)?.slots.values().find_map(|slot| slot.current().library.stuck().map(str::to_owned))
    }

    /// A function of an installed plugin, to call it directly (benchmarks).
    pub fn function(&self, plugin: &str, name: &str) -> Option<Arc<NativeFunction>> {
        self.lock().get(plugin)?.functions.get(&name.to_ascii_lowercase()).cloned()
    }
}
