//! The protobuf messages that cross the native boundary, declared here with the
//! same field numbers as `proto/oort/v1/value.proto` and
//! `proto/oort/plugin/v1/plugin.proto`, so that the SDK needs no code generator
//! and no gRPC stack. The host tests that they read and write the same bytes as
//! the generated `oort-proto` types.

use std::collections::HashMap;

/// `oort.v1.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The value.
    #[prost(oneof = "value::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    pub kind: Option<value::Kind>,
}

/// The oneof of [`Value`].
pub mod value {
    /// `oort.v1.Value.kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// NULL.
        #[prost(enumeration = "i32", tag = "1")]
        NullValue(i32),
        /// BOOLEAN.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// BIGINT.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// FLOAT.
        #[prost(double, tag = "4")]
        FloatValue(f64),
        /// STRING.
        #[prost(string, tag = "5")]
        StringValue(String),
        /// BYTEA.
        #[prost(bytes = "vec", tag = "6")]
        BytesValue(Vec<u8>),
        /// DATETIME.
        #[prost(message, tag = "7")]
        TimestampValue(prost_types::Timestamp),
        /// ARRAY.
        #[prost(message, tag = "8")]
        ListValue(super::ListValue),
        /// STRUCT.
        #[prost(message, tag = "9")]
        MapValue(super::MapValue),
    }
}

/// `oort.v1.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    /// Items.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// `oort.v1.MapValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapValue {
    /// Entries.
    #[prost(map = "string, message", tag = "1")]
    pub fields: HashMap<String, Value>,
}

/// `oort.v1.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Columns.
    #[prost(map = "string, message", tag = "1")]
    pub fields: HashMap<String, Value>,
    /// Event time, if the source knows it.
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<prost_types::Timestamp>,
    /// Source metadata.
    #[prost(map = "string, string", tag = "3")]
    pub meta: HashMap<String, String>,
}

/// `oort.plugin.v1.Symbol`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Symbol {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `oort.plugin.v1.SymbolKind`: 1 source, 2 sink, 3 function.
    #[prost(int32, tag = "2")]
    pub kind: i32,
    /// For functions: aggregate or not.
    #[prost(bool, tag = "3")]
    pub aggregate: bool,
    /// One-line description.
    #[prost(string, tag = "4")]
    pub description: String,
}

/// `oort.plugin.v1.SymbolKind` values.
pub mod symbol_kind {
    /// A source.
    pub const SOURCE: i32 = 1;
    /// A sink.
    pub const SINK: i32 = 2;
    /// A function.
    pub const FUNCTION: i32 = 3;
}

/// `oort.plugin.v1.DescribeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeResponse {
    /// Plugin name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Plugin version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// For native plugins: the ABI major version.
    #[prost(uint32, tag = "3")]
    pub protocol_version: u32,
    /// Symbols, in index order.
    #[prost(message, repeated, tag = "4")]
    pub symbols: Vec<Symbol>,
}

/// `oort.plugin.v1.OpenSourceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpenSourceRequest {
    /// Source name.
    #[prost(string, tag = "1")]
    pub source: String,
    /// The stream's DATASOURCE.
    #[prost(string, tag = "2")]
    pub datasource: String,
    /// The stream's options.
    #[prost(message, optional, tag = "3")]
    pub config: Option<prost_types::Struct>,
    /// Rule id.
    #[prost(string, tag = "4")]
    pub rule_id: String,
}

/// `oort.plugin.v1.OpenSourceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpenSourceResponse {
    /// Events, in order.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<Event>,
}

/// `oort.plugin.v1.SinkOpen`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SinkOpen {
    /// Sink name.
    #[prost(string, tag = "1")]
    pub sink: String,
    /// The action's properties.
    #[prost(message, optional, tag = "2")]
    pub config: Option<prost_types::Struct>,
    /// Rule id.
    #[prost(string, tag = "3")]
    pub rule_id: String,
}

/// `oort.plugin.v1.SinkBatch`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SinkBatch {
    /// Batch id.
    #[prost(uint64, tag = "1")]
    pub batch_id: u64,
    /// Events, in order.
    #[prost(message, repeated, tag = "2")]
    pub events: Vec<Event>,
}
