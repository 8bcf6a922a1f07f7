#!/usr/bin/env python3
"""`just bench`: every benchmark of the project and its peers in one run, interleaved round by
round so that a machine changing speed moves both sides of every ratio alike.

Each round runs these parts, on a fresh system each (the order reverses every other round,
so no part always runs right after another's teardown):

  edge       wrk, authenticated GET /v1/products/{id} through the edge (bench-edge.sh)
  node       the same through the tuned Node gateway (../shared/bench/seeds-node, gateway-tuned)
  ceiling    the same against the axum one-hop ceiling (../shared/bench/axum-ceiling)
  orders     CreateOrder, closed loop, SQLite (bench_orders), with the CPU per order
  postgres   the same with every service on PostgreSQL (NOT covered without a server)
  notify     CreateOrder at a fixed rate (NOTIFY_RATE, 300/s): event -> notification stored
  load       `polyshop load` with its default mix at LOAD_RATE journeys/s (100) for 20 s
  start      cold start to ready, then every process's RSS after IDLE_SECONDS (5) idle

then the growth runs once (bench_growth: list, search and order listing at 10^4..10^6 rows).
Writes report.md and report.json to BENCH_OUT (target/bench/<UTC time>) and prints the table.

Env: ROUNDS (3), PARTS (all of the above and `growth`, comma-separated), POLYSHOP_BIN and
BENCH_EXAMPLES (the release binaries, as `just bench` builds them), POSTGRES_URL,
PEER_DIR (../shared/bench beside the project), BENCH_GROWTH_SIZES.
"""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "gateway" / "scripts"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = Path(os.environ.get("POLYSHOP_BIN", TARGET / "release" / "polyshop"))
EXAMPLES = Path(os.environ.get("BENCH_EXAMPLES", TARGET / "release" / "examples"))
PEERS = Path(os.environ.get("PEER_DIR", ROOT.parent / "shared" / "bench"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ALL_PARTS = ["edge", "node", "ceiling", "orders", "postgres", "notify", "load", "start"]
PARTS = os.environ.get("PARTS", ",".join(ALL_PARTS + ["growth"])).split(",")
NOTIFY_RATE = os.environ.get("NOTIFY_RATE", "300")
LOAD_RATE = os.environ.get("LOAD_RATE", "100")
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "5"))
OUT = Path(os.environ.get("BENCH_OUT", TARGET / "bench" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
WORK = TARGET / "bench-work"

# The targets: (figure, comparison, bound) — shown beside each figure, never asserted.
TARGETS = {
    "edge_vs_node": (">=", 10.0),
    "edge_vs_ceiling": (">=", 0.5),
    "edge_p99_ms": ("<=", 3.0),
    "edge_rss_mib": ("<=", 24.0),
    "orders_per_s": (">=", 1500.0),
    "orders_p99_ms": ("<=", 50.0),
    "orders_cpu_us": ("<=", 1200.0),
    "postgres_orders_per_s": (">=", 600.0),
    "notify_p99_ms": ("<=", 50.0),
    "cold_start_s": ("<=", 1.0),
    "service_rss_max_mib": ("<=", 15.0),
    "supervisor_rss_mib": ("<=", 8.0),
}


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(command, env=None, timeout=900):
    """Runs `command`; its stdout (stderr goes to the terminal). Raises on failure."""
    merged = {**os.environ, "POLYSHOP_BIN": str(BIN), **(env or {})}
    done = subprocess.run(command, env=merged, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return done.stdout


def number(pattern, text):
    found = re.search(pattern, text)
    if not found:
        raise RuntimeError(f"no /{pattern}/ in:\n{text[-2000:]}")
    return float(found.group(1).replace(",", ""))


# --- the parts: each returns a dict of figures -------------------------------------------

def part_edge():
    out = run([str(SCRIPTS / "with-system.sh"), str(SCRIPTS / "bench-edge.sh")], {"PEER": "0", "RUNS": "1"})
    line = next(l for l in out.splitlines() if l.startswith("edge run"))
    return {
        "edge_rps": number(r"([\d.]+) req/s", line),
        "edge_p50_ms": number(r"p50 +([\d.]+) us", line) / 1000,
        "edge_p99_ms": number(r"p99 +([\d.]+) us", line) / 1000,
        "edge_rss_mib": number(r"RSS ([\d.]+) MiB", line),
        "edge_steal_pct": number(r"steal ([\d.]+)%", line),
    }


def peer_copy():
    """A writable copy of the Node peer with its locked dependencies installed, made once."""
    copy = WORK / "seeds-node"
    if not (copy / "node_modules").is_dir():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(PEERS / "seeds-node", copy, ignore=shutil.ignore_patterns("node_modules", "results"))
        for path in copy.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        copy.chmod(0o755)
        log("npm ci in the Node peer's copy")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=copy, check=True, stdout=subprocess.DEVNULL)
    return copy


def ceiling_bin():
    """The axum ceiling, built once in release with its own lock file."""
    binary = TARGET / "release" / "rust-ceiling"
    if not binary.exists():
        log("building the axum ceiling")
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--manifest-path", str(PEERS / "axum-ceiling" / "Cargo.toml")],
            check=True,
        )
    return binary


def peer_target(target, prefix):
    results = Path(tempfile.mkdtemp(dir=WORK))
    env = {"TARGETS": target, "RUNS": "1", "OUT_DIR": str(results)}
    if target == "ceiling":
        env["CEILING_BIN"] = str(ceiling_bin())
    run([str(peer_copy() / "bench.sh")], env)
    rows = (results / "runs.tsv").read_text().splitlines()
    header, values = rows[0].split("\t"), rows[-1].split("\t")
    row = dict(zip(header, values))
    shutil.rmtree(results, ignore_errors=True)
    return {
        f"{prefix}_rps": float(row["rps"]),
        f"{prefix}_p50_ms": float(row["p50_us"]) / 1000,
        f"{prefix}_p99_ms": float(row["p99_us"]) / 1000,
        # The gateway's and the service's processes (the ceiling is one process: one of them).
        f"{prefix}_rss_mib": sum(float(row.get(k) or 0) for k in ("gw_rss_kb", "svc_rss_kb")) / 1024,
    }


def part_node():
    return peer_target("gateway-tuned", "node")


def part_ceiling():
    return peer_target("ceiling", "ceiling")


def orders_figures(out, prefix):
    line = next(l for l in out.splitlines() if "CreateOrder calls" in l)
    figures = {
        f"{prefix}_per_s": number(r"([\d.]+) orders/s,", line),
        f"{prefix}_p50_ms": number(r"p50 ([\d.]+) ms", line),
        f"{prefix}_p99_ms": number(r"p99 ([\d.]+) ms", line),
        f"{prefix}_not_confirmed": float(sum(1 for l in out.splitlines() if "not confirmed" in l)),
    }
    cpu = next((l for l in out.splitlines() if "CPU per order" in l), None)
    if cpu:
        figures[f"{prefix}_cpu_us"] = number(r"CPU per order ([\d.]+) us", cpu)
        figures[f"{prefix}_cpu_split"] = cpu.split("(", 1)[1].rstrip(")")
    return figures


def part_orders():
    out = run([str(SCRIPTS / "with-system.sh"), str(EXAMPLES / "bench_orders")])
    return orders_figures(out, "orders")


def postgres_reachable():
    url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    if not shutil.which("psql"):
        return False
    return subprocess.run(["psql", f"{url}/postgres", "-qAtc", "select 1"], capture_output=True, check=False).returncode == 0


def part_postgres():
    if not postgres_reachable():
        log("PostgreSQL: no server answering (POSTGRES_URL) or no psql: CreateOrder on PostgreSQL NOT covered")
        return None
    out = run([str(ROOT / "scripts" / "with-postgres.sh"), str(SCRIPTS / "with-system.sh"), str(EXAMPLES / "bench_orders")])
    return orders_figures(out, "postgres_orders")


def part_notify():
    out = run([str(SCRIPTS / "with-system.sh"), str(EXAMPLES / "bench_orders")], {"BENCH_RATE": NOTIFY_RATE})
    figures = orders_figures(out, "notify_orders")
    line = next((l for l in out.splitlines() if "event → notification stored" in l), None)
    if line is None:
        raise RuntimeError(f"no event → notification figures:\n{out[-2000:]}")
    figures.update({
        "notify_events": number(r"stored: ([\d.]+) events", line),
        "notify_p50_ms": number(r"p50 ([\d.]+) ms", line),
        "notify_p99_ms": number(r"p99 ([\d.inf]+) ms", line),
        "notify_within_50ms_pct": number(r"([\d.]+)% within 50 ms", line),
    })
    return figures


def part_load():
    report = Path(tempfile.mkdtemp(dir=WORK))
    run(
        [str(SCRIPTS / "with-system.sh"), str(BIN), "load", "--rate", LOAD_RATE, "--duration", "20s",
         "--report", str(report), "--url"],
        {"DEMO": "1"},
    )
    totals = json.loads((report / "report.json").read_text())["totals"]
    shutil.rmtree(report, ignore_errors=True)
    return {
        "load_rps": totals["requests_per_sec"],
        "load_p50_ms": totals["latency_ms"]["p50"],
        "load_p99_ms": totals["latency_ms"]["p99"],
        "load_errors": float(totals["errors"]),
        "load_dropped": float(totals["dropped"]),
        "load_orders": float(totals["orders_created"]),
    }


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def status_mib(path, field):
    """A `Field:  N kB` line of a /proc file, in MiB; None when the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mib(pid):
    return status_mib(f"/proc/{pid}/status", "VmRSS")


def pss_mib(pid):
    """Proportional set size: pages shared with other processes (the one binary all seven
    run, its libraries) divided among them, so the figures of a system add up."""
    return status_mib(f"/proc/{pid}/smaps_rollup", "Pss")


def children(pid):
    """Processes whose parent is `pid` (spawned from any of its threads)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(stat.parent.name)
    return found


def process_name(pid):
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    args = [a.decode(errors="replace") for a in args if a]
    if "serve" in args:
        return args[args.index("serve") + 1]
    return Path(args[0]).name if args else "?"


def part_start():
    """Cold start: `polyshop up` on an empty data dir to every context ready; then idle RSS."""
    data = Path(tempfile.mkdtemp(dir=WORK))
    ports = free_ports(8)
    env = {**os.environ, "POLYSHOP_DATA_DIR": str(data), "POLYSHOP_LOG": "warn",
           "POLYSHOP_NATS_EMBEDDED_PORT": str(ports[7])}
    env.pop("POLYSHOP_BIN", None)
    for service, port in zip(["USER", "CATALOG", "INVENTORY", "ORDER", "PAYMENT", "NOTIFICATION", "GATEWAY"], ports):
        env[f"POLYSHOP_{service}_LISTEN"] = f"127.0.0.1:{port}"
    ready_url = f"http://127.0.0.1:{ports[6]}/readyz"
    started = time.monotonic()
    with open(data / "up.log", "w") as up_log:
        up = subprocess.Popen([str(BIN), "up", "--no-demo"], env=env, stdout=up_log, stderr=subprocess.STDOUT)
    try:
        while True:
            if up.poll() is not None:
                raise RuntimeError(f"polyshop up exited:\n{(data / 'up.log').read_text()[-2000:]}")
            if time.monotonic() - started > 120:
                raise RuntimeError("not ready after 120 s")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as answer:
                    if b'"status":"ready"' in answer.read():
                        break
            except OSError:
                pass
            time.sleep(0.02)
        cold = time.monotonic() - started
        time.sleep(IDLE_SECONDS)
        figures = {"cold_start_s": cold, "supervisor_rss_mib": rss_mib(up.pid),
                   "supervisor_pss_mib": pss_mib(up.pid)}
        services, shares = [], []
        for child in children(up.pid):
            name, rss, pss = process_name(child), rss_mib(child), pss_mib(child)
            if rss is None or pss is None:
                continue
            figures[f"rss_{name}_mib"] = rss
            figures[f"pss_{name}_mib"] = pss
            if name != "nats-server":
                services.append(rss)
                shares.append(pss)
        figures["service_rss_max_mib"] = max(services)
        figures["service_pss_max_mib"] = max(shares)
        figures["system_rss_mib"] = sum(v for k, v in figures.items() if k.startswith("rss_")) + figures["supervisor_rss_mib"]
        figures["system_pss_mib"] = sum(v for k, v in figures.items() if k.startswith("pss_")) + figures["supervisor_pss_mib"]
        return figures
    finally:
        up.terminate()
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(data, ignore_errors=True)


def part_growth():
    out = run([str(SCRIPTS / "with-system.sh"), str(EXAMPLES / "bench_growth")], timeout=3600)
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])["growth"]


PART_FUNCTIONS = {
    "edge": part_edge, "node": part_node, "ceiling": part_ceiling, "orders": part_orders,
    "postgres": part_postgres, "notify": part_notify, "load": part_load, "start": part_start,
}


# --- the report -----------------------------------------------------------------------------

def median_of(rounds, key):
    values = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
    return (statistics.median(values), min(values), max(values), len(values)) if values else None


def ratio_rounds(rounds, a, b):
    """a/b within each round, so both sides of every ratio come from the same minutes."""
    return [r[a] / r[b] for r in rounds if r.get(a) and r.get(b)]


ROWS = [
    ("Edge GET /v1/products/{id}", "edge_rps", "req/s"),
    ("  p99", "edge_p99_ms", "ms"),
    ("  edge RSS under load", "edge_rss_mib", "MiB"),
    ("Node gateway, tuned (peer)", "node_rps", "req/s"),
    ("  p99", "node_p99_ms", "ms"),
    ("  RSS, gateway + service", "node_rss_mib", "MiB"),
    ("axum one-hop ceiling (peer)", "ceiling_rps", "req/s"),
    ("  p99", "ceiling_p99_ms", "ms"),
    ("Edge / Node", "edge_vs_node", "×"),
    ("Edge / ceiling", "edge_vs_ceiling", "×"),
    ("CreateOrder, SQLite, 32 clients", "orders_per_s", "orders/s"),
    ("  p99", "orders_p99_ms", "ms"),
    ("  CPU per order, all processes", "orders_cpu_us", "µs"),
    ("CreateOrder, PostgreSQL, 32 clients", "postgres_orders_per_s", "orders/s"),
    ("  p99", "postgres_orders_p99_ms", "ms"),
    ("  CPU per order, all processes", "postgres_orders_cpu_us", "µs"),
    (f"Event → notification stored at {NOTIFY_RATE} orders/s, p50", "notify_p50_ms", "ms"),
    ("  p99", "notify_p99_ms", "ms"),
    ("  within 50 ms", "notify_within_50ms_pct", "%"),
    ("  CreateOrder p99 at that rate", "notify_orders_p99_ms", "ms"),
    (f"polyshop load, default mix, {LOAD_RATE} journeys/s", "load_rps", "req/s"),
    ("  p50", "load_p50_ms", "ms"),
    ("  p99", "load_p99_ms", "ms"),
    ("  errors", "load_errors", ""),
    ("Cold start to ready", "cold_start_s", "s"),
    ("Idle RSS, largest service", "service_rss_max_mib", "MiB"),
    ("Idle RSS, supervisor (`up`)", "supervisor_rss_mib", "MiB"),
    ("Idle RSS, whole system", "system_rss_mib", "MiB"),
    ("Idle PSS, largest service", "service_pss_max_mib", "MiB"),
    ("Idle PSS, supervisor", "supervisor_pss_mib", "MiB"),
    ("Idle PSS, whole system", "system_pss_mib", "MiB"),
]


def fmt(value):
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def target_cell(key, value):
    if key not in TARGETS:
        return ""
    op, bound = TARGETS[key]
    met = value >= bound if op == ">=" else value <= bound
    return f"{op} {fmt(bound)}: {'met' if met else 'MISSED'}"


def report(rounds, growth, covered):
    for r in rounds:
        for name, a, b in (("edge_vs_node", "edge_rps", "node_rps"), ("edge_vs_ceiling", "edge_rps", "ceiling_rps")):
            if r.get(a) and r.get(b):
                r[name] = r[a] / r[b]
    lines = [
        f"# Polyshop benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{os.cpu_count()} cores, {len(rounds)} rounds interleaved (order reversed every other round); "
        "median, min–max over the rounds. Ratios are computed within each round, then the median taken.",
        "",
        "| figure | median | min–max | unit | target |",
        "|---|---:|---:|---|---|",
    ]
    summary = {}
    for label, key, unit in ROWS:
        m = median_of(rounds, key)
        if m is None:
            continue
        med, lo, hi, _ = m
        summary[key] = {"median": med, "min": lo, "max": hi}
        lines.append(f"| {label} | {fmt(med)} | {fmt(lo)}–{fmt(hi)} | {unit} | {target_cell(key, med)} |")
    splits = [r.get("orders_cpu_split") for r in rounds if r.get("orders_cpu_split")]
    if splits:
        lines += ["", f"CPU per order by process (µs), SQLite, each round: {'; '.join(splits)}"]
    for kind in ("rss", "pss"):
        keys = sorted({k for r in rounds for k in r if k.startswith(f"{kind}_")})
        if keys:
            lines += ["", f"Idle {kind.upper()} by process (MiB, median): " + ", ".join(
                f"{k[4:-4]} {fmt(median_of(rounds, k)[0])}" for k in keys)]
    if growth:
        cases = [c["case"] for c in growth[0]["cases"]]
        lines += ["", "## Growth (one run, p50 / p99 ms per call)", "",
                  "| case | " + " | ".join(f"{g['rows']:,} rows" for g in growth) + f" | {growth[-1]['rows']:,} / {growth[0]['rows']:,} (p50) |",
                  "|---|" + "---:|" * (len(growth) + 1)]
        for i, case in enumerate(cases):
            cells = [f"{g['cases'][i]['p50_ms']:.2f} / {g['cases'][i]['p99_ms']:.2f}" for g in growth]
            first, last = growth[0]["cases"][i]["p50_ms"], growth[-1]["cases"][i]["p50_ms"]
            lines.append(f"| {case} | " + " | ".join(cells) + f" | {last / first:.2f}× (target ≤ 2×) |")
    missing = [p for p in covered if not covered[p]]
    if missing:
        lines += ["", "NOT covered: " + ", ".join(missing)]
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.md").write_text(text)
    (OUT / "report.json").write_text(json.dumps({"rounds": rounds, "summary": summary, "growth": growth,
                                                  "not_covered": missing}, indent=2))
    return text


def main():
    unknown = [p for p in PARTS if p not in PART_FUNCTIONS and p != "growth"]
    if unknown:
        sys.exit(f"bench: unknown parts {unknown}; known: {ALL_PARTS + ['growth']}")
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (apt-get install -y {tool}; `just bench` installs it as root)")
    WORK.mkdir(parents=True, exist_ok=True)
    parts = [p for p in ALL_PARTS if p in PARTS]
    rounds, covered, failed = [], {p: True for p in parts}, set()
    for n in range(1, ROUNDS + 1):
        order = parts if n % 2 else list(reversed(parts))
        figures = {"round": n}
        for part in order:
            log(f"round {n}/{ROUNDS}: {part}")
            try:
                got = PART_FUNCTIONS[part]()
            except Exception as e:  # one broken part must not cost the whole run's figures
                log(f"{part} FAILED: {e}")
                failed.add(part)
                got = None
            if got is None:
                covered[part] = False
            figures.update(got or {})
        rounds.append(figures)
        (OUT / "partial.json").parent.mkdir(parents=True, exist_ok=True)
        (OUT / "partial.json").write_text(json.dumps(rounds, indent=2))
    growth = []
    if "growth" in PARTS:
        log("growth runs")
        try:
            growth = part_growth()
        except Exception as e:
            log(f"growth FAILED: {e}")
            failed.add("growth")
            covered["growth"] = False
    print(report(rounds, growth, covered))
    log(f"report in {OUT}/report.md and report.json")
    if failed:
        sys.exit(f"bench: FAILED parts: {', '.join(sorted(failed))}")


if __name__ == "__main__":
    main()
