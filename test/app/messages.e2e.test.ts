/**
 * End to end: the official SDK -> the service -> the official SDK (inside the service) -> a fake
 * Anthropic API on loopback. Runs against real Redis + Postgres and against the embedded defaults.
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { serviceBackends } from "../support/services";
import { AnthropicProvider } from "../../app/src/llm/anthropic";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";

const run = randomBytes(4).toString("hex");
const ALICE = { user: `alice-${run}`, key: `alice-key-${run}` };
const BOB = { user: `bob-${run}`, key: `bob-key-${run}` };
const MODEL = "claude-haiku-4-5";

describe.each(serviceBackends())("/v1/messages with $name", ({ open }) => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let cleanup: () => Promise<void>;
  let alice: Anthropic;
  let bob: Anthropic;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    const e = await open();
    cleanup = e.cleanup;
    service = await startService(
      {
        ...e.env,
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
        AGENT_API_KEYS: `${ALICE.user}:${ALICE.key},${BOB.user}:${BOB.key}`,
        MAX_BODY_BYTES: "65536",
      },
      // The service's own retries are exercised separately; here upstream errors must surface.
      {
        llm: new AnthropicProvider({
          apiKey: FAKE_API_KEY,
          baseURL: fake.url,
          timeoutMs: 10_000,
          maxRetries: 0,
        }),
      },
    );
    alice = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
    bob = new Anthropic({ baseURL: service.url, apiKey: BOB.key, maxRetries: 0 });
  });

  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await cleanup?.();
  });

  const unique = (label: string) => `${label} ${randomBytes(6).toString("hex")}`;
  const ledger = async (userId: string) => {
    await service.deps.usage.flush();
    return service.deps.store.listUsage({ userId });
  };

  it("answers messages.create, then serves the identical request from the cache", async () => {
    const prompt = unique("hello");
    const params = {
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user" as const, content: prompt }],
    };
    const before = fake.requestCount;
    const first = await alice.messages.create(params).withResponse();
    expect(first.response.headers.get("x-cache")).toBe("MISS");
    expect(first.data.content[0]).toMatchObject({ type: "text", text: `Echo: ${prompt}` });
    expect(first.data.usage.input_tokens).toBeGreaterThan(0);
    const second = await alice.messages.create(params).withResponse();
    expect(second.response.headers.get("x-cache")).toBe("HIT");
    expect(second.data).toEqual(first.data);
    expect(fake.requestCount - before).toBe(1);
  });

  it("never serves one tenant's cached answer to another", async () => {
    const params = {
      model: MODEL,
      max_tokens: 50,
      messages: [{ role: "user" as const, content: unique("shared") }],
    };
    await alice.messages.create(params);
    const before = fake.requestCount;
    const fromBob = await bob.messages.create(params).withResponse();
    expect(fromBob.response.headers.get("x-cache")).toBe("MISS");
    expect(fake.requestCount - before).toBe(1);
  });

  it("bypasses the cache on cache-control: no-cache", async () => {
    const params = {
      model: MODEL,
      max_tokens: 50,
      messages: [{ role: "user" as const, content: unique("fresh") }],
    };
    await alice.messages.create(params);
    const before = fake.requestCount;
    const again = await alice.messages
      .create(params, { headers: { "cache-control": "no-cache" } })
      .withResponse();
    expect(again.response.headers.get("x-cache")).toBe("BYPASS");
    expect(fake.requestCount - before).toBe(1);
  });

  it("streams with the Messages API event sequence and replays a cached stream event for event", async () => {
    const prompt = unique("stream me");
    const params = {
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: "user" as const, content: prompt }],
    };
    const collect = async () => {
      const stream = alice.messages.stream(params);
      const types: string[] = [];
      stream.on("streamEvent", (e) => types.push(e.type));
      const final = await stream.finalMessage();
      return { types, final, cache: (await stream.withResponse()).response.headers.get("x-cache") };
    };
    const before = fake.requestCount;
    const first = await collect();
    expect(first.cache).toBe("MISS");
    expect(first.types[0]).toBe("message_start");
    expect(first.types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(first.types).toContain("content_block_delta");
    expect(first.final.content[0]).toMatchObject({ type: "text", text: `Echo: ${prompt}` });
    const second = await collect();
    expect(second.cache).toBe("HIT");
    expect(second.types).toEqual(first.types);
    expect(second.final).toEqual(first.final);
    expect(fake.requestCount - before).toBe(1);
  });

  /** POST /v1/messages as Alice, the body as given (raw bytes, headers added or overridden). */
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": ALICE.key,
        "anthropic-version": "2023-06-01",
        ...headers,
      },
      body,
    });

  it("replays a cached stream byte for byte, naming the model that answered, and keeps it apart from the JSON answer to the same prompt", async () => {
    const body = JSON.stringify({
      model: MODEL,
      max_tokens: 200,
      stream: true,
      messages: [{ role: "user", content: unique("bytes") }],
    });
    const first = await post(body);
    const firstText = await first.text();
    const second = await post(body);
    const secondText = await second.text();
    expect([first.headers.get("x-cache"), second.headers.get("x-cache")]).toEqual(["MISS", "HIT"]);
    expect(secondText).toBe(firstText);
    expect(second.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(second.headers.get("x-agent-model")).toBe(first.headers.get("x-agent-model"));
    expect(second.headers.get("x-agent-model")).toBeTruthy();
    // The same request without "stream" is another answer (JSON), not this one.
    const json = await post(JSON.stringify({ ...JSON.parse(body), stream: false }));
    expect(json.headers.get("x-cache")).toBe("MISS");
    expect(((await json.json()) as { type: string }).type).toBe("message");
  });

  it("records usage, including prompt-cache tokens, in the ledger", async () => {
    const user = `carol-${run}-${randomBytes(3).toString("hex")}`;
    const key = await service.deps.store.createApiKey(user);
    const carol = new Anthropic({ baseURL: service.url, apiKey: key.key, maxRetries: 0 });
    const system = [
      {
        type: "text" as const,
        text: "You are terse. ".repeat(400),
        cache_control: { type: "ephemeral" as const },
      },
    ];
    const ask = (q: string) =>
      carol.messages.create({
        model: MODEL,
        max_tokens: 50,
        system,
        messages: [{ role: "user", content: q }],
      });
    const a = await ask(unique("q1"));
    const b = await ask(unique("q2"));
    expect(a.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(b.usage.cache_read_input_tokens).toBe(a.usage.cache_creation_input_tokens);
    const rows = await ledger(user);
    expect(rows).toHaveLength(2);
    const byWrite = rows.find((r) => r.cacheCreationInputTokens > 0)!;
    const byRead = rows.find((r) => r.cacheReadInputTokens > 0)!;
    expect(byWrite.cacheCreationInputTokens).toBe(a.usage.cache_creation_input_tokens);
    expect(byRead.cacheReadInputTokens).toBe(b.usage.cache_read_input_tokens);
    expect(rows.every((r) => r.status === "ok" && r.model === MODEL && r.costUsd > 0)).toBe(true);
    // haiku: $1/M input, $5/M output, $1.25/M cache write
    const expected =
      (a.usage.input_tokens * 1 +
        a.usage.output_tokens * 5 +
        (a.usage.cache_creation_input_tokens ?? 0) * 1.25) /
      1e6;
    expect(byWrite.costUsd).toBeCloseTo(expected, 9);
  });

  it.each([
    ["rate_limit", 429, Anthropic.RateLimitError, "rate_limit_error"],
    ["overloaded", 529, Anthropic.InternalServerError, "overloaded_error"],
    // Issue 13: an upstream 5xx is the model API's failure, a 502 with a fixed message.
    ["api_error", 502, Anthropic.InternalServerError, "api_error"],
  ] as const)(
    "passes an upstream %s on as %i in Anthropic's error shape",
    async (kind, status, cls, type) => {
      const err = await alice.messages
        .create({
          model: MODEL,
          max_tokens: 20,
          messages: [
            { role: "user", content: `[[fake:{"fault":{"kind":"${kind}"}}]] ${unique("x")}` },
          ],
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(cls);
      expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(status);
      expect((err as InstanceType<typeof Anthropic.APIError>).type).toBe(type);
      if (kind === "rate_limit")
        expect((err as InstanceType<typeof Anthropic.APIError>).headers?.get("retry-after")).toBe(
          "1",
        );
    },
  );

  it("ends a stream with an error event on a mid-stream failure, and does not cache it", async () => {
    const prompt = `[[fake:{"deltas":8,"fault":{"kind":"stream_error","afterDeltas":3}}]] ${unique("cut")}`;
    const params = {
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: "user" as const, content: prompt }],
    };
    const attempt = () => alice.messages.stream(params).finalMessage();
    await expect(attempt()).rejects.toThrow(/overloaded/i);
    const before = fake.requestCount;
    await expect(attempt()).rejects.toThrow();
    expect(fake.requestCount - before).toBe(1);
  });

  it("settles the usage of a stream the client abandons", async () => {
    const user = `dave-${run}-${randomBytes(3).toString("hex")}`;
    const key = await service.deps.store.createApiKey(user);
    const controller = new AbortController();
    const res = await fetch(`${service.url}/v1/messages`, {
      method: "POST",
      signal: controller.signal,
      headers: {
        "x-api-key": key.key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 500,
        stream: true,
        messages: [
          {
            role: "user",
            content: `[[fake:{"deltas":50,"deltaIntervalMs":20}]] ${unique("long")}`,
          },
        ],
      }),
    });
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes("content_block_delta"))
      seen += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    await new Promise((r) => setTimeout(r, 200));
    const rows = await ledger(user);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "aborted", model: MODEL });
    expect(rows[0]!.inputTokens).toBeGreaterThan(0);
    expect(rows[0]!.costUsd).toBeGreaterThan(0);
  });

  describe("bad input", () => {
    const expectError = async (res: Response, status: number, type: string, message: RegExp) => {
      expect(res.status).toBe(status);
      const body = (await res.json()) as {
        type: string;
        error: { type: string; message: string };
        request_id: string;
      };
      expect(body.type).toBe("error");
      expect(body.error.type).toBe(type);
      expect(body.error.message).toMatch(message);
      expect(body.request_id).toBe(res.headers.get("request-id"));
    };

    it("rejects malformed JSON with 400", async () => {
      await expectError(
        await post("{not json"),
        400,
        "invalid_request_error",
        /^request body is not valid JSON$/,
      );
    });

    it("rejects wrong types with 400 naming the field", async () => {
      const res = await post(
        JSON.stringify({
          model: MODEL,
          max_tokens: "many",
          messages: [{ role: "user", content: "x" }],
        }),
      );
      await expectError(res, 400, "invalid_request_error", /^max_tokens: .*number/);
      const res2 = await post(
        JSON.stringify({
          model: MODEL,
          max_tokens: 5,
          messages: [{ role: "robot", content: "x" }],
        }),
      );
      await expectError(res2, 400, "invalid_request_error", /^messages\.0\.role: /);
      const res3 = await post(JSON.stringify({ model: MODEL, max_tokens: 5, messages: [] }));
      await expectError(
        res3,
        400,
        "invalid_request_error",
        /^messages: must hold at least one message$/,
      );
    });

    it("rejects an oversized body with 413", async () => {
      const big = JSON.stringify({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: "x".repeat(70_000) }],
      });
      await expectError(
        await post(big),
        413,
        "request_too_large",
        /exceeds 65536 bytes \(MAX_BODY_BYTES\)/,
      );
    });

    it("rejects a missing key and a wrong key with 401", async () => {
      const ok = JSON.stringify({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: "x" }],
      });
      const missing = await fetch(`${service.url}/v1/messages`, {
        method: "POST",
        body: ok,
        headers: { "content-type": "application/json" },
      });
      await expectError(missing, 401, "authentication_error", /^missing API key/);
      await expectError(
        await post(ok, { "x-api-key": "wrong-key-123", "anthropic-version": "2023-06-01" }),
        401,
        "authentication_error",
        /^invalid API key$/,
      );
      const err = await new Anthropic({
        baseURL: service.url,
        apiKey: "wrong-key-123",
        maxRetries: 0,
      }).messages
        .create({ model: MODEL, max_tokens: 5, messages: [{ role: "user", content: "x" }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    });

    it("accepts Authorization: Bearer", async () => {
      const ok = JSON.stringify({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: unique("bearer") }],
      });
      const res = await fetch(`${service.url}/v1/messages`, {
        method: "POST",
        body: ok,
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${ALICE.key}`,
          "anthropic-version": "2023-06-01",
        },
      });
      expect(res.status).toBe(200);
    });

    it("answers unknown routes with 404 in Anthropic's shape", async () => {
      const res = await fetch(`${service.url}/v1/nothing`, {
        headers: { "x-api-key": ALICE.key, "anthropic-version": "2023-06-01" },
      });
      await expectError(res, 404, "not_found_error", /no route for GET \/v1\/nothing/);
    });
  });

  describe("health", () => {
    it("is live and ready, and not ready while draining", async () => {
      expect((await fetch(`${service.url}/health`)).status).toBe(200);
      const ready = await fetch(`${service.url}/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "ready", down: [] });
      service.deps.lifecycle.draining = true;
      try {
        const draining = await fetch(`${service.url}/ready`);
        expect(draining.status).toBe(503);
        expect(await draining.json()).toMatchObject({ status: "draining" });
      } finally {
        service.deps.lifecycle.draining = false;
      }
    });
  });
});

describe("service behaviour without an API key or a reachable database", () => {
  // One embedded database for these cases: starting PGlite costs seconds under jest.
  let store: Store;
  beforeAll(async () => {
    store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
  });
  afterAll(() => store?.close());

  it("answers from the labelled synthetic model on embedded defaults", async () => {
    const service = await startService(
      { DATA_DIR: "memory://", AGENT_API_KEYS: `${ALICE.user}:${ALICE.key}` },
      { store },
    );
    try {
      const client = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
      const res = await client.messages
        .create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: "Hi" }] })
        .withResponse();
      expect(res.response.headers.get("x-agent-synthetic")).toBe("true");
      expect(res.data.model).toBe("synthetic-offline");
      expect(res.data.content[0]).toMatchObject({
        type: "text",
        text: expect.stringMatching(/^\[synthetic response/),
      });
      const streamed = await client.messages
        .stream({
          model: MODEL,
          max_tokens: 100,
          messages: [{ role: "user", content: "Hi there" }],
        })
        .finalMessage();
      expect(streamed.content[0]).toMatchObject({
        type: "text",
        text: expect.stringContaining("Hi there"),
      });
    } finally {
      await service.close();
    }
  });

  it("reports the database as down on /ready with 503", async () => {
    const service = await startService(
      { DATA_DIR: "memory://", AGENT_API_KEYS: `${ALICE.user}:${ALICE.key}` },
      { store },
    );
    const realPing = service.deps.store.ping.bind(service.deps.store);
    service.deps.store.ping = async () => {
      throw new Error("connection refused");
    };
    try {
      const res = await fetch(`${service.url}/ready`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: "unavailable",
        down: ["database"],
        checks: { database: "connection refused" },
      });
    } finally {
      service.deps.store.ping = realPing;
      await service.close();
    }
  });

  it("retries a transient upstream failure inside the service", async () => {
    const fake = await startFakeAnthropic();
    const service = await startService(
      {
        DATA_DIR: "memory://",
        AGENT_API_KEYS: `${ALICE.user}:${ALICE.key}`,
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
      },
      { store },
    );
    try {
      fake.failNext(1, { kind: "overloaded" });
      const client = new Anthropic({ baseURL: service.url, apiKey: ALICE.key, maxRetries: 0 });
      const msg = await client.messages.create({
        model: MODEL,
        max_tokens: 20,
        messages: [{ role: "user", content: "retry" }],
      });
      expect(msg.content[0]).toMatchObject({ text: "Echo: retry" });
      expect(fake.requestCount).toBe(2);
    } finally {
      await service.close();
      await fake.close();
    }
  });
});
