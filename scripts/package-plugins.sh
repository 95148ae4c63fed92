#!/usr/bin/env bash
# Builds every example plugin of plugins/examples/ and writes each as an
# installable archive, the library and its manifest.json at the root of a zip:
#   target/plugins/<name>.zip        (under $CARGO_TARGET_DIR if set)
# Usage: scripts/package-plugins.sh [--release]
# Then: oort plugin install <name> --file target/plugins/<name>.zip
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  flags=(--release)
fi
target="${CARGO_TARGET_DIR:-target}"

packages=()
for dir in plugins/examples/*/; do
  packages+=(-p "$(basename "$dir")")
done
cargo build --locked "${flags[@]}" "${packages[@]}"

mkdir -p "$target/plugins"
for dir in plugins/examples/*/; do
  name="$(basename "$dir")"
  python3 - "$dir/manifest.json" "$target/$profile" "$target/plugins/$name.zip" <<'PY'
import json, os, sys, zipfile
manifest_path, build_dir, out = sys.argv[1:]
manifest = json.load(open(manifest_path))
library = manifest["library"]
with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
    z.write(manifest_path, "manifest.json")
    z.write(os.path.join(build_dir, library), library)
os.replace(out + ".tmp", out)
print(f"{out}: {manifest['name']} {manifest['version']}")
PY
done
