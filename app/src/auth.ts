/**
 * API-key authentication: `x-api-key: <key>` or `Authorization: Bearer <key>`.
 * Keys come from AGENT_API_KEYS (local runs, tests) and from hashed keys in Postgres.
 */
import { createHash } from "node:crypto";
import type { Store } from "./store/types";

export interface ApiKeyResolver {
  /** The user a key belongs to, or null. */
  resolve(key: string): Promise<string | null>;
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

export interface KeyResolverOptions {
  staticKeys?: Array<{ user: string; key: string }>;
  store?: Pick<Store, "findUserByApiKey">;
  /** How long a database lookup is remembered; bounds how long a revoked key keeps working. @default 30000 */
  positiveTtlMs?: number;
  /** Unknown keys are remembered briefly so a flood of bad keys does not reach the database. @default 5000 */
  negativeTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class CachedKeyResolver implements ApiKeyResolver {
  // Static keys are compared by hash, so lookup time does not depend on how much of a key matches.
  private readonly staticByHash = new Map<string, string>();
  private readonly remembered = new Map<string, { user: string | null; until: number }>();
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
    if (!this.options.store) return null;
    const now = this.now();
    const hit = this.remembered.get(hash);
    if (hit && hit.until > now) return hit.user;
    const user = await this.options.store.findUserByApiKey(key);
    if (this.remembered.size >= this.maxEntries) this.remembered.clear();
    this.remembered.set(hash, {
      user,
      until: now + (user ? this.positiveTtlMs : this.negativeTtlMs),
    });
    return user;
  }
}
