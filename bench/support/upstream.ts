/**
 * The fake Anthropic API (test/support/fake-anthropic.ts) in its own process, for the benchmark.
 * Like test/support/fake-anthropic-server.ts, but it takes the whole option set as one JSON
 * argument, so the cost scenario can give each model its real minimum cacheable prefix
 * (`minCacheableTokensByModel`, which the CLI has no flag for).
 *
 *   node --import tsx bench/support/upstream.ts '{"behavior":{"latencyMs":20}}'
 *
 * Prints `{"url","port","apiKey"}` on one line once listening; exits 0 on SIGTERM/SIGINT.
 */
import {
  FAKE_API_KEY,
  startFakeAnthropic,
  type FakeAnthropicOptions,
} from "../../test/support/fake-anthropic";

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? "{}") as FakeAnthropicOptions;
  const fake = await startFakeAnthropic({ maxRecorded: 0, ...options });
  const apiKey = typeof options.apiKey === "string" ? options.apiKey : FAKE_API_KEY;
  process.stdout.write(`${JSON.stringify({ url: fake.url, port: fake.port, apiKey })}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench upstream: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
