// The console's sections, each a pure function of the status document (and the dead letters)
// to DOM: tables with captions and header cells, and the dependency graph as a table plus a
// small SVG.
import {
  BreakerState, DependencyKind, Health,
  type DeadLetter, type GetStatusResponse,
} from "../../gen/polyshop/admin/v1/admin_pb.js";
import { enumLabel, h } from "../shared/dom.js";

type Cell = string | number | bigint | Node;

/** A table with a caption, column headers and rows; the first cell of a row is its header. */
export function table(caption: string, columns: string[], rows: Cell[][], empty = "None."): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty" }, `${caption}: ${empty}`);
  const cell = (c: Cell) => (c instanceof Node ? c : String(c));
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map(([first, ...rest]) => h("tr", {}, h("th", { scope: "row" }, cell(first)), ...rest.map((c) => h("td", {}, cell(c)))))));
}

function badge(ok: boolean, text: string): HTMLElement {
  return h("span", { class: ok ? "badge ok" : "badge bad" }, text);
}

const age = (s: bigint) => (s === 0n ? "—" : s < 60n ? `${s} s` : s < 3600n ? `${s / 60n} min` : `${s / 3600n} h`);

/** Instances by context, with health. */
export function contexts(s: GetStatusResponse): HTMLElement[] {
  const registry = s.registry.map((r) => {
    const row: Cell[] = [r.context, r.total, r.healthy, badge(r.unhealthy === 0 && r.healthy > 0, r.unhealthy === 0 && r.healthy > 0 ? "healthy" : `${r.unhealthy} unhealthy`)];
    return row;
  });
  const t = table("Instances per context", ["Context", "Instances", "Healthy", "State"], registry, "no instance registered");
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    const r = s.registry[i];
    tr.setAttribute("data-context", r.context);
    tr.setAttribute("data-healthy", String(r.unhealthy === 0 && r.healthy > 0));
  });
  const instances = s.instances.map((i) => [
    i.context, i.address, i.version || "—", i.zone || "—",
    badge(i.health === Health.SERVING, enumLabel(Health, i.health)),
    `${i.uptimeSeconds} s`, i.failing.join("; ") || "—",
  ]);
  return [t, table("Instances", ["Context", "Address", "Version", "Zone", "Health", "Up", "Failing"], instances)];
}

/** The dependency graph: a table (the accessible form) and a circle of contexts in SVG. */
export function dependencies(s: GetStatusResponse): HTMLElement[] {
  const kind = (k: DependencyKind) => (k === DependencyKind.CALLS ? "calls" : k === DependencyKind.CONSUMES ? "consumes events of" : "depends on");
  const rows = s.dependencies.map((d) => [d.from, kind(d.kind), d.to]);
  const names = [...new Set(s.dependencies.flatMap((d) => [d.from, d.to]))].sort();
  const size = 360, r = 130, c = size / 2;
  const at = new Map(names.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, names.length) - Math.PI / 2;
    return [n, [c + r * Math.cos(a), c + r * Math.sin(a)]] as const;
  }));
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text) e.textContent = text;
    return e;
  };
  const svg = el("svg", { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img", "aria-label": "Dependency graph, drawn; the table beside it lists the same edges", class: "graph" });
  const defs = el("defs", {});
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
  marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "currentColor" }));
  defs.append(marker);
  svg.append(defs);
  for (const d of s.dependencies) {
    const [x1, y1] = at.get(d.from)!, [x2, y2] = at.get(d.to)!;
    const len = Math.hypot(x2 - x1, y2 - y1) || 1, pad = 28;
    svg.append(el("line", {
      x1: x1 + ((x2 - x1) * pad) / len, y1: y1 + ((y2 - y1) * pad) / len,
      x2: x2 - ((x2 - x1) * pad) / len, y2: y2 - ((y2 - y1) * pad) / len,
      class: d.kind === DependencyKind.CONSUMES ? "edge consumes" : "edge calls", "marker-end": "url(#arrow)",
    }));
  }
  for (const [n, [x, y]] of at) {
    svg.append(el("circle", { cx: x, cy: y, r: 26, class: "node" }));
    svg.append(el("text", { x, y: y + 4, "text-anchor": "middle", class: "label" }, n));
  }
  const figure = h("figure", { class: "graph-figure" });
  figure.append(svg as unknown as Node, h("figcaption", {}, "Solid: calls RPCs. Dashed: consumes events."));
  return [h("div", { class: "split" }, table("Dependencies", ["Context", "How", "Depends on"], rows), figure)];
}

/** Circuit breakers with their counts. */
export function breakers(s: GetStatusResponse): HTMLElement[] {
  const rows = s.breakers.map((b) => [
    `${b.caller} → ${b.upstream}`, b.instance, badge(b.state === BreakerState.CLOSED, enumLabel(BreakerState, b.state)),
    b.calls, b.successes, b.failures, b.rejections,
  ]);
  return [table("Circuit breakers", ["Caller → upstream", "Instance", "State", "Calls", "Successes", "Failures", "Rejections"], rows)];
}

/** Dead letters: counts per stream, then each letter with its own redrive button. */
export function deadLetters(s: GetStatusResponse, letters: DeadLetter[], redrive: (seq?: bigint) => void): HTMLElement[] {
  const total = s.deadLetters.reduce((n, d) => n + d.count, 0n);
  const counts = s.deadLetters.map((d) => [d.stream, d.count, age(d.oldestAgeSeconds)]);
  const rows = letters.map((l) => [
    String(l.sequence), l.subject, l.consumer, l.reason, l.eventId,
    h("button", { type: "button", class: "redrive", "data-sequence": String(l.sequence), "aria-label": `Redrive dead letter ${l.sequence}`, onclick: () => redrive(l.sequence) }, "Redrive"),
  ]);
  const list = table("Dead letters, oldest first", ["Sequence", "Subject", "Consumer", "Reason", "Event id", "Action"], rows);
  list.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("data-event-id", letters[i].eventId));
  return [
    h("p", {}, "Dead letters in all: ", h("strong", { id: "dead-letter-total", "data-count": String(total) }, String(total)), " ",
      total > 0n ? h("button", { type: "button", id: "redrive-all", onclick: () => redrive() }, "Redrive all") : ""),
    table("Dead letters per stream", ["Stream", "Count", "Oldest"], counts),
    list,
  ];
}

/** Outbox backlog, consumer lag, sagas. */
export function flow(s: GetStatusResponse): HTMLElement[] {
  const sagas = s.sagas;
  return [
    table("Outbox backlog", ["Service", "Unsent rows", "Oldest unsent"], s.outbox.map((o) => [o.service, o.backlog, age(o.oldestAgeSeconds)])),
    table("Consumer lag", ["Consumer", "Stream", "Pending", "Awaiting ack", "Redelivered"], s.consumers.map((c) => [c.durable, c.stream, c.pending, c.ackPending, c.redelivered])),
    table("Order sagas by state", ["State", "Count"], (sagas?.counts ?? []).map((c) => [c.state, c.count])),
    h("p", {}, `Oldest saga still running: ${age(sagas?.oldestPendingAgeSeconds ?? 0n)}.`),
  ];
}

/** Feature flags, each a switch; an override can be cleared. */
export function flags(s: GetStatusResponse, set: (name: string, on: boolean) => void, clear: (name: string) => void): HTMLElement[] {
  const items = s.flags.map((f) => {
    const id = `flag-${f.name}`;
    const inForce = f.instancesReporting > 0 && f.instancesInForce === f.instancesReporting;
    return h("li", { "data-flag": f.name, "data-enabled": String(f.enabled), "data-overridden": String(f.overridden), "data-in-force": String(inForce) },
      h("input", { type: "checkbox", role: "switch", id, checked: f.enabled, onchange: (e: Event) => set(f.name, (e.target as HTMLInputElement).checked) }),
      h("label", { for: id }, f.name),
      h("span", { class: "meta" }, f.overridden ? " (overridden by an operator)" : " (as configured)"),
      h("span", { class: "meta" }, `; in force at ${f.instancesInForce} of ${f.instancesReporting} instances reading it`),
      f.overridden ? h("button", { type: "button", id: `clear-${f.name}`, onclick: () => clear(f.name) }, `Use configured value for ${f.name}`) : "");
  });
  return [items.length ? h("ul", { class: "flags" }, ...items) : h("p", {}, "No flags.")];
}

/** Runtime config versions and per-operation statistics. */
export function config(s: GetStatusResponse): HTMLElement[] {
  const ops = [...s.operations].sort((a, b) => Number(b.count - a.count)).slice(0, 15);
  const ms = (us: bigint) => `${(Number(us) / 1000).toFixed(1)} ms`;
  return [
    table("Config versions", ["Service", "Version"], s.config.map((c) => [c.service, c.version === 0n ? "0 (never set)" : c.version])),
    table("Busiest operations", ["Operation", "Calls", "Errors", "p50", "p99"], ops.map((o) => [o.operation, o.count, `${(Number(o.errorsPpm) / 10000).toFixed(2)} %`, ms(o.p50Us), ms(o.p99Us)])),
  ];
}
