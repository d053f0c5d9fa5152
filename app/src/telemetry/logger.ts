/**
 * Structured JSON logs. Secrets and prompt text never reach them: auth headers and key-like
 * fields are redacted, and prompts are logged only with LOG_PROMPTS=true.
 */
import pino, { type Logger } from "pino";

export interface LoggerOptions {
  level: string;
  /** Write asynchronously in batches: synchronous stdout writes cost latency on the hot path. */
  async?: boolean;
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination ?? (options.async ? pino.destination({ sync: false, minLength: 4096 }) : pino.destination(1));
  return pino(
    {
      level: options.level,
      base: { service: "agent" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
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
