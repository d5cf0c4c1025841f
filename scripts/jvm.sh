# jvm.sh — helpers shared by hbase.sh and kafka.sh, which both install jars from
# Maven Central and run JVMs in the background. Sourced, not run; the caller sets
# JAVA, MVN and CP_FILE (the classpath file of the install).

# mvn_batch runs Maven ($MVN) for a log, not a terminal: batch mode (-B, no
# prompts), no colours, and no ANSI resets. Maven 3.8's Jansi writes "ESC[0m"
# into a pipe even with -B and -Dstyle.color=never; only the JVM property
# jansi.noreset, which must be set before Maven starts (MAVEN_OPTS, not -D),
# stops it.
mvn_batch() {
  MAVEN_OPTS="${MAVEN_OPTS:+$MAVEN_OPTS }-Djansi.noreset=true" \
    "$MVN" --batch-mode -Dstyle.color=never "$@"
}

# cp_jars_present is false when ~/.m2 was wiped after the classpath file was
# written: the install must run again.
cp_jars_present() {
  local jar
  while IFS= read -r jar; do
    [[ -f "$jar" ]] || return 1
  done < <(tr ':' '\n' <"$CP_FILE")
}

# gone PID is true once PID has exited (a zombie counts as exited).
gone() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)"
  [[ -z "$state" || "$state" == Z ]]
}

# wait_exit PID TIMEOUT waits up to TIMEOUT seconds for PID to exit.
wait_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  until gone "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# rss_of PID prints PID's resident memory in MB, or ? when it is not running.
rss_of() {
  [[ -n "$1" ]] && awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# jvm_cds_flags DIR NAME [FILE...] prints the class-data-sharing flags of the JVM
# NAME: the first run records the classes it loaded into an archive in DIR when
# it exits (JDK 13+ dynamic AppCDS), later runs map that archive, which cuts
# start-up. The archive's name carries a checksum of the JDK, the classpath and
# FILEs, so a change starts a new one.
jvm_cds_flags() {
  local dir="$1" name="$2" key
  shift 2
  key="$({ "$JAVA" -version 2>&1; cat "$CP_FILE" "$@"; } | cksum | cut -d' ' -f1)"
  mkdir -p "$dir"
  local jsa="$dir/$name-$key.jsa"
  if [[ -s "$jsa" ]]; then
    printf '%s\n' "-XX:SharedArchiveFile=$jsa" -Xshare:auto
  else
    rm -f "$dir/$name-"*.jsa
    printf '%s\n' "-XX:ArchiveClassesAtExit=$jsa"
  fi
}
