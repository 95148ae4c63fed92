//! Protobuf schemas at run time.
//!
//! - [`compile`]: `.proto` files compiled by protox into a descriptor pool,
//!   within bounds (file count, sizes, nesting) checked before the compiler
//!   sees them; used for external services' descriptions and for schemas.
//! - [`SchemaRegistry`]: the schemas registered through `SchemaService`, by
//!   name; a stream's `SCHEMAID` (`FORMAT="protobuf"`) or a sink's
//!   `schemaId` is `<schema>.<Message>`.
//! - [`decode`] and [`encode`]: a payload to and from JSON by one message of
//!   a schema, with the `.proto` field names and 64-bit integers as numbers.

mod codec;
mod compile;
mod registry;

pub use codec::{decode, encode};
pub use compile::{MAX_PROTO_FILE_BYTES, MAX_PROTO_FILES, MAX_PROTO_NESTING, MAX_PROTO_TOTAL_BYTES, compile};
pub use prost_reflect::MessageDescriptor;
pub use registry::{ProtoSchema, SchemaRegistry, schema_of};

/// What can go wrong with a schema or a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A `.proto` file that does not compile, or is refused before.
    #[error("{0}")]
    Proto(String),
    /// A schema or message that is not there.
    #[error("{0}")]
    NotFound(String),
    /// A payload that does not decode, or a row that does not encode.
    #[error("{0}")]
    Payload(String),
}
