// The shopper's orders: the list (ListOrders, pages of 20) and one order's details
// (StorefrontService.GetOrderDetails), polled until its status settles, with its payment
// (CAPTURED, REFUNDED …) and "Cancel order" while it can be cancelled.
import { OrderStatus, type Order } from "../../gen/polyshop/order/v1/resources_pb.js";
import { PaymentStatus, type Payment } from "../../gen/polyshop/payment/v1/payment_pb.js";
import { enumLabel, focusHeading, h, money, when } from "../shared/dom.js";
import { problemOf, showProblem } from "../shared/errors.js";
import { api, requireSignIn, sleep, type Route } from "./app.js";
import * as cart from "./cart.js";
import { rejection } from "./checkout.js";

const status = (s: OrderStatus) => enumLabel(OrderStatus, s);
const unsettled = (o: Order) => o.status === OrderStatus.PENDING || o.status === OrderStatus.CANCELLING;

/** `#/orders?page=…`. */
export async function ordersPage(route: Route): Promise<void> {
  if (!requireSignIn(route)) return;
  const page = route.query.get("page") ?? "";
  const box = h("div", { class: "problem", hidden: true });
  route.main.replaceChildren(h("h1", {}, "Your orders"), h("p", { "aria-busy": "true" }, "Loading…"), box);
  focusHeading(route.main);
  try {
    const r = await api.orders.listOrders({ pageSize: 20, pageToken: page }, { signal: route.signal });
    if (route.signal.aborted) return;
    const rows = r.orders.map((o) =>
      h("tr", { "data-order-id": o.orderId },
        h("td", {}, h("a", { href: `#/orders/${o.orderId}` }, when(o.createTime))),
        h("td", {}, status(o.status)),
        h("td", {}, String(o.items.reduce((n, i) => n + i.quantity, 0))),
        h("td", {}, money(o.total))),
    );
    route.main.replaceChildren(
      h("h1", {}, "Your orders"),
      r.orders.length === 0 ? h("p", {}, "No orders yet. ", h("a", { href: "#/" }, "Browse products")) :
        h("table", { class: "orders" }, h("caption", { class: "visually-hidden" }, "Your orders, newest first"),
          h("thead", {}, h("tr", {}, ...["Placed", "Status", "Items", "Total"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ...rows)),
      h("nav", { class: "pager", "aria-label": "Pages" },
        page ? h("a", { href: "#/orders" }, "First page") : "",
        r.nextPageToken ? h("a", { href: `#/orders?page=${encodeURIComponent(r.nextPageToken)}`, rel: "next" }, "Next page") : ""),
      box,
    );
    focusHeading(route.main);
  } catch (e) {
    if (route.signal.aborted) return;
    showProblem(box, problemOf(e), () => void ordersPage(route));
  }
}

function paymentText(p: Payment): string {
  const state = enumLabel(PaymentStatus, p.status);
  const card = p.cardLast4 ? ` with the card ending ${p.cardLast4}` : "";
  if (p.status === PaymentStatus.REFUNDED) return `${state}: ${money(p.refundedAmount)} returned${card}.`;
  if (p.status === PaymentStatus.DECLINED) return `${state}${card}${p.declineCode ? ` (${p.declineCode})` : ""}.`;
  return `${state}: ${money(p.amount)}${card}.`;
}

function view(o: Order, payment: Payment | undefined, onCancel: () => void): (Node | string)[] {
  const a = o.shippingAddress;
  return [
    h("h1", {}, "Order details"),
    h("p", { class: `status status-${OrderStatus[o.status]?.toLowerCase()}`, id: "order-status", role: "status" },
      `Status: ${status(o.status)}`, unsettled(o) ? h("span", { class: "spinner", "aria-hidden": "true" }) : ""),
    o.status === OrderStatus.REJECTED ? h("p", { class: "rejection", id: "rejection" }, `Rejected: ${rejection(o.rejectionReason, o.statusDetail)}.`) : "",
    o.status !== OrderStatus.REJECTED && o.statusDetail ? h("p", {}, o.statusDetail) : "",
    h("p", { id: "payment" }, "Payment: ", payment ? paymentText(payment) : o.paymentId ? "not readable right now." : o.status === OrderStatus.REJECTED ? "nothing was charged." : "none yet."),
    o.status === OrderStatus.REJECTED && cart.count() > 0 ? h("p", {}, "Your cart still holds the items. ", h("a", { href: "#/checkout" }, "Try again, e.g. with another card")) : "",
    h("table", {}, h("caption", {}, `Placed ${when(o.createTime)}`),
      h("thead", {}, h("tr", {}, ...["Product", "Quantity", "Unit price", "Line total"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...o.items.map((i) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/product/${i.productId}` }, i.productName)),
        h("td", {}, String(i.quantity)), h("td", {}, money(i.unitPrice)), h("td", {}, money(i.lineTotal))))),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Total"), h("td", {}, money(o.total))))),
    a ? h("p", {}, `Ship to: ${[a.recipient, a.line1, a.line2, `${a.postalCode} ${a.city}`, a.region, a.countryCode].filter(Boolean).join(", ")}`) : "",
    o.trackingNumber ? h("p", {}, `Tracking number: ${o.trackingNumber}`) : "",
    o.status === OrderStatus.CONFIRMED ? h("button", { type: "button", id: "cancel-order", onclick: onCancel }, "Cancel order") : "",
    h("p", {}, h("a", { href: "#/orders" }, "All orders")),
  ];
}

/** `#/orders/<id>`. */
export async function orderPage(route: Route): Promise<void> {
  if (!requireSignIn(route)) return;
  const id = route.parts[1] ?? "";
  const box = h("div", { class: "problem", hidden: true });
  const body = h("div", {});
  route.main.replaceChildren(body, box);
  body.replaceChildren(h("h1", {}, "Order details"), h("p", { "aria-busy": "true" }, "Loading…"));
  focusHeading(route.main);
  let delay = 500;
  let focusCancel = false;
  const cancel = async () => {
    box.hidden = true;
    try {
      await api.orders.cancelOrder({ orderId: id, reason: "cancelled by the customer" });
      focusCancel = true;
      void orderPage(route);
    } catch (e) {
      showProblem(box, problemOf(e), () => void cancel());
    }
  };
  // Poll until the order settles (and, once cancelled, until the refund shows).
  for (let round = 0; !route.signal.aborted; round++) {
    try {
      const d = await api.storefront.getOrderDetails({ orderId: id }, { signal: route.signal });
      const o = d.order;
      if (!o || route.signal.aborted) return;
      const payment = o.paymentId ? (await api.payments.getPayment({ paymentId: o.paymentId }, { signal: route.signal }).catch(() => undefined))?.payment : undefined;
      if (route.signal.aborted) return;
      box.hidden = true;
      const hadFocus = body.contains(document.activeElement) && document.activeElement !== body.querySelector("h1");
      body.replaceChildren(...view(o, payment, () => void cancel()));
      if (focusCancel || hadFocus) body.querySelector<HTMLElement>("#order-status")?.setAttribute("tabindex", "-1");
      if (focusCancel) body.querySelector<HTMLElement>("#order-status")?.focus();
      focusCancel = false;
      const refundDue = o.status === OrderStatus.CANCELLED && payment !== undefined && payment.status !== PaymentStatus.REFUNDED;
      if (!unsettled(o) && !refundDue) return;
      if (round > 120) return;
    } catch (e) {
      if (route.signal.aborted) return;
      const problem = problemOf(e);
      if (!problem.retryable) return showProblem(box, problem, () => void orderPage(route));
      showProblem(box, { ...problem, message: `${problem.message} Retrying by itself…` });
      delay = Math.max(delay, (problem.waitSeconds ?? 2) * 1000);
    }
    await sleep(delay, route.signal);
    delay = Math.min(delay * 1.5, 3000);
  }
}
