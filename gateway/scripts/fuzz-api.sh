#!/usr/bin/env bash
# Property-based API fuzzing of the edge with schemathesis, driven by its own /openapi.json.
#   gateway/scripts/fuzz-api.sh http://127.0.0.1:8080
# Fails on any 5xx, on any response that breaks the document (status, content type,
# headers, schema) and on a schema-validation mismatch (data the document allows refused as
# invalid; settings in gateway/scripts/schemathesis.toml). Fixed seed and a bounded number of examples per operation, so a run is
# reproducible and takes a few minutes.
#
# Env: SEED (20261123), MAX_EXAMPLES (20), WORKERS (2), MODE (positive), TOKEN (a bearer token
# sent with every request), LOGIN + PASSWORD (log in through the edge to get TOKEN; without
# either, a fresh customer is signed up and its token used), EXCLUDE_PATH_REGEX (operations to
# leave out, e.g. those of contexts not running), REPORT_DIR ($TMPDIR/polyshop-fuzz-api: JUnit).
# Do not fuzz with an admin token on a system you care about: the fuzzer will happily
# suspend and delete whatever accounts it can reach, its own included.
# schemathesis (4.x) comes from the project venv .tools/venv; it is installed there if missing.
set -euo pipefail

url="${1:?usage: fuzz-api.sh <gateway base URL, e.g. http://127.0.0.1:8080>}"
url="${url%/}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/venv"
st="$venv/bin/schemathesis"

if [[ ! -x "$st" ]]; then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  echo "fuzz-api: installing schemathesis into .tools/venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi

curl -fsS -o /dev/null "$url/healthz" || { echo "fuzz-api: no gateway answering at $url" >&2; exit 1; }

login() {
  curl -fsS -X POST "$url/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\":\"$1\",\"password\":\"$2\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])'
}
token="${TOKEN:-}"
if [[ -z "$token" && -n "${LOGIN:-}" ]]; then
  token="$(login "$LOGIN" "${PASSWORD:?PASSWORD is needed with LOGIN}")"
elif [[ -z "$token" ]]; then
  user="fuzz$(date +%s%N | tail -c 10)"
  curl -fsS -o /dev/null -X POST "$url/v1/users" -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"fuzzing password 1\"}"
  token="$(login "$user" "fuzzing password 1")"
fi

report="${REPORT_DIR:-${TMPDIR:-/tmp}/polyshop-fuzz-api}"
mkdir -p "$report"
# schemathesis and hypothesis keep state in the working directory: keep it out of the repo.
cd "$report"
args=(
  --config-file "$root/gateway/scripts/schemathesis.toml"
  run "$url/openapi.json"
  --url "$url"
  --seed "${SEED:-20261123}"
  --max-examples "${MAX_EXAMPLES:-20}"
  --workers "${WORKERS:-2}"
  --mode "${MODE:-positive}"
  --phases examples,coverage,fuzzing
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
  --generation-database none
  --request-timeout 15
  --no-color
  --report junit
  --report-dir "$report"
)
[[ -n "$token" ]] && args+=(--header "Authorization: Bearer $token")
[[ -n "${EXCLUDE_PATH_REGEX:-}" ]] && args+=(--exclude-path-regex "$EXCLUDE_PATH_REGEX")

exec "$st" "${args[@]}"
