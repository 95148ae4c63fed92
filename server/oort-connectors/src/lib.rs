//! Oort's built-in connectors, registered by an explicit list in [`register_all`].
//!
//! - [`bus`]: [`TopicBus`], in-process publish/subscribe by topic; [`journal`]:
//!   the durable record of a topic that a rule with qos >= 1 reads.
//! - [`memory`]: the `memory` source and sink over a bus: rule → stream chaining.
//! - [`grpc`]: the `grpc` source fed by `EventService.Publish`, and the `grpc`
//!   sink whose output clients read with `RuleService.TailRule`.
//! - [`log`]: the `log` sink, results into the server log.
//! - [`httppush`]: the `httppush` source, events POSTed over HTTP.
//! - [`httppull`]: the `httppull` source, a URL requested at an interval.
//! - [`file`](mod@file): the `file` source and sink, rows read from and appended to local files.
//! - [`rest`]: the `rest` sink, each payload sent as an HTTP request.
//! - [`redis`](mod@redis): the `redis` sink, rows stored as strings or pushed on lists, and
//!   `redis` lookup tables that read them at join time.
//! - [`encode`]: [`encode::SinkEncoder`], the common sink properties (`sendSingle`, `dataTemplate`, ...).
//! - [`mqtt`]: the `mqtt` source and sink, subscribing to and publishing on an MQTT broker.
//! - [`kafka`]: the `kafka` source and sink, a consumer group's topic and a producer.
//! - [`nats`]: the `nats` source and sink, core NATS subjects and JetStream streams.
//! - [`sql`]: the `sql` source, sink and lookup tables, SQLite and PostgreSQL.
//! - [`websocket`]: the `websocket` source and sink, as a client of a server or as the server of an endpoint.
//! - [`connections`]: named connections, the brokers' settings streams and actions refer to.

pub mod bus;
pub mod connections;
pub mod encode;
pub mod file;
pub mod grpc;
mod holds;
pub mod httppull;
pub mod httppush;
pub mod journal;
pub mod kafka;
pub mod log;
pub mod memory;
pub mod mqtt;
pub mod nats;
pub mod redis;
pub mod rest;
mod rowkind;
pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod websocket;

use std::sync::Arc;

use oort_engine::ConnectorRegistry;
use oort_policy::{EgressPolicy, FileRoots};

pub use bus::TopicBus;

/// The shared state built-in connectors need: the buses.
#[derive(Clone, Default)]
pub struct Buses {
    /// Topics of the `memory` connectors.
    pub memory: Arc<TopicBus>,
    /// Streams of type `grpc`, by stream name, fed by `EventService.Publish`.
    pub grpc: Arc<TopicBus>,
    /// Streams of type `httppush`, by URL path, fed by [`httppush::router`].
    pub http: Arc<TopicBus>,
    /// The websocket endpoints served beside HTTP push.
    pub websocket: Arc<websocket::WebsocketHub>,
}

/// What the built-in connectors are given: the buses, the server's policies
/// and defaults.
pub struct Builtins<'a> {
    /// The in-process buses.
    pub buses: &'a Buses,
    /// Where `file` connectors may read and write.
    pub files: &'a Arc<FileRoots>,
    /// Where the `rest` sink may connect.
    pub egress: &'a Arc<EgressPolicy>,
    /// The named connections, `default` (the server's MQTT broker) among them.
    pub connections: &'a Arc<connections::Connections>,
}

/// Registers every built-in source and sink.
pub fn register_all(registry: &ConnectorRegistry, builtins: &Builtins<'_>) {
    let Builtins { buses, files, egress, connections } = *builtins;
    registry.register_source("memory", Arc::new(memory::MemorySourceFactory(Arc::clone(&buses.memory))));
    registry.register_sink("memory", Arc::new(memory::MemorySinkFactory(Arc::clone(&buses.memory))));
    registry.register_source("grpc", Arc::new(grpc::GrpcSourceFactory(Arc::clone(&buses.grpc))));
    registry.register_sink("grpc", Arc::new(grpc::GrpcSinkFactory));
    registry.register_sink("log", Arc::new(log::LogSinkFactory));
    registry.register_source("httppush", Arc::new(httppush::HttpPushSourceFactory(Arc::clone(&buses.http))));
    registry.register_source("httppull", Arc::new(httppull::HttpPullSourceFactory(Arc::clone(egress))));
    let mqtt = mqtt::MqttContext {
        connections: Arc::clone(connections),
        files: Arc::clone(files),
        egress: Arc::clone(egress),
    };
    registry.register_source("mqtt", Arc::new(mqtt::MqttSourceFactory::new(mqtt.clone())));
    registry.register_sink("mqtt", Arc::new(mqtt::MqttSinkFactory(mqtt)));
    let nats = nats::NatsContext {
        connections: Arc::clone(connections),
        files: Arc::clone(files),
        egress: Arc::clone(egress),
    };
    registry.register_source("nats", Arc::new(nats::NatsSourceFactory(nats.clone())));
    registry.register_sink("nats", Arc::new(nats::NatsSinkFactory(nats)));
    let kafka = kafka::KafkaContext {
        connections: Arc::clone(connections),
        files: Arc::clone(files),
        egress: Arc::clone(egress),
    };
    registry.register_source("kafka", Arc::new(kafka::KafkaSourceFactory::new(kafka.clone())));
    registry.register_sink("kafka", Arc::new(kafka::KafkaSinkFactory(kafka)));
    registry.register_source("file", Arc::new(file::FileSourceFactory::new(Arc::clone(files))));
    registry.register_sink("file", Arc::new(file::FileSinkFactory(Arc::clone(files))));
    registry.register_sink("rest", Arc::new(rest::RestSinkFactory(Arc::clone(egress))));
    registry.register_sink(
        "redis",
        Arc::new(redis::RedisSinkFactory {
            connections: Arc::clone(connections),
            egress: Arc::clone(egress),
            files: Arc::clone(files),
        }),
    );
    let sql =
        sql::SqlContext { connections: Arc::clone(connections), files: Arc::clone(files), egress: Arc::clone(egress) };
    let websocket = websocket::WebsocketContext {
        connections: Arc::clone(connections),
        files: Arc::clone(files),
        egress: Arc::clone(egress),
        hub: Arc::clone(&buses.websocket),
    };
    registry.register_source("websocket", Arc::new(websocket::WebsocketSourceFactory(websocket.clone())));
    registry.register_sink("websocket", Arc::new(websocket::WebsocketSinkFactory(websocket)));
    registry.register_source("sql", Arc::new(sql::SqlSourceFactory::new(sql.clone())));
    registry.register_sink("sql", Arc::new(sql::SqlSinkFactory(sql)));
    registry.register_source(
        "redis",
        Arc::new(redis::RedisSourceFactory {
            connections: Arc::clone(connections),
            egress: Arc::clone(egress),
            files: Arc::clone(files),
        }),
    );
}
