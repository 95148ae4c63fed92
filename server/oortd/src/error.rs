//! What a request handler can fail with. Mapped to gRPC codes in [`crate::status`].

use oort_sql::SqlError;
use oort_store::StoreError;

/// A failed API call, by whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (a missing field, a bad name, bad options).
    #[error("{0}")]
    InvalidArgument(String),
    /// The SQL does not parse or does not make sense; carries its position.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// The engine refused a rule (its plan or its connectors).
    #[error(transparent)]
    Engine(#[from] oort_engine::EngineError),
    /// An external service cannot be registered.
    #[error(transparent)]
    External(#[from] oort_external::ExternalError),
    /// The catalog refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plugin host refused or failed.
    #[error(transparent)]
    Plugin(#[from] oort_plugin_host::HostError),
    /// No such entity, outside the catalog (e.g. a stream in a Publish).
    #[error("{0}")]
    NotFound(String),
    /// The entity is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The call belongs to a part of Oort that is not built yet.
    #[error("{0}")]
    Unimplemented(&'static str),
    /// A stream's journal refused published events.
    #[error(transparent)]
    Journal(#[from] oort_connectors::journal::JournalError),
    /// A bug or a lost background task.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of a request handler.
pub type ApiResult<T> = Result<T, ApiError>;
