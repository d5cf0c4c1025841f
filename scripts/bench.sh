#!/usr/bin/env bash
# bench.sh — the numbers `make bench` prints (run it under scripts/integration.sh,
# which starts real Redis and HBase and exports their addresses):
#
#  1. Go benchmarks: storage operations on HBase (Thrift2), Redis and the embedded
#     engine, one gRPC hop in-process and over loopback, the offline build.
#  2. The feed under load: a generated data set (BENCH_USERS users, BENCH_ARTICLES
#     articles, 25 channels) built into HBase and Redis, the five services in split
#     mode, and cmd/loadgen driving cache-miss, cache-hit, history and similar
#     requests at fixed rates, printing p50, p99 and throughput.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${RECOTEST_HBASE_THRIFT:?run under scripts/integration.sh}" "${RECOTEST_REDIS_ADDR:?run under scripts/integration.sh}"

BENCH_USERS="${BENCH_USERS:-10000}"
BENCH_ARTICLES="${BENCH_ARTICLES:-50000}"
BENCH_DURATION="${BENCH_DURATION:-15s}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ "${BENCH_GO:-1}" == 1 ]]; then
  echo "== Go benchmarks"
  go test -run '^$' -bench . -benchtime "${BENCH_TIME:-2000x}" ./pkg/... 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)'
fi

echo "== the feed under load: $BENCH_USERS users, $BENCH_ARTICLES articles, split mode on HBase + Redis"
go build -o "$work/reco" ./cmd/reco
go build -o "$work/loadgen" ./cmd/loadgen
export RECO_STORAGE_TABLES=hbase RECO_STORAGE_HBASE_THRIFT_ADDR="$RECOTEST_HBASE_THRIFT"
export RECO_STORAGE_SETS=redis RECO_STORAGE_REDIS_ADDRS="$RECOTEST_REDIS_ADDR"
export RECO_SORT_MODEL_DIR="$work/models" RECO_LOG_LEVEL=warn
"$work/reco" admin generate --out "$work/data" --users "$BENCH_USERS" --articles "$BENCH_ARTICLES"
"$work/reco" admin build --stats --data "$work/data" --models "$work/models"

export RECO_CLIENTS_RECOCENTER_ADDR=127.0.0.1:10001 RECO_CLIENTS_RECALL_ADDR=127.0.0.1:10002
export RECO_CLIENTS_SORT_ADDR=127.0.0.1:10003 RECO_CLIENTS_CACHE_ADDR=127.0.0.1:10004
port=10000
for target in routing recocenter recall sort cache; do
  grpc=127.0.0.1:$port
  [[ $target == routing ]] && grpc=127.0.0.1:9999
  RECO_SERVER_GRPC_ADDR=$grpc RECO_SERVER_METRICS_ADDR=127.0.0.1:$((port + 100)) \
    "$work/reco" serve --target=$target >"$work/$target.log" 2>&1 &
  pids+=($!)
  port=$((port + 1))
done

cut -f2 "$work/data/behaviors.tsv" | sort -u >"$work/users.txt"
cut -f1 "$work/data/news.tsv" >"$work/articles.txt"
# LOADGEN_FLAGS passes more flags (rates: --hit-rate, --miss-rate, …).
# shellcheck disable=SC2086
"$work/loadgen" --addr 127.0.0.1:9999 --users "$work/users.txt" --articles "$work/articles.txt" --duration "$BENCH_DURATION" ${LOADGEN_FLAGS:-}
