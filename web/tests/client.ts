// The browser test's own calls, through the same generated client as the pages (bundled for
// Node by run.sh): seed a catalog as admin, and count a shopper's orders.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { MoneySchema } from "../gen/polyshop/api/v1/money_pb.js";
import { CatalogService } from "../gen/polyshop/catalog/v2/catalog_pb.js";
import { InventoryService } from "../gen/polyshop/inventory/v1/inventory_pb.js";
import { OrderConfirmedSchema, OrderCreatedSchema } from "../gen/polyshop/order/v1/events_pb.js";
import { OrderService } from "../gen/polyshop/order/v1/order_pb.js";
import { OrderStatus } from "../gen/polyshop/order/v1/resources_pb.js";
import { UserService } from "../gen/polyshop/user/v1/user_pb.js";

function clients(baseUrl: string) {
  let token = "";
  const bearer: Interceptor = (next) => async (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  const users = createClient(UserService, transport);
  return {
    catalog: createClient(CatalogService, transport),
    inventory: createClient(InventoryService, transport),
    orders: createClient(OrderService, transport),
    async login(login: string, password: string) {
      token = (await users.login({ login, password })).accessToken;
    },
  };
}

/** A product the test seeds. */
export interface Seed {
  name: string;
  category: string;
  minor: bigint;
  stock: number;
}

/** Creates `seeds` (idempotently, by request id) with stock, as admin; returns their ids. */
export async function seed(baseUrl: string, login: string, password: string, seeds: Seed[]): Promise<string[]> {
  const c = clients(baseUrl);
  await c.login(login, password);
  const ids: string[] = [];
  for (const s of seeds) {
    const created = await c.catalog.createProduct({
      requestId: `web-test-${s.category}-${s.name}`.toLowerCase().replace(/[^a-z0-9-]/g, "-"),
      name: s.name, category: s.category, active: true,
      description: `${s.name}, seeded by the browser test.`,
      prices: [create(MoneySchema, { amountMinor: s.minor, currencyCode: "EUR" })],
    });
    ids.push(created.product!.productId);
  }
  // Inventory learns of a product from product.created a moment later: NOT_FOUND until then.
  for (const [i, productId] of ids.entries()) {
    for (let tries = 0; ; tries++) {
      try {
        await c.inventory.setStock({ productId, quantityOnHand: seeds[i].stock });
        break;
      } catch (e) {
        if (ConnectError.from(e).code !== Code.NotFound || tries >= 150) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  return ids;
}

/** How many orders `login` has (ListOrders, every page). */
export async function countOrders(baseUrl: string, login: string, password: string): Promise<number> {
  const c = clients(baseUrl);
  await c.login(login, password);
  let n = 0, pageToken = "";
  do {
    const r = await c.orders.listOrders({ pageSize: 100, pageToken });
    n += r.orders.length;
    pageToken = r.nextPageToken;
  } while (pageToken);
  return n;
}

/** The payloads of two valid order events for an order no one placed: OrderConfirmed, which
 * the order projection cannot apply before OrderCreated (it retries, then dead-letters it),
 * and OrderCreated, after which a redrive of the first succeeds. */
export function outOfOrderEvents(orderId: string, userId: string): { confirmed: Uint8Array; created: Uint8Array } {
  const now = timestampNow();
  const eur = (amountMinor: bigint) => create(MoneySchema, { amountMinor, currencyCode: "EUR" });
  const confirmed = toBinary(OrderConfirmedSchema, create(OrderConfirmedSchema, { orderId, userId, paymentId: "", occurTime: now }));
  const created = toBinary(OrderCreatedSchema, create(OrderCreatedSchema, {
    occurTime: now,
    order: {
      orderId, userId, status: OrderStatus.PENDING, version: 1n, createTime: now, updateTime: now,
      items: [{ productId: "dead-letter-drill", productName: "Dead-letter drill", quantity: 1, unitPrice: eur(100n), lineTotal: eur(100n) }],
      total: eur(100n),
      shippingAddress: { recipient: "Drill", line1: "Main St 1", city: "Berlin", postalCode: "10115", countryCode: "DE" },
    },
  }));
  return { confirmed, created };
}
