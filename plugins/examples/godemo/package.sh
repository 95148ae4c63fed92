#!/usr/bin/env bash
# Builds godemo and writes its installable package: a zip with manifest.json
# and the executable `godemo` at its root.
# Usage (from this folder, as scripts/package-plugins.sh calls it):
#   ./package.sh <out.zip> <debug|release>
# Needs: go (the modules in go.sum, from the module cache or the Go proxy) and
# python3 (its zipfile module writes the zip).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <out.zip> <debug|release>" >&2
  exit 2
fi
# The output path as given, relative to where we were called from.
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
profile="$2"
cd "$(dirname "$0")"
case "$profile" in
  debug) flags=() ;;
  release) flags=(-trimpath -ldflags=-s\ -w) ;;
  *) echo "$0: profile must be debug or release, not '$profile'" >&2; exit 2 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A static binary (no cgo), so that it runs on any Linux of the same
# architecture as the build, whatever its C library.
CGO_ENABLED=0 go build "${flags[@]}" -o "$work/godemo" .
cp manifest.json "$work/manifest.json"

# Python's zipfile (not a `zip` binary, which a machine may lack) keeps each
# file's mode, the executable bit included.
python3 - "$work" "$out.tmp" <<'PY'
import os, sys, zipfile
work, out = sys.argv[1:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in ("manifest.json", "godemo"):
        z.write(os.path.join(work, name), name)
PY
mv "$out.tmp" "$out"
echo "$out: godemo 1.0.0 ($profile)" >&2
