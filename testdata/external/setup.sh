#!/usr/bin/env bash
# Creates testdata/external/.venv with what the example external services need:
# grpcio (the gRPC server) and grpcio-tools (generates their Python stubs from
# the .proto files when they start). The oortd tests run the services with
# this venv's python and fail, saying so, when it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
echo "external test services ready: $here/.venv"
