//! tarpc invocation (not built yet).

use std::time::Duration;

use prost_reflect::{DynamicMessage, MethodDescriptor};

use crate::error::{CallError, ExternalError};

/// The tarpc side of one interface.
pub struct RpcClient;

impl RpcClient {
    /// Not built yet.
    pub fn new(_address: &str) -> Result<Self, ExternalError> {
        Err(ExternalError::Description("protocol \"rpc\" is not supported yet".into()))
    }

    /// Not built yet.
    pub async fn call(
        &self,
        _: &MethodDescriptor,
        _: DynamicMessage,
        _: Duration,
    ) -> Result<DynamicMessage, CallError> {
        Err(CallError::Unavailable("rpc is not supported yet".into()))
    }
}
