#!/usr/bin/env bash
# Builds every example plugin of plugins/examples/ and writes each as an
# installable archive, its manifest.json at the root of a zip:
#   target/plugins/<name>.zip        (under $CARGO_TARGET_DIR if set)
# Usage: scripts/package-plugins.sh [--release]
# Then: oort plugin install <name> --file target/plugins/<name>.zip
#
# An example with a Cargo.toml and a "library" in its manifest is a native Rust
# plugin: the library goes into the zip. Any other example has its own
# package.sh, called as `package.sh <out.zip> <debug|release>` from its folder,
# which builds it (Go, Python, ...) and writes the zip.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  flags=(--release)
fi
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/plugins"
out_dir="$(cd "$target/plugins" && pwd)"

packages=()
for dir in plugins/examples/*/; do
  if [[ -f "$dir/Cargo.toml" ]]; then
    packages+=(-p "$(basename "$dir")")
  fi
done
if ((${#packages[@]})); then
  cargo build --locked "${flags[@]}" "${packages[@]}"
fi

for dir in plugins/examples/*/; do
  name="$(basename "$dir")"
  if [[ -x "$dir/package.sh" ]]; then
    (cd "$dir" && ./package.sh "$out_dir/$name.zip" "$profile")
    echo "$out_dir/$name.zip"
    continue
  fi
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
