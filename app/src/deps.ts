/**
 * The dependencies the HTTP app is built from. Entrypoints create them from the validated
 * configuration (`createDeps`); tests build them directly with fakes or real services.
 */
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import type { AppConfig } from "./config";
import type { Store } from "./store/types";
import type { LlmProvider } from "./llm/types";
import type { ResponseCache } from "./cache/types";
import type { UsageRecorder } from "./budget/ledger";
import type { ApiKeyResolver } from "./auth";

export interface AppDeps {
  config: AppConfig;
  logger: Logger;
  store: Store;
  llm: LlmProvider;
  cache: ResponseCache;
  usage: UsageRecorder;
  auth: ApiKeyResolver;
  /** Present when REDIS_URL is configured. */
  redis?: Redis;
  /** Set by the entrypoint on SIGTERM: /ready turns 503 while in-flight work finishes. */
  lifecycle: { draining: boolean };
  /** Release everything: flush the ledger, close pools and connections. */
  close(): Promise<void>;
}
