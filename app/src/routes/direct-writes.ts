/**
 * Stream routes writing to the Node response themselves (stream-out.ts says why): imported by the
 * Node server only, which registers the direct path with stream-out.ts as it loads. The Lambda
 * bundles have no Node response and never import it; in stream-out.ts, esbuild kept this code
 * in them all the same (its module imports others with effects at load).
 */
import type { ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { outgoingOf, respond, type AppContext } from "../http";
import { registerDirectStream, type StreamOut } from "./stream-out";

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

registerDirectStream((c: AppContext, run: (out: StreamOut) => Promise<void>, contentType) => {
  const res = outgoingOf(c);
  if (!res || !writable.has(res) || c.get("tapsBody") || res.headersSent || res.destroyed)
    return undefined;
  // What the middleware after the route sees (status, headers); the bytes go below.
  const sent = respond(c, null, 200, contentType);
  res.writeHead(200, { ...c.get("outHeaders"), "content-type": contentType });
  sentDirectly.add(res);
  const out = new NodeOut(res);
  void run(out)
    .catch((err: unknown) => c.get("logger").error({ err: String(err) }, "stream failed"))
    .finally(() => out.end());
  return sent;
});

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
