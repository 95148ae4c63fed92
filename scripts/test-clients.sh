#!/usr/bin/env bash
# Checks that the committed generated code and docs/api.md are what proto/
# generates, that every element of proto/ is documented, then runs the test
# suites of the three clients, each against the real oortd: $OORT_BIN, by
# default target/debug/oortd (scripts/test.sh builds it first); then installs
# each package as a user outside this repository would (the Python client's
# wheel into a fresh virtual environment; the TypeScript client's `npm pack`
# tarball into a project of its own, whose example it runs). Installs what it
# needs (scripts/gen-clients.sh; pip into clients/python/.venv and the fresh
# venv; npm ci; npm install of the tarball, from npm's cache or registry).
# Needs go, python3, npm and git.
set -euo pipefail
cd "$(dirname "$0")/.."

export OORT_BIN="${OORT_BIN:-$PWD/target/debug/oortd}"
if [ ! -x "$OORT_BIN" ]; then
  echo "no oortd at $OORT_BIN: run cargo build --bin oortd, or set OORT_BIN" >&2
  exit 1
fi

# What the EXIT trap removes: temporary files and folders, servers started.
scratch=()
servers=()
cleanup() {
  if ((${#servers[@]})); then kill "${servers[@]}" 2>/dev/null || true; fi
  if ((${#scratch[@]})); then rm -rf "${scratch[@]}"; fi
}
trap cleanup EXIT

# Starts $OORT_BIN on a free port with a fresh data directory and a fresh admin
# token, exported as OORT_TOKEN (each client's default), and waits for its
# ready line (one JSON object on stdout); sets oortd_addr to its API address.
start_oortd() {
  local dir line
  dir="$(mktemp -d)"
  scratch+=("$dir")
  OORT_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  export OORT_TOKEN
  exec {oortd_out}< <(exec env -u OORT_LISTEN -u OORT_DATA_DIR -u OORT_TLS_CERT -u OORT_TLS_KEY -u OORT_TLS_CLIENT_CA \
    OORT_AUTH_TOKEN="$OORT_TOKEN" "$OORT_BIN" --listen 127.0.0.1:0 --data-dir "$dir/data" --http-push-listen off 2>"$dir/oortd.log")
  servers+=("$!")
  oortd_addr=""
  while [ -z "$oortd_addr" ] && IFS= read -r -t 60 line <&"$oortd_out"; do
    if [[ "$line" == *'"oortd":"ready"'* && "$line" =~ \"api\":\"([^\"]+)\" ]]; then
      oortd_addr="${BASH_REMATCH[1]}"
    fi
  done
  if [ -z "$oortd_addr" ]; then
    echo "$OORT_BIN did not print its ready line; its log:" >&2
    tail -20 "$dir/oortd.log" >&2
    return 1
  fi
}

scripts/gen-clients.sh
export PATH="$(go env GOPATH)/bin:$PATH"
generated=(clients/go/gen clients/python/src/oort clients/typescript/src/gen plugins/python/src/oort_plugin/_gen docs/api.md plugins/examples/noderaw/src/gen)

echo "== generated code is up to date with proto/" >&2
untracked="$(git status --porcelain --untracked-files=all -- "${generated[@]}" | grep '^??' || true)"
if ! git diff --exit-code --stat -- "${generated[@]}" || [ -n "$untracked" ]; then
  [ -z "$untracked" ] || echo "$untracked" >&2
  echo "the generated code differs from what proto/ generates: run scripts/gen-clients.sh and commit the result" >&2
  exit 1
fi

echo "== every service, rpc, message, field and enum value is documented" >&2
image="$(mktemp)"
scratch+=("$image")
buf build -o "$image"
python=clients/python/.venv/bin/python
"$python" clients/tools/check_proto_comments.py "$image"

echo "== python client" >&2
"$python" -m pip install -q --disable-pip-version-check -r clients/python/requirements-test.txt
# A real (non-editable) install, so the tests use the package as pip builds it.
"$python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall ./clients/python
(cd clients/python && .venv/bin/python -m pytest -q -p no:cacheprovider)

echo "== go client" >&2
(cd clients/go && go vet ./... && go test -count=1 ./...)

echo "== typescript client" >&2
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.oort-package-lock.json && npm test)

# The packages as a user outside this repository installs them, each used
# against one more server.
start_oortd

echo "== python client: a wheel, installed into a fresh virtual environment outside the repository" >&2
wheels="$(mktemp -d)"
scratch+=("$wheels")
# setuptools builds in the source folder: no build/ of an earlier run may add stale files.
rm -rf clients/python/build clients/python/src/*.egg-info
"$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" ./clients/python
rm -rf clients/python/build clients/python/src/*.egg-info
python3 -m venv "$wheels/venv"
"$wheels/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheels"/oort_client-*.whl
# -I: neither the current folder nor PYTHONPATH on sys.path, only the venv.
(cd "$wheels" && venv/bin/python -I - "$oortd_addr" <<'PY'
import importlib.metadata, sys
import oort_client
from oort.v1 import stream_pb2_grpc  # the generated code, shipped in the wheel

assert oort_client.__file__.startswith(sys.prefix), f"imported {oort_client.__file__}, not the venv's"
assert oort_client.__version__ == importlib.metadata.version("oort-client"), "two versions"
with oort_client.Oort(sys.argv[1]) as oort:  # the token from $OORT_TOKEN
    oort.streams.create('CREATE STREAM wheel (x BIGINT) WITH (TYPE="grpc", DATASOURCE="wheel")')
    assert oort.streams.get("wheel").name == "wheel"
    oort.streams.delete("wheel")
print(f"oort-client {oort_client.__version__} from a wheel: imported, and a stream made and dropped")
PY
)

echo "== typescript client: npm pack, npm install of the tarball in a project of its own, its example run" >&2
app="$(mktemp -d)"
scratch+=("$app")
# `prepack` compiles the package afresh into dist/, which the tarball carries.
tarball="$(cd clients/typescript && npm pack --silent --pack-destination "$app")"
tarball="$app/${tarball##*$'\n'}"
(
  cd "$app"
  echo '{"name": "oort-client-app", "private": true, "type": "module"}' >package.json
  npm install --prefer-offline --no-audit --no-fund --loglevel=error "$tarball"
  node -e "import('@oort-edge/oort-client').then((m) => {
    for (const name of ['Oort', 'float', 'ConnectError', 'Code']) if (!m[name]) throw new Error('the package exports no ' + name);
  })"
  cp node_modules/@oort-edge/oort-client/examples/quickstart.mjs .
)
out="$(cd "$app" && node quickstart.mjs "$oortd_addr")"
echo "$out"
if ! grep -q "f: 77" <<<"$out" || ! grep -q "^true stream 'nope' not found" <<<"$out"; then
  echo "examples/quickstart.mjs did not print the row and the error its comments promise" >&2
  exit 1
fi
