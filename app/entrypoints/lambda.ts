/**
 * AWS Lambda entrypoint (Function URL, HTTP API v2, REST API v1). Thin on purpose: cold start,
 * the Lambda adapter and per-invocation bookkeeping. Everything else is in app/src.
 *
 * LAMBDA_INVOKE_MODE picks the handler shape and must match the Function URL's InvokeMode:
 *   BUFFERED (default)  the whole response is returned at once (Function URL, HTTP API, REST API);
 *   RESPONSE_STREAM     bytes reach the client as they are written (Function URL only), so SSE
 *                       from /v1/messages with "stream": true arrives token by token.
 */
// First: zod settings apply to schemas built after them (config.ts builds its own at import).
import "./lambda-zod";
import type { Writable } from "node:stream";
import {
  handle,
  streamHandle,
  type APIGatewayProxyResult,
  type LambdaContext,
  type LambdaEvent,
} from "hono/aws-lambda";
import { ConfigError, loadConfig, type AppConfig } from "../src/config";
import { createDeps, waitForRedis, type CreateDepsOptions } from "../src/bootstrap";
import { buildApp } from "../src/app";
import type { AppDeps } from "../src/deps";
import { hasSecretReferences, resolveSecretReferences } from "../src/secrets";
import { createLogger } from "../src/telemetry/logger";
import { isToolWorker } from "../src/agent/tool-worker";

export type InvokeMode = "BUFFERED" | "RESPONSE_STREAM";

/** One Lambda sandbox serves one request at a time; the second connection lets a ledger flush overlap a query. */
export const LAMBDA_DEFAULT_POOL_MAX = "2";

/**
 * How long init waits for Redis to be ready. Without it the first request of every sandbox would
 * find Redis still handshaking and fall back to the per-sandbox limiter, budgets and no cache. A
 * healthy Redis in the VPC is ready in milliseconds (its handshake overlaps the database's); one
 * that refuses connections ends the wait at once; only an unreachable one costs the whole wait.
 */
export const LAMBDA_REDIS_READY_WAIT_MS = 500;

/** What the Lambda Node.js runtime puts on `globalThis.awslambda` (absent anywhere else). */
export interface AwsLambdaGlobal {
  streamifyResponse<H extends StreamingHandler>(handler: H): H;
  HttpResponseStream: {
    from(
      stream: Writable,
      metadata: { statusCode?: number; headers?: Record<string, string>; cookies?: string[] },
    ): Writable;
  };
}

export type BufferedHandler = (
  event: LambdaEvent,
  context: LambdaContext,
) => Promise<APIGatewayProxyResult>;
export type StreamingHandler = (
  event: LambdaEvent,
  responseStream: Writable,
  context: LambdaContext,
) => Promise<void>;
/** The handler, plus `shutdown()` to flush and close what the sandbox opened (SIGTERM, tests). */
export type LambdaHandler<H> = H & { shutdown(): Promise<void> };

export interface LambdaHandlerOptions {
  /** Mutated: resolved secrets and Lambda defaults are written into it. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default env.LAMBDA_INVOKE_MODE, else BUFFERED */
  mode?: InvokeMode;
  /** Passed to createDeps (tests inject a logger or a model provider). */
  deps?: CreateDepsOptions;
  /** Close pools and flush on SIGTERM (sent when extensions are registered). @default false */
  handleSignals?: boolean;
  /**
   * Start init now rather than at the first invocation: secrets, configuration and the database
   * and Redis connections get under way while the module is still loading, AWS's recommended
   * pattern for cold starts. A failure is not cached: the first invocation starts again and
   * reports it. @default false
   */
  eager?: boolean;
}

export function invokeMode(env: NodeJS.ProcessEnv): InvokeMode {
  const raw = (env.LAMBDA_INVOKE_MODE || "BUFFERED").toUpperCase();
  if (raw !== "BUFFERED" && raw !== "RESPONSE_STREAM") {
    throw new ConfigError([
      {
        variable: "LAMBDA_INVOKE_MODE",
        message: `must be BUFFERED or RESPONSE_STREAM (got ${env.LAMBDA_INVOKE_MODE})`,
      },
    ]);
  }
  return raw;
}

/**
 * Lambda-only rules, applied after secrets are resolved (DATABASE_URL may itself come from one)
 * and before validation.
 */
export function applyLambdaEnvironment(env: NodeJS.ProcessEnv): void {
  if (!env.DATABASE_URL) {
    // The embedded database would live in one sandbox's /tmp: every instance would see different
    // keys, sessions and budgets, and all of it would vanish when the sandbox is recycled.
    throw new ConfigError([
      {
        variable: "DATABASE_URL",
        message:
          "is required on Lambda (postgres://user@host:5432/db); the embedded database is for local runs only",
      },
    ]);
  }
  // A pool sized for a long-lived server, times hundreds of concurrent sandboxes, exhausts max_connections.
  if (env.AWS_LAMBDA_FUNCTION_NAME && !env.DATABASE_POOL_MAX)
    env.DATABASE_POOL_MAX = LAMBDA_DEFAULT_POOL_MAX;
  // No scrape target and no background work in a sandbox that freezes between invocations: a
  // status read of a due batch polls it on the spot instead.
  env.METRICS_ENABLED ??= "false";
  env.BATCH_POLLER_ENABLED ??= "false";
}

interface Ready {
  deps: AppDeps;
  buffered: BufferedHandler;
  streaming: StreamingHandler | undefined;
}

export function createLambdaHandler(
  options: LambdaHandlerOptions & { mode: "RESPONSE_STREAM" },
): LambdaHandler<StreamingHandler>;
export function createLambdaHandler(
  options: LambdaHandlerOptions & { mode: "BUFFERED" },
): LambdaHandler<BufferedHandler>;
export function createLambdaHandler(
  options?: LambdaHandlerOptions,
): LambdaHandler<BufferedHandler | StreamingHandler>;
export function createLambdaHandler(
  options: LambdaHandlerOptions = {},
): LambdaHandler<BufferedHandler | StreamingHandler> {
  const env = options.env ?? process.env;
  const mode = options.mode ?? invokeMode(env);
  // Checked at import so a mismatch fails the deployment's first init, not every request.
  const runtime = mode === "RESPONSE_STREAM" ? lambdaRuntime() : undefined;

  // Module scope for the exported handler: config and deps are built once per sandbox and reused
  // by every invocation it serves. A failed start is forgotten so the next invocation retries
  // (a database that was briefly unreachable must not poison the sandbox for its whole life).
  let ready: Promise<Ready> | undefined;
  let failedBefore: string | undefined;
  const start = () => {
    ready ??= init(env, mode, options.deps ?? {}, failedBefore).catch((err: unknown) => {
      ready = undefined;
      failedBefore = err instanceof Error ? err.message : String(err);
      throw err;
    });
    return ready;
  };
  // Nothing awaits an eager start but the first invocation, which retries one that failed.
  if (options.eager) start().catch(() => {});

  /** Flush the ledger and close pools; the next invocation would start afresh. */
  const shutdown = async () => {
    const pending = ready;
    ready = undefined;
    const r = await pending?.catch(() => undefined);
    await r?.deps.close();
  };
  if (options.handleSignals) {
    // Lambda sends SIGTERM before recycling a sandbox when an extension is registered.
    process.once("SIGTERM", () => {
      void shutdown()
        .catch(() => {})
        .finally(() => process.exit(0));
    });
  }

  if (runtime) {
    const streaming = runtime.streamifyResponse<StreamingHandler>(
      async (event, responseStream, context) => {
        const r = await start();
        try {
          await r.streaming!(event, responseStream, context);
        } finally {
          await settle(r);
        }
      },
    );
    return Object.assign(streaming, { shutdown });
  }
  const buffered: BufferedHandler = async (event, context) => {
    const r = await start();
    try {
      return await r.buffered(event, context);
    } finally {
      await settle(r);
    }
  };
  return Object.assign(buffered, { shutdown });
}

async function init(
  env: NodeJS.ProcessEnv,
  mode: InvokeMode,
  depsOptions: CreateDepsOptions,
  failedBefore: string | undefined,
): Promise<Ready> {
  const started = performance.now();
  // No await unless there are references to fetch: then everything up to opening the connections
  // runs synchronously, inside the module load when the handler starts eagerly.
  const secrets = hasSecretReferences(env) ? await resolveSecretReferences(env) : [];
  applyLambdaEnvironment(env);
  const config: AppConfig = loadConfig(env);
  // Synchronous writes: an async buffer still holding lines when the sandbox freezes loses them
  // or ships them minutes late, and stdout is all Lambda collects.
  const logger = depsOptions.logger ?? createLogger({ level: config.LOG_LEVEL, async: false });
  const deps = await createDeps(config, { ...depsOptions, logger });
  let ready: Ready;
  try {
    const app = buildApp(deps);
    ready = {
      deps,
      buffered: handle(app),
      // streamHandle() calls awslambda.streamifyResponse, which returns the function it is given.
      streaming:
        mode === "RESPONSE_STREAM" ? (streamHandle(app) as unknown as StreamingHandler) : undefined,
    };
  } catch (err) {
    // The next invocation starts again from scratch: do not leave this attempt's pool open.
    await deps.close().catch(() => {});
    throw err;
  }
  // Connecting since createDeps began, alongside the database: usually ready by now.
  const redisReady = deps.redis
    ? await waitForRedis(deps.redis, LAMBDA_REDIS_READY_WAIT_MS)
    : undefined;
  logger.info(
    {
      initMs: Math.round(performance.now() - started),
      // On the process's clock (ms since it started): where init ended, for a cold-start breakdown.
      readyAtMs: Math.round(performance.now() * 10) / 10,
      mode,
      secrets: secrets.map((s) => s.variable),
      store: deps.store.kind,
      cache: deps.cache.kind,
      redisReady,
      poolMax: config.DATABASE_POOL_MAX,
      synthetic: deps.llm.synthetic,
      // An earlier attempt in this sandbox failed (say, the database was briefly unreachable).
      failedBefore,
    },
    "lambda cold start complete",
  );
  return ready;
}

/**
 * Spend is written before the invocation ends: a frozen sandbox runs no timers, and one that is
 * recycled never comes back, so entries left queued for the ledger's timer could be lost. A
 * failed write stays queued and is retried by the next invocation; it does not fail this one.
 */
async function settle(r: Ready): Promise<void> {
  if (r.deps.usage.pending === 0) return;
  try {
    await r.deps.usage.flush();
    await r.deps.telemetry?.flush();
  } catch (err) {
    r.deps.logger.error(
      { err: (err as Error).message, pending: r.deps.usage.pending },
      "usage ledger flush failed; retrying on the next invocation",
    );
  }
}

function lambdaRuntime(): AwsLambdaGlobal {
  const runtime = (globalThis as { awslambda?: AwsLambdaGlobal }).awslambda;
  if (!runtime?.streamifyResponse || !runtime.HttpResponseStream) {
    throw new Error(
      "LAMBDA_INVOKE_MODE=RESPONSE_STREAM needs the Lambda Node.js runtime (its awslambda.streamifyResponse global); " +
        "outside Lambda use BUFFERED",
    );
  }
  return runtime;
}

// Signal handlers and the eager start only inside Lambda: importing this module elsewhere (tests)
// must neither touch the process nor open connections.
// The bundle is also the script of the tool worker threads, which must not start the service.
const inLambda = Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME) && !isToolWorker();
export const handler = createLambdaHandler({
  env: process.env,
  handleSignals: inLambda,
  eager: inLambda,
});
