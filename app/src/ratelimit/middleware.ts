/**
 * The rate-limit middleware, in the chain of every API route (routes/chain.ts), after
 * authentication (it keys on the user).
 *
 * Every request counts against RATE_LIMIT_RPM. A route that calls the model (a Messages request,
 * a session turn, a message batch: the sum of its requests) reserves the tokens of its request's
 * facts (request-facts.ts: input estimate plus output bound) against RATE_LIMIT_TPM. A batch keeps
 * its reservation (its answer carries no usage; its tokens are spent upstream over the following
 * hours).
 * Refused requests get 429 `rate_limit_error` in the Anthropic error shape, with `retry-after`
 * and the `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` headers, which also
 * go on every admitted response.
 *
 * The reservation is settled automatically from the response: the `usage` of a JSON body, the
 * usage events of an SSE stream when it ends (also when the client leaves), nothing for errors,
 * cache hits and idempotent replays. A route that knows the usage itself (a Messages call, an agent
 * turn whose several model calls it has summed) takes the reservation over with
 * `claimTokenReservation(c)` and settles it on every way the request ends; the middleware then
 * leaves the response alone (no body to parse or stream to watch on the hot path).
 *
 * Settlement is not awaited before the response goes out, but its Redis command is issued
 * before: commands on one connection run in order, so the client's next request through this
 * replica already sees the refund.
 */
import type { MiddlewareHandler } from "hono";
import { addHeaders, responseHeader, setHeader, type AppContext, type AppEnv } from "../http";
import { factTokens } from "../request-facts";
import type { Admission, RequestRateLimiter } from "./limiter";
import { SseSplitter, tapResponse } from "./body-tap";

/** The rate limiter's state for one request, in its context as `admission`. */
export interface RequestAdmission {
  /** While a lazy admission runs: resolves once admitted (headers set), rejects with the 429. */
  pending?: Promise<void>;
  /** The token reservation, once admitted with tokens reserved. */
  reservation?: Admission;
  /** A route took the reservation over (`claimTokenReservation`). */
  claimed: boolean;
}

/**
 * Take over settling this request's token reservation: the caller must call `settle(tokens)`
 * once whatever way the request ends (0 when nothing was generated), and the middleware no
 * longer reads the response for usage. Undefined when the request reserved nothing.
 */
export function claimTokenReservation(c: AppContext): Admission | undefined {
  const state = c.get("admission");
  if (!state?.reservation) return undefined;
  state.claimed = true;
  return state.reservation;
}

/**
 * For a route that admits lazily (see `rateLimitMiddleware`): resolves once this request is
 * admitted, with the rate-limit headers set on the response; rejects with the 429. Undefined when
 * the request was already admitted before the route ran.
 */
export function admitted(c: AppContext): Promise<void> | undefined {
  return c.get("admission")?.pending;
}

export interface RateLimitMiddlewareOptions {
  /**
   * Requests whose route admits lazily: the middleware starts the admission and runs the route
   * at once, and the route awaits `admitted(c)` before anything with an effect, so a read it
   * needs anyway (the response cache lookup of POST /v1/messages) shares the admission's round
   * trip. Nothing the route does before that may change state, unless it undoes it when the
   * admission is refused (POST /v1/messages sends its budget hold along and gives it back on a
   * 429). @default none
   */
  lazy?: (c: AppContext) => boolean;
}

export function rateLimitMiddleware(
  limiter: RequestRateLimiter,
  options: RateLimitMiddlewareOptions = {},
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // The request counts against RPM now, while its body may still be arriving (a client that
    // sends it a byte at a time is counted like any other); tokens once its facts are known.
    const facts = c.get("facts");
    const admitting = limiter.admit(c.get("userId"), facts ? facts.then(factTokens) : 0);
    const state: RequestAdmission = { claimed: false };
    c.set("admission", state);
    const apply = (a: Admission) => {
      // A route that failed before awaiting a lazy admission (a 400, a stream refused as
      // overload) has its response already: the headers go on below, on the response as it is.
      if (!c.finalized) for (const k in a.headers) setHeader(c, k, a.headers[k]!);
      if (a.reservedTokens > 0) state.reservation = a;
    };
    let admission: Admission | undefined;
    if (options.lazy?.(c)) {
      const ready = admitting.then(apply);
      ready.catch(() => {}); // the route's to await; a route that fails first never does
      state.pending = ready;
      await next();
      // Refused: the route turned the 429 into the response (or failed before it asked).
      admission = await admitting.catch(() => undefined);
      if (!admission) return;
    } else {
      admission = await admitting;
      apply(admission);
      await next();
    }
    // A response built outside the context (an idempotent replay, or a route that failed before
    // awaiting a lazy admission) may lack the headers.
    addHeaders(c.res, admission.headers);
    if (admission.settled || admission.reservedTokens === 0 || state.claimed) return;
    await settleFromResponse(c, admission);
  };
}

async function settleFromResponse(c: AppContext, admission: Admission): Promise<void> {
  const res = c.res;
  const replayed =
    responseHeader(res, "idempotent-replayed") === "true" ||
    responseHeader(res, "x-cache") === "HIT";
  if (res.status >= 400 || replayed || !res.body) {
    void admission.settle(0);
    return;
  }
  const type = responseHeader(res, "content-type") ?? "";
  if (type.startsWith("application/json")) {
    // Issued before the response leaves, so the client's next request already sees the refund.
    const body = await res
      .clone()
      .json()
      .catch(() => null);
    void admission.settle(
      usageTokens((body as { usage?: unknown } | null)?.usage) ?? admission.reservedTokens,
    );
    return;
  }
  if (type.startsWith("text/event-stream")) {
    const counter = new StreamUsage();
    const splitter = new SseSplitter((event, data) => counter.observe(event, data));
    c.res = tapResponse(res, {
      chunk: (bytes) => splitter.push(bytes),
      // A cut stream is charged what was seen of it; one that showed no usage keeps its reservation.
      done: () => void admission.settle(counter.total() ?? admission.reservedTokens),
    });
    return;
  }
  void admission.settle(admission.reservedTokens);
}

/** Tokens that count toward TPM in a Messages `usage`: input, cache writes and output, not cache reads. */
export function usageTokens(usage: unknown): number | undefined {
  if (typeof usage !== "object" || usage === null) return undefined;
  const u = usage as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  if (typeof u.input_tokens !== "number" && typeof u.output_tokens !== "number") return undefined;
  return n(u.input_tokens) + n(u.cache_creation_input_tokens) + n(u.output_tokens);
}

/**
 * Usage from an SSE stream: Messages events (message_start carries input, message_delta the
 * running output), several messages in a session turn, and the turn's own total when it ends.
 */
class StreamUsage {
  private finished = 0;
  private current: { input: number; output: number } | null = null;
  private turnTotal: number | undefined;
  private seen = false;

  observe(event: string, data: string): void {
    if (
      event !== "message_start" &&
      event !== "message_delta" &&
      event !== "message_stop" &&
      event !== "turn_complete"
    )
      return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (event === "turn_complete") {
      this.turnTotal = usageTokens(body.usage);
      return;
    }
    if (event === "message_stop") {
      if (this.current) this.finished += this.current.input + this.current.output;
      this.current = null;
      return;
    }
    const usage = (
      event === "message_start"
        ? (body.message as { usage?: unknown } | undefined)?.usage
        : body.usage
    ) as Record<string, unknown> | undefined;
    if (!usage) return;
    this.seen = true;
    const n = (v: unknown) => (typeof v === "number" ? v : undefined);
    const cur = (this.current ??= { input: 0, output: 0 });
    const input = n(usage.input_tokens);
    if (input !== undefined) cur.input = input + (n(usage.cache_creation_input_tokens) ?? 0);
    const output = n(usage.output_tokens);
    if (output !== undefined) cur.output = output;
  }

  total(): number | undefined {
    if (this.turnTotal !== undefined) return this.turnTotal;
    if (!this.seen) return undefined;
    return this.finished + (this.current ? this.current.input + this.current.output : 0);
  }
}
