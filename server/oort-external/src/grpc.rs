//! gRPC invocation: a tonic codec over [`DynamicMessage`], one lazily connected
//! channel per interface (HTTP/2, reused by every call), a deadline per call.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use oort_policy::EgressPolicy;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::{CallError, ExternalError};

/// Most bytes a response may have.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Encodes requests and decodes responses of one method, whatever its types.
#[derive(Clone)]
pub struct DynamicCodec(pub MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicCodec;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

/// The encoding half of [`DynamicCodec`].
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

impl Decoder for DynamicCodec {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding the response as {}: {e}", self.0.full_name())))
    }
}

/// The gRPC side of one interface.
pub struct GrpcClient {
    channel: Channel,
    metadata: MetadataMap,
}

/// `tcp://h:p` and `h:p` → `http://h:p`; URLs stay as they are.
pub fn endpoint_uri(address: &str) -> String {
    let address = address.trim();
    if let Some(rest) = address.strip_prefix("tcp://") {
        format!("http://{rest}")
    } else if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl GrpcClient {
    /// A client of `address` (connected on first use). Must be called inside a tokio runtime.
    pub fn new(
        address: &str,
        headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
        egress: &Arc<EgressPolicy>,
    ) -> Result<Self, ExternalError> {
        let uri = endpoint_uri(address);
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| ExternalError::Description(format!("address \"{address}\" is not valid: {e}")))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        let mut metadata = MetadataMap::new();
        for (k, v) in headers {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| ExternalError::Description(format!("header name \"{k}\" is not valid")))?;
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| ExternalError::Description(format!("header \"{k}\" has a value that is not valid")))?;
            metadata.insert(key, value);
        }
        // Connections go through the egress policy: the address connected is the one checked.
        let egress = Arc::clone(egress);
        let connector = tower::service_fn(move |uri: http::Uri| {
            let egress = Arc::clone(&egress);
            async move {
                let host = uri.host().unwrap_or_default().to_owned();
                let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
                let stream = egress.connect(&host, port).await?;
                stream.set_nodelay(true)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        Ok(Self { channel: endpoint.connect_with_connector_lazy(connector), metadata })
    }

    /// Calls `method` with `request`, within `timeout`.
    pub async fn call(
        &self,
        method: &MethodDescriptor,
        request: DynamicMessage,
        timeout: Duration,
    ) -> Result<DynamicMessage, CallError> {
        let path = PathAndQuery::try_from(format!("/{}/{}", method.parent_service().full_name(), method.name()))
            .map_err(|e| CallError::Convert(format!("method path: {e}")))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES);
        grpc.ready().await.map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(timeout);
        let response = grpc.unary(request, path, DynamicCodec(method.output())).await.map_err(|status| {
            let millis = timeout.as_millis() as u64;
            match status.code() {
                Code::DeadlineExceeded => CallError::Deadline(millis),
                Code::Unavailable => CallError::Unavailable(status_text(&status)),
                Code::Cancelled if status.message().contains("Timeout expired") => CallError::Deadline(millis),
                _ => CallError::Status(status_text(&status)),
            }
        })?;
        Ok(response.into_inner())
    }
}

fn status_text(status: &Status) -> String {
    let source = std::error::Error::source(status).map(|s| format!(" ({s})")).unwrap_or_default();
    format!("{:?}: {}{source}", status.code(), status.message())
}
