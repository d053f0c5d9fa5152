/**
 * The API (/v1). The admin API (/v1/admin: routes/admin.ts) has a guard of its own: the body size
 * limit, then an admin key. Every other request goes through the guard: a body size limit, the API key, the
 * per-user concurrency limit (which must also bound slow clients on paths no route matches). Each
 * route module then registers its routes with the chain it declares (routes/chain.ts): the rate
 * limits, the facts of a model request, Idempotency-Key replays.
 *
 * Query strings a route does not read are ignored, as the API ignores them: the official SDK's
 * `client.beta.*` calls and Claude Code send `?beta=true` on every path.
 */
import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { authMiddleware } from "../auth";
import { concurrencyMiddleware } from "../concurrency";
import type { AppDeps } from "../deps";
import { errorBody } from "../errors";
import type { AppContext, AppEnv } from "../http";
import type { ModelCatalog } from "../llm/models";
import { registerAdminRoutes } from "./admin";
import { registerBatchRoutes } from "./batches";
import { registerMessageRoutes } from "./messages";
import { registerModelRoutes } from "./models";
import { registerSessionRoutes } from "./sessions";
import { registerUsageRoutes } from "./usage";
import { RouteChains, sequence } from "./chain";

const API = "/v1/*";

export function registerApiRoutes(app: Hono<AppEnv>, deps: AppDeps, catalog: ModelCatalog) {
  app.use(API, bodyLimitGuard(deps.config.MAX_BODY_BYTES));
  // Admin routes take admin keys and answer every /v1/admin path themselves: the user guard
  // registered after them never runs there.
  registerAdminRoutes(app, deps, catalog);
  // The user guard, as one middleware (one async frame of Hono's compose fewer per layer, as
  // long as each request lasts: chain.ts `sequence`). In order: refused under overload before any
  // work is spent on the request (overload.ts), then the API key, the version, the user's cap.
  app.use(
    API,
    sequence([
      ...(deps.overload ? [deps.overload.middleware] : []),
      authMiddleware(deps.auth, deps.logger),
      versionGuard,
      ...(deps.config.MAX_CONCURRENT_REQUESTS_PER_USER > 0
        ? [concurrencyMiddleware(deps.config.MAX_CONCURRENT_REQUESTS_PER_USER)]
        : []),
    ]),
  );

  const chains = new RouteChains(deps);
  registerMessageRoutes(app, deps, catalog, chains);
  registerModelRoutes(app, catalog, chains);
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

/** The Messages API's paths here (the rest of /v1 is this service's own). */
const VERSIONED_PATH = /^\/v1\/(messages|models)(\/|$)/;

/** An API version is a date (platform.claude.com/docs/en/api/versioning, "Version history"). */
const VERSION_FORMAT = /^\d{4}-\d{2}-\d{2}$/;

/**
 * `anthropic-version`. The API requires it ("When making API requests, you must send an
 * anthropic-version request header. ... If you are using the client SDKs, this is handled for you
 * automatically": the versioning page above) and answers 400 invalid_request_error without it
 * (`anthropic-version: header is required`) or with a value that is not a version
 * (`anthropic-version: "2023-06-01, 2023-06-01" is not a valid version`).
 *
 * A value that is not a date gets that same 400 here. Which dates are versions is the upstream's
 * to say (it gets the header as sent): the list grows (SDK 1.17 sends 2026-10-21, the Vercel AI SDK
 * and LangChain's SDK 2023-06-01), and the offline model answers every version alike.
 *
 * A missing header is the API's 400 too, on the API's own routes (messages, count_tokens, batches,
 * models): a client that works here then works against the API. Every client that speaks the API
 * sends it (the SDKs, the Vercel AI SDK, LangChain through its SDK); curl needs
 * `-H 'anthropic-version: 2023-06-01'`, as against the API. This service's own routes (sessions,
 * usage) have no version and need none.
 */
async function versionGuard(c: AppContext, next: () => Promise<void>) {
  const version = c.req.header("anthropic-version");
  if (version === undefined) {
    if (!VERSIONED_PATH.test(c.req.path)) return next();
    return c.json(
      errorBody(
        "invalid_request_error",
        "anthropic-version: header is required",
        c.get("requestId"),
      ),
      400,
    );
  }
  if (!VERSION_FORMAT.test(version.trim())) {
    return c.json(
      errorBody(
        "invalid_request_error",
        `anthropic-version: ${JSON.stringify(version.slice(0, 64))} is not a valid version`,
        c.get("requestId"),
      ),
      400,
    );
  }
  return next();
}
