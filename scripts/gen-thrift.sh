#!/usr/bin/env bash
# gen-thrift.sh — regenerate the Go client of the HBase Thrift2 gateway.
#
#   scripts/gen-thrift.sh           extract the IDL from the hbase-thrift jar into
#                                   scripts/hbase/hbase.thrift and regenerate
#                                   pkg/storage/hbase/internal/thrift2
#   scripts/gen-thrift.sh --check   regenerate into a temporary directory and fail
#                                   if the committed files differ (for CI)
#
# The IDL is the one the running gateway was built from: it is read out of the
# same hbase-thrift jar that scripts/hbase.sh runs (org/apache/hadoop/hbase/thrift2/
# hbase.thrift), so client and server cannot drift apart. Requires the Thrift
# compiler 0.17 (Debian's thrift-compiler, installed when missing), matching the
# github.com/apache/thrift v0.17.0 runtime in go.mod.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RECOSCRIPTS_CACHE:-$ROOT/.cache}"
IDL="$ROOT/scripts/hbase/hbase.thrift"
OUT_PARENT="$ROOT/pkg/storage/hbase/internal"
PKG=thrift2
WANT_THRIFT="0.17.0"

die() { printf 'gen-thrift.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=apt.sh
source "$ROOT/scripts/apt.sh"
command -v thrift >/dev/null || apt_install thrift-compiler || die "thrift compiler not found; install it with: apt-get install thrift-compiler"
have="$(thrift --version | awk '{print $3}')"
[[ "$have" == "$WANT_THRIFT" ]] || die "thrift compiler $have found, $WANT_THRIFT wanted (it must match github.com/apache/thrift in go.mod)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Resolve the hbase-thrift jar through the same Maven classpath scripts/hbase.sh uses.
"$ROOT/scripts/hbase.sh" install >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; die "scripts/hbase.sh install failed"; }
jar="$(tr ':' '\n' <"$CACHE/hbase/classpath.txt" | grep '/hbase-thrift-[^/]*\.jar$' | head -n1)"
[[ -f "$jar" ]] || die "hbase-thrift jar not found in $CACHE/hbase/classpath.txt"

generate() { # generate IDL_FILE OUT_PARENT
  rm -rf "${2:?}/$PKG"
  mkdir -p "$2"
  # The compiler warns about the IDL's style (byte vs i8, "optional" in argument
  # lists); those are HBase's, not ours, so its output is shown only on failure.
  thrift -strict --gen "go:package=$PKG,skip_remote" -out "$2" "$1" >"$tmp/thrift.log" 2>&1 ||
    { cat "$tmp/thrift.log" >&2; die "thrift failed on $1"; }
  gofmt -l -w "$2/$PKG" >/dev/null
}
unzip -p "$jar" org/apache/hadoop/hbase/thrift2/hbase.thrift >"$tmp/hbase.thrift"
[[ -s "$tmp/hbase.thrift" ]] || die "no org/apache/hadoop/hbase/thrift2/hbase.thrift in $jar"

if [[ "${1:-}" == "--check" ]]; then
  generate "$tmp/hbase.thrift" "$tmp/out"
  cmp -s "$tmp/hbase.thrift" "$IDL" || die "scripts/hbase/hbase.thrift differs from $(basename "$jar"); run scripts/gen-thrift.sh"
  diff -r "$tmp/out/$PKG" "$OUT_PARENT/$PKG" >/dev/null ||
    die "pkg/storage/hbase/internal/$PKG is stale; run scripts/gen-thrift.sh"
  echo "gen-thrift.sh: generated code is up to date ($(basename "$jar"))"
  exit 0
fi

cp "$tmp/hbase.thrift" "$IDL"
generate "$IDL" "$OUT_PARENT"
echo "gen-thrift.sh: generated $OUT_PARENT/$PKG from $(basename "$jar")"
