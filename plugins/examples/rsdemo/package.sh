#!/usr/bin/env bash
# Packages rsdemo both ways: `package.sh <out.zip> <debug|release>` writes
#   <out>.zip           the native plugin (librsdemo.so, kind native)
#   <out>-portable.zip  the portable plugin (the rsdemo-portable executable)
# from the same source. Called by scripts/package-plugins.sh from this folder.
set -euo pipefail
out="${1:?usage: package.sh <out.zip> <debug|release>}"
profile="${2:-debug}"
flags=()
[[ "$profile" == release ]] && flags=(--release)
root="$(cd ../../.. && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --locked "${flags[@]}" -p rsdemo
cargo build --locked "${flags[@]}" -p rsdemo --features portable --bin rsdemo-portable
python3 - manifest.json "$target/$profile" "$out" <<'PY'
import json, os, sys, zipfile
manifest_path, build_dir, out = sys.argv[1:]
portable = json.load(open(manifest_path))
native = {k: v for k, v in portable.items() if k not in ("language", "executable")}
native.update(kind="native", library="librsdemo.so")
def write(path, manifest, name, member):
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=2))
        info = zipfile.ZipInfo.from_file(os.path.join(build_dir, name), member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(build_dir, name), "rb") as f:
            z.writestr(info, f.read())
    os.replace(path + ".tmp", path)
    print(f"{path}: {manifest['name']} {manifest['version']} ({manifest['kind']})")
write(out, native, "librsdemo.so", "librsdemo.so")
write(out[:-len(".zip")] + "-portable.zip", portable, "rsdemo-portable", portable["executable"])
PY
