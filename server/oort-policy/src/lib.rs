//! What a client of Oort may make the server touch.
//!
//! - [`files`]: [`FileRoots`], the directories inside which every path a client
//!   names (a file stream's `DATASOURCE`, a file sink's `path`, a plugin archive)
//!   must resolve, symlinks included.
//! - [`egress`]: [`EgressPolicy`], which internal addresses the server may
//!   connect to for a client (external services, REST sinks, plugin URLs).
//! - [`secrets`]: which names carry secrets, never shown back.

pub mod egress;
pub mod files;
pub mod secrets;

pub use egress::{EgressError, EgressPolicy};
pub use files::{FileRoots, PathError, PathUse};
