#!/usr/bin/env bash
# The edge with one setting changed against the edge without (`just bench-edge-ab VAR=value`), interleaved round by round so
# machine drift cancels out: each round starts a fresh system (with-system.sh) for A and one
# for B, in ABBA order, and runs bench-edge.sh once on each (PEER=0). Prints every run and the median req/s
# and p99 of each side with B/A.
#   gateway/scripts/bench-edge-ab.sh POLYSHOP_GATEWAY_VALIDATE_REQUESTS=false
# A is the default configuration; B adds the given VAR=value pairs.
# Env: ROUNDS (3), POLYSHOP_BIN (the release binary), and bench-edge.sh's knobs.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: bench-edge-ab.sh VAR=value... (the B side's settings)" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS="${ROUNDS:-3}"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
# The edge's rate limits and per-address cap out of the way: wrk is one client.
export POLYSHOP_GATEWAY_RATE_PER_SEC=1000000 POLYSHOP_GATEWAY_RATE_BURST=1000000
export POLYSHOP_GATEWAY_MAX_CONCURRENT_PER_IP=0 POLYSHOP_LOG=warn

run() { # side, then env pairs
  local side="$1"; shift
  env "$@" PEER=0 RUNS=1 "$here/with-system.sh" "$here/bench-edge.sh" 2>/dev/null |
    grep '^edge run' | sed "s/^edge run 1/$side/" | tee -a "$out/$side"
}

# ABBA order: whichever side runs first in a round (on a machine still settling from the
# last teardown) alternates.
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  if (( round % 2 )); then run A; run B "$@"; else run B "$@"; run A; fi
done

python3 - "$out" "$*" <<'EOF'
import pathlib, re, statistics, sys
out, b_env = pathlib.Path(sys.argv[1]), sys.argv[2]
def runs(side):
    rows = []
    for line in (out / side).read_text().splitlines():
        rps = float(re.search(r"([\d.]+) req/s", line).group(1))
        p99 = float(re.search(r"p99 +([\d.]+) us", line).group(1))
        rows.append((rps, p99))
    return rows
a, b = runs("A"), runs("B")
ma, mb = statistics.median(r for r, _ in a), statistics.median(r for r, _ in b)
pa, pb = statistics.median(p for _, p in a), statistics.median(p for _, p in b)
print(f"A (defaults):  median {ma:,.0f} req/s, p99 {pa:,.0f} us over {len(a)} runs")
print(f"B ({b_env}):  median {mb:,.0f} req/s, p99 {pb:,.0f} us over {len(b)} runs")
print(f"A/B req/s: {ma / mb:.3f}  ({(ma / mb - 1) * 100:+.1f}% for A)")
EOF
