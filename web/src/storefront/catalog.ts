// Browsing: the product list (search, category, pages of 12) and a product's page with its
// stock. Categories have no RPC of their own: they are gathered from one page of 100 products.
import type { Product } from "../../gen/polyshop/catalog/v2/catalog_pb.js";
import { focusHeading, h, money } from "../shared/dom.js";
import { problemOf, showProblem } from "../shared/errors.js";
import * as cart from "./cart.js";
import { api, type Route } from "./app.js";

const PAGE = 12;
let categories: Promise<string[]> | undefined;

function categoryList(): Promise<string[]> {
  categories ??= api.catalog
    .listProducts({ pageSize: 100 })
    .then((r) => [...new Set(r.products.map((p) => p.category))].sort())
    .catch(() => {
      categories = undefined;
      return [];
    });
  return categories;
}

function listHash(q: string, category: string, page = ""): string {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  if (category) p.set("category", category);
  if (page) p.set("page", page);
  const s = p.toString();
  return s ? `#/?${s}` : "#/";
}

function card(p: Product): HTMLElement {
  return h(
    "li",
    { class: "product" },
    h("h2", {}, h("a", { href: `#/product/${p.productId}` }, p.name)),
    h("p", { class: "category" }, p.category),
    h("p", { class: "price" }, money(p.prices[0])),
  );
}

/** `#/?q=…&category=…&page=…`: the product list. */
export async function listPage(route: Route): Promise<void> {
  performance.mark("products:start");
  const q = route.query.get("q") ?? "";
  const category = route.query.get("category") ?? "";
  const page = route.query.get("page") ?? "";
  const title = q ? `Results for “${q}”` : category ? `Category: ${category}` : "All products";
  const nav = h("nav", { class: "categories", "aria-label": "Categories" });
  const list = h("ul", { class: "products", "aria-busy": "true" });
  const box = h("div", { class: "problem", hidden: true });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  route.main.replaceChildren(h("h1", {}, title), nav, box, list, pager);
  const searchBox = document.querySelector<HTMLInputElement>("#search-q");
  if (searchBox && document.activeElement !== searchBox) searchBox.value = q;

  void categoryList().then((names) => {
    if (route.signal.aborted) return;
    const link = (name: string, label: string) =>
      h("a", { href: listHash(q, name), "aria-current": name === category ? "page" : false }, label);
    nav.replaceChildren(h("ul", {}, h("li", {}, link("", "All")), ...names.map((n) => h("li", {}, link(n, n)))));
  });

  try {
    const r = await api.catalog.listProducts({ pageSize: PAGE, pageToken: page, query: q, category }, { signal: route.signal });
    if (route.signal.aborted) return;
    list.replaceChildren(...r.products.map(card));
    if (r.products.length === 0) list.replaceChildren(h("li", { class: "empty" }, q || category ? "No products match." : "The shop has no products yet."));
    list.removeAttribute("aria-busy");
    pager.replaceChildren(
      page ? h("a", { href: listHash(q, category) }, "First page") : "",
      r.nextPageToken ? h("a", { href: listHash(q, category, r.nextPageToken), rel: "next" }, "Next page") : "",
    );
    performance.mark("products:rendered");
    performance.measure("products:render", "products:start", "products:rendered");
  } catch (e) {
    if (route.signal.aborted) return;
    list.removeAttribute("aria-busy");
    showProblem(box, problemOf(e), () => void listPage(route));
  }
}

function stockText(available: number): string {
  if (available <= 0) return "Out of stock";
  if (available <= 5) return `Only ${available} left in stock`;
  return `In stock (${available} available)`;
}

/** `#/product/<id>`: one product, its stock, and "Add to cart". */
export async function productPage(route: Route): Promise<void> {
  const id = route.parts[1] ?? "";
  const box = h("div", { class: "problem", hidden: true });
  route.main.replaceChildren(h("p", { "aria-busy": "true" }, "Loading…"), box);
  try {
    const [{ product }, stock] = await Promise.all([
      api.catalog.getProduct({ productId: id }, { signal: route.signal }),
      api.inventory.getStock({ productId: id }, { signal: route.signal }).catch(() => undefined),
    ]);
    if (!product || route.signal.aborted) return;
    const available = stock?.stock?.quantityAvailable ?? 0;
    const price = product.prices[0];
    const qty = h("input", { id: "qty", name: "quantity", type: "number", min: 1, max: Math.max(1, available), value: 1, required: true });
    const added = h("p", { role: "status", class: "added" });
    const form = h(
      "form",
      {
        class: "add",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const n = Math.max(1, Math.min(available, Number(qty.value) || 1));
          cart.add(
            { productId: product.productId, name: product.name, unitMinor: String(price?.amountMinor ?? 0n), currency: price?.currencyCode ?? "", quantity: n },
            available,
          );
          added.replaceChildren(`Added ${n} × ${product.name} to your cart. `, h("a", { href: "#/cart" }, "View cart"));
        },
      },
      h("div", { class: "field" }, h("label", { for: "qty" }, "Quantity"), qty),
      h("button", { type: "submit", disabled: available <= 0 }, "Add to cart"),
    );
    route.main.replaceChildren(
      h("p", {}, h("a", { href: `#/?category=${encodeURIComponent(product.category)}` }, `← ${product.category}`)),
      h("h1", {}, product.name),
      h("p", { class: "price" }, money(price)),
      h("p", { class: available > 0 ? "stock in" : "stock out", id: "stock" }, stock ? stockText(available) : "Stock unknown right now"),
      product.description ? h("p", { class: "description" }, product.description) : "",
      form,
      added,
      box,
    );
    focusHeading(route.main);
  } catch (e) {
    if (route.signal.aborted) return;
    route.main.replaceChildren(h("h1", {}, "Product"), box);
    showProblem(box, problemOf(e), () => void productPage(route));
  }
}
