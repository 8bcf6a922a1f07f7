// The one way the pages reach the services: clients generated from proto/ over connect-web's
// grpc-web transport, against the edge that served the page. A bearer token, when there is
// one, is added by an interceptor (never in a URL, never logged).
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

/** The edge's base URL: the page's own origin. For development only, a page served from a
 * loopback address (a static server) may name a loopback edge with `?edge=http://127.0.0.1:8080`;
 * any other value is ignored, so a link cannot send a shopper's password elsewhere. */
export function edgeBaseUrl(): string {
  const loopback = (host: string) => host === "127.0.0.1" || host === "localhost" || host === "[::1]";
  const asked = new URLSearchParams(location.search).get("edge");
  if (asked && loopback(location.hostname)) {
    try {
      const url = new URL(asked);
      if ((url.protocol === "http:" || url.protocol === "https:") && loopback(url.hostname)) return url.origin;
    } catch {
      // Not a URL: use the page's origin.
    }
  }
  return location.origin;
}

/** Supplies the access token for a call (refreshing it first when due), or "" for none. */
export type TokenSource = () => Promise<string>;

/** A transport whose calls carry `authorization: Bearer …` when `token` yields one. */
export function transportWith(token: TokenSource): Transport {
  const bearer: Interceptor = (next) => async (req) => {
    const value = await token();
    if (value) req.header.set("authorization", `Bearer ${value}`);
    return next(req);
  };
  return createGrpcWebTransport({ baseUrl: edgeBaseUrl(), interceptors: [bearer] });
}

/** A client of `service` over `transport`. */
export function clientOf<T extends DescService>(service: T, transport: Transport): Client<T> {
  return createClient(service, transport);
}
