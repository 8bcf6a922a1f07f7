#!/usr/bin/env bash
# Generates Python (grpcio) and TypeScript (protobuf-es) clients from proto/ into gen/ with
# buf.gen.yaml. The TypeScript plugin comes from npm, so that half needs Node.js.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v npm >/dev/null 2>&1; then
  if [ ! -x .tools/node/node_modules/.bin/protoc-gen-es ]; then
    npm install --silent --prefix .tools/node @bufbuild/protoc-gen-es@2 @bufbuild/protobuf@2 >/dev/null
  fi
  template=buf.gen.yaml
else
  echo "gen-clients: npm not found; generating Python only" >&2
  template=buf.gen.python.yaml
fi
rm -rf gen
buf generate --template "$template"
echo "gen-clients: wrote $(find gen -type f | wc -l) files under gen/"
