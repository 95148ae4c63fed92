//! The versioned envelope of stored values.
//!
//! Every value is `[format version: u8][protobuf bytes]`. The protobuf messages
//! of `oort.v1` already evolve compatibly field by field; the version byte is
//! for the day a record must change shape in a way protobuf cannot express, so
//! that [`Record::migrate`] can convert old records when they are read.

use prost::Message;

use crate::error::StoreError;

/// A type stored in its own sled tree, keyed by a name.
pub trait Record: Message + Default + Sized {
    /// Name of the sled tree holding this kind.
    const TREE: &'static str;
    /// Format version written by this build.
    const FORMAT_VERSION: u8 = 1;

    /// The key the record is stored under.
    fn key(&self) -> &str;

    /// Converts a record written with an older `version`. The default knows
    /// only the current version.
    fn migrate(version: u8, key: &str, _payload: &[u8]) -> Result<Self, StoreError> {
        Err(StoreError::UnsupportedVersion {
            tree: Self::TREE,
            key: key.to_owned(),
            found: version,
            supported: Self::FORMAT_VERSION,
        })
    }

    /// Encodes the record with its envelope.
    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + self.encoded_len());
        bytes.push(Self::FORMAT_VERSION);
        // Encoding into a Vec cannot fail: it grows as needed.
        self.encode(&mut bytes).expect("Vec<u8> grows as needed");
        bytes
    }

    /// Decodes a record from its envelope, migrating older versions.
    fn from_bytes(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let Some((&version, payload)) = bytes.split_first() else {
            return Err(StoreError::Corrupt { tree: Self::TREE, key: key.to_owned(), reason: "empty value".into() });
        };
        if version != Self::FORMAT_VERSION {
            return Self::migrate(version, key, payload);
        }
        Self::decode(payload).map_err(|e| StoreError::Corrupt {
            tree: Self::TREE,
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl Record for oort_proto::v1::Stream {
    const TREE: &'static str = "streams";
    fn key(&self) -> &str {
        &self.name
    }
}

impl Record for oort_proto::v1::KeyedValue {
    const TREE: &'static str = "keyed_state";
    fn key(&self) -> &str {
        &self.key
    }
}

impl Record for oort_proto::v1::Connection {
    const TREE: &'static str = "connections";
    fn key(&self) -> &str {
        &self.name
    }
}

impl Record for oort_proto::v1::Schema {
    const TREE: &'static str = "schemas";
    fn key(&self) -> &str {
        &self.name
    }
}

impl Record for oort_proto::v1::Rule {
    const TREE: &'static str = "rules";
    fn key(&self) -> &str {
        &self.id
    }
}

/// An installed plugin as the catalog keeps it: enough to load it again at
/// start-up (its symbols are read from the library itself).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginRecord {
    /// Plugin name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `oort.v1.PluginKind`.
    #[prost(int32, tag = "2")]
    pub kind: i32,
    /// The plugin's version.
    #[prost(string, tag = "3")]
    pub version: String,
    /// ABI (native) or protocol (portable) version, `major.minor`.
    #[prost(string, tag = "4")]
    pub abi_version: String,
    /// Its folder, relative to the server's plugin directory.
    #[prost(string, tag = "5")]
    pub dir: String,
    /// The library or executable in that folder.
    #[prost(string, tag = "6")]
    pub file: String,
    /// With a shared catalog, the SHA-256 (hex) of the archive it was
    /// installed from, kept in the catalog ([`crate::Catalog::get_plugin_archive`])
    /// for every server to install; empty otherwise. `dir` is then the
    /// folder of the server that installed it, not of the others.
    #[prost(string, tag = "7")]
    pub sha256: String,
}

impl Record for PluginRecord {
    const TREE: &'static str = "plugins";
    fn key(&self) -> &str {
        &self.name
    }
}

/// A registered external service as stored: its description in eKuiper's JSON
/// service format (which keeps every option) and its `.proto` files.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceRecord {
    /// Unique service name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The description, as eKuiper's JSON service file.
    #[prost(string, tag = "2")]
    pub description_json: String,
    /// The .proto files.
    #[prost(message, repeated, tag = "3")]
    pub proto_files: Vec<oort_proto::v1::ProtoFile>,
    /// When it was registered (Unix ms).
    #[prost(int64, tag = "4")]
    pub create_time_ms: i64,
    /// When it was last changed (Unix ms).
    #[prost(int64, tag = "5")]
    pub update_time_ms: i64,
}

impl Record for ServiceRecord {
    const TREE: &'static str = "services";
    fn key(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_proto::v1::Stream;

    #[test]
    fn round_trips_through_the_envelope() {
        let stream = Stream {
            name: "demo".into(),
            sql: "CREATE STREAM demo () WITH (DATASOURCE=\"d\")".into(),
            ..Default::default()
        };
        let bytes = stream.to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(Stream::from_bytes("demo", &bytes).unwrap(), stream);
    }

    #[test]
    fn refuses_a_newer_version_and_garbage() {
        let mut bytes = Stream::default().to_bytes();
        bytes[0] = 9;
        assert!(matches!(Stream::from_bytes("x", &bytes), Err(StoreError::UnsupportedVersion { found: 9, .. })));
        assert!(matches!(Stream::from_bytes("x", &[]), Err(StoreError::Corrupt { .. })));
        assert!(matches!(Stream::from_bytes("x", &[1, 0xff, 0xff]), Err(StoreError::Corrupt { .. })));
    }
}
