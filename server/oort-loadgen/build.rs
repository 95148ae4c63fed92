//! Generates the tonic client and server of the demo external service
//! (`testdata/external/proto/demo/v1/demo.proto`) with protox and
//! tonic-prost-build: the hand-written side of the `external` benchmark.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let demo = manifest.join("../../testdata/external/proto");
    let google_api = manifest.join("../oort-external/proto");
    println!("cargo:rerun-if-changed={}", demo.display());
    let fds = protox::compile(["demo/v1/demo.proto"], [&demo, &google_api])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
