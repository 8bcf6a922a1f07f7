// What every storefront page gets: the generated clients over one transport, the session,
// and the current navigation's abort signal (a page stops polling when the shopper leaves).
import { CatalogService } from "../../gen/polyshop/catalog/v2/catalog_pb.js";
import { InventoryService } from "../../gen/polyshop/inventory/v1/inventory_pb.js";
import { NotificationService } from "../../gen/polyshop/notification/v1/notification_pb.js";
import { OrderService } from "../../gen/polyshop/order/v1/order_pb.js";
import { PaymentService } from "../../gen/polyshop/payment/v1/payment_pb.js";
import { StorefrontService } from "../../gen/polyshop/storefront/v1/storefront_pb.js";
import { UserService } from "../../gen/polyshop/user/v1/user_pb.js";
import { clientOf, transportWith } from "../shared/rpc.js";
import { Session } from "../shared/session.js";

export const session = new Session("polyshop.session");
const transport = transportWith(session.token);

/** The services, through the client generated from proto/. */
export const api = {
  catalog: clientOf(CatalogService, transport),
  inventory: clientOf(InventoryService, transport),
  notifications: clientOf(NotificationService, transport),
  orders: clientOf(OrderService, transport),
  payments: clientOf(PaymentService, transport),
  storefront: clientOf(StorefrontService, transport),
  users: clientOf(UserService, transport),
};

/** One page's view of the current navigation. */
export interface Route {
  /** Where the page renders. */
  main: HTMLElement;
  /** Path segments after `#/` (`["orders", "0190…"]`). */
  parts: string[];
  /** The hash's query (`#/?q=kettle&category=kitchen`). */
  query: URLSearchParams;
  /** Aborted when the shopper navigates away. */
  signal: AbortSignal;
}

/** Goes to `hash` (`#/orders/…`). */
export function go(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/** Sends signed-out shoppers to the sign-in page, back to here afterwards; true if signed in. */
export function requireSignIn(_route: Route): boolean {
  if (session.user) return true;
  go(`#/signin?next=${encodeURIComponent(location.hash || "#/")}`);
  return false;
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
