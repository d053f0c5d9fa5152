/**
 * The API (/v1). Every request to it goes through the guard: a body size limit, the API key, the
 * per-user concurrency limit (which must also bound slow clients on paths no route matches). Each
 * route module then registers its routes with the chain it declares (routes/chain.ts): the rate
 * limits, the facts of a model request, Idempotency-Key replays.
 */
import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { authMiddleware } from "../auth";
import { concurrencyMiddleware } from "../concurrency";
import type { AppDeps } from "../deps";
import { errorBody } from "../errors";
import type { AppContext, AppEnv } from "../http";
import type { ModelCatalog } from "../llm/models";
import { registerBatchRoutes } from "./batches";
import { RouteChains } from "./chain";
import { registerMessageRoutes } from "./messages";
import { registerSessionRoutes } from "./sessions";
import { registerUsageRoutes } from "./usage";

const API = "/v1/*";

export function registerApiRoutes(app: Hono<AppEnv>, deps: AppDeps, catalog: ModelCatalog) {
  app.use(API, bodyLimitGuard(deps.config.MAX_BODY_BYTES));
  app.use(API, authMiddleware(deps.auth, deps.logger));
  if (deps.config.MAX_CONCURRENT_REQUESTS_PER_USER > 0)
    app.use(API, concurrencyMiddleware(deps.config.MAX_CONCURRENT_REQUESTS_PER_USER));

  const chains = new RouteChains(deps);
  registerMessageRoutes(app, deps, catalog, chains);
  registerSessionRoutes(app, deps, catalog, chains);
  registerBatchRoutes(app, deps, catalog, chains);
  registerUsageRoutes(app, deps, chains);
  // Registered last, so it runs only where no route answered: a path no route matches counts
  // against the rate limit like any other request with a key, then gets its 404.
  app.use(API, chains.plain());
}

/**
 * A declared length is checked from the header alone. Hono's bodyLimit reads `raw.body`, which
 * turns the Node adapter's lightweight request into a WHATWG Request with a web stream (a
 * measurable share of CPU per request); it is kept for bodies without a length (chunked).
 */
function bodyLimitGuard(maxBody: number) {
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
  return async (c: AppContext, next: () => Promise<void>) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      return Number(length) > maxBody ? tooLarge(c) : next();
    }
    return streamedBodyLimit(c, next);
  };
}
