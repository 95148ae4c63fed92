#!/usr/bin/env bash
# Installs the pinned real brokers the integration tests start, if missing:
# Debian's redis-server and postgresql, nats-server (with JetStream), built from source with `go install` into
# $(go env GOPATH)/bin, and Apache Kafka (KRaft, no ZooKeeper) as its jars from
# Maven Central, resolved by Maven into $OORT_TOOLS_DIR/kafka-<version>/libs
# (no prebuilt tarball). scripts/run-kafka.sh starts a broker from those jars.
set -euo pipefail

NATS_VERSION=v2.15.3
KAFKA_VERSION=4.4.0   # scripts/run-kafka.sh reads this line
SCALA_VERSION=2.13
LOG4J_VERSION=2.25.5  # the log4j-core that kafka-server depends on
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
TOOLS_DIR="${OORT_TOOLS_DIR:-$HOME/.cache/oort-tools}"
KAFKA_HOME="$TOOLS_DIR/kafka-$KAFKA_VERSION"
GOBIN="$(go env GOPATH)/bin"

# nats-server: `go version -m` reads the module version baked into the binary.
if ! { [ -x "$GOBIN/nats-server" ] &&
  go version -m "$GOBIN/nats-server" | grep -q "mod[[:space:]]*github.com/nats-io/nats-server/v2[[:space:]]*$NATS_VERSION"; }; then
  echo "installing nats-server $NATS_VERSION" >&2
  go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi

# Redis: Debian's package (the redis sink's tests start redis-server).
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

# PostgreSQL: Debian's server package (the sql connector's tests run initdb
# and postgres from /usr/lib/postgresql/<version>/bin in a temporary directory;
# the cluster the package may create is not used).
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# etcd: Debian's etcd-server (the shared catalog's tests start etcd in a
# temporary directory; the service the package may set up is not used).
if ! command -v etcd >/dev/null; then
  echo "installing etcd-server" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

# Kafka needs a JDK 17+ at run time and Maven to resolve its jars.
command -v java >/dev/null || { echo "install-brokers: no java on PATH (Kafka needs JDK 17+)" >&2; exit 1; }
if ! command -v mvn >/dev/null; then
  echo "installing maven" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
fi

# Kafka: the broker (kafka_2.13, which pulls kafka-server, -raft, -metadata,
# -storage, the coordinators, scala-library, jackson...), kafka-tools for the
# console producer/consumer and admin commands (without connect-runtime and its
# Jetty/Jersey, which only Connect's tools need), and the slf4j-to-log4j2
# binding that the release tarball ships but the poms leave out. The libs dir
# is filled in a temporary dir and renamed, so a partial download never counts.
if [ ! -f "$KAFKA_HOME/libs/.complete" ]; then
  echo "installing kafka $KAFKA_VERSION jars into $KAFKA_HOME/libs" >&2
  mkdir -p "$KAFKA_HOME"
  work="$(mktemp -d "$KAFKA_HOME/.install.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>oort.tools</groupId><artifactId>kafka-broker</artifactId><version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>
    </dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  # Maven's output (errors only, with -q) is shown only if it fails.
  mvn -B -q -f "$work/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1 ||
    { cat "$work/mvn.log" >&2; exit 1; }
  touch "$work/libs/.complete"
  rm -rf "$KAFKA_HOME/libs"
  mv "$work/libs" "$KAFKA_HOME/libs"
fi

echo "nats-server $NATS_VERSION: $GOBIN/nats-server" >&2
echo "kafka $KAFKA_VERSION jars: $KAFKA_HOME/libs (start one with scripts/run-kafka.sh PORT DATA_DIR)" >&2
