/**
 * Turns validated configuration into the app's dependencies: the embedded defaults when
 * DATABASE_URL, REDIS_URL or ANTHROPIC_API_KEY are unset, the real services when they are set.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { AppConfig } from "./config";
import type { AppDeps } from "./deps";
import { openStore } from "./store";
import type { Store } from "./store/types";
import { AnthropicProvider } from "./llm/anthropic";
import { OfflineProvider } from "./llm/offline";
import type { LlmProvider } from "./llm/types";
import { MemoryResponseCache } from "./cache/memory";
import { RedisResponseCache } from "./cache/redis";
import { BatchedLedger } from "./budget/ledger";
import { CachedKeyResolver } from "./auth";
import { createLogger } from "./telemetry/logger";

export interface CreateDepsOptions {
  logger?: Logger;
  /** Replace the model provider (tests, benchmarks). */
  llm?: LlmProvider;
  store?: Store;
}

export function createRedis(url: string, logger: Logger, password?: string, ca?: string): Redis {
  let lastError = 0;
  const redis = new Redis(url, {
    // Fail fast while disconnected: callers degrade (cache miss, in-memory limiter) rather than queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
    ...(password ? { password } : {}),
    ...(ca && url.startsWith("rediss:") ? { tls: { ca } } : {}),
  });
  redis.on("error", (err: Error) => {
    const now = Date.now();
    if (now - lastError > 10_000) logger.warn({ err: err.message }, "redis connection error");
    lastError = now;
  });
  return redis;
}

export async function createDeps(config: AppConfig, options: CreateDepsOptions = {}): Promise<AppDeps> {
  const logger = options.logger ?? createLogger({ level: config.LOG_LEVEL, async: config.NODE_ENV === "production" });
  const store = options.store ?? (await openStore(config, { logger }));
  const redis = config.REDIS_URL ? createRedis(config.REDIS_URL, logger, config.REDIS_PASSWORD, config.REDIS_TLS_CA) : undefined;
  const llm =
    options.llm ??
    (config.ANTHROPIC_API_KEY
      ? new AnthropicProvider({
          apiKey: config.ANTHROPIC_API_KEY,
          baseURL: config.ANTHROPIC_BASE_URL,
          timeoutMs: config.UPSTREAM_TIMEOUT_MS,
        })
      : new OfflineProvider());
  if (llm.synthetic) {
    logger.warn("ANTHROPIC_API_KEY is not set: answers come from the offline synthetic model, not Claude");
  }
  const usage = new BatchedLedger(store, logger);
  const deps: AppDeps = {
    config,
    logger,
    store,
    llm,
    redis,
    cache: redis ? new RedisResponseCache(redis, logger) : new MemoryResponseCache(),
    usage,
    auth: new CachedKeyResolver({ staticKeys: config.AGENT_API_KEYS, store }),
    lifecycle: { draining: false },
    async close() {
      try {
        await usage.close();
      } catch (err) {
        logger.error({ err: (err as Error).message, pending: usage.pending }, "usage ledger not fully flushed at shutdown");
      }
      redis?.disconnect();
      if (!options.store) await store.close();
    },
  };
  return deps;
}
