#!/usr/bin/env bash
# Fails when the committed web/dist is not what web/build.sh makes from the sources now
# (CI runs it): rebuilds into a temporary directory and compares every file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/build.sh" "$tmp/dist" >/dev/null
if ! diff -r "$here/dist" "$tmp/dist" >"$tmp/diff" 2>&1; then
  echo "web check: web/dist differs from a fresh build of web/src and proto/:" >&2
  grep -E '^(Only in|Files|diff)' "$tmp/diff" | sed 's/^/  /' >&2 || head -20 "$tmp/diff" >&2
  echo "web check: run web/build.sh and commit web/dist" >&2
  exit 1
fi
echo "web check: web/dist matches the sources"
