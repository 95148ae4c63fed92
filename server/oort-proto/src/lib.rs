//! Generated code of Oort's protobuf API, and nothing else.
//!
//! - [`v1`]: the management API (`oort.v1`): streams, rules, plugins, external
//!   services, functions and events. Clients and the server both use it.
//! - [`plugin::v1`]: the plugin protocol (`oort.plugin.v1`) spoken by portable
//!   plugins, whose messages the native ABI reuses.
//! - the `grpc` feature (default): tonic clients and servers of the services;
//!   without it, the messages alone.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of both packages, for gRPC
//!   reflection and dynamic (JSON) views of the messages.

/// The management API, package `oort.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/oort.v1.rs"));
}

/// The plugin protocol.
pub mod plugin {
    /// Package `oort.plugin.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/oort.plugin.v1.rs"));
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every Oort proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oort_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_set_decodes_and_holds_every_service() {
        let pool = prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        for service in [
            "oort.v1.StreamService",
            "oort.v1.RuleService",
            "oort.v1.PluginService",
            "oort.v1.ExternalService",
            "oort.v1.FunctionService",
            "oort.v1.ConnectorService",
            "oort.v1.EventService",
            "oort.plugin.v1.PluginService",
        ] {
            assert!(pool.get_service_by_name(service).is_some(), "{service} missing");
        }
    }
}
