#!/usr/bin/env bash
# Runs the quick start of README.md (and the tour of docs/quickstart.md)
# against a fresh oortd, and fails when a command fails or prints something
# other than what the docs show. scripts/test.sh runs it after `cargo test`;
# it needs the debug binaries (`cargo build --workspace --bins`).
#
# Usage: scripts/test-readme.sh [FILE.md ...]   (default: README.md docs/quickstart.md)
#
# The convention, in the Markdown:
# - Only a ```sh block right below the line
#       <!-- checked by scripts/test-readme.sh -->
#   runs. The blocks run in order, the files in order, in one bash (variables
#   and files carry over) whose working directory is that of a fresh
#   `oortd --listen 127.0.0.1:0 --http-push-listen 127.0.0.1:0`, so its data is
#   ./data as when the README's command runs. `oort` is the debug build, first
#   on PATH; OORT_SERVER names the server; HOME is an empty temporary folder.
#   127.0.0.1:9081 and 127.0.0.1:10081 (the default addresses of the API and
#   of HTTP push), in commands and outputs alike, become the server's.
# - A command is a line (with `\` continuations, or a here-document up to its
#   end word). A comment after the command on its line is only a comment.
# - The lines starting with `#` right below a command are its expected output
#   (stdout and stderr together), without the `# `; a blank line ends them.
#   A command with no such lines is not checked, but it must still exit 0.
#   So a checked block has no comment lines of its own: a `#` line is output.
#   Trailing spaces do not count. A line ending in `...` matches any line that
#   starts with what comes before the `...`; a line `...` alone matches any
#   number of lines.
# - A command must exit 0, unless its expected output starts with `error:`
#   (the CLI's and grpcurl's errors): then it must fail.
# - A command ending in ` &` runs in the background until the end of its
#   block; the next command starts 1.5 s later (a `rule tail` sees only results
#   published after it subscribed). What background commands print is checked
#   as the end of the output of the next command that has an expected output
#   (they are waited for up to 5 s); what they print during a command with no
#   expected output is not checked.
#
# Every process it starts (oortd, the shell, its jobs) is stopped when it
# ends, fails or is interrupted. On a failure it prints the command, the
# expected and the actual output, keeps the server's log and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir="${CARGO_TARGET_DIR:-target}/debug"
for bin in oortd oort; do
  if [[ ! -x "$bin_dir/$bin" ]]; then
    echo "test-readme: $bin_dir/$bin is missing: run \`cargo build --workspace --bins\` first" >&2
    exit 1
  fi
done
# The tour calls grpcurl (scripts/install-tools.sh puts it in Go's bin) and curl.
for tool in grpcurl curl base64; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-readme: $tool is not on PATH (grpcurl: scripts/install-tools.sh, then PATH=\"\$(go env GOPATH)/bin:\$PATH\")" >&2
    exit 1
  fi
done
if (($# == 0)); then
  set -- README.md docs/quickstart.md
fi

exec python3 scripts/test-readme.py --oortd "$bin_dir/oortd" --bin-dir "$bin_dir" "$@"
