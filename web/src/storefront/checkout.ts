// The cart page and the checkout: ONE CreateOrder per checkout. The request and its key are
// saved with the cart before sending (see cart.ts); the button is disabled while it is out,
// and a reload resumes the saved request instead of starting a new one.
import { h, focusHeading, moneyOf } from "../shared/dom.js";
import { clearFieldErrors, problemOf, showProblem } from "../shared/errors.js";
import { OrderStatus } from "../../gen/polyshop/order/v1/resources_pb.js";
import * as cart from "./cart.js";
import { api, go, requireSignIn, session, type Route } from "./app.js";

/** The test cards the payment service knows (services/payment/src/domain/provider.rs). */
export const CARDS: [token: string, label: string][] = [
  ["tok_visa", "Visa ending 4242 (succeeds)"],
  ["tok_mastercard", "Mastercard ending 4444 (succeeds)"],
  ["tok_chargeDeclined", "Card ending 0002 (declined)"],
  ["tok_insufficientFunds", "Card ending 9995 (insufficient funds)"],
  ["tok_providerUnavailable", "Card whose provider is down (unavailable)"],
];

function total(lines: cart.Line[]): string {
  const currencies = new Set(lines.map((l) => l.currency));
  if (currencies.size !== 1) return "priced at checkout";
  const sum = lines.reduce((s, l) => s + BigInt(l.unitMinor) * BigInt(l.quantity), 0n);
  return moneyOf(sum, lines[0].currency);
}

/** `#/cart`. */
export function cartPage(route: Route): void {
  const lines = cart.lines();
  const rows = lines.map((l, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `#/product/${l.productId}` }, l.name)),
      h("td", {}, moneyOf(BigInt(l.unitMinor), l.currency)),
      h(
        "td",
        {},
        h("label", { for: `q${i}`, class: "visually-hidden" }, `Quantity of ${l.name}`),
        h("input", {
          id: `q${i}`, type: "number", min: 0, max: 1000, value: l.quantity, class: "qty",
          onchange: (e: Event) => {
            cart.setQuantity(l.productId, Math.max(0, Number((e.target as HTMLInputElement).value) || 0));
            cartPage(route);
          },
        }),
      ),
      h("td", {}, h("button", { type: "button", onclick: () => (cart.setQuantity(l.productId, 0), cartPage(route)) }, `Remove ${l.name}`)),
    ),
  );
  route.main.replaceChildren(
    h("h1", {}, "Your cart"),
    lines.length === 0
      ? h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse products"))
      : h(
          "div",
          {},
          h("table", {}, h("caption", { class: "visually-hidden" }, "Items in your cart"),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), h("th", { scope: "col" }, "Price"), h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
            h("tbody", {}, ...rows)),
          h("p", { class: "total" }, `Estimated total: ${total(lines)}`),
          cart.pending() ? h("p", { class: "note" }, "An order from this cart is being placed. ", h("a", { href: "#/checkout" }, "Finish it")) : "",
          h("p", {}, h("a", { class: "button", href: "#/checkout" }, "Check out")),
        ),
  );
  focusHeading(route.main);
}

const rejectionText: Record<number, string> = {
  1: "your account was not found", 2: "your account is not active", 3: "a product is no longer sold",
  4: "the items are priced in different currencies", 5: "there is not enough stock",
  6: "the card was declined", 7: "a service kept failing, nothing was charged",
};

/** Why an order was rejected, for a person. */
export function rejection(reason: number, detail: string): string {
  return `${rejectionText[reason] ?? "it could not be placed"}${detail ? ` (${detail})` : ""}`;
}

let placing: string | undefined;

function field(name: string, label: string, value: string, opts: Record<string, string | boolean> = {}): HTMLElement {
  const id = `f-${name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name, value, autocomplete: "on", ...opts }));
}

/** `#/checkout`: address, card, "Place order". */
export function checkoutPage(route: Route): void {
  if (!requireSignIn(route)) return;
  const lines = cart.lines();
  const saved = cart.pending();
  if (lines.length === 0 && !saved) return cartPage(route);
  const a = saved?.address ?? cart.lastAddress();
  const box = h("div", { class: "problem", hidden: true });
  const status = h("p", { role: "status", id: "checkout-status" });
  const button = h("button", { type: "submit", id: "place-order" }, "Place order");
  const form = h(
    "form",
    { novalidate: false },
    h("fieldset", {}, h("legend", {}, "Shipping address"),
      field("recipient", "Recipient", a?.recipient ?? session.user?.username ?? "", { required: true, autocomplete: "name" }),
      field("line1", "Street and number", a?.line1 ?? "", { required: true, autocomplete: "address-line1" }),
      field("line2", "Apartment, floor (optional)", a?.line2 ?? "", { autocomplete: "address-line2" }),
      field("city", "City", a?.city ?? "", { required: true, autocomplete: "address-level2" }),
      field("region", "Region (optional)", a?.region ?? "", { autocomplete: "address-level1" }),
      field("postal_code", "Postal code", a?.postalCode ?? "", { required: true, autocomplete: "postal-code" }),
      field("country_code", "Country code (two letters, e.g. DE)", a?.countryCode ?? "", { required: true, pattern: "[A-Za-z]{2}", autocomplete: "country" }),
    ),
    h("fieldset", { class: "cards" }, h("legend", {}, "Test card"),
      ...CARDS.map(([token, label], i) =>
        h("div", { class: "radio" },
          h("input", { type: "radio", id: `card-${token}`, name: "payment_method_token", value: token, checked: (saved?.paymentMethodToken ?? "tok_visa") === token || (!saved && i === 0) }),
          h("label", { for: `card-${token}` }, label)),
      ),
    ),
    button,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).value.trim();
    const card = (form.querySelector("input[name=payment_method_token]:checked") as HTMLInputElement | null)?.value ?? "tok_visa";
    const address: cart.Address = {
      recipient: v("recipient"), line1: v("line1"), line2: v("line2"), city: v("city"), region: v("region"),
      postalCode: v("postal_code"), countryCode: v("country_code").toUpperCase(),
    };
    void place(cart.begin(session.user!.userId, address, card), route, { box, status, button, form });
  });
  route.main.replaceChildren(
    h("h1", {}, "Checkout"),
    h("p", {}, `${lines.reduce((n, l) => n + l.quantity, 0)} item(s), estimated ${total(lines)}. `, h("a", { href: "#/cart" }, "Change cart")),
    form, status, box,
  );
  focusHeading(route.main);
  // A checkout sent before a reload (or a lost answer): send the same request again.
  if (saved && saved.userId === session.user?.userId) void place(saved, route, { box, status, button, form });
}

interface Ui { box: HTMLElement; status: HTMLElement; button: HTMLButtonElement; form: HTMLFormElement }

async function place(p: cart.Pending, route: Route, ui: Ui): Promise<void> {
  if (placing === p.idempotencyKey) return; // The first click's request is still out.
  placing = p.idempotencyKey;
  ui.button.disabled = true;
  ui.box.hidden = true;
  clearFieldErrors(ui.form);
  ui.status.textContent = "Placing your order…";
  try {
    const { order } = await api.orders.createOrder({
      idempotencyKey: p.idempotencyKey,
      items: p.items,
      shippingAddress: p.address,
      paymentMethodToken: p.paymentMethodToken,
    });
    if (!order) throw new Error("no order in the answer");
    cart.settle(p.idempotencyKey, order.status === OrderStatus.REJECTED);
    if (!route.signal.aborted) go(`#/orders/${order.orderId}`);
  } catch (e) {
    ui.status.textContent = "";
    ui.button.disabled = false;
    const problem = problemOf(e);
    // Fields named by the contract's paths: shipping_address.city → the "city" input.
    problem.fields = new Map([...problem.fields].map(([f, t]) => [f.replace(/^shipping_address\./, ""), t]));
    if (problem.retryable) problem.message += " If the order went through, trying again shows it: it is never placed twice.";
    showProblem(ui.box, problem, () => void place(p, route, ui), ui.form);
  } finally {
    placing = undefined;
  }
}
