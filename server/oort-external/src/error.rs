//! Errors of external services: [`ExternalError`] when registering (the
//! user's fault, or a name already taken), [`CallError`] when calling (the
//! remote service's, or a value that does not convert), which the rule
//! counts as an error on that event.

/// Why a service cannot be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExternalError {
    /// The description is malformed or incomplete.
    #[error("{0}")]
    Description(String),
    /// A .proto file does not compile.
    #[error("the .proto files do not compile: {0}")]
    Proto(String),
    /// A function maps onto a method the .proto does not define.
    #[error("{0}")]
    MissingMethod(String),
    /// A function name is taken by a built-in or another service.
    #[error("{0}")]
    NameTaken(String),
    /// No service of that name is registered.
    #[error("service '{0}' not found")]
    NotFound(String),
}

/// Why one call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// An argument does not convert to the request's field type.
    #[error("{0}")]
    Convert(String),
    /// The service could not be reached.
    #[error("service unreachable: {0}")]
    Unavailable(String),
    /// The call did not finish within its deadline.
    #[error("deadline of {0} ms exceeded")]
    Deadline(u64),
    /// The service answered with an error status.
    #[error("service answered {0}")]
    Status(String),
    /// The answer does not decode as the method's response.
    #[error("bad response: {0}")]
    Response(String),
}
