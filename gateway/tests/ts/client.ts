// Drives the edge with a client generated from proto/: register, log in, browse the catalog
// and place an order, all over grpc-web (connect-web's transport, Node's fetch). One request
// breaks a buf.validate rule of the contract: protovalidate-es catches it on the client from the
// generated descriptors alone, and the edge, sent it anyway, names the same field in a BadRequest.
// Then one query and one mutation over GraphQL (`POST /graphql`, plain fetch).
import { create } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
// The catalog's current version: v1 is deprecated (docs/operating.md, API versions).
import { CatalogService } from "./gen/polyshop/catalog/v2/catalog_pb.js";
import { InventoryService } from "./gen/polyshop/inventory/v1/inventory_pb.js";
import { OrderService } from "./gen/polyshop/order/v1/order_pb.js";
import { RegisterRequestSchema, UserService } from "./gen/polyshop/user/v1/user_pb.js";
import { MoneySchema } from "./gen/polyshop/api/v1/money_pb.js";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";

const baseUrl = process.env.EDGE_URL ?? "http://127.0.0.1:8080";
let token = "";
const bearer: Interceptor = (next) => async (req) => {
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
const users = createClient(UserService, transport);
const catalog = createClient(CatalogService, transport);
const inventory = createClient(InventoryService, transport);
const orders = createClient(OrderService, transport);

/** One GraphQL request as the signed-in user: its `data`, or the first error's message and code. */
async function graphql(query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const answer = await response.json();
  if (answer.errors?.length) {
    throw new Error(`graphql: ${answer.errors[0].message} (${answer.errors[0].extensions?.code})`);
  }
  return answer.data;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function ensureProduct(): Promise<string> {
  const listed = await catalog.listProducts({ pageSize: 1 });
  if (listed.products.length > 0) return listed.products[0].productId;
  const login = process.env.ADMIN_LOGIN, password = process.env.ADMIN_PASSWORD;
  if (!login || !password) throw new Error("the catalog is empty: set ADMIN_LOGIN and ADMIN_PASSWORD");
  const saved = token;
  token = (await users.login({ login, password })).accessToken;
  const created = await catalog.createProduct({
    requestId: `ts-${Date.now()}`, name: "TS kettle", category: "kitchen", active: true,
    prices: [create(MoneySchema, { amountMinor: 2599n, currencyCode: "EUR" })],
  });
  const id = created.product!.productId;
  // Inventory learns of the product from product.created, a moment later: NOT_FOUND until then.
  for (let tries = 0; ; tries++) {
    try {
      await inventory.setStock({ productId: id, quantityOnHand: 10 });
      break;
    } catch (e) {
      if (ConnectError.from(e).code !== Code.NotFound || tries >= 100) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  token = saved;
  return id;
}

async function main(): Promise<void> {
  const name = `ts${Date.now().toString(36)}`;
  const password = "typescript password 1";
  const registered = await users.register({ username: name, email: `${name}@example.com`, password });
  check(registered.user?.username === name, "register over grpc-web");

  // RegisterRequest.email carries `(buf.validate.field).string.email`.
  const bad = create(RegisterRequestSchema, { username: `${name}x`, email: "not an email address", password });
  const result = createValidator().validate(RegisterRequestSchema, bad);
  const caught = result.kind === "invalid" ? result.violations.map((v) => `${pathToString(v.field)} ${v.ruleId}`) : [];
  check(
    JSON.stringify(caught) === JSON.stringify(["email string.email"]),
    `protovalidate catches the broken rule from the contract (${result.kind}: ${caught.join(", ")})`,
  );
  let refused: ConnectError | undefined;
  try {
    await users.register(bad);
  } catch (e) {
    refused = ConnectError.from(e);
  }
  const fields = refused?.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field)) ?? [];
  check(
    refused?.code === Code.InvalidArgument && JSON.stringify(fields) === JSON.stringify(["email"]),
    `the edge refuses it: ${refused ? Code[refused.code] : "accepted"}, BadRequest fields [${fields.join(", ")}]`,
  );
  const good = create(RegisterRequestSchema, { ...bad, email: `${name}x@example.com` });
  check(createValidator().validate(RegisterRequestSchema, good).kind === "valid", "the rule kept, protovalidate passes it");

  const login = await users.login({ login: name, password });
  token = login.accessToken;
  check(token.split(".").length === 3, "login returns a JWT");
  const me = await users.getUser({ userId: registered.user!.userId });
  check(me.user?.userId === registered.user!.userId, "authenticated GetUser");

  const profile = await graphql("query($id: String) { getUser(userId: $id) { user { username roles } } }", {
    id: registered.user!.userId,
  });
  check(profile.getUser.user.username === name, "GraphQL query: getUser with proto3 JSON names");
  const added = await graphql(
    "mutation($id: String, $a: AddressInput) { addAddress(userId: $id, address: $a) { address { addressId city } } }",
    { id: registered.user!.userId, a: { recipient: name, line1: "Main St 1", city: "Berlin", postalCode: "10115", countryCode: "DE" } },
  );
  check(added.addAddress.address.city === "Berlin", "GraphQL mutation: addAddress");

  const productId = await ensureProduct();
  const product = await catalog.getProduct({ productId });
  check(typeof product.product?.prices[0]?.amountMinor === "bigint", "GetProduct (catalog v2): int64 as bigint");

  try {
    await users.listUsers({});
    check(false, "a customer may not list users");
  } catch (e) {
    check(ConnectError.from(e).code === Code.PermissionDenied, "admin route refused with PERMISSION_DENIED");
  }

  if (process.env.SKIP_ORDER === "1") return;
  const placed = await orders.createOrder({
    idempotencyKey: `ts-${Date.now()}`,
    items: [{ productId, quantity: 1 }],
    shippingAddress: { recipient: name, line1: "Main St 1", city: "Berlin", postalCode: "10115", countryCode: "DE" },
    paymentMethodToken: "tok_visa",
  });
  check(placed.order !== undefined, `order placed (${placed.order?.status})`);
  const read = await orders.getOrder({ orderId: placed.order!.orderId });
  check(read.order?.orderId === placed.order!.orderId, "GetOrder reads it back");
}

main().catch((e) => {
  console.error(e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : e);
  process.exit(1);
});
