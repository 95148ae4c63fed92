//! One MQTT connection over rumqttc, MQTT 3.1.1 or 5 behind one face: the
//! source and the sink see the same few events and errors whichever version
//! they speak.
//!
//! rumqttc's event loop does all network work when polled: it connects on the
//! first poll, and after an error the next poll connects again.

use std::sync::Arc;
use std::time::Duration;

use oort_engine::ConnectorError;
use oort_policy::EgressPolicy;
use rumqttc::v5;

use super::{MAX_PACKET, Settings, Version};
use crate::connections::{ClientLink, LinkState};

/// The MQTT 5 user property that carries a result's key
/// (`<rule id>:<result number>:<payload of the result>`), as the `rest`
/// sink's header of the same name.
pub(crate) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Capacity of the channel from client handle to event loop.
const REQUESTS: usize = 16;

/// How long a clean disconnect may take before the connection is just dropped.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What polling the connection yields, for both protocol versions.
#[derive(Debug)]
pub(crate) enum Event {
    /// The broker accepted the connection.
    Connected { session_present: bool },
    /// A message arrived on a subscription.
    Message { topic: String, payload: Vec<u8>, qos: u8, pkid: u16, delivery: Delivery },
    /// The broker answered a subscription; `refused` says why it did not grant it.
    Subscribed { refused: Option<String> },
    /// A publish was written to the connection with this packet id (0 for QoS 0).
    PublishSent(u16),
    /// The broker acknowledged a QoS 1 publish (PUBACK), or refused it (MQTT 5).
    PubAck { pkid: u16, refused: Option<String> },
    /// The broker received a QoS 2 publish (PUBREC), or refused it (MQTT 5).
    PubRec { pkid: u16, refused: Option<String> },
    /// The broker completed a QoS 2 publish (PUBCOMP).
    PubComp { pkid: u16, refused: Option<String> },
    /// The disconnect request was sent.
    Disconnected,
    /// Anything else (pings, acknowledgements sent...).
    Other,
}

/// Why polling failed.
/// A message received, to acknowledge later (with manual acks).
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    V4(rumqttc::Publish),
    V5(Box<v5::mqttbytes::v5::Publish>),
}

#[derive(Debug)]
pub(crate) enum Failure {
    /// The broker refused the connection for a reason retrying will not fix
    /// (credentials, client id, protocol version).
    Refused(String),
    /// The connection failed or was lost; polling again reconnects.
    Lost(String),
    /// The egress policy does not allow the broker's address.
    NotAllowed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) => write!(f, "the broker refused the connection: {m}"),
            Failure::Lost(m) | Failure::NotAllowed(m) => f.write_str(m),
        }
    }
}

/// A client handle and its event loop, and what every connection attempt
/// checks and reports.
pub(crate) struct Connection {
    inner: Inner,
    /// The registry entry its state goes to, if it has one.
    link: Option<Arc<ClientLink>>,
    /// The policy the broker's addresses must pass before each attempt.
    egress: Option<(Arc<EgressPolicy>, String, u16)>,
    connected: bool,
}

enum Inner {
    V4 { client: rumqttc::AsyncClient, eventloop: Box<rumqttc::EventLoop> },
    V5 { client: v5::AsyncClient, eventloop: Box<v5::EventLoop> },
}

impl Settings {
    /// Registers a client of these settings, so that its connection's state
    /// shows it; fails if its client id is open already.
    pub(crate) fn link(&self) -> Result<Arc<ClientLink>, ConnectorError> {
        Ok(Arc::new(self.registry.open_client(self.owner.clone(), &self.client_id)?))
    }
}

fn qos_v4(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_v5(qos: u8) -> v5::mqttbytes::QoS {
    match qos {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Connection {
    /// A connection that is not yet connected: the first [`poll`](Self::poll)
    /// connects. Its state goes to `link`.
    pub(crate) fn new(settings: &Settings, link: Option<Arc<ClientLink>>) -> Self {
        let egress = settings.egress.as_ref().map(|policy| (Arc::clone(policy), settings.host.clone(), settings.port));
        Connection { inner: Inner::new(settings), link, egress, connected: false }
    }

    /// Drives the connection until its next event: connects if not connected,
    /// sends what was requested, reads what the broker sent, pings.
    pub(crate) async fn poll(&mut self) -> Result<Event, Failure> {
        if !self.connected {
            self.report(LinkState::Connecting);
            if let Some((policy, host, port)) = &self.egress
                && let Err(refused) = crate::connections::check_egress(policy, host, *port).await
            {
                self.report(LinkState::Disconnected(refused.clone()));
                return Err(Failure::NotAllowed(refused));
            }
        }
        let polled = self.inner.poll().await;
        match &polled {
            Ok(Event::Connected { .. }) => {
                self.connected = true;
                self.report(LinkState::Connected);
            }
            Ok(Event::Disconnected) => {
                self.connected = false;
                self.report(LinkState::Disconnected("disconnected".into()));
            }
            Err(failure) => {
                self.connected = false;
                self.report(LinkState::Disconnected(failure.to_string()));
            }
            Ok(_) => {}
        }
        polled
    }

    fn report(&self, state: LinkState) {
        if let Some(link) = &self.link {
            link.set(state);
        }
    }

    /// Requests a subscription (sent by the next polls).
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: u8) -> Result<(), String> {
        self.inner.subscribe(filter, qos).await
    }

    /// Requests a publish (sent by the next polls). `key` goes as the user
    /// property `Idempotency-Key` with MQTT 5; 3.1.1 has no properties.
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
        key: Option<String>,
    ) -> Result<(), String> {
        self.inner.publish(topic, qos, retain, payload, key).await
    }

    /// Acknowledges a message received with manual acks; `false` when the
    /// request queue is full (poll the connection, then try again).
    pub(crate) fn try_ack(&self, delivery: &Delivery) -> bool {
        self.inner.try_ack(delivery)
    }

    /// Disconnects cleanly from a connected broker: sends DISCONNECT and polls
    /// until it is written, for at most a second.
    pub(crate) async fn disconnect(mut self) {
        if self.inner.request_disconnect().is_err() {
            return;
        }
        let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, async {
            loop {
                match self.poll().await {
                    Ok(Event::Disconnected) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

impl Inner {
    fn new(settings: &Settings) -> Self {
        let transport = settings
            .tls
            .as_ref()
            .map(|tls| rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::clone(tls))));
        match settings.version {
            Version::V4 => {
                let mut options = rumqttc::MqttOptions::new(&settings.client_id, &settings.host, settings.port);
                options.set_keep_alive(settings.keep_alive);
                options.set_clean_session(settings.clean_session);
                options.set_manual_acks(settings.manual_acks);
                options.set_max_packet_size(MAX_PACKET as usize, MAX_PACKET as usize);
                if let Some(user) = &settings.username {
                    options.set_credentials(user, settings.password.clone().unwrap_or_default());
                }
                if let Some(transport) = transport {
                    options.set_transport(transport);
                }
                let (client, eventloop) = rumqttc::AsyncClient::new(options, REQUESTS);
                Inner::V4 { client, eventloop: Box::new(eventloop) }
            }
            Version::V5 => {
                let mut options = v5::MqttOptions::new(&settings.client_id, &settings.host, settings.port);
                options.set_keep_alive(settings.keep_alive);
                options.set_clean_start(settings.clean_session);
                options.set_manual_acks(settings.manual_acks);
                if !settings.clean_session {
                    // As with MQTT 3.1.1's clean session off: the session outlives the connection.
                    options.set_session_expiry_interval(Some(u32::MAX));
                }
                options.set_max_packet_size(Some(MAX_PACKET));
                if let Some(user) = &settings.username {
                    options.set_credentials(user, settings.password.clone().unwrap_or_default());
                }
                if let Some(transport) = transport {
                    options.set_transport(transport);
                }
                let (client, eventloop) = v5::AsyncClient::new(options, REQUESTS);
                Inner::V5 { client, eventloop: Box::new(eventloop) }
            }
        }
    }

    async fn poll(&mut self) -> Result<Event, Failure> {
        match self {
            Inner::V4 { eventloop, .. } => match eventloop.poll().await {
                Ok(event) => Ok(event_v4(event)),
                Err(e) => Err(failure_v4(e)),
            },
            Inner::V5 { eventloop, .. } => match eventloop.poll().await {
                Ok(event) => Ok(event_v5(event)),
                Err(e) => Err(failure_v5(e)),
            },
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: u8) -> Result<(), String> {
        match self {
            Inner::V4 { client, .. } => client.subscribe(filter, qos_v4(qos)).await.map_err(|e| e.to_string()),
            Inner::V5 { client, .. } => client.subscribe(filter, qos_v5(qos)).await.map_err(|e| e.to_string()),
        }
    }

    async fn publish(
        &mut self,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
        key: Option<String>,
    ) -> Result<(), String> {
        match self {
            Inner::V4 { client, .. } => {
                client.publish(topic, qos_v4(qos), retain, payload).await.map_err(|e| e.to_string())
            }
            Inner::V5 { client, .. } => {
                let user_properties = key.map(|key| (IDEMPOTENCY_KEY.to_owned(), key)).into_iter().collect();
                let properties = v5::mqttbytes::v5::PublishProperties { user_properties, ..Default::default() };
                client
                    .publish_with_properties(topic, qos_v5(qos), retain, payload, properties)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn try_ack(&self, delivery: &Delivery) -> bool {
        match (self, delivery) {
            (Inner::V4 { client, .. }, Delivery::V4(publish)) => client.try_ack(publish).is_ok(),
            (Inner::V5 { client, .. }, Delivery::V5(publish)) => client.try_ack(publish).is_ok(),
            // A message of the other version cannot come from this connection: nothing to ack.
            _ => true,
        }
    }

    fn request_disconnect(&self) -> Result<(), String> {
        match self {
            Inner::V4 { client, .. } => client.try_disconnect().map_err(|e| e.to_string()),
            Inner::V5 { client, .. } => client.try_disconnect().map_err(|e| e.to_string()),
        }
    }
}

fn event_v4(event: rumqttc::Event) -> Event {
    use rumqttc::{Event as E, Outgoing, Packet};
    match event {
        E::Incoming(Packet::ConnAck(ack)) => Event::Connected { session_present: ack.session_present },
        E::Incoming(Packet::Publish(p)) => Event::Message {
            topic: p.topic.clone(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            pkid: p.pkid,
            delivery: Delivery::V4(p),
        },
        E::Incoming(Packet::SubAck(ack)) => {
            let refused = ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                .then(|| "failure".to_owned());
            Event::Subscribed { refused }
        }
        E::Incoming(Packet::PubAck(ack)) => Event::PubAck { pkid: ack.pkid, refused: None },
        E::Incoming(Packet::PubRec(rec)) => Event::PubRec { pkid: rec.pkid, refused: None },
        E::Incoming(Packet::PubComp(comp)) => Event::PubComp { pkid: comp.pkid, refused: None },
        E::Outgoing(Outgoing::Publish(pkid)) => Event::PublishSent(pkid),
        E::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        _ => Event::Other,
    }
}

fn failure_v4(error: rumqttc::ConnectionError) -> Failure {
    use rumqttc::ConnectReturnCode as C;
    match error {
        rumqttc::ConnectionError::ConnectionRefused(code) => match code {
            C::RefusedProtocolVersion | C::BadClientId | C::BadUserNamePassword | C::NotAuthorized => {
                Failure::Refused(format!("{code:?}"))
            }
            C::Success | C::ServiceUnavailable => Failure::Lost(format!("the broker refused the connection: {code:?}")),
        },
        other => Failure::Lost(other.to_string()),
    }
}

fn event_v5(event: v5::Event) -> Event {
    use rumqttc::Outgoing;
    use v5::mqttbytes::v5::{Packet, PubAckReason, PubCompReason, PubRecReason, SubscribeReasonCode};
    match event {
        v5::Event::Incoming(Packet::ConnAck(ack)) => Event::Connected { session_present: ack.session_present },
        v5::Event::Incoming(Packet::Publish(p)) => Event::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            pkid: p.pkid,
            delivery: Delivery::V5(Box::new(p)),
        },
        v5::Event::Incoming(Packet::SubAck(ack)) => {
            let refused = ack
                .return_codes
                .iter()
                .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                .map(|c| format!("{c:?}"));
            Event::Subscribed { refused }
        }
        v5::Event::Incoming(Packet::PubAck(ack)) => {
            let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
            Event::PubAck { pkid: ack.pkid, refused: (!ok).then(|| format!("{:?}", ack.reason)) }
        }
        v5::Event::Incoming(Packet::PubRec(rec)) => {
            let ok = matches!(rec.reason, PubRecReason::Success | PubRecReason::NoMatchingSubscribers);
            Event::PubRec { pkid: rec.pkid, refused: (!ok).then(|| format!("{:?}", rec.reason)) }
        }
        v5::Event::Incoming(Packet::PubComp(comp)) => {
            let ok = matches!(comp.reason, PubCompReason::Success);
            Event::PubComp { pkid: comp.pkid, refused: (!ok).then(|| format!("{:?}", comp.reason)) }
        }
        v5::Event::Outgoing(Outgoing::Publish(pkid)) => Event::PublishSent(pkid),
        v5::Event::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        _ => Event::Other,
    }
}

fn failure_v5(error: v5::ConnectionError) -> Failure {
    use v5::mqttbytes::v5::ConnectReturnCode as C;
    match error {
        v5::ConnectionError::ConnectionRefused(code) => match code {
            C::RefusedProtocolVersion
            | C::UnsupportedProtocolVersion
            | C::BadClientId
            | C::ClientIdentifierNotValid
            | C::BadUserNamePassword
            | C::NotAuthorized
            | C::Banned
            | C::BadAuthenticationMethod => Failure::Refused(format!("{code:?}")),
            other => Failure::Lost(format!("the broker refused the connection: {other:?}")),
        },
        other => Failure::Lost(other.to_string()),
    }
}
