#!/usr/bin/env bash
# Benchmarks the edge: authenticated GET /v1/products/{id} through a running gateway, with
# wrk -t2 -c64 -d10s by default, the same load as the Node peer in shared/bench/seeds-node.
#   gateway/scripts/bench-edge.sh http://127.0.0.1:8080
# Seeds SEED_COUNT products as the admin, signs up a bench user, warms up, measures, and
# prints req/s, p50/p99, the gateway's RSS and the CPU steal during each run. Targets: >= 8x
# the tuned Node gateway's req/s (run it in the same session: PEER=1), p99 <= 10 ms,
# RSS <= 40 MiB.
#
# The gateway must run with rate limits out of the way, e.g.
#   POLYSHOP_GATEWAY_RATE_PER_SEC=1000000 POLYSHOP_GATEWAY_RATE_BURST=1000000 POLYSHOP_LOG=warn
#   POLYSHOP_GATEWAY_MAX_CONCURRENT_PER_IP=0 (wrk's CONNS all come from one address)
# Env: ADMIN_LOGIN (admin), ADMIN_PASSWORD (else read from $DATA_DIR/admin-credentials.txt,
# DATA_DIR=data), SEED_COUNT (200), THREADS (2), CONNS (64), DURATION (10s), WARMUP (5s),
# RUNS (3), GATEWAY_PID (else the process listening on the URL's port), PEER (1, default: also run
# the Node peer's gateway-tuned target with the same knobs), PEER_DIR (the peer's checkout, else
# ../shared/bench/seeds-node beside this project).
set -euo pipefail

url="${1:?usage: bench-edge.sh <gateway base URL, e.g. http://127.0.0.1:8080>}"
url="${url%/}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
THREADS="${THREADS:-2}" CONNS="${CONNS:-64}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-5s}"
RUNS="${RUNS:-3}" SEED_COUNT="${SEED_COUNT:-200}"

command -v wrk >/dev/null || { echo "wrk not found: apt-get update && apt-get install -y wrk" >&2; exit 1; }
curl -fsS -o /dev/null "$url/healthz" || { echo "bench-edge: no gateway answering at $url" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
post() { curl -fsS -X POST "$url$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"; }

admin_login="${ADMIN_LOGIN:-admin}"
admin_password="${ADMIN_PASSWORD:-$(sed -n 's/^password: //p' "${DATA_DIR:-$root/data}/admin-credentials.txt" 2>/dev/null || true)}"
[[ -n "$admin_password" ]] || { echo "bench-edge: set ADMIN_PASSWORD (or DATA_DIR with admin-credentials.txt)" >&2; exit 1; }
admin="$(post /v1/auth/login "{\"login\":\"$admin_login\",\"password\":\"$admin_password\"}" | json 'd["accessToken"]')"

echo "seeding $SEED_COUNT products" >&2
for i in $(seq 1 "$SEED_COUNT"); do
  post /v1/products "{\"requestId\":\"bench-$i\",\"name\":\"Bench product $i\",\"description\":\"seeded by bench-edge\",\"category\":\"bench\",\"price\":{\"amountMinor\":\"$((100 + i))\",\"currencyCode\":\"EUR\"},\"active\":true}" "$admin" |
    json 'd["product"]["productId"]' >>"$work/ids"
done

user="bench$(date +%s%N | tail -c 9)"
post /v1/users "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"bench password 123\"}" >/dev/null
token="$(post /v1/auth/login "{\"login\":\"$user\",\"password\":\"bench password 123\"}" | json 'd["accessToken"]')"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" "$url/v1/products/$(head -1 "$work/ids")")"
[[ "$code" == 200 ]] || { echo "bench-edge: sanity GET returned $code" >&2; exit 1; }

port="${url##*:}"; port="${port%%/*}"
pid="${GATEWAY_PID:-$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)}"
export WRK_TOKEN="$token" WRK_IDS_FILE="$work/ids"
echo "wrk -t$THREADS -c$CONNS -d$DURATION (warmup $WARMUP), $RUNS runs, $(nproc) cores, gateway pid ${pid:-unknown}"
for run in $(seq 1 "$RUNS"); do
  [[ "$WARMUP" == 0 ]] || wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$here/bench-edge.lua" "$url" >/dev/null
  read -r -a cpu0 < <(grep '^cpu ' /proc/stat)
  line="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$here/bench-edge.lua" "$url" | grep '^RESULT ')"
  read -r -a cpu1 < <(grep '^cpu ' /proc/stat)
  # CPU the hypervisor took from this VM during the run (the "st" of vmstat): when it is high,
  # the tail latency measures the host, not the edge.
  total=0; for i in 1 2 3 4 5 6 7 8; do total=$((total + cpu1[i] - cpu0[i])); done
  steal="$(( total > 0 ? 100 * (cpu1[8] - cpu0[8]) / total : 0 ))"
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  rss="-"; hwm="-"
  if [[ -n "$pid" && -r "/proc/$pid/status" ]]; then
    rss="$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$pid/status")"
    hwm="$(awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$pid/status")"
  fi
  printf 'edge run %s: %10s req/s  p50 %6s us  p99 %7s us  non2xx %s  RSS %s MiB (peak %s)  steal %s%%\n' \
    "$run" "$(get rps)" "$(get p50_us)" "$(get p99_us)" "$(get non2xx)" "$rss" "$hwm" "$steal"
done

if [[ "${PEER:-1}" == 1 ]]; then
  peer="${PEER_DIR:-$root/../shared/bench/seeds-node}"
  [[ -x "$peer/bench.sh" ]] || { echo "bench-edge: Node peer not found at $peer" >&2; exit 1; }
  echo "Node peer (gateway-tuned), same knobs:"
  TARGETS=gateway-tuned RUNS="$RUNS" THREADS="$THREADS" CONNS="$CONNS" DURATION="$DURATION" WARMUP="$WARMUP" \
    "$peer/bench.sh" | grep -E '^gateway-tuned|^\|'
fi
