#!/usr/bin/env bash
# kafka.sh — a real Apache Kafka 4 (KRaft, one process) for development and CI, from nothing.
#
#   scripts/kafka.sh install   resolve the Kafka jars from Maven Central (idempotent)
#   scripts/kafka.sh start     start one combined broker + controller, wait until the
#                              broker answers real requests
#   scripts/kafka.sh stop      stop it
#   scripts/kafka.sh status    report pid, ports, memory and whether the broker answers
#   scripts/kafka.sh logs      print the tail of the log
#   scripts/kafka.sh clean     stop and delete all Kafka data (keeps the jars)
#   scripts/kafka.sh run       start, then stay in the foreground with the log on
#                              stdout until SIGTERM/SIGINT (stops Kafka cleanly) or
#                              until the JVM dies (exit 1): for containers, supervisord
#
# One JVM runs kafka.Kafka with process.roles=broker,controller: the KRaft
# controller (a single-voter metadata quorum) and the broker in one process, no
# ZooKeeper. Its log directory is formatted with kafka.tools.StorageTool on the
# first start.
#
# Everything lives under ${RECOSCRIPTS_CACHE:-<repo>/.cache}/kafka:
#   classpath.txt   runtime classpath resolved by Maven (jars stay in ~/.m2)
#   classes/        the compiled readiness probe (scripts/kafka/KafkaPing.java)
#   conf/           generated server.properties + log4j2.properties
#   cds/            class-data-sharing archive of the JVM (faster start-up)
#   data/           log.dirs (topics and the __cluster_metadata log)
#   logs/           kafka.log (previous run kept as kafka.log.1), format.log
#   run/            pid file
#
# Environment (all optional):
#   RECOSCRIPTS_CACHE          cache root (default <repo>/.cache)
#   KAFKA_VERSION              Kafka release to resolve (default 4.1.1)
#   KAFKA_BIND                 address both listeners bind to (default 127.0.0.1)
#   KAFKA_ADVERTISED_HOST      host the broker tells clients to reach it at
#                              (default KAFKA_BIND; set it when KAFKA_BIND is 0.0.0.0)
#   KAFKA_PORT                 client (PLAINTEXT) listener port (default 9092)
#   KAFKA_CONTROLLER_PORT      KRaft controller listener port (default 9093)
#   KAFKA_HEAP                 JVM max heap (default 384m)
#   KAFKA_START_TIMEOUT        seconds to wait for the broker (default 120)
#   KAFKA_CDS                  0 disables the class-data-sharing archive (default 1)
#   JAVA                       java binary (default $JAVA_HOME/bin/java or java)
#   MVN                        maven binary (default mvn)
#   KAFKA_MVN_ARGS             extra Maven flags, e.g. -Dmaven.repo.local=/path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/scripts/kafka"
CACHE="${RECOSCRIPTS_CACHE:-$ROOT/.cache}"
case "$CACHE" in /*) ;; *) CACHE="$PWD/$CACHE" ;; esac
KF="$CACHE/kafka"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
BIND="${KAFKA_BIND:-127.0.0.1}"
ADVERTISED="${KAFKA_ADVERTISED_HOST:-$BIND}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP:-384m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
MVN="${MVN:-mvn}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi
JDK_BIN="$(dirname "$(readlink -f "$(command -v "$JAVA" || echo /nonexistent/java)")")"
JAVAC="$JDK_BIN/javac"

CP_FILE="$KF/classpath.txt"
STAMP="$KF/classpath.stamp"
CLASSES="$KF/classes"
CONF="$KF/conf"
DATA="$KF/data"
LOGS="$KF/logs"
RUN="$KF/run"
# A wildcard bind is reached on loopback from this machine.
PROBE_HOST="$BIND"
[[ "$PROBE_HOST" == 0.0.0.0 ]] && PROBE_HOST=127.0.0.1

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=jvm.sh
source "$(dirname "${BASH_SOURCE[0]}")/jvm.sh"

# The flags Kafka's own bin/kafka-run-class.sh passes (KAFKA_JVM_PERFORMANCE_OPTS).
JDK_FLAGS=(
  -XX:+UseG1GC
  -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent
  -Djava.awt.headless=true
)

# ---------------------------------------------------------------------------
# install

install() {
  command -v "$JAVA" >/dev/null || die "java not found (need JDK 17)"
  [[ -x "$JAVAC" ]] || die "javac not found next to $JAVA (need a JDK, not a JRE)"
  local jdk
  jdk="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')"
  [[ "$jdk" =~ ^[0-9]+$ ]] && ((jdk >= 17)) ||
    die "$JAVA is JDK ${jdk:-?}; the Kafka 4 broker needs JDK 17 or later"
  mkdir -p "$KF" "$CLASSES"

  local want="$KAFKA_VERSION $(cksum <"$SRC/pom.xml")"
  if [[ ! -s "$CP_FILE" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]] || ! cp_jars_present; then
    command -v "$MVN" >/dev/null || die "maven ($MVN) not found"
    log "resolving Kafka $KAFKA_VERSION jars with Maven (first run downloads ≈45 MB into ~/.m2)"
    # shellcheck disable=SC2086 # KAFKA_MVN_ARGS is a list of flags
    mvn_batch -q -f "$SRC/pom.xml" -Dkafka.version="$KAFKA_VERSION" ${KAFKA_MVN_ARGS:-} \
      dependency:build-classpath -Dmdep.outputFile="$CP_FILE.tmp" >&2 ||
      die "maven could not resolve Kafka $KAFKA_VERSION"
    mv "$CP_FILE.tmp" "$CP_FILE"
    printf '%s\n' "$want" >"$STAMP"
    rm -f "$CLASSES/KafkaPing.class" # compiled against the previous jars
  fi

  if [[ ! -f "$CLASSES/KafkaPing.class" || "$SRC/KafkaPing.java" -nt "$CLASSES/KafkaPing.class" ]]; then
    "$JAVAC" -nowarn -d "$CLASSES" -cp "$(cat "$CP_FILE")" "$SRC/KafkaPing.java" ||
      die "cannot compile the readiness probe"
  fi
  log "Kafka $KAFKA_VERSION installed ($(tr ':' '\n' <"$CP_FILE" | wc -l) jars, classpath in $CP_FILE)"
}

# ---------------------------------------------------------------------------
# configuration

write_conf() {
  mkdir -p "$CONF" "$DATA" "$LOGS" "$RUN"
  cp "$SRC/log4j2.properties" "$CONF/log4j2.properties"
  cat >"$CONF/server.properties" <<EOF
# Generated by scripts/kafka.sh; edits are overwritten on every start.
# One combined broker + controller: a single-voter KRaft quorum, no ZooKeeper.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$PROBE_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$BIND:$PORT,CONTROLLER://$BIND:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$ADVERTISED:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA

# One broker: every internal topic has one replica, and acks=all means that one.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
num.partitions=1

# Test speed: the first consumer group creates __consumer_offsets (50 partitions
# by default, a few seconds), and a new group waits 3s for more members before
# its first rebalance. Neither helps a single-broker test store.
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=0

# Small segments and a short retention: a development store, not an archive.
log.segment.bytes=67108864
log.retention.hours=24
EOF
}

# ---------------------------------------------------------------------------
# processes

pid_of() { [[ -f "$RUN/kafka.pid" ]] && cat "$RUN/kafka.pid" || true; }

# alive is true when the pid file names a live JVM that this script started (its
# command line carries -Dproc_reco_kafka): a stale pid file whose pid was reused,
# or a zombie, does not count.
alive() {
  local pid state
  pid="$(pid_of)"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
  [[ -n "$state" && "$state" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-Dproc_reco_kafka "
}

port_open() { (exec 3<>"/dev/tcp/$PROBE_HOST/$1") 2>/dev/null; }

# cds_flags prints the class-data-sharing flags of the broker (see
# jvm_cds_flags).
cds_flags() {
  [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
  jvm_cds_flags "$KF/cds" kafka
}

# format_storage writes meta.properties into log.dirs on the first start: KRaft
# refuses to start on an unformatted directory. The cluster id is 16 random bytes
# in URL-safe base64, the form kafka-storage random-uuid prints, and as it does,
# never starting with "-" (the tool would take the id for an option).
format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local id="-"
  while [[ "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  log "formatting $DATA (cluster id $id)"
  "$JAVA" -Xmx128m "-Dlog4j2.configurationFile=$CONF/log4j2.properties" -cp "$(cat "$CP_FILE")" \
    kafka.tools.StorageTool format -t "$id" -c "$CONF/server.properties" >"$LOGS/format.log" 2>&1 ||
    { cat "$LOGS/format.log" >&2; die "cannot format the Kafka log directory $DATA"; }
}

# ping_kafka TIMEOUT runs the readiness probe. A short-lived client: the C1
# compiler alone starts it faster.
ping_kafka() {
  "$JAVA" -Xmx64m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "-Dlog4j2.configurationFile=$CONF/log4j2.properties" \
    -Dlog4j2.level=ERROR -cp "$CLASSES:$(cat "$CP_FILE")" \
    KafkaPing "$PROBE_HOST:$PORT" "$1"
}

rss_mb() { rss_of "$(pid_of)"; }

fail_start() {
  log "$1"
  if [[ -f "$LOGS/kafka.log" ]]; then
    printf '\n----- tail of %s -----\n' "$LOGS/kafka.log" >&2
    tail -n 60 "$LOGS/kafka.log" >&2
  fi
  stop >/dev/null 2>&1 || true
  exit 1
}

start() {
  install
  mkdir -p "$CONF" "$LOGS" "$RUN"
  cp "$SRC/log4j2.properties" "$CONF/log4j2.properties"
  if alive && ping_kafka 5 >/dev/null 2>&1; then
    log "already running (pid $(pid_of)) on $PROBE_HOST:$PORT"
    echo "$PROBE_HOST:$PORT"
    return 0
  fi
  stop >/dev/null 2>&1 || true

  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $PROBE_HOST:$p is already in use by another process; set KAFKA_PORT / KAFKA_CONTROLLER_PORT to free ports"
    fi
  done

  write_conf
  local t0=$SECONDS
  format_storage
  log "starting Kafka $KAFKA_VERSION (KRaft broker+controller, client :$PORT, controller :$CONTROLLER_PORT); logs in $LOGS"
  local logf="$LOGS/kafka.log"
  [[ -f "$logf" ]] && mv -f "$logf" "$logf.1"
  local cds
  mapfile -t cds < <(cds_flags)
  # Its own session, so a Ctrl-C in the calling terminal does not reach it.
  setsid "$JAVA" -Dproc_reco_kafka -Xms64m "-Xmx$HEAP" -XX:OnOutOfMemoryError="kill -9 %p" \
    "${cds[@]}" "${JDK_FLAGS[@]}" "-Dkafka.logs.dir=$LOGS" "-Dlog4j2.configurationFile=$CONF/log4j2.properties" \
    -cp "$(cat "$CP_FILE")" kafka.Kafka "$CONF/server.properties" </dev/null >"$logf" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/kafka.pid"

  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$PORT"; do
    gone "$pid" && fail_start "Kafka exited during start-up"
    ((SECONDS < deadline)) || fail_start "Kafka did not listen on :$PORT within ${START_TIMEOUT}s"
    sleep 0.2
  done
  local left=$((deadline - SECONDS))
  ((left > 0)) || left=1
  ping_kafka "$left" >&2 || fail_start "the Kafka broker did not answer within ${START_TIMEOUT}s"
  local took=$((SECONDS - t0))
  printf '%s\n' "$took" >"$RUN/startup-seconds"
  log "Kafka up in ${took}s at $PROBE_HOST:$PORT; RSS $(rss_mb) MB"
  echo "$PROBE_HOST:$PORT"
}

# stop sends SIGTERM (Kafka's shutdown hook closes the logs cleanly, so the next
# start skips recovery) and, after 30s, SIGKILL.
stop() {
  local pid
  pid="$(pid_of)"
  if ! alive; then
    rm -f "$RUN/kafka.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_exit "$pid" 30; then
    log "kafka (pid $pid) did not stop within 30s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 10 || true
  fi
  rm -f "$RUN/kafka.pid"
  log "stopped kafka (pid $pid)"
}

status() {
  local rc=0
  if alive; then
    printf 'kafka   running  pid %-8s rss %s MB\n' "$(pid_of)" "$(rss_mb)"
    if [[ -s "$CP_FILE" && -f "$CLASSES/KafkaPing.class" ]] && ping_kafka 5 >/dev/null 2>&1; then
      printf 'broker  %s:%s answers\n' "$PROBE_HOST" "$PORT"
    else
      printf 'broker  %s:%s does not answer\n' "$PROBE_HOST" "$PORT"
      rc=1
    fi
  else
    printf 'kafka   stopped\n'
    rc=1
  fi
  [[ -f "$RUN/startup-seconds" ]] && printf 'last start-up took %ss\n' "$(cat "$RUN/startup-seconds")"
  return $rc
}

logs() {
  [[ -f "$LOGS/kafka.log" ]] && { printf -- '----- %s -----\n' "$LOGS/kafka.log"; tail -n "${1:-40}" "$LOGS/kafka.log"; }
  return 0
}

clean() {
  stop
  rm -rf "$DATA" "$LOGS" "$RUN"
  log "deleted Kafka data under $KF (jars kept)"
}

# run keeps Kafka in the foreground, the way a container runtime or supervisord
# wants a program: it starts the JVM (start), streams its log to stdout, stops it
# cleanly on SIGTERM/SIGINT, and exits 1 if the JVM dies on its own, so the
# supervisor restarts it.
run() {
  start >/dev/null
  tail -n 0 -F "$LOGS/kafka.log" 2>/dev/null &
  local tailer=$!
  trap 'log "stopping on signal"; stop; kill "$tailer" 2>/dev/null; exit 0' TERM INT
  log "running in the foreground (pid $(pid_of)); SIGTERM stops Kafka"
  while alive; do
    # A background sleep and wait: the trap runs as soon as the signal arrives.
    sleep 2 &
    wait $! || true
  done
  log "the JVM exited on its own"
  trap - TERM INT
  kill "$tailer" 2>/dev/null || true
  exit 1
}

case "${1:-}" in
  install) install ;;
  run) run ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; logs "$@" ;;
  clean) clean ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
