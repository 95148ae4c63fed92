#!/usr/bin/env bash
# Runs every check and test of the project. This is the one command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh
scripts/install-brokers.sh
export PATH="$(go env GOPATH)/bin:$PATH"

echo "== buf lint" >&2
buf lint

# Compare the API with the previous commit of main; skipped only when there is
# no previous commit, or it had no protos yet.
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  echo "== buf breaking against HEAD~1" >&2
  buf breaking --against '.git#ref=HEAD~1'
else
  echo "== buf breaking skipped: no previous commit with protos" >&2
fi

echo "== cargo fmt" >&2
cargo fmt --all --check

echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== external test services (Python venv with grpcio)" >&2
testdata/external/setup.sh

echo "== plugins/examples/noderaw: a plugin without an SDK (Node.js) against Python's grpcio" >&2
plugins/examples/noderaw/test.sh

echo "== plugin SDKs: Python (plugins/python) and Go (plugins/go), each with its example plugin" >&2
plugins/python/test.sh
plugins/go/test.sh

echo "== cargo test" >&2
# The binaries first: the CLI's end-to-end tests run the oortd binary.
cargo build --workspace --bins --locked
cargo test --workspace --locked

echo "== README quick start against a fresh oortd" >&2
scripts/test-readme.sh

echo "== clients (Python, Go, TypeScript) against the real oortd" >&2
scripts/test-clients.sh

echo "== docker-compose.yml is valid, and the Dockerfile's build step works" >&2
docker-compose -f docker-compose.yml config --quiet
scripts/build-release.sh
