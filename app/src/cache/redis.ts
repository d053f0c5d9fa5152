import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { CachedResponse, ResponseCache } from "./types";

/** Shared cache across replicas. Redis trouble degrades to a miss, never to a failed request. */
export class RedisResponseCache implements ResponseCache {
  readonly kind = "redis" as const;
  private lastWarn = 0;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
  ) {}

  async get(key: string): Promise<CachedResponse | null> {
    // Don't queue behind a reconnect: when Redis is down, a miss now beats a hit later.
    if (this.redis.status !== "ready") return null;
    try {
      const raw = await this.redis.get(key);
      return raw ? (JSON.parse(raw) as CachedResponse) : null;
    } catch (err) {
      this.warn("cache read failed", err);
      return null;
    }
  }

  async set(key: string, value: CachedResponse, ttlSeconds: number): Promise<void> {
    if (ttlSeconds <= 0 || this.redis.status !== "ready") return;
    try {
      await this.redis.set(key, JSON.stringify(value), "EX", ttlSeconds);
    } catch (err) {
      this.warn("cache write failed", err);
    }
  }

  // One warning per 10 s: an outage under load must not flood the logs.
  private warn(msg: string, err: unknown) {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    this.logger.warn({ err: (err as Error).message }, msg);
  }
}
