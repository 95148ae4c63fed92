//! The `httppush` source: clients POST events over HTTP, as with eKuiper's
//! httppush source. A stream declares the URL path as its DATASOURCE
//! (`CREATE STREAM s () WITH (TYPE="httppush", DATASOURCE="/api/data")`) and
//! receives each request body as one event, decoded per its FORMAT. The server
//! serves [`router`] on its HTTP push address (eKuiper's default port 10081).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use oort_engine::{ConnectorError, Payload, Source, SourceConfig, SourceEvent, SourceFactory};

use crate::bus::{BusSource, TopicBus};
use crate::websocket::WebsocketHub;

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Longest time a request's body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds `httppush` sources.
pub struct HttpPushSourceFactory(pub Arc<TopicBus>);

impl SourceFactory for HttpPushSourceFactory {
    fn description(&self) -> &'static str {
        "Takes events POSTed (or PUT) to the server's HTTP push address; DATASOURCE is the path, such as /api/data."
    }

    /// None besides every stream's own.
    fn options(&self) -> Option<Vec<oort_engine::ConnectorOption>> {
        Some(Vec::new())
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        if !config.datasource.starts_with('/') {
            return Err(ConnectorError::Config(format!(
                "an httppush stream needs DATASOURCE, the URL path events are POSTed to, starting with '/' (got {:?})",
                config.datasource
            )));
        }
        Ok(BusSource::subscribe(&self.0, &config.datasource, config))
    }

    /// With a journaled bus, what is POSTed for a rule with qos >= 1 is
    /// journaled and replayed after a restart.
    fn positions(
        &self,
        config: &SourceConfig,
    ) -> Result<Option<Arc<dyn oort_engine::SourcePositions>>, ConnectorError> {
        self.0.positions(&config.datasource, config)
    }
}

/// The HTTP routes of the push endpoint: any path, POST or PUT; a GET is a
/// websocket endpoint's upgrade ([`crate::websocket`]).
pub fn router(bus: Arc<TopicBus>, websocket: Arc<WebsocketHub>) -> axum::Router {
    axum::Router::new()
        .fallback(receive)
        .with_state((bus, websocket))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

async fn receive(State((bus, websocket)): State<(Arc<TopicBus>, Arc<WebsocketHub>)>, request: Request) -> Response {
    if request.method() == Method::GET {
        return crate::websocket::serve(websocket, request).await;
    }
    post(&bus, request).await.into_response()
}

async fn post(bus: &TopicBus, request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST && parts.method != Method::PUT {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST or PUT events, or GET a websocket\n".to_owned());
    }
    let path = parts.uri.path().to_owned();
    if !bus.has_subscribers(&path) {
        return (
            StatusCode::NOT_FOUND,
            format!("no running rule reads an httppush stream with DATASOURCE=\"{path}\"\n"),
        );
    }
    // A body that trickles in (or never comes) gives its connection back.
    let body: Bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return (StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {} s\n", BODY_TIMEOUT.as_secs()),
            );
        }
    };
    let meta = BTreeMap::from([("path".to_owned(), path.clone()), ("method".to_owned(), parts.method.to_string())]);
    let event = SourceEvent::new(Payload::Bytes(body.to_vec()), Arc::new(meta));
    // Journaled for a rule with qos >= 1: acknowledged once on disk.
    let journaled = match bus.publisher(&path).publish(vec![event]).await {
        Ok(journaled) => journaled,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    if let Some(journaled) = journaled
        && let Err(e) = journaled.durable().await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
    }
    (StatusCode::OK, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_must_be_absolute() {
        let factory = HttpPushSourceFactory(Arc::default());
        let config = SourceConfig { datasource: "api/data".into(), ..Default::default() };
        assert!(matches!(factory.build(&config), Err(ConnectorError::Config(m)) if m.contains("starting with '/'")));
        let config = SourceConfig { datasource: "/api/data".into(), ..Default::default() };
        assert!(factory.build(&config).is_ok());
    }
}
