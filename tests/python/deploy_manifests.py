"""Checks deploy/ as it would be applied. Renders each Kubernetes overlay with
`kubectl kustomize` and checks the objects it yields: every process has its Deployment,
Service, headless Service, HPA and PodDisruptionBudget, probes and a non-root pod; each Secret
key reaches only the Deployments that read it; NATS is a three-node JetStream StatefulSet; the
NetworkPolicies allow exactly the calls the code makes; the overlays differ as documented.
Then the compose file and the Dockerfile. Prints each process's environment as JSON so the Rust
test (tests/system/deploy.rs) can feed it to `polyshop admin config`, which rejects unknown
keys and bad values. Schema validation is that test's other half (kubernetes-validate).

Usage: deploy_manifests.py KUBECTL   (the pinned one `just tools` puts in .tools/bin)

Secret references become placeholders of the right shape (a PostgreSQL URL, a password)."""

import ipaddress
import json
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMESPACE = "polyshop"
PROCESSES = {
    "user": 50051,
    "catalog": 50052,
    "inventory": 50053,
    "order": 50054,
    "payment": 50055,
    "notification": 50056,
    "gateway": 8080,
}
CONTEXTS = [p for p in PROCESSES if p != "gateway"]
OVERLAYS = ["dev", "prod"]
PLACEHOLDER = {
    "polyshop-db": "postgres://placeholder@db:5432/polyshop",
    "polyshop-admin": "placeholder",
    "polyshop-nats-users": "placeholder-password",
}
# (Secret, key) -> the only workloads that may read it: a context's database URL in that
# context; the user-token key and the admin password in the user service (it signs and
# bootstraps); a context's own service-token key in that context alone (the others verify its
# tokens by the public key in the `polyshop-service-trust` ConfigMap), never in the edge.
SECRET_READERS = {
    **{("polyshop-db", c): {c} for c in CONTEXTS},
    **{(f"polyshop-service-key-{c}", "service-ed25519.pem"): {c} for c in CONTEXTS},
    ("polyshop-admin", "password"): {"user"},
    ("polyshop-user-token-key", "user-ed25519.pem"): {"user"},
    # Each process's NATS password in that process and in the NATS nodes that check it.
    **{("polyshop-nats-users", p): {p, "nats"} for p in PROCESSES},
    ("polyshop-nats-users", "admin"): {"nats"},
}
NATS_IMAGE = re.compile(r"^nats:2\.11\.\d+-alpine$")


def fail(message):
    print(f"deploy: {message}", file=sys.stderr)
    sys.exit(1)


def render(kubectl, overlay):
    path = ROOT / "deploy/k8s/overlays" / overlay
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"`kubectl kustomize {path}` failed: {out.stderr}")
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def get(objs, kind, name, where):
    return objs.get((kind, name)) or fail(f"{where}: no {kind} {name}")


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def resolve_env(objs, c, where):
    """The container's environment: envFrom ConfigMaps, then env; Secrets as placeholders."""
    env = {}
    for source in c.get("envFrom", []):
        ref = source.get("configMapRef") or fail(f"{where}: envFrom other than a ConfigMap")
        env.update(get(objs, "ConfigMap", ref["name"], where)["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            env[e["name"]] = PLACEHOLDER[e["valueFrom"]["secretKeyRef"]["name"]]
    return env


def secrets_read(workload):
    """Every (Secret, key) the pod gets, through env or volumes; `*` for a whole Secret."""
    pod = workload["spec"]["template"]["spec"]
    found = set()
    for c in pod["containers"]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found.add((ref["name"], ref["key"]))
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                found.add((source["secretRef"]["name"], "*"))
    secrets = []
    for v in pod.get("volumes", []):
        if "secret" in v:
            secrets.append((v["secret"]["secretName"], v["secret"].get("items")))
        for source in v.get("projected", {}).get("sources", []):
            if "secret" in source:
                secrets.append((source["secret"]["name"], source["secret"].get("items")))
    for name, items in secrets:
        found |= {(name, i["key"]) for i in items} if items else {(name, "*")}
    return found


def mounted_files(workload):
    """Paths of the files Secret and projected volumes put in the container."""
    pod = workload["spec"]["template"]["spec"]
    files = {}
    for v in pod.get("volumes", []):
        secrets = [v["secret"]] if "secret" in v else []
        secrets += [s["secret"] for s in v.get("projected", {}).get("sources", []) if "secret" in s]
        files[v["name"]] = [i["path"] for s in secrets for i in s.get("items", [])]
    return {
        f"{m['mountPath']}/{path}" for m in container(workload).get("volumeMounts", []) for path in files.get(m["name"], [])
    }


def check_process(objs, name, port, where):
    where = f"{where} {name}"
    d = get(objs, "Deployment", name, where)
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    selector = d["spec"]["selector"]["matchLabels"]
    if any(pod_labels.get(k) != v for k, v in selector.items()):
        fail(f"{where}: the Deployment's selector does not select its pods")
    if "replicas" in d["spec"]:
        fail(f"{where}: the Deployment sets replicas, which fights its HPA on every apply")
    pod = d["spec"]["template"]["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        fail(f"{where}: the pod may run as root")
    c = container(d)
    if c["args"] != ["serve", name]:
        fail(f"{where} runs {c['args']}")
    if [p["containerPort"] for p in c["ports"]] != [port]:
        fail(f"{where} does not expose {port}")
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in c:
            fail(f"{where} has no {probe}")
    # The health model (docs/operating.md, "Health"): liveness asks only that the process
    # answers, readiness its critical dependencies; a liveness probe on readiness would restart
    # every replica during a database or broker outage.
    if name == "gateway":
        if c["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
            fail(f"{where}'s readiness probe is not /readyz")
        if c["livenessProbe"].get("httpGet", {}).get("path") not in ("/livez", "/healthz"):
            fail(f"{where}'s liveness probe is not /livez")
    else:
        for probe, service in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
            grpc = c[probe].get("grpc", {})
            if grpc.get("port") != port or grpc.get("service") != service:
                fail(f"{where}'s {probe} is not its gRPC health name {service!r} on port {port}")

    for svc_name in (name, f"{name}-headless"):
        s = get(objs, "Service", svc_name, where)
        if s["spec"]["selector"] != selector:
            fail(f"{where}: Service {svc_name} does not select its pods")
    headless = objs[("Service", f"{name}-headless")]["spec"]
    if headless.get("clusterIP") != "None" or headless.get("publishNotReadyAddresses") is not False:
        fail(f"{where}: {name}-headless must be headless (clusterIP None) and list only ready pods")
    if [p["port"] for p in headless["ports"]] != [port]:
        fail(f"{where}: {name}-headless does not serve port {port}")

    hpa = get(objs, "HorizontalPodAutoscaler", name, where)
    target = hpa["spec"]["scaleTargetRef"]
    if hpa["apiVersion"] != "autoscaling/v2" or (target["kind"], target["name"]) != ("Deployment", name):
        fail(f"{where}: the HPA does not scale the Deployment (autoscaling/v2)")
    pdb = get(objs, "PodDisruptionBudget", name, where)
    if pdb["apiVersion"] != "policy/v1" or pdb["spec"]["selector"]["matchLabels"] != selector:
        fail(f"{where}: the PodDisruptionBudget does not cover its pods (policy/v1)")

    env = resolve_env(objs, c, where)
    for key, path in env.items():
        if key.endswith("_KEY_PATH") and path not in mounted_files(d):
            fail(f"{where}: {key} names {path}, which no volume provides")
    if name != "gateway":
        trust = env.get("POLYSHOP_AUTH_SERVICE_TRUST_DIR")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        volume = volumes.get(mounts.get(trust, ""), {})
        if volume.get("configMap", {}).get("name") != "polyshop-service-trust":
            fail(f"{where}: the service trust dir {trust!r} is not the polyshop-service-trust ConfigMap")
    for peer in CONTEXTS:
        url = env.get(f"POLYSHOP_{peer.upper()}_URL", "")
        host = f"{peer}-headless.{NAMESPACE}.svc.cluster.local"
        if url != f"http://{host}:{PROCESSES[peer]}":
            fail(f"{where}: POLYSHOP_{peer.upper()}_URL is {url!r}, not the headless Service {host}")
    if env.get("POLYSHOP_DISCOVERY_MODE") != "dns":
        fail(f"{where}: discovery mode is not dns")
    if env.get("POLYSHOP_NATS_USER") != name:
        fail(f"{where}: connects to NATS as {env.get('POLYSHOP_NATS_USER')!r}, not its own identity")
    nats = env.get("POLYSHOP_NATS_URL")
    if nats != f"nats://nats.{NAMESPACE}.svc.cluster.local:4222":
        fail(f"{where}: POLYSHOP_NATS_URL is {nats!r}, not the nats Service")
    if name != "gateway" and env.get("POLYSHOP_NATS_REPLICAS") != "3":
        fail(f"{where}: the streams it creates would not be copied to all three NATS nodes")
    return env


def check_nats(objs, where):
    where = f"{where} nats"
    sts = get(objs, "StatefulSet", "nats", where)
    spec = sts["spec"]
    if spec["replicas"] != 3:
        fail(f"{where}: {spec['replicas']} nodes, not 3")
    c = container(sts)
    if not NATS_IMAGE.match(c["image"]):
        fail(f"{where}: image {c['image']} is not a pinned nats:2.11.x-alpine")
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    if not claims or not claims <= mounts.keys():
        fail(f"{where}: no PersistentVolumeClaim mounted")
    headless = get(objs, "Service", spec["serviceName"], where)["spec"]
    if headless.get("clusterIP") != "None" or 6222 not in [p["port"] for p in headless["ports"]]:
        fail(f"{where}: {spec['serviceName']} is not a headless Service with the route port 6222")
    if 4222 not in [p["port"] for p in get(objs, "Service", "nats", where)["spec"]["ports"]]:
        fail(f"{where}: the client Service does not serve 4222")
    (config,) = [
        get(objs, "ConfigMap", v["configMap"]["name"], where) for v in spec["template"]["spec"]["volumes"] if "configMap" in v
    ]
    (conf,) = config["data"].values()
    store = re.search(r"store_dir:\s*(\S+)", conf)
    if "jetstream" not in conf or not store or not any(store[1].startswith(mounts[n]) for n in claims):
        fail(f"{where}: JetStream does not store on the PersistentVolumeClaim")
    if not re.search(r"cluster\s*{[^}]*name:\s*\S+", conf):
        fail(f"{where}: the cluster has no name")
    for i in range(3):
        route = f"nats://nats-{i}.{spec['serviceName']}.{NAMESPACE}.svc.cluster.local:6222"
        if route not in conf:
            fail(f"{where}: no route to {route}")
    pdb = get(objs, "PodDisruptionBudget", "nats", where)["spec"]
    if pdb.get("maxUnavailable") != 1:
        fail(f"{where}: the PodDisruptionBudget must allow one node down at a time")


def selects(selector, labels):
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        ok = {
            "In": value in e.get("values", []),
            "NotIn": value not in e.get("values", []),
            "Exists": e["key"] in labels,
            "DoesNotExist": e["key"] not in labels,
        }[op]
        if not ok:
            return False
    return True


class Endpoint:
    """A pod (namespace, labels, named ports) or an address outside the cluster."""

    def __init__(self, name, namespace=None, labels=None, ports=None, ip=None):
        self.name, self.namespace, self.labels = name, namespace, labels or {}
        self.ports, self.ip = ports or {}, ip


def peer_matches(peer, endpoint):
    if "ipBlock" in peer:
        if endpoint.ip is None:
            return False  # pod addresses are not what ipBlock is for
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(endpoint.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": endpoint.namespace}
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif endpoint.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), endpoint.labels)


def port_matches(rule, port, protocol, target):
    if not rule.get("ports"):
        return True
    for p in rule["ports"]:
        if p.get("protocol", "TCP") != protocol:
            continue
        number = target.ports.get(p["port"], p["port"]) if "port" in p else port
        if number == port or (isinstance(number, int) and number <= port <= p.get("endPort", number)):
            return True
    return False


def policy_types(policy):
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress"] + (["Egress"] if "egress" in spec else [])


def allowed(policies, src, dst, port, protocol="TCP"):
    """Whether NetworkPolicies let src open a connection to dst:port."""

    def side(pod, direction, peer_key, other):
        if pod.namespace != NAMESPACE:
            return True  # not governed by this namespace's policies
        governing = [
            p for p in policies if direction in policy_types(p) and selects(p["spec"]["podSelector"], pod.labels)
        ]
        return not governing or any(
            (not rule.get(peer_key) or any(peer_matches(peer, other) for peer in rule[peer_key]))
            and port_matches(rule, port, protocol, dst)
            for p in governing
            for rule in p["spec"].get(direction.lower(), [])
        )

    return side(src, "Egress", "to", dst) and side(dst, "Ingress", "from", src)


def check_network(objs, where):
    policies = [o for (kind, _), o in objs.items() if kind == "NetworkPolicy"]
    deny_all = [
        p for p in policies if p["spec"]["podSelector"] == {} and p["spec"].get("ingress") is None
        and policy_types(p) == ["Ingress"]
    ]
    if not deny_all:
        fail(f"{where}: no default-deny ingress NetworkPolicy")

    def pod(kind, name):
        w = objs[(kind, name)]
        ports = {p["name"]: p["containerPort"] for p in container(w)["ports"] if "name" in p}
        return Endpoint(name, NAMESPACE, w["spec"]["template"]["metadata"]["labels"], ports)

    pods = {name: pod("Deployment", name) for name in PROCESSES} | {"nats": pod("StatefulSet", "nats")}
    internet = Endpoint("internet", ip="203.0.113.7")
    database = Endpoint("database", ip="10.200.0.5")
    dns = Endpoint("dns", ip="10.96.0.10")
    monitoring = Endpoint("monitoring", "monitoring", {"app.kubernetes.io/name": "prometheus"})
    expected = {("internet", "gateway", 8080)}
    expected |= {("gateway", c, PROCESSES[c]) for c in CONTEXTS}
    expected |= {("order", c, PROCESSES[c]) for c in ("user", "catalog", "inventory", "payment")}
    expected |= {(p, "user", 50051) for p in PROCESSES if p != "user"}
    expected |= {(c, "nats", 4222) for c in CONTEXTS} | {("nats", "nats", 6222)}
    expected |= {("gateway", "nats", 4222)}  # rate limits shared between edges
    expected |= {("monitoring", p, port) for p, port in PROCESSES.items()}
    sources = {**pods, "internet": internet, "monitoring": monitoring}
    targets = [(name, port) for name, port in PROCESSES.items()] + [("nats", 4222), ("nats", 6222)]
    for s, src in sources.items():
        for d, port in targets:
            if s == d and d != "nats":
                continue  # a process calling itself stays inside the pod
            want = (s, d, port) in expected
            if allowed(policies, src, pods[d], port) != want:
                fail(f"{where}: NetworkPolicies {'deny' if want else 'allow'} {s} -> {d}:{port}")
        if s in pods:
            for proto in ("UDP", "TCP"):
                if not allowed(policies, src, dns, 53, proto):
                    fail(f"{where}: NetworkPolicies deny {s} DNS over {proto}")
            if allowed(policies, src, database, 5432) != (s in CONTEXTS):
                fail(f"{where}: NetworkPolicies get {s}'s access to PostgreSQL wrong")


def check_secrets(objs, where):
    readers = {}
    for (kind, name), o in objs.items():
        if kind in ("Deployment", "StatefulSet"):
            for secret in secrets_read(o):
                readers.setdefault(secret, set()).add(name)
    for secret in sorted(readers.keys() | SECRET_READERS.keys()):
        got, want = readers.get(secret, set()), SECRET_READERS.get(secret, set())
        if got != want:
            fail(f"{where}: Secret {'/'.join(secret)} reaches {sorted(got)}, not {sorted(want)}")


def check_overlay(objs, overlay):
    where = f"k8s/{overlay}"
    for (kind, name), o in objs.items():
        if kind != "Namespace" and o["metadata"].get("namespace") != NAMESPACE:
            fail(f"{where}: {kind} {name} is not in namespace {NAMESPACE}, which the URLs name")
    deployments = [objs[("Deployment", n)] for n in PROCESSES]
    images = {container(d)["image"] for d in deployments}
    hpas = [objs[("HorizontalPodAutoscaler", n)]["spec"] for n in PROCESSES]
    if overlay == "dev":
        if images != {"polyshop:dev"}:
            fail(f"{where}: images {images}, not polyshop:dev")
        if any(container(d).get("imagePullPolicy") != "IfNotPresent" for d in deployments):
            fail(f"{where}: a locally loaded image needs imagePullPolicy IfNotPresent")
        if any(h["minReplicas"] != 1 for h in hpas):
            fail(f"{where}: dev runs one pod per process")
    if overlay == "prod":
        (image,) = images
        tag = image.rpartition(":")[2]
        if "@sha256:" not in image and not re.fullmatch(r"v?\d+\.\d+\.\d+", tag):
            fail(f"{where}: image {image} is not pinned to a release")
        if any(h["minReplicas"] < 2 for h in hpas):
            fail(f"{where}: every process needs at least two pods")
        for n in PROCESSES:
            pdb = objs[("PodDisruptionBudget", n)]["spec"]
            if pdb.get("minAvailable") != 1 or "maxUnavailable" in pdb:
                fail(f"{where}: {n}'s PodDisruptionBudget must keep one pod (minAvailable 1)")
        for d in deployments + [objs[("StatefulSet", "nats")]]:
            name, c = d["metadata"]["name"], container(d)
            r = c.get("resources", {})
            if not {"cpu", "memory"} <= r.get("requests", {}).keys() or "memory" not in r.get("limits", {}):
                fail(f"{where}: {name} lacks CPU and memory requests or a memory limit")
            keys = {t["topologyKey"] for t in d["spec"]["template"]["spec"].get("topologySpreadConstraints", [])}
            if "topology.kubernetes.io/zone" not in keys:
                fail(f"{where}: {name} is not spread across zones")


def k8s(kubectl):
    found = sorted(p.name for p in (ROOT / "deploy/k8s/overlays").iterdir() if p.is_dir())
    if found != sorted(OVERLAYS):
        fail(f"overlays {found}, expected {OVERLAYS}")
    envs, nats_images = {}, set()
    for overlay in OVERLAYS:
        objs = render(kubectl, overlay)
        nats_images.add(container(objs[("StatefulSet", "nats")])["image"])
        check_overlay(objs, overlay)
        for name, port in PROCESSES.items():
            envs[f"k8s-{overlay}/{name}"] = check_process(objs, name, port, f"k8s/{overlay}")
        check_nats(objs, f"k8s/{overlay}")
        check_secrets(objs, f"k8s/{overlay}")
        check_network(objs, f"k8s/{overlay}")
    (nats_image,) = nats_images
    return envs, nats_image


def compose(nats_image):
    doc = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    services = doc["services"]
    routes = {f"nats://nats-{i}:6222" for i in (1, 2, 3)}
    for i in (1, 2, 3):
        node = services.get(f"nats-{i}") or fail(f"no compose service nats-{i}")
        args = " ".join(node["command"])
        given = set(re.search(r"--routes[= ](\S+)", args)[1].split(",")) if "--routes" in args else set()
        if "--jetstream" not in args or given != routes or f"--server_name=nats-{i}" not in args:
            fail(f"compose nats-{i} is not a named JetStream node routing to all three")
        if node["image"] != nats_image:
            fail(f"compose nats-{i} runs {node['image']}, Kubernetes {nats_image}")
    envs = {}
    for name in PROCESSES:
        svc = services.get(name) or fail(f"no compose service {name}")
        if svc["command"] != ["serve", name]:
            fail(f"compose {name} runs {svc['command']}")
        env = {k: str(v) for k, v in svc["environment"].items()}
        env = {k: ("placeholder" if v.startswith("${") else v) for k, v in env.items()}
        if name != "gateway":
            servers = set(env.get("POLYSHOP_NATS_URL", "").split(","))
            if servers != {f"nats://nats-{i}:4222" for i in (1, 2, 3)} or env.get("POLYSHOP_NATS_REPLICAS") != "3":
                fail(f"compose {name} does not use all three NATS nodes with three copies")
        envs[f"compose/{name}"] = env
    return envs


def dockerfile():
    text = (ROOT / "deploy/Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]
    user = re.search(r"^USER\s+(\S+)", final, re.M)
    if not user or user[1] in ("0", "root"):
        fail("the image runs as root")
    check = re.search(r'^HEALTHCHECK .*\n?.*CMD \["([^"]+)"', final, re.M)
    if not check:
        fail("the image has no HEALTHCHECK")
    if not re.search(rf"^COPY (deploy/\S+) {re.escape(check[1])}$", final, re.M):
        fail(f"the HEALTHCHECK runs {check[1]}, which the image does not copy from deploy/")


def main():
    if len(sys.argv) != 2:
        fail("usage: deploy_manifests.py KUBECTL")
    envs, nats_image = k8s(sys.argv[1])
    envs |= compose(nats_image)
    dockerfile()
    print(json.dumps(envs))


main()
