//! What a kafka client reports: librdkafka's statistics (every second) say
//! whether a broker is up, its error callback why not; both go to the
//! client's entry among its connection's clients. An authentication failure
//! is kept apart: retrying will not fix it, so the source fails on it.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::connections::{ClientLink, LinkState};

/// How often librdkafka reports its statistics, in milliseconds.
pub(crate) const STATISTICS_INTERVAL_MS: &str = "1000";

/// The context of a kafka client: its link, and the failure that should stop it.
pub(crate) struct LinkContext {
    link: Arc<ClientLink>,
    last_error: Mutex<Option<String>>,
    fatal: Mutex<Option<String>>,
}

impl LinkContext {
    pub(crate) fn new(link: Arc<ClientLink>) -> Self {
        link.set(LinkState::Connecting);
        Self { link, last_error: Mutex::default(), fatal: Mutex::default() }
    }

    /// A failure that retrying will not fix (credentials), if one happened.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The part of librdkafka's statistics this reads.
#[derive(serde::Deserialize)]
struct Statistics {
    #[serde(default)]
    brokers: std::collections::HashMap<String, Broker>,
}

#[derive(serde::Deserialize)]
struct Broker {
    state: String,
}

impl ClientContext for LinkContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(statistics) = serde_json::from_slice::<Statistics>(statistics) else { return };
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.link.set(LinkState::Connected);
        } else {
            let why = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            self.link.set(why.map_or(LinkState::Connecting, LinkState::Disconnected));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        let message = format!("{error}: {reason}");
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        ) {
            *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        self.link.set(LinkState::Disconnected(message));
    }
}

impl ConsumerContext for LinkContext {}
