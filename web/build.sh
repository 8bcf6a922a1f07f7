#!/usr/bin/env bash
# Builds the committed bundle: web/dist/{index.html,console.html,assets/{storefront,console}.js,
# assets/app.css}, from src/ and a client generated from ../proto. Deterministic (pinned
# versions in package-lock.json, no source maps, no hashes, no timestamps), so check.sh can
# compare a fresh build with the committed one.
#   web/build.sh [out-dir]     (default: web/dist)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/dist}"
export PATH="$root/.tools/bin:$PATH"
cd "$here"
command -v buf >/dev/null || { echo "web build: buf not found (run: just tools)" >&2; exit 1; }
command -v npm >/dev/null || { echo "web build: npm not found (Node.js 18+ is needed to build the pages; serving them needs only the committed dist/)" >&2; exit 1; }
# Again when package-lock.json changed since the last install.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --silent --no-audit --no-fund
fi
rm -rf gen
buf generate "$root/proto" --template buf.gen.yaml
npx --no-install tsc --noEmit -p .
rm -rf "$out"
mkdir -p "$out/assets"
npx --no-install esbuild src/storefront/main.ts src/console/main.ts \
  --bundle --minify --format=esm --target=es2022 --charset=utf8 --legal-comments=none \
  --outdir="$out/assets" --entry-names='[dir]' --log-level=warning
npx --no-install esbuild src/app.css --minify --outfile="$out/assets/app.css" --log-level=warning
cp src/storefront/index.html "$out/index.html"
cp src/console/console.html "$out/console.html"
echo "web build: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
