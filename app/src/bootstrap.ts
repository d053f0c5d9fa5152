/**
 * Turns validated configuration into the app's dependencies: the embedded defaults when
 * DATABASE_URL, REDIS_URL or ANTHROPIC_API_KEY are unset, the real services when they are set.
 * Model calls go to LLM_UPSTREAM (llm/upstream.ts): the Anthropic API, Bedrock or Vertex AI.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { AppConfig } from "./config";
import type { AppDeps } from "./deps";
import { openStore } from "./store";
import type { Store } from "./store/types";
import { OfflineProvider } from "./llm/offline";
import type { LlmProvider } from "./llm/types";
import { MemoryResponseCache } from "./cache/memory";
import { RedisResponseCache } from "./cache/redis";
import { BatchedLedger } from "./budget/ledger";
import { BudgetService } from "./budget/budgets";
import { batchBudgetHooks } from "./budget/batch-hold";
import { ModelCatalog } from "./llm/models";
import { CachedKeyResolver } from "./auth";
import { createLogger } from "./telemetry/logger";
import { createTelemetry, type Telemetry } from "./telemetry/otel";
import { overloadGuard } from "./overload";
import { instrumentLlm, traceCache, traceStore } from "./telemetry/instrument";
import { GEN_AI_PROVIDER_NAMES } from "./llm/upstream-kinds";
import { BatchService } from "./batch/service";
import {
  batchUpstreamFor,
  checkUpstream,
  createUpstreamProvider,
  describeUpstream,
  upstreamPricing,
  type UpstreamOverrides,
} from "./llm/upstream";
import { ResilientProvider, resilienceOptions } from "./llm/resilient";
import { rateLimiterFromConfig } from "./ratelimit/limiter";
import { Lifecycle } from "./lifecycle";
import { errorMessage } from "./errors";
import { ActivityLog } from "./console/activity";

export interface CreateDepsOptions {
  logger?: Logger;
  /** Replace the model provider (tests, benchmarks). */
  llm?: LlmProvider;
  store?: Store;
  /** Use this telemetry instead of building it from the configuration (tests: in-memory span exporter). */
  telemetry?: Telemetry;
  /**
   * The model table (default app/config/models.json, at the prices of LLM_UPSTREAM's cloud);
   * buildApp must get the same one.
   */
  catalog?: ModelCatalog;
  /** Cloud credentials instead of the default chains (tests reach local fakes with these). */
  upstream?: UpstreamOverrides;
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
    // Commands issued in the same tick (rate limits, cache, budgets of concurrent requests) leave
    // in one write: per-command socket writes were the largest single cost under load.
    enableAutoPipelining: true,
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

/**
 * Resolves once `redis` is ready (true), or has failed to connect or `ms` has passed (false).
 * Never rejects: a Redis that is down is a degraded start, not a failed one.
 */
export function waitForRedis(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", onFailure);
      redis.off("end", onFailure);
      resolve(ready);
    };
    const onReady = () => done(true);
    const onFailure = () => done(false);
    const timer = setTimeout(onFailure, ms);
    redis.once("ready", onReady);
    redis.once("error", onFailure);
    redis.once("end", onFailure);
  });
}

/** The service's logger as its configuration asks: LOG_LEVEL, written asynchronously in production. */
export function serviceLogger(config: AppConfig): Logger {
  return createLogger({ level: config.LOG_LEVEL, async: config.NODE_ENV === "production" });
}

export async function createDeps(
  config: AppConfig,
  options: CreateDepsOptions = {},
): Promise<AppDeps> {
  const logger = options.logger ?? serviceLogger(config);
  // One parse of the model table, shared: resilience, metrics, batches and budgets only read it.
  // Priced as the upstream's cloud charges (a regional premium on Bedrock and Vertex).
  const catalog = options.catalog ?? ModelCatalog.load(undefined, upstreamPricing(config));
  // What the upstream needs (its region, the table's ids for it) is checked before anything opens.
  if (!options.llm) checkUpstream(config, catalog);
  // Connections first: the database handshake and migration check, and Redis's handshake, run
  // while everything else is built (on a Lambda cold start that overlap is most of init).
  const opening = options.store ? undefined : openStore(config, { logger });
  opening?.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  const redis = config.REDIS_URL
    ? createRedis(config.REDIS_URL, logger, config.REDIS_PASSWORD, config.REDIS_TLS_CA)
    : undefined;
  let telemetry: Telemetry | undefined;
  let llm: LlmProvider | undefined;
  try {
    // net.connect opens its socket on process.nextTick, which waits for the microtask queue to
    // drain: yield once so the connects go out now, not after the CPU-bound work below.
    if (opening || redis) await new Promise<void>((resolve) => setImmediate(resolve));
    telemetry = options.telemetry ?? (await createTelemetry(config, { logger })); // routing, batches, telemetry
    // Metric labels name table models only; any other id is `other`.
    telemetry.metrics.labelModels((model) => catalog.labelOf(model));
    // The upstream's provider; none only for LLM_UPSTREAM=anthropic without a key (offline model).
    const upstream = options.llm
      ? undefined
      : await createUpstreamProvider(config, catalog, options.upstream, {
          traced: telemetry.tracer !== undefined,
        });
    const provider =
      options.llm ??
      (upstream
        ? // rate limits and resilience: one retry loop, breakers and fallback around the SDK (its retries off)
          new ResilientProvider(upstream, resilienceOptions(config, { catalog, logger }))
        : new OfflineProvider());
    llm = provider;
    if (provider.synthetic) {
      logger.warn(
        "ANTHROPIC_API_KEY is not set: answers come from the offline synthetic model, not Claude",
      );
    } else if (upstream) {
      logger.info(describeUpstream(config), "model calls go upstream");
    }
    // routing, batches, telemetry: spans and metrics around model calls; batches and their poller
    const served = instrumentLlm(
      provider,
      telemetry,
      catalog,
      GEN_AI_PROVIDER_NAMES[config.LLM_UPSTREAM],
    );
    if (provider instanceof ResilientProvider)
      telemetry.metrics.observeBreakers(() => provider.breakerStates());
    // rate limits and resilience
    const rateLimiter = rateLimiterFromConfig(config, redis, logger) ?? undefined;
    const cache = redis
      ? traceCache(new RedisResponseCache(redis, logger), telemetry)
      : new MemoryResponseCache();
    const store = traceStore(options.store ?? (await opening!), telemetry);
    return assemble({
      config,
      options,
      logger,
      telemetry,
      catalog,
      provider,
      served,
      store,
      redis,
      rateLimiter,
      cache,
    });
  } catch (err) {
    // Nothing this attempt opened stays open (a Lambda sandbox retries on its next invocation).
    // openStore closes its pool itself when migrating fails; a later failure closes it here.
    redis?.disconnect();
    if (!options.llm && llm instanceof ResilientProvider) llm.close();
    const opened = await opening?.catch(() => undefined);
    await opened?.close().catch(() => {});
    if (telemetry && !options.telemetry) await telemetry.shutdown().catch(() => {});
    throw err;
  }
}

/** The store-dependent part of createDeps, once the store is open and migrated. */
function assemble({
  config,
  options,
  logger,
  telemetry,
  catalog,
  provider: llm,
  served,
  store,
  redis,
  rateLimiter,
  cache,
}: {
  config: AppConfig;
  options: CreateDepsOptions;
  logger: Logger;
  telemetry: Telemetry;
  catalog: ModelCatalog;
  provider: LlmProvider;
  served: LlmProvider;
  store: Store;
  redis: Redis | undefined;
  rateLimiter: AppDeps["rateLimiter"];
  cache: AppDeps["cache"];
}): AppDeps {
  const usage = new BatchedLedger(store, logger);
  const batches = new BatchService({
    store,
    llm: served,
    // Anthropic's Message Batches API, a 400 on a cloud without one, or local runs (offline model).
    upstream: batchUpstreamFor(config, llm),
    catalog,
    usage,
    logger,
    metrics: telemetry.metrics,
    tracer: telemetry.tracer,
    pollIntervalMs: config.BATCH_POLL_INTERVAL_MS,
    promptCaching: config.PROMPT_CACHING,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
  });
  const budgets = BudgetService.fromConfig(config, { catalog, store, logger, redis });
  // Batches hold their worst case on the budgets before anything is submitted.
  batches.budget = batchBudgetHooks(budgets);
  if (config.BATCH_POLLER_ENABLED) batches.start();
  const activity = new ActivityLog().observe({ budgets, rateLimiter });
  const overload =
    config.OVERLOAD_LAG_MS > 0 || config.OVERLOAD_SOJOURN_MS > 0 || config.OVERLOAD_MAX_STREAMS > 0
      ? overloadGuard({
          maxLagMs: config.OVERLOAD_LAG_MS,
          minInFlight: config.OVERLOAD_MIN_IN_FLIGHT,
          sojournMs: config.OVERLOAD_SOJOURN_MS,
          maxStreams: config.OVERLOAD_MAX_STREAMS,
          streamLagMs: config.OVERLOAD_STREAM_LAG_MS,
        })
      : undefined;
  if (overload) telemetry.metrics.observeOverload(overload);
  const deps: AppDeps = {
    config,
    logger,
    store,
    catalog,
    llm: served,
    redis,
    telemetry,
    batches,
    // rate limits and resilience
    rateLimiter,
    resilience: llm instanceof ResilientProvider ? llm : undefined,
    cache,
    usage,
    budgets,
    activity,
    overload,
    auth: new CachedKeyResolver({ staticKeys: config.AGENT_API_KEYS, store }),
    lifecycle: new Lifecycle(),
    async close() {
      activity.close();
      overload?.close();
      await batches.stop();
      if (!options.llm && llm instanceof ResilientProvider) llm.close();
      await budgets
        .close()
        .catch((err: Error) => logger.error({ err: err.message }, "budgets did not close cleanly"));
      try {
        await usage.close();
      } catch (err) {
        logger.error(
          { err: errorMessage(err), pending: usage.pending },
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
