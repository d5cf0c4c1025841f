#!/usr/bin/env bash
# redis.sh — a real redis-server on loopback for tests and benchmarks.
#
#   scripts/redis.sh start   install Debian's redis-server if missing, start it
#   scripts/redis.sh stop    stop it
#
# Environment: REDIS_PORT (default 6390, away from a system Redis on 6379),
# RECOSCRIPTS_CACHE (default <repo>/.cache).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RECOSCRIPTS_CACHE:-$ROOT/.cache}"
DIR="$CACHE/redis"
PORT="${REDIS_PORT:-6390}"

log() { printf 'redis.sh: %s\n' "$*" >&2; }

# shellcheck source=apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

install() {
  command -v redis-server >/dev/null || apt_install redis-server
}

start() {
  install
  mkdir -p "$DIR"
  if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
    log "already running on 127.0.0.1:$PORT"
    return
  fi
  # No persistence: tests own the data and start from nothing.
  redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
  for _ in $(seq 50); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && { log "serving on 127.0.0.1:$PORT"; return; }
    sleep 0.1
  done
  log "redis-server did not answer; log:"; tail -20 "$DIR/redis.log" >&2; exit 1
}

stop() {
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
