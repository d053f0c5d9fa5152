/**
 * Watching a response body as it goes out, without buffering it or changing its pacing: the
 * rate limiter reads the final token usage from a stream, the idempotency layer records the
 * whole event stream. Both learn how the body ended: read to the end, cancelled by the client
 * (disconnect), or failed.
 */

export type BodyOutcome = "end" | "cancel" | "error";

export interface BodyTap {
  /** Each chunk as it is handed on. */
  chunk?(bytes: Uint8Array): void;
  /** Called exactly once, when the body ends one way or the other. */
  done(outcome: BodyOutcome): void;
}

/** The same response with its body passed through `tap`; a response without a body is returned as is. */
export function tapResponse(res: Response, tap: BodyTap): Response {
  if (!res.body) {
    tap.done("end");
    return res;
  }
  const reader = res.body.getReader();
  let finished = false;
  const finish = (outcome: BodyOutcome) => {
    if (finished) return;
    finished = true;
    try {
      tap.done(outcome);
    } catch {
      // An observer must never break the response.
    }
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (err) {
        finish("error");
        controller.error(err);
        return;
      }
      if (next.done) {
        finish("end");
        controller.close();
        return;
      }
      try {
        tap.chunk?.(next.value);
      } catch {
        // As above: observing is best effort.
      }
      controller.enqueue(next.value);
    },
    cancel(reason) {
      finish("cancel");
      return reader.cancel(reason);
    },
  });
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}

/**
 * Splits an SSE byte stream into events (`event:` name and joined `data:` lines), across chunk
 * boundaries. Only events whose name passes `wanted` are decoded further by the caller.
 */
export class SseSplitter {
  private readonly decoder = new TextDecoder();
  private buffer = "";

  constructor(private readonly onEvent: (event: string, data: string) => void) {}

  push(bytes: Uint8Array): void {
    this.buffer += this.decoder.decode(bytes, { stream: true });
    let at: number;
    while ((at = this.buffer.search(/\r?\n\r?\n/)) >= 0) {
      const frame = this.buffer.slice(0, at);
      const sep = /\r?\n\r?\n/.exec(this.buffer.slice(at))![0].length;
      this.buffer = this.buffer.slice(at + sep);
      let event = "message";
      const data: string[] = [];
      for (const line of frame.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length > 0 || event !== "message") this.onEvent(event, data.join("\n"));
    }
  }
}
