#!/usr/bin/env bash
# The pages' acceptance test in a real browser (Debian's Chromium through playwright-core):
#   gateway/scripts/with-system.sh web/tests/run.sh      (appends the edge URL)
#   web/tests/run.sh http://127.0.0.1:8080               (ADMIN_LOGIN/ADMIN_PASSWORD set)
# Env: CHROMIUM (default /usr/bin/chromium), WEB_TEST_OUT (screenshots; default web/tests/out),
# POLYSHOP_DATA_DIR + POLYSHOP_NATS_EMBEDDED_PORT (with-system.sh sets them; to publish the
# poison event that makes a dead letter).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
web="$(cd "$here/.." && pwd)"
root="$(cd "$web/.." && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  echo "browser tests: chromium not found: the storefront and console were NOT covered"
  exit 0
fi
export EDGE_URL="${1:?usage: run.sh <edge base URL>}"
export PATH="$root/.tools/bin:$PATH"
cd "$web"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --silent --no-audit --no-fund
fi
command -v buf >/dev/null || { echo "browser tests: buf not found (just tools)" >&2; exit 1; }
rm -rf gen
buf generate "$root/proto" --template buf.gen.yaml
# The test's own generated client, bundled for Node.
mkdir -p node_modules/.cache/polyshop-web-tests
npx --no-install esbuild tests/client.ts --bundle --platform=node --format=esm --target=node18 \
  --outfile=node_modules/.cache/polyshop-web-tests/client.mjs --log-level=warning
export WEB_TEST_OUT="${WEB_TEST_OUT:-$here/out}"
mkdir -p "$WEB_TEST_OUT"
exec node tests/browser.mjs
