#!/usr/bin/env bash
# Generates a TypeScript client from proto/ and drives the edge with it over grpc-web:
#   gateway/tests/ts/run.sh http://127.0.0.1:8080
# Env: ADMIN_LOGIN + ADMIN_PASSWORD (to create a product and stock when the catalog is empty),
# SKIP_ORDER=1 (stop after login and the catalog, when the order service is not running).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export PATH="$root/.tools/bin:$PATH"
cd "$here"
command -v buf >/dev/null || { echo "ts client: buf not found (just tools)" >&2; exit 1; }
# Again when package-lock.json changed since (a dependency was added, e.g. @bufbuild/protovalidate).
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm install --silent --no-audit --no-fund
fi
rm -rf gen
buf generate "$root/proto" --template buf.gen.yaml
EDGE_URL="${1:?usage: run.sh <gateway base URL>}" npx tsx client.ts
