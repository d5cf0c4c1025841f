#!/usr/bin/env bash
# promtool.sh — Prometheus's promtool, which `make test` runs on the alert and
# recording rules (test/deploy: `promtool check rules`, `promtool test rules`).
#
#   scripts/promtool.sh install   make promtool available (idempotent); prints its path
#
# promtool on the PATH is used as it is. Otherwise it is taken from Debian's
# `prometheus` package: downloaded with apt-get and unpacked into
# ${RECOSCRIPTS_CACHE:-<repo>/.cache}/bin/promtool, not installed, because the
# package's postinst would start a Prometheus server on 9090, the port of the
# HBase Thrift2 gateway of `make test` (about 19 MB, once).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RECOSCRIPTS_CACHE:-$ROOT/.cache}"
case "$CACHE" in /*) ;; *) CACHE="$PWD/$CACHE" ;; esac
BIN="$CACHE/bin"

log() { printf 'promtool.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install() {
  if command -v promtool >/dev/null; then
    command -v promtool
    return
  fi
  if [[ -x "$BIN/promtool" ]] && "$BIN/promtool" --version >/dev/null 2>&1; then
    echo "$BIN/promtool"
    return
  fi
  command -v apt-get >/dev/null || die "promtool not found and no apt-get: install Prometheus's promtool and put it on the PATH"
  log "unpacking promtool from Debian's prometheus package into $BIN"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  if ! (cd "$tmp" && apt-get download -qq prometheus) >/dev/null 2>&1; then
    # The package lists may be missing or stale (a fresh container).
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus) >/dev/null || die "apt-get download prometheus failed"
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$BIN"
  mv -f "$tmp/root/usr/bin/promtool" "$BIN/promtool.tmp"
  mv -f "$BIN/promtool.tmp" "$BIN/promtool"
  log "$("$BIN/promtool" --version 2>&1 | head -1)"
  echo "$BIN/promtool"
}

case "${1:-}" in
  install) install ;;
  *)
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
