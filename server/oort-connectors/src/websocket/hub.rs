//! Oort as a websocket server: the endpoints served on the HTTP push
//! address. Messages from clients go to the streams of their path through a
//! [`TopicBus`]; results of the sinks of a path go to its clients through a
//! broadcast channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oort_engine::{Payload, SourceEvent};
use tokio::sync::broadcast;

use super::MAX_MESSAGE;
use crate::bus::TopicBus;

/// Results a client may be behind before it is disconnected.
const CLIENT_BACKLOG: usize = 1024;

/// A result for the clients of a path: its payload, and whether it is
/// binary (`binary`, `protobuf`) rather than text.
type Outgoing = (Bytes, bool);

/// The websocket endpoints of the server.
#[derive(Default)]
pub struct WebsocketHub {
    /// Messages from clients, by path, for the streams of that path.
    inbound: Arc<TopicBus>,
    /// Results for clients, by path, with the number of sinks writing there.
    outbound: Mutex<HashMap<String, (broadcast::Sender<Outgoing>, usize)>>,
}

impl WebsocketHub {
    /// A hub whose client messages go to `inbound` (journaled as the
    /// server's other published streams are).
    pub fn new(inbound: Arc<TopicBus>) -> Self {
        Self { inbound, outbound: Mutex::default() }
    }

    /// The bus of client messages, by path.
    pub fn inbound(&self) -> &Arc<TopicBus> {
        &self.inbound
    }

    /// Registers a sink writing to `path` until the returned handle drops.
    pub(crate) fn open_sink(self: &Arc<Self>, path: &str) -> HubSink {
        let mut outbound = self.outbound.lock().unwrap_or_else(|p| p.into_inner());
        let entry = outbound.entry(path.to_owned()).or_insert_with(|| (broadcast::channel(CLIENT_BACKLOG).0, 0));
        entry.1 += 1;
        HubSink { hub: Arc::clone(self), path: path.to_owned(), tx: entry.0.clone() }
    }

    fn results(&self, path: &str) -> Option<broadcast::Receiver<Outgoing>> {
        let outbound = self.outbound.lock().unwrap_or_else(|p| p.into_inner());
        outbound.get(path).map(|(tx, _)| tx.subscribe())
    }
}

/// A sink's hold on its path: results sent through it reach the clients.
pub(crate) struct HubSink {
    hub: Arc<WebsocketHub>,
    path: String,
    tx: broadcast::Sender<Outgoing>,
}

impl HubSink {
    /// Sends `payload` to every client connected now, as a binary message or
    /// a text one; returns how many.
    pub(crate) fn send(&self, payload: Vec<u8>, binary: bool) -> usize {
        self.tx.send((Bytes::from(payload), binary)).unwrap_or(0)
    }
}

impl Drop for HubSink {
    fn drop(&mut self) {
        let mut outbound = self.hub.outbound.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = outbound.get_mut(&self.path) {
            entry.1 -= 1;
            if entry.1 == 0 {
                outbound.remove(&self.path);
            }
        }
    }
}

/// Serves a websocket upgrade request at its path: 404 when no running rule
/// reads or writes there.
pub async fn serve(hub: Arc<WebsocketHub>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let results = hub.results(&path);
    if results.is_none() && !hub.inbound.has_subscribers(&path) {
        let message = format!("no running rule reads or writes a websocket endpoint at {path:?}\n");
        return (StatusCode::NOT_FOUND, message).into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(hub, path, socket, results))
}

/// One client's connection: its messages in, its path's results out.
async fn session(
    hub: Arc<WebsocketHub>,
    path: String,
    mut socket: WebSocket,
    mut results: Option<broadcast::Receiver<Outgoing>>,
) {
    let mut publisher = hub.inbound.publisher(&path);
    let meta = Arc::new(BTreeMap::from([("path".to_owned(), path.clone())]));
    loop {
        let result = async {
            match &mut results {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv() => {
                let payload = match received {
                    Some(Ok(Message::Text(text))) => Bytes::from(text).to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                let event = SourceEvent::new(Payload::Bytes(payload), Arc::clone(&meta));
                match publisher.publish(vec![event]).await {
                    Ok(Some(journaled)) => {
                        if let Err(error) = journaled.durable().await {
                            tracing::warn!(%error, path, "websocket: a client's message could not be journaled");
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let reason = format!("{error}");
                        let frame = CloseFrame { code: close_code::AGAIN, reason: reason.into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                }
            }
            result = result => match result {
                Ok((payload, binary)) => {
                    let message = match binary {
                        false => match payload.clone().try_into() {
                            Ok(text) => Message::Text(text),
                            Err(_) => Message::Binary(payload),
                        },
                        true => Message::Binary(payload),
                    };
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(path, missed, "websocket: a client read too slowly and was disconnected");
                    let reason = format!("{missed} results behind: read faster");
                    let frame = CloseFrame { code: close_code::POLICY, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                // The sinks of the path are gone: the client may still send.
                Err(broadcast::error::RecvError::Closed) => results = None,
            },
        }
    }
}
