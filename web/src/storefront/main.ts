// The storefront at `/`: hash routes (`#/product/<id>`, `#/orders/<id>` …) so the edge serves
// one HTML file, a header with search, cart and account links, and one page at a time.
import { h } from "../shared/dom.js";
import { signIn } from "../shared/errors.js";
import { dashboardPage, signInPage, signOutPage, signUpPage } from "./account.js";
import { session, type Route } from "./app.js";
import * as cart from "./cart.js";
import { listPage, productPage } from "./catalog.js";
import { cartPage, checkoutPage } from "./checkout.js";
import { orderPage, ordersPage } from "./orders.js";

const pages: Record<string, (r: Route) => void | Promise<void>> = {
  "": listPage,
  product: productPage,
  cart: cartPage,
  checkout: checkoutPage,
  signin: signInPage,
  signup: signUpPage,
  signout: signOutPage,
  account: dashboardPage,
  orders: (r) => (r.parts[1] ? orderPage(r) : ordersPage(r)),
};

const main = document.getElementById("main")!;
let current: AbortController | undefined;

function header(): void {
  const n = cart.count();
  const user = session.user;
  document.getElementById("cart-link")!.textContent = `Cart (${n})`;
  document.getElementById("account-links")!.replaceChildren(
    ...(user
      ? [h("li", {}, h("a", { href: "#/orders" }, "Orders")), h("li", {}, h("a", { href: "#/account" }, `Account (${user.username})`)), h("li", {}, h("a", { href: "#/signout" }, "Sign out"))]
      : [h("li", {}, h("a", { href: "#/signin" }, "Sign in")), h("li", {}, h("a", { href: "#/signup" }, "Sign up"))]),
  );
}

function route(): void {
  current?.abort();
  current = new AbortController();
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?", 2);
  const parts = path.split("/").map(decodeURIComponent);
  const page = pages[parts[0]] ?? listPage;
  header();
  void page({ main, parts, query: new URLSearchParams(search), signal: current.signal });
}

document.getElementById("search")!.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = (document.getElementById("search-q") as HTMLInputElement).value.trim();
  location.hash = q ? `#/?q=${encodeURIComponent(q)}` : "#/";
});
signIn.href = "#/signin";
cart.onCartChange(header);
window.addEventListener("polyshop:session", header);
session.onEnded = () => {
  header();
  main.prepend(h("p", { class: "problem", role: "alert" }, "Your sign-in has ended. Please sign in again."));
};
// The skip link must not change the hash: that is the router's.
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", route);
route();
