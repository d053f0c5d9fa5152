/**
 * The Lambda handler, invoked with real-shaped Function URL, HTTP API v2 and REST API v1 events
 * against the real local PostgreSQL (Lambda always has DATABASE_URL), in buffered and in
 * response-streaming mode (through a faithful stand-in for the runtime's awslambda global).
 */
import { Writable } from "node:stream";
import { Client } from "pg";
import {
  createLambdaHandler,
  type BufferedHandler,
  type StreamingHandler,
} from "../../app/entrypoints/lambda";
import { createLogger } from "../../app/src/telemetry/logger";
import { OfflineProvider } from "../../app/src/llm/offline";
import type { CallOptions, MessageRequest, StreamEvent } from "../../app/src/llm/types";
import {
  functionUrlEvent,
  httpApiV2Event,
  installAwsLambdaGlobal,
  invokeStreaming,
  lambdaContext,
  restApiV1Event,
  startFakeSecretsManager,
  HANDLER_STREAMING,
} from "../support/lambda-events";
import { createTestDatabase, requirePostgresSync } from "../support/services";

const pgUrl = requirePostgresSync();
const maybe = pgUrl ? describe : describe.skip;

const KEY = "alice-lambda-key-0001";

/** The offline model with its stream events 5 ms apart, as a real model paces them. */
class PacedOfflineProvider extends OfflineProvider {
  override async *streamMessage(
    request: MessageRequest,
    options?: CallOptions,
  ): AsyncIterable<StreamEvent> {
    for await (const event of super.streamMessage(request, options)) {
      yield event;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}
const messageBody = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: "claude-haiku-4-5",
    max_tokens: 64,
    messages: [{ role: "user", content: "Hello from Lambda" }],
    ...extra,
  });

/** Log lines, parsed, so tests can see what a sandbox logged (and that no secret was). */
function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = createLogger({ level: "info", destination: destination as never });
  return { logger, lines, raw };
}

maybe("Lambda handler", () => {
  let db: { url: string; drop(): Promise<void> };
  const baseEnv = () => ({
    DATABASE_URL: db.url,
    AGENT_API_KEYS: `alice:${KEY}`,
    AWS_LAMBDA_FUNCTION_NAME: "agent-test",
    AWS_REGION: "eu-west-1",
    NODE_ENV: "production",
    LOG_LEVEL: "info",
  });
  const opened: Array<{ shutdown(): Promise<void> }> = [];

  /** Builds a handler; every one is shut down after the file so the test database can be dropped. */
  function makeHandler<M extends "BUFFERED" | "RESPONSE_STREAM">(
    mode: M,
    env: NodeJS.ProcessEnv,
    llm?: OfflineProvider,
  ) {
    const logs = captureLogs();
    const handler = createLambdaHandler({
      env,
      mode: mode as "BUFFERED",
      deps: { logger: logs.logger, ...(llm ? { llm } : {}) },
    });
    opened.push(handler);
    return {
      handler: handler as unknown as M extends "RESPONSE_STREAM"
        ? StreamingHandler
        : BufferedHandler,
      logs,
      env,
    };
  }

  beforeAll(async () => {
    db = await createTestDatabase(pgUrl!);
  });

  afterAll(async () => {
    for (const h of opened) await h.shutdown();
    await db?.drop();
  });

  describe("buffered (Function URL, HTTP API v2, REST API v1)", () => {
    let handler: BufferedHandler;
    let logs: ReturnType<typeof captureLogs>;
    let env: NodeJS.ProcessEnv;

    beforeAll(() => {
      ({ handler, logs, env } = makeHandler("BUFFERED", baseEnv()));
    });

    it("answers GET /health from a Function URL event", async () => {
      const res = await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ status: "ok" });
      expect(res.headers?.["request-id"]).toMatch(/^req_/);
      expect(res.isBase64Encoded).toBe(false);
    });

    it("builds config and deps once per sandbox, with a small database pool", async () => {
      for (let i = 0; i < 3; i++)
        await handler(httpApiV2Event({ path: "/health" }), lambdaContext());
      const starts = logs.lines.filter((l) => l.msg === "lambda cold start complete");
      expect(starts).toHaveLength(1);
      expect(starts[0]).toMatchObject({
        mode: "BUFFERED",
        store: "postgres",
        poolMax: 2,
        synthetic: true,
      });
      expect(env.DATABASE_POOL_MAX).toBe("2");
    });

    it("answers /ready with the database checked", async () => {
      const res = await handler(functionUrlEvent({ path: "/ready" }), lambdaContext());
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ status: "ready", checks: { database: "ok" } });
    });

    it("serves POST /v1/messages with a base64 body (Function URL) and records the spend before returning", async () => {
      const res = await handler(
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
          },
          body: messageBody({ metadata: { n: "base64" } }),
          base64: true,
        }),
        lambdaContext(),
      );
      expect(res.statusCode).toBe(200);
      const message = JSON.parse(res.body) as {
        type: string;
        role: string;
        content: Array<{ text: string }>;
      };
      expect(message).toMatchObject({ type: "message", role: "assistant" });
      expect(message.content[0]?.text).toContain("Hello from Lambda");
      expect(res.headers?.["x-agent-synthetic"]).toBe("true");

      // No waiting: the ledger was flushed inside the invocation, as a frozen sandbox runs no timers.
      const client = new Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string }>(
          "SELECT count(*) AS n FROM usage_ledger WHERE user_id = 'alice'",
        );
        expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(1);
      } finally {
        await client.end();
      }
    });

    it("serves POST /v1/messages with a plain body (HTTP API v2, Bearer auth, query string)", async () => {
      const res = await handler(
        httpApiV2Event({
          method: "POST",
          path: "/v1/messages?beta=true",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${KEY}`,
            "anthropic-version": "2023-06-01",
          },
          body: messageBody({ metadata: { n: "plain" } }),
        }),
        lambdaContext(),
      );
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ type: "message" });
    });

    it("serves a REST API v1 event", async () => {
      const res = await handler(restApiV1Event({ path: "/health" }), lambdaContext());
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ status: "ok" });
      // REST API events carry multiValueHeaders, and so must the result.
      expect(
        (res as { multiValueHeaders?: Record<string, string[]> }).multiValueHeaders?.[
          "content-type"
        ]?.[0],
      ).toMatch(/json/);
    });

    it("answers 401 without an API key and with a wrong one", async () => {
      const missing = await handler(
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: { "content-type": "application/json" },
          body: messageBody(),
        }),
        lambdaContext(),
      );
      expect(missing.statusCode).toBe(401);
      expect(JSON.parse(missing.body)).toMatchObject({
        type: "error",
        error: { type: "authentication_error" },
      });
      const wrong = await handler(
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": "not-a-real-key-123",
            "anthropic-version": "2023-06-01",
          },
          body: messageBody(),
        }),
        lambdaContext(),
      );
      expect(wrong.statusCode).toBe(401);
    });

    it("answers 400 for a body that is not JSON and for one that fails validation", async () => {
      const notJson = await handler(
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
          },
          body: "{nope",
        }),
        lambdaContext(),
      );
      expect(notJson.statusCode).toBe(400);
      expect(JSON.parse(notJson.body)).toMatchObject({ error: { type: "invalid_request_error" } });

      const invalid = await handler(
        httpApiV2Event({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
          },
          body: JSON.stringify({ model: "claude-haiku-4-5", messages: [] }),
        }),
        lambdaContext(),
      );
      expect(invalid.statusCode).toBe(400);
      expect(JSON.parse(invalid.body).error.message).toMatch(/max_tokens|messages/);
    });

    it("never logs the API key", () => {
      expect(logs.raw.join("\n")).not.toContain(KEY);
    });
  });

  describe("response streaming (Function URL, InvokeMode RESPONSE_STREAM)", () => {
    let uninstall: () => void;
    let handler: StreamingHandler;

    beforeAll(() => {
      uninstall = installAwsLambdaGlobal();
      ({ handler } = makeHandler(
        "RESPONSE_STREAM",
        { ...baseEnv(), LAMBDA_INVOKE_MODE: "RESPONSE_STREAM" },
        new PacedOfflineProvider(),
      ));
    });
    afterAll(() => uninstall());

    it("is marked as a streaming handler for the runtime", () => {
      expect((handler as unknown as Record<symbol, unknown>)[HANDLER_STREAMING]).toBe("response");
    });

    it("streams SSE events after the HTTP metadata prelude", async () => {
      const res = await invokeStreaming(
        handler,
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
          },
          body: messageBody({ stream: true, metadata: { n: "stream" } }),
        }),
      );
      expect(res.contentType).toBe("application/vnd.awslambda.http-integration-response");
      expect(res.prelude).toMatchObject({ statusCode: 200, cookies: [] });
      expect(res.prelude?.headers?.["content-type"]).toMatch(/^text\/event-stream/);
      // The prelude is JSON followed by exactly 8 NUL bytes, then the body.
      const preludeJson = JSON.stringify(res.prelude);
      expect(res.raw.subarray(0, preludeJson.length).toString()).toBe(preludeJson);
      expect([...res.raw.subarray(preludeJson.length, preludeJson.length + 8)]).toEqual([
        0, 0, 0, 0, 0, 0, 0, 0,
      ]);

      const text = res.body.toString("utf8");
      const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
      expect(events[0]).toBe("message_start");
      expect(events.at(-1)).toBe("message_stop");
      expect(events).toContain("content_block_delta");
      expect(events.indexOf("message_delta")).toBeLessThan(events.indexOf("message_stop"));
      // Written as the model produces events (5 ms apart here), not as one buffered blob.
      expect(res.bodyChunks.length).toBeGreaterThan(3);
    });

    it("sends JSON responses and errors through the same prelude", async () => {
      const health = await invokeStreaming(handler, functionUrlEvent({ path: "/health" }));
      expect(health.prelude?.statusCode).toBe(200);
      expect(JSON.parse(health.body.toString())).toEqual({ status: "ok" });

      const unauthorized = await invokeStreaming(
        handler,
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: { "content-type": "application/json" },
          body: messageBody({ stream: true }),
        }),
      );
      expect(unauthorized.prelude?.statusCode).toBe(401);
      expect(JSON.parse(unauthorized.body.toString())).toMatchObject({
        error: { type: "authentication_error" },
      });

      const bad = await invokeStreaming(
        handler,
        functionUrlEvent({
          method: "POST",
          path: "/v1/messages",
          headers: {
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
          },
          body: "[",
        }),
      );
      expect(bad.prelude?.statusCode).toBe(400);
    });
  });

  describe("start-up", () => {
    // A start that fails without DATABASE_URL, then succeeds in the same sandbox: lambda-init.test.ts.

    it("keeps an explicit DATABASE_POOL_MAX", async () => {
      const env: NodeJS.ProcessEnv = { ...baseEnv(), DATABASE_POOL_MAX: "5" };
      const { handler, logs } = makeHandler("BUFFERED", env);
      await handler(functionUrlEvent({ path: "/health" }), lambdaContext());
      expect(logs.lines.find((l) => l.msg === "lambda cold start complete")).toMatchObject({
        poolMax: 5,
      });
    });

    it("rejects an unknown LAMBDA_INVOKE_MODE and RESPONSE_STREAM outside the Lambda runtime", () => {
      expect(() =>
        createLambdaHandler({ env: { ...baseEnv(), LAMBDA_INVOKE_MODE: "STREAMING" } }),
      ).toThrow(/LAMBDA_INVOKE_MODE/);
      expect(() => createLambdaHandler({ env: baseEnv(), mode: "RESPONSE_STREAM" })).toThrow(
        /awslambda\.streamifyResponse/,
      );
    });

    it("resolves secret references before validating the configuration", async () => {
      const sm = await startFakeSecretsManager([
        { name: "agent/api-keys", string: JSON.stringify({ keys: `bob:${KEY}-bob` }) },
      ]);
      // The SDK takes credentials and its endpoint override from the process environment, as in Lambda.
      const saved = { ...process.env };
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
      });
      delete process.env.AWS_PROFILE;
      try {
        const env: NodeJS.ProcessEnv = {
          ...baseEnv(),
          AGENT_API_KEYS: undefined,
          AGENT_API_KEYS_SECRET: "aws-sm://agent/api-keys#keys",
        };
        const { handler, logs } = makeHandler("BUFFERED", env);
        const res = await handler(
          functionUrlEvent({
            method: "POST",
            path: "/v1/messages",
            headers: {
              "content-type": "application/json",
              "x-api-key": `${KEY}-bob`,
              "anthropic-version": "2023-06-01",
            },
            body: messageBody({ metadata: { n: "secret" } }),
          }),
          lambdaContext(),
        );
        expect(res.statusCode).toBe(200);
        expect(sm.requests).toEqual([
          expect.objectContaining({
            secretId: "agent/api-keys",
            signedRegion: "eu-west-1",
            signedService: "secretsmanager",
          }),
        ]);
        expect(logs.lines.find((l) => l.msg === "lambda cold start complete")).toMatchObject({
          secrets: ["AGENT_API_KEYS"],
        });
        expect(logs.raw.join("\n")).not.toContain(`${KEY}-bob`);
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
        Object.assign(process.env, saved);
        await sm.close();
      }
    });
  });
});
