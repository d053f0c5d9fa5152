/**
 * Runs the fake Anthropic API in its own process, so a benchmark's load generator, the
 * service under test and the fake do not share one event loop.
 *
 *   tsx test/support/fake-anthropic-server.ts --port 0 --deltas 64 --delta-interval-ms 20
 *
 * Prints one JSON line, `{"url":"http://127.0.0.1:PORT","port":PORT,"apiKey":"..."}`, once
 * listening; nothing else goes to stdout, so a parent can read that line and go on.
 * Exits 0 on SIGTERM/SIGINT after closing connections.
 */
import { parseArgs } from "node:util";
import { FAKE_API_KEY, startFakeAnthropic, type FakeBehavior } from "./fake-anthropic";

const USAGE = `Usage: fake-anthropic-server [options]
  --port N                 listen port (default 0: ephemeral)
  --host H                 listen address (default 127.0.0.1)
  --api-key K              accepted API key (default ${FAKE_API_KEY}); "any" accepts any key
  --latency-ms N           delay before every response
  --first-token-delay-ms N delay before the first SSE delta
  --deltas N               SSE deltas per content block (text padded to N chars)
  --delta-interval-ms N    delay between SSE deltas
  --min-reply-chars N      pad replies to at least N characters
  --min-cacheable-tokens N shortest cacheable prefix (default 1024)
  --batch-delay-ms N       time a batch stays in_progress (default 100)
  --max-recorded N         recorded-request ring size (default 0: a benchmark needs none)
  --help`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative integer, got "${value}"\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string" },
      "latency-ms": { type: "string" },
      "first-token-delay-ms": { type: "string" },
      deltas: { type: "string" },
      "delta-interval-ms": { type: "string" },
      "min-reply-chars": { type: "string" },
      "min-cacheable-tokens": { type: "string" },
      "batch-delay-ms": { type: "string" },
      "max-recorded": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const behavior: FakeBehavior = {
    latencyMs: int("latency-ms", values["latency-ms"]),
    firstTokenDelayMs: int("first-token-delay-ms", values["first-token-delay-ms"]),
    deltas: int("deltas", values.deltas) || undefined,
    deltaIntervalMs: int("delta-interval-ms", values["delta-interval-ms"]),
    minReplyChars: int("min-reply-chars", values["min-reply-chars"]),
  };
  const apiKey = values["api-key"];
  const fake = await startFakeAnthropic({
    host: values.host,
    port: int("port", values.port) ?? 0,
    apiKey: apiKey === "any" ? null : (apiKey ?? FAKE_API_KEY),
    behavior,
    minCacheableTokens: int("min-cacheable-tokens", values["min-cacheable-tokens"]),
    batchDelayMs: int("batch-delay-ms", values["batch-delay-ms"]),
    maxRecorded: int("max-recorded", values["max-recorded"]) ?? 0,
  });
  process.stdout.write(
    `${JSON.stringify({ url: fake.url, port: fake.port, apiKey: apiKey ?? FAKE_API_KEY })}\n`,
  );

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    fake.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`fake-anthropic: close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake-anthropic: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
