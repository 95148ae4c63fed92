#!/usr/bin/env bash
# Builds the release binaries that ship: oortd and the oort CLI, into
# target/release. The Dockerfile's build step, and run by CI so that it stays working.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p oortd -p oort-cli
