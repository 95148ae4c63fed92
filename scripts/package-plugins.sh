#!/usr/bin/env bash
# Builds the example plugins of plugins/examples/ and writes each as an
# installable archive, its manifest.json at the root of a zip:
#   target/plugins/<name>.zip        (under $CARGO_TARGET_DIR if set)
# Usage: scripts/package-plugins.sh [--release] [--check] [NAME...]
#   --release  a release build (the default is debug)
#   --check    print what would be built and what is skipped, build nothing
#   NAME...    only these examples (the default is every one)
# Then: oort plugin install <name> --file target/plugins/<name>.zip
#
# An example with a Cargo.toml and a "library" in its manifest is a native Rust
# plugin: the library goes into the zip. Any other example has its own
# package.sh, called as `package.sh <out.zip> <debug|release>` from its folder,
# which builds it (Go, Python, ...) and writes the zip.
#
# Each example needs its toolchain, seen from its files: cargo for a Cargo.toml,
# go for a go.mod, node and npm for a package.json, pip for a manifest of
# language python, and python3 for all (it writes the zips). The script checks them first: an example whose toolchain is
# missing is skipped, with one line naming what it needs; every other one is
# built. It exits non-zero when an example it could build fails, or when an
# example named on the command line cannot be built here.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
flags=()
check=false
names=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; flags=(--release) ;;
    --check) check=true ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "package-plugins.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) names+=("$arg") ;;
  esac
done

# Where to get each tool, for the line that says it is missing.
declare -A where=(
  [cargo]="https://rustup.rs"
  [go]="https://go.dev/dl"
  [node]="https://nodejs.org"
  [npm]="https://nodejs.org"
  [python3]="https://www.python.org/downloads"
  [pip]="python3 -m ensurepip, or https://pip.pypa.io/en/stable/installation"
)

# The tools an example folder needs, from its files.
needs() {
  local dir="$1" tools=()
  [[ -f "$dir/Cargo.toml" ]] && tools+=(cargo)
  [[ -f "$dir/go.mod" ]] && tools+=(go)
  [[ -f "$dir/package.json" ]] && tools+=(node npm)
  tools+=(python3)
  # A Python plugin's package.sh fetches its dependencies' wheels with pip.
  grep -Eq '"language"[[:space:]]*:[[:space:]]*"python"' "$dir/manifest.json" && tools+=(pip)
  echo "${tools[@]}"
}

# Whether a tool is there: a command on PATH, or pip as a module of the Python
# that package.sh scripts run ($PYTHON, default python3).
have() {
  if [[ "$1" == pip ]]; then
    "${PYTHON:-python3}" -m pip --version >/dev/null 2>&1
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

if ((${#names[@]})); then
  dirs=()
  for name in "${names[@]}"; do
    if [[ ! -f "plugins/examples/$name/manifest.json" ]]; then
      echo "package-plugins.sh: no example plugin '$name' (plugins/examples/$name/manifest.json)" >&2
      exit 2
    fi
    dirs+=("plugins/examples/$name/")
  done
else
  dirs=(plugins/examples/*/)
fi

# The plan: which examples are built, which are skipped and why.
build=()
skipped=()
for dir in "${dirs[@]}"; do
  name="$(basename "$dir")"
  missing=()
  for tool in $(needs "$dir"); do
    have "$tool" || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    # "needs node, npm (https://nodejs.org), python3 (...)": a link once per group.
    line="$name: skipped, needs"
    for i in "${!missing[@]}"; do
      tool="${missing[$i]}"
      next="${missing[$((i + 1))]:-}"
      line+=" $tool"
      if [[ -z "$next" || "${where[$next]}" != "${where[$tool]}" ]]; then
        line+=" (${where[$tool]})"
        [[ -n "$next" ]] && line+=","
      else
        line+=","
      fi
    done
    echo "$line" >&2
    skipped+=("$name")
  else
    $check && echo "$name: would build ($profile), with $(needs "$dir" | sed 's/ /, /g')"
    build+=("$dir")
  fi
done
if ((${#names[@]})) && ((${#skipped[@]})); then
  echo "package-plugins.sh: cannot build ${skipped[*]} here (asked for by name); install what it needs" >&2
  exit 1
fi
if $check; then
  exit 0
fi

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/plugins"
out_dir="$(cd "$target/plugins" && pwd)"

failed=()
packages=()
for dir in "${build[@]}"; do
  if [[ -f "$dir/Cargo.toml" ]]; then
    packages+=(-p "$(basename "$dir")")
  fi
done
rust_failed=false
if ((${#packages[@]})); then
  if ! cargo build --locked "${flags[@]}" "${packages[@]}"; then
    # No zip from what an earlier build left in the target directory.
    rust_failed=true
  fi
fi

for dir in "${build[@]}"; do
  name="$(basename "$dir")"
  if $rust_failed && [[ -f "$dir/Cargo.toml" ]]; then
    failed+=("$name")
    continue
  fi
  if [[ -x "$dir/package.sh" ]]; then
    if (cd "$dir" && ./package.sh "$out_dir/$name.zip" "$profile"); then
      echo "$out_dir/$name.zip"
    else
      failed+=("$name")
    fi
    continue
  fi
  python3 - "$dir/manifest.json" "$target/$profile" "$target/plugins/$name.zip" <<'PY' || failed+=("$name")
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

for name in "${skipped[@]}"; do
  if [[ -f "$out_dir/$name.zip" ]]; then
    echo "$name: skipped; $out_dir/$name.zip is from an earlier run" >&2
  fi
done
if ((${#failed[@]})); then
  echo "package-plugins.sh: failed to build ${failed[*]}" >&2
  exit 1
fi
