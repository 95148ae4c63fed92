//! The Rust SDK of Oort plugins.
//!
//! A plugin implements [`Function`], [`Source`] and [`Sink`] (in the style of
//! eKuiper's plugin API), lists them in a [`Plugin`], and exports it with one
//! macro, [`export_plugin!`]. Built as a `cdylib`, the crate is a native plugin
//! that `oortd` loads through the versioned C ABI of [`abi`].
//!
//! - [`api`]: the traits and the [`Plugin`] builder.
//! - [`value`]: [`Value`], [`Row`], [`Event`] and their wire conversions.
//! - [`abi`]: the `#[repr(C)]` table and value layout (see `plugins/ABI.md`).
//! - [`wire`]: the `oort.plugin.v1` / `oort.v1` messages that cross the boundary (`oort-proto`'s).
//! - [`export`]: the plugin side of the ABI (all of the SDK's unsafe code).
//! - `portable` (cargo feature `portable`): the same plugin served as a process
//!   of its own over `oort.plugin.v1`; `export_plugin!` then also defines
//!   `serve_portable()`, which a `[[bin]]` target's `main` calls.

pub mod abi;
pub mod api;
#[allow(unsafe_code)] // the C ABI the host calls: the SDK's only unsafe code
pub mod export;
#[cfg(feature = "portable")]
pub mod portable;
pub mod value;
pub mod wire;

pub use api::{Context, Function, Plugin, Sink, Source};
pub use value::{Event, Row, Value};
