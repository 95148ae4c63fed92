//! The server's HTTP endpoints (HTTP push, metrics), served within bounds: at
//! most `max_connections` at once (the next client waits in the kernel's
//! backlog, and gRPC clients are never locked out by idle HTTP ones), and a
//! connection that does not send a request's headers within `read_timeout`
//! (a new one, or a kept-alive one gone idle) is closed. Bodies are bounded by
//! each endpoint (size, and the time to read them).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Bounds of an HTTP endpoint.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request's headers, and longest idle time between requests.
    pub read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_connections: 256, read_timeout: Duration::from_secs(10) }
    }
}

/// Serves `app` on `listener` until `stopping`; then lets each connection
/// finish its request.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    stopping: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned = false;
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stopping.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, for instance: wait instead of spinning.
                    tracing::warn!(%error, "{what}: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopping.cancelled() => break,
        };
        if slots.available_permits() == 0 && !warned {
            tracing::warn!(max = limits.max_connections, "{what}: connection limit reached; new clients wait");
            warned = true;
        }
        let service = TowerToHyperService::new(app.clone());
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                // Websocket endpoints upgrade their connections.
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                }
            }
            drop(slot);
        });
    }
}
