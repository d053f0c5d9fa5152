/**
 * Structured JSON logs. Secrets and prompt text never reach them: auth headers and key-like
 * fields are redacted, and prompts are logged only with LOG_PROMPTS=true.
 */
import pino, { type Logger } from "pino";
import { isSpanContextValid, trace } from "@opentelemetry/api";

export interface LoggerOptions {
  level: string;
  /** Write asynchronously in batches: synchronous stdout writes cost latency on the hot path. */
  async?: boolean;
  destination?: pino.DestinationStream;
}

/** How long a buffered log line may wait before it is written, on a quiet service. */
const FLUSH_INTERVAL_MS = 1000;

function asyncStdout(): pino.DestinationStream {
  const dest = pino.destination({ sync: false, minLength: 4096 });
  // Without this, a quiet service would hold lines (even "listening") until 4 KB build up.
  setInterval(() => dest.flush(), FLUSH_INTERVAL_MS).unref();
  return dest;
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
  const destination = options.destination ?? (options.async ? asyncStdout() : pino.destination(1));
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
