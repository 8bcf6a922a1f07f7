"""Checks deploy/: every Polyshop process has a Kubernetes Deployment (probes, ports, keys)
and a Service, and a compose service; prints each one's environment as JSON so the Rust test
can feed it to `polyshop admin config`, which rejects unknown keys and bad values.

Secret references become placeholders of the right shape (a PostgreSQL URL, a password)."""

import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROCESSES = {
    "user": 50051,
    "catalog": 50052,
    "inventory": 50053,
    "order": 50054,
    "payment": 50055,
    "notification": 50056,
    "gateway": 8080,
}
PLACEHOLDER = {"polyshop-db": "postgres://placeholder@db:5432/polyshop", "polyshop-admin": "placeholder"}


def fail(message):
    print(f"deploy: {message}", file=sys.stderr)
    sys.exit(1)


def k8s():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/polyshop.yaml").read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    envs = {}
    for name, port in PROCESSES.items():
        d = deployments.get(name) or fail(f"no Deployment {name}")
        s = services.get(name) or fail(f"no Service {name}")
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        if c["args"] != ["serve", name]:
            fail(f"{name} runs {c['args']}")
        if [p["containerPort"] for p in c["ports"]] != [port]:
            fail(f"{name} does not expose {port}")
        if s["spec"]["selector"] != d["spec"]["selector"]["matchLabels"]:
            fail(f"Service {name} does not select its pods")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                fail(f"{name} has no {probe}")
        if name != "gateway" and c["readinessProbe"]["grpc"]["port"] != port:
            fail(f"{name}'s readiness probe is not its gRPC health")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        if "/keys" not in mounts:
            fail(f"{name} does not mount the keys")
        env = {}
        for e in c["env"]:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            else:
                env[e["name"]] = PLACEHOLDER[e["valueFrom"]["secretKeyRef"]["name"]]
        envs[f"k8s/{name}"] = env
    return envs


def compose():
    doc = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    envs = {}
    for name in PROCESSES:
        svc = doc["services"].get(name) or fail(f"no compose service {name}")
        if svc["command"] != ["serve", name]:
            fail(f"compose {name} runs {svc['command']}")
        env = {k: str(v) for k, v in svc["environment"].items()}
        env = {k: ("placeholder" if v.startswith("${") else v) for k, v in env.items()}
        envs[f"compose/{name}"] = env
    return envs


print(json.dumps({**k8s(), **compose()}))
