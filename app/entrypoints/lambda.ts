/**
 * AWS Lambda entrypoint (Function URL, HTTP API v2, REST API v1). Thin on purpose: cold start,
 * the Lambda adapter and per-invocation bookkeeping. Everything else is in app/src.
 *
 * LAMBDA_INVOKE_MODE picks the handler shape and must match the Function URL's InvokeMode:
 *   BUFFERED (default)  the whole response is returned at once (Function URL, HTTP API, REST API);
 *   RESPONSE_STREAM     bytes reach the client as they are written (Function URL only), so SSE
 *                       from /v1/messages with "stream": true arrives token by token.
 */
import type { Writable } from "node:stream";
import {
  handle,
  streamHandle,
  type APIGatewayProxyResult,
  type LambdaContext,
  type LambdaEvent,
} from "hono/aws-lambda";
import { ConfigError, loadConfig, type AppConfig } from "../src/config";
import { createDeps, type CreateDepsOptions } from "../src/bootstrap";
import { buildApp } from "../src/app";
import type { AppDeps } from "../src/deps";
import { resolveSecretReferences } from "../src/secrets";
import { createLogger } from "../src/telemetry/logger";

export type InvokeMode = "BUFFERED" | "RESPONSE_STREAM";

/** One Lambda sandbox serves one request at a time; the second connection lets a ledger flush overlap a query. */
export const LAMBDA_DEFAULT_POOL_MAX = "2";

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
  const start = () => {
    ready ??= init(env, mode, options.deps ?? {}).catch((err: unknown) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };

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
): Promise<Ready> {
  const started = performance.now();
  const secrets = await resolveSecretReferences(env);
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
  logger.info(
    {
      initMs: Math.round(performance.now() - started),
      mode,
      secrets: secrets.map((s) => s.variable),
      store: deps.store.kind,
      cache: deps.cache.kind,
      poolMax: config.DATABASE_POOL_MAX,
      synthetic: deps.llm.synthetic,
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

// Signal handlers only inside Lambda: importing this module elsewhere (tests) must not touch the process.
export const handler = createLambdaHandler({
  env: process.env,
  handleSignals: Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME),
});
