import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { CachedResponse, ResponseCache } from "./types";
import { errorMessage } from "../errors";

/** A cache read slower than this counts as a miss (the upstream call is slower still). */
const READ_TIMEOUT_MS = 500;

/** Shared cache across replicas. Redis trouble degrades to a miss, never to a failed request. */
export class RedisResponseCache implements ResponseCache {
  readonly kind = "redis" as const;
  private lastWarn = 0;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly readTimeoutMs = READ_TIMEOUT_MS,
  ) {}

  async get(key: string): Promise<CachedResponse | null> {
    // Don't queue behind a reconnect: when Redis is down, a miss now beats a hit later.
    if (this.redis.status !== "ready") return null;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A Redis that stops answering (partition) would otherwise hold the request until the
      // connection is declared dead, and a read already sent then waits for the reconnect.
      const raw = await Promise.race([
        this.redis.get(key),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.readTimeoutMs} ms`)),
            this.readTimeoutMs,
          );
        }),
      ]);
      return raw ? (JSON.parse(raw) as CachedResponse) : null;
    } catch (err) {
      this.warn("cache read failed", err);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  async set(key: string, value: CachedResponse, ttlSeconds: number, text?: string): Promise<void> {
    if (ttlSeconds <= 0 || this.redis.status !== "ready") return;
    try {
      await this.redis.set(key, text ?? JSON.stringify(value), "EX", ttlSeconds);
    } catch (err) {
      this.warn("cache write failed", err);
    }
  }

  // One warning per 10 s: an outage under load must not flood the logs.
  private warn(msg: string, err: unknown) {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    this.logger.warn({ err: errorMessage(err) }, msg);
  }
}
