// The operator console at `/console`: an admin signs in, then one page shows the governance
// status (AdminService.GetStatus + ListDeadLetters), refreshed every few seconds, with the
// operator's actions (redrive, flags). When the API cannot be reached the page says so and
// keeps the last status, greyed, until it answers again.
import { Code, ConnectError } from "@connectrpc/connect";
import { AdminService, BreakerState, type DeadLetter, type GetStatusResponse } from "../../gen/polyshop/admin/v1/admin_pb.js";
import { h, when } from "../shared/dom.js";
import { clearFieldErrors, problemOf, showProblem } from "../shared/errors.js";
import { clientOf, transportWith } from "../shared/rpc.js";
import { Session } from "../shared/session.js";
import * as view from "./view.js";

const REFRESH_MS = 3000;
const session = new Session("polyshop.console.session");
const admin = clientOf(AdminService, transportWith(session.token));
const main = document.getElementById("main")!;
const conn = document.getElementById("conn")!;
const who = document.getElementById("who")!;
let timer: number | undefined;
let downSince: Date | undefined;

function signInForm(message?: string): void {
  clearTimeout(timer);
  who.replaceChildren();
  const box = h("div", { class: "problem", hidden: true });
  const form = h("form", {},
    h("div", { class: "field" }, h("label", { for: "login" }, "Admin login"), h("input", { id: "login", name: "login", autocomplete: "username", required: true })),
    h("div", { class: "field" }, h("label", { for: "password" }, "Password"), h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const v = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).value;
    try {
      await session.login(v("login"), v("password"));
      if (!session.user?.admin) {
        await session.logout();
        return showProblem(box, { ...problemOf(new Error()), message: "This account is not an administrator.", retryable: false, fields: new Map() });
      }
      start();
    } catch (err) {
      const p = problemOf(err);
      if (p.code === Code.Unauthenticated) p.message = "Wrong login or password.";
      showProblem(box, p, () => form.requestSubmit(), form);
    }
  });
  main.replaceChildren(h("h1", {}, "Console sign-in"), message ? h("p", { role: "alert", class: "problem" }, message) : "", box, form);
}

// Sections keep their nodes while their data is unchanged, so a refresh does not move focus.
const sections = new Map<string, { body: HTMLElement; key: string }>();
const json = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));

function section(id: string, title: string, data: unknown, render: () => HTMLElement[]): HTMLElement {
  let s = sections.get(id);
  if (!s) {
    const body = h("div", { class: "section-body" });
    s = { body, key: "" };
    sections.set(id, s);
    main.append(h("section", { id, "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), body));
  }
  const key = json(data);
  if (key !== s.key) {
    const focused = document.activeElement?.id;
    s.body.replaceChildren(...render());
    s.key = key;
    if (focused && s.body.querySelector(`#${CSS.escape(focused)}`)) document.getElementById(focused)?.focus();
  }
  return s.body;
}

const actionBox = h("div", { id: "action-status", role: "status", class: "action" });

async function act(what: string, call: () => Promise<string>): Promise<void> {
  actionBox.textContent = `${what}…`;
  try {
    actionBox.textContent = await call();
  } catch (e) {
    actionBox.textContent = `${what} failed: ${problemOf(e).message}`;
  }
  await refresh();
}

const redrive = (sequence?: bigint) =>
  void act(sequence ? `Redriving dead letter ${sequence}` : "Redriving every dead letter", async () => {
    const r = await admin.redriveDeadLetters(sequence ? { sequence } : {});
    return `Redriven: ${r.redriven} message${r.redriven === 1n ? "" : "s"} republished.`;
  });
const setFlag = (name: string, enabled: boolean) =>
  void act(`Turning ${name} ${enabled ? "on" : "off"}`, async () => {
    const r = await admin.setFlag({ name, enabled });
    return `${name} is now ${r.flag?.enabled ? "on" : "off"} (overridden).`;
  });
const clearFlag = (name: string) =>
  void act(`Clearing the override of ${name}`, async () => {
    const r = await admin.clearFlag({ name });
    return `${name} follows its configuration again: ${r.flag?.enabled ? "on" : "off"}.`;
  });

function render(s: GetStatusResponse, letters: DeadLetter[]): void {
  if (!main.querySelector("h1")) {
    sections.clear();
    main.replaceChildren(h("h1", {}, "Governance status"), h("p", { id: "generated" }), h("ul", { id: "summary", class: "summary" }), actionBox);
  }
  const generated = document.getElementById("generated")!;
  generated.textContent = `Status gathered ${when(s.generateTime)}.${s.degraded.length ? ` Not readable: ${s.degraded.join("; ")}.` : ""}`;
  const unhealthy = s.registry.filter((r) => r.unhealthy > 0 || r.healthy === 0).map((r) => r.context);
  const open = s.breakers.filter((b) => b.state !== BreakerState.CLOSED).length;
  const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);
  const facts: [boolean, string][] = [
    [unhealthy.length === 0, unhealthy.length === 0 ? `${s.registry.length} contexts, all healthy` : `unhealthy: ${unhealthy.join(", ")}`],
    [open === 0, `${open} breaker${open === 1 ? "" : "s"} not closed`],
    [sum(s.deadLetters.map((d) => d.count)) === 0n, `${sum(s.deadLetters.map((d) => d.count))} dead letters`],
    [sum(s.outbox.map((o) => o.backlog)) === 0n, `${sum(s.outbox.map((o) => o.backlog))} outbox rows unsent`],
    [sum(s.consumers.map((c) => c.pending)) === 0n, `${sum(s.consumers.map((c) => c.pending))} events waiting for consumers`],
  ];
  document.getElementById("summary")!.replaceChildren(...facts.map(([good, text]) => h("li", { class: good ? "fact ok" : "fact bad" }, h("span", { class: "visually-hidden" }, good ? "OK: " : "Attention: "), text)));
  section("contexts", "Contexts and instances", [s.registry, s.instances.map((i) => [i.address, i.health, i.failing])], () => view.contexts(s));
  section("deps", "Dependency graph", s.dependencies, () => view.dependencies(s));
  section("breakers", "Circuit breakers", s.breakers, () => view.breakers(s));
  section("dead", "Dead letters", [s.deadLetters, letters], () => view.deadLetters(s, letters, redrive));
  section("flow", "Outbox, consumers and sagas", [s.outbox, s.consumers, s.sagas], () => view.flow(s));
  section("flags", "Feature flags", s.flags, () => view.flags(s, setFlag, clearFlag));
  section("config", "Configuration and operations", [s.config, s.operations], () => view.config(s));
}

async function refresh(): Promise<void> {
  clearTimeout(timer);
  try {
    const [status, letters] = await Promise.all([admin.getStatus({}), admin.listDeadLetters({})]);
    downSince = undefined;
    conn.className = "conn up";
    conn.textContent = `Connected. Refreshes every ${REFRESH_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`;
    document.body.classList.remove("stale");
    render(status, letters.deadLetters);
  } catch (e) {
    const p = problemOf(e);
    if (p.code === Code.Unauthenticated) return signInForm("Your sign-in has ended. Please sign in again.");
    if (p.code === Code.PermissionDenied) return signInForm("This account is not an administrator.");
    downSince ??= new Date();
    conn.className = "conn down";
    const why = p.code === Code.Unknown && p.retryable ? "no answer from the edge (network error)" : `${Code[p.code]}: ${ConnectError.from(e).rawMessage}`;
    conn.replaceChildren(
      h("strong", {}, p.retryable ? "The API is unreachable: " : "The API is failing: "),
      `${why}. Since ${downSince.toLocaleTimeString()}; the figures below are from before then. Retrying every ${REFRESH_MS / 1000} s. `,
      h("button", { type: "button", onclick: () => void refresh() }, "Retry now"));
    document.body.classList.add("stale");
    if (!main.querySelector("h1")) main.replaceChildren(h("h1", {}, "Governance status"), h("p", {}, "No status yet."));
  }
  timer = window.setTimeout(() => void refresh(), REFRESH_MS);
}

function start(): void {
  const user = session.user;
  who.replaceChildren(`Signed in as ${user?.username ?? "?"} `, h("button", { type: "button", onclick: async () => { await session.logout(); signInForm(); } }, "Sign out"));
  main.replaceChildren();
  void refresh();
}

session.onEnded = () => signInForm("Your sign-in has ended. Please sign in again.");
if (session.user?.admin) start();
else signInForm();
