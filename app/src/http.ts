/** Types and helpers shared by every route module. */
import type { ServerResponse } from "node:http";
import type { Context } from "hono";
import type { Logger } from "pino";
import type { z } from "zod";
import { ApiError, badRequest } from "./errors";
import { MAX_JSON_DEPTH, nestsDeeperThan, TOO_DEEP } from "./json-limits";
import type { RequestAdmission } from "./ratelimit/middleware";
import type { RequestFacts } from "./request-facts";

export type AppEnv = {
  Variables: {
    requestId: string;
    /** Set by the auth middleware on /v1 routes. */
    userId: string;
    /** Set by the admin auth middleware on /v1/admin routes: the admin's name. */
    admin?: string;
    logger: Logger;
    /** What the request asks of the model: set by the chain of a route that calls it (routes/chain.ts). */
    facts?: Promise<RequestFacts>;
    /** The rate limiter's state for this request (ratelimit/middleware.ts). */
    admission?: RequestAdmission;
    /**
     * A middleware reads the response body as it goes out (the idempotency layer recording a
     * stream): the route must hand it a Response body rather than write to the socket itself.
     */
    tapsBody?: true;
    /**
     * Called once as the request is about to call the model: the overload guard measures how long
     * the request waited in the process before it got there (overload.ts, Sojourn).
     */
    dispatching?: () => void;
    /** A health probe: logged only when it fails (routes/health.ts). */
    probe?: true;
    /** The response headers the app's layers set, by lower-case name (setHeader). */
    outHeaders?: Record<string, string>;
  };
};

export type AppContext = Context<AppEnv>;

/**
 * Response headers: the app's layers (request id, rate limits, the routes' own) put them here,
 * in a plain record, rather than with Hono's `c.header`, which keeps them in undici's `Headers`:
 * every set validates the name and value, and @hono/node-server then iterates them back into a
 * record for `writeHead` (~4 % of the service's CPU at 256 connections, profiled). A response made
 * with `respond` carries the record as its headers, which the adapter hands to `writeHead` as is;
 * the app's outermost middleware copies the record onto any other response (`applyOutHeaders`).
 * Every header the app sets goes through here: Hono's own would not reach a `respond` response.
 */
export function setHeader(c: AppContext, name: string, value: string): void {
  // A response's own: respond() and streamResponse() take it, so that a default of the adapter's
  // (text/plain) can never stand in for it.
  const key = name.toLowerCase();
  if (key === "content-type")
    throw new Error("content-type is set by respond() or streamResponse(), not setHeader()");
  let out = c.get("outHeaders");
  if (!out) {
    out = {};
    c.set("outHeaders", out);
  }
  out[key] = value;
}

/** What `respond` made its responses with: their headers, unread (reading them builds `Headers`). */
const carried = new WeakMap<Response, Record<string, string>>();

/**
 * A response with the headers set so far (setHeader), plus `contentType`. On Node the body goes
 * straight to `writeHead` and `end`; elsewhere (Lambda) it is an ordinary Response.
 */
export function respond(
  c: AppContext,
  body: string | ReadableStream<Uint8Array> | null,
  status: number,
  contentType?: string,
): Response {
  const headers = { ...c.get("outHeaders") };
  if (contentType) headers["content-type"] = contentType;
  const res = new Response(body, { status, headers });
  carried.set(res, headers);
  return res;
}

/** One header of a response, without building its `Headers` when `respond` made it. */
export function responseHeader(res: Response, name: string): string | null {
  const record = carried.get(res);
  return record ? (record[name] ?? null) : res.headers.get(name);
}

/**
 * Sets headers on a response a middleware did not make; those already there stay. A response
 * `respond` made loses its fast path (its headers become `Headers`), which only the rare
 * response that misses a header set after it was made ever needs.
 */
export function addHeaders(res: Response, headers: Record<string, string>): void {
  const record = carried.get(res);
  if (record && Object.keys(headers).every((k) => k in record)) return;
  carried.delete(res);
  try {
    const out = res.headers;
    for (const k in headers) if (!out.has(k)) out.set(k, headers[k]!);
  } catch {
    // Immutable headers (a fetched Response): the body still goes out.
  }
}

/** The app's outermost middleware, once the response exists: it gets what setHeader set. */
export function applyOutHeaders(c: AppContext): void {
  const out = c.get("outHeaders");
  if (out) addHeaders(c.res, out);
}

/** Parse the JSON body and validate it; 400s say exactly which field is wrong. */
export async function readJson<S extends z.ZodType>(c: AppContext, schema: S): Promise<z.infer<S>> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw badRequest("request body is not valid JSON");
  }
  // Before any other walk over it (validation, cache key, estimates): a deep one is refused.
  if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) throw badRequest(TOO_DEEP);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues));
  return parsed.data;
}

export function describeIssues(
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
): string {
  return issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
}

/**
 * Runs the rest of the chain, then `release` once: on Node when the response has been sent to its
 * end (a stream's last byte) or the connection is gone, elsewhere (Lambda) when the handler
 * returns. What a request holds for as long as it occupies the process (a slot of its user's
 * concurrency, a place among the requests in flight) is given back with it.
 */
/** The Node response under a request (absent on Lambda, whose adapter has none). */
export function outgoingOf(c: AppContext): ServerResponse | undefined {
  return (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
}

/**
 * The client left before its response was sent: its connection closed first. What
 * @hono/node-server's request signal says, read from the Node response instead of making that
 * signal (an AbortController and its listeners per request, ~1 % of the CPU at 256 connections).
 */
export function clientLeft(c: AppContext): boolean {
  // No Node response on Lambda (the define drops the branch there).
  const outgoing = process.env.AGENT_BUNDLE_LAMBDA !== "1" ? outgoingOf(c) : undefined;
  if (outgoing) return outgoing.destroyed && !outgoing.writableFinished;
  return c.req.raw.signal.aborted;
}

export async function holdWhileResponding(
  c: AppContext,
  next: () => Promise<void>,
  release: () => void,
): Promise<void> {
  const outgoing = outgoingOf(c);
  let released = false;
  const done = () => {
    if (released) return;
    released = true;
    release();
  };
  if (outgoing && !outgoing.closed) outgoing.once("close", done);
  try {
    await next();
  } finally {
    if (!outgoing || outgoing.closed) done();
  }
}
