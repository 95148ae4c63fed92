//! Compiles `proto/` with protox (no system `protoc`) and generates the Rust
//! code with tonic-prost-build. The encoded descriptor set is kept for gRPC
//! reflection and for dynamic (JSON) views of the messages.

use std::path::PathBuf;

use prost_types::FileDescriptorSet;

const FILES: &[&str] = &[
    "oort/v1/value.proto",
    "oort/v1/stream.proto",
    "oort/v1/rule.proto",
    "oort/v1/plugin.proto",
    "oort/v1/external.proto",
    "oort/v1/function.proto",
    "oort/v1/connector.proto",
    "oort/v1/event.proto",
    "oort/v1/state.proto",
    "oort/v1/connection.proto",
    "oort/v1/schema.proto",
    "oort/plugin/v1/plugin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let fds: FileDescriptorSet = protox::compile(FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("oort_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;

    // The services only with the `grpc` feature: the messages need no tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure().build_client(grpc).build_server(grpc).compile_fds(fds)?;
    Ok(())
}
