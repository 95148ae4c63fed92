#!/usr/bin/env bash
# Usage: scripts/run-kafka.sh PORT DATA_DIR [CONTROLLER_PORT]
#
# Runs a single-node Kafka (KRaft: broker and controller in one JVM, no
# ZooKeeper) in the foreground, from the jars scripts/install-brokers.sh put in
# $OORT_TOOLS_DIR/kafka-<version>/libs. Clients connect to 127.0.0.1:PORT; the
# controller listens on CONTROLLER_PORT (default: a free port of 127.0.0.1).
# DATA_DIR is formatted on the first run and kept as is on later ones (a
# restart keeps the topics). The last step execs java, so the caller's pid is
# the broker's: killing it stops the broker. PORT opens only when the broker
# is about to serve (within 0.1 s of its "Kafka Server started" line on
# stdout), so polling it for a connection tells when it is ready.
# Env: KAFKA_HOME (the dir holding libs/), JAVA (default java, 17+),
# KAFKA_LOG_LEVEL (default INFO), KAFKA_HEAP_OPTS (default -Xms64m -Xmx512m).
# With KAFKA_TLS_PORT and KAFKA_TLS_KEYSTORE (a PEM file: the unencrypted
# PKCS#8 key, then the certificate chain), a SASL_SSL listener on that port
# takes SCRAM-SHA-512 logins; KAFKA_SCRAM_USER and KAFKA_SCRAM_PASSWORD name
# the one user, created when the storage is formatted.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 PORT DATA_DIR [CONTROLLER_PORT]" >&2
  exit 2
fi
PORT=$1
DATA_DIR=$2
if [ $# -ge 3 ]; then
  CONTROLLER_PORT=$3
else
  CONTROLLER_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi

# The version pinned in install-brokers.sh, so that the two never disagree.
KAFKA_VERSION="$(sed -n 's/^KAFKA_VERSION=\([^ ]*\).*/\1/p' "$(dirname "$0")/install-brokers.sh")"
KAFKA_HOME="${KAFKA_HOME:-${OORT_TOOLS_DIR:-$HOME/.cache/oort-tools}/kafka-$KAFKA_VERSION}"
if [ ! -f "$KAFKA_HOME/libs/.complete" ]; then
  echo "run-kafka: no Kafka jars in $KAFKA_HOME/libs: run scripts/install-brokers.sh" >&2
  exit 1
fi
JAVA="${JAVA:-java}"

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"

# Settings for one node in tests: every internal topic with one replica and one
# partition (created at once), no delay before the first rebalance, topics
# created on first use. The group protocols are left at their default, which
# in 4.x enables KIP-848's `consumer` protocol beside `classic` (and `streams`):
# setting group.coordinator.rebalance.protocols is deprecated since 4.4.
# Consumer group members (KIP-848) with a 6 s session and 1 s heartbeats
# (defaults 45 s and 5 s): the partitions of a consumer that was killed go to
# the next one 6 s later, not 45.
# Broker heartbeats of 1 s with a 4 s session (defaults 2 s and 9 s): a broker
# restarted after a SIGKILL waits for its old session to expire before it
# serves, about 5 s after the kill instead of 10 (after SIGTERM it need not).
cat >"$DATA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT${KAFKA_TLS_PORT:+,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT${KAFKA_TLS_PORT:+,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR/logs
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=3000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
if [ -n "${KAFKA_TLS_PORT:-}" ]; then
  cat >>"$DATA_DIR/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS_KEYSTORE
EOF
fi

# Log4j2 to stdout; KAFKA_LOG_LEVEL=WARN keeps only the start line.
cat >"$DATA_DIR/log4j2.properties" <<EOF
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=${KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref=out
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
EOF

# A small heap, Serial GC, and only the C1 compiler: a quick start with little
# CPU and memory on a shared machine, which is all a test broker needs.
jvm=(
  "$JAVA" ${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m}
  -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$DATA_DIR/log4j2.properties"
  -cp "$KAFKA_HOME/libs/*"
)

# Formats the storage on the first run only (--ignore-formatted: a no-op after);
# its long output goes to DATA_DIR/format.log, shown only if it fails.
if [ ! -f "$DATA_DIR/logs/meta.properties" ]; then
  "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
    --cluster-id="$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
    --config "$DATA_DIR/server.properties" \
    ${KAFKA_SCRAM_USER:+--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]"} \
    >"$DATA_DIR/format.log" 2>&1 ||
    { cat "$DATA_DIR/format.log" >&2; exit 1; }
fi

exec "${jvm[@]}" kafka.Kafka "$DATA_DIR/server.properties"
