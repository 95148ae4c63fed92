#!/usr/bin/env bash
# Builds noderaw and writes its package: package.sh <out.zip> [debug|release]
# (scripts/package-plugins.sh calls it from this folder). The zip holds
#   manifest.json
#   plugin.mjs    src/ and everything it imports (the generated code of
#                 clients/typescript/src/gen and src/gen, Connect, protobuf-es)
#                 bundled by esbuild into one ES module: the server runs
#                 `node plugin.mjs` and needs nothing but node >= 20, no npm, no
#                 node_modules (which would be ~5 MB; the bundle is ~320 KiB,
#                 ~70 KiB deflated).
# The profile is accepted for the common interface; both build the same file
# (not minified, so that stack traces in the server log stay readable).
# Needs node and npm (npm ci, from package-lock.json, when node_modules is stale).
set -euo pipefail
out="${1:?usage: package.sh <out.zip> [debug|release]}"
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! cmp -s package-lock.json node_modules/.package-lock-ci.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.package-lock-ci.json
fi
node build.mjs

python3 - manifest.json dist/plugin.mjs "$out" <<'PY'
import json, os, sys, zipfile
manifest_path, bundle, out = sys.argv[1:]
manifest = json.load(open(manifest_path))
with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
    z.write(manifest_path, "manifest.json")
    info = zipfile.ZipInfo.from_file(bundle, manifest["executable"])
    info.external_attr = 0o100755 << 16  # a regular file, rwxr-xr-x
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(bundle, "rb") as f:
        z.writestr(info, f.read())
os.replace(out + ".tmp", out)
print(f"{out}: {manifest['name']} {manifest['version']} ({os.path.getsize(out) // 1024} KiB)", file=sys.stderr)
PY
