#!/usr/bin/env bash
# Runs a command against a fresh Polyshop system with the edge on it:
#   gateway/scripts/with-system.sh gateway/scripts/fuzz-api.sh
# Starts `polyshop up --no-demo` (unless DEMO=1) on a temporary data dir and free ports (so it runs beside a
# `just run`), with a known admin password and the edge's rate limits lifted (fuzzers and
# benchmarks are one client sending a lot), waits until the edge is ready, runs the command
# with the edge's URL appended (admin credentials in ADMIN_LOGIN/ADMIN_PASSWORD, every
# service's address in POLYSHOP_<SERVICE>_LISTEN, the `polyshop up` pid in SYSTEM_PID), then
# stops everything.
# Env: POLYSHOP_BIN (else $CARGO_TARGET_DIR/debug/polyshop or target/debug/polyshop),
# READY_TIMEOUT (120 s), DEMO (1: the demo catalog, which `polyshop load` needs), UP_ARGS
# (more arguments for `polyshop up`, e.g. "--replicas 2
# --nats-cluster 3"; then every order instance's URL is in BENCH_ORDER_URLS).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${POLYSHOP_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/polyshop}"
# Not a config key: polyshop rejects unknown POLYSHOP_* variables.
unset POLYSHOP_BIN
[[ -x "$bin" ]] || { echo "with-system: $bin not built (just build)" >&2; exit 1; }
[[ $# -gt 0 ]] || { echo "usage: with-system.sh <command> [args...]" >&2; exit 1; }

data="$(mktemp -d)"
password="edge-admin-$(date +%s%N)"
export POLYSHOP_DATA_DIR="$data" POLYSHOP_USER_ADMIN_PASSWORD="$password" POLYSHOP_LOG="${POLYSHOP_LOG:-warn}"
# Ports the kernel hands out now; they are free a moment later in all but a crowded machine.
read -r -a ports < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
i=0
for service in USER CATALOG INVENTORY ORDER PAYMENT NOTIFICATION GATEWAY; do
  export "POLYSHOP_${service}_LISTEN=127.0.0.1:${ports[$i]}"
  i=$((i + 1))
done
export POLYSHOP_NATS_EMBEDDED_PORT="${ports[7]}"
url="http://$POLYSHOP_GATEWAY_LISTEN"
export POLYSHOP_GATEWAY_RATE_PER_SEC=1000000 POLYSHOP_GATEWAY_RATE_BURST=1000000
export POLYSHOP_GATEWAY_AUTH_RATE_PER_SEC=1000000 POLYSHOP_GATEWAY_AUTH_RATE_BURST=1000000
# Logins per account too (`polyshop load` logs its shoppers in again and again).
export POLYSHOP_GATEWAY_ACCOUNT_RATE_BURST=0
# The load comes from one address: no cap on its requests in flight either.
export POLYSHOP_GATEWAY_MAX_CONCURRENT_PER_IP=0
demo=--no-demo
[[ "${DEMO:-0}" == 1 ]] && demo=
# shellcheck disable=SC2086 # UP_ARGS is a list of words
"$bin" up $demo ${UP_ARGS:-} >"$data/up.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

ready=0
for _ in $(seq 1 "${READY_TIMEOUT:-120}"); do
  kill -0 "$pid" 2>/dev/null || { echo "with-system: polyshop up exited" >&2; cat "$data/up.log" >&2; exit 1; }
  # 200 means the edge can serve; wait until every context serves too.
  if curl -fsS "$url/readyz" 2>/dev/null | grep -q '"status":"ready"'; then ready=1; break; fi
  sleep 1
done
if [[ "$ready" != 1 ]]; then
  curl -fsS -o /dev/null "$url/healthz" || { echo "with-system: the edge never answered at $url" >&2; tail -50 "$data/up.log" >&2; exit 1; }
  echo "with-system: the edge is up but not ready: $(curl -s "$url/readyz")" >&2
fi
if [[ -n "${UP_ARGS:-}" ]]; then
  # Several instances: hand the benchmark every order instance the registry lists.
  for _ in $(seq 1 30); do
    BENCH_ORDER_URLS="$("$bin" admin services | awk -F'\t' '$1 == "order" {print $3}' | paste -sd, -)"
    [[ "$BENCH_ORDER_URLS" == *,* ]] && break
    sleep 1
  done
  export BENCH_ORDER_URLS
  echo "with-system: order instances $BENCH_ORDER_URLS" >&2
fi
SYSTEM_PID="$pid" ADMIN_LOGIN=admin ADMIN_PASSWORD="$password" "$@" "$url"
