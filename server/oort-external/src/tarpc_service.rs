//! tarpc invocation, for Rust services. Oort calls one generic service,
//! [`OortRpc`], whose single method carries the protobuf method name and the
//! protobuf-encoded request, and answers the protobuf-encoded response: a
//! Rust service implements `OortRpc` once (decoding with prost the messages of
//! its .proto), and the same `.proto` describes it to Oort as for gRPC.
//!
//! Wire: tarpc over TCP with tarpc's bincode serde transport; the address is
//! `tcp://host:port` or `host:port`. The deadline of each call travels in
//! tarpc's context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oort_policy::EgressPolicy;
use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use tarpc::tokio_serde::formats::Bincode;
use tokio::sync::Mutex;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::error::{CallError, ExternalError};

/// The generic request/response service an `rpc` interface implements.
#[tarpc::service]
pub trait OortRpc {
    /// Calls `method` (`package.Service/Method`, as in a gRPC path) with a
    /// protobuf-encoded request; returns the protobuf-encoded response, or an
    /// error message that the rule reports.
    async fn call(method: String, request: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// The tarpc side of one interface: one connection, made on first use and
/// made again after it breaks.
pub struct RpcClient {
    address: String,
    egress: Arc<EgressPolicy>,
    client: Mutex<Option<OortRpcClient>>,
}

impl RpcClient {
    /// A client of `address` (`tcp://host:port` or `host:port`).
    pub fn new(address: &str, egress: &Arc<EgressPolicy>) -> Result<Self, ExternalError> {
        let address = address.trim().strip_prefix("tcp://").unwrap_or(address.trim()).to_owned();
        if address.contains("://") || !address.contains(':') {
            return Err(ExternalError::Description(format!(
                "rpc address \"{address}\" must be host:port or tcp://host:port"
            )));
        }
        Ok(Self { address, egress: Arc::clone(egress), client: Mutex::new(None) })
    }

    async fn connected(&self) -> Result<OortRpcClient, CallError> {
        let mut client = self.client.lock().await;
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let unavailable = |e: std::io::Error| CallError::Unavailable(format!("{}: {e}", self.address));
        let (host, port) = self.address.rsplit_once(':').unwrap_or((&self.address, "0"));
        let port = port.parse().map_err(|_| CallError::Unavailable(format!("{}: bad port", self.address)))?;
        let stream = self.egress.connect(host, port).await.map_err(unavailable)?;
        let codec = LengthDelimitedCodec::builder().max_frame_length(crate::grpc::MAX_RESPONSE_BYTES).new_codec();
        let transport = tarpc::serde_transport::new(Framed::new(stream, codec), Bincode::default());
        let fresh = OortRpcClient::new(tarpc::client::Config::default(), transport).spawn();
        *client = Some(fresh.clone());
        Ok(fresh)
    }

    /// Calls `method` with `request`, within `timeout`.
    pub async fn call(
        &self,
        method: &MethodDescriptor,
        request: DynamicMessage,
        timeout: Duration,
    ) -> Result<DynamicMessage, CallError> {
        let client = self.connected().await?;
        let mut context = tarpc::context::current();
        context.deadline = Instant::now() + timeout;
        let name = format!("{}/{}", method.parent_service().full_name(), method.name());
        let answer = client.call(context, name, request.encode_to_vec()).await.map_err(|e| match e {
            tarpc::client::RpcError::DeadlineExceeded => CallError::Deadline(timeout.as_millis() as u64),
            other => {
                // A broken connection is made again at the next call.
                if let Ok(mut cached) = self.client.try_lock() {
                    *cached = None;
                }
                CallError::Unavailable(other.to_string())
            }
        })?;
        let bytes = answer.map_err(CallError::Status)?;
        DynamicMessage::decode(method.output(), bytes.as_slice())
            .map_err(|e| CallError::Response(format!("not a {}: {e}", method.output().full_name())))
    }
}
