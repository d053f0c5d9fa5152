/**
 * Lambda start-up: the eager start (init begins while the module loads, before any invocation),
 * what init has done by the first request (database checked, Redis handshaken), and that a start
 * that failed is retried by the next invocation rather than cached for the sandbox's life.
 */
import { Writable } from "node:stream";
import {
  createLambdaHandler,
  type BufferedHandler,
  type LambdaHandler,
} from "../../app/entrypoints/lambda";
import { ConfigError } from "../../app/src/config";
import { hasSecretReferences } from "../../app/src/secrets";
import { createLogger } from "../../app/src/telemetry/logger";
import { functionUrlEvent, lambdaContext } from "../support/lambda-events";
import {
  createTestDatabase,
  REDIS_URL,
  requirePostgresSync,
  requireRedisSync,
} from "../support/services";
import { closedPort } from "../support/ports";

const pgUrl = requirePostgresSync();
const redisUp = requireRedisSync() !== null;
const maybe = pgUrl ? describe : describe.skip;

function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger({ level: "info", destination: destination as never }), lines };
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("hasSecretReferences", () => {
  it("is true for any non-empty <NAME>_SECRET, so resolveSecretReferences still sees (and rejects) bad ones", () => {
    expect(hasSecretReferences({})).toBe(false);
    expect(hasSecretReferences({ DATABASE_URL: "postgres://x", AWS_SECRET_ACCESS_KEY: "k" })).toBe(
      false,
    );
    expect(hasSecretReferences({ ANTHROPIC_API_KEY_SECRET: "" })).toBe(false);
    expect(hasSecretReferences({ ANTHROPIC_API_KEY_SECRET: "aws-sm://agent/key" })).toBe(true);
    expect(hasSecretReferences({ REDIS_PASSWORD_SECRET: "aws-sms://typo" })).toBe(true);
  });
});

maybe("Lambda start-up", () => {
  let db: { url: string; drop(): Promise<void> };
  const opened: Array<LambdaHandler<BufferedHandler>> = [];
  const baseEnv = (): NodeJS.ProcessEnv => ({
    DATABASE_URL: db.url,
    AGENT_API_KEYS: "alice:alice-init-key-0001",
    AWS_LAMBDA_FUNCTION_NAME: "agent-test",
    AWS_REGION: "eu-west-1",
    NODE_ENV: "production",
    LOG_LEVEL: "info",
  });

  function makeHandler(env: NodeJS.ProcessEnv, eager: boolean) {
    const logs = captureLogs();
    const handler = createLambdaHandler({
      env,
      mode: "BUFFERED",
      eager,
      deps: { logger: logs.logger },
    });
    opened.push(handler);
    const starts = () => logs.lines.filter((l) => l.msg === "lambda cold start complete");
    return { handler, logs, starts };
  }

  beforeAll(async () => {
    db = await createTestDatabase(pgUrl!);
  });
  afterAll(async () => {
    for (const h of opened) await h.shutdown();
    await db?.drop();
  });

  it("starts eagerly: init completes with no invocation, and the first invocation reuses it", async () => {
    const { handler, starts } = makeHandler(baseEnv(), true);
    await until(() => starts().length === 1, "the eager cold start");
    const res = await handler(functionUrlEvent({ path: "/ready" }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(starts()).toHaveLength(1);
    expect(starts()[0]).toMatchObject({ store: "postgres", poolMax: 2 });
    expect(starts()[0]!.failedBefore).toBeUndefined();
  });

  it("waits for the first invocation when not eager", async () => {
    const { handler, starts } = makeHandler(baseEnv(), false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(starts()).toHaveLength(0);
    await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
    expect(starts()).toHaveLength(1);
  });

  it.each([
    ["eager", true],
    ["on the first invocation", false],
  ])(
    "forgets a failed start (%s): the invocation reports the failure naming the variable, a later one starts",
    async (_, eager) => {
      const env = { ...baseEnv(), DATABASE_URL: "" };
      const { handler, starts } = makeHandler(env, eager);
      // The start fails (no DATABASE_URL: eager, inside createLambdaHandler, else on the first
      // invocation); the invocation reports it and a later one retries in the same sandbox.
      const failure = await handler(functionUrlEvent({ path: "/health" }), lambdaContext()).catch(
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(ConfigError);
      expect((failure as Error).message).toMatch(/DATABASE_URL: is required on Lambda/);
      env.DATABASE_URL = db.url;
      const res = await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
      expect(res.statusCode).toBe(200);
      expect(starts()).toHaveLength(1);
      expect(String(starts()[0]!.failedBefore)).toMatch(/DATABASE_URL/);
    },
  );

  it("retries a database that refused the eager start once it is reachable", async () => {
    const env = {
      ...baseEnv(),
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/nowhere`,
    };
    const { handler, starts } = makeHandler(env, true);
    const failure = await handler(functionUrlEvent({ path: "/health" }), lambdaContext()).catch(
      (e: unknown) => e,
    );
    // (node's own errors come from another realm under jest: no instanceof)
    expect(String((failure as { code?: string }).code ?? failure)).toMatch(/ECONNREFUSED/);
    env.DATABASE_URL = db.url;
    const res = await handler(functionUrlEvent({ path: "/ready" }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(starts()).toHaveLength(1);
  });

  (redisUp ? it : it.skip)(
    "has Redis ready for the first request, so it gets the shared cache, limits and budgets",
    async () => {
      const { handler, starts } = makeHandler({ ...baseEnv(), REDIS_URL }, true);
      await until(() => starts().length === 1, "the eager cold start");
      expect(starts()[0]).toMatchObject({ cache: "redis", redisReady: true });
      const res = await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
      expect(res.statusCode).toBe(200);
    },
  );

  it("starts degraded, not failed, when Redis refuses connections", async () => {
    const redisDown = `redis://127.0.0.1:${await closedPort()}`;
    const { handler, starts } = makeHandler({ ...baseEnv(), REDIS_URL: redisDown }, false);
    const res = await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(starts()).toHaveLength(1);
    expect(starts()[0]).toMatchObject({ redisReady: false });
  });
});
