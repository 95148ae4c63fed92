#!/usr/bin/env bash
# Writes the pydemo plugin package, self-contained: a zip with
#   manifest.json, main.py   the plugin
#   oort_plugin/             the Python SDK (plugins/python/src/oort_plugin,
#                            its generated messages included)
#   requirements.txt         the SDK's dependencies, from plugins/python/pyproject.toml
#   wheels/                  those dependencies built as wheels, for the Python
#                            that runs this script ($PYTHON, default python3)
# The server installs the wheels into an environment of the plugin's own at
# install time, without network, so the plugin runs on a server whose Python
# has nothing but the standard library. The wheels match the Python version and
# platform that built them: package with the same minor version as the
# server's plugin_python (grpcio's wheels are per version).
# Usage (from this folder, as scripts/package-plugins.sh calls it):
#   ./package.sh <out.zip> <debug|release>     (the profile changes nothing here)
# Needs python3 with pip, and the package index (or pip's cache) once, to fetch
# the wheels; they are kept in target/plugin-wheels/ for the next runs.
set -euo pipefail
out="${1:?usage: package.sh <out.zip> <debug|release>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
sdk="$root/plugins/python/src/oort_plugin"
python="${PYTHON:-python3}"

requirements="$("$python" - "$root/plugins/python/pyproject.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
try:
    import tomllib  # Python 3.11+
    dependencies = tomllib.loads(text)["project"]["dependencies"]
except ImportError:  # 3.10: the one list this needs, read plainly
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    dependencies = re.findall(r'"([^"]+)"', block)
print("\n".join(dependencies))
PY
)"
version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
wheels="${CARGO_TARGET_DIR:-$root/target}/plugin-wheels/python$version"
mkdir -p "$wheels"
echo "$requirements" > "$wheels/requirements.txt"
# What the folder holds already is enough most times; the index only when not.
wheel() { "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheels" \
  --find-links "$wheels" --requirement "$wheels/requirements.txt" "$@"; }
wheel --no-index 2>/dev/null || wheel >&2

"$python" - "$here" "$sdk" "$wheels" "$out" <<'PY'
import json, os, sys, zipfile

here, sdk, wheels, out = sys.argv[1:]
manifest = json.load(open(os.path.join(here, "manifest.json")))
files = [(os.path.join(here, "manifest.json"), "manifest.json")]
files += [(os.path.join(here, n), n) for n in sorted(os.listdir(here)) if n.endswith(".py")]
for root, dirs, names in os.walk(sdk):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for n in sorted(names):
        if n.endswith(".py") or n == "py.typed":
            path = os.path.join(root, n)
            files.append((path, os.path.join("oort_plugin", os.path.relpath(path, sdk))))
files.append((os.path.join(wheels, "requirements.txt"), "requirements.txt"))
files += [(os.path.join(wheels, n), "wheels/" + n) for n in sorted(os.listdir(wheels)) if n.endswith(".whl")]
if manifest["executable"] not in {name for _, name in files}:
    sys.exit(f"package.sh: the manifest's executable {manifest['executable']} is not in the package")
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for path, name in files:
        # Fixed times and modes: the same sources make the same zip.
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        # Wheels are zips already: stored, not deflated again.
        info.compress_type = zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED
        info.external_attr = (0o755 if name == manifest["executable"] else 0o644) << 16
        with open(path, "rb") as f:
            z.writestr(info, f.read())
os.replace(tmp, out)
size = os.path.getsize(out) // 1024
print(f"{out}: {manifest['name']} {manifest['version']} ({len(files)} files, {size} KiB)")
PY
