#!/usr/bin/env bash
# Proves that noderaw, a plugin written without an SDK, speaks oort.plugin.v1:
# builds and type-checks it (npm ci from package-lock.json), packages it
# (package.sh), and runs test/test_protocol.py, which starts the unpacked
# package as oortd would and talks to it with Python's grpcio (the generated
# code of clients/python/src) over the Unix socket. The Python side lives in
# .venv here (requirements-test.txt). Exits non-zero on any failure.
# Needs node >= 20, npm and python3 (with venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

echo "== noderaw: npm ci, type-check" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json node_modules/.package-lock-ci.json # package.sh's stamp: no second npm ci
npx --no-install tsc -p tsconfig.json

echo "== noderaw: Python grpcio client in .venv" >&2
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
if ! cmp -s requirements-test.txt .venv/.requirements-test.txt; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
  cp requirements-test.txt .venv/.requirements-test.txt
fi

echo "== noderaw: protocol test (package.sh, then the package against grpcio)" >&2
exec .venv/bin/python -m pytest -q -p no:cacheprovider test "$@"
