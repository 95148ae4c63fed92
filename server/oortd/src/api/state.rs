//! `oort.v1.StateService`: the keyed values rules read with
//! `get_keyed_state`, kept in the catalog; and the engine's view of them.

use std::sync::Arc;

use oort_proto::v1::state_service_server::StateService;
use oort_proto::v1::{
    DeleteKeyedStateRequest, DeleteKeyedStateResponse, GetKeyedStateRequest, GetKeyedStateResponse,
    ListKeyedStateRequest, ListKeyedStateResponse, PutKeyedStateRequest, PutKeyedStateResponse,
};
use oort_store::Catalog;
use prost::Message as _;
use tonic::{Request, Response, Status};

use super::CatalogHandle;
use crate::error::{ApiError, ApiResult};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest value, encoded.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most entries (or keys) one call takes.
pub const MAX_ENTRIES_PER_CALL: usize = 1000;
/// The most keys the server keeps.
pub const MAX_KEYS: usize = 1_000_000;
/// A page's size when the request names none.
const DEFAULT_PAGE_SIZE: usize = 100;

/// Serves `StateService` from the catalog.
pub struct StateApi {
    catalog: CatalogHandle,
}

impl StateApi {
    /// A service over the catalog.
    pub fn new(catalog: CatalogHandle) -> Self {
        Self { catalog }
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::InvalidArgument(format!("a key is 1 to {MAX_KEY_BYTES} bytes; got {} bytes", key.len())));
    }
    Ok(())
}

fn check_count(count: usize, what: &str) -> ApiResult<()> {
    if count > MAX_ENTRIES_PER_CALL {
        return Err(ApiError::InvalidArgument(format!("{count} {what} in one call; at most {MAX_ENTRIES_PER_CALL}")));
    }
    Ok(())
}

#[tonic::async_trait]
impl StateService for StateApi {
    async fn put_keyed_state(
        &self,
        request: Request<PutKeyedStateRequest>,
    ) -> Result<Response<PutKeyedStateResponse>, Status> {
        let entries = request.into_inner().entries;
        check_count(entries.len(), "entries")?;
        for entry in &entries {
            check_key(&entry.key)?;
            let value = super::required(entry.value.as_ref(), "value")
                .map_err(|e| ApiError::InvalidArgument(format!("key {:?}: {e}", entry.key)))?;
            if value.encoded_len() > MAX_VALUE_BYTES {
                return Err(ApiError::InvalidArgument(format!(
                    "the value of key {:?} is {} bytes encoded; at most {MAX_VALUE_BYTES}",
                    entry.key,
                    value.encoded_len()
                ))
                .into());
            }
        }
        let created = self.catalog.call(move |c| c.put_keyed_state(&entries, MAX_KEYS)).await?;
        Ok(Response::new(PutKeyedStateResponse { created: created as u32 }))
    }

    async fn get_keyed_state(
        &self,
        request: Request<GetKeyedStateRequest>,
    ) -> Result<Response<GetKeyedStateResponse>, Status> {
        let key = request.into_inner().key;
        check_key(&key)?;
        let lookup = key.clone();
        match self.catalog.call(move |c| c.get_keyed_state(&lookup)).await? {
            Some(value) => Ok(Response::new(GetKeyedStateResponse { value: Some(value) })),
            None => Err(ApiError::NotFound(format!("key {key:?} has no value")).into()),
        }
    }

    async fn list_keyed_state(
        &self,
        request: Request<ListKeyedStateRequest>,
    ) -> Result<Response<ListKeyedStateResponse>, Status> {
        let ListKeyedStateRequest { prefix, page_size, page_token } = request.into_inner();
        let size = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_ENTRIES_PER_CALL => n,
            n => return Err(ApiError::InvalidArgument(format!("page_size {n}; at most {MAX_ENTRIES_PER_CALL}")).into()),
        };
        if prefix.len() > MAX_KEY_BYTES || page_token.len() > MAX_KEY_BYTES {
            return Err(
                ApiError::InvalidArgument(format!("a prefix or page token is at most {MAX_KEY_BYTES} bytes")).into()
            );
        }
        // The token is the last key of the previous page; one more entry says whether a page follows.
        let after = (!page_token.is_empty()).then_some(page_token);
        let mut entries = self.catalog.call(move |c| c.list_keyed_state(&prefix, after.as_deref(), size + 1)).await?;
        let next_page_token = if entries.len() > size {
            entries.truncate(size);
            entries.last().map(|e| e.key.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListKeyedStateResponse { entries, next_page_token }))
    }

    async fn delete_keyed_state(
        &self,
        request: Request<DeleteKeyedStateRequest>,
    ) -> Result<Response<DeleteKeyedStateResponse>, Status> {
        let keys = request.into_inner().keys;
        check_count(keys.len(), "keys")?;
        for key in &keys {
            check_key(key)?;
        }
        let deleted = self.catalog.call(move |c| c.delete_keyed_state(&keys)).await?;
        Ok(Response::new(DeleteKeyedStateResponse { deleted: deleted as u32 }))
    }
}

/// What `get_keyed_state` reads: the catalog's keyed values.
pub struct CatalogKeyedState(pub Arc<dyn Catalog>);

impl oort_engine::KeyedStateStore for CatalogKeyedState {
    fn get(&self, key: &str) -> Result<Option<oort_engine::Value>, String> {
        match self.0.get_keyed_state(key) {
            Ok(value) => Ok(value.as_ref().map(oort_plugin_host::convert::from_proto)),
            Err(e) => Err(e.to_string()),
        }
    }
}
