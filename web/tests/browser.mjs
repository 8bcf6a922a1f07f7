// The storefront and the console in Chromium, against a running system (see run.sh):
// a shopper's journey (search, cart, sign-up, a paid order that is confirmed, notified,
// cancelled and refunded; a declined card), exactly one order for a double click plus a
// reload mid-checkout, an operator's journey (health, a flag, a dead letter redriven, the
// API unreachable), axe-core on every page, the product list's render time and the bundle's
// compressed size.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import axe from "axe-core";
import { chromium } from "playwright-core";
import { connect, headers as natsHeaders } from "nats";
import { countOrders, outOfOrderEvents, seed } from "../node_modules/.cache/polyshop-web-tests/client.mjs";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const edge = process.env.EDGE_URL.replace(/\/$/, "");
const out = process.env.WEB_TEST_OUT;
const admin = { login: process.env.ADMIN_LOGIN, password: process.env.ADMIN_PASSWORD };
const started = Date.now();
const results = [];

function ok(what) {
  results.push(what);
  console.log(`ok: ${what}`);
}
function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  ok(what);
}

// The bundle as the edge serves it: storefront JS + CSS, gzip -9.
const gz = (f) => gzipSync(readFileSync(join(web, "dist", f)), { level: 9 }).length;
const storefrontBytes = gz("assets/storefront.js") + gz("assets/app.css");
const consoleBytes = gz("assets/console.js") + gz("assets/app.css");

// The pages as the edge serves them (embedded, or from POLYSHOP_GATEWAY_WEB_DIR).
async function edgeServesPages() {
  const r = await fetch(`${edge}/`).catch(() => undefined);
  const text = r?.ok ? await r.text() : "";
  if (!text.includes("/assets/storefront.js")) throw new Error(`failed: the edge does not serve the storefront at ${edge}/ (${r ? r.status : "no answer"})`);
}

async function axeCheck(page, name) {
  // Evaluated through the devtools protocol: the edge's CSP (script-src 'self') refuses inline scripts.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axe.source);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of violations.filter((v) => !bad.includes(v))) console.log(`  axe (${v.impact}) on ${name}: ${v.id}: ${v.help}`);
  if (bad.length) {
    for (const v of bad) console.log(`  axe (${v.impact}) on ${name}: ${v.id}: ${v.help}: ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", ")}${v.nodes.length > 5 ? ` and ${v.nodes.length - 5} more` : ""}`);
    throw new Error(`failed: axe found ${bad.length} serious/critical violation(s) on ${name}`);
  }
  ok(`axe: no serious or critical violations on ${name}`);
}

function watch(page) {
  page.on("pageerror", (e) => console.log(`  page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource|ERR_CONNECTION/.test(m.text()) && console.log(`  console error: ${m.text()}`));
}

const shot = (page, name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });

async function eventually(what, f, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`failed: ${what} (waited ${timeoutMs / 1000} s)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function renderTime(page) {
  return page.evaluate(() => {
    const m = performance.getEntriesByName("products:render").at(-1);
    const end = performance.getEntriesByName("products:rendered").at(-1);
    return { inPage: m?.duration, sinceNavigation: end?.startTime };
  });
}

async function addToCart(page, productName, category) {
  await page.goto(`${edge}/#/?category=${category}`);
  await page.getByRole("link", { name: productName, exact: true }).click();
  await page.locator("#stock").waitFor();
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.getByText(`to your cart`).waitFor();
}

// How failures read, with the edge's answers stood in for (same wire form: a grpc-web
// trailers-only response): rate-limited with a wait, then unavailable with "Try again".
async function errorsShown(page) {
  const path = "**/polyshop.catalog.v2.CatalogService/ListProducts";
  const answer = (status, extra = {}) => (route) =>
    route.fulfill({ status: 200, headers: { "content-type": "application/grpc-web+proto", "grpc-status": status, "grpc-message": "stand-in", ...extra }, body: "" });
  await page.route(path, answer("8", { "retry-after": "7" }));
  await page.goto(`${edge}/#/?q=rate-limited`);
  await page.locator(".problem").waitFor();
  const limited = await page.locator(".problem").innerText();
  check(/wait.*7 seconds/.test(limited), `RESOURCE_EXHAUSTED reads: “${limited.split("\n")[0]}”`);
  await page.unroute(path);
  await page.route(path, answer("14"));
  await page.goto(`${edge}/#/?q=unavailable`);
  await page.locator(".problem .retry").waitFor();
  check(true, `UNAVAILABLE reads: “${(await page.locator(".problem").innerText()).split("\n")[0]}” with a Try again button`);
  await shot(page, "01b-unavailable");
  await axeCheck(page, "the product list with an error");
  await page.unroute(path);
  await page.getByRole("button", { name: "Try again" }).click();
  await page.locator(".products .empty, .products .product").first().waitFor();
  ok("Try again recovers once the service answers");
}

async function shopper(browser, stamp) {
  const page = await browser.newPage();
  const requested = [];
  page.on("request", (r) => requested.push(r.url()));
  page.on("framenavigated", (f) => requested.push(f.url()));
  watch(page);
  // The product list, first load.
  await page.goto(`${edge}/`);
  await page.locator(".products .product").first().waitFor();
  const first = await renderTime(page);
  check(first.inPage !== undefined, `product list rendered (first load: ${first.inPage.toFixed(0)} ms from route to list, ${first.sinceNavigation.toFixed(0)} ms from navigation start)`);
  await shot(page, "01-products");
  await axeCheck(page, "the product list");
  // The keyboard: the skip link first, with a visible focus ring, then the search.
  await page.keyboard.press("Tab");
  const ring = await page.evaluate(() => {
    const el = document.activeElement, style = getComputedStyle(el);
    return { text: el.textContent, outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2 };
  });
  check(ring.text === "Skip to content" && ring.outline, "Tab reaches the skip link first, with a visible focus ring");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id === "search-q"), "then the brand link and the search box");
  // Search: an in-page navigation, the 300 ms budget.
  await page.getByLabel("Search products").fill("Kettle");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: /Results for/ }).waitFor();
  await page.locator(".products .product").first().waitFor();
  const search = await renderTime(page);
  check((await page.locator(".products .product").count()) >= 1 && (await page.locator(".products").innerText()).includes(`Web Kettle`), "search finds the kettle");
  check(search.inPage < 300, `search results rendered within 300 ms of an in-page navigation (${search.inPage.toFixed(0)} ms)`);
  results.renderMs = { first: first.inPage, firstSinceNavigation: first.sinceNavigation, search: search.inPage };
  await errorsShown(page);
  // Two products, from two categories.
  await addToCart(page, "Web Kettle", "kitchen");
  await shot(page, "02-product");
  await axeCheck(page, "a product page");
  await addToCart(page, "Web Trowel", "garden");
  await page.goto(`${edge}/#/cart`);
  check((await page.locator("tbody tr").count()) === 2, "two products in the cart");
  await shot(page, "03-cart");
  await axeCheck(page, "the cart");
  // Sign up on the way to the checkout.
  await page.getByRole("link", { name: "Check out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await axeCheck(page, "sign-in");
  await page.getByRole("link", { name: "Create an account" }).click();
  const username = `web${stamp}`, password = "web shopper password 1";
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Email").fill(`${username}@example.com`);
  await page.getByLabel("Password", { exact: true }).fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#f-password-error").waitFor();
  check(true, `a field violation shows next to its field: “${await page.locator("#f-password-error").innerText()}”`);
  await shot(page, "04-signup-violation");
  await axeCheck(page, "sign-up with a field violation");
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Checkout" }).waitFor();
  ok(`signed up as ${username} and landed on the checkout`);
  await page.getByLabel("Recipient").fill("Web Shopper");
  await page.getByLabel("Street and number").fill("Main St 1");
  await page.getByLabel("City").fill("Berlin");
  await page.getByLabel("Postal code").fill("10115");
  await page.getByLabel(/Country code/).fill("DE");
  await axeCheck(page, "the checkout");
  await shot(page, "05-checkout");
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/#\/orders\/[0-9a-f-]+$/);
  await eventually("the order becomes CONFIRMED", async () => (await page.locator("#order-status").innerText()).includes("Confirmed"));
  ok("the order is CONFIRMED");
  const orderUrl = page.url();
  await shot(page, "06-order-confirmed");
  await axeCheck(page, "an order");
  // Its notification (from order.confirmed).
  await eventually("the order's notification arrives", async () => {
    await page.goto(`${edge}/#/account`);
    await page.locator("#notes-h").waitFor();
    return (await page.locator('[data-kind="ORDER_CONFIRMED"]').count()) > 0;
  });
  ok("the order-confirmed notification is on the dashboard");
  await shot(page, "07-dashboard");
  await axeCheck(page, "the dashboard");
  // Cancel it: the refund shows as the payment's status.
  await page.goto(orderUrl);
  await page.getByRole("button", { name: "Cancel order" }).click();
  await eventually("the order becomes CANCELLED", async () => (await page.locator("#order-status").innerText()).includes("Cancelled"), 30000);
  await eventually("the refund shows", async () => (await page.locator("#payment").innerText()).includes("Refunded"), 15000);
  ok(`cancelled and refunded: “${await page.locator("#payment").innerText()}”`);
  await shot(page, "08-order-cancelled");
  // An access token about to expire is refreshed (RefreshToken) before the next call.
  const token = () => page.evaluate(() => JSON.parse(sessionStorage.getItem("polyshop.session")).access);
  const old = await token();
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem("polyshop.session"));
    sessionStorage.setItem("polyshop.session", JSON.stringify({ ...s, expires: Date.now() }));
  });
  await page.goto(`${edge}/#/orders`);
  await page.locator("table.orders").waitFor();
  check((await token()) !== old, "an expiring access token is refreshed before the next call");

  // Exactly one order for a double click, a lost answer and a reload mid-checkout.
  const before = await countOrders(edge, username, password);
  await addToCart(page, "Web Teapot", "kitchen");
  await page.goto(`${edge}/#/checkout`);
  let sent = 0;
  await page.route("**/polyshop.order.v1.OrderService/CreateOrder", async (route) => {
    sent++;
    if (sent === 1) {
      await route.fetch(); // The order is created; its answer is lost on the way back.
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  await page.getByRole("button", { name: "Place order" }).dblclick();
  await page.locator(".problem .retry").waitFor();
  check(sent === 1, `a double click sent one CreateOrder (${sent})`);
  await shot(page, "09-checkout-lost-answer");
  await page.reload();
  await page.waitForURL(/#\/orders\/[0-9a-f-]+$/);
  await eventually("the resumed order settles", async () => /Confirmed|Rejected/.test(await page.locator("#order-status").innerText()));
  await page.unroute("**/polyshop.order.v1.OrderService/CreateOrder");
  const after = await countOrders(edge, username, password);
  check(after === before + 1, `double click + lost answer + reload made exactly one order (${before} → ${after}; ${sent} CreateOrder calls with one key)`);
  check((await page.evaluate(() => localStorage.getItem("polyshop.cart.v1"))).includes('"lines":[]'), "the cart is empty after the order");

  // A declined card.
  await addToCart(page, "Web Trowel", "garden");
  await page.goto(`${edge}/#/checkout`);
  await page.getByLabel(/declined/).check();
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/#\/orders\/[0-9a-f-]+$/);
  await page.locator("#rejection").waitFor();
  const reason = await page.locator("#rejection").innerText();
  check(/declined/i.test(reason), `a declined card shows the rejection: “${reason}”`);
  await shot(page, "10-order-declined");
  await page.goto(`${edge}/#/orders`);
  await page.locator("table.orders").waitFor();
  check((await page.locator("table.orders tbody tr").count()) === before + 2, "the orders page lists every order");
  await shot(page, "11-orders");
  await axeCheck(page, "the orders list");
  await page.getByRole("link", { name: "Sign out" }).first().click();
  await page.getByRole("heading", { name: "Signed out" }).waitFor();
  check((await page.evaluate(() => sessionStorage.getItem("polyshop.session"))) === null && (await page.getByRole("link", { name: "Sign in" }).count()) === 1, "signed out: the session is gone");
  const leaked = requested.filter((u) => /eyJ[A-Za-z0-9_-]{10,}\./.test(u));
  check(leaked.length === 0, `no token in any of the ${requested.length} URLs the shopper's page requested`);
  await page.close();
}

// Events straight onto JetStream, as the order service (whose NATS user may publish them).
async function bus() {
  const dir = process.env.POLYSHOP_DATA_DIR, port = process.env.POLYSHOP_NATS_EMBEDDED_PORT;
  if (!dir || !port) throw new Error("POLYSHOP_DATA_DIR and POLYSHOP_NATS_EMBEDDED_PORT are needed to publish events (run under with-system.sh)");
  const pass = readFileSync(join(dir, "nats-users", "order.password"), "utf8").trim();
  const nc = await connect({ servers: `nats://127.0.0.1:${port}`, user: "order", pass, name: "web-browser-test" });
  const js = nc.jetstream();
  return {
    async publish(subject, type, payload) {
      const id = randomUUID();
      const h = natsHeaders();
      h.set("Polyshop-Event-Id", id);
      h.set("Polyshop-Event-Type", type);
      await js.publish(subject, payload, { msgID: id, headers: h });
      return id;
    },
    close: () => nc.close(),
  };
}

async function operator(browser, drill) {
  const page = await browser.newPage();
  watch(page);
  await page.goto(`${edge}/console`);
  await axeCheck(page, "the console sign-in");
  await page.getByLabel("Admin login").fill(admin.login);
  await page.getByLabel("Password").fill(admin.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#contexts [data-context]").first().waitFor();
  const contexts = await eventually("every context is healthy", async () => {
    const rows = await page.locator("#contexts [data-context]").evaluateAll((trs) => trs.map((tr) => [tr.dataset.context, tr.dataset.healthy]));
    const want = ["catalog", "inventory", "notification", "order", "payment", "user"];
    const names = rows.map(([c]) => c);
    return want.every((w) => names.includes(w)) && rows.every(([, healthy]) => healthy === "true") ? names : undefined;
  }, 30000);
  ok(`every context is healthy: ${contexts.join(", ")}`);
  await shot(page, "20-console");
  await axeCheck(page, "the console");

  // A flag: off, seen off, then back to its configured value.
  const flag = page.locator('[data-flag="notification_email"]');
  const was = await flag.getAttribute("data-enabled");
  await page.locator("#flag-notification_email").click();
  await eventually("the flag change shows", async () => (await flag.getAttribute("data-enabled")) !== was && (await flag.getAttribute("data-overridden")) === "true", 10000);
  // Taken effect: every process that reads the flag reports the new value in force.
  await eventually("the new value is in force at every instance that reads it", async () => (await flag.getAttribute("data-in-force")) === "true", 15000);
  ok(`flag notification_email toggled ${was === "true" ? "off" : "on"}: overridden, and in force at every instance reading it (${(await flag.textContent()).match(/in force at \d+ of \d+/)?.[0]})`);
  await page.getByRole("button", { name: "Use configured value for notification_email" }).click();
  await eventually("the flag goes back", async () => (await flag.getAttribute("data-overridden")) === "false" && (await flag.getAttribute("data-enabled")) === was && (await flag.getAttribute("data-in-force")) === "true", 15000);
  ok("flag notification_email back to its configured value");

  // Dead letters: the poison event's, and the early OrderConfirmed's. Once its OrderCreated is
  // in, a redrive of the early one succeeds and the count drops for good.
  const total = page.locator("#dead-letter-total");
  const row = page.locator(`tr[data-event-id="${drill.early}"]`);
  await eventually("the poison event is dead-lettered", async () => (await page.locator(`tr[data-event-id="${drill.poison}"]`).count()) > 0, 30000);
  await row.first().waitFor({ timeout: 30000 });
  const n = Number(await total.getAttribute("data-count"));
  ok(`dead letters listed: ${n} (the poison event's and the early OrderConfirmed's)`);
  await shot(page, "21-console-dead-letters");
  await drill.created();
  await row.first().getByRole("button", { name: /Redrive/ }).click();
  await eventually("the dead-letter count drops", async () => Number(await total.getAttribute("data-count")) < n, 10000);
  const dropped = Number(await total.getAttribute("data-count"));
  await new Promise((r) => setTimeout(r, 3500));
  const later = Number(await total.getAttribute("data-count"));
  check(later < n && (await row.count()) === 0, `redriven: the count dropped from ${n} to ${dropped} and stayed (${later}) (“${await page.locator("#action-status").innerText()}”)`);

  // The API unreachable, then back.
  await page.route("**/polyshop.admin.v1.AdminService/**", (route) => route.abort("connectionrefused"));
  await page.locator("#conn.down").waitFor({ timeout: 10000 });
  ok(`unreachable API shown: “${(await page.locator("#conn").innerText()).split("\n")[0]}”`);
  await shot(page, "22-console-unreachable");
  await axeCheck(page, "the console while the API is unreachable");
  await page.unroute("**/polyshop.admin.v1.AdminService/**");
  await page.locator("#conn.up").waitFor({ timeout: 10000 });
  ok("the console reconnects by itself");
  await page.close();
}

async function main() {
  await edgeServesPages();
  console.log(`pages served by the edge at ${edge}`);
  if (!admin.login || !admin.password) throw new Error("ADMIN_LOGIN and ADMIN_PASSWORD are needed (run under with-system.sh)");
  const ids = await seed(edge, admin.login, admin.password, [
    { name: "Web Kettle", category: "kitchen", minor: 2599n, stock: 100 },
    { name: "Web Teapot", category: "kitchen", minor: 1850n, stock: 100 },
    { name: "Web Trowel", category: "garden", minor: 999n, stock: 100 },
    { name: "Web Watering Can", category: "garden", minor: 1499n, stock: 100 },
  ]);
  ok(`seeded ${ids.length} products in two categories`);
  const events = await bus();
  // A poison event: two consumers (the order projection, notifications) dead-letter it at once.
  const poison = await events.publish("polyshop.order.confirmed", "polyshop.order.v1.OrderConfirmed", new Uint8Array([0xff, 0xff, 0xff]));
  ok(`published a poison event (${poison}) on polyshop.order.confirmed`);
  // An event ahead of the one it needs: the projection retries, then dead-letters it.
  const drill = outOfOrderEvents(randomUUID(), randomUUID());
  const early = await events.publish("polyshop.order.confirmed", "polyshop.order.v1.OrderConfirmed", drill.confirmed);
  ok(`published an OrderConfirmed (${early}) before its OrderCreated`);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  try {
    await shopper(browser, Date.now().toString(36));
    await operator(browser, { poison, early, created: () => events.publish("polyshop.order.created", "polyshop.order.v1.OrderCreated", drill.created) });
  } finally {
    await browser.close();
    await events.close();
  }
  const r = results.renderMs;
  console.log(`product list render: ${r.search.toFixed(0)} ms after an in-page navigation (search), ${r.first.toFixed(0)} ms from route start on first load (${r.firstSinceNavigation.toFixed(0)} ms from navigation start)`);
  console.log(`bundle, gzip -9: storefront JS+CSS ${storefrontBytes} bytes (${(storefrontBytes / 1000).toFixed(1)} KB of the 150 KB budget), console JS+CSS ${consoleBytes} bytes`);
  console.log(`browser tests: ${results.length} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${out}`);
  if (storefrontBytes > 150_000) throw new Error("failed: the storefront bundle is over 150 KB gzip-compressed");
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
