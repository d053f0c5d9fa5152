/**
 * Operators' keys for /v1/admin: `x-api-key: <key>` or `Authorization: Bearer <key>`, as for users.
 * Keys come from ADMIN_API_KEYS (local runs, tests) and from hashed keys in Postgres (`admin_keys`,
 * created through the admin API). A user's key is never an admin key: the two live apart, and an
 * admin route answers a valid user key with 403 (no key or an unknown one: 401).
 *
 * With OIDC sign-in (console/oidc.ts) the console's sessions are admin credentials too: "cs_"
 * tokens, their hashes in `console_sessions`, named by the signed-in admin's e-mail.
 */
import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { presentedKey, type ApiKeyResolver } from "./auth";
import { ApiError, errorMessage } from "./errors";
import type { AppEnv } from "./http";
import type { AdminStore } from "./store/types";

/** The shape of the admin keys this service issues (`createAdminKey`): "adm_" and 32 random bytes. */
export const ADMIN_KEY = /^adm_[A-Za-z0-9_-]{43}$/;
/** The shape of the console sessions an OIDC sign-in issues: "cs_" and 32 random bytes. */
export const CONSOLE_SESSION = /^cs_[A-Za-z0-9_-]{43}$/;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export interface AdminKeyResolverOptions {
  staticKeys?: ReadonlyArray<{ name: string; key: string }>;
  store?: Pick<AdminStore, "findAdminByKey">;
  /** Console sessions (OIDC sign-in); absent: "cs_" tokens are not admin credentials. */
  sessions?: Pick<AdminStore, "findConsoleSession">;
  /** How long a database lookup is remembered; revoking through the API forgets at once. @default 30000 */
  ttlMs?: number;
  now?: () => number;
}

/** Resolves an admin key to the admin's name (what the audit log records), or null. */
export class AdminKeyResolver {
  private readonly staticByHash = new Map<string, string>();
  private readonly cached = new Map<string, { name: string | null; until: number }>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: AdminKeyResolverOptions) {
    for (const { name, key } of options.staticKeys ?? []) this.staticByHash.set(sha256(key), name);
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  async resolve(key: string): Promise<string | null> {
    if (key.length < 8 || key.length > 512) return null;
    const hash = sha256(key);
    const fixed = this.staticByHash.get(hash);
    if (fixed) return fixed;
    const { store, sessions } = this.options;
    const session = sessions !== undefined && CONSOLE_SESSION.test(key);
    if (!session && (!store || !ADMIN_KEY.test(key))) return null;
    const now = this.now();
    const hit = this.cached.get(hash);
    if (hit && hit.until > now) return hit.name;
    let name: string | null;
    let until: number;
    if (session) {
      const found = await sessions.findConsoleSession(key);
      name = found?.email ?? null;
      // Never past the session's end.
      until = found ? Math.min(now + this.ttlMs, Date.parse(found.expiresAt)) : now + 5000;
    } else {
      name = await store!.findAdminByKey(key);
      until = now + (name ? this.ttlMs : 5000);
    }
    // Unknown keys for a few seconds only; admin traffic is small, so the map stays small.
    this.cached.set(hash, { name, until });
    if (this.cached.size > 1000) this.cached.delete(this.cached.keys().next().value!);
    return name;
  }

  /** Forget every remembered lookup (an admin key was revoked). */
  forget(): void {
    this.cached.clear();
  }
}

/**
 * Sets `admin` from the presented key: 401 without a key or with one nobody knows, 403 with a
 * user's key, 503 when keys cannot be checked.
 */
export function adminAuthMiddleware(
  admins: AdminKeyResolver,
  users: ApiKeyResolver,
  logger: Pick<Logger, "error">,
): MiddlewareHandler<AppEnv> {
  const unavailable = (err: unknown): never => {
    logger.error({ err: errorMessage(err) }, "admin key lookup failed");
    throw new ApiError(
      503,
      "service_unavailable",
      "cannot verify the API key right now; retry shortly",
      { "retry-after": "5" },
    );
  };
  return async (c, next) => {
    const key = presentedKey({ get: (n) => c.req.header(n) });
    if (!key) {
      throw new ApiError(
        401,
        "authentication_error",
        "missing admin API key: send x-api-key: <key> or Authorization: Bearer <key>",
      );
    }
    const admin = await admins.resolve(key).catch(unavailable);
    if (admin) {
      c.set("admin", admin);
      return next();
    }
    const user = await users.resolve(key).catch(unavailable);
    if (user) throw new ApiError(403, "permission_error", "this API key is not an admin key");
    throw new ApiError(401, "authentication_error", "invalid API key");
  };
}
