//! The one place where errors become `tonic::Status`, so that codes stay honest
//! and consistent across services.

use oort_store::{EntityKind, StoreError};
use tonic::{Code, Status};

use crate::error::ApiError;

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(message) => Status::invalid_argument(message),
            ApiError::Sql(e) => Status::invalid_argument(e.to_string()),
            ApiError::Store(e) => store_status(e),
            ApiError::Unimplemented(what) => Status::unimplemented(what),
            ApiError::Internal(message) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}

fn store_status(error: StoreError) -> Status {
    let code = match &error {
        StoreError::NotFound { .. } => Code::NotFound,
        StoreError::AlreadyExists { .. } => Code::AlreadyExists,
        StoreError::InUse { .. } => Code::FailedPrecondition,
        StoreError::UnsupportedVersion { .. } | StoreError::Corrupt { .. } | StoreError::Sled(_) => {
            tracing::error!(%error, "catalog failure");
            Code::Internal
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
