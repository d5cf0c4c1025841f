#!/usr/bin/env bash
# gotest.sh — go test over the whole module, failing the run if any test skipped:
# under `make test` every integration test has its server, so a skip means a test
# silently checked nothing. The chaos test (test/chaos) runs last and alone,
# without -race: it judges error rates under faults, and the other packages'
# tests running beside it on two cores, or the race detector's slowdown, would
# be part of what it measures. Its table is printed.
#
# Progress: each package's result is printed as go test reports it
# ("[ 7/41] ok  …/pkg/feed  1.2s"), failures as they happen, and a line every
# GOTEST_HEARTBEAT seconds (default 60) while nothing finishes, so a run of
# several minutes is never silent. The full log is kept in a temporary file and
# deleted at the end unless GOTEST_LOG names a file to keep it in.
set -uo pipefail

log="${GOTEST_LOG:-}"
if [[ -z "$log" ]]; then
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
fi
packages=$(go list ./... | grep -v '/test/chaos$')
total=$(wc -w <<<"$packages")
heartbeat="${GOTEST_HEARTBEAT:-60}"
start=$SECONDS
echo "gotest: go test -race over $total packages (the chaos test after them); results as each package finishes"

# done_count is the number of package results in the log so far.
done_count() { grep -cE '^(ok|FAIL|\?)[[:space:]]+[^[:space:]]+\.[^[:space:]]+' "$log"; }

# The heartbeat is a background job of this script, stopped by its pid. Its
# sleep does not hold the script's stdout, so a pipe reading it (make test |
# tee) ends with the script.
(
  while sleep "$heartbeat" </dev/null >/dev/null 2>&1; do
    echo "gotest: still running after $((SECONDS - start))s, $(done_count) of $total packages done"
  done
) &
ticker=$!

# progress prints a package's result ("ok  pkg 1.2s", "FAIL pkg 3.4s",
# "?  pkg [no test files]") with a running count, and a failing test, a panic or
# a compile error when it happens. A shell loop, not awk: mawk reads a pipe in
# blocks, which would hold the lines back.
progress() {
  local line n=0 width=${#total}
  while IFS= read -r line; do
    if [[ "$line" =~ ^(ok|FAIL|\?)[[:space:]]+[^[:space:]]+\.[^[:space:]]+ ]]; then
      printf '[%*d/%d] %s\n' "$width" $((++n)) "$total" "${line:0:400}"
    elif [[ "$line" =~ ^[[:space:]]*---\ FAIL || "$line" =~ ^panic: || "$line" =~ ^#\  || "$line" =~ ^[^[:space:]]+\.go:[0-9]+:[0-9]+:\  ]]; then
      printf '%s\n' "${line:0:400}"
    fi
  done
}

go test -count=1 -race -v "$@" $packages 2>&1 | tee "$log" | progress
status=${PIPESTATUS[0]}
echo "gotest: the chaos test, alone (about five minutes)"
go test -count=1 -v -timeout 15m "$@" ./test/chaos/ 2>&1 | tee -a "$log" |
  grep --line-buffered -E '^(ok|FAIL|--- )|chaos_test\.go:[0-9]+: (fault |warm-up|none|[A-Za-z0-9 ]+ SIGKILL|row |  )' | cut -c1-400
((PIPESTATUS[0] == 0)) || status=1
kill "$ticker" 2>/dev/null
wait "$ticker" 2>/dev/null

passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if ((failed > 0)) || ((status != 0)); then
  echo "failures and test output:"
  grep -E '^(FAIL|--- FAIL|panic:)|^\s+--- FAIL|_test\.go:[0-9]+:' "$log" | cut -c1-400
fi
if ((skipped > 0)); then
  echo "skipped tests (not allowed under make test):"
  grep -E -A3 '^\s*--- SKIP' "$log"
  status=1
fi
echo "gotest: finished in $((SECONDS - start))s"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
