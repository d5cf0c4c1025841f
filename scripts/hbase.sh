#!/usr/bin/env bash
# hbase.sh — a real Apache HBase 2.6 for development and CI, from nothing.
#
#   scripts/hbase.sh install   resolve the HBase jars from Maven Central (idempotent)
#   scripts/hbase.sh start     start standalone HBase + the Thrift2 gateway, wait until
#                              the gateway answers real requests
#   scripts/hbase.sh stop      stop both JVMs
#   scripts/hbase.sh status    report pids, ports, memory and whether the gateway answers
#   scripts/hbase.sh logs      print the tail of both logs
#   scripts/hbase.sh clean     stop and delete all HBase data (keeps the jars)
#   scripts/hbase.sh run       start, then stay in the foreground with both logs on
#                              stdout until SIGTERM/SIGINT (stops HBase cleanly) or
#                              until a JVM dies (exit 1): for containers, supervisord
#
# Two JVMs run:
#   master  org.apache.hadoop.hbase.master.HMaster in standalone mode
#           (hbase.cluster.distributed=false): master + one region server + an
#           embedded ZooKeeper in one process; data on the local filesystem.
#   thrift  org.apache.hadoop.hbase.thrift2.ThriftServer, the Thrift2 gateway the Go
#           code talks to: framed transport + binary protocol, thread-pool server.
#
# Everything lives under ${RECOSCRIPTS_CACHE:-<repo>/.cache}/hbase:
#   classpath.txt   runtime classpath resolved by Maven (jars stay in ~/.m2)
#   classes/        the compiled readiness probe (scripts/hbase/ThriftPing.java)
#   conf/           generated hbase-site.xml + log4j2.properties, packed into conf.jar
#                   (first on the classpath)
#   cds/            class-data-sharing archives of both JVMs (faster start-up)
#   data/           hbase.rootdir (tables, WALs)
#   tmp/            hbase.tmp.dir (ZooKeeper data lives in tmp/zookeeper)
#   logs/           master.log, thrift.log (previous run kept as *.log.1)
#   run/            pid files
#
# Environment (all optional):
#   RECOSCRIPTS_CACHE          cache root (default <repo>/.cache)
#   HBASE_VERSION              HBase release to resolve (default 2.6.1)
#   HBASE_BIND                 address every listener binds to (default 127.0.0.1)
#   HBASE_THRIFT_BIND          address the Thrift2 gateway binds to (default HBASE_BIND);
#                              0.0.0.0 in a container, where clients come from outside
#   HBASE_ZK_PORT              embedded ZooKeeper client port (default 2181)
#   HBASE_MASTER_PORT          master RPC port (default 16000)
#   HBASE_MASTER_INFO_PORT     master web UI (default 16010)
#   HBASE_RS_PORT              region server RPC port (default 16020)
#   HBASE_RS_INFO_PORT         region server web UI (default 16030)
#   HBASE_THRIFT_PORT          Thrift2 gateway port (default 9090)
#   HBASE_THRIFT_INFO_PORT     Thrift2 gateway web UI (default 9095)
#   HBASE_HEAP                 master JVM max heap (default 1g)
#   HBASE_THRIFT_HEAP          gateway JVM max heap (default 256m)
#   HBASE_START_TIMEOUT        seconds to wait for the gateway (default 240)
#   HBASE_CDS                  0 disables the class-data-sharing archives (default 1)
#   JAVA                       java binary (default $JAVA_HOME/bin/java or java)
#   MVN                        maven binary (default mvn)
#   HBASE_MVN_ARGS             extra Maven flags, e.g. -Dmaven.repo.local=/path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/scripts/hbase"
CACHE="${RECOSCRIPTS_CACHE:-$ROOT/.cache}"
case "$CACHE" in /*) ;; *) CACHE="$PWD/$CACHE" ;; esac
HB="$CACHE/hbase"

HBASE_VERSION="${HBASE_VERSION:-2.6.1}"
BIND="${HBASE_BIND:-127.0.0.1}"
ZK_PORT="${HBASE_ZK_PORT:-2181}"
MASTER_PORT="${HBASE_MASTER_PORT:-16000}"
MASTER_INFO_PORT="${HBASE_MASTER_INFO_PORT:-16010}"
RS_PORT="${HBASE_RS_PORT:-16020}"
RS_INFO_PORT="${HBASE_RS_INFO_PORT:-16030}"
THRIFT_PORT="${HBASE_THRIFT_PORT:-9090}"
THRIFT_BIND="${HBASE_THRIFT_BIND:-$BIND}"
THRIFT_INFO_PORT="${HBASE_THRIFT_INFO_PORT:-9095}"
HEAP="${HBASE_HEAP:-1g}"
THRIFT_HEAP="${HBASE_THRIFT_HEAP:-256m}"
START_TIMEOUT="${HBASE_START_TIMEOUT:-240}"
MVN="${MVN:-mvn}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi
JDK_BIN="$(dirname "$(readlink -f "$(command -v "$JAVA")")")"
JAVAC="$JDK_BIN/javac"
JAR="$JDK_BIN/jar"

CP_FILE="$HB/classpath.txt"
STAMP="$HB/classpath.stamp"
CLASSES="$HB/classes"
CONF="$HB/conf"
LOGS="$HB/logs"
RUN="$HB/run"

log() { printf 'hbase.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=jvm.sh
source "$(dirname "${BASH_SOURCE[0]}")/jvm.sh"

# JVM flags HBase's own bin/hbase passes on JDK 11+ (hbase-surefire.jdk11.flags in
# HBase's root pom): the shaded netty and the WAL/off-heap code reach into
# java.nio, sun.nio.ch and jdk.internal.misc reflectively.
JDK_FLAGS=(
  -XX:+UseG1GC
  -Djava.util.logging.config.class=org.apache.hadoop.hbase.logging.JulToSlf4jInitializer
  -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
  --add-modules jdk.unsupported
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-exports java.base/sun.net.dns=ALL-UNNAMED
  --add-exports java.base/sun.net.util=ALL-UNNAMED
)

# ---------------------------------------------------------------------------
# install

install() {
  command -v "$JAVA" >/dev/null || die "java not found (need JDK 11 or 17)"
  [[ -x "$JAVAC" ]] || die "javac not found next to $JAVA (need a JDK, not a JRE)"
  local jdk
  jdk="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')"
  [[ "$jdk" =~ ^[0-9]+$ ]] && ((jdk >= 11)) ||
    die "$JAVA is JDK ${jdk:-?}; the flags HBase needs (--add-opens) require JDK 11 or later (17 tested)"
  mkdir -p "$HB" "$CLASSES"

  local want="$HBASE_VERSION $(cksum <"$SRC/pom.xml")"
  if [[ ! -s "$CP_FILE" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]] || ! cp_jars_present; then
    command -v "$MVN" >/dev/null || die "maven ($MVN) not found"
    log "resolving HBase $HBASE_VERSION jars with Maven (first run downloads ≈135 MB into ~/.m2: ≈115 MB of jars, the rest Maven's own plugins)"
    # shellcheck disable=SC2086 # HBASE_MVN_ARGS is a list of flags
    mvn_batch -q -f "$SRC/pom.xml" -Dhbase.version="$HBASE_VERSION" ${HBASE_MVN_ARGS:-} \
      dependency:build-classpath -Dmdep.outputFile="$CP_FILE.tmp" >&2 ||
      die "maven could not resolve HBase $HBASE_VERSION"
    mv "$CP_FILE.tmp" "$CP_FILE"
    printf '%s\n' "$want" >"$STAMP"
  fi

  if [[ ! -f "$CLASSES/ThriftPing.class" || "$SRC/ThriftPing.java" -nt "$CLASSES/ThriftPing.class" ]]; then
    "$JAVAC" -nowarn -d "$CLASSES" -cp "$(cat "$CP_FILE")" "$SRC/ThriftPing.java" ||
      die "cannot compile the readiness probe"
  fi
  log "HBase $HBASE_VERSION installed ($(tr ':' '\n' <"$CP_FILE" | wc -l) jars, classpath in $CP_FILE)"
}

# ---------------------------------------------------------------------------
# configuration

write_conf() {
  mkdir -p "$CONF" "$HB/data" "$HB/tmp" "$LOGS" "$RUN"
  cp "$SRC/log4j2.properties" "$CONF/log4j2.properties.new"
  cat >"$CONF/hbase-site.xml.new" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/hbase.sh; edits are overwritten on every start. -->
<configuration>
  <property><name>hbase.cluster.distributed</name><value>false</value></property>
  <property><name>hbase.rootdir</name><value>file://$HB/data</value></property>
  <property><name>hbase.tmp.dir</name><value>$HB/tmp</value></property>
  <property><name>hbase.zookeeper.property.dataDir</name><value>$HB/tmp/zookeeper</value></property>
  <!-- The local filesystem has no hflush/hsync capability; standalone HBase on it
       refuses to start without this. Acceptable for a development store only. -->
  <property><name>hbase.unsafe.stream.capability.enforce</name><value>false</value></property>

  <!-- Loopback only, and advertise a name that resolves to it everywhere. -->
  <property><name>hbase.zookeeper.quorum</name><value>$BIND</value></property>
  <property><name>hbase.zookeeper.property.clientPort</name><value>$ZK_PORT</value></property>
  <property><name>hbase.master.hostname</name><value>$BIND</value></property>
  <property><name>hbase.unsafe.regionserver.hostname</name><value>$BIND</value></property>
  <property><name>hbase.master.ipc.address</name><value>$BIND</value></property>
  <property><name>hbase.regionserver.ipc.address</name><value>$BIND</value></property>
  <property><name>hbase.master.info.bindAddress</name><value>$BIND</value></property>
  <property><name>hbase.regionserver.info.bindAddress</name><value>$BIND</value></property>
  <property><name>hbase.thrift.info.bindAddress</name><value>$BIND</value></property>
  <property><name>hbase.master.port</name><value>$MASTER_PORT</value></property>
  <property><name>hbase.master.info.port</name><value>$MASTER_INFO_PORT</value></property>
  <property><name>hbase.regionserver.port</name><value>$RS_PORT</value></property>
  <property><name>hbase.regionserver.info.port</name><value>$RS_INFO_PORT</value></property>
  <property><name>hbase.localcluster.assign.random.ports</name><value>false</value></property>

  <!-- Thrift2 gateway: framed transport, binary protocol (the Go client in
       pkg/storage/hbase speaks exactly this). -->
  <property><name>hbase.regionserver.thrift.framed</name><value>true</value></property>
  <property><name>hbase.regionserver.thrift.compact</name><value>false</value></property>

  <!-- One region server: the master need not wait 4.5s for more to report in,
       and the region server retries its first report sooner (default 3s). -->
  <property><name>hbase.regionserver.handler.count</name><value>16</value></property>
  <property><name>hbase.master.wait.on.regionservers.mintostart</name><value>1</value></property>
  <property><name>hbase.master.wait.on.regionservers.maxtostart</name><value>1</value></property>
  <property><name>hbase.master.wait.on.regionservers.interval</name><value>200</value></property>
  <property><name>hbase.regionserver.msginterval</name><value>1000</value></property>
  <!-- Client retry base pause (the gateway is an HBase client): the default 100ms,
       multiplied by the backoff table, makes the first answers after start-up lag. -->
  <property><name>hbase.client.pause</name><value>50</value></property>
  <!-- Archived WALs are deleted after a minute rather than ten: a bulk load
       (make bench) otherwise leaves hundreds of MB in data/oldWALs. -->
  <property><name>hbase.master.logcleaner.ttl</name><value>60000</value></property>
  <property><name>hbase.master.start.timeout.localHBaseCluster</name><value>$((START_TIMEOUT * 1000))</value></property>
</configuration>
EOF
  # The JVMs read the configuration from conf.jar, not from the conf/ directory:
  # class-data sharing (see cds_flags) refuses non-empty directories on the
  # classpath, and it checks each jar's size and mtime, so conf.jar is only
  # rewritten when the configuration really changed.
  local f changed=false
  for f in hbase-site.xml log4j2.properties; do
    if cmp -s "$CONF/$f.new" "$CONF/$f"; then
      rm -f "$CONF/$f.new"
    else
      mv -f "$CONF/$f.new" "$CONF/$f"
      changed=true
    fi
  done
  if $changed || [[ ! -f "$HB/conf.jar" ]]; then
    rm -f "$HB/conf.jar"
    "$JAR" cf "$HB/conf.jar" -C "$CONF" hbase-site.xml -C "$CONF" log4j2.properties
  fi
}

# ---------------------------------------------------------------------------
# processes

pid_of() { [[ -f "$RUN/$1.pid" ]] && cat "$RUN/$1.pid" || true; }

# alive NAME is true when the pid file names a live JVM that this script started
# (its command line carries -Dproc_reco_NAME): a stale pid file whose pid was
# reused, or a zombie, does not count.
alive() {
  local pid state
  pid="$(pid_of "$1")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
  [[ -n "$state" && "$state" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-Dproc_reco_$1 "
}

port_open() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }

classpath() { printf '%s:%s' "$HB/conf.jar" "$(cat "$CP_FILE")"; }

# launch NAME HEAP CLASS ARGS... starts a JVM in its own session (so a Ctrl-C in
# the calling terminal does not reach it) and records its pid.
launch() {
  local name="$1" heap="$2"
  shift 2
  local logf="$LOGS/$name.log"
  [[ -f "$logf" ]] && mv -f "$logf" "$logf.1"
  local cds
  mapfile -t cds < <(cds_flags "$name")
  setsid "$JAVA" "-Dproc_reco_$name" -Xms64m "-Xmx$heap" -XX:OnOutOfMemoryError="kill -9 %p" \
    "${cds[@]}" "${JDK_FLAGS[@]}" \
    "-Dhbase.log.dir=$LOGS" "-Dhbase.home.dir=$HB" "-Dlog4j2.configurationFile=$CONF/log4j2.properties" \
    -cp "$(classpath)" "$@" </dev/null >"$logf" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/$name.pid"
  # Until the forked shell has exec'd the JVM, the pid's command line is this
  # script's, and alive would call the JVM dead.
  local deadline=$((SECONDS + 10))
  until alive "$name"; do
    gone "$pid" && return 0 # exited at once; the caller reports it with the log
    ((SECONDS < deadline)) || break
    sleep 0.05
  done
}

# cds_flags NAME prints the class-data-sharing flags for the JVM NAME (see
# jvm_cds_flags): mapping the archive instead of parsing ~10k classes from 150
# jars again. The JVM only accepts an archive built with the same JDK and jars,
# and the configuration jar is part of the key too.
cds_flags() {
  [[ "${HBASE_CDS:-1}" == 1 ]] || return 0
  jvm_cds_flags "$HB/cds" "$1" "$HB/conf.jar"
}

ping_thrift() {
  local timeout="$1"
  "$JAVA" -Xmx64m -cp "$CLASSES:$(cat "$CP_FILE")" -Dlog4j2.configurationFile="$CONF/log4j2.properties" \
    ThriftPing "$BIND" "$THRIFT_PORT" "$timeout" framed
}

rss_mb() { rss_of "$(pid_of "$1")"; }

fail_start() {
  log "$1"
  for n in master thrift; do
    if [[ -f "$LOGS/$n.log" ]]; then
      printf '\n----- tail of %s -----\n' "$LOGS/$n.log" >&2
      tail -n 60 "$LOGS/$n.log" >&2
    fi
  done
  stop_one thrift 10 >/dev/null 2>&1 || true
  stop_one master 30 >/dev/null 2>&1 || true
  exit 1
}

start() {
  install
  if alive master && alive thrift && ping_thrift 5 >/dev/null 2>&1; then
    log "already running (master pid $(pid_of master), thrift pid $(pid_of thrift)) on $BIND:$THRIFT_PORT"
    return 0
  fi
  stop >/dev/null 2>&1 || true

  local p
  for p in "$ZK_PORT" "$MASTER_PORT" "$MASTER_INFO_PORT" "$RS_PORT" "$RS_INFO_PORT" "$THRIFT_PORT" "$THRIFT_INFO_PORT"; do
    if port_open "$p"; then
      die "port $BIND:$p is already in use by another process; set the HBASE_*_PORT variables to free ports"
    fi
  done

  write_conf
  local t0=$SECONDS
  log "starting standalone HBase $HBASE_VERSION (zk :$ZK_PORT, master :$MASTER_PORT, rs :$RS_PORT); logs in $LOGS"
  launch master "$HEAP" org.apache.hadoop.hbase.master.HMaster start

  # The gateway opens its HBase connection at start-up and needs ZooKeeper for
  # that; start it as soon as the embedded ZooKeeper listens.
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$ZK_PORT"; do
    alive master || fail_start "the HBase master exited during start-up"
    ((SECONDS < deadline)) || fail_start "ZooKeeper did not listen on :$ZK_PORT within ${START_TIMEOUT}s"
    sleep 0.5
  done

  log "starting the Thrift2 gateway on $THRIFT_BIND:$THRIFT_PORT (framed transport, binary protocol)"
  launch thrift "$THRIFT_HEAP" org.apache.hadoop.hbase.thrift2.ThriftServer \
    -b "$THRIFT_BIND" -p "$THRIFT_PORT" --infoport "$THRIFT_INFO_PORT" -f -threadpool start

  until port_open "$THRIFT_PORT"; do
    alive master || fail_start "the HBase master exited during start-up"
    alive thrift || fail_start "the Thrift2 gateway exited during start-up"
    ((SECONDS < deadline)) || fail_start "the Thrift2 gateway did not listen on :$THRIFT_PORT within ${START_TIMEOUT}s"
    sleep 0.5
  done

  local left=$((deadline - SECONDS))
  ((left > 0)) || left=1
  if ! ping_thrift "$left" >&2; then
    fail_start "the Thrift2 gateway did not answer within ${START_TIMEOUT}s"
  fi
  local took=$((SECONDS - t0))
  printf '%s\n' "$took" >"$RUN/startup-seconds"
  log "HBase up in ${took}s: thrift2 at $BIND:$THRIFT_PORT; RSS master $(rss_mb master) MB, thrift $(rss_mb thrift) MB"
  echo "$BIND:$THRIFT_PORT"
}



# stop_one NAME TIMEOUT sends SIGTERM and, after TIMEOUT seconds, SIGKILL.
stop_one() {
  local name="$1" timeout="$2" pid
  pid="$(pid_of "$name")"
  if ! alive "$name"; then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_exit "$pid" "$timeout"; then
    log "$name (pid $pid) did not stop within ${timeout}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 10 || true
  fi
  rm -f "$RUN/$name.pid"
  log "stopped $name (pid $pid)"
}

# stop_master asks the cluster to shut down through the master RPC ("hbase master
# stop --shutDownCluster"): regions are closed and flushed, the region server
# leaves, and only then the embedded ZooKeeper stops. A bare SIGTERM also works
# but its shutdown hooks stop ZooKeeper first and the region server then spends
# ~20s retrying its session; SIGTERM stays as the fallback.
stop_master() {
  local pid
  pid="$(pid_of master)"
  if ! alive master; then
    rm -f "$RUN/master.pid"
    return 0
  fi
  if [[ -s "$CP_FILE" && -f "$HB/conf.jar" ]]; then
    mkdir -p "$LOGS"
    timeout 60 "$JAVA" -Xmx128m "-Dlog4j2.configurationFile=$CONF/log4j2.properties" -cp "$(classpath)" \
      org.apache.hadoop.hbase.master.HMaster stop --shutDownCluster >>"$LOGS/stop.log" 2>&1 || true
    if wait_exit "$pid" 60; then
      rm -f "$RUN/master.pid"
      log "stopped master (pid $pid)"
      return 0
    fi
    log "master did not shut down through RPC; sending SIGTERM"
  fi
  stop_one master 60
}

stop() {
  stop_one thrift 20
  stop_master
}

status() {
  local rc=0 n
  for n in master thrift; do
    if alive "$n"; then
      printf '%-7s running  pid %-8s rss %s MB\n' "$n" "$(pid_of "$n")" "$(rss_mb "$n")"
    else
      printf '%-7s stopped\n' "$n"
      rc=1
    fi
  done
  if ((rc == 0)); then
    if [[ -s "$CP_FILE" ]] && ping_thrift 5 >/dev/null 2>&1; then
      printf 'thrift2 %s:%s answers (framed, binary)\n' "$BIND" "$THRIFT_PORT"
    else
      printf 'thrift2 %s:%s does not answer\n' "$BIND" "$THRIFT_PORT"
      rc=1
    fi
  fi
  [[ -f "$RUN/startup-seconds" ]] && printf 'last start-up took %ss\n' "$(cat "$RUN/startup-seconds")"
  return $rc
}

logs() {
  local n
  for n in master thrift; do
    [[ -f "$LOGS/$n.log" ]] && { printf -- '----- %s -----\n' "$LOGS/$n.log"; tail -n "${1:-40}" "$LOGS/$n.log"; }
  done
  return 0
}

clean() {
  stop
  rm -rf "$HB/data" "$HB/tmp" "$LOGS" "$RUN"
  log "deleted HBase data under $HB (jars kept)"
}

# run keeps HBase in the foreground, the way a container runtime or supervisord
# wants a program: it starts both JVMs (start), streams their logs to stdout,
# stops them cleanly on SIGTERM/SIGINT (stop: the RPC shutdown of the master),
# and exits 1 if either JVM dies on its own, so the supervisor restarts it.
run() {
  start >/dev/null
  tail -n 0 -F "$LOGS/master.log" "$LOGS/thrift.log" 2>/dev/null &
  local tailer=$!
  trap 'log "stopping on signal"; stop; kill "$tailer" 2>/dev/null; exit 0' TERM INT
  log "running in the foreground (master pid $(pid_of master), thrift pid $(pid_of thrift)); SIGTERM stops HBase"
  while alive master && alive thrift; do
    # A background sleep and wait: the trap runs as soon as the signal arrives.
    sleep 2 &
    wait $! || true
  done
  log "a JVM exited on its own"
  trap - TERM INT
  stop || true
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
