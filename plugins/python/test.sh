#!/usr/bin/env bash
# Tests the Python plugin SDK and its example plugins/examples/pydemo: creates
# (or reuses) the venv plugins/python/.venv, installs the pinned test
# requirements and the SDK itself (a real, non-editable install, as a plugin
# author gets it), then runs pytest. Needs python3 (>= 3.10: grpcio 1.85 and protobuf 7 need it) and pip's registry.
# Extra arguments go to pytest (e.g. -k sink). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

python="${PYTHON:-python3}"
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating plugins/python/$venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.test-requirements"
if ! cmp -s requirements-test.txt "$stamp"; then
  echo "installing plugins/python/requirements-test.txt" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-test.txt
  cp requirements-test.txt "$stamp"
fi
# --no-build-isolation: build with the venv's setuptools, so no extra download.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall .
rm -rf build src/*.egg-info
echo "== mypy --strict src/oort_plugin" >&2
"$venv/bin/python" -m mypy --cache-dir "$venv/.mypy_cache"
echo "== pytest" >&2
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
