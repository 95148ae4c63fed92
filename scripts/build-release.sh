#!/usr/bin/env bash
# Builds the binaries that ship, oortd and the oort CLI, with the `dist`
# profile (release with whole-program LTO, stripped; see Cargo.toml) into
# target/dist. The Dockerfile's build step, and run by CI so that it stays working.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --locked -p oortd -p oort-cli
ls -l target/dist/oortd target/dist/oort
