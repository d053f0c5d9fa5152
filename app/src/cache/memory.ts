import type { CachedResponse, ResponseCache } from "./types";

/**
 * In-process cache for the embedded default (no REDIS_URL): LRU by insertion order with
 * per-entry expiry, bounded by entry count so memory stays flat.
 */
export class MemoryResponseCache implements ResponseCache {
  readonly kind = "memory" as const;
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    private readonly maxEntries = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<CachedResponse | null> {
    const hit = this.entries.get(key);
    if (!hit) return null;
    if (hit.expiresAt <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    // Refresh recency: Map iteration order is insertion order.
    this.entries.delete(key);
    this.entries.set(key, hit);
    // Stored serialised so callers can never mutate a cached entry through a shared reference.
    return JSON.parse(hit.value) as CachedResponse;
  }

  async set(key: string, value: CachedResponse, ttlSeconds: number, text?: string): Promise<void> {
    if (ttlSeconds <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, {
      value: text ?? JSON.stringify(value),
      expiresAt: this.now() + ttlSeconds * 1000,
    });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
