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
import { BudgetService } from "./budget/budgets";
import { ModelCatalog } from "./llm/models";
import { CachedKeyResolver } from "./auth";
import { createLogger } from "./telemetry/logger";
import {
  createTelemetry,
  instrumentLlm,
  traceCache,
  traceStore,
  type Telemetry,
} from "./telemetry/otel";
import { BatchService } from "./batch/service";
import { AnthropicBatchUpstream } from "./batch/upstream";
import { ResilientProvider, resilienceOptions } from "./llm/resilient";
import { rateLimiterFromConfig } from "./ratelimit/limiter";

export interface CreateDepsOptions {
  logger?: Logger;
  /** Replace the model provider (tests, benchmarks). */
  llm?: LlmProvider;
  store?: Store;
  /** Use this telemetry instead of building it from the configuration (tests: in-memory span exporter). */
  telemetry?: Telemetry;
}

export function createRedis(url: string, logger: Logger, password?: string, ca?: string): Redis {
  let lastError = 0;
  const redis = new Redis(url, {
    // Fail fast while disconnected: callers degrade (cache miss, in-memory limiter) rather than queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    // A connection that stops answering without a reset (network partition, failover) is dead
    // after this long with commands waiting: reconnect, so callers see it down and degrade, instead
    // of each request waiting out its own timeouts until TCP notices, minutes later.
    socketTimeout: 2000,
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

export async function createDeps(
  config: AppConfig,
  options: CreateDepsOptions = {},
): Promise<AppDeps> {
  const logger =
    options.logger ??
    createLogger({ level: config.LOG_LEVEL, async: config.NODE_ENV === "production" });
  const telemetry = options.telemetry ?? (await createTelemetry(config, { logger })); // routing, batches, telemetry
  const store = traceStore(options.store ?? (await openStore(config, { logger })), telemetry);
  const redis = config.REDIS_URL
    ? createRedis(config.REDIS_URL, logger, config.REDIS_PASSWORD, config.REDIS_TLS_CA)
    : undefined;
  const llm =
    options.llm ??
    (config.ANTHROPIC_API_KEY
      ? // rate limits and resilience: one retry loop, breakers and fallback around the SDK (its retries off)
        new ResilientProvider(
          new AnthropicProvider({
            apiKey: config.ANTHROPIC_API_KEY,
            baseURL: config.ANTHROPIC_BASE_URL,
            timeoutMs: config.UPSTREAM_TIMEOUT_MS,
            maxRetries: 0,
          }),
          resilienceOptions(config, { catalog: ModelCatalog.load(), logger }),
        )
      : new OfflineProvider());
  if (llm.synthetic) {
    logger.warn(
      "ANTHROPIC_API_KEY is not set: answers come from the offline synthetic model, not Claude",
    );
  }
  const usage = new BatchedLedger(store, logger);
  // routing, batches, telemetry: spans and metrics around model calls; batches and their poller
  const catalog = ModelCatalog.load();
  const served = instrumentLlm(llm, telemetry, catalog);
  if (llm instanceof ResilientProvider)
    telemetry.metrics.observeBreakers(() => llm.breakerStates());
  const batches = new BatchService({
    store,
    llm: served,
    upstream:
      config.ANTHROPIC_API_KEY && !llm.synthetic
        ? new AnthropicBatchUpstream({
            apiKey: config.ANTHROPIC_API_KEY,
            baseURL: config.ANTHROPIC_BASE_URL,
            timeoutMs: config.UPSTREAM_TIMEOUT_MS,
          })
        : undefined,
    catalog,
    usage,
    logger,
    metrics: telemetry.metrics,
    tracer: telemetry.tracer,
    pollIntervalMs: config.BATCH_POLL_INTERVAL_MS,
    promptCaching: config.PROMPT_CACHING,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
  });
  if (config.BATCH_POLLER_ENABLED) batches.start();
  const budgets = BudgetService.fromConfig(config, {
    catalog: ModelCatalog.load(),
    store,
    logger,
    redis,
  });
  const deps: AppDeps = {
    config,
    logger,
    store,
    llm: served,
    redis,
    telemetry,
    batches,
    // rate limits and resilience
    rateLimiter: rateLimiterFromConfig(config, redis, logger) ?? undefined,
    resilience: llm instanceof ResilientProvider ? llm : undefined,
    cache: redis
      ? traceCache(new RedisResponseCache(redis, logger), telemetry)
      : new MemoryResponseCache(),
    usage,
    budgets,
    auth: new CachedKeyResolver({ staticKeys: config.AGENT_API_KEYS, store }),
    lifecycle: { draining: false },
    async close() {
      await batches.stop();
      if (!options.llm && llm instanceof ResilientProvider) llm.close();
      await budgets
        .close()
        .catch((err: Error) => logger.error({ err: err.message }, "budgets did not close cleanly"));
      try {
        await usage.close();
      } catch (err) {
        logger.error(
          { err: (err as Error).message, pending: usage.pending },
          "usage ledger not fully flushed at shutdown",
        );
      }
      redis?.disconnect();
      if (!options.store) await store.close();
      if (!options.telemetry) await telemetry.shutdown();
    },
  };
  return deps;
}
