// Signing up, in and out, and the shopper's dashboard (StorefrontService.GetDashboard:
// profile, recent orders, notifications) with "mark as read".
import { Code, ConnectError } from "@connectrpc/connect";
import { NotificationKind, type Notification } from "../../gen/polyshop/notification/v1/notification_pb.js";
import { OrderStatus } from "../../gen/polyshop/order/v1/resources_pb.js";
import { enumLabel, focusHeading, h, money, when } from "../shared/dom.js";
import { clearFieldErrors, problemOf, showProblem } from "../shared/errors.js";
import { api, go, requireSignIn, session, type Route } from "./app.js";

function input(name: string, label: string, type: string, autocomplete: string, hint?: string): HTMLElement {
  const id = `f-${name}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name, type, autocomplete, required: name !== "display_name", "aria-describedby": hint ? `${id}-hint` : false }),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : "",
  );
}

function after(route: Route): string {
  const next = route.query.get("next") ?? "";
  return next.startsWith("#/") ? next : "#/account";
}

function authForm(route: Route, title: string, fields: HTMLElement[], submit: string, act: (v: (n: string) => string) => Promise<void>, footer: HTMLElement): void {
  const box = h("div", { class: "problem", hidden: true });
  const button = h("button", { type: "submit" }, submit);
  const form = h("form", {}, ...fields, button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = (n: string) => (form.elements.namedItem(n) as HTMLInputElement | null)?.value ?? "";
    button.disabled = true;
    box.hidden = true;
    clearFieldErrors(form);
    try {
      await act(v);
      window.dispatchEvent(new Event("polyshop:session"));
      go(after(route));
    } catch (err) {
      showProblem(box, problemOf(err), () => form.requestSubmit(), form);
    } finally {
      button.disabled = false;
    }
  });
  route.main.replaceChildren(h("h1", {}, title), box, form, footer);
  focusHeading(route.main);
}

/** `#/signin`. */
export function signInPage(route: Route): void {
  authForm(
    route, "Sign in",
    [input("login", "Username or email", "text", "username"), input("password", "Password", "password", "current-password")],
    "Sign in",
    (v) => session.login(v("login"), v("password")).catch((e) => {
      // One message for unknown user and wrong password, as the service intends.
      if (ConnectError.from(e).code === Code.Unauthenticated) throw new ConnectError("wrong username or password", Code.InvalidArgument);
      throw e;
    }),
    h("p", {}, "New here? ", h("a", { href: `#/signup?next=${encodeURIComponent(after(route))}` }, "Create an account")),
  );
}

/** `#/signup`: Register, then Login with the same credentials. */
export function signUpPage(route: Route): void {
  authForm(
    route, "Create an account",
    [
      input("username", "Username", "text", "username", "3–32 letters, digits, dots, dashes or underscores."),
      input("email", "Email", "email", "email"),
      input("password", "Password", "password", "new-password", "At least 12 characters."),
      input("display_name", "Display name (optional)", "text", "nickname"),
    ],
    "Create account",
    async (v) => {
      await api.users.register({ username: v("username"), email: v("email"), password: v("password"), displayName: v("display_name") });
      await session.login(v("username"), v("password"));
    },
    h("p", {}, "Have an account? ", h("a", { href: `#/signin?next=${encodeURIComponent(after(route))}` }, "Sign in")),
  );
}

/** `#/signout`. */
export async function signOutPage(route: Route): Promise<void> {
  await session.logout();
  window.dispatchEvent(new Event("polyshop:session"));
  route.main.replaceChildren(h("h1", {}, "Signed out"), h("p", {}, "You are signed out. ", h("a", { href: "#/" }, "Continue shopping")));
  focusHeading(route.main);
}

function notificationItem(n: Notification, route: Route): HTMLElement {
  const mark = h("button", {
    type: "button",
    onclick: async () => {
      mark.disabled = true;
      try {
        await api.notifications.markNotificationRead({ notificationId: n.notificationId });
        void dashboardPage(route);
      } catch (e) {
        mark.disabled = false;
        mark.after(h("span", { role: "alert" }, ` ${problemOf(e).message}`));
      }
    },
  }, `Mark “${n.title}” as read`);
  return h(
    "li",
    { class: n.read ? "notification read" : "notification unread", "data-kind": NotificationKind[n.kind] },
    h("h3", {}, n.title, n.read ? "" : h("span", { class: "badge" }, "new")),
    h("p", {}, n.body),
    h("p", { class: "meta" }, when(n.createTime)),
    n.read ? "" : mark,
  );
}

/** `#/account`: the dashboard. */
export async function dashboardPage(route: Route): Promise<void> {
  if (!requireSignIn(route)) return;
  const box = h("div", { class: "problem", hidden: true });
  if (!route.main.querySelector("#dashboard")) route.main.replaceChildren(h("h1", { id: "dashboard" }, "Your account"), h("p", { "aria-busy": "true" }, "Loading…"));
  try {
    const d = await api.storefront.getDashboard({ recentLimit: 10 }, { signal: route.signal });
    if (route.signal.aborted) return;
    const p = d.profile;
    route.main.replaceChildren(
      h("h1", { id: "dashboard" }, `Hello, ${p?.displayName || p?.username || session.user?.username}`),
      d.degraded.length ? h("p", { class: "note", role: "status" }, `Some parts could not be loaded right now: ${d.degraded.join(", ")}.`) : "",
      p ? h("p", {}, `Signed in as ${p.username} (${p.email}). `, h("a", { href: "#/signout" }, "Sign out")) : "",
      h("section", { "aria-labelledby": "recent-h" },
        h("h2", { id: "recent-h" }, "Recent orders"),
        d.recentOrders.length === 0 ? h("p", {}, "No orders yet.") :
          h("ul", {}, ...d.recentOrders.map((o) => h("li", {}, h("a", { href: `#/orders/${o.orderId}` }, `Order of ${when(o.createTime)}`), ` — ${enumLabel(OrderStatus, o.status)}, ${money(o.total)}`))),
        h("p", {}, h("a", { href: "#/orders" }, "All orders"))),
      h("section", { "aria-labelledby": "notes-h" },
        h("h2", { id: "notes-h" }, `Notifications (${d.unreadNotifications} unread)`),
        d.notifications.length === 0 ? h("p", {}, "No notifications.") : h("ul", { class: "notifications" }, ...d.notifications.map((n) => notificationItem(n, route)))),
      box,
    );
  } catch (e) {
    if (route.signal.aborted) return;
    route.main.replaceChildren(h("h1", { id: "dashboard" }, "Your account"), box);
    showProblem(box, problemOf(e), () => void dashboardPage(route));
  }
}
