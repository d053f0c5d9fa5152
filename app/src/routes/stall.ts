/**
 * A client that stops reading a stream must not hold the service (or the upstream) for ever. The
 * service writes to the client only as fast as it reads (each write waits for the last to be
 * taken: the upstream is then not read either, and what it sends waits in its socket), and a
 * write the client has not taken after STREAM_STALL_TIMEOUT_MS ends the request: the connection
 * is closed, which aborts the stream, and the route settles the usage it saw.
 */
import type { ServerResponse } from "node:http";
import { outgoingOf, type AppContext } from "../http";
import type { StreamOut } from "./stream-out";

export class StallGuard {
  /** The client stopped reading and the request was ended. */
  stalled = false;
  private readonly outgoing: ServerResponse | undefined;
  private readonly timer: NodeJS.Timeout;
  /** When the write in progress started (performance.now()), or -1 between writes. */
  private writeStarted = -1;
  private closed = false;

  constructor(
    c: AppContext,
    private readonly out: StreamOut,
    private readonly stallMs: number,
  ) {
    // The Node response under the stream (absent on Lambda, whose runtime buffers on its own).
    this.outgoing = outgoingOf(c);
    // One timer per stream, looking every stallMs at the write in progress (a timer per write
    // would cost more on every stream); a write is ended between stallMs and twice that.
    this.timer = setTimeout(() => this.check(), stallMs);
    this.timer.unref();
  }

  /** Write `text` and wait until the client has taken it; false once the client is gone or stalled. */
  async write(text: string): Promise<boolean> {
    if (this.stalled || this.out.aborted) return false;
    this.writeStarted = performance.now();
    try {
      await this.out.write(text);
      const res = this.outgoing;
      if (res && res.writableNeedDrain && !res.destroyed && !this.stalled) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.once("drain", done);
          res.once("close", done);
        });
      }
    } finally {
      this.writeStarted = -1;
    }
    return !this.stalled && !this.out.aborted;
  }

  /** Stop the timer (the stream is over). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private check() {
    if (this.closed) return;
    if (this.writeStarted < 0 || performance.now() - this.writeStarted < this.stallMs) {
      this.timer.refresh();
      return;
    }
    this.stalled = true;
    // Closing the connection aborts the stream: the pending write settles and the route ends.
    if (this.outgoing) this.outgoing.destroy();
    else this.out.abort();
  }
}
