#!/usr/bin/env bash
# Builds eKuiper v2.4.0's server (kuiperd) from its public source, fetched as a
# Go module through the module proxy, with the flags of its Makefile's default
# target (`make build` = build_without_edgex):
#   CGO_ENABLED=1 go build -trimpath \
#     -ldflags="-s -w -X .../cmd.Version=$(VERSION) -X .../cmd.LoadFileType=relative" \
#     -o kuiperd cmd/kuiperd/main.go
# (no build tags: the default build has the file, mqtt, memory, http, ... connectors
# built in; kafka is only in the `full` tag or a native plugin, NATS only through
# the EdgeX source, in builds tagged `edgex include_nats_messaging`).
# It then builds the kafka source and sink as Go native plugins the way
# eKuiper's docs and build-plugins.sh do:
#   go build -trimpath --buildmode=plugin -o kafka@v<VERSION>.so extensions/<sources|sinks>/kafka/*.go
# and lays out an installation directory like `make build_prepare`:
#   $OUT/bin/kuiperd, $OUT/etc (the repo's etc/ plus kafka.yaml/json),
#   $OUT/plugins/{sources,sinks}/Kafka@v2.4.0.so, $OUT/data, $OUT/log.
# Run kuiperd with KuiperBaseKey=<a dir holding etc/ data/ plugins/ log/>
# (cmd.LoadFileType=relative), the REST port from KUIPER__BASIC__RESTPORT.
#
# Idempotent: each step is skipped when its output is there (FORCE=1 redoes it).
# Heavy steps run under `nice -n 19`.
#   OORT_TOOLS_DIR  where tools go (default ~/.cache/oort-tools)
#   EKUIPER_PLUGINS=0  skip the kafka plugins
set -euo pipefail

VERSION=2.4.0
MODULE=github.com/lf-edge/ekuiper/v2
TOOLS=${OORT_TOOLS_DIR:-$HOME/.cache/oort-tools}
OUT=$TOOLS/ekuiper-$VERSION
SRC=$OUT/src
FORCE=${FORCE:-0}
NICE="nice -n 19"

export GOWORK=off          # the module's go.work names ./tools/kubernetes, not in the module zip
export GOTOOLCHAIN=local   # build with the installed Go (go.mod asks for >= 1.25.4)
export GO111MODULE=on

command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
echo "go: $(go version)"

# 1. the source, from the Go module proxy, into a writable copy
if [[ $FORCE == 1 || ! -f $SRC/go.mod ]]; then
  dir=$(go mod download -json "$MODULE@v$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$SRC"; mkdir -p "$OUT"
  cp -r "$dir" "$SRC"
  chmod -R u+w "$SRC"
  echo "source: $dir -> $SRC"
fi
cd "$SRC"
# (no `go mod download` of the whole graph: one of its sql drivers, sqlflow.org/gohive,
# is not on the proxy; go build fetches only what kuiperd and the plugins import)

LDFLAGS="-s -w -X $MODULE/cmd.Version=$VERSION -X $MODULE/cmd.LoadFileType=relative"

# 2. kuiperd (and the kuiper CLI, CGO off, as the Makefile does)
mkdir -p "$OUT/bin"
if [[ $FORCE == 1 || ! -x $OUT/bin/kuiperd ]]; then
  echo "building kuiperd ..."
  CGO_ENABLED=1 $NICE go build -trimpath -ldflags="$LDFLAGS" -o "$OUT/bin/kuiperd.tmp" cmd/kuiperd/main.go
  mv "$OUT/bin/kuiperd.tmp" "$OUT/bin/kuiperd"
fi
if [[ $FORCE == 1 || ! -x $OUT/bin/kuiper ]]; then
  echo "building kuiper (CLI) ..."
  CGO_ENABLED=0 $NICE go build -trimpath -ldflags="$LDFLAGS" -o "$OUT/bin/kuiper.tmp" cmd/kuiper/main.go
  mv "$OUT/bin/kuiper.tmp" "$OUT/bin/kuiper"
fi

# 3. the installation layout (make build_prepare)
mkdir -p "$OUT"/etc/{sources,sinks,services/schemas} "$OUT"/data "$OUT"/log \
         "$OUT"/plugins/{sources,sinks,functions,portable,wasm}
cp -r etc/* "$OUT/etc/"

# 4. kafka source and sink as native plugins (docs: guide/sources/plugin/kafka.md)
if [[ ${EKUIPER_PLUGINS:-1} == 1 ]]; then
  for t in sources sinks; do
    so=$OUT/plugins/$t/Kafka@v$VERSION.so
    if [[ $FORCE == 1 || ! -f $so ]]; then
      echo "building kafka $t plugin ..."
      CGO_ENABLED=1 $NICE go build -trimpath --buildmode=plugin -o "$so.tmp" extensions/$t/kafka/kafka.go
      mv "$so.tmp" "$so"
    fi
    for f in extensions/$t/kafka/kafka.json extensions/$t/kafka/kafka.yaml; do
      [[ -f $f ]] && cp "$f" "$OUT/etc/$t/"
    done
  done
fi

echo "eKuiper $VERSION installed in $OUT:"
ls -l "$OUT/bin" "$OUT"/plugins/sources "$OUT"/plugins/sinks
