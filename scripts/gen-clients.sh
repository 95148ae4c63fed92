#!/usr/bin/env bash
# Regenerates every client (clients/go/gen, clients/python/src/oort,
# clients/typescript/src/gen), the Python plugin SDK's messages
# (plugins/python/src/oort_plugin/_gen), the API reference docs/api.md from proto/ with
# `buf generate` (buf.gen.yaml), and the grpc.health.v1 code of the SDK-less
# Node.js example plugin (plugins/examples/noderaw/buf.gen.yaml), after installing the pinned generators it
# needs where they are missing: Go plugins with `go install`, Python's into
# clients/python/.venv with pip, TypeScript's into clients/typescript/node_modules
# with `npm ci`. Local plugins only; no protoc other than the one bundled in
# grpcio-tools. Needs go, python3 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION="$(sed -n 's/^BUF_VERSION=//p' scripts/install-tools.sh)" # one pin, shared with the tests
GOBIN="$(go env GOPATH)/bin"

go_install() { # binary package module version
  # `go version -m` reads the module version baked into the binary.
  if [ -x "$GOBIN/$1" ] && go version -m "$GOBIN/$1" | grep -q "mod[[:space:]]*$3[[:space:]]*$4"; then
    return
  fi
  echo "installing $1 $4" >&2
  go install "$2@$4"
}

go_install buf github.com/bufbuild/buf/cmd/buf github.com/bufbuild/buf "${BUF_VERSION:?no BUF_VERSION in scripts/install-tools.sh}"
go_install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/protobuf v1.36.11
go_install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.5.1
go_install protoc-gen-doc github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc github.com/pseudomuto/protoc-gen-doc v1.5.1

# Python: grpcio-tools (protoc and the gRPC generator) and mypy-protobuf (.pyi).
venv=clients/python/.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv"
fi
stamp="$venv/.gen-requirements"
if ! cmp -s clients/python/requirements-gen.txt "$stamp"; then
  echo "installing Python generators (clients/python/requirements-gen.txt)" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r clients/python/requirements-gen.txt
  cp clients/python/requirements-gen.txt "$stamp"
fi

# TypeScript: @bufbuild/protoc-gen-es, pinned in package-lock.json. Scripts are
# skipped: `prepare` compiles the sources, which may not match proto/ yet.
modules=clients/typescript/node_modules
if ! cmp -s clients/typescript/package-lock.json "$modules/.oort-package-lock.json"; then
  echo "installing TypeScript generators (npm ci in clients/typescript)" >&2
  (cd clients/typescript && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp clients/typescript/package-lock.json "$modules/.oort-package-lock.json"
fi

# Remove what the last run generated, so that code of a deleted .proto goes too.
rm -rf clients/go/gen clients/typescript/src/gen docs/api.md plugins/examples/noderaw/src/gen
find clients/python/src/oort plugins/python/src/oort_plugin/_gen -name '*_pb2*.py*' -delete 2>/dev/null || true

export PATH="$PWD/$venv/bin:$PWD/$modules/.bin:$GOBIN:$PATH"
echo "== buf generate" >&2
buf generate
buf generate --template plugins/examples/noderaw/buf.gen.yaml

# protoc's Python modules import each other by proto package (`from oort.v1
# import value_pb2`); the plugin SDK's copy lives inside its own package, so its
# imports are made to say so. Then a plugin zip needs only the oort_plugin folder.
python3 - plugins/python/src/oort_plugin/_gen <<'PY'
import pathlib, re, sys
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*_pb2*.py*")):
    text = path.read_text(encoding="utf-8")
    fixed = re.sub(r"^from oort\.", "from oort_plugin._gen.oort.", text, flags=re.M)
    if fixed != text:
        path.write_text(fixed, encoding="utf-8")
PY
