/**
 * Structured JSON logs. Secrets and prompt text never reach them: auth headers and key-like
 * fields are redacted, and prompts are logged only with LOG_PROMPTS=true.
 */
import pino, { type Logger } from "pino";
import type SonicBoom from "sonic-boom";
import { isSpanContextValid, trace } from "@opentelemetry/api";

export interface LoggerOptions {
  level: string;
  /** Write asynchronously in batches: synchronous stdout writes cost latency on the hot path. */
  async?: boolean;
  destination?: pino.DestinationStream;
}

/** How long a buffered log line may wait before it is written, on a quiet service. */
const FLUSH_INTERVAL_MS = 1000;

/**
 * Where production lines go: `fd` (stdout) written asynchronously, in writes of at least 4 KB
 * and at least once a second.
 *
 * sonic-boom (pino's asynchronous destination) runs in its buffer mode, fed each line as UTF-8
 * bytes. In its default string mode, `write` appends the line to the pending string and then
 * takes that string's byte length, which makes V8 flatten it: up to 16 KB copied per line under
 * load (sonic-boom 4.2.1 and 5.0.2 alike; 6.6 KB of garbage per request at 256 connections,
 * allocation profile of 2026-12-07). In buffer mode it keeps the buffers and their lengths, and
 * joins them once per write(2).
 */
export interface AsyncDestination extends pino.DestinationStream, Pick<SonicBoom, "flush"> {
  /**
   * Writes what it holds and stops its once-a-second flush; the descriptor stays open (it is the
   * caller's). After it, the destination must not be written to. Until 2026-12-07 there was no way
   * to stop the flush: a destination whose descriptor had been closed (the tests' files) kept
   * writing to that number every second, into whatever file or socket got it next, and its EBADF
   * was thrown into whatever test file ran next in the same jest worker.
   */
  close(): Promise<void>;
}

export function asyncDestination(fd: number): AsyncDestination {
  const boom = pino.destination({ dest: fd, sync: false, minLength: 4096, contentMode: "buffer" });
  // Without this, a quiet service would hold lines (even "listening") until 4 KB build up.
  const timer = setInterval(() => boom.flush(), FLUSH_INTERVAL_MS).unref();
  // Buffer mode counts `data.length` as bytes: it must be given bytes. Calls go through `boom`
  // each time: pino replaces its methods with no-ops once stdout is gone (EPIPE).
  return {
    write: (line: string) => boom.write(Buffer.from(line) as unknown as string),
    flush: (cb?: (err?: Error) => unknown) => boom.flush(cb),
    close: () =>
      new Promise<void>((resolve, reject) => {
        clearInterval(timer);
        // flush() ends with fsync(2), which a pipe or a socket (stdout, often) refuses with
        // EINVAL once everything is written: not a failure to write.
        boom.flush((err?: NodeJS.ErrnoException) =>
          err && err.code !== "EINVAL" ? reject(err) : resolve(),
        );
      }),
  };
}

/**
 * pino mixin: `trace_id` and `span_id` of the active span, so a log line and its trace find each
 * other. With tracing off this is one no-op context lookup per line. A fresh object each time:
 * pino merges the line's fields into it.
 */
export function traceContextMixin(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const sc = span.spanContext();
  return isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination ?? (options.async ? asyncDestination(1) : pino.destination(1));
  return pino(
    {
      level: options.level,
      base: { service: "agent" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceContextMixin,
      redact: {
        paths: [
          "headers.authorization",
          "headers['x-api-key']",
          "*.apiKey",
          "*.api_key",
          "*.password",
          "*.authToken",
          "apiKey",
          "password",
          "key",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
