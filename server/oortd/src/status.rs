//! The one place where errors become `tonic::Status`, so that codes stay honest
//! and consistent across services.

use oort_connectors::journal::JournalError;
use oort_engine::{ConnectorError, EngineError, PlanError};
use oort_external::ExternalError;
use oort_plugin_host::HostError;
use oort_store::{EntityKind, StoreError};
use tonic::{Code, Status};

use crate::error::ApiError;

/// The longest message a status carries. Messages quote their input (names,
/// SQL, paths); a client that sends 100,000 characters must get its
/// `INVALID_ARGUMENT` back, not a message over gRPC's metadata limit.
pub const MAX_MESSAGE_CHARS: usize = 512;

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let status = status_of(error);
        match status.message().chars().nth(MAX_MESSAGE_CHARS) {
            None => status,
            Some(_) => {
                let cut: String = status.message().chars().take(MAX_MESSAGE_CHARS).collect();
                Status::new(status.code(), format!("{cut}…"))
            }
        }
    }
}

fn status_of(error: ApiError) -> Status {
    match error {
        ApiError::InvalidArgument(message) => Status::invalid_argument(message),
        ApiError::Sql(e) => Status::invalid_argument(e.to_string()),
        ApiError::Store(e) => store_status(e),
        ApiError::Engine(e) => engine_status(e),
        ApiError::Plugin(e) => plugin_status(e),
        ApiError::External(e) => external_status(e),
        ApiError::Journal(e @ JournalError::Full { .. }) => Status::resource_exhausted(e.to_string()),
        ApiError::Journal(e @ JournalError::Io { .. }) => Status::unavailable(e.to_string()),
        ApiError::NotFound(message) => Status::not_found(message),
        ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
        ApiError::Unimplemented(what) => Status::unimplemented(what),
        ApiError::Internal(message) => {
            tracing::error!(%message, "internal error");
            Status::internal(message)
        }
    }
}

/// tonic answers a request it cannot decode (malformed protobuf, a string
/// that is not UTF-8) with `INTERNAL`; it is the client's fault, so it becomes
/// `INVALID_ARGUMENT`. A response-mapping layer: these statuses never reach a
/// handler.
pub fn decode_errors_are_invalid_arguments(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let decode = |message: &http::HeaderValue| {
        let bytes = message.as_bytes();
        bytes.starts_with(b"failed to decode") || bytes.starts_with(b"failed%20to%20decode")
    };
    if headers.get("grpc-status").is_some_and(|code| code == "13") && headers.get("grpc-message").is_some_and(decode) {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}

fn store_status(error: StoreError) -> Status {
    let code = match &error {
        StoreError::NotFound { .. } => Code::NotFound,
        StoreError::AlreadyExists { .. } => Code::AlreadyExists,
        StoreError::InUse { .. } => Code::FailedPrecondition,
        StoreError::Full { .. } => Code::ResourceExhausted,
        StoreError::UnsupportedVersion { .. } | StoreError::Corrupt { .. } | StoreError::Sled(_) => {
            tracing::error!(%error, "catalog failure");
            Code::Internal
        }
        StoreError::Etcd(_) => {
            tracing::error!(%error, "shared catalog failure");
            Code::Unavailable
        }
    };
    let message = match &error {
        StoreError::InUse { kind: EntityKind::Stream, name, users } => {
            format!("stream '{name}' is read by rule(s) {}; delete or change them first", users.join(", "))
        }
        _ => error.to_string(),
    };
    Status::new(code, message)
}

fn engine_status(error: EngineError) -> Status {
    let code = match &error {
        EngineError::Plan(PlanError::UnknownStream(_)) => Code::NotFound,
        EngineError::Plan(PlanError::Unsupported(_)) => Code::Unimplemented,
        EngineError::Plan(_) | EngineError::Connector(ConnectorError::Config(_) | ConnectorError::Option { .. }) => {
            Code::InvalidArgument
        }
        EngineError::Connector(ConnectorError::External(_)) => Code::Unavailable,
    };
    Status::new(code, error.to_string())
}

fn plugin_status(error: HostError) -> Status {
    let code = match &error {
        HostError::Archive(_)
        | HostError::Manifest(_)
        | HostError::Library(_)
        | HostError::Invalid(_)
        | HostError::Refused(_)
        | HostError::Start { .. }
        | HostError::Environment { .. } => Code::InvalidArgument,
        HostError::Abi { .. } => Code::FailedPrecondition,
        HostError::NotFound(_) => Code::NotFound,
        HostError::AlreadyExists(_) | HostError::Conflict(_) => Code::AlreadyExists,
        HostError::Download(_) => Code::Unavailable,
        HostError::Io(_) => {
            tracing::error!(%error, "plugin storage failure");
            Code::Internal
        }
    };
    Status::new(code, error.to_string())
}

fn external_status(error: ExternalError) -> Status {
    let code = match &error {
        ExternalError::Description(_) | ExternalError::Proto(_) | ExternalError::MissingMethod(_) => {
            Code::InvalidArgument
        }
        ExternalError::NameTaken(_) => Code::AlreadyExists,
        ExternalError::NotFound(_) => Code::NotFound,
    };
    Status::new(code, error.to_string())
}
