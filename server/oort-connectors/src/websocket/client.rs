//! Oort as a websocket client: a server's settings resolved once (TLS files
//! read when the stream or rule is created), and a connection per attempt.

use std::sync::Arc;
use std::time::Duration;

use oort_engine::ConnectorError;
use oort_policy::EgressPolicy;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig as ProtocolConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{MAX_MESSAGE, WebsocketConfig, WebsocketContext};
use crate::connections::{ClientLink, LinkState, Origin};

/// How long connecting (TCP, TLS and the handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected websocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server to connect to: its settings, where they come from, its TLS.
pub(crate) struct Target {
    config: WebsocketConfig,
    pub(crate) origin: Origin,
    tls: Option<Arc<rustls::ClientConfig>>,
    egress: Option<Arc<EgressPolicy>>,
}

impl Target {
    /// Checks `config` and reads its TLS files.
    pub(crate) fn resolve(
        context: &WebsocketContext,
        config: WebsocketConfig,
        origin: Origin,
    ) -> Result<Self, ConnectorError> {
        config.host_port()?;
        let tls = if config.secure()? {
            Some(config.tls.client_config(&context.files, "websocket", &config.addr)?)
        } else {
            None
        };
        let egress = (!origin.trusted).then(|| Arc::clone(&context.egress));
        Ok(Self { config, origin, tls, egress })
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.config.addr.trim())
    }

    /// Connects to `path`, reporting to `link`. A refusal by the egress
    /// policy is `ConnectorError::Config`: retrying cannot fix it.
    pub(crate) async fn connect(&self, path: &str, link: &ClientLink) -> Result<Socket, ConnectorError> {
        link.set(LinkState::Connecting);
        let url = self.url(path);
        if let Some(policy) = &self.egress {
            let (host, port) = self.config.host_port()?;
            if let Err(why) = crate::connections::check_egress(policy, &host, port).await {
                link.set(LinkState::Disconnected(why.clone()));
                return Err(ConnectorError::Config(format!("websocket {url}: {why}")));
            }
        }
        let connector = match &self.tls {
            Some(tls) => Connector::Rustls(Arc::clone(tls)),
            None => Connector::Plain,
        };
        let protocol = ProtocolConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        let attempt = tokio_tungstenite::connect_async_tls_with_config(&url, Some(protocol), true, Some(connector));
        let failed = |why: String| {
            link.set(LinkState::Disconnected(why.clone()));
            ConnectorError::External(format!("websocket {url}: {why}"))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok((socket, _))) => {
                link.set(LinkState::Connected);
                Ok(socket)
            }
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))),
        }
    }
}
