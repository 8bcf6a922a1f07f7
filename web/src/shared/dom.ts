// DOM helpers shared by both pages: one element builder, money and time formatting.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Money } from "../../gen/polyshop/api/v1/money_pb.js";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** `<tag attrs>children</tag>`: `on…` attributes become listeners; false/null ones are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const digits = new Map<string, number>();

/** `12.99 €`-style text for a Money (integer minor units, never a float on the wire). */
export function money(m: Money | undefined): string {
  if (!m || !m.currencyCode) return "—";
  return moneyOf(m.amountMinor, m.currencyCode);
}

/** Formats `minor` units of `currency`. */
export function moneyOf(minor: bigint, currency: string): string {
  let fmt: Intl.NumberFormat;
  try {
    fmt = new Intl.NumberFormat(undefined, { style: "currency", currency });
  } catch {
    return `${minor} ${currency} (minor units)`;
  }
  let d = digits.get(currency);
  if (d === undefined) {
    d = fmt.resolvedOptions().maximumFractionDigits ?? 2;
    digits.set(currency, d);
  }
  return fmt.format(Number(minor) / 10 ** d);
}

/** Local date and time of a Timestamp. */
export function when(t: Timestamp | undefined): string {
  if (!t) return "—";
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toLocaleString();
}

/** `Confirmed` for OrderStatus.CONFIRMED: a generated enum's value name (protobuf-es strips
 * the `ORDER_STATUS_` prefix), as words. */
export function enumLabel(names: Record<number, string>, value: number): string {
  const name = names[value] ?? "UNSPECIFIED";
  const words = name.toLowerCase().replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A random id for idempotency keys (crypto.randomUUID needs a secure context; this does not). */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Moves keyboard focus to a page's main heading after navigation, for screen readers. */
export function focusHeading(root: ParentNode): void {
  const heading = root.querySelector<HTMLElement>("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}
