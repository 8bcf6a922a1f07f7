#!/usr/bin/env bash
# Runs a command with every service on a fresh PostgreSQL database of its own, e.g.
#   scripts/with-postgres.sh gateway/scripts/with-system.sh target/release/examples/bench_orders
# Creates (dropping any left over) polyshop_bench_<service> on the server at POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432, the local server with trust auth) and exports
# POLYSHOP_<SERVICE>_DATABASE_URL for each. Needs psql; says so and fails without a server.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: with-postgres.sh <command> [args...]" >&2; exit 1; }
base="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
base="${base%/}"
command -v psql >/dev/null || { echo "with-postgres: psql not found (apt-get install postgresql-client)" >&2; exit 1; }
psql "$base/postgres" -qAtc 'select 1' >/dev/null 2>&1 ||
  { echo "with-postgres: no PostgreSQL answering at $base: NOT run" >&2; exit 1; }
for service in user catalog inventory order payment notification; do
  db="polyshop_bench_$service"
  psql "$base/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  export "POLYSHOP_${service^^}_DATABASE_URL=$base/$db"
done
echo "with-postgres: every service on its own database at $base" >&2
exec "$@"
