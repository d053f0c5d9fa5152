/**
 * API-key authentication: `x-api-key: <key>` or `Authorization: Bearer <key>`.
 * Keys come from AGENT_API_KEYS (local runs, tests) and from hashed keys in Postgres.
 */
import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { ApiError } from "./errors";
import type { AppEnv } from "./http";
import type { Store } from "./store/types";

export interface ApiKeyResolver {
  /** The user a key belongs to, or null. */
  resolve(key: string): Promise<string | null>;
  /** Forget what is remembered of the user's keys (one was revoked): the next use asks again. */
  forgetUser?(userId: string): void;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export function presentedKey(headers: {
  get(name: string): string | null | undefined;
}): string | null {
  const direct = headers.get("x-api-key");
  if (direct) return direct.trim() || null;
  const auth = headers.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m?.[1]) return m[1].trim();
  }
  return null;
}

/** Sets `userId` from the presented key; 401 without a valid one, 503 when keys cannot be checked. */
export function authMiddleware(
  auth: ApiKeyResolver,
  logger: Pick<Logger, "error">,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = presentedKey({ get: (n) => c.req.header(n) });
    if (!key) {
      throw new ApiError(
        401,
        "authentication_error",
        "missing API key: send x-api-key: <key> or Authorization: Bearer <key>",
      );
    }
    const user = await auth.resolve(key).catch((err: unknown) => {
      logger.error(
        { err: err instanceof Error ? err.message : String(err) },
        "API key lookup failed",
      );
      throw new ApiError(
        503,
        "service_unavailable",
        "cannot verify the API key right now; retry shortly",
        { "retry-after": "5" },
      );
    });
    if (!user) throw new ApiError(401, "authentication_error", "invalid API key");
    c.set("userId", user);
    await next();
  };
}

export interface KeyResolverOptions {
  staticKeys?: Array<{ user: string; key: string }>;
  store?: Pick<Store, "findUserByApiKey">;
  /** How long a database lookup is remembered; bounds how long a revoked key keeps working. @default 30000 */
  positiveTtlMs?: number;
  /** Unknown keys are remembered briefly so a flood of bad keys does not reach the database. @default 5000 */
  negativeTtlMs?: number;
  /** Keys remembered of each kind (known, unknown), the oldest forgotten first. @default 10000 */
  maxEntries?: number;
  now?: () => number;
}

/**
 * The shape of the keys this service issues (`createApiKey`: "ak_" and 32 random bytes in
 * base64url). Anything else cannot be in the database: it is refused without a query.
 */
export const ISSUED_KEY = /^ak_[A-Za-z0-9_-]{43}$/;

export class CachedKeyResolver implements ApiKeyResolver {
  // Static keys are compared by hash, so lookup time does not depend on how much of a key matches.
  private readonly staticByHash = new Map<string, string>();
  // Known and unknown keys are remembered apart: a flood of unknown ones cannot push out the
  // known ones (every real client would then reach the database again).
  private readonly known = new Map<string, { user: string; until: number }>();
  private readonly unknown = new Map<string, number>();
  /** Lookups under way: the same key arriving many times at once costs one query. */
  private readonly pending = new Map<string, Promise<string | null>>();
  /** Bumped by `forgetUser`: a lookup that started before it is not remembered. */
  private generation = 0;
  private readonly positiveTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly options: KeyResolverOptions) {
    for (const { user, key } of options.staticKeys ?? []) this.staticByHash.set(sha256(key), user);
    this.positiveTtlMs = options.positiveTtlMs ?? 30_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async resolve(key: string): Promise<string | null> {
    if (key.length < 8 || key.length > 512) return null;
    const hash = sha256(key);
    const fixed = this.staticByHash.get(hash);
    if (fixed) return fixed;
    const store = this.options.store;
    if (!store || !ISSUED_KEY.test(key)) return null;
    const now = this.now();
    const hit = this.known.get(hash);
    if (hit && hit.until > now) return hit.user;
    const miss = this.unknown.get(hash);
    if (miss !== undefined && miss > now) return null;
    const running = this.pending.get(hash);
    if (running) return running;
    const generation = this.generation;
    const lookup = store
      .findUserByApiKey(key)
      .then((user) => {
        if (generation === this.generation) this.remember(hash, user, this.now());
        return user;
      })
      .finally(() => {
        if (this.pending.get(hash) === lookup) this.pending.delete(hash);
      });
    this.pending.set(hash, lookup);
    return lookup;
  }

  forgetUser(userId: string): void {
    for (const [hash, entry] of this.known) if (entry.user === userId) this.known.delete(hash);
    // A lookup under way may have read the key before it was revoked: let it not be remembered.
    this.pending.clear();
    this.generation++;
  }

  private remember(hash: string, user: string | null, now: number) {
    this.known.delete(hash);
    this.unknown.delete(hash);
    if (user) this.known.set(hash, { user, until: now + this.positiveTtlMs });
    else this.unknown.set(hash, now + this.negativeTtlMs);
    for (const map of [this.known, this.unknown] as Array<Map<string, unknown>>)
      if (map.size > this.maxEntries) map.delete(map.keys().next().value!);
  }
}
