# Polyshop tasks. `just run` starts the system, `just test` runs every test.
# Tools not on PATH (nats-server, grpcurl, buf, cargo-machete) are provisioned into .tools/bin by
# `just tools`.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

tools_bin := justfile_directory() / ".tools/bin"
venv := justfile_directory() / ".tools/venv"
export PATH := tools_bin + ":" + env_var("PATH")
target_dir := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")

# List the recipes.
default:
    @just --list

# Put nats-server (>= 2.11), grpcurl, buf, cargo-machete and the Python test deps into .tools/ (idempotent).
tools:
    @scripts/tools.sh

# Build every crate.
build: tools
    cargo build --workspace --bins

# Build and start the whole system on embedded defaults (SQLite under ./data, a nats-server child).
run *args: build
    "{{target_dir}}/debug/polyshop" up "$@"

# A cluster on one machine: two instances of every service and edge, a three-node JetStream cluster; PostgreSQL when it answers on 127.0.0.1:5432, else SQLite.
run-cluster *args: build
    #!/usr/bin/env bash
    set -euo pipefail
    if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
      echo "run-cluster: PostgreSQL answers on 127.0.0.1:5432: one database per service there (polyshop_<service>)"
      set -- --postgres postgres://postgres@127.0.0.1:5432/postgres "$@"
    else
      echo "run-cluster: no PostgreSQL on 127.0.0.1:5432: SQLite files under the data dir, shared by each service's instances"
    fi
    exec "{{target_dir}}/debug/polyshop" up --replicas 2 --nats-cluster 3 "$@"

# Mixed shopper journeys against an edge, report in --report DIR (e.g. `just load --rate 100 --duration 20s`); against `just run`, lift the edge's rate limits first (docs/development.md).
load *args:
    cargo build --bin polyshop -p polyshop-cli
    "{{target_dir}}/debug/polyshop" load "$@"

# Every test: unit, service, contract and end-to-end suites, then the TypeScript grpc-web client and the pages in Chromium.
test: tools
    cargo test --workspace --no-fail-fast --exclude polyshop-cli
    # tests/system starts whole systems, eight processes each: one at a time, so each has the cores to itself (two at once, timing checks failed now and then in CI).
    cargo test -p polyshop-cli --no-fail-fast -- --test-threads=1
    @just _ts-client "{{target_dir}}/debug/polyshop"
    @just _web-browser "{{target_dir}}/debug/polyshop"

# Format the code.
fmt:
    cargo fmt --all

# Clippy with warnings denied, and buf lint.
lint: tools
    cargo clippy --workspace --all-targets -- -D warnings
    buf lint

# Dependencies a crate declares but does not use (cargo-machete; exceptions in [package.metadata.cargo-machete]).
machete: tools
    cargo machete

# cargo-deny: licenses, bans and sources from Cargo.lock; advisories when the RustSec database can be fetched (else it says NOT covered).
deny: tools
    scripts/deny.sh

# buf breaking against main (or, on main, against the previous commit) when it has protos.
breaking: tools
    @scripts/buf-breaking.sh

# What CI runs: format check, lints, unused dependencies, cargo-deny, breaking-change check, every test, the API fuzzer.
ci: tools
    cargo fmt --all -- --check
    just lint
    just machete
    just deny
    just breaking
    just web-check
    just test
    POLYSHOP_BIN="{{target_dir}}/debug/polyshop" gateway/scripts/with-system.sh gateway/scripts/fuzz-api.sh

# Render each Kubernetes overlay and validate it offline (kubernetes-validate, strict, Kubernetes 1.30), then the manifest checks.
k8s-check: tools
    #!/usr/bin/env bash
    set -euo pipefail
    for overlay in deploy/k8s/overlays/*/; do
      kubectl kustomize "$overlay" | kubernetes-validate --strict --quiet --kubernetes-version 1.30.0 -
    done
    "{{venv}}/bin/python" tests/python/deploy_manifests.py "{{tools_bin}}/kubectl" >/dev/null
    echo "k8s-check: every overlay renders, validates and passes the manifest checks"

# Generate Python and TypeScript clients from proto/ into gen/ (ignored by git).
gen-clients: tools
    @scripts/gen-clients.sh

# Fuzz the edge's JSON API with schemathesis (fixed seed, bounded examples) against a fresh system.
fuzz-api: build
    gateway/scripts/with-system.sh gateway/scripts/fuzz-api.sh

# Every benchmark and its peers in one run, interleaved round by round (edge vs the Node peer and the axum ceiling, CreateOrder on SQLite and PostgreSQL, event -> notification, load, cold start, idle RSS, growth to 10^6 rows): bench/run.py; report in target/bench/<time>.
bench: tools _wrk
    cargo build --release --bin polyshop --example bench_orders --example bench_growth -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" BENCH_EXAMPLES="{{target_dir}}/release/examples" CARGO_TARGET_DIR="{{target_dir}}" bench/run.py

# wrk (Debian's package) for the benchmarks: installed when this is a root Debian box without it.
_wrk:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v wrk >/dev/null && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "bench: installing wrk (apt-get)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
      echo "bench: wrk not found: apt-get install -y wrk" >&2; exit 1
    fi

# wrk against the edge: authenticated GET /v1/products/{id}, release build (a benchmark, not a test).
bench-edge: tools
    cargo build --release --bin polyshop -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" gateway/scripts/with-system.sh gateway/scripts/bench-edge.sh

# The edge with one setting changed against the defaults, interleaved in ABBA order, release build: e.g. `just bench-edge-ab POLYSHOP_GATEWAY_VALIDATE_REQUESTS=false`.
bench-edge-ab +settings: tools
    cargo build --release --bin polyshop -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" gateway/scripts/bench-edge-ab.sh {{settings}}

# The profile query through /graphql against the same data through the JSON routes, ABBA rounds, release build.
bench-graphql: tools
    cargo build --release --bin polyshop -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" gateway/scripts/with-system.sh gateway/scripts/bench-graphql.sh

# CreateOrder throughput and latency on SQLite, release build (a benchmark, not a test).
bench-orders: tools
    cargo build --release --bin polyshop --example bench_orders -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" gateway/scripts/with-system.sh "{{target_dir}}/release/examples/bench_orders"

# bench-orders on PostgreSQL: a fresh database per service at POSTGRES_URL (default: the local server), its CPU per order as `postgres`.
bench-orders-postgres: tools
    cargo build --release --bin polyshop --example bench_orders -p polyshop-cli
    POLYSHOP_BIN="{{target_dir}}/release/polyshop" scripts/with-postgres.sh gateway/scripts/with-system.sh "{{target_dir}}/release/examples/bench_orders"

# bench-orders on the cluster layout (`up --replicas 2 --nats-cluster 3`) on PostgreSQL, the orders spread over both order instances.
bench-orders-cluster: tools
    cargo build --release --bin polyshop --example bench_orders -p polyshop-cli
    UP_ARGS="--replicas 2 --nats-cluster 3" POLYSHOP_BIN="{{target_dir}}/release/polyshop" scripts/with-postgres.sh gateway/scripts/with-system.sh "{{target_dir}}/release/examples/bench_orders"

# A TypeScript grpc-web client generated from proto/ against a fresh system (Node >= 18).
test-ts: build
    @just _ts-client "{{target_dir}}/debug/polyshop"

# Rebuild the storefront and console bundle (web/dist, committed) from web/src and proto/ (Node >= 18).
web-build: tools
    web/build.sh

# Check that the committed web/dist is what web/src and proto/ build to; says so when Node is missing.
web-check: tools
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v npm >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] < 18 ? 1 : 0)' 2>/dev/null; then
      echo "web-check: Node >= 18 with npm not found: the committed web bundle was NOT checked against its sources"
      exit 0
    fi
    web/check.sh

# The storefront and console in headless Chromium against a fresh system (Node >= 18, Debian's chromium).
test-web: build
    @just _web-browser "{{target_dir}}/debug/polyshop"

# The pages' browser test against a fresh system run by the given binary; says so when Node or Chromium is missing.
_web-browser bin:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v npm >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] < 18 ? 1 : 0)' 2>/dev/null; then
      echo "test-web: Node >= 18 with npm not found: the storefront and console were NOT covered"
      exit 0
    fi
    POLYSHOP_BIN="{{bin}}" gateway/scripts/with-system.sh web/tests/run.sh

# The TypeScript client against a fresh system run by the given binary; says so when Node is missing.
_ts-client bin:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v npm >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] < 18 ? 1 : 0)' 2>/dev/null; then
      echo "test-ts: Node >= 18 with npm not found: the TypeScript grpc-web client was NOT covered"
      exit 0
    fi
    POLYSHOP_BIN="{{bin}}" gateway/scripts/with-system.sh gateway/tests/ts/run.sh
