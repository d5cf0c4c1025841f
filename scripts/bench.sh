#!/usr/bin/env bash
# bench.sh — the numbers `make bench` prints, in one run on this machine (run it
# under scripts/integration.sh, which starts real Redis, HBase and Kafka and
# exports their addresses):
#
#  1. Go benchmarks: storage operations on HBase (Thrift2), Redis and the embedded
#     engine, one gRPC hop in-process and over loopback, the offline build.
#  2. The floor chain (cmd/floorchain, three processes): three bare gRPC hops
#     over loopback, one Redis round trip and one Kafka append with the suite's
#     durability setting per request, closed loop at BENCH_CONCURRENCY — what a
#     cache-hit refresh cannot beat.
#  3. The feed in split mode on HBase + Redis + Kafka: a generated data set
#     (BENCH_USERS users, BENCH_ARTICLES articles, 25 channels), the services as
#     processes of their own, and cmd/loadgen's step ladders for cache-miss,
#     cache-hit, history and similar (article_recommend) requests: p50, p99,
#     errors, CPU ms per request per process and RSS per step, and each kind's
#     knee (the highest rate with p99 <= 50 ms and < 0.1% errors); then a
#     closed loop of health checks and cache hits at BENCH_CONCURRENCY, and the
#     floor chain again at half the cache-hit knee.
#  4. The loop (DESIGN §8), cmd/loopbench: freshness from a click's acceptance
#     to the reader's changed page and to the hot list, through TrackService and
#     through Kafka, with nearline as two more processes; the ingest rate nearline
#     sustains through Kafka while the feed serves, and the cache-hit p99 with
#     and without that ingest; then freshness on the all-in-one default.
#  5. make run's all-in-one default (embedded stores, demo data): the same
#     ladders, and warmed refreshes against health checks at BENCH_CONCURRENCY.
#  6. The report: every figure next to BENCH_BASELINE's with the change, and
#     issue 11's targets; the run as JSON in BENCH_OUT.
#
# Knobs (environment; defaults in brackets, BENCH_QUICK's in braces):
#   BENCH_QUICK=1          a try in a few minutes: smaller data, fewer and shorter steps
#   BENCH_GO               1: run the Go benchmarks (BENCH_TIME [2000x] iterations)
#   BENCH_USERS, BENCH_ARTICLES   data set [10000, 50000] {3000, 10000}
#   BENCH_STEP             length of each ladder step [10s] {3s}
#   BENCH_MISS_STEP        length of a cache-miss step, which spends fresh users [5s] {2s}
#   BENCH_ALL_MISS_STEP    the same for make run's 3,000 demo users [2s] {1s}
#   BENCH_LADDER_MISS, BENCH_LADDER_HIT, BENCH_LADDER_HISTORY, BENCH_LADDER_SIMILAR
#                          START:MAX (doubling) or RATE,RATE,… [25:800, 50:12800, 50:12800, 50:12800]
#                          {25:400, 50:6400, 50:6400, 50:6400}
#   BENCH_CONCURRENCY      calls in flight of the closed loops [16]
#   BENCH_CLOSED           length of each closed loop [10s] {5s}
#   BENCH_LOOP             1: run the loop [1]; BENCH_LOOP_SAMPLES [100] {20},
#                          BENCH_INGEST_RATE [20000], BENCH_INGEST_DURATION [20s] {5s},
#                          BENCH_READERS_RATE (nearline's readers' cap) [1000]
#   BENCH_ALL              1: run make run's all-in-one section [1]
#   BENCH_BASELINE         run to compare with [bench/baseline.json]
#   BENCH_OUT              where this run's JSON goes [.cache/bench/last.json]; copy it to
#                          bench/baseline.json to make it the baseline
#   BENCH_NOTE             note stored with the run after its settings (the machine, its load)
#   BENCH_ROUTING_PORT, BENCH_PORT_BASE, BENCH_FLOOR_PORT
#                          routing's gRPC port [9999], the others' base [10000]
#                          (gRPC base+1…, metrics +100, HTTP +200), the chain's [11001]
#   LOADGEN_FLAGS          more flags for the split-mode loadgen
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${RECOTEST_HBASE_THRIFT:?run under scripts/integration.sh}" "${RECOTEST_REDIS_ADDR:?run under scripts/integration.sh}" "${RECOTEST_KAFKA_ADDR:?run under scripts/integration.sh}"

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  q_users=3000 q_articles=10000 q_step=3s q_miss=2s q_all_miss=1s q_closed=5s q_samples=20 q_ingest=5s
  q_lmiss=25:400 q_lhit=50:6400 q_lhist=50:6400 q_lsim=50:6400
else
  q_users=10000 q_articles=50000 q_step=10s q_miss=5s q_all_miss=2s q_closed=10s q_samples=100 q_ingest=20s
  q_lmiss=25:800 q_lhit=50:12800 q_lhist=50:12800 q_lsim=50:12800
fi
BENCH_USERS="${BENCH_USERS:-$q_users}"
BENCH_ARTICLES="${BENCH_ARTICLES:-$q_articles}"
step="${BENCH_STEP:-$q_step}"
conc="${BENCH_CONCURRENCY:-16}"
closed="${BENCH_CLOSED:-$q_closed}"
samples="${BENCH_LOOP_SAMPLES:-$q_samples}"
baseline="${BENCH_BASELINE:-bench/baseline.json}"
out="${BENCH_OUT:-.cache/bench/last.json}"
rport="${BENCH_ROUTING_PORT:-9999}" base="${BENCH_PORT_BASE:-10000}" fport="${BENCH_FLOOR_PORT:-11001}"
routing=127.0.0.1:$rport
# shellcheck disable=SC2054 # the commas are --closed-kinds' own
ladders=(--miss-ladder "${BENCH_LADDER_MISS:-$q_lmiss}" --hit-ladder "${BENCH_LADDER_HIT:-$q_lhit}"
  --history-ladder "${BENCH_LADDER_HISTORY:-$q_lhist}" --similar-ladder "${BENCH_LADDER_SIMILAR:-$q_lsim}"
  --step-duration "$step" --closed "$conc" --closed-duration "$closed" --closed-kinds health,cache-hit)

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# stop ends the processes started so far and waits for them.
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
# knee prints the knee loadgen reported for a kind ("knee KIND RATE/s"), 0 without one.
knee() { sed -n "s|^knee $1 \([0-9]*\)/s.*|\1|p" "$2" | tail -n 1 | grep . || echo 0; }

if [[ "${BENCH_GO:-1}" == 1 ]]; then
  echo "== Go benchmarks"
  go test -run '^$' -bench . -benchtime "${BENCH_TIME:-2000x}" ./pkg/... 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)'
fi

go build -o "$work/reco" ./cmd/reco
go build -o "$work/loadgen" ./cmd/loadgen
go build -o "$work/loopbench" ./cmd/loopbench
go build -o "$work/floorchain" ./cmd/floorchain
export RECO_STORAGE_TABLES=hbase RECO_STORAGE_HBASE_THRIFT_ADDR="$RECOTEST_HBASE_THRIFT"
export RECO_STORAGE_SETS=redis RECO_STORAGE_REDIS_ADDRS="$RECOTEST_REDIS_ADDR"
export RECO_STORAGE_LOG_BACKEND=kafka RECO_STORAGE_LOG_KAFKA_BROKERS="$RECOTEST_KAFKA_ADDR"
export RECO_SORT_MODEL_DIR="$work/models" RECO_LOG_LEVEL=warn
# An action log of this run's own: a Kafka kept from an earlier run may hold a
# backlog in the default topic.
stamp="$(date +%s)"
export RECO_TRACK_TOPIC="click-trace-bench-$stamp"
results=()

echo "== the floor chain: 3 gRPC hops over loopback + 1 Redis EVALSHA + 1 Kafka append (acks=all), $conc in flight"
floor=()
"$work/floorchain" serve --role back --listen "127.0.0.1:$((fport + 2))" --redis "$RECOTEST_REDIS_ADDR" >"$work/floor-back.log" 2>&1 &
pids+=($!) floor+=("back=$!")
"$work/floorchain" serve --role middle --listen "127.0.0.1:$((fport + 1))" --next "127.0.0.1:$((fport + 2))" \
  --kafka "$RECOTEST_KAFKA_ADDR" --topic "floorchain-bench-$stamp" >"$work/floor-middle.log" 2>&1 &
pids+=($!) floor+=("middle=$!")
"$work/floorchain" serve --role front --listen "127.0.0.1:$fport" --next "127.0.0.1:$((fport + 1))" >"$work/floor-front.log" 2>&1 &
pids+=($!) floor+=("front=$!")
floor_pids="$(IFS=,; echo "${floor[*]}")"
"$work/floorchain" drive --addr "127.0.0.1:$fport" --concurrency "$conc" --duration "$closed" --pids "$floor_pids" --json "$work/floor-closed.json"
results+=("$work/floor-closed.json")

echo "== the feed in split mode on HBase + Redis + Kafka: $BENCH_USERS users, $BENCH_ARTICLES articles"
"$work/reco" admin generate --out "$work/data" --users "$BENCH_USERS" --articles "$BENCH_ARTICLES"
# Bulk writes of thousands of rows take longer than a feed call may.
RECO_STORAGE_HBASE_TIMEOUT=30s "$work/reco" admin build --stats --data "$work/data" --models "$work/models"

export RECO_CLIENTS_RECOCENTER_ADDR=127.0.0.1:$((base + 1)) RECO_CLIENTS_RECALL_ADDR=127.0.0.1:$((base + 2))
export RECO_CLIENTS_SORT_ADDR=127.0.0.1:$((base + 3)) RECO_CLIENTS_CACHE_ADDR=127.0.0.1:$((base + 4))
# nearline runs as two processes, as a deployment would scale it: the counts
# (hot lists, A/B counters) and the readers' updates, the latter capped at
# BENCH_READERS_RATE engaged actions/s so that a burst cannot take the HBase
# the feed reads.
port=$base
split=()
for proc in routing recocenter recall sort cache nearline-counts nearline-readers; do
  grpc=127.0.0.1:$port
  [[ $proc == routing ]] && grpc=$routing
  part=()
  [[ $proc == nearline-counts ]] && part=(RECO_NEARLINE_READERS=false)
  [[ $proc == nearline-readers ]] && part=(RECO_NEARLINE_COUNTS=false RECO_NEARLINE_READERS_RATE="${BENCH_READERS_RATE:-1000}")
  env "${part[@]}" RECO_SERVER_GRPC_ADDR="$grpc" RECO_SERVER_METRICS_ADDR=127.0.0.1:$((port + 100)) RECO_SERVER_HTTP_ADDR=127.0.0.1:$((port + 200)) \
    "$work/reco" serve --target="${proc%-*}" >"$work/$proc.log" 2>&1 &
  pids+=($!) split+=("$proc=$!")
  port=$((port + 1))
done
split_pids="$(IFS=,; echo "${split[*]}")"

cut -f2 "$work/data/behaviors.tsv" | sort -u >"$work/users.txt"
cut -f1 "$work/data/news.tsv" >"$work/articles.txt"
# Users in a random order, split so that no phase gets a reader another one
# warmed: the ladders spend three quarters (a cache miss needs a fresh
# reader), the loop's samples the rest.
shuf --random-source=<(yes) "$work/users.txt" >"$work/shuffled.txt"
load=$(($(wc -l <"$work/shuffled.txt") * 3 / 4))
head -n "$load" "$work/shuffled.txt" >"$work/users-load.txt"
tail -n +"$((load + 1))" "$work/shuffled.txt" >"$work/users-loop.txt"
# LOADGEN_FLAGS passes more flags (--hits-per-reader, --warm, …).
# shellcheck disable=SC2086
"$work/loadgen" --addr "$routing" --users "$work/users-load.txt" --articles "$work/articles.txt" "${ladders[@]}" \
  --miss-step-duration "${BENCH_MISS_STEP:-$q_miss}" --pids "$split_pids" --section split --json "$work/split.json" ${LOADGEN_FLAGS:-} |
  tee "$work/split.txt"
results+=("$work/split.json")
hit_knee=$(knee cache-hit "$work/split.txt")
if ((hit_knee > 1)); then
  echo "== the floor chain at half the split cache-hit knee ($((hit_knee / 2))/s)"
  "$work/floorchain" drive --addr "127.0.0.1:$fport" --rate "$((hit_knee / 2))" --duration "$step" --pids "$floor_pids" --json "$work/floor-half.json"
  results+=("$work/floor-half.json")
fi
for p in "${floor[@]}"; do kill -TERM "${p#*=}"; done

if [[ "${BENCH_LOOP:-1}" == 1 ]]; then
  echo "== the loop, split mode: freshness"
  split -n l/4 "$work/users-loop.txt" "$work/loop-"
  "$work/loopbench" --addr "$routing" --users "$work/loop-aa" --via grpc --redis "$RECOTEST_REDIS_ADDR" --samples "$samples"
  "$work/loopbench" --addr "$routing" --users "$work/loop-ab" --via kafka --topic "$RECO_TRACK_TOPIC" --kafka "$RECOTEST_KAFKA_ADDR" --redis "$RECOTEST_REDIS_ADDR" --samples "$samples"
  rate="${BENCH_INGEST_RATE:-20000}" ingest_for="${BENCH_INGEST_DURATION:-$q_ingest}"
  echo "== the loop, split mode: cache-hit refreshes without and with $rate action lines/s of ingest"
  hits=(--addr "$routing" --articles "$work/articles.txt" --miss-rate 20 --hit-rate 100 --history-rate 0 --similar-rate 0 --duration "$ingest_for")
  "$work/loadgen" "${hits[@]}" --users "$work/loop-ac"
  "$work/loopbench" --samples 0 --topic "$RECO_TRACK_TOPIC" --kafka "$RECOTEST_KAFKA_ADDR" --users "$work/users.txt" --articles "$work/articles.txt" \
    --ingest-rate "$rate" --ingest-duration "$ingest_for" >"$work/ingest.txt" &
  ingest=$!
  "$work/loadgen" "${hits[@]}" --users "$work/loop-ad"
  wait "$ingest"
  cat "$work/ingest.txt"
fi
stop

if [[ "${BENCH_ALL:-1}" == 1 ]]; then
  echo "== make run's all-in-one default (embedded stores, demo data)"
  # make run's configuration: none of the split mode's stores, this run's ports.
  aio=(env -u RECO_STORAGE_TABLES -u RECO_STORAGE_SETS -u RECO_STORAGE_HBASE_THRIFT_ADDR -u RECO_STORAGE_REDIS_ADDRS
    -u RECO_STORAGE_LOG_BACKEND -u RECO_STORAGE_LOG_KAFKA_BROKERS -u RECO_SORT_MODEL_DIR -u RECO_TRACK_TOPIC
    -u RECO_CLIENTS_RECOCENTER_ADDR -u RECO_CLIENTS_RECALL_ADDR -u RECO_CLIENTS_SORT_ADDR -u RECO_CLIENTS_CACHE_ADDR
    RECO_SERVER_GRPC_ADDR="$routing" RECO_SERVER_METRICS_ADDR=127.0.0.1:$((base + 100)) RECO_SERVER_HTTP_ADDR=127.0.0.1:$((base + 200)))
  mkdir -p "$work/run/.cache"
  (cd "$work/run" && "${aio[@]}" "$work/reco" admin demo --models .cache/models >/dev/null)
  (cd "$work/run" && exec "${aio[@]}" RECO_SERVER_LAME_DUCK=0s "$work/reco" serve --target=all >"$work/run.log" 2>&1) &
  pids+=($!)
  all_pid=$!
  # The demo's users (U1…U3000; articles N10001…N13000): the loop's samples
  # get 400 of them.
  seq 1 3000 | sed 's/^/U/' | shuf --random-source=<(yes) >"$work/demo-users.txt"
  head -n 2600 "$work/demo-users.txt" >"$work/demo-load.txt"
  tail -n 400 "$work/demo-users.txt" >"$work/demo-loop.txt"
  seq 10001 13000 >"$work/demo-articles.txt"
  "$work/loadgen" --addr "$routing" --users "$work/demo-load.txt" --articles "$work/demo-articles.txt" "${ladders[@]}" \
    --miss-step-duration "${BENCH_ALL_MISS_STEP:-$q_all_miss}" --pids "all=$all_pid" --section all-in-one --json "$work/all.json"
  results+=("$work/all.json")
  if [[ "${BENCH_LOOP:-1}" == 1 ]]; then
    echo "== the loop, all-in-one default (make run): freshness"
    "$work/loopbench" --addr "$routing" --users "$work/demo-loop.txt" --via grpc --samples "$samples"
  fi
  stop
fi

echo
mkdir -p "$(dirname "$out")"
note="BENCH_QUICK=${BENCH_QUICK:-0}, $BENCH_USERS users, $BENCH_ARTICLES articles, $step steps, $(nproc) cores${BENCH_NOTE:+; $BENCH_NOTE}"
"$work/loadgen" report --baseline "$baseline" --out "$out" --note "$note" "${results[@]}"
echo "this run: $out (cp it to bench/baseline.json to make it the baseline)"
