/**
 * The fake Anthropic API, checked through the official SDK: if the SDK parses what the fake
 * sends the way it parses the real API, tests of our service against the fake mean something.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Anthropic, {
  APIConnectionError,
  APIError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  OverloadedError,
  RateLimitError,
} from "@anthropic-ai/sdk";
import {
  estimateInputTokens,
  estimateTokens,
  FAKE_API_KEY,
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeBehavior,
} from "../support/fake-anthropic";

// Any id works with the fake; this one avoids the SDK's deprecation warning for claude-sonnet-4-5.
const MODEL = "claude-sonnet-4-6";
let fake: FakeAnthropic;
let client: Anthropic;

beforeAll(async () => {
  fake = await startFakeAnthropic({
    batchDelayMs: 30,
    minCacheableTokensByModel: { "claude-haiku-4-5": 4096 },
  });
  client = new Anthropic({ baseURL: fake.url, apiKey: FAKE_API_KEY, maxRetries: 0 });
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

const user = (content: Anthropic.MessageParam["content"]): Anthropic.MessageParam => ({
  role: "user",
  content,
});
const withBehavior = (b: FakeBehavior) => ({ headers: { "x-fake-behavior": JSON.stringify(b) } });

/** Catches the rejection of `p` so tests can assert on the error object itself. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

describe("POST /v1/messages (JSON)", () => {
  it("echoes the last user message with realistic usage and records the request", async () => {
    const messages = [user("Hello there, fake Claude")];
    const msg = await client.messages.create({ model: MODEL, max_tokens: 256, messages });

    expect(msg).toMatchObject({
      type: "message",
      role: "assistant",
      model: MODEL,
      stop_reason: "end_turn",
      stop_sequence: null,
      content: [{ type: "text", text: "Echo: Hello there, fake Claude" }],
    });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.usage).toMatchObject({
      input_tokens: estimateInputTokens({ messages }),
      output_tokens: estimateTokens("Echo: Hello there, fake Claude"),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      service_tier: "standard",
    });

    const rec = fake.lastRequest()!;
    expect(rec).toMatchObject({ method: "POST", path: "/v1/messages", status: 200, stream: false });
    expect(rec.headers.authorization).toBe(`Bearer ${FAKE_API_KEY}`); // how SDK 1.x sends the key
    expect(rec.headers["anthropic-version"]).toBeDefined();
    expect(rec.body).toMatchObject({ model: MODEL, max_tokens: 256, messages });
  });

  it("reads text blocks, ignores earlier turns, and honours reply/minReplyChars", async () => {
    const msg = await client.messages.create(
      {
        model: MODEL,
        max_tokens: 256,
        messages: [
          user("first"),
          { role: "assistant", content: "ok" },
          user([{ type: "text", text: "second" }]),
        ],
      },
      withBehavior({ minReplyChars: 40 }),
    );
    const text = (msg.content[0] as Anthropic.TextBlock).text;
    expect(text.startsWith("Echo: second")).toBe(true);
    expect(text).toHaveLength(40);

    const fixed = await client.messages.create(
      { model: MODEL, max_tokens: 256, messages: [user("x")] },
      withBehavior({ reply: "scripted" }),
    );
    // The API leaves citations out of a text block without any (the Vercel AI SDK rejects null).
    expect(fixed.content).toEqual([{ type: "text", text: "scripted" }]);
  });

  it("truncates at max_tokens and cuts at stop sequences", async () => {
    const long = await client.messages.create({
      model: MODEL,
      max_tokens: 3,
      messages: [user("a rather long prompt")],
    });
    expect(long.stop_reason).toBe("max_tokens");
    expect(long.usage.output_tokens).toBe(3);
    expect((long.content[0] as Anthropic.TextBlock).text).toBe("Echo: a rath");

    const stopped = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      stop_sequences: ["STOP", "never"],
      messages: [user("one two STOP three")],
    });
    expect(stopped).toMatchObject({ stop_reason: "stop_sequence", stop_sequence: "STOP" });
    expect((stopped.content[0] as Anthropic.TextBlock).text).toBe("Echo: one two ");
  });

  it("rejects a bad key, a missing anthropic-version header and invalid bodies in the API's error shape", async () => {
    const badKey = new Anthropic({ baseURL: fake.url, apiKey: "sk-wrong", maxRetries: 0 });
    const auth = await failure(
      badKey.messages.create({ model: MODEL, max_tokens: 5, messages: [user("hi")] }),
    );
    expect(auth).toBeInstanceOf(AuthenticationError);
    expect((auth as AuthenticationError).error).toEqual({
      type: "error",
      error: { type: "authentication_error", message: "invalid x-api-key" },
      request_id: expect.stringMatching(/^req_/),
    });
    expect((auth as AuthenticationError).requestID).toMatch(/^req_/);

    const noVersion = await fetch(`${fake.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": FAKE_API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, max_tokens: 5, messages: [user("hi")] }),
    });
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({ error: { type: "invalid_request_error" } });

    const noMax = await failure(
      client.messages.create({
        model: MODEL,
        messages: [user("hi")],
      } as unknown as Anthropic.MessageCreateParamsNonStreaming),
    );
    expect(noMax).toBeInstanceOf(BadRequestError);
    expect((noMax as BadRequestError).apiMessage).toBe("max_tokens: Field required");
  });
});

describe("POST /v1/messages (SSE)", () => {
  const params = { model: MODEL, max_tokens: 256, messages: [user("stream me please")] };

  it("sends the real API's event sequence, and finalMessage() matches the JSON answer", async () => {
    const raw = await client.messages.create(
      { ...params, stream: true },
      withBehavior({ deltas: 4 }),
    );
    const events: Anthropic.RawMessageStreamEvent[] = [];
    for await (const ev of raw) events.push(ev);
    expect(events.map((e) => e.type)).toEqual([
      "message_start",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    const start = events[0] as Anthropic.RawMessageStartEvent;
    expect(start.message).toMatchObject({
      content: [],
      stop_reason: null,
      usage: { input_tokens: 4 },
    });

    const json = await client.messages.create(params);
    const final = await client.messages.stream(params).finalMessage();
    expect(final.content).toEqual(json.content);
    expect(final.usage).toEqual(json.usage);
    expect(final.stop_reason).toBe("end_turn");
  });

  it("writes event: and data: lines with a ping after the first content_block_start", async () => {
    const res = await fetch(`${fake.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": FAKE_API_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({ ...params, stream: true }),
    });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = (await res.text()).trim().split("\n\n");
    expect(frames.slice(0, 3).map((f) => f.split("\n")[0])).toEqual([
      "event: message_start",
      "event: content_block_start",
      "event: ping",
    ]);
    for (const f of frames) expect(f).toMatch(/^event: [a-z_]+\ndata: \{.*\}$/);
  });

  it("paces deltas and delays the first token as configured", async () => {
    const began = Date.now();
    const stream = client.messages.stream(
      params,
      withBehavior({ deltas: 8, deltaIntervalMs: 10, firstTokenDelayMs: 150 }),
    );
    let firstTextAt = 0;
    let texts = 0;
    stream.on("text", () => {
      texts++;
      firstTextAt ||= Date.now();
    });
    await stream.finalMessage();
    expect(texts).toBe(8);
    expect(firstTextAt - began).toBeGreaterThanOrEqual(140);
    expect(Date.now() - firstTextAt).toBeGreaterThanOrEqual(60); // 7 intervals of 10 ms
  });

  it("throws when the stream carries an error event after N deltas", async () => {
    const stream = client.messages.stream(
      params,
      withBehavior({ deltas: 6, fault: { kind: "stream_error", afterDeltas: 2 } }),
    );
    const seen: string[] = [];
    stream.on("text", (t) => seen.push(t));
    const err = await failure(stream.finalMessage());
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).type).toBe("overloaded_error");
    expect((err as APIError).error).toMatchObject({
      error: { type: "overloaded_error", message: "Overloaded" },
    });
    expect(seen).toHaveLength(2);
  });

  it("cuts the connection mid-stream on a disconnect fault", async () => {
    const stream = client.messages.stream(
      params,
      withBehavior({ deltas: 6, fault: { kind: "disconnect", afterDeltas: 3 } }),
    );
    const seen: string[] = [];
    stream.on("text", (t) => seen.push(t));
    const err = await failure(stream.finalMessage());
    expect(err).toBeInstanceOf(Error);
    // A broken connection, not an API error event (SDK 1.17 reports it as APIConnectionError).
    expect(err).toBeInstanceOf(APIConnectionError);
    expect((err as APIError).status).toBeUndefined();
    expect(seen).toHaveLength(3);
    // The server is fine afterwards.
    await expect(client.messages.create(params)).resolves.toMatchObject({ type: "message" });
  });
});

describe("prompt caching", () => {
  const bigSystem = "You are a meticulous assistant. ".repeat(160); // 5120 chars = 1280 tokens
  const cachedSystem = (ttl?: "1h"): Anthropic.TextBlockParam[] => [
    {
      type: "text",
      text: bigSystem,
      cache_control: ttl ? { type: "ephemeral", ttl } : { type: "ephemeral" },
    },
  ];
  const prefixTokens = estimateTokens(bigSystem);

  it("writes the cached prefix on first sight and reads it afterwards", async () => {
    const req = {
      model: MODEL,
      max_tokens: 50,
      system: cachedSystem(),
      messages: [user("question one")],
    };
    const first = await client.messages.create(req);
    expect(first.usage).toMatchObject({
      cache_creation_input_tokens: prefixTokens,
      cache_read_input_tokens: 0,
      input_tokens: estimateTokens("question one"),
      cache_creation: { ephemeral_5m_input_tokens: prefixTokens, ephemeral_1h_input_tokens: 0 },
    });

    const second = await client.messages.create({ ...req, messages: [user("another question")] });
    expect(second.usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: prefixTokens,
      input_tokens: estimateTokens("another question"),
    });

    // Same prompt, other model: caches are per model.
    const other = await client.messages.create({ ...req, model: "claude-opus-4-5" });
    expect(other.usage.cache_creation_input_tokens).toBe(prefixTokens);
  });

  it("silently does nothing below the minimum prefix, per model", async () => {
    const small = await client.messages.create({
      model: MODEL,
      max_tokens: 50,
      system: [{ type: "text", text: "short system prompt", cache_control: { type: "ephemeral" } }],
      messages: [user("hi")],
    });
    expect(small.usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    });
    expect(small.usage.input_tokens).toBe(
      estimateTokens("short system prompt") + estimateTokens("hi"),
    );

    // 1280 tokens is enough for Sonnet but not for Haiku's 4096 minimum.
    const haiku = await client.messages.create({
      model: "claude-haiku-4-5",
      max_tokens: 50,
      system: cachedSystem(),
      messages: [user("hi")],
    });
    expect(haiku.usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    });
  });

  it("reads the earlier prefix when a conversation moves its breakpoint forward", async () => {
    const turn1: Anthropic.MessageParam[] = [
      user([{ type: "text", text: bigSystem + "turn one", cache_control: { type: "ephemeral" } }]),
    ];
    const r1 = await client.messages.create({ model: MODEL, max_tokens: 50, messages: turn1 });
    const t1 = estimateInputTokens({ messages: turn1 });
    expect(r1.usage.cache_creation_input_tokens).toBe(t1);

    const turn2: Anthropic.MessageParam[] = [
      user([{ type: "text", text: bigSystem + "turn one" }]),
      { role: "assistant", content: [{ type: "text", text: "answer one" }] },
      user([{ type: "text", text: "turn two", cache_control: { type: "ephemeral", ttl: "1h" } }]),
    ];
    const r2 = await client.messages.create({ model: MODEL, max_tokens: 50, messages: turn2 });
    const t2 = estimateInputTokens({ messages: turn2 });
    expect(r2.usage).toMatchObject({
      cache_read_input_tokens: t1,
      cache_creation_input_tokens: t2 - t1,
      input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: t2 - t1 },
    });
  });

  it("applies top-level cache_control to the last block and rejects more than 4 breakpoints", async () => {
    const messages = [user(bigSystem)];
    const auto = await client.messages.create({
      model: MODEL,
      max_tokens: 20,
      messages,
      cache_control: { type: "ephemeral" },
    });
    expect(auto.usage.cache_creation_input_tokens).toBe(prefixTokens);

    const cc = { type: "ephemeral" } as const;
    const five = await failure(
      client.messages.create({
        model: MODEL,
        max_tokens: 20,
        messages: [
          user(
            [1, 2, 3, 4, 5].map((i) => ({
              type: "text" as const,
              text: `b${i}`,
              cache_control: cc,
            })),
          ),
        ],
      }),
    );
    expect(five).toBeInstanceOf(BadRequestError);
  });
});

describe("prompt cache lifetime and equivalent prompts", () => {
  const bigSystem = "You are a patient tutor. ".repeat(220); // 5500 chars = 1375 tokens
  const prefixTokens = estimateTokens(bigSystem);
  let clock = 0;
  let timed: FakeAnthropic;
  let timedClient: Anthropic;
  beforeAll(async () => {
    timed = await startFakeAnthropic({ now: () => clock, maxRecorded: 0 });
    timedClient = new Anthropic({ baseURL: timed.url, apiKey: FAKE_API_KEY, maxRetries: 0 });
  });
  afterAll(() => timed.close());
  beforeEach(() => {
    timed.reset();
    clock = 1_000_000;
  });
  const ask = (q: string, ttl?: "1h") =>
    timedClient.messages.create({
      model: MODEL,
      max_tokens: 20,
      system: [
        {
          type: "text",
          text: bigSystem,
          cache_control: ttl ? { type: "ephemeral", ttl } : { type: "ephemeral" },
        },
      ],
      messages: [user(q)],
    });
  const minutes = (n: number) => n * 60_000;

  it("a 5-minute entry expires 5 minutes after its last use, and each read extends it", async () => {
    expect((await ask("a")).usage.cache_creation_input_tokens).toBe(prefixTokens);
    clock += minutes(4);
    expect((await ask("b")).usage.cache_read_input_tokens).toBe(prefixTokens);
    clock += minutes(4); // 8 minutes after the write, 4 after the read: still there
    expect((await ask("c")).usage.cache_read_input_tokens).toBe(prefixTokens);
    clock += minutes(5); // 5 minutes unused: gone, written again
    const late = await ask("d");
    expect(late.usage).toMatchObject({
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: prefixTokens,
    });
  });

  it('a "1h" entry outlives five minutes but not an hour', async () => {
    await ask("a", "1h");
    clock += minutes(30);
    expect((await ask("b", "1h")).usage.cache_read_input_tokens).toBe(prefixTokens);
    clock += minutes(61);
    expect((await ask("c", "1h")).usage.cache_read_input_tokens).toBe(0);
  });

  it("a string message is the same prefix as one text block holding it", async () => {
    const first = [user(bigSystem)];
    // The first call marks its message as a block; the next sends the same text as a string.
    await timedClient.messages.create({
      model: MODEL,
      max_tokens: 20,
      messages: [user([{ type: "text", text: bigSystem, cache_control: { type: "ephemeral" } }])],
    });
    const second = await timedClient.messages.create({
      model: MODEL,
      max_tokens: 20,
      messages: [
        ...first,
        { role: "assistant", content: "ok" },
        user([{ type: "text", text: "next", cache_control: { type: "ephemeral" } }]),
      ],
    });
    expect(second.usage.cache_read_input_tokens).toBe(prefixTokens);
  });
});

describe("faults", () => {
  const params = { model: MODEL, max_tokens: 50, messages: [user("hi")] };

  it("429 carries retry-after and surfaces as RateLimitError", async () => {
    fake.failNext(1, { kind: "rate_limit", retryAfterSeconds: 7 });
    const err = await failure(client.messages.create(params));
    expect(err).toBeInstanceOf(RateLimitError);
    const rl = err as RateLimitError;
    expect(rl.status).toBe(429);
    expect(rl.headers.get("retry-after")).toBe("7");
    expect(rl.type).toBe("rate_limit_error");
    expect(rl.requestID).toBe(fake.lastRequest()!.requestId);
    await expect(client.messages.create(params)).resolves.toMatchObject({ type: "message" });
  });

  it("spend-limit 429 says so, is marked non-retryable, and the SDK does not retry it", async () => {
    const retrying = new Anthropic({ baseURL: fake.url, apiKey: FAKE_API_KEY, maxRetries: 2 });
    fake.setBehavior({ fault: { kind: "spend_limit" } });
    const err = await failure(retrying.messages.create(params));
    expect(err).toBeInstanceOf(RateLimitError);
    const rl = err as RateLimitError;
    expect(rl.name).toBe("EnforcedSpendLimitReachedError");
    expect(rl.errorCode).toBe("enforced_spend_limit_reached");
    expect(rl.apiMessage).toMatch(/reached your specified API usage limits/);
    expect(rl.headers.get("x-should-retry")).toBe("false");
    expect(fake.requestCount).toBe(1);
  });

  it("529 surfaces as OverloadedError and 500 as InternalServerError", async () => {
    fake.failNext(1, { kind: "overloaded" });
    fake.failNext(1, { kind: "api_error" });
    const overloaded = await failure(client.messages.create(params));
    expect(overloaded).toBeInstanceOf(OverloadedError);
    expect(overloaded).toBeInstanceOf(APIError);
    expect((overloaded as APIError).status).toBe(529);
    expect((overloaded as APIError).type).toBe("overloaded_error");
    const internal = await failure(client.messages.create(params));
    expect(internal).toBeInstanceOf(InternalServerError);
    expect((internal as APIError).status).toBe(500);
    expect(fake.requests.map((r) => r.fault)).toEqual(["overloaded", "api_error"]);
  });

  it("fails the next N requests then succeeds, which the SDK's retries ride through", async () => {
    const retrying = new Anthropic({ baseURL: fake.url, apiKey: FAKE_API_KEY, maxRetries: 2 });
    fake.failNext(2, { kind: "rate_limit", retryAfterSeconds: 0, retryAfterMs: 5 });
    await expect(retrying.messages.create(params)).resolves.toMatchObject({ type: "message" });
    expect(fake.requests.map((r) => [r.status, r.headers["x-stainless-retry-count"]])).toEqual([
      [429, "0"],
      [429, "1"],
      [200, "2"],
    ]);
  });

  it("per-request failFirst keys keep parallel scenarios apart, and ignore the global queue", async () => {
    fake.failNext(5, { kind: "api_error" });
    const a = {
      failFirst: { key: "scenario-a", times: 1, fault: { kind: "overloaded" } },
    } as const;
    const b = {
      failFirst: { key: "scenario-b", times: 2, fault: { kind: "rate_limit" } },
    } as const;
    const statuses = async (behavior: FakeBehavior, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        out.push(
          await client.messages.create(params, withBehavior(behavior)).then(
            () => 200,
            (e: APIError) => e.status ?? 0,
          ),
        );
      }
      return out;
    };
    const [sa, sb] = await Promise.all([statuses(a, 3), statuses(b, 3)]);
    expect(sa).toEqual([529, 200, 200]);
    expect(sb).toEqual([429, 429, 200]);
    // The queued api_errors are still waiting for a request without its own scenario.
    await expect(client.messages.create(params)).rejects.toBeInstanceOf(InternalServerError);
  });

  it("takes controls from a [[fake:...]] directive in the prompt, for callers that cannot set headers", async () => {
    const err = await failure(
      client.messages.create({
        ...params,
        messages: [user('hi [[fake:{"fault":{"kind":"overloaded"}}]]')],
      }),
    );
    expect(err).toBeInstanceOf(OverloadedError);
    const ok = await client.messages.create({
      ...params,
      messages: [user('hi [[fake:{"reply":"from directive"}]]')],
    });
    expect((ok.content[0] as Anthropic.TextBlock).text).toBe("from directive");
    const spaced = await client.messages.create({
      ...params,
      messages: [user("say [[fake:{}]] hello  world")],
    });
    expect((spaced.content[0] as Anthropic.TextBlock).text).toBe("Echo: say hello  world");
  });

  it("waits latencyMs before answering and rejects misspelt controls", async () => {
    const began = Date.now();
    await client.messages.create(params, withBehavior({ latencyMs: 80 }));
    expect(Date.now() - began).toBeGreaterThanOrEqual(75);

    const typo = await failure(
      client.messages.create(params, { headers: { "x-fake-behavior": '{"latency":5}' } }),
    );
    expect(typo).toBeInstanceOf(BadRequestError);
    expect((typo as BadRequestError).apiMessage).toMatch(/x-fake-behavior/);
  });

  it("survives clients that hang up during latency or mid-stream", async () => {
    const during = new AbortController();
    const slow = client.messages.create(params, {
      ...withBehavior({ latencyMs: 60 }),
      signal: during.signal,
    });
    setTimeout(() => during.abort(), 10);
    await expect(slow).rejects.toThrow();

    const mid = new AbortController();
    const stream = client.messages.stream(params, {
      ...withBehavior({ deltas: 20, deltaIntervalMs: 10 }),
      signal: mid.signal,
    });
    stream.on("text", () => mid.abort());
    await expect(stream.finalMessage()).rejects.toThrow();

    await new Promise((r) => setTimeout(r, 80)); // let the fake reach its writes to the dead sockets
    await expect(client.messages.create(params)).resolves.toMatchObject({ type: "message" });
  });

  it("drops the connection before answering a non-streaming request on disconnect", async () => {
    const err = await failure(
      client.messages.create(params, withBehavior({ fault: { kind: "disconnect" } })),
    );
    expect(err).toBeInstanceOf(APIConnectionError);
  });
});

describe("tool use convention", () => {
  const tools: Anthropic.Tool[] = [
    {
      name: "get_weather",
      description: "Weather for a city",
      input_schema: { type: "object", properties: { city: { type: "string" } } },
    },
  ];

  it("answers [[tool:NAME {json}]] with a tool_use block, then folds tool results into the text", async () => {
    const ask = user('What is the weather? [[tool:get_weather {"city":"Paris"}]]');
    const first = await client.messages.create({
      model: MODEL,
      max_tokens: 200,
      tools,
      messages: [ask],
    });
    expect(first.stop_reason).toBe("tool_use");
    expect(first.content[0]).toMatchObject({ type: "text", text: "Calling get_weather." });
    const call = first.content[1] as Anthropic.ToolUseBlock;
    expect(call).toMatchObject({ type: "tool_use", name: "get_weather", input: { city: "Paris" } });
    expect(call.id).toMatch(/^toolu_/);

    const second = await client.messages.create({
      model: MODEL,
      max_tokens: 200,
      tools,
      messages: [
        ask,
        { role: "assistant", content: first.content },
        user([{ type: "tool_result", tool_use_id: call.id, content: "18°C and sunny" }]),
      ],
    });
    expect(second.stop_reason).toBe("end_turn");
    expect(second.content).toEqual([
      { type: "text", text: `Tool result ${call.id}: 18°C and sunny` },
    ]);
  });

  it("streams tool input as input_json_delta so finalMessage() has the parsed input", async () => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 200,
      tools,
      messages: [user('[[tool:get_weather {"city":"Zürich"}]]')],
    });
    const jsonParts: string[] = [];
    stream.on("streamEvent", (ev) => {
      if (ev.type === "content_block_delta" && ev.delta.type === "input_json_delta")
        jsonParts.push(ev.delta.partial_json);
    });
    const final = await stream.finalMessage();
    expect(final.content[1]).toMatchObject({
      type: "tool_use",
      name: "get_weather",
      input: { city: "Zürich" },
    });
    expect(jsonParts[0]).toBe("");
    expect(jsonParts.join("")).toBe('{"city":"Zürich"}');
  });

  it("rejects a directive naming an undeclared tool", async () => {
    const err = await failure(
      client.messages.create({
        model: MODEL,
        max_tokens: 50,
        tools,
        messages: [user("[[tool:launch_rockets]]")],
      }),
    );
    expect(err).toBeInstanceOf(BadRequestError);
  });
});

describe("count_tokens and batches", () => {
  it("count_tokens agrees with usage.input_tokens", async () => {
    const req = { model: MODEL, system: "be brief", messages: [user("how many tokens is this?")] };
    const count = await client.messages.countTokens(req);
    const msg = await client.messages.create({ ...req, max_tokens: 20 });
    expect(count.input_tokens).toBe(msg.usage.input_tokens);
  });

  it("runs a batch from in_progress to ended and serves JSONL results", async () => {
    const created = await client.messages.batches.create({
      requests: [
        { custom_id: "a", params: { model: MODEL, max_tokens: 50, messages: [user("alpha")] } },
        {
          custom_id: "b",
          params: {
            model: MODEL,
            max_tokens: 50,
            messages: [user('beta [[fake:{"fault":{"kind":"overloaded"}}]]')],
          },
        },
      ],
    });
    expect(created).toMatchObject({
      type: "message_batch",
      processing_status: "in_progress",
      request_counts: { processing: 2, succeeded: 0 },
      results_url: null,
    });
    await expect(client.messages.batches.results(created.id)).rejects.toThrow(/results_url/);

    let batch = created;
    while (batch.processing_status !== "ended") {
      await new Promise((r) => setTimeout(r, 10));
      batch = await client.messages.batches.retrieve(created.id);
    }
    expect(batch.request_counts).toEqual({
      processing: 0,
      succeeded: 1,
      errored: 1,
      canceled: 0,
      expired: 0,
    });
    expect(batch.results_url).toBe(`${fake.url}/v1/messages/batches/${created.id}/results`);

    const results: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
    for await (const r of await client.messages.batches.results(created.id)) results.push(r);
    expect(results.map((r) => [r.custom_id, r.result.type])).toEqual([
      ["a", "succeeded"],
      ["b", "errored"],
    ]);
    const ok = results[0]!.result as Anthropic.Messages.MessageBatchSucceededResult;
    expect(ok.message.content[0]).toMatchObject({ text: "Echo: alpha" });
    expect(ok.message.usage.service_tier).toBe("batch");

    const listed = await client.messages.batches.list();
    expect(listed.data.map((b) => b.id)).toContain(created.id);
    await expect(client.messages.batches.delete(created.id)).resolves.toMatchObject({
      type: "message_batch_deleted",
    });
  });

  it("cancels a batch: canceling, then ended with canceled results", async () => {
    const slow = await startFakeAnthropic({ batchDelayMs: 60_000 });
    try {
      const c = new Anthropic({ baseURL: slow.url, apiKey: FAKE_API_KEY, maxRetries: 0 });
      const created = await c.messages.batches.create({
        requests: [
          { custom_id: "only", params: { model: MODEL, max_tokens: 10, messages: [user("x")] } },
        ],
      });
      const canceling = await c.messages.batches.cancel(created.id);
      expect(canceling.processing_status).toBe("canceling");
      expect(canceling.cancel_initiated_at).not.toBeNull();
      await new Promise((r) => setTimeout(r, 5));
      const ended = await c.messages.batches.retrieve(created.id);
      expect(ended).toMatchObject({
        processing_status: "ended",
        request_counts: { canceled: 1, processing: 0 },
      });
      const lines: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
      for await (const r of await c.messages.batches.results(created.id)) lines.push(r);
      expect(lines).toEqual([{ custom_id: "only", result: { type: "canceled" } }]);
    } finally {
      await slow.close();
    }
  });
});

describe("recording and the CLI", () => {
  it("keeps a bounded ring of recorded requests", async () => {
    const small = await startFakeAnthropic({ maxRecorded: 3, apiKey: null });
    try {
      const c = new Anthropic({ baseURL: small.url, apiKey: "any-key-at-all", maxRetries: 0 });
      for (let i = 0; i < 5; i++)
        await c.messages.create({ model: MODEL, max_tokens: 10, messages: [user(`n${i}`)] });
      expect(small.requestCount).toBe(5);
      expect(small.requests.map((r) => r.seq)).toEqual([3, 4, 5]);
      expect(small.lastRequest()?.body).toMatchObject({ messages: [{ content: "n4" }] });
    } finally {
      await small.close();
    }
  });

  it("runs as a separate process that prints its URL and exits cleanly on SIGTERM", async () => {
    const script = join(__dirname, "..", "support", "fake-anthropic-server.ts");
    const child = spawn(process.execPath, ["--import", "tsx", script, "--deltas", "4"], {
      cwd: join(__dirname, "..", ".."),
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
      const { url } = JSON.parse(line) as { url: string };
      const c = new Anthropic({ baseURL: url, apiKey: FAKE_API_KEY, maxRetries: 0 });
      const msg = await c.messages.create({ model: MODEL, max_tokens: 50, messages: [user("hi")] });
      expect(msg.usage.output_tokens).toBe(estimateTokens("Echo: hi"));
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 20_000);
});

describe("waits", () => {
  it("a request still waiting out its latency when the fake closes does not keep its process alive (abuse-shutdown.test.ts left two 60 s timers, and jest force-exited its worker)", async () => {
    // A process of its own, so that nothing else (jest, this file) keeps it alive: it starts a
    // fake with a 60 s latency, sends a request, closes the fake once the request is in, and
    // then has nothing left to do. It exits at once, or in 60 s if the fake's wait holds it.
    const fakeModule = join(__dirname, "..", "support", "fake-anthropic.ts");
    const code = `
      const mod = await import(${JSON.stringify(fakeModule)});
      const { startFakeAnthropic, FAKE_API_KEY } = mod.startFakeAnthropic ? mod : mod.default;
      const fake = await startFakeAnthropic({ behavior: { latencyMs: 60000 } });
      const call = fetch(fake.url + "/v1/messages", {
        method: "POST",
        headers: { "x-api-key": FAKE_API_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
        body: JSON.stringify({ model: "${MODEL}", max_tokens: 16, messages: [{ role: "user", content: "hello" }] }),
      }).then((r) => r.status, (err) => err.name);
      while (fake.requestCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      await fake.close();
      console.log(JSON.stringify({ call: await call }));`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: join(__dirname, "..", ".."),
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const exit = once(child, "exit").then(([status]) => status as number | null);
      // The line, or the exit of a child that failed before printing it.
      const line = await Promise.race([
        once(createInterface({ input: child.stdout }), "line").then(([l]) => l as string),
        exit.then((status) => `exited ${status} before closing the fake`),
      ]);
      expect(line).toBe(JSON.stringify({ call: "TypeError" })); // fetch failed: the socket was cut
      const stillRunning = new Promise<"still running">((resolve) =>
        setTimeout(() => resolve("still running"), 20_000).unref(),
      );
      expect(await Promise.race([exit, stillRunning])).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 40_000);
});
