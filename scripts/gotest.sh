#!/usr/bin/env bash
# gotest.sh — go test over the whole module, failing the run if any test skipped:
# under `make test` every integration test has its server, so a skip means a test
# silently checked nothing. The chaos test (test/chaos) runs under `make chaos`
# until its figures pass in every run (see README, "The chaos test").
set -uo pipefail

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
packages=$(go list ./... | grep -v '/test/chaos$')
go test -count=1 -race -v "$@" $packages >"$log" 2>&1
status=$?
# Package results and failures only; the full log is long.
grep -E '^(ok|FAIL|--- FAIL|panic:|\?)|^\s+--- FAIL|_test\.go:[0-9]+:' "$log" | cut -c1-400
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if ((skipped > 0)); then
  echo "skipped tests (not allowed under make test):"
  grep -E -A3 '^\s*--- SKIP' "$log"
  status=1
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
