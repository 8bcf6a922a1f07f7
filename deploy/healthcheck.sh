#!/bin/bash
# The image's HEALTHCHECK. `polyshop` has no probe subcommand and the slim image has neither
# curl nor a gRPC client, so bash's /dev/tcp sends one HTTP/1.1 request to the process this
# container runs: its liveness, /livez (a context serves it on its gRPC port; an answer means
# the server is accepting calls; Kubernetes probes gRPC health `liveness`/`readiness` itself).
# The service comes from the argument, else from PID 1's command line (`polyshop serve X`).
set -euo pipefail

service=${1:-}
if [ -z "$service" ]; then
  mapfile -d '' argv </proc/1/cmdline
  case "${argv[1]:-}" in
    serve) service=${argv[2]:-} ;;
    up) service=gateway ;;
    *) exit 0 ;; # an admin command or a shell: nothing serves here
  esac
fi

case "$service" in
  user) port=50051 ;;
  catalog) port=50052 ;;
  inventory) port=50053 ;;
  order) port=50054 ;;
  payment) port=50055 ;;
  notification) port=50056 ;;
  gateway) port=8080 ;;
  *) echo "healthcheck: unknown service '$service'" >&2; exit 1 ;;
esac
path=/livez

# POLYSHOP_<SERVICE>_LISTEN moves the port; a wildcard address is reached on loopback.
listen_var="POLYSHOP_${service^^}_LISTEN"
listen=${!listen_var:-}
host=127.0.0.1
if [ -n "$listen" ]; then
  port=${listen##*:}
  addr=${listen%:*}
  case "$addr" in
    0.0.0.0 | "[::]" | "") ;;
    \[*\]) host=${addr:1:-1} ;;
    *) host=$addr ;;
  esac
fi

exec 3<>"/dev/tcp/$host/$port"
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
read -r -t 5 status <&3
case "$status" in
  "HTTP/1.1 200"*) exit 0 ;;
  *) echo "healthcheck: $service on $host:$port answered: ${status:-nothing}" >&2; exit 1 ;;
esac
