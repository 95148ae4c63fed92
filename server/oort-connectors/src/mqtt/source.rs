//! The `mqtt` source: subscribes to the stream's DATASOURCE, a topic filter.
//!
//! For a rule whose `qos` asks for at least once, the source replays through
//! the broker: its session is persistent (`clean_session` false, a client id
//! fixed for the rule, `oort-<rule id>` unless `CLIENT_ID` says otherwise),
//! and each message is acknowledged only once a checkpoint covers it
//! ([`MqttHold`]). After a crash the broker delivers again what was not
//! acknowledged, and keeps for the session what is published meanwhile
//! (within its own limits: mosquitto's `max_queued_messages`, 1,000 by default).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use oort_engine::{
    ConnectorError, ConnectorOption, Guarantee, Payload, Source, SourceConfig, SourceEvent, SourceFactory,
    SourceOutput, SourcePositions,
};
use tokio_util::sync::CancellationToken;

use super::client::{Connection, Delivery, Event, Failure};
use super::{MqttConfig, MqttContext, Origin, Settings};
use crate::connections;

/// First wait before reconnecting after the connection failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Builds `mqtt` sources, each connected per its stream's named connection.
#[derive(Clone)]
pub struct MqttSourceFactory {
    context: MqttContext,
    /// The holds of rules that replay, by rule id.
    holds: Arc<Mutex<HashMap<String, Weak<MqttHold>>>>,
}

impl MqttSourceFactory {
    /// Sources whose connections are those of `context`.
    pub fn new(context: MqttContext) -> Self {
        Self { context, holds: Arc::default() }
    }

    /// The settings of a stream: its connection's, with its own options.
    fn stream_config(&self, config: &SourceConfig) -> Result<(MqttConfig, Origin), ConnectorError> {
        let name = match config.options.get("CONF_KEY").map(|k| k.trim()) {
            None | Some("") => connections::DEFAULT,
            Some(key) if key.eq_ignore_ascii_case(connections::DEFAULT) => connections::DEFAULT,
            Some(key) => key,
        };
        let (base, origin) = self
            .context
            .connection(name)
            .map_err(|e| ConnectorError::Option { key: "CONF_KEY".into(), message: format!("mqtt: {e}") })?;
        Ok((base.with_stream_options(&config.options)?, origin))
    }

    /// The checked settings of a client of `config`'s rule.
    fn settings(&self, config: &SourceConfig) -> Result<Settings, ConnectorError> {
        let (stream, origin) = self.stream_config(config)?;
        stream.resolve(&self.context, &origin, &config.rule_id, &format!("source_{}_0", config.stream))
    }

    fn hold(&self, rule_id: &str) -> Option<Arc<MqttHold>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).get(rule_id)?.upgrade()
    }
}

/// A rule's hold on its mqtt source: the messages received and not yet
/// acknowledged, by position, and how far checkpoints let it acknowledge.
#[derive(Debug)]
pub(crate) struct MqttHold {
    /// The position of the rule's checkpoint: positions go on after it.
    after: u64,
    unacked: Mutex<VecDeque<(u64, Delivery)>>,
    /// Every message at or before this position may be acknowledged.
    released: AtomicU64,
    /// Wakes the source to acknowledge what was released.
    released_more: tokio::sync::Notify,
}

#[async_trait]
impl SourcePositions for MqttHold {
    /// The broker keeps what is not acknowledged: nothing to do.
    async fn persist(&self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn release(&self, position: u64) {
        self.released.fetch_max(position, Ordering::AcqRel);
        self.released_more.notify_one();
    }

    fn position(&self) -> Option<u64> {
        Some(self.after)
    }

    /// A message a checkpoint covers comes again if the server died before
    /// it was acknowledged.
    fn exact(&self) -> bool {
        false
    }
}

impl MqttHold {
    /// Acknowledges the released messages, as many as the connection takes now.
    fn acknowledge(&self, conn: &Connection) {
        let released = self.released.load(Ordering::Acquire);
        let mut unacked = self.unacked.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((position, delivery)) = unacked.front() {
            if *position > released || !conn.try_ack(delivery) {
                break;
            }
            unacked.pop_front();
        }
    }
}

impl SourceFactory for MqttSourceFactory {
    fn description(&self) -> &'static str {
        "Subscribes to an MQTT topic filter (3.1.1 or 5) on the broker of CONF_KEY; DATASOURCE is the filter, `$share/<group>/<filter>` for a shared subscription (stateless rules only)."
    }

    fn options(&self) -> Option<Vec<ConnectorOption>> {
        Some(super::SOURCE_OPTIONS.to_vec())
    }

    fn validate(&self, config: &SourceConfig) -> Result<(), ConnectorError> {
        self.build(config).map(drop)
    }

    fn splits_input(&self, config: &SourceConfig) -> Option<String> {
        let group = config.datasource.strip_prefix("$share/")?.split('/').next()?;
        Some(format!("an MQTT shared subscription hands each message to one member of group {group:?}"))
    }

    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        check_filter(&config.datasource)?;
        let hold = self.hold(&config.rule_id);
        let settings = if hold.is_some() {
            let mut settings = self.session_settings(config)?;
            settings.clean_session = false;
            settings.manual_acks = true;
            settings
        } else {
            self.settings(config)?
        };
        Ok(Box::new(MqttSource { settings, filter: config.datasource.clone(), rule_id: config.rule_id.clone(), hold }))
    }

    /// For a rule with qos >= 1, unless its stream asks for a clean session
    /// or QoS 0: the broker keeps what the rule has not checkpointed.
    fn positions(&self, config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        if !self.persistent(config)? {
            return Ok(None);
        }
        let hold = Arc::new(MqttHold {
            after: config.resume_after.unwrap_or(0),
            unacked: Mutex::default(),
            released: AtomicU64::new(0),
            released_more: tokio::sync::Notify::new(),
        });
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.retain(|_, hold| hold.strong_count() > 0);
        holds.insert(config.rule_id.clone(), Arc::downgrade(&hold));
        Ok(Some(hold))
    }

    /// Ends the persistent session of a deleted rule: connects with its
    /// client id and a clean session, which the broker takes as the end of
    /// the old one (and of the messages it queued for it), then disconnects.
    fn forget(&self, config: &SourceConfig) {
        if !self.persistent(config).unwrap_or(false) {
            return;
        }
        let Ok(mut settings) = self.session_settings(config) else { return };
        settings.clean_session = true;
        let rule = config.rule_id.clone();
        tokio::spawn(async move {
            let mut connection = Connection::new(&settings, None);
            match tokio::time::timeout(Duration::from_secs(5), connection.poll()).await {
                Ok(Ok(Event::Connected { .. })) => {
                    connection.disconnect().await;
                    tracing::info!(%rule, client_id = %settings.client_id, "the deleted rule's MQTT session was ended");
                }
                outcome => tracing::warn!(
                    %rule, server = %settings.server, ?outcome,
                    "the deleted rule's MQTT session could not be ended; the broker keeps it until it expires"
                ),
            }
        });
    }
}

impl MqttSourceFactory {
    /// Whether a rule reading with `config` keeps a persistent session.
    fn persistent(&self, config: &SourceConfig) -> Result<bool, ConnectorError> {
        let (settings, _) = self.stream_config(config)?;
        let clean = config.options.get("CLEAN_SESSION").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Ok(config.qos >= Guarantee::AtLeastOnce && !clean && settings.qos != 0)
    }

    /// The settings of a rule's persistent session: a client id the broker
    /// finds again after a restart, `oort-<rule id>`, unless one is set.
    fn session_settings(&self, config: &SourceConfig) -> Result<Settings, ConnectorError> {
        let (stream, _) = self.stream_config(config)?;
        let mut settings = self.settings(config)?;
        if stream.client_id.is_empty() {
            settings.client_id = format!("oort-{}", config.rule_id);
        }
        Ok(settings)
    }
}

/// Checks a topic filter: `+` and `#` only as whole levels, `#` only last.
fn check_filter(filter: &str) -> Result<(), ConnectorError> {
    let bad = |why: &str| ConnectorError::Config(format!("mqtt: invalid DATASOURCE {filter:?}: {why}"));
    if filter.is_empty() {
        return Err(ConnectorError::Config("an mqtt stream needs DATASOURCE, the topic filter to subscribe to".into()));
    }
    if filter.contains('\0') {
        return Err(bad("a topic cannot hold NUL"));
    }
    // An MQTT 5 shared subscription (brokers take it with 3.1.1 too):
    // $share/<group>/<filter>, each message to one member of the group.
    let filter = match filter.strip_prefix("$share/") {
        Some(shared) => match shared.split_once('/') {
            Some((group, rest)) if !group.is_empty() && !group.contains(['+', '#']) && !rest.is_empty() => rest,
            _ => return Err(bad("a shared subscription is $share/<group>/<topic filter>")),
        },
        None => filter,
    };
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(bad("'#' must be a whole level, the last one"));
        }
        if level.contains('+') && *level != "+" {
            return Err(bad("'+' must be a whole level"));
        }
    }
    Ok(())
}

struct MqttSource {
    settings: Settings,
    filter: String,
    rule_id: String,
    /// For a rule that replays: acknowledge at checkpoints.
    hold: Option<Arc<MqttHold>>,
}

#[async_trait]
impl Source for MqttSource {
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let MqttSource { settings, filter, rule_id, hold } = *self;
        let server = settings.server.as_str();
        let link = settings.link()?;
        let mut conn = Connection::new(&settings, Some(link));
        let mut connected = false;
        let mut failures = 0u32;
        let mut backoff = FIRST_BACKOFF;
        let mut next_position = hold.as_ref().map_or(1, |h| h.after + 1);
        loop {
            if let Some(hold) = &hold {
                hold.acknowledge(&conn);
            }
            let released_more = async {
                match &hold {
                    Some(hold) => hold.released_more.notified().await,
                    None => std::future::pending().await,
                }
            };
            let polled = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = released_more => continue,
                polled = conn.poll() => polled,
            };
            match polled {
                Ok(Event::Connected { session_present }) => {
                    // What was received on a connection that is gone comes again.
                    if let Some(hold) = &hold {
                        hold.unacked.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    }
                    if failures > 0 {
                        tracing::info!(rule = %rule_id, server, attempts = failures, "mqtt source reconnected");
                    } else {
                        tracing::debug!(rule = %rule_id, server, "mqtt source connected");
                    }
                    connected = true;
                    failures = 0;
                    backoff = FIRST_BACKOFF;
                    // A session the broker kept still has the subscription.
                    if !session_present {
                        conn.subscribe(&filter, settings.qos).await.map_err(|e| {
                            ConnectorError::External(format!("mqtt: cannot subscribe to {filter:?}: {e}"))
                        })?;
                    }
                }
                Ok(Event::Subscribed { refused: Some(why) }) => {
                    conn.disconnect().await;
                    return Err(ConnectorError::External(format!(
                        "mqtt: the broker {server} refused the subscription to {filter:?} ({why})"
                    )));
                }
                Ok(Event::Message { topic, payload, qos, pkid, delivery }) => {
                    let meta = BTreeMap::from([
                        ("topic".to_owned(), topic),
                        ("qos".to_owned(), qos.to_string()),
                        ("messageId".to_owned(), pkid.to_string()),
                    ]);
                    let mut event = SourceEvent::new(Payload::Bytes(payload), Arc::new(meta));
                    if let Some(hold) = &hold {
                        event.position = Some(next_position);
                        hold.unacked.lock().unwrap_or_else(|p| p.into_inner()).push_back((next_position, delivery));
                        next_position += 1;
                    }
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => break,
                        sent = out.send(event) => if sent.is_err() {
                            break;
                        },
                    }
                }
                Ok(_) => {}
                Err(Failure::Refused(why)) => {
                    return Err(ConnectorError::External(format!(
                        "mqtt: the broker {server} refused the connection: {why}"
                    )));
                }
                Err(Failure::NotAllowed(why)) => return Err(ConnectorError::Config(format!("mqtt: {why}"))),
                Err(Failure::Lost(why)) => {
                    connected = false;
                    failures += 1;
                    let delay = backoff.mul_f64(1.0 + fastrand::f64() * 0.2);
                    tracing::warn!(
                        rule = %rule_id, server, error = %why, attempt = failures, retry_in = ?delay,
                        "mqtt source: no connection to the broker; reconnecting"
                    );
                    // In the rule's status too, not only in the log: the rule runs, and waits.
                    out.record_error(format!("no connection to the MQTT broker {server} ({why}); reconnecting"));
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if connected {
            conn.disconnect().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(datasource: &str, options: &[(&str, &str)]) -> Result<Box<dyn Source>, ConnectorError> {
        let config = SourceConfig {
            stream: "s".into(),
            datasource: datasource.into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            rule_id: "r".into(),
            ..Default::default()
        };
        MqttSourceFactory::new(MqttContext::for_tests(super::super::DEFAULT_SERVER)).build(&config)
    }

    fn config_error(result: Result<Box<dyn Source>, ConnectorError>) -> String {
        match result {
            Err(ConnectorError::Config(m) | ConnectorError::Option { message: m, .. }) => m,
            Err(e) => panic!("expected a config error, got {e:?}"),
            Ok(_) => panic!("expected a config error, got a source"),
        }
    }

    #[test]
    fn topic_filters_are_checked() {
        for ok in ["a", "a/b", "a/+/c", "#", "a/#", "+", "$share/g/a/+", "/a"] {
            assert!(build(ok, &[]).is_ok(), "{ok}");
        }
        assert!(config_error(build("", &[])).contains("needs DATASOURCE"));
        assert!(config_error(build("a/#/b", &[])).contains("'#'"));
        assert!(config_error(build("a#", &[])).contains("'#'"));
        assert!(config_error(build("a/b+", &[])).contains("'+'"));
        for bad in ["$share/g", "$share//a", "$share/g+/a", "$share/g/"] {
            assert!(config_error(build(bad, &[])).contains("$share/<group>/<topic filter>"), "{bad}");
        }
    }

    #[test]
    fn conf_key_names_a_connection() {
        assert!(build("a", &[("CONF_KEY", "default")]).is_ok());
        assert!(build("a", &[("CONF_KEY", "DEFAULT")]).is_ok());
        let error = config_error(build("a", &[("CONF_KEY", "demo_conf")]));
        assert!(error.contains("no connection \"demo_conf\""), "{error}");
    }

    #[test]
    fn bad_settings_fail_the_build() {
        let config = SourceConfig { datasource: "a".into(), ..Default::default() };
        let factory = MqttSourceFactory::new(MqttContext::for_tests("ws://h:8883"));
        assert!(config_error(factory.build(&config)).contains("not supported yet"));
    }
}
