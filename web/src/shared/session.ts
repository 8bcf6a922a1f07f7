// A signed-in session kept in sessionStorage (this tab only; never in a URL or a log): the
// access token, its expiry, and the refresh token that gets the next one through
// UserService.RefreshToken. Refresh tokens are single use, so one refresh at a time.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { UserService, Role } from "../../gen/polyshop/user/v1/user_pb.js";
import { clientOf, transportWith } from "./rpc.js";

interface Stored {
  access: string;
  /** Milliseconds since the epoch. */
  expires: number;
  refresh: string;
  userId: string;
  username: string;
  admin: boolean;
}

const millis = (t: Timestamp | undefined) => (t ? Number(t.seconds) * 1000 : Date.now() + 60_000);
/** Refresh this long before the access token expires. */
const MARGIN_MS = 30_000;

/** One sign-in, stored under `key` in sessionStorage. */
export class Session {
  private refreshing: Promise<string> | undefined;
  private readonly users = clientOf(UserService, transportWith(async () => ""));
  /** Called when the session ends on its own (refresh refused). */
  onEnded: () => void = () => {};

  constructor(private readonly key: string) {}

  private read(): Stored | undefined {
    try {
      const raw = sessionStorage.getItem(this.key);
      return raw ? (JSON.parse(raw) as Stored) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The signed-in user, if any. */
  get user(): { userId: string; username: string; admin: boolean } | undefined {
    return this.read();
  }

  /** Signs in; throws the Login error as is. */
  async login(login: string, password: string): Promise<void> {
    const r = await this.users.login({ login, password });
    const u = r.user;
    sessionStorage.setItem(
      this.key,
      JSON.stringify({
        access: r.accessToken,
        expires: millis(r.expireTime),
        refresh: r.refreshToken,
        userId: u?.userId ?? "",
        username: u?.username ?? login,
        admin: u?.roles.includes(Role.ADMIN) ?? false,
      } satisfies Stored),
    );
  }

  /** Signs out here and ends the sign-in on the server (best effort). */
  async logout(): Promise<void> {
    const s = this.read();
    sessionStorage.removeItem(this.key);
    if (s?.refresh) await this.users.logout({ refreshToken: s.refresh }).catch(() => undefined);
  }

  /** The access token for a call, refreshed first when it is about to expire; "" when signed out. */
  token = async (): Promise<string> => {
    const s = this.read();
    if (!s) return "";
    if (s.expires - Date.now() > MARGIN_MS || !s.refresh) return s.access;
    return this.refresh();
  };

  private refresh(): Promise<string> {
    this.refreshing ??= (async () => {
      const s = this.read();
      if (!s) return "";
      try {
        const r = await this.users.refreshToken({ refreshToken: s.refresh });
        sessionStorage.setItem(this.key, JSON.stringify({ ...s, access: r.accessToken, expires: millis(r.expireTime), refresh: r.refreshToken }));
        return r.accessToken;
      } catch (e) {
        if (ConnectError.from(e).code === Code.Unauthenticated) {
          sessionStorage.removeItem(this.key);
          this.onEnded();
          return "";
        }
        return s.access;
      }
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }
}
