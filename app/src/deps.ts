/**
 * The dependencies the HTTP app is built from. Entrypoints create them from the validated
 * configuration (`createDeps`); tests build them directly with fakes or real services.
 */
import type { ModelCatalog } from "./llm/models";
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import type { AppConfig } from "./config";
import type { Store } from "./store/types";
import type { LlmProvider } from "./llm/types";
import type { ResponseCache } from "./cache/types";
import type { UsageRecorder } from "./budget/ledger";
import type { ApiKeyResolver } from "./auth";
import type { Telemetry } from "./telemetry/otel";
import type { BatchService } from "./batch/service";
import type { RequestRateLimiter } from "./ratelimit/limiter";
import type { ResilientProvider } from "./llm/resilient";
import type { BudgetService } from "./budget/budgets";
import type { LifecycleState } from "./lifecycle";
import type { ActivityLog } from "./console/activity";
import type { OverloadGuard } from "./overload";

export interface AppDeps {
  config: AppConfig;
  logger: Logger;
  store: Store;
  llm: LlmProvider;
  cache: ResponseCache;
  usage: UsageRecorder;
  auth: ApiKeyResolver;
  /** Spend budgets (reserve before an upstream call, settle after). Optional so tests can leave it out. */
  budgets?: BudgetService;
  /** RATE_LIMIT_RPM / RATE_LIMIT_TPM per user; absent when both are off (and in tests that leave it out). */
  rateLimiter?: RequestRateLimiter;
  /** The retry/breaker/fallback layer around the real upstream: `breakerStates()`, `onEvent()` for metrics. */
  resilience?: ResilientProvider;
  // routing, batches, telemetry
  /** Metrics and tracing (telemetry/otel.ts); absent in tests that build deps by hand (everything off). */
  telemetry?: Telemetry;
  /** Message batches and their poller; absent: the batch routes are not registered. */
  batches?: BatchService;
  /** Present when REDIS_URL is configured. */
  redis?: Redis;
  /** Draining (set on SIGTERM: /ready turns 503), unsettled work, and the end of the grace period. */
  lifecycle: LifecycleState;
  /**
   * The model table priced for the upstream (Bedrock and Vertex list their own prices): what the
   * routes charge. Absent in tests that build deps by hand: the Anthropic prices.
   */
  catalog?: ModelCatalog;
  /**
   * Recent refusals and alerts and the response cache's savings, per replica, for the operator
   * console (console/activity.ts). Absent in tests that build deps by hand: the console shows none.
   */
  activity?: ActivityLog;
  /**
   * Refuses new API requests with 503 while the process is overloaded (overload.ts:
   * OVERLOAD_LAG_MS). Absent when off, and in tests that build deps by hand.
   */
  overload?: OverloadGuard;
  /** Release everything: flush the ledger, close pools and connections. */
  close(): Promise<void>;
}
