/**
 * The rate-limit middleware for /v1/*, registered after authentication (it keys on the user).
 *
 * Every request counts against RATE_LIMIT_RPM. A POST that will call the model (a Messages
 * request, a session turn, a token count, a message batch: the sum of its requests) reserves its
 * estimated tokens against RATE_LIMIT_TPM. A batch keeps its reservation (its answer carries no
 * usage; its tokens are spent upstream over the following hours).
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
import type { AppContext, AppEnv } from "../http";
import type { Admission, RequestRateLimiter } from "./limiter";
import { SseSplitter, tapResponse } from "./body-tap";

/** Output budget a session turn reserves when its request names no max_tokens (routes/sessions.ts). */
const TURN_MAX_TOKENS = 4096;
/** A base64 image or document counts as this many input tokens in the estimate, whatever its size. */
const MEDIA_TOKENS = 1600;

const reservations = new WeakMap<Request, Admission>();
const claimed = new WeakSet<Admission>();

/**
 * Take over settling this request's token reservation: the caller must call `settle(tokens)`
 * once whatever way the request ends (0 when nothing was generated), and the middleware no
 * longer reads the response for usage. Undefined when the request reserved nothing.
 */
export function claimTokenReservation(c: AppContext): Admission | undefined {
  const admission = reservations.get(c.req.raw);
  if (admission) claimed.add(admission);
  return admission;
}

const pendingAdmissions = new WeakMap<Request, Promise<void>>();

/**
 * For a route that admits lazily (see `rateLimitMiddleware`): resolves once this request is
 * admitted, with the rate-limit headers set on the response; rejects with the 429. Undefined when
 * the request was already admitted before the route ran.
 */
export function admitted(c: AppContext): Promise<void> | undefined {
  return pendingAdmissions.get(c.req.raw);
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
    // sends it a byte at a time is counted like any other); tokens once the body is read.
    const admitting = limiter.admit(c.get("userId"), estimateRequestTokens(c));
    const apply = (a: Admission) => {
      for (const k in a.headers) c.header(k, a.headers[k]);
      if (a.reservedTokens > 0) reservations.set(c.req.raw, a);
    };
    let admission: Admission | undefined;
    if (options.lazy?.(c)) {
      const ready = admitting.then(apply);
      ready.catch(() => {}); // the route's to await; a route that fails first never does
      pendingAdmissions.set(c.req.raw, ready);
      await next();
      // Refused: the route turned the 429 into the response (or failed before it asked).
      admission = await admitting.catch(() => undefined);
      if (!admission) return;
    } else {
      admission = await admitting;
      apply(admission);
      await next();
    }
    const headers = admission.headers;
    // A response built outside the context (an idempotent replay, or a route that failed before
    // awaiting a lazy admission) may lack the headers.
    try {
      const out = c.res.headers;
      for (const k in headers) if (!out.has(k)) out.set(k, headers[k]!);
    } catch {
      // Immutable headers (a fetched Response): the body still goes out.
    }
    if (admission.settled || admission.reservedTokens === 0 || claimed.has(admission)) return;
    await settleFromResponse(c, admission);
  };
}

async function settleFromResponse(c: AppContext, admission: Admission): Promise<void> {
  const res = c.res;
  const replayed =
    res.headers.get("idempotent-replayed") === "true" || res.headers.get("x-cache") === "HIT";
  if (res.status >= 400 || replayed || !res.body) {
    void admission.settle(0);
    return;
  }
  const type = res.headers.get("content-type") ?? "";
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

/**
 * Tokens a request may use, estimated before the call: about 4 characters per token over the
 * text it sends, a flat amount per image or document, plus its max_tokens. The history of a
 * session is not known here; the settlement afterwards charges the difference.
 */
export async function estimateRequestTokens(c: AppContext): Promise<number> {
  if (c.req.method !== "POST") return 0;
  const path = c.req.path;
  const isMessages = path === "/v1/messages";
  const isCount = path === "/v1/messages/count_tokens";
  const isTurn = /^\/v1\/sessions\/[^/]+\/messages$/.test(path);
  const isBatch = path === "/v1/batches" || path === "/v1/messages/batches";
  if (!isMessages && !isCount && !isTurn && !isBatch) return 0;
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return 0; // the route answers 400
  }
  if (typeof body !== "object" || body === null) return 0;
  if (isBatch) {
    // A batch counts as the sum of its requests (answered later, but sent upstream now).
    const requests = (body as { requests?: unknown }).requests;
    if (!Array.isArray(requests)) return 0;
    let sum = 0;
    for (const r of requests)
      sum += messageTokens((r as { params?: unknown } | null)?.params, false);
    return sum;
  }
  return messageTokens(body, isTurn, isCount);
}

function messageTokens(body: unknown, isTurn: boolean, inputOnly = false): number {
  if (typeof body !== "object" || body === null) return 0;
  const { max_tokens, ...rest } = body as Record<string, unknown>;
  const input = Math.ceil(textChars(rest) / 4);
  if (inputOnly) return input;
  const output =
    typeof max_tokens === "number" && max_tokens > 0 ? max_tokens : isTurn ? TURN_MAX_TOKENS : 0;
  return input + output;
}

function textChars(value: unknown, depth = 0): number {
  if (depth > 32) return 0;
  if (typeof value === "string") return value.length;
  if (Array.isArray(value))
    return value.reduce((sum: number, v) => sum + textChars(v, depth + 1), 0);
  if (typeof value !== "object" || value === null) return 0;
  const o = value as Record<string, unknown>;
  if ((o.type === "image" || o.type === "document") && typeof o.source === "object")
    return MEDIA_TOKENS * 4;
  let sum = 0;
  for (const [k, v] of Object.entries(o)) sum += k.length + textChars(v, depth + 1);
  return sum;
}
