#!/usr/bin/env bash
# Writes the pydemo plugin package: a zip with manifest.json, main.py and the
# Python SDK (plugins/python/src/oort_plugin, its generated messages included)
# vendored beside it, so the package needs nothing on the server's interpreter
# but grpcio, grpcio-health-checking and protobuf.
# Usage (from this folder, as scripts/package-plugins.sh calls it):
#   ./package.sh <out.zip> <debug|release>     (the profile changes nothing here)
set -euo pipefail
out="${1:?usage: package.sh <out.zip> <debug|release>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$here/../../python/src/oort_plugin"
python3 - "$here" "$sdk" "$out" <<'PY'
import json, os, sys, zipfile

here, sdk, out = sys.argv[1:]
manifest = json.load(open(os.path.join(here, "manifest.json")))
files = [(os.path.join(here, "manifest.json"), "manifest.json")]
files += [(os.path.join(here, n), n) for n in sorted(os.listdir(here)) if n.endswith(".py")]
for root, dirs, names in os.walk(sdk):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for n in sorted(names):
        if n.endswith(".py") or n == "py.typed":
            path = os.path.join(root, n)
            files.append((path, os.path.join("oort_plugin", os.path.relpath(path, sdk))))
if manifest["executable"] not in {name for _, name in files}:
    sys.exit(f"package.sh: the manifest's executable {manifest['executable']} is not in the package")
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for path, name in files:
        # Fixed times and modes: the same sources make the same zip.
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o755 if name == manifest["executable"] else 0o644) << 16
        with open(path, "rb") as f:
            z.writestr(info, f.read())
os.replace(tmp, out)
print(f"{out}: {manifest['name']} {manifest['version']} ({len(files)} files)")
PY
