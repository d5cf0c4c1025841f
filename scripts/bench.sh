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
#  3. The loop (DESIGN §8), cmd/loopbench: freshness from a click's acceptance
#     to the reader's changed page and to the hot list, through TrackService and
#     through Kafka, with nearline as a sixth process; the ingest rate nearline
#     sustains through Kafka while the feed serves, and the cache-hit p99 with
#     and without that ingest; then freshness on the all-in-one default (make
#     run). BENCH_LOOP=0 skips it; BENCH_INGEST_RATE (20000) and
#     BENCH_INGEST_DURATION (20s) size the ingest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${RECOTEST_HBASE_THRIFT:?run under scripts/integration.sh}" "${RECOTEST_REDIS_ADDR:?run under scripts/integration.sh}" "${RECOTEST_KAFKA_ADDR:?run under scripts/integration.sh}"

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

echo "== the feed under load: $BENCH_USERS users, $BENCH_ARTICLES articles, split mode on HBase + Redis + Kafka"
go build -o "$work/reco" ./cmd/reco
go build -o "$work/loadgen" ./cmd/loadgen
go build -o "$work/loopbench" ./cmd/loopbench
export RECO_STORAGE_TABLES=hbase RECO_STORAGE_HBASE_THRIFT_ADDR="$RECOTEST_HBASE_THRIFT"
export RECO_STORAGE_SETS=redis RECO_STORAGE_REDIS_ADDRS="$RECOTEST_REDIS_ADDR"
export RECO_STORAGE_LOG_BACKEND=kafka RECO_STORAGE_LOG_KAFKA_BROKERS="$RECOTEST_KAFKA_ADDR"
export RECO_SORT_MODEL_DIR="$work/models" RECO_LOG_LEVEL=warn
# An action log of this run's own: a Kafka kept from an earlier run may hold a
# backlog in the default topic.
export RECO_TRACK_TOPIC="click-trace-bench-$(date +%s)"
"$work/reco" admin generate --out "$work/data" --users "$BENCH_USERS" --articles "$BENCH_ARTICLES"
# Bulk writes of thousands of rows take longer than a feed call may.
RECO_STORAGE_HBASE_TIMEOUT=30s "$work/reco" admin build --stats --data "$work/data" --models "$work/models"

export RECO_CLIENTS_RECOCENTER_ADDR=127.0.0.1:10001 RECO_CLIENTS_RECALL_ADDR=127.0.0.1:10002
export RECO_CLIENTS_SORT_ADDR=127.0.0.1:10003 RECO_CLIENTS_CACHE_ADDR=127.0.0.1:10004
# nearline runs as two processes, as a deployment would scale it: the counts
# (hot lists, A/B counters) and the readers' updates, the latter capped at
# BENCH_READERS_RATE engaged actions/s so that a burst cannot take the HBase
# the feed reads.
port=10000
for proc in routing recocenter recall sort cache nearline-counts nearline-readers; do
  grpc=127.0.0.1:$port
  [[ $proc == routing ]] && grpc=127.0.0.1:9999
  part=()
  [[ $proc == nearline-counts ]] && part=(RECO_NEARLINE_READERS=false)
  [[ $proc == nearline-readers ]] && part=(RECO_NEARLINE_COUNTS=false RECO_NEARLINE_READERS_RATE="${BENCH_READERS_RATE:-1000}")
  env "${part[@]}" RECO_SERVER_GRPC_ADDR=$grpc RECO_SERVER_METRICS_ADDR=127.0.0.1:$((port + 100)) RECO_SERVER_HTTP_ADDR=127.0.0.1:$((port + 200)) \
    "$work/reco" serve --target="${proc%-*}" >"$work/$proc.log" 2>&1 &
  pids+=($!)
  port=$((port + 1))
done

cut -f2 "$work/data/behaviors.tsv" | sort -u >"$work/users.txt"
cut -f1 "$work/data/news.tsv" >"$work/articles.txt"
# Users in a random order, split so that no phase gets a reader another one
# warmed: the loop's samples need fresh readers.
shuf --random-source=<(yes) "$work/users.txt" >"$work/shuffled.txt"
half=$(($(wc -l <"$work/shuffled.txt") / 2))
head -n "$half" "$work/shuffled.txt" >"$work/users-load.txt"
tail -n +"$((half + 1))" "$work/shuffled.txt" >"$work/users-loop.txt"
# LOADGEN_FLAGS passes more flags (rates: --hit-rate, --miss-rate, …).
# shellcheck disable=SC2086
"$work/loadgen" --addr 127.0.0.1:9999 --users "$work/users-load.txt" --articles "$work/articles.txt" --duration "$BENCH_DURATION" ${LOADGEN_FLAGS:-}

[[ "${BENCH_LOOP:-1}" == 1 ]] || exit 0
echo "== the loop, split mode: freshness"
split -n l/4 "$work/users-loop.txt" "$work/loop-"
"$work/loopbench" --addr 127.0.0.1:9999 --users "$work/loop-aa" --via grpc --redis "$RECOTEST_REDIS_ADDR" --samples 100
"$work/loopbench" --addr 127.0.0.1:9999 --users "$work/loop-ab" --via kafka --topic "$RECO_TRACK_TOPIC" --kafka "$RECOTEST_KAFKA_ADDR" --redis "$RECOTEST_REDIS_ADDR" --samples 100
rate="${BENCH_INGEST_RATE:-20000}" ingest_for="${BENCH_INGEST_DURATION:-20s}"
echo "== the loop, split mode: cache-hit refreshes without and with $rate action lines/s of ingest"
hits=(--addr 127.0.0.1:9999 --articles "$work/articles.txt" --miss-rate 20 --hit-rate 100 --history-rate 0 --similar-rate 0 --duration "$ingest_for")
"$work/loadgen" "${hits[@]}" --users "$work/loop-ac"
"$work/loopbench" --samples 0 --topic "$RECO_TRACK_TOPIC" --kafka "$RECOTEST_KAFKA_ADDR" --users "$work/users.txt" --articles "$work/articles.txt" \
  --ingest-rate "$rate" --ingest-duration "$ingest_for" >"$work/ingest.txt" &
ingest=$!
"$work/loadgen" "${hits[@]}" --users "$work/loop-ad"
wait "$ingest"
cat "$work/ingest.txt"

echo "== the loop, all-in-one default (make run): freshness"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
mkdir -p "$work/run/.cache"
(
  cd "$work/run"
  env -u RECO_STORAGE_TABLES -u RECO_STORAGE_SETS -u RECO_STORAGE_HBASE_THRIFT_ADDR -u RECO_STORAGE_REDIS_ADDRS \
    -u RECO_STORAGE_LOG_BACKEND -u RECO_STORAGE_LOG_KAFKA_BROKERS -u RECO_SORT_MODEL_DIR -u RECO_TRACK_TOPIC \
    "$work/reco" admin demo --models .cache/models >/dev/null
)
(
  cd "$work/run"
  exec env -u RECO_STORAGE_TABLES -u RECO_STORAGE_SETS -u RECO_STORAGE_HBASE_THRIFT_ADDR -u RECO_STORAGE_REDIS_ADDRS \
    -u RECO_STORAGE_LOG_BACKEND -u RECO_STORAGE_LOG_KAFKA_BROKERS -u RECO_SORT_MODEL_DIR -u RECO_TRACK_TOPIC \
    RECO_SERVER_LAME_DUCK=0s "$work/reco" serve --target=all >"$work/run.log" 2>&1
) &
pids+=($!)
seq 1 3000 | sed 's/^/U/' | shuf --random-source=<(yes) >"$work/demo-users.txt"
"$work/loopbench" --addr 127.0.0.1:9999 --users "$work/demo-users.txt" --via grpc --samples 100
