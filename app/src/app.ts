/**
 * Builds the HTTP app from injected dependencies. No process concerns here: listening,
 * signals and the Lambda adapter live in app/entrypoints.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import type { AppDeps } from "./deps";
import { applyOutHeaders, setHeader, type AppEnv } from "./http";
import { ApiError, errorBody, sendError } from "./errors";
import { ModelCatalog } from "./llm/models";
import { registerApiRoutes } from "./routes/api";
import { registerConsoleRoutes } from "./routes/console";
import { registerHealthRoutes } from "./routes/health";
import { telemetryMiddleware } from "./telemetry/server-spans";

/** Request ids are 12 random bytes; drawn from a pooled buffer, as randomUUID does (one syscall per 256 ids). */
const ID_BYTES = 12;
let idPool = Buffer.alloc(0);
let idAt = 0;
export function newRequestId(): string {
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
  const catalog = options.catalog ?? deps.catalog ?? ModelCatalog.load();
  const log = deps.logger;
  // The access line carries only the app's own fields (ids, route, status, time, user and admin
  // names): nothing the redaction paths could match, so its logger skips them (~1 % of the CPU
  // at 256 connections went to redacting this one line). Every other line keeps them.
  const access = log.child({}, { redact: [] });

  // routing, batches, telemetry: the server span and request metrics, outside the logger so its
  // lines carry trace ids. /metrics is not on this app: it has a port of its own (routes/metrics.ts).
  const telemetry = deps.telemetry && telemetryMiddleware(deps.telemetry);
  if (telemetry) app.use("*", telemetry);

  app.use("*", async (c, next) => {
    const requestId = newRequestId();
    c.set("requestId", requestId);
    c.set("logger", log);
    setHeader(c, "request-id", requestId);
    const started = performance.now();
    await next();
    // Outermost of the app's layers: any response that lacks what they set gets it here.
    applyOutHeaders(c);
    const status = c.res.status;
    // Probes answer many times a minute: log them only when they fail.
    if (c.get("probe") && status < 400) return;
    if (access.isLevelEnabled("info")) {
      access.info(
        {
          requestId,
          method: c.req.method,
          path: c.req.routePath || c.req.path,
          status,
          ms: Math.round(performance.now() - started),
          user: c.get("userId"),
          admin: c.get("admin"),
        },
        "request",
      );
    }
  });

  registerHealthRoutes(app, deps);
  // The operator console's page and assets (public; its data comes from the admin API).
  registerConsoleRoutes(app, deps);
  registerApiRoutes(app, deps, catalog);

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
