//! Native plugins: dynamic libraries loaded with libloading through the C ABI
//! of `oort_plugin::abi`.
//!
//! - [`host`]: [`PluginHost`](host::PluginHost), the installed native plugins, their files and registrations;
//! - [`ffi`]: loading a library and calling its table (all the host's unsafe code);
//! - [`slot`]: the swappable indirection behind every registered symbol (hot reload);
//! - [`function`], [`source`], [`sink`]: the adapters to the engine's traits;
//! - [`watchdog`]: notices calls that never return.

#[allow(unsafe_code)] // loading libraries and calling their C table: the host's only unsafe code
pub mod ffi;
pub mod function;
pub mod host;
pub mod sink;
pub mod slot;
pub mod source;
pub mod watchdog;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use oort_plugin::wire;
use prost::Message;

pub use ffi::Library;
pub use function::NativeFunction;

use crate::error::HostError;
use crate::manifest::Manifest;

/// What a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolKind {
    /// A source type.
    Source,
    /// A sink type.
    Sink,
    /// A SQL function.
    Function,
}

/// One symbol of a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolInfo {
    /// Name, lower-case.
    pub name: String,
    /// Source, sink or function.
    pub kind: SymbolKind,
    /// For functions: aggregate or not.
    pub aggregate: bool,
    /// One line.
    pub description: String,
    /// Index in the library's table.
    pub index: u32,
}

/// A loaded library and what it says it provides.
pub struct NativePlugin {
    /// The library.
    pub library: Arc<Library>,
    /// Its symbols, in index order.
    pub symbols: Vec<SymbolInfo>,
}

/// Loads the library at `path` and reads its symbols.
pub fn load(path: &Path) -> Result<NativePlugin, HostError> {
    let library = Library::open(path)?;
    let describe = wire::DescribeResponse::decode(library.describe.as_slice())
        .map_err(|e| HostError::Library(format!("the plugin's self-description does not decode: {e}")))?;
    let mut symbols = Vec::with_capacity(describe.symbols.len());
    for (index, symbol) in describe.symbols.into_iter().enumerate() {
        let kind = match symbol.kind {
            wire::symbol_kind::SOURCE => SymbolKind::Source,
            wire::symbol_kind::SINK => SymbolKind::Sink,
            wire::symbol_kind::FUNCTION => SymbolKind::Function,
            other => return Err(HostError::Library(format!("symbol '{}' has an unknown kind {other}", symbol.name))),
        };
        symbols.push(SymbolInfo {
            name: symbol.name.to_ascii_lowercase(),
            kind,
            aggregate: symbol.aggregate,
            description: symbol.description,
            index: index as u32,
        });
    }
    let library = Arc::new(library);
    watchdog::register(&library);
    Ok(NativePlugin { library, symbols })
}

pub(crate) fn describe_symbols(set: &BTreeSet<(SymbolKind, String, bool)>) -> String {
    let names: Vec<String> = set
        .iter()
        .map(|(kind, name, aggregate)| {
            let kind = match kind {
                SymbolKind::Source => "source",
                SymbolKind::Sink => "sink",
                SymbolKind::Function if *aggregate => "aggregate function",
                SymbolKind::Function => "function",
            };
            format!("{kind} {name}")
        })
        .collect();
    if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
}

/// Checks that the manifest and the library agree: name, version, symbols.
pub fn check_manifest(plugin: &NativePlugin, manifest: &Manifest) -> Result<(), HostError> {
    let library = &plugin.library;
    if library.name != manifest.name {
        return Err(HostError::Manifest(format!(
            "the manifest names the plugin '{}' but the library is '{}'",
            manifest.name, library.name
        )));
    }
    if library.version != manifest.version {
        return Err(HostError::Manifest(format!(
            "the manifest says version {} but the library is version {}",
            manifest.version, library.version
        )));
    }
    let declared: BTreeSet<(SymbolKind, String, bool)> = manifest
        .functions
        .iter()
        .map(|f| (SymbolKind::Function, f.name.to_ascii_lowercase(), f.aggregate))
        .chain(manifest.sources.iter().map(|s| (SymbolKind::Source, s.name.to_ascii_lowercase(), false)))
        .chain(manifest.sinks.iter().map(|s| (SymbolKind::Sink, s.name.to_ascii_lowercase(), false)))
        .collect();
    let actual: BTreeSet<(SymbolKind, String, bool)> =
        plugin.symbols.iter().map(|s| (s.kind, s.name.clone(), s.aggregate)).collect();
    if declared != actual {
        let missing: BTreeSet<_> = declared.difference(&actual).cloned().collect();
        let extra: BTreeSet<_> = actual.difference(&declared).cloned().collect();
        return Err(HostError::Manifest(format!(
            "the manifest does not match the library's symbols: declared but not in the library: {}; in the library but not declared: {}",
            describe_symbols(&missing),
            describe_symbols(&extra)
        )));
    }
    Ok(())
}
