//! The catalog interface the server codes against.

use oort_proto::v1::{Connection, KeyedValue, Rule, Schema, Stream, Value};

use crate::record::ServiceRecord;

use crate::error::{EntityKind, StoreError};
use crate::ownership::Ownership;
use crate::record::PluginRecord;

/// Durable storage of streams, rules and plugins. Every mutating call is atomic (it
/// changes everything or nothing) and durable when it returns: a crash right
/// after, even `kill -9`, loses none of it.
///
/// Relations are kept by the catalog itself: a rule records the streams it
/// reads, so a stream that rules read cannot be deleted.
pub trait Catalog: Send + Sync + 'static {
    /// Stores a new stream. Fails with `AlreadyExists` if the name is taken.
    fn create_stream(&self, stream: &Stream) -> Result<(), StoreError>;
    /// Replaces an existing stream; returns the previous definition.
    fn update_stream(&self, stream: &Stream) -> Result<Stream, StoreError>;
    /// Returns a stream by name.
    fn get_stream(&self, name: &str) -> Result<Stream, StoreError>;
    /// Returns every stream, ordered by name.
    fn list_streams(&self) -> Result<Vec<Stream>, StoreError>;
    /// Deletes a stream. Fails with `InUse` naming the rules that read it.
    fn delete_stream(&self, name: &str) -> Result<(), StoreError>;

    /// Stores a new rule that reads `sources`. Fails with `NotFound` if one of
    /// them does not exist, `AlreadyExists` if the id is taken.
    fn create_rule(&self, rule: &Rule, sources: &[String]) -> Result<(), StoreError>;
    /// Replaces an existing rule, now reading `sources`; returns the previous one.
    fn update_rule(&self, rule: &Rule, sources: &[String]) -> Result<Rule, StoreError>;
    /// Returns a rule by id.
    fn get_rule(&self, id: &str) -> Result<Rule, StoreError>;
    /// Returns every rule, ordered by id.
    fn list_rules(&self) -> Result<Vec<Rule>, StoreError>;
    /// Deletes a rule.
    fn delete_rule(&self, id: &str) -> Result<(), StoreError>;
    /// Ids of the rules that read a stream, ordered.
    fn rules_reading(&self, stream: &str) -> Result<Vec<String>, StoreError>;

    /// Stores a plugin, replacing the record of that name; returns the previous one.
    fn put_plugin(&self, plugin: &PluginRecord) -> Result<Option<PluginRecord>, StoreError>;
    /// Returns a plugin by name.
    fn get_plugin(&self, name: &str) -> Result<PluginRecord, StoreError>;
    /// Returns every plugin, ordered by name.
    fn list_plugins(&self) -> Result<Vec<PluginRecord>, StoreError>;
    /// Deletes a plugin.
    fn delete_plugin(&self, name: &str) -> Result<(), StoreError>;
    /// Stores a new external service. Fails with `AlreadyExists` if the name is taken.
    fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError>;
    /// Replaces an existing service; returns the previous record.
    fn update_service(&self, service: &ServiceRecord) -> Result<ServiceRecord, StoreError>;
    /// Returns a service by name.
    fn get_service(&self, name: &str) -> Result<ServiceRecord, StoreError>;
    /// Returns every service, ordered by name.
    fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError>;
    /// Deletes a service. (Which running rules call it is the engine's to
    /// know: rules name functions, not services.)
    fn delete_service(&self, name: &str) -> Result<(), StoreError>;

    /// Stores a new named connection. Fails with `AlreadyExists` if the name is taken.
    fn create_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Replaces an existing connection; returns the previous record.
    fn update_connection(&self, connection: &Connection) -> Result<Connection, StoreError>;
    /// Returns a connection by name.
    fn get_connection(&self, name: &str) -> Result<Connection, StoreError>;
    /// Returns every connection, ordered by name.
    fn list_connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// Deletes a connection. (Which streams and rules refer to it is the
    /// caller's to check: they name it in their options.)
    fn delete_connection(&self, name: &str) -> Result<(), StoreError>;

    /// Stores a new schema. Fails with `AlreadyExists` if the name is taken.
    fn create_schema(&self, schema: &Schema) -> Result<(), StoreError>;
    /// Replaces an existing schema; returns the previous record.
    fn update_schema(&self, schema: &Schema) -> Result<Schema, StoreError>;
    /// Returns a schema by name.
    fn get_schema(&self, name: &str) -> Result<Schema, StoreError>;
    /// Returns every schema, ordered by name.
    fn list_schemas(&self) -> Result<Vec<Schema>, StoreError>;
    /// Deletes a schema. (Which streams and rules use it is the caller's to
    /// check: they name it in their options.)
    fn delete_schema(&self, name: &str) -> Result<(), StoreError>;

    /// Sets keyed values (`get_keyed_state`), all or none; a key given twice
    /// takes its last value. Returns how many keys had no value. Fails with
    /// `Full` when the keys would number more than `max_keys`.
    fn put_keyed_state(&self, entries: &[KeyedValue], max_keys: usize) -> Result<usize, StoreError>;
    /// The value of a key, `None` when it has none.
    fn get_keyed_state(&self, key: &str) -> Result<Option<Value>, StoreError>;
    /// At most `limit` keys with their values, in key order: those that start
    /// with `prefix`, after `after` when given.
    fn list_keyed_state(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<KeyedValue>, StoreError>;
    /// Removes keys; returns how many had a value.
    fn delete_keyed_state(&self, keys: &[String]) -> Result<usize, StoreError>;

    /// Forces everything to disk (mutating calls already do; this is for shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// The changes from now on to what servers keep in memory (rules,
    /// connections, schemas, external services), in the order they were
    /// committed, this server's own included, when other servers may write
    /// the catalog too (a shared catalog); `None` for a catalog only this
    /// server writes.
    fn watch(&self) -> Result<Option<tokio::sync::mpsc::Receiver<CatalogChange>>, StoreError> {
        Ok(None)
    }

    /// Keeps a plugin's archive by the SHA-256 (hex) of its bytes, for every
    /// server sharing the catalog to install; a catalog only this server
    /// uses keeps none (its plugins' folders are enough).
    fn put_plugin_archive(&self, sha256: &str, archive: &[u8]) -> Result<(), StoreError> {
        let _ = (sha256, archive);
        Ok(())
    }

    /// The archive kept under `sha256`, checked against it.
    fn get_plugin_archive(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::NotFound { kind: EntityKind::Plugin, name: format!("archive {sha256}") })
    }

    /// Forgets the archive kept under `sha256`.
    fn delete_plugin_archive(&self, sha256: &str) -> Result<(), StoreError> {
        let _ = sha256;
        Ok(())
    }

    /// One owner per rule among the servers sharing this catalog, this one
    /// named `instance`; `None` for a catalog only this server uses.
    fn ownership(&self, instance: &str) -> Result<Option<std::sync::Arc<dyn Ownership>>, StoreError> {
        let _ = instance;
        Ok(None)
    }
}

/// Something stored or deleted, as a shared catalog's watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogChange {
    /// A rule was created or replaced.
    Rule(Box<Rule>),
    /// A connection was created or replaced.
    Connection(Connection),
    /// A schema was created or replaced.
    Schema(Schema),
    /// An external service was created or replaced.
    Service(Box<ServiceRecord>),
    /// A plugin was installed or updated.
    Plugin(PluginRecord),
    /// The entity of this kind and name was deleted.
    Deleted(EntityKind, String),
}
