//! Errors of the catalog.

use std::fmt;

/// The kinds of things the catalog stores, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A stream or table.
    Stream,
    /// A rule.
    Rule,
    /// A plugin.
    Plugin,
    /// An external service.
    Service,
    /// A named connection.
    Connection,
    /// A registered schema.
    Schema,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Stream => "stream",
            EntityKind::Rule => "rule",
            EntityKind::Plugin => "plugin",
            EntityKind::Service => "service",
            EntityKind::Connection => "connection",
            EntityKind::Schema => "schema",
        })
    }
}

/// Why a catalog operation failed. The first three are the caller's doing;
/// the rest are faults of the store or of its files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No entity of that kind and name.
    #[error("{kind} '{name}' not found")]
    NotFound { kind: EntityKind, name: String },
    /// An entity of that kind and name exists already.
    #[error("{kind} '{name}' already exists")]
    AlreadyExists { kind: EntityKind, name: String },
    /// The entity is used by others and cannot be removed.
    #[error("{kind} '{name}' is used by rule(s) {}", users.join(", "))]
    InUse { kind: EntityKind, name: String, users: Vec<String> },
    /// A store of bounded size is full.
    #[error("the {what} holds {limit} entries, the most it may")]
    Full { what: &'static str, limit: usize },
    /// A record was written by a newer format this build does not know.
    #[error("record '{key}' in tree '{tree}' has format version {found}, this build reads up to {supported}")]
    UnsupportedVersion { tree: &'static str, key: String, found: u8, supported: u8 },
    /// A record could not be decoded.
    #[error("record '{key}' in tree '{tree}' is corrupt: {reason}")]
    Corrupt { tree: &'static str, key: String, reason: String },
    /// The storage engine failed (I/O, a damaged database).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// The shared catalog in etcd failed or did not answer in time.
    #[error("the shared catalog (etcd) failed: {0}")]
    Etcd(String),
}
