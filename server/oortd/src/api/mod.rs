//! One module per `oort.v1` service. Handlers validate, call the catalog (and,
//! later, the engine), and return `ApiError`s that [`crate::status`] maps.

pub mod connections;
pub mod connectors;
pub mod events;
pub mod external;
pub mod functions;
pub mod plugins;
pub mod rules;
pub mod state;
pub mod streams;

use std::sync::Arc;
use std::time::SystemTime;

use oort_store::{Catalog, StoreError};

use crate::error::{ApiError, ApiResult};

/// Shared handle to the catalog. Catalog calls do blocking I/O (a flush per
/// write), so they run on tokio's blocking pool, never on a reactor thread.
#[derive(Clone)]
pub struct CatalogHandle(Arc<dyn Catalog>);

impl CatalogHandle {
    /// Wraps a catalog.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self(catalog)
    }

    /// The catalog itself, for quick reads that need no blocking pool.
    pub fn direct(&self) -> &dyn Catalog {
        self.0.as_ref()
    }

    /// Runs `f` against the catalog on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Catalog) -> Result<T, StoreError> + Send + 'static,
    {
        let catalog = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(catalog.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("catalog task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// The current time as a protobuf timestamp.
pub(crate) fn now() -> prost_types::Timestamp {
    SystemTime::now().into()
}

/// Takes a required message field out of a request.
pub(crate) fn required<T>(field: Option<T>, name: &str) -> ApiResult<T> {
    field.ok_or_else(|| ApiError::InvalidArgument(format!("`{name}` is required")))
}
