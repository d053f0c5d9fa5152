/**
 * Where a streaming route writes its events. On Node the route writes to the `ServerResponse`
 * itself: headers when the stream starts, then each batch of events as one `res.write`. Hono's
 * `stream()` helper would put a TransformStream, a TextEncoder and @hono/node-server's reader
 * between every write and the socket (measured in the streams benchmark's profile: hono and
 * @hono/node-server ~19 % of the service's CPU at 256 streams). Where there is no Node response
 * (Lambda), or a middleware must watch the body as it goes out (the idempotency layer records an
 * idempotent stream: `c.get("tapsBody")`), the route streams through Hono as before.
 *
 * A route that wrote directly still returns a Response (status and headers, no body) so the
 * middleware after it (logs, metrics, the rate limiter) sees what was sent; `directWrites`
 * (direct-writes.ts), around the app's fetch given to @hono/node-server, then hands the adapter its
 * "already sent" marker. Routes write directly only under it: served any other way, they stream
 * through Hono.
 */
import { stream } from "hono/streaming";
import { respond, type AppContext } from "../http";

/** Server-sent events, the Messages API's stream. */
export const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";

/** What a stream writes to: Hono's StreamingApi or the Node response. */
export interface StreamOut {
  /** The client is gone (or the stream was aborted). */
  readonly aborted: boolean;
  onAbort(listener: () => void | Promise<void>): void;
  /** Hands `text` on; resolves when the writer takes more (the socket may still hold it). */
  write(text: string): Promise<unknown>;
  abort(): void;
}

/**
 * Writes a stream to the Node response itself, or answers undefined when it cannot (no Node
 * response, or a middleware taps the body). Registered by direct-writes.ts, which only the Node
 * server imports: the Lambda bundles, which have no Node response, carry none of it.
 */
export type DirectStream = (
  c: AppContext,
  run: (out: StreamOut) => Promise<void>,
  contentType: string,
) => Response | undefined;

let direct: DirectStream | undefined;

export function registerDirectStream(fn: DirectStream): void {
  direct = fn;
}

/**
 * A 200 whose body `run` writes as it goes; the headers set on `c` so far are sent with it.
 * `run` must not throw (a failure is an event in the stream); if it does, the stream ends.
 */
export function streamResponse(
  c: AppContext,
  run: (out: StreamOut) => Promise<void>,
  contentType = SSE_CONTENT_TYPE,
): Response {
  return direct?.(c, run, contentType) ?? streamThroughHono(c, run, contentType);
}

/**
 * Hono's stream, as a response with the headers set so far (a middleware that taps the body
 * records them with it).
 */
export function streamThroughHono(
  c: AppContext,
  run: (out: StreamOut) => Promise<void>,
  contentType: string,
): Response {
  return respond(c, stream(c, run).body, 200, contentType);
}
