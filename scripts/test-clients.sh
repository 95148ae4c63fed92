#!/usr/bin/env bash
# Checks that the committed generated code and docs/api.md are what proto/
# generates, that every element of proto/ is documented, then runs the test
# suites of the three clients, each against the real oortd: $OORT_BIN, by
# default target/debug/oortd (scripts/test.sh builds it first). Installs what
# it needs (scripts/gen-clients.sh; pip into clients/python/.venv; npm ci).
# Needs go, python3, npm and git.
set -euo pipefail
cd "$(dirname "$0")/.."

export OORT_BIN="${OORT_BIN:-$PWD/target/debug/oortd}"
if [ ! -x "$OORT_BIN" ]; then
  echo "no oortd at $OORT_BIN: run cargo build --bin oortd, or set OORT_BIN" >&2
  exit 1
fi

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
trap 'rm -f "$image"' EXIT
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
# npm ci also runs `prepare`, which compiles the package as an install from git would.
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.oort-package-lock.json && npm test)
