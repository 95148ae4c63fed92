#!/usr/bin/env bash
# Installs the pinned tools the tests use, if they are missing: buf (lint and
# breaking-change checks of proto/) and grpcurl (end-to-end tests through
# reflection), both built from source with `go install` (no prebuilt downloads),
# docker-compose (validates docker-compose.yml), built from source too,
# Debian's mosquitto, the real MQTT broker the MQTT connector tests start,
# and OpenSSL's headers for the kafka connector's librdkafka.
set -euo pipefail

BUF_VERSION=v1.75.0
GRPCURL_VERSION=v1.9.4
COMPOSE_VERSION=v2.40.3
GOBIN="$(go env GOPATH)/bin"

install() { # name module version
  # `go version -m` reads the module version baked into the binary.
  if [ -x "$GOBIN/$1" ] && go version -m "$GOBIN/$1" | grep -q "mod[[:space:]]*$2[[:space:]]*$3"; then
    return
  fi
  echo "installing $1 $3" >&2
  go install "$2/cmd/$1@$3"
}

# The kafka connector's librdkafka links the system's OpenSSL (TLS and SASL
# SCRAM to brokers): its headers, found with pkg-config, to build it.
if ! { [ -f /usr/include/openssl/ssl.h ] && command -v pkg-config >/dev/null; }; then
  echo "installing libssl-dev and pkg-config" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi

install buf github.com/bufbuild/buf "$BUF_VERSION"
install grpcurl github.com/fullstorydev/grpcurl "$GRPCURL_VERSION"

# docker-compose, only to validate docker-compose.yml (no Docker engine runs
# here). Its go.mod has replace directives, so `go install` refuses it: build
# it from the module cache instead (once; the binary stays in GOBIN).
if [ "$("$GOBIN/docker-compose" version --short 2>/dev/null)" != "${COMPOSE_VERSION#v}" ]; then
  echo "installing docker-compose $COMPOSE_VERSION" >&2
  go mod download github.com/docker/compose/v2@"$COMPOSE_VERSION"
  (cd "$(go env GOMODCACHE)/github.com/docker/compose/v2@$COMPOSE_VERSION" &&
    go build -ldflags "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" -o "$GOBIN/docker-compose" ./cmd)
fi

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
