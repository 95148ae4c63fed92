//! [`HostError`]: why installing, loading or calling a plugin failed, by whose fault.

/// A failure of the plugin host. The server maps each variant to a gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The archive is not a valid plugin zip (user input).
    #[error("invalid plugin archive: {0}")]
    Archive(String),
    /// The manifest is missing, malformed, or disagrees with the library (user input).
    #[error("invalid plugin manifest: {0}")]
    Manifest(String),
    /// The library cannot be loaded or does not export the plugin table (user input).
    #[error("invalid plugin library: {0}")]
    Library(String),
    /// The library's ABI major version differs from the server's.
    #[error(
        "plugin '{plugin}' was built for the native plugin ABI {has}, this server needs ABI {needs}.x: rebuild it with an oort-plugin SDK of ABI {needs}"
    )]
    Abi { plugin: String, has: String, needs: u32 },
    /// A portable plugin's process could not be started or did not speak the protocol.
    #[error("plugin '{plugin}' could not be started: {message}")]
    Start { plugin: String, message: String },
    /// A Python plugin's environment could not be made or its requirements installed.
    #[error("plugin '{plugin}': its Python environment could not be made: {message}")]
    Environment { plugin: String, message: String },
    /// No plugin of that name is installed.
    #[error("plugin '{0}' not found")]
    NotFound(String),
    /// A plugin of that name is installed already.
    #[error("plugin '{0}' already exists; use UpdatePlugin to replace it")]
    AlreadyExists(String),
    /// A symbol's name is taken (by a built-in or another plugin).
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong in another way (a name, a URL).
    #[error("{0}")]
    Invalid(String),
    /// The download was refused by the configuration (a private address).
    #[error("{0}")]
    Refused(String),
    /// Downloading the archive failed (external).
    #[error("cannot download the plugin: {0}")]
    Download(String),
    /// The server's own files failed (internal).
    #[error("plugin storage error: {0}")]
    Io(String),
}

impl HostError {
    pub(crate) fn io(what: &str, error: std::io::Error) -> Self {
        HostError::Io(format!("{what}: {error}"))
    }
}
