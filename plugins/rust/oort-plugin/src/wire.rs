//! The protobuf messages that cross the native boundary: `oort-proto`'s own
//! (without its gRPC services, unless the `portable` feature asks for them),
//! so that the native ABI and the portable protocol carry the same messages
//! and the SDK converts its values to them in one place ([`crate::value`]).

pub use oort_proto::plugin::v1::{
    DescribeResponse, OpenSourceRequest, OpenSourceResponse, SinkBatch, SinkOpen, Symbol, SymbolKind,
};
pub use oort_proto::v1::{Event, ListValue, MapValue, Value, value};

/// `oort.plugin.v1.SymbolKind` values, as a [`Symbol`]'s `kind`.
pub mod symbol_kind {
    use super::SymbolKind;

    /// A source.
    pub const SOURCE: i32 = SymbolKind::Source as i32;
    /// A sink.
    pub const SINK: i32 = SymbolKind::Sink as i32;
    /// A function.
    pub const FUNCTION: i32 = SymbolKind::Function as i32;
}
