//! Sources and sinks as the engine sees them: trait objects built by factories
//! from a registry. Built-in connectors, native and portable plugins all
//! register factories here, so a rule cannot tell them apart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use crate::metrics::OperatorMetrics;
use crate::value::Map;

/// Why a connector failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The stream options or action properties are wrong; the rule cannot start.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// One option is wrong: unknown to the connector, or a value it cannot
    /// take. The key lets the caller point at it in the definition.
    #[error("invalid configuration: {message}")]
    Option {
        /// The option's key, as the connector declares it.
        key: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The outside world failed (a broker down, a file missing); may be retried.
    #[error("{0}")]
    External(String),
}

/// What a source produces: bytes still to decode (per the stream's FORMAT), or
/// a decoded row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Payload {
    /// Raw bytes, decoded by the rule's decoder.
    Bytes(Vec<u8>),
    /// Already structured.
    Map(Map),
}

/// The meta key of an event's row kind (`insert`, `update`, `upsert`,
/// `delete`), as a `memory` action with `rowkindField` sets it: a table with
/// KEY removes the row of the key of a `delete`.
pub const ROWKIND_META: &str = "rowkind";

/// One event from a source.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceEvent {
    /// The event's content.
    pub payload: Payload,
    /// Source metadata (e.g. `topic`), read in SQL with `meta()`.
    pub meta: Arc<BTreeMap<String, String>>,
    /// A time the source knows (Unix ms); processing time otherwise.
    pub timestamp: Option<i64>,
    /// Where the event is in a source that can replay ([`SourcePositions`]):
    /// increasing along the stream; `None` from a source that cannot.
    #[serde(skip)]
    pub position: Option<u64>,
}

impl SourceEvent {
    /// A decoded event with no metadata.
    pub fn map(map: Map) -> Self {
        Self::new(Payload::Map(map), Arc::default())
    }

    /// An event with this content and metadata, no source time and no position.
    pub fn new(payload: Payload, meta: Arc<BTreeMap<String, String>>) -> Self {
        Self { payload, meta, timestamp: None, position: None }
    }
}

/// What a rule does with an event pushed to it while its input buffer
/// (`bufferLength` events) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferFull {
    /// Drop the event for this rule only, and count it (the source's
    /// `records_dropped_total`): a slow rule never holds back a stream that
    /// other rules read. The default of `qos` 0 rules.
    #[default]
    Drop,
    /// Wait for room: nothing is lost, and the source (for a stream published
    /// into the server, its publishers) waits with the rule.
    Block,
}

/// The end of a rule's input buffer that its source writes to.
#[derive(Clone)]
pub struct SourceOutput {
    tx: mpsc::Sender<SourceEvent>,
    when_full: BufferFull,
    metrics: Option<Arc<OperatorMetrics>>,
    /// The greatest position handed to the rule (0: none yet), shared by the
    /// clones: a source restarted inside a running rule resumes after it.
    last_position: Arc<AtomicU64>,
    /// Events the source replayed since the rule started (what its
    /// checkpoint did not cover), for the rule's status.
    replayed: Arc<AtomicU64>,
}

/// The rule stopped reading: its source should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rule stopped reading its source")]
pub struct RuleGone;

impl SourceOutput {
    /// An output into `tx` that does what `when_full` says when `tx` is full,
    /// counting drops in `metrics`.
    pub fn new(tx: mpsc::Sender<SourceEvent>, when_full: BufferFull, metrics: Arc<OperatorMetrics>) -> Self {
        Self { tx, when_full, metrics: Some(metrics), last_position: Arc::default(), replayed: Arc::default() }
    }

    /// A buffer of `capacity` events that always waits for room, and its
    /// reading end: for table loaders and tests.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<SourceEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let output = Self {
            tx,
            when_full: BufferFull::Block,
            metrics: None,
            last_position: Arc::default(),
            replayed: Arc::default(),
        };
        (output, rx)
    }

    /// Hands an event pushed from outside (a broker, a publisher, a plugin) to
    /// the rule; when the buffer is full, drops or waits as the rule chose.
    pub async fn send(&self, event: SourceEvent) -> Result<(), RuleGone> {
        let position = event.position;
        match self.when_full {
            BufferFull::Block => self.send_waiting(event).await,
            BufferFull::Drop => match self.tx.try_send(event) {
                Ok(()) => {
                    self.sent(position);
                    Ok(())
                }
                Err(TrySendError::Full(_)) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.record_dropped(1);
                    }
                    Ok(())
                }
                Err(TrySendError::Closed(_)) => Err(RuleGone),
            },
        }
    }

    /// Hands an event to the rule, waiting for room whatever the rule chose:
    /// for sources that read at their own pace (a file), whose waiting holds
    /// back no one else.
    pub async fn send_waiting(&self, event: SourceEvent) -> Result<(), RuleGone> {
        let position = event.position;
        self.tx.send(event).await.map_err(|_| RuleGone)?;
        self.sent(position);
        Ok(())
    }

    fn sent(&self, position: Option<u64>) {
        if let Some(position) = position {
            self.last_position.fetch_max(position, Ordering::Relaxed);
        }
    }

    /// Counts events handed to the rule again after a restart (a journal's
    /// replay), shown in the rule's status.
    pub fn record_replayed(&self, events: u64) {
        self.replayed.fetch_add(events, Ordering::Relaxed);
    }

    /// The count of events replayed ([`record_replayed`](Self::record_replayed)),
    /// to read without keeping the rule's input open.
    pub fn replay_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.replayed)
    }

    /// The greatest position handed to the rule so far, if any.
    pub fn last_position(&self) -> Option<u64> {
        Some(self.last_position.load(Ordering::Relaxed)).filter(|&p| p > 0)
    }

    /// Counts events lost before they reached the rule (a client library
    /// that dropped what it could not buffer) in its source operator's
    /// `records_dropped_total`.
    pub fn record_dropped(&self, events: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.record_dropped(events);
        }
    }

    /// Counts an error that did not stop the source (a record it could not
    /// read and skipped) in its operator's status.
    pub fn record_error(&self, message: impl Into<String>) {
        if let Some(metrics) = &self.metrics {
            metrics.record_exception(message);
        }
    }
}

/// The configuration a source is built from: the stream definition.
#[derive(Debug, Clone, Default)]
pub struct SourceConfig {
    /// Name of the stream.
    pub stream: String,
    /// DATASOURCE (topic, file, path...).
    pub datasource: String,
    /// Every WITH option of the stream, keys upper-case.
    pub options: BTreeMap<String, String>,
    /// Id of the rule that reads it.
    pub rule_id: String,
    /// What the rule's `qos` asks for: a source that can replay keeps what it
    /// reads for a rule that asks for at least once ([`SourcePositions`]).
    pub qos: crate::delivery::Guarantee,
    /// Replay from just after this position (that of the rule's checkpoint);
    /// `None` to start with what comes next.
    pub resume_after: Option<u64>,
    /// What [`SourcePositions::resume_state`] said for the checkpoint's
    /// position: where to start reading to get there quickly.
    pub resume_state: Option<Vec<u8>>,
    /// The rule restarts from its source ([`crate::RulePlan::replays_from_source`]):
    /// a partitioned source marks the first event it reads of each partition
    /// since it was assigned it, with the metadata [`PARTITION_START_META`].
    pub marks_partition_starts: bool,
}

impl SourceConfig {
    /// The configuration of `stream`'s source, for rule `rule_id` (empty when
    /// only validating a definition).
    pub fn for_stream(stream: &oort_sql::StreamDef, rule_id: &str) -> Self {
        Self {
            stream: stream.name.clone(),
            datasource: stream.datasource().unwrap_or_default().to_owned(),
            options: stream.options.clone(),
            rule_id: rule_id.to_owned(),
            qos: crate::delivery::Guarantee::AtMostOnce,
            resume_after: None,
            resume_state: None,
            marks_partition_starts: false,
        }
    }
}

/// The most rows one lookup may give: a key with more is an error, not a
/// silent cut (the join holds them all in memory for each event).
pub const MAX_LOOKUP_ROWS: usize = 10_000;

/// A lookup table's store (eKuiper's lookup source): queried for the rows
/// whose columns equal given values, when a stream's event joins the table.
/// At most [`MAX_LOOKUP_ROWS`] rows an answer.
#[async_trait]
pub trait Lookup: Send + Sync {
    /// The rows whose `fields` equal `values`, one value per field. A
    /// deadline is the implementation's to keep.
    async fn lookup(&self, fields: &[Arc<str>], values: &[crate::value::Value]) -> Result<Vec<Map>, ConnectorError>;
}

/// A rule's hold on what its source read, for a source that can replay: the
/// events after a position stay available to the rule until a checkpoint
/// covers them, across a restart of the server. Dropping it lets the source
/// forget the rule.
#[async_trait]
pub trait SourcePositions: Send + Sync {
    /// Waits until the events up to `position` would survive a crash of the
    /// server: called before a checkpoint that covers them is saved, so that
    /// no later event can take a position the checkpoint already counts.
    async fn persist(&self, position: u64) -> Result<(), ConnectorError>;
    /// A checkpoint covering `position` is saved: the rule needs no event at
    /// or before it again.
    fn release(&self, position: u64);
    /// Where the hold is now: the rule needs the events after this position.
    /// `None` for a source whose positions start with the rule.
    fn position(&self) -> Option<u64>;
    /// Whether a restart replays exactly the events after the checkpoint's
    /// position (a journal, a file), or may deliver again some that it covers
    /// (a broker that redelivers what was not acknowledged): exactly once
    /// needs the first. `true` by default.
    fn exact(&self) -> bool {
        true
    }
    /// For a rule that restarts from its source rather than from its
    /// checkpoints ([`crate::RulePlan::replays_from_source`]): the rule has
    /// taken the events up to `position`, and its windows still hold those
    /// whose metadata `held` yields. The next [`release`](Self::release) of
    /// `position` lets go only of the events before them, so that a restart,
    /// here or on another server, reads every open window's events again. A
    /// source whose factory gives a [`SourceFactory::partitioning`] does this;
    /// by default nothing is held back.
    fn hold_back(&self, position: u64, held: &mut dyn Iterator<Item = &BTreeMap<String, String>>) {
        let _ = (position, held);
    }
    /// Whether the source still reads `partition` (its events' metadata
    /// [`PARTITION_META`]), for a rule that restarts from its source: the
    /// windows of a partition the broker gave another server are dropped.
    /// `true` by default.
    fn still_reads(&self, partition: &str) -> bool {
        let _ = partition;
        true
    }
    /// What the source needs, beside `position`, to resume after it without
    /// reading again what came before (a file's name and a byte offset):
    /// saved with the checkpoint that covers `position`, and handed back in
    /// [`SourceConfig::resume_state`]. `None` by default.
    fn resume_state(&self, position: u64) -> Option<Vec<u8>> {
        let _ = position;
        None
    }
}

/// The metadata key under which a partitioned source
/// ([`SourceFactory::partitioning`]) names each event's partition.
pub const PARTITION_META: &str = "partition";

/// The metadata key under which a partitioned source gives each event's
/// message key, which must be the text of the stream's partition key field
/// ([`Partitioning::ByKey`]): a rule split by it counts each event whose key
/// is not, as an exception of its decoder.
pub const MESSAGE_KEY_META: &str = "key";

/// The metadata key marking the first event a partitioned source read of a
/// partition since it was assigned it ([`SourceConfig::marks_partition_starts`]):
/// the source reads on from the partition's committed position, so whatever
/// the rule held of that partition before is stale.
pub const PARTITION_START_META: &str = "partition_start";

/// How a broker splits a stream among the servers that read it in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// By this field: the events of each of its values are in one partition,
    /// so they all go to one server.
    ByKey(String),
    /// Message by message: a key's events may go to any server.
    ByMessage,
}

/// A running source: it pushes events into `out` until `cancel` fires. An `Err`
/// return means it died and the rule's restart strategy applies.
#[async_trait]
pub trait Source: Send + 'static {
    /// Runs the source.
    async fn run(self: Box<Self>, out: SourceOutput, cancel: CancellationToken) -> Result<(), ConnectorError>;
}

/// The configuration a sink is built from: one action of a rule.
#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// Action type.
    pub sink_type: String,
    /// Action properties.
    pub props: serde_json::Map<String, serde_json::Value>,
    /// Id of the rule that writes to it.
    pub rule_id: String,
    /// The action's position among the rule's actions: its operator is
    /// `sink_<type>_<index>`.
    pub index: usize,
    /// The protobuf schemas a `format: "protobuf"` action's `schemaId` names.
    pub schemas: Arc<oort_schema::SchemaRegistry>,
    /// For a rule restarting from a checkpoint, the mark this sink's
    /// [`flush`](Sink::flush) returned for it: what the sink delivered after
    /// it is to be taken back, since the rule replays it.
    pub rewind_to: Option<Vec<u8>>,
}

/// A sink: receives result rows and delivers them.
#[async_trait]
pub trait Sink: Send + 'static {
    /// Connects; called once before the first `collect`.
    async fn open(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Delivers one result: the rows a rule emitted at once (one row for a
    /// plain rule, a window's rows for a windowed rule).
    async fn collect(&mut self, rows: &[Map]) -> Result<(), ConnectorError>;
    /// Delivers result number `sequence` of the rule: counted from its first
    /// result, and, for a rule whose `qos` asks for at least once, the same
    /// for a result replayed after a restart (a rule that emits the same
    /// results for the same events): with the rule id, a key by which a
    /// receiver can drop what it already has. By default, [`collect`](Self::collect).
    async fn collect_numbered(&mut self, sequence: u64, rows: &[Map]) -> Result<(), ConnectorError> {
        let _ = sequence;
        self.collect(rows).await
    }
    /// Makes every result collected so far durable where the sink can (a
    /// file synced to disk): called before a checkpoint counts them as
    /// delivered. A sink that can take back what it delivers after this point
    /// (its factory [`rewinds`](SinkFactory::rewinds)) returns the mark to go
    /// back to, saved with the checkpoint and handed back in
    /// [`SinkConfig::rewind_to`] when the rule restarts from it. Nothing and
    /// no mark by default.
    async fn flush(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(None)
    }
    /// Disconnects; called once when the rule stops.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// One option a connector declares: what a stream's definition is checked
/// against when it is created, and what the docs and the API list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectorOption {
    /// Its key: a stream's `WITH` key (upper-case) or an action's property
    /// (as written, camelCase).
    pub key: &'static str,
    /// What its value may be.
    pub kind: OptionKind,
    /// Its default as text; empty when it has none.
    pub default: &'static str,
    /// What it does, in one sentence.
    pub description: &'static str,
}

/// What the value of a [`ConnectorOption`] may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// Any text.
    Text,
    /// `true` or `false`, any case.
    Bool,
    /// A non-negative integer.
    Count,
    /// A non-negative integer of milliseconds.
    Millis,
    /// One of these words, any case.
    OneOf(&'static [&'static str]),
    /// A list of texts (an action property only).
    List,
    /// An object of texts by name (an action property only).
    Object,
}

impl OptionKind {
    /// What the value must be, for messages and listings.
    pub fn describe(self) -> String {
        match self {
            OptionKind::Text => "text".into(),
            OptionKind::Bool => "\"true\" or \"false\"".into(),
            OptionKind::Count => "a non-negative integer".into(),
            OptionKind::Millis => "a non-negative integer of milliseconds".into(),
            OptionKind::OneOf(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
                format!("one of {}", quoted.join(", "))
            }
            OptionKind::List => "a list of texts".into(),
            OptionKind::Object => "an object of texts".into(),
        }
    }

    fn accepts(self, value: &str) -> bool {
        let value = value.trim();
        match self {
            OptionKind::Text => true,
            OptionKind::Bool => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            OptionKind::Count | OptionKind::Millis => value.parse::<u64>().is_ok(),
            OptionKind::OneOf(words) => words.iter().any(|w| w.eq_ignore_ascii_case(value)),
            // A stream option is one text: never a list or an object.
            OptionKind::List | OptionKind::Object => false,
        }
    }
}

/// Checks a stream's connector options against what its connector declares:
/// every key that is not one of the stream's own ([`oort_sql::option_key::STREAM`])
/// must be declared, with a value of its kind.
pub fn check_options(
    connector: &str,
    declared: &[ConnectorOption],
    options: &BTreeMap<String, String>,
) -> Result<(), ConnectorError> {
    for (key, value) in options {
        if oort_sql::option_key::STREAM.contains(&key.as_str()) {
            continue;
        }
        let Some(option) = declared.iter().find(|o| o.key.eq_ignore_ascii_case(key)) else {
            let known: Vec<&str> = declared.iter().map(|o| o.key).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            let message = format!(
                "unknown option `{key}` of a {connector} stream; its connector's options are {known}, and every \
                 stream's are {}",
                oort_sql::option_key::STREAM.join(", ")
            );
            return Err(ConnectorError::Option { key: key.clone(), message });
        };
        if !option.kind.accepts(value) {
            let message = format!("option {key} must be {}, got {value:?}", option.kind.describe());
            return Err(ConnectorError::Option { key: key.clone(), message });
        }
    }
    Ok(())
}

/// Checks the stream's own options that the parser leaves to the engine:
/// `TIMESTAMP_FORMAT` is a pattern a time can be read with, and has a
/// `TIMESTAMP` field to read; `SHARED` is not `"true"`, which Oort does not
/// do. Only when a stream is created or replaced, so that a stream stored by
/// an earlier version still loads.
pub fn check_stream_options(stream: &oort_sql::StreamDef) -> Result<(), ConnectorError> {
    let shared = oort_sql::option_key::SHARED;
    if stream.shared() {
        let message = format!(
            "option {shared}=\"true\" is not supported: Oort does not share one source instance among rules; each \
             rule reads its own instance of the source, with the same results. Leave {shared} out (or set it to \
             \"false\")"
        );
        return Err(ConnectorError::Option { key: shared.into(), message });
    }
    let key = oort_sql::option_key::TIMESTAMP_FORMAT;
    if crate::decode::timestamp_format(stream)?.is_some() && stream.timestamp_field().is_none() {
        let message = format!(
            "option {key} is how the TIMESTAMP field's strings are read, and this {} has no TIMESTAMP: set \
             TIMESTAMP, or leave {key} out (Oort does not read it for other conversions)",
            stream.kind.keyword().to_lowercase()
        );
        return Err(ConnectorError::Option { key: key.into(), message });
    }
    Ok(())
}

/// Builds sources of one type.
pub trait SourceFactory: Send + Sync + 'static {
    /// Checks the configuration and builds a source.
    fn build(&self, config: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError>;

    /// What it reads from, in a sentence, for the API and the reference;
    /// empty by default (a plugin's source may not say).
    fn description(&self) -> &'static str {
        ""
    }

    /// The `FORMAT`s its streams may declare, lower-case: by default those
    /// the engine decodes (`json`, `binary`); a source that reads its
    /// payloads itself (the `file` source's `csv`) says which.
    fn formats(&self) -> &'static [&'static str] {
        crate::decode::FORMATS
    }

    /// The options its streams may set in `WITH (...)` besides every stream's
    /// own; `None` when it does not say (a plugin's source), and then any key
    /// is passed to it unchecked.
    fn options(&self) -> Option<Vec<ConnectorOption>> {
        None
    }

    /// Checks a stream's configuration when the stream is created, without
    /// building anything; what must be refused before any rule reads the
    /// stream (a path outside the file roots) is refused here.
    fn validate(&self, _config: &SourceConfig) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Whether its tables can be lookup tables (`KIND="lookup"`) queried at
    /// join time through [`SourceFactory::lookup`]; `false` by default (a
    /// lookup table of such a source is loaded whole, as a scan table).
    fn supports_lookup(&self) -> bool {
        false
    }

    /// The store a lookup table of `config` queries at join time; called
    /// when a rule that joins it starts. `None` by default.
    fn lookup(&self, _config: &SourceConfig) -> Result<Option<Arc<dyn Lookup>>, ConnectorError> {
        Ok(None)
    }

    /// Why each rule reading a stream of `config` gets only part of its
    /// events, if it does (an MQTT shared subscription hands each message to
    /// one member of a group): a rule that keeps state from one event to the
    /// next is then refused, as it would see only part of each key's events.
    fn splits_input(&self, _config: &SourceConfig) -> Option<String> {
        None
    }

    /// How a broker hands this stream's events out among several servers
    /// that each run a rule over it (a Kafka consumer group): such a rule
    /// may run on every server of a shared catalog ([`crate::Distribution`]).
    /// `None` (the default) when the source cannot be split that way. A
    /// source that is names each event's partition in its metadata
    /// [`PARTITION_META`], and its positions implement
    /// [`SourcePositions::hold_back`] and [`SourcePositions::still_reads`].
    fn partitioning(&self, _config: &SourceConfig) -> Option<Partitioning> {
        None
    }

    /// The rule that read this source with `config` was deleted: let go of
    /// what the source keeps for it outside the server (an MQTT broker's
    /// persistent session), in the background. Nothing by default.
    fn forget(&self, _config: &SourceConfig) {}

    /// For a rule whose `qos` asks for at least once, the rule's hold on its
    /// source's positions, taken before its sources are built (and kept
    /// across their restarts): the sources built for the rule then stamp
    /// every event with its position, and replay from
    /// [`SourceConfig::resume_after`]. `None` (the default) when the source
    /// cannot replay.
    fn positions(&self, _config: &SourceConfig) -> Result<Option<Arc<dyn SourcePositions>>, ConnectorError> {
        Ok(None)
    }
}

/// Builds sinks of one type.
pub trait SinkFactory: Send + Sync + 'static {
    /// Checks the configuration and builds a sink.
    fn build(&self, config: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError>;

    /// What it writes to, in a sentence, for the API and the reference;
    /// empty by default (a plugin's sink may not say).
    fn description(&self) -> &'static str {
        ""
    }

    /// Whether its sink of an action with `props` can take back what it
    /// delivered after a mark ([`Sink::flush`], [`SinkConfig::rewind_to`]):
    /// with a source that replays, a rule then gets exactly once. `false` by
    /// default.
    fn rewinds(&self, props: &serde_json::Map<String, serde_json::Value>) -> bool {
        let _ = props;
        false
    }

    /// The properties its actions may set, for the docs and the API to list
    /// (its typed configuration checks them when it builds); `None` when it
    /// does not say (a plugin's sink).
    fn options(&self) -> Option<Vec<ConnectorOption>> {
        None
    }
}

/// The properties the engine gives every sink's actions, whatever its type:
/// the queue, the cache of undelivered results, batches.
pub const EVERY_SINK_OPTIONS: [&[ConnectorOption]; 3] =
    [crate::sink_props::ENGINE_SINK_OPTIONS, crate::sink_cache::SINK_CACHE_OPTIONS, crate::sink_batch::BATCH_OPTIONS];

/// What a source or sink type says of itself, for the API and the reference.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// The type, lower-case.
    pub name: String,
    /// A sentence on what it reads or writes; empty when it does not say.
    pub description: &'static str,
    /// The FORMATs a source decodes; empty for a sink.
    pub formats: &'static [&'static str],
    /// Its options ([`SourceFactory::options`], [`SinkFactory::options`]).
    pub options: Option<Vec<ConnectorOption>>,
}

/// Source and sink factories by type name (lower-case).
#[derive(Default)]
pub struct ConnectorRegistry {
    sources: RwLock<BTreeMap<String, Arc<dyn SourceFactory>>>,
    sinks: RwLock<BTreeMap<String, Arc<dyn SinkFactory>>>,
    /// The protobuf schemas that `FORMAT="protobuf"` streams and sinks name.
    schemas: Arc<oort_schema::SchemaRegistry>,
}

impl ConnectorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a source type; returns the factory it replaced.
    pub fn register_source(&self, name: &str, factory: Arc<dyn SourceFactory>) -> Option<Arc<dyn SourceFactory>> {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_ascii_lowercase(), factory)
    }

    /// Registers a sink type; returns the factory it replaced.
    pub fn register_sink(&self, name: &str, factory: Arc<dyn SinkFactory>) -> Option<Arc<dyn SinkFactory>> {
        self.sinks.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_ascii_lowercase(), factory)
    }

    /// The schemas of protobuf payloads.
    pub fn schemas(&self) -> &Arc<oort_schema::SchemaRegistry> {
        &self.schemas
    }

    /// Validates `stream` when it is created or replaced: the stream's own
    /// options the parser leaves to the engine ([`check_stream_options`]),
    /// then its source options with its factory, if its type is registered
    /// (a plugin's may come later; rules check again when they start): the
    /// options it declares ([`check_options`]), then its own checks.
    pub fn validate_source(&self, stream: &oort_sql::StreamDef) -> Result<(), ConnectorError> {
        check_stream_options(stream)?;
        if self.source(stream.source_type()).is_none() {
            return Ok(());
        }
        self.source_for(stream)?.validate(&SourceConfig::for_stream(stream, ""))
    }

    /// The factory of `stream`'s source, once the options it declares are
    /// checked (a stream created before its plugin was installed was not
    /// checked then).
    pub fn source_for(&self, stream: &oort_sql::StreamDef) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let source_type = stream.source_type();
        let factory = self
            .source(source_type)
            .ok_or_else(|| ConnectorError::Config(format!("unknown source type {source_type}")))?;
        if let Some(declared) = factory.options() {
            check_options(&source_type.to_ascii_lowercase(), &declared, &stream.options)?;
        }
        // Refused when the stream is made, not on each event.
        let format = stream.format();
        if !factory.formats().iter().any(|f| f.eq_ignore_ascii_case(format)) {
            let key = stream.options.keys().find(|k| k.eq_ignore_ascii_case("FORMAT")).cloned().unwrap_or_default();
            return Err(ConnectorError::Option {
                key,
                message: format!(
                    "FORMAT \"{format}\" is not supported by {source_type} streams; use {}",
                    factory.formats().join(" or ")
                ),
            });
        }
        if format.eq_ignore_ascii_case("protobuf") {
            crate::decode::protobuf_message(stream, &self.schemas)?;
        }
        Ok(factory)
    }

    /// Every source type with what it says of itself, ordered by type.
    pub fn source_infos(&self) -> Vec<ConnectorInfo> {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        sources
            .iter()
            .map(|(name, factory)| ConnectorInfo {
                name: name.clone(),
                description: factory.description(),
                formats: factory.formats(),
                options: factory.options(),
            })
            .collect()
    }

    /// Every sink type with what it says of itself, its properties followed
    /// by those the engine gives every sink (queue, cache, batches); ordered
    /// by type.
    pub fn sink_infos(&self) -> Vec<ConnectorInfo> {
        let sinks = self.sinks.read().unwrap_or_else(|p| p.into_inner());
        let with_engine_options = |mut options: Vec<ConnectorOption>| {
            EVERY_SINK_OPTIONS.iter().for_each(|more| options.extend_from_slice(more));
            options
        };
        sinks
            .iter()
            .map(|(name, factory)| ConnectorInfo {
                name: name.clone(),
                description: factory.description(),
                formats: &[],
                options: factory.options().map(with_engine_options),
            })
            .collect()
    }

    /// Removes a source type; returns its factory.
    pub fn unregister_source(&self, name: &str) -> Option<Arc<dyn SourceFactory>> {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).remove(&name.to_ascii_lowercase())
    }

    /// Removes a sink type; returns its factory.
    pub fn unregister_sink(&self, name: &str) -> Option<Arc<dyn SinkFactory>> {
        self.sinks.write().unwrap_or_else(|p| p.into_inner()).remove(&name.to_ascii_lowercase())
    }

    /// The factory of a source type.
    pub fn source(&self, name: &str) -> Option<Arc<dyn SourceFactory>> {
        self.sources.read().unwrap_or_else(|p| p.into_inner()).get(&name.to_ascii_lowercase()).cloned()
    }

    /// The factory of a sink type.
    pub fn sink(&self, name: &str) -> Option<Arc<dyn SinkFactory>> {
        self.sinks.read().unwrap_or_else(|p| p.into_inner()).get(&name.to_ascii_lowercase()).cloned()
    }

    /// Names of the registered source types.
    pub fn source_types(&self) -> Vec<String> {
        self.sources.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Names of the registered sink types.
    pub fn sink_types(&self) -> Vec<String> {
        self.sinks.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[ConnectorOption] = &[
        ConnectorOption { key: "INTERVAL", kind: OptionKind::Millis, default: "0", description: "" },
        ConnectorOption { key: "MODE", kind: OptionKind::OneOf(&["fast", "slow"]), default: "fast", description: "" },
        ConnectorOption { key: "ON", kind: OptionKind::Bool, default: "true", description: "" },
    ];

    fn check(pairs: &[(&str, &str)]) -> Result<(), (String, String)> {
        let options = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        check_options("demo", DECLARED, &options).map_err(|e| match e {
            ConnectorError::Option { key, message } => (key, message),
            other => panic!("not an option error: {other}"),
        })
    }

    #[test]
    fn declared_options_are_checked_by_kind_and_others_refused_by_key() {
        assert_eq!(check(&[("DATASOURCE", "x"), ("INTERVAL", "10"), ("MODE", "SLOW"), ("ON", "False")]), Ok(()));
        let (key, message) = check(&[("INTERVAL", "-1")]).unwrap_err();
        assert_eq!(key, "INTERVAL");
        assert_eq!(message, "option INTERVAL must be a non-negative integer of milliseconds, got \"-1\"");
        assert!(check(&[("MODE", "medium")]).unwrap_err().1.contains("one of \"fast\", \"slow\""));
        assert!(check(&[("ON", "yes")]).unwrap_err().1.contains("\"true\" or \"false\""));
        let (key, message) = check(&[("COLOR", "red")]).unwrap_err();
        assert_eq!(key, "COLOR");
        assert!(message.contains("unknown option `COLOR` of a demo stream"), "{message}");
        assert!(message.contains("INTERVAL, MODE, ON") && message.contains("TIMESTAMP"), "{message}");
    }

    /// What [`check_stream_options`] says of a stream's WITH options.
    fn stream_options(with: &str) -> Result<(), (String, String)> {
        let ddl = format!(r#"CREATE STREAM s (t STRING) WITH (DATASOURCE="s"{with})"#);
        check_stream_options(&oort_sql::parse_stream_ddl(&ddl).unwrap()).map_err(|e| match e {
            ConnectorError::Option { key, message } => (key, message),
            other => panic!("not an option error: {other}"),
        })
    }

    #[test]
    fn a_timestamp_format_must_be_a_pattern_with_a_year_for_a_timestamp_field() {
        assert_eq!(stream_options(r#", TIMESTAMP="t", TIMESTAMP_FORMAT="yyyy-MM-dd HH:mm:ss""#), Ok(()));
        assert_eq!(stream_options(r#", TIMESTAMP="t", TIMESTAMP_FORMAT="""#), Ok(()), "empty: the default");
        let (key, message) = stream_options(r#", TIMESTAMP="t", TIMESTAMP_FORMAT="yyy-MM-dd""#).unwrap_err();
        assert_eq!(key, "TIMESTAMP_FORMAT");
        assert!(message.starts_with("option TIMESTAMP_FORMAT: invalid pattern \"yyy-MM-dd\""), "{message}");
        let (_, message) = stream_options(r#", TIMESTAMP="t", TIMESTAMP_FORMAT="HH:mm:ss""#).unwrap_err();
        assert!(message.contains("no year"), "{message}");
        let (key, message) = stream_options(r#", TIMESTAMP_FORMAT="yyyy-MM-dd""#).unwrap_err();
        assert_eq!(key, "TIMESTAMP_FORMAT");
        assert!(message.contains("this stream has no TIMESTAMP"), "{message}");
    }

    #[test]
    fn shared_true_is_refused_and_shared_false_is_what_oort_does() {
        assert_eq!(stream_options(r#", SHARED="false""#), Ok(()));
        for value in ["true", "TRUE"] {
            let (key, message) = stream_options(&format!(r#", SHARED="{value}""#)).unwrap_err();
            assert_eq!(key, "SHARED");
            assert!(message.starts_with("option SHARED=\"true\" is not supported"), "{message}");
            assert!(message.contains("each rule reads its own instance of the source, with the same results"));
            assert!(message.contains("Leave SHARED out"), "{message}");
        }
    }
}
