//! What a client of Oort may make the server touch.
//!
//! - [`files`]: [`FileRoots`], the directories inside which every path a client
//!   names (a file stream's `DATASOURCE`, a file sink's `path`, a plugin archive)
//!   must resolve, symlinks included.

pub mod files;

pub use files::{FileRoots, PathError, PathUse};
