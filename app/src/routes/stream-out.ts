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
 * middleware after it (logs, metrics, the rate limiter) sees what was sent; `directWrites`, around
 * the app's fetch given to @hono/node-server, then hands the adapter its "already sent" marker.
 * Routes write directly only under it: served any other way, they stream through Hono.
 */
import type { ServerResponse } from "node:http";
import { stream } from "hono/streaming";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { outgoingOf, type AppContext } from "../http";

/** What a stream writes to: Hono's StreamingApi or the Node response. */
export interface StreamOut {
  /** The client is gone (or the stream was aborted). */
  readonly aborted: boolean;
  onAbort(listener: () => void | Promise<void>): void;
  /** Hands `text` on; resolves when the writer takes more (the socket may still hold it). */
  write(text: string): Promise<unknown>;
  abort(): void;
}

/** Node responses whose server adapter lets routes write to them (under `directWrites`). */
const writable = new WeakSet<ServerResponse>();
/** Responses a route wrote to the socket itself: the adapter must not send another. */
const sentDirectly = new WeakSet<ServerResponse>();

/**
 * The app's fetch for @hono/node-server, letting stream routes write to the Node response: a
 * response a route sent itself is answered with the adapter's RESPONSE_ALREADY_SENT.
 */
export function directWrites<E extends object>(
  fetch: (request: Request, env: E) => unknown,
): (request: Request, env: E) => unknown {
  return (request, env) => {
    const outgoing = (env as { outgoing?: ServerResponse }).outgoing;
    if (outgoing) writable.add(outgoing);
    const settle = (answer: unknown) =>
      outgoing && sentDirectly.has(outgoing) ? RESPONSE_ALREADY_SENT : answer;
    const answer = fetch(request, env);
    return answer instanceof Promise ? answer.then(settle) : settle(answer);
  };
}

/**
 * A 200 whose body `run` writes as it goes; the headers set on `c` so far are sent with it.
 * `run` must not throw (a failure is an event in the stream); if it does, the stream ends.
 */
export function streamResponse(c: AppContext, run: (out: StreamOut) => Promise<void>): Response {
  // No Node response on Lambda: the define drops the direct path (and NodeOut) from its bundles.
  if (process.env.AGENT_BUNDLE_LAMBDA === "1") return stream(c, run);
  const res = outgoingOf(c);
  if (!res || !writable.has(res) || c.get("tapsBody") || res.headersSent || res.destroyed)
    return stream(c, run);
  const headers: Record<string, string> = {};
  c.res.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(200, headers);
  sentDirectly.add(res);
  const out = new NodeOut(res);
  void run(out)
    .catch((err: unknown) => c.get("logger").error({ err: String(err) }, "stream failed"))
    .finally(() => out.end());
  return c.body(null, 200);
}

class NodeOut implements StreamOut {
  aborted = false;
  private readonly listeners: Array<() => void | Promise<void>> = [];

  constructor(private readonly res: ServerResponse) {
    // Closed before the last byte was handed over: the client left (or the connection was cut).
    res.once("close", () => {
      if (!res.writableFinished) this.abort();
    });
  }

  onAbort(listener: () => void | Promise<void>): void {
    this.listeners.push(listener);
  }

  write(text: string): Promise<void> {
    if (!this.aborted && !this.res.destroyed) this.res.write(text);
    return Promise.resolve();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const listener of this.listeners) {
      // A listener's failure is its own: the others still hear of the abort.
      void Promise.resolve()
        .then(listener)
        .catch(() => {});
    }
  }

  end(): void {
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }
}
