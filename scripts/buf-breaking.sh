#!/usr/bin/env bash
# buf breaking (FILE rules) against main, or, when on main itself, against the previous
# commit, so a submission cannot silently break published contracts. Skipped, saying so,
# when there is no earlier revision with protos.
set -euo pipefail
cd "$(dirname "$0")/.."
branch="$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo main)"
if [ "$branch" != main ] && git rev-parse --verify -q main >/dev/null; then
  against=main
elif git rev-parse --verify -q HEAD~1 >/dev/null; then
  against="$(git rev-parse HEAD~1)"
else
  echo "buf breaking: no earlier revision to compare against; skipped"
  exit 0
fi
if ! git ls-tree -r --name-only "$against" -- proto | grep -q '\.proto$'; then
  echo "buf breaking: $against has no protos; skipped"
  exit 0
fi
buf breaking --against ".git#ref=$against"
echo "buf breaking: no breaking change against $against"
