#!/usr/bin/env bash
# The caller's profile (user, last five orders, each item's product name) through the edge:
# one GraphQL query against the three JSON requests that fetch the same data, on the same
# system in one session, in rounds alternating GraphQL / JSON as ABBA so machine drift cancels.
#   gateway/scripts/with-system.sh gateway/scripts/bench-graphql.sh   (what `just bench-graphql` runs)
# Seeds three products with stock and five orders of two items for one customer, checks both
# forms answer, then prints each run, the median req/s of each side, and profiles/s (JSON
# needs three requests per profile). Run the edge with rate limits lifted (with-system.sh does).
# Env: ADMIN_PASSWORD (with-system.sh sets it), THREADS (2), CONNS (32), DURATION (10s),
# WARMUP (3s), ROUNDS (2: four runs a side).
set -euo pipefail
url="${1:?usage: bench-graphql.sh <gateway base URL>}"; url="${url%/}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
THREADS="${THREADS:-2}" CONNS="${CONNS:-32}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
ROUNDS="${ROUNDS:-2}"
command -v wrk >/dev/null || { echo "wrk not found: apt-get update && apt-get install -y wrk" >&2; exit 1; }
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
call() { curl -fsS -X "$1" "$url$2" -H 'content-type: application/json' ${4:+-H "authorization: Bearer $4"} ${3:+-d "$3"}; }

admin="$(call POST /v1/auth/login "{\"login\":\"${ADMIN_LOGIN:-admin}\",\"password\":\"$ADMIN_PASSWORD\"}" | json 'd["accessToken"]')"
ids=()
for i in 1 2 3; do
  id="$(call POST /v2/products "{\"requestId\":\"gql-bench-$i\",\"name\":\"Bench product $i\",\"category\":\"bench\",\"prices\":[{\"amountMinor\":\"$((1000 + i))\",\"currencyCode\":\"EUR\"}],\"active\":true}" "$admin" | json 'd["product"]["productId"]')"
  call PUT "/v1/stock/$id" '{"quantityOnHand":100000}' "$admin" >/dev/null
  ids+=("$id")
done
user="gqlbench$(date +%s%N | tail -c 9)"
user_id="$(call POST /v1/users "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"bench password 123\"}" | json 'd["user"]["userId"]')"
token="$(call POST /v1/auth/login "{\"login\":\"$user\",\"password\":\"bench password 123\"}" | json 'd["accessToken"]')"
address='"shippingAddress":{"recipient":"B","line1":"Main St 1","city":"Berlin","postalCode":"10115","countryCode":"DE"},"paymentMethodToken":"tok_visa"'
for n in 1 2 3 4 5; do
  a="${ids[$((n % 3))]}" b="${ids[$(((n + 1) % 3))]}"
  call POST /v1/orders "{\"idempotencyKey\":\"gql-bench-$n\",\"items\":[{\"productId\":\"$a\",\"quantity\":1},{\"productId\":\"$b\",\"quantity\":1}],$address}" "$token" >/dev/null
done
products="$(IFS=,; echo "${ids[*]}")"
export WRK_TOKEN="$token" WRK_USER_ID="$user_id" WRK_PRODUCTS="$products"

# Both forms answer the same orders before anything is measured.
q="{\"query\":\"query(\$me: String) { getUser(userId: \$me) { user { orders(pageSize: 5) { orderId items { product { name } } } } } }\",\"variables\":{\"me\":\"$user_id\"}}"
gql="$(call POST /graphql "$q" "$token" | json 'len(d["data"]["getUser"]["user"]["orders"])')"
rest="$(call GET "/v1/orders?pageSize=5" "" "$token" | json 'len(d["orders"])')"
[[ "$gql" == 5 && "$rest" == 5 ]] || { echo "bench-graphql: expected 5 orders, GraphQL $gql, JSON $rest" >&2; exit 1; }

run() { # side
  local mode="$1"
  WRK_MODE="$mode" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$here/bench-graphql.lua" "$url" >/dev/null
  local line
  line="$(WRK_MODE="$mode" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$here/bench-graphql.lua" "$url" | grep '^RESULT ')"
  echo "$mode $line" | tee -a "$out/$mode"
}
echo "wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS ABBA rounds, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  run graphql; run json; run json; run graphql
done

python3 - "$out" <<'PY'
import pathlib, re, statistics, sys
out = pathlib.Path(sys.argv[1])
def side(name):
    rows = [l for l in (out / name).read_text().splitlines()]
    rps = statistics.median(float(re.search(r"rps=([\d.]+)", l).group(1)) for l in rows)
    p99 = statistics.median(int(re.search(r"p99_us=(\d+)", l).group(1)) for l in rows)
    bad = sum(int(re.search(r"non2xx=(\d+)", l).group(1)) for l in rows)
    return rps, p99, bad
g, j = side("graphql"), side("json")
print(f"GraphQL: median {g[0]:,.0f} req/s = {g[0]:,.0f} profiles/s, p99 {g[1]:,} us, non-2xx {g[2]}")
print(f"JSON:    median {j[0]:,.0f} req/s = {j[0] / 3:,.0f} profiles/s (3 requests each), p99 {j[1]:,} us, non-2xx {j[2]}")
print(f"profiles/s GraphQL / JSON: {g[0] / (j[0] / 3):.2f}")
PY
