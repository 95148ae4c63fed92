#!/usr/bin/env bash
# Checks and tests of the Go SDK (plugins/go) and its example
# (plugins/examples/godemo): gofmt, go vet, go test, and the example's
# package.sh. Exits non-zero on the first failure. Tests run with -race where
# cgo and a C compiler are there.
# Needs: go (1.26) with the modules of go.sum (module cache or Go proxy), python3.
# Usage: plugins/go/test.sh            (from anywhere)
#        BENCH=1 plugins/go/test.sh    (also the rows/s benchmark, ~20 s)
set -euo pipefail
sdk="$(cd "$(dirname "$0")" && pwd)"
example="$(cd "$sdk/../examples/godemo" && pwd)"

# The race detector needs cgo and a C compiler; without them the tests run plain.
race=()
if [[ "$(go env CGO_ENABLED)" == 1 ]] && command -v "$(go env CC)" >/dev/null 2>&1; then
  race=(-race)
fi

for module in "$sdk" "$example"; do
  echo "== $module: gofmt, go vet, go test ${race[*]}" >&2
  cd "$module"
  unformatted="$(gofmt -l .)"
  if [[ -n "$unformatted" ]]; then
    echo "gofmt would change: $unformatted" >&2
    exit 1
  fi
  go vet ./...
  go test "${race[@]}" -count=1 ./...
done

echo "== godemo package.sh" >&2
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$example/package.sh" "$out/godemo.zip" release
python3 - "$out/godemo.zip" <<'PY'
import json, stat, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = sorted(z.namelist())
assert names == ["godemo", "manifest.json"], names
manifest = json.loads(z.read("manifest.json"))
assert manifest["kind"] == "portable" and manifest["language"] == "go", manifest
assert manifest["executable"] == "godemo", manifest
mode = z.getinfo("godemo").external_attr >> 16
assert mode & stat.S_IXUSR, oct(mode)
print(f"{sys.argv[1]}: {names}, executable mode {oct(mode & 0o777)}")
PY

if [[ "${BENCH:-}" == 1 ]]; then
  echo "== benchmark: rows/s of a trivial function over the socket, batches of 1024" >&2
  cd "$sdk"
  go test -run '^$' -bench Invoke -benchtime 3s .
fi
