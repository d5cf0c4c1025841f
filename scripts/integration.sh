#!/usr/bin/env bash
# integration.sh — runs a command with real Redis, HBase and Kafka started for it.
#
#   scripts/integration.sh go test ./...
#
# Starts redis-server, standalone HBase + its Thrift2 gateway and a one-process
# Kafka 4 (KRaft) on loopback (installing them first if missing), creates the
# tables with `reco admin bootstrap`, exports the addresses the integration
# tests read, runs the command and stops the servers whatever happens.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export REDIS_PORT="${REDIS_PORT:-6390}"
export HBASE_THRIFT_PORT="${HBASE_THRIFT_PORT:-9090}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"

cleanup() {
  scripts/kafka.sh stop || true
  scripts/redis.sh stop || true
  scripts/hbase.sh stop || true
}
trap cleanup EXIT

scripts/redis.sh start
scripts/hbase.sh install
scripts/hbase.sh start
scripts/kafka.sh install
scripts/kafka.sh start

# RECOTEST_, not RECO_: every RECO_* variable in reco's environment must be a
# config key (`reco config env`), or the processes the command starts refuse to.
export RECOTEST_REDIS_ADDR="127.0.0.1:$REDIS_PORT"
export RECOTEST_HBASE_THRIFT="127.0.0.1:$HBASE_THRIFT_PORT"
export RECOTEST_KAFKA_ADDR="127.0.0.1:$KAFKA_PORT"
# Integration tests fail rather than skip when a server they need is missing.
export RECOTEST_REQUIRE_INTEGRATION=1

RECO_STORAGE_TABLES=hbase RECO_STORAGE_HBASE_THRIFT_ADDR="$RECOTEST_HBASE_THRIFT" \
  go run ./cmd/reco admin bootstrap

"$@"
