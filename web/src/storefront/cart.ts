// The cart, kept in localStorage so it survives reloads and tabs, together with the checkout
// in progress: its idempotency key and the exact request, saved BEFORE CreateOrder is sent and
// removed only once the server has answered with the order. A double click, a reload or a lost
// answer therefore resends the same key, and the order service returns the same order.
import { randomId } from "../shared/dom.js";

/** One cart line, with what the product page showed (the server prices the order). */
export interface Line {
  productId: string;
  name: string;
  /** Minor units, as a decimal string (bigint does not survive JSON). */
  unitMinor: string;
  currency: string;
  quantity: number;
}

/** Where to deliver, in the contract's field names. */
export interface Address {
  recipient: string;
  line1: string;
  line2: string;
  city: string;
  region: string;
  postalCode: string;
  countryCode: string;
}

/** A CreateOrder sent (or about to be) and not yet answered. */
export interface Pending {
  idempotencyKey: string;
  userId: string;
  items: { productId: string; quantity: number }[];
  address: Address;
  paymentMethodToken: string;
}

interface State {
  lines: Line[];
  pending?: Pending;
  /** The last address used, to fill the form next time. */
  address?: Address;
}

const KEY = "polyshop.cart.v1";

function load(): State {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? "null") as State | null;
    return s && Array.isArray(s.lines) ? s : { lines: [] };
  } catch {
    return { lines: [] };
  }
}

function save(s: State): void {
  localStorage.setItem(KEY, JSON.stringify(s));
  listeners.forEach((f) => f());
}

const listeners: (() => void)[] = [];

/** Calls `f` after every change of the cart. */
export function onCartChange(f: () => void): void {
  listeners.push(f);
  window.addEventListener("storage", (e) => e.key === KEY && f());
}

/** The lines in the cart. */
export function lines(): Line[] {
  return load().lines;
}

/** Units in the cart. */
export function count(): number {
  return lines().reduce((n, l) => n + l.quantity, 0);
}

/** Adds `quantity` of a product (capped at `max` units in all). */
export function add(line: Line, max = 1000): void {
  const s = load();
  const have = s.lines.find((l) => l.productId === line.productId);
  if (have) have.quantity = Math.min(max, have.quantity + line.quantity);
  else s.lines.push({ ...line, quantity: Math.min(max, line.quantity) });
  delete s.pending; // A different cart is a different order.
  save(s);
}

/** Sets a line's quantity; 0 removes it. */
export function setQuantity(productId: string, quantity: number): void {
  const s = load();
  s.lines = s.lines
    .map((l) => (l.productId === productId ? { ...l, quantity } : l))
    .filter((l) => l.quantity > 0);
  delete s.pending;
  save(s);
}

/** The checkout waiting for its answer, if any. */
export function pending(): Pending | undefined {
  return load().pending;
}

/** The address last used. */
export function lastAddress(): Address | undefined {
  return load().address;
}

/** Saves the checkout about to be sent, reusing the waiting one's key when the same user
 * places the same cart again (a second click, a retry after an error). */
export function begin(userId: string, address: Address, paymentMethodToken: string): Pending {
  const s = load();
  const items = s.lines.map((l) => ({ productId: l.productId, quantity: l.quantity }));
  const same = s.pending && s.pending.userId === userId && JSON.stringify(s.pending.items) === JSON.stringify(items);
  const key = same && s.pending!.paymentMethodToken === paymentMethodToken ? s.pending!.idempotencyKey : `web-${randomId()}`;
  s.pending = { idempotencyKey: key, userId, items, address, paymentMethodToken };
  s.address = address;
  save(s);
  return s.pending;
}

/** The server answered for `key`: forget the checkout, and empty the cart unless the order
 * was rejected (the shopper may try another card). */
export function settle(key: string, rejected: boolean): void {
  const s = load();
  if (s.pending?.idempotencyKey !== key) return;
  delete s.pending;
  if (!rejected) s.lines = [];
  save(s);
}
