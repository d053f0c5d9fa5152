/**
 * The middleware chain a route declares for itself, after the API's guard (routes/api.ts: body
 * size, API key, concurrency) that every /v1 request goes through:
 *
 *   plain route (no model call)   rate limit (RPM)
 *   model route                   facts of its body -> [stream gate] -> rate limit (RPM, TPM:
 *                                 the facts' tokens) [-> Idempotency-Key replay]
 *
 * A model route's handler reads the facts from its context (`requestFacts(c)`): the same ones the
 * rate limiter reserved, which the route then prices its budget hold with and routes the model by
 * (request-facts.ts).
 */
import type { MiddlewareHandler } from "hono";
import type { AppDeps } from "../deps";
import type { AppContext, AppEnv } from "../http";
import { IDEMPOTENCY_HEADER, idempotencyMiddleware } from "../idempotency";
import { rateLimitMiddleware } from "../ratelimit/middleware";
import { NO_FACTS, type RequestFacts } from "../request-facts";

export interface ModelRouteOptions {
  /** A repeated Idempotency-Key replays the first response instead of calling the model again. */
  idempotent?: boolean;
  /**
   * Admit lazily: the route runs at once and awaits `admitted(c)` before anything with an effect
   * (see rateLimitMiddleware), so a read it needs anyway shares the admission's round trip. A
   * request with an Idempotency-Key is admitted first, before its replay can be served.
   */
  lazy?: boolean;
}

const passThrough: MiddlewareHandler<AppEnv> = (_c, next) => next();

/**
 * The middleware in order, as one: what hono/combine's `every` does for middleware (a middleware
 * that answers without calling next ends the chain, and its Response is the answer; an error
 * goes to the app's handler), in one call per middleware. `every` wraps each in two async
 * functions of its own (its Hono compose and a wrapper): on every model request, seven async
 * frames and their promises that live as long as the request (~1 % of the CPU at 256
 * connections, with the garbage collector's share of copying them).
 */
export function sequence(middleware: MiddlewareHandler<AppEnv>[]): MiddlewareHandler<AppEnv> {
  if (middleware.length === 1) return middleware[0]!;
  return (c, next) => {
    const step = (i: number): Promise<void> => {
      if (i === middleware.length) return next();
      return middleware[i]!(c, () => step(i + 1)).then((res) => {
        if (res && !c.finalized) c.res = res;
      });
    };
    return step(0);
  };
}

const withoutIdempotencyKey = (c: AppContext) => c.req.header(IDEMPOTENCY_HEADER) === undefined;

/** Puts the facts of the request's body in the context, as a promise the body's arrival resolves. */
function analyse(facts: (body: unknown) => RequestFacts): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // Never rejects: a body that cannot be read asks nothing of the model (the route answers 400).
    c.set(
      "facts",
      c.req
        .json()
        .then(facts)
        .catch(() => NO_FACTS),
    );
    await next();
  };
}

/**
 * While the process relays all the streams it can (overload.ts, StreamGate), a request waits for
 * its body here, and a stream gets its 503 before the rate limiter's round trip to Redis (it is not
 * counted against RPM either). Otherwise the body is not waited for: the admission starts at once.
 * Measured at 1,024 streams (`npm run bench -- --only streams`), where most requests are refused.
 */
function streamGate(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const guard = deps.overload;
  return async (c, next) => {
    if (guard?.streamsFull() && (await requestFacts(c)).stream) guard.admitStream(c);
    await next();
  };
}

/** The facts a model route's chain put in its context. */
export function requestFacts(c: AppContext): Promise<RequestFacts> {
  const facts = c.get("facts");
  if (!facts) throw new Error(`${c.req.method} ${c.req.path}: its chain is not RouteChains.model`);
  return facts;
}

export class RouteChains {
  /** One for every idempotent route: it purges expired keys now and then. */
  private readonly idempotency: MiddlewareHandler<AppEnv>;

  constructor(private readonly deps: AppDeps) {
    this.idempotency = idempotencyMiddleware({
      store: deps.store,
      ttlSeconds: deps.config.IDEMPOTENCY_TTL_SECONDS,
      logger: deps.logger,
    });
  }

  /** A route that calls no model: counted against RATE_LIMIT_RPM. */
  plain(): MiddlewareHandler<AppEnv> {
    return this.rateLimit();
  }

  /** A route that calls the model, whose request `facts` reads from the body. */
  model(
    facts: (body: unknown) => RequestFacts,
    options: ModelRouteOptions = {},
  ): MiddlewareHandler<AppEnv> {
    const chain = [
      analyse(facts),
      // No stream gate in the Lambda bundles (one request per instance): the define drops it.
      ...(process.env.AGENT_BUNDLE_LAMBDA !== "1" && this.deps.overload?.streams
        ? [streamGate(this.deps)]
        : []),
      this.rateLimit(options.lazy ? withoutIdempotencyKey : undefined),
    ];
    if (options.idempotent) chain.push(this.idempotency);
    return sequence(chain);
  }

  private rateLimit(lazy?: (c: AppContext) => boolean): MiddlewareHandler<AppEnv> {
    const limiter = this.deps.rateLimiter;
    return limiter ? rateLimitMiddleware(limiter, { lazy }) : passThrough;
  }
}
