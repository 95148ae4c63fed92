//! The plugin host: everything that turns a plugin into functions, sources
//! and sinks of the engine's registries, so that a rule cannot tell them from
//! built-ins.
//!
//! - [`native`]: native plugins, dynamic libraries loaded through the C ABI
//!   (`plugins/ABI.md`), with hot reload behind a swappable slot.
//! - [`portable`]: portable plugins, processes speaking `oort.plugin.v1` over a
//!   Unix socket, supervised ([`PortableHost`]).
//! - [`archive`]: safe unpacking of plugin zips; [`manifest`]: `manifest.json`.
//! - [`download`]: fetching archives from http(s) URLs, refusing private addresses.
//! - [`convert`]: engine values ↔ the `oort.v1` messages of the ABI, of portable plugins and of the API.
//! - [`error`]: [`HostError`], why a plugin operation failed.

pub mod archive;
pub mod convert;
pub mod download;
pub mod error;
pub mod manifest;
pub mod native;
pub mod plugins;
pub mod portable;

pub use error::HostError;
pub use native::host::{PluginHost, PluginInfo, Staged, check_name};
pub use native::{SymbolInfo, SymbolKind};
pub use plugins::{Health, Installed, PluginKind, Plugins};
pub use portable::{EnvironmentConfig, PortableConfig, PortableHost, PortableInfo, ProcessStatus};
