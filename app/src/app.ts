/**
 * Builds the HTTP app from injected dependencies. No process concerns here: listening,
 * signals and the Lambda adapter live in app/entrypoints.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppDeps } from "./deps";
import type { AppContext, AppEnv } from "./http";
import { ApiError, errorBody, sendError } from "./errors";
import { presentedKey } from "./auth";
import { ModelCatalog } from "./llm/models";
import { registerHealthRoutes } from "./routes/health";
import { registerMessageRoutes } from "./routes/messages";
import { registerSessionRoutes } from "./routes/sessions";
import { registerBatchRoutes } from "./routes/batches";
import { telemetryMiddleware } from "./telemetry/otel";
import { rateLimitMiddleware } from "./ratelimit/middleware";
import { IDEMPOTENCY_HEADER, idempotencyMiddleware } from "./idempotency";
import { registerUsageRoutes } from "./routes/usage";
import { concurrencyMiddleware } from "./concurrency";
import { SERVICE_CONTRACT } from "./contract";

const PROBE_PATHS = new Set<string>(Object.values(SERVICE_CONTRACT.probes));

/** Request ids are 12 random bytes; drawn from a pooled buffer, as randomUUID does (one syscall per 256 ids). */
const ID_BYTES = 12;
let idPool = Buffer.alloc(0);
let idAt = 0;
function newRequestId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idAt = 0;
  }
  const id = idPool.toString("base64url", idAt, idAt + ID_BYTES);
  idAt += ID_BYTES;
  return `req_${id}`;
}

export interface BuildAppOptions {
  catalog?: ModelCatalog;
}

export function buildApp(deps: AppDeps, options: BuildAppOptions = {}): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const catalog = options.catalog ?? ModelCatalog.load();
  const log = deps.logger;

  // routing, batches, telemetry: the server span and request metrics, outside the logger so its
  // lines carry trace ids. /metrics is not on this app: it has a port of its own (routes/metrics.ts).
  const telemetry = deps.telemetry && telemetryMiddleware(deps.telemetry);
  if (telemetry) app.use("*", telemetry);

  app.use("*", async (c, next) => {
    const requestId = newRequestId();
    c.set("requestId", requestId);
    c.set("logger", log);
    c.header("request-id", requestId);
    const started = performance.now();
    await next();
    const status = c.res.status;
    // Probes answer many times a minute: log them only when they fail.
    if (PROBE_PATHS.has(c.req.path) && status < 400) return;
    if (log.isLevelEnabled("info")) {
      log.info(
        {
          requestId,
          method: c.req.method,
          path: c.req.routePath || c.req.path,
          status,
          ms: Math.round(performance.now() - started),
          user: c.get("userId"),
        },
        "request",
      );
    }
  });

  registerHealthRoutes(app, deps);

  // A declared length is checked from the header alone. Hono's bodyLimit reads `raw.body`, which
  // turns the Node adapter's lightweight request into a WHATWG Request with a web stream (a
  // measurable share of CPU per request); it is kept for bodies without a length (chunked).
  const maxBody = deps.config.MAX_BODY_BYTES;
  const tooLarge = (c: AppContext) =>
    c.json(
      errorBody(
        "request_too_large",
        `request body exceeds ${maxBody} bytes (MAX_BODY_BYTES)`,
        c.get("requestId"),
      ),
      413,
    );
  const streamedBodyLimit = bodyLimit({ maxSize: maxBody, onError: tooLarge });
  app.use("/v1/*", async (c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      return Number(length) > maxBody ? tooLarge(c) : next();
    }
    return streamedBodyLimit(c, next);
  });

  app.use("/v1/*", async (c, next) => {
    const key = presentedKey({ get: (n) => c.req.header(n) });
    if (!key) {
      throw new ApiError(
        401,
        "authentication_error",
        "missing API key: send x-api-key: <key> or Authorization: Bearer <key>",
      );
    }
    const user = await deps.auth.resolve(key).catch((err: unknown) => {
      log.error({ err: (err as Error).message }, "API key lookup failed");
      throw new ApiError(
        503,
        "service_unavailable",
        "cannot verify the API key right now; retry shortly",
        { "retry-after": "5" },
      );
    });
    if (!user) throw new ApiError(401, "authentication_error", "invalid API key");
    c.set("userId", user);
    await next();
  });
  if (deps.config.MAX_CONCURRENT_REQUESTS_PER_USER > 0)
    app.use("/v1/*", concurrencyMiddleware(deps.config.MAX_CONCURRENT_REQUESTS_PER_USER));

  // --- rate limits and idempotency (after auth: both key on the user) ---
  // POST /v1/messages admits lazily: its cache lookup shares the admission's round trip (a
  // request with an Idempotency-Key is admitted first, before its replay can be served).
  if (deps.rateLimiter)
    app.use(
      "/v1/*",
      rateLimitMiddleware(deps.rateLimiter, {
        lazy: (c) =>
          c.req.method === "POST" &&
          c.req.path === "/v1/messages" &&
          c.req.header(IDEMPOTENCY_HEADER) === undefined,
      }),
    );
  const idempotent = idempotencyMiddleware({
    store: deps.store,
    ttlSeconds: deps.config.IDEMPOTENCY_TTL_SECONDS,
    logger: log,
  });
  app.use("/v1/messages", idempotent);
  app.use("/v1/sessions/:id/messages", idempotent);
  // --- end rate limits and idempotency ---

  registerMessageRoutes(app, deps, catalog);
  registerSessionRoutes(app, deps, catalog);
  registerBatchRoutes(app, deps, catalog); // routing, batches, telemetry
  registerUsageRoutes(app, deps);

  app.notFound((c) =>
    c.json(
      errorBody(
        "not_found_error",
        `no route for ${c.req.method} ${c.req.path}`,
        c.get("requestId"),
      ),
      404,
    ),
  );

  app.onError((err, c) => {
    if (err instanceof ApiError) return sendError(c, err);
    log.error(
      { err: err.message, stack: err.stack, requestId: c.get("requestId") },
      "unhandled error",
    );
    return c.json(errorBody("api_error", "internal error", c.get("requestId")), 500);
  });

  return app;
}
