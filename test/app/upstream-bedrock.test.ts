/**
 * LLM_UPSTREAM=bedrock end to end: the service as the app builds it (createDeps: the Bedrock
 * provider from the configuration, in the retry loop; real Postgres and Redis), clients through the
 * official SDK, and a local fake of Bedrock's runtime API that checks what Bedrock checks
 * (test/support/fake-bedrock.ts: SigV4, the invoke paths, `anthropic_version: "bedrock-2023-05-31"`,
 * no model or stream in the body, the binary event stream).
 *
 * Set UPSTREAM_RECORD_DIR to keep one request as the fake saw it (bedrock-request.json there).
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  FAKE_AWS_CREDENTIALS,
  FAKE_BEDROCK_API_KEY,
  startFakeBedrock,
  type FakeBedrock,
} from "../support/fake-bedrock";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { requirePostgresSync, requireRedisSync } from "../support/services";
import { BedrockProvider } from "../../app/src/llm/bedrock";
import { ModelCatalog } from "../../app/src/llm/models";
import { startCloudService, readSse, type CloudService } from "./upstream-service";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USER = { user: `bedrock-${run}`, key: `bedrock-key-${run}` };
const SONNET = "claude-sonnet-4-6";
const HAIKU = "claude-haiku-4-5";
const OPUS = "claude-opus-4-5";
const HAIKU_BASE = "anthropic.claude-haiku-4-5-20251001-v1:0";
/** Bedrock's prices through a `us.` profile: the list prices times 1.1 (app/config/models.json). */
const US_PRICES = {
  [SONNET]: { input: 3.3, output: 16.5, write5m: 4.125, read: 0.33 },
  [HAIKU]: { input: 1.1, output: 5.5, write5m: 1.375, read: 0.11 },
};
const credentials = () => Promise.resolve(FAKE_AWS_CREDENTIALS);
const unique = (label: string) => `${label} ${randomBytes(6).toString("hex")}`;

(pg && redisUrl ? describe : describe.skip)("LLM_UPSTREAM=bedrock", () => {
  let fake: FakeBedrock;
  let service: CloudService;
  let client: Anthropic;
  const catalog = ModelCatalog.load();
  const invokes = (part: string) =>
    fake.calls.filter((c) => c.operation !== "count-tokens" && c.modelId?.includes(part));

  beforeAll(async () => {
    const models = Object.fromEntries(catalog.table.models.map((m) => [m.bedrock!.modelId, m.id]));
    fake = await startFakeBedrock({ models, noCountTokens: [HAIKU_BASE] });
    service = await startCloudService(
      {
        LLM_UPSTREAM: "bedrock",
        AWS_REGION: "us-east-1",
        ANTHROPIC_BEDROCK_BASE_URL: fake.url,
        BEDROCK_INFERENCE_PROFILE: "us",
        AGENT_API_KEYS: `${USER.user}:${USER.key}`,
        CACHE_TTL_SECONDS: "0",
        BREAKER_MIN_CALLS: "3",
        // No ANTHROPIC_API_KEY: Bedrock needs none, and the offline model must not take over.
      },
      { pg: pg!, redis: redisUrl! },
      { bedrockCredentials: credentials },
    );
    client = new Anthropic({ baseURL: service.url, apiKey: USER.key, maxRetries: 0 });
  });

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const ledgerRow = async (requestId: string | null) => {
    await service.deps.usage.flush();
    return (await service.deps.store.listUsage({ userId: USER.user })).find(
      (r) => r.requestId === requestId,
    );
  };

  it("serves without ANTHROPIC_API_KEY, and not from the offline model", () => {
    expect(service.deps.llm.synthetic).toBe(false);
  });

  it("messages.create goes to POST /model/us.<id>/invoke, SigV4-signed, in Bedrock's body shape", async () => {
    const before = fake.calls.length;
    const { data, response } = await client.messages
      .create({
        model: SONNET,
        max_tokens: 64,
        messages: [{ role: "user", content: unique("hi") }],
      })
      .withResponse();
    expect(data.content[0]).toMatchObject({ type: "text" });
    expect(data.model).toBe(SONNET);
    expect(response.headers.get("x-agent-model")).toBe(SONNET);

    const [call] = fake.calls.slice(before);
    expect(call).toMatchObject({
      method: "POST",
      path: "/model/us.anthropic.claude-sonnet-4-6/invoke",
      status: 200,
    });
    expect(call!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAFAKEBEDROCK00001\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=<redacted>$/,
    );
    // The client's anthropic-version (the SDK sends one) is not what Bedrock gets.
    expect(call!.headers["anthropic-version"]).toBeUndefined();
    expect(call!.body).toMatchObject({ anthropic_version: "bedrock-2023-05-31", max_tokens: 64 });
    expect(call!.body).not.toHaveProperty("model");
    expect(call!.body).not.toHaveProperty("stream");
    if (process.env.UPSTREAM_RECORD_DIR)
      writeFileSync(
        join(process.env.UPSTREAM_RECORD_DIR, "bedrock-request.json"),
        JSON.stringify(call, null, 2),
      );
  });

  it("a stream arrives in the Messages API's event order, pings included, decoded from Bedrock's event stream", async () => {
    const before = fake.calls.length;
    const response = await fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": USER.key,
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
      },
      body: JSON.stringify({
        model: SONNET,
        max_tokens: 64,
        stream: true,
        messages: [{ role: "user", content: unique("stream") }],
      }),
    });
    expect(response.status).toBe(200);
    const events = await readSse(response);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("message_start");
    expect(names.slice(1, 3)).toEqual(["content_block_start", "ping"]);
    expect(names.filter((n) => n === "content_block_delta").length).toBeGreaterThan(0);
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(JSON.parse(events[0]!.data).message.model).toBe(SONNET);
    expect(fake.calls.slice(before)[0]).toMatchObject({
      path: "/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream",
      status: 200,
    });
  });

  it("a stream reaches the client while Bedrock is still sending it", async () => {
    const release = fake.holdStreams();
    try {
      const stream = client.messages.stream({
        model: SONNET,
        max_tokens: 64,
        messages: [{ role: "user", content: unique("held") }],
      });
      const it = stream[Symbol.asyncIterator]();
      // Bedrock has sent message_start only and waits: the client has it all the same.
      expect((await it.next()).value).toMatchObject({ type: "message_start" });
      release();
      const message = await stream.finalMessage();
      expect(message.stop_reason).toBe("end_turn");
    } finally {
      release();
    }
  });

  it("tool use: tools reach Bedrock and tool_use blocks come back, JSON and streamed", async () => {
    const params = {
      model: SONNET,
      max_tokens: 200,
      tools: [
        {
          name: "get_weather",
          description: "Weather in a city",
          input_schema: { type: "object" as const, properties: { city: { type: "string" } } },
        },
      ],
      messages: [
        {
          role: "user" as const,
          content: `${unique("weather?")} [[tool:get_weather {"city":"Paris"}]]`,
        },
      ],
    };
    const before = fake.calls.length;
    const json = await client.messages.create(params);
    expect(json.stop_reason).toBe("tool_use");
    expect(json.content.find((b) => b.type === "tool_use")).toMatchObject({
      name: "get_weather",
      input: { city: "Paris" },
    });
    expect((fake.calls[before]!.body as { tools: unknown[] }).tools).toHaveLength(1);
    const streamed = await client.messages.stream(params).finalMessage();
    expect(streamed.content.find((b) => b.type === "tool_use")).toMatchObject({
      input: { city: "Paris" },
    });
  });

  it("prompt caching: cache_control reaches Bedrock, cache usage comes back, the ledger charges Bedrock's us-profile prices", async () => {
    const system = [
      {
        type: "text" as const,
        text: `${unique("policy")} ${"Answer briefly and cite the handbook. ".repeat(160)}`,
        cache_control: { type: "ephemeral" as const },
      },
    ];
    const ask = (q: string) =>
      client.messages
        .create({ model: SONNET, max_tokens: 32, system, messages: [{ role: "user", content: q }] })
        .withResponse();
    const first = await ask(unique("q1"));
    const second = await ask(unique("q2"));
    expect(first.data.usage.cache_creation_input_tokens).toBeGreaterThan(1024);
    expect(second.data.usage.cache_read_input_tokens).toBe(
      first.data.usage.cache_creation_input_tokens,
    );
    expect(
      (fake.calls.at(-1)!.body as { system: Array<{ cache_control?: unknown }> }).system[0]!
        .cache_control,
    ).toEqual({ type: "ephemeral" });

    for (const { data, response } of [first, second]) {
      const row = await ledgerRow(response.headers.get("request-id"));
      const u = data.usage;
      const p = US_PRICES[SONNET];
      const expected =
        (u.input_tokens * p.input +
          u.output_tokens * p.output +
          (u.cache_creation_input_tokens ?? 0) * p.write5m +
          (u.cache_read_input_tokens ?? 0) * p.read) /
        1e6;
      expect(row).toMatchObject({
        model: SONNET,
        status: "ok",
        cacheReadInputTokens: u.cache_read_input_tokens ?? 0,
      });
      expect(row!.costUsd).toBeCloseTo(expected, 10);
      // Not the Anthropic API's list price.
      expect(row!.costUsd).not.toBeCloseTo(expected / 1.1, 10);
    }
  });

  it("count_tokens is counted by Bedrock's CountTokens API on the base model id, signed by the AWS SDK", async () => {
    const before = fake.calls.length;
    const messages = [{ role: "user" as const, content: unique("count these tokens please") }];
    const counted = await client.messages.countTokens({ model: SONNET, messages });
    const direct = await fetch(`${fake.anthropic.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: {
        "x-api-key": "sk-ant-fake-0000000000",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({ model: SONNET, messages }),
    }).then((r) => r.json() as Promise<{ input_tokens: number }>);
    expect(counted.input_tokens).toBe(direct.input_tokens);
    const call = fake.calls.slice(before)[0]!;
    expect(call).toMatchObject({
      path: "/model/anthropic.claude-sonnet-4-6/count-tokens",
      status: 200,
    });
    expect(call.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAFAKEBEDROCK00001\//,
    );
    const invokeBody = (call.body as { input: { invokeModel: { body: string } } }).input.invokeModel
      .body;
    expect(JSON.parse(Buffer.from(invokeBody, "base64").toString())).toMatchObject({
      anthropic_version: "bedrock-2023-05-31",
      messages,
    });
    // Not a generation: nothing in the ledger.
    await service.deps.usage.flush();
    expect(
      (await service.deps.store.listUsage({ userId: USER.user })).filter(
        (r) => r.model === SONNET && r.inputTokens === counted.input_tokens,
      ),
    ).toHaveLength(0);
  });

  it("count_tokens for a model Bedrock cannot count is a 400 that says so", async () => {
    const err = await client.messages
      .countTokens({ model: HAIKU, messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).message).toMatch(
      /bedrock upstream.*CountTokens/,
    );
  });

  it("anthropic-beta reaches Bedrock as anthropic_beta, and the model behind sees it", async () => {
    const before = fake.calls.length;
    const beforeModel = fake.anthropic.requestCount;
    await client.messages.create(
      { model: SONNET, max_tokens: 32, messages: [{ role: "user", content: unique("beta") }] },
      { headers: { "anthropic-beta": "interleaved-thinking-2025-05-14, context-1m-2025-08-07" } },
    );
    expect((fake.calls[before]!.body as { anthropic_beta?: string[] }).anthropic_beta).toEqual([
      "interleaved-thinking-2025-05-14",
      "context-1m-2025-08-07",
    ]);
    expect(fake.anthropic.requestCount).toBe(beforeModel + 1);
    expect(fake.anthropic.lastRequest()!.headers["anthropic-beta"]).toBe(
      "interleaved-thinking-2025-05-14,context-1m-2025-08-07",
    );
  });

  it("features Bedrock lacks are a 400 naming the upstream, and nothing goes to Bedrock", async () => {
    const before = fake.calls.length;
    const files = await client.messages
      .create(
        { model: SONNET, max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
        { headers: { "anthropic-beta": "files-api-2025-04-14" } },
      )
      .catch((e: unknown) => e);
    expect(files).toBeInstanceOf(Anthropic.BadRequestError);
    expect(String((files as Error).message)).toMatch(
      /files-api-2025-04-14.*bedrock upstream \(LLM_UPSTREAM=bedrock\)/,
    );
    const fileBlock = await client.messages
      .create({
        model: SONNET,
        max_tokens: 16,
        messages: [
          {
            role: "user",
            content: [
              { type: "document", source: { type: "file", file_id: "file_011" } },
              { type: "text", text: "summarise" },
            ],
          },
        ],
      } as unknown as Anthropic.MessageCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(String((fileBlock as Error).message)).toMatch(
      /messages\.0\.content\.0\.source: the Files API is not available on the bedrock upstream/,
    );
    // Refused before anything is held or stored.
    const stored = jest.spyOn(service.deps.store, "createBatch");
    const batch = await client.messages.batches
      .create({
        requests: [
          {
            custom_id: "a",
            params: { model: SONNET, max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
          },
        ],
      })
      .catch((e: unknown) => e);
    expect(batch).toBeInstanceOf(Anthropic.BadRequestError);
    expect(String((batch as Error).message)).toMatch(
      /Message Batches are not available on the bedrock upstream/,
    );
    expect(stored).not.toHaveBeenCalled();
    stored.mockRestore();
    expect(fake.calls.length).toBe(before);
  });

  it("a Bedrock exception inside a stream reaches the client as an error event", async () => {
    fake.failNext("claude-sonnet-4-6", 1, {
      stream: true,
      exception: "modelStreamErrorException",
      afterEvents: 3,
    });
    const response = await fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": USER.key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: SONNET,
        max_tokens: 64,
        stream: true,
        messages: [{ role: "user", content: unique("cut") }],
      }),
    });
    const events = await readSse(response);
    expect(events[0]!.event).toBe("message_start");
    expect(events.at(-1)).toMatchObject({ event: "error" });
    expect(events.some((e) => e.event === "message_stop")).toBe(false);
  });

  it("a 503 ServiceUnavailableException is retried on the same model", async () => {
    fake.failNext("claude-sonnet-4-6", 1, {
      status: 503,
      exception: "ServiceUnavailableException",
    });
    const before = invokes("sonnet").length;
    const message = await client.messages.create({
      model: SONNET,
      max_tokens: 16,
      messages: [{ role: "user", content: unique("retry") }],
    });
    expect(message.model).toBe(SONNET);
    expect(
      invokes("sonnet")
        .slice(before)
        .map((c) => c.status),
    ).toEqual([503, 200]);
  });

  it("a 429 ThrottlingException moves the request to the tier's next model, charged at its Bedrock price", async () => {
    fake.failNext("claude-sonnet-4-6", 1, {
      status: 429,
      exception: "ThrottlingException",
      message: "Too many requests",
    });
    const before = fake.calls.length;
    const { data, response } = await client.messages
      .create({
        model: SONNET,
        max_tokens: 16,
        messages: [{ role: "user", content: unique("fallback") }],
      })
      .withResponse();
    expect(data.model).toBe(HAIKU);
    expect(response.headers.get("x-agent-model")).toBe(HAIKU);
    expect(fake.calls.slice(before).map((c) => [c.path, c.status])).toEqual([
      ["/model/us.anthropic.claude-sonnet-4-6/invoke", 429],
      [`/model/us.${HAIKU_BASE}/invoke`, 200],
    ]);
    const row = await ledgerRow(response.headers.get("request-id"));
    const p = US_PRICES[HAIKU];
    expect(row!.model).toBe(HAIKU);
    expect(row!.costUsd).toBeCloseTo(
      (data.usage.input_tokens * p.input + data.usage.output_tokens * p.output) / 1e6,
      10,
    );
  });

  it("the breaker is per model on this upstream: Bedrock failures on opus open its breaker, sonnet serves", async () => {
    fake.failNext("claude-opus-4-5", 20, { status: 503, exception: "ServiceUnavailableException" });
    for (let i = 0; i < 3; i++) {
      const m = await client.messages.create({
        model: OPUS,
        max_tokens: 16,
        messages: [{ role: "user", content: unique("deep") }],
      });
      expect(m.model).toBe(SONNET);
    }
    expect(service.deps.resilience!.breakerStates().find((b) => b.model === OPUS)?.state).toBe(
      "open",
    );
    const opusCalls = invokes("opus").length;
    const m = await client.messages.create({
      model: OPUS,
      max_tokens: 16,
      messages: [{ role: "user", content: unique("deep") }],
    });
    expect(m.model).toBe(SONNET);
    expect(invokes("opus").length).toBe(opusCalls);
  });
});

describe("the fake checks what Bedrock checks", () => {
  let fake: FakeBedrock;
  const catalog = ModelCatalog.load(undefined, { upstream: "bedrock", regional: false });
  const request = {
    model: SONNET,
    max_tokens: 16,
    messages: [{ role: "user" as const, content: "hi" }],
  };
  const provider = (o: Partial<ConstructorParameters<typeof BedrockProvider>[0]>) =>
    new BedrockProvider({
      catalog,
      region: "us-east-1",
      profile: "global",
      baseURL: fake.url,
      credentials,
      timeoutMs: 10_000,
      ...o,
    });

  beforeAll(async () => {
    fake = await startFakeBedrock({ models: { "anthropic.claude-sonnet-4-6": SONNET } });
  });
  afterAll(() => fake?.close());

  it("refuses a signature made with another secret key: 403, as Bedrock", async () => {
    const wrong = provider({
      credentials: () =>
        Promise.resolve({ ...FAKE_AWS_CREDENTIALS, secretAccessKey: "not-the-secret" }),
    });
    await expect(wrong.createMessage(request)).rejects.toMatchObject({ status: 403 });
    expect(fake.calls.at(-1)!.status).toBe(403);
  });

  it("refuses a signed request whose body was changed after signing", async () => {
    const signed = await fetchSigned(
      fake,
      JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 1, messages: [] }),
    );
    const tampered = await fetch(`${fake.url}/model/global.anthropic.claude-sonnet-4-6/invoke`, {
      ...signed,
      body: JSON.stringify({
        anthropic_version: "bedrock-2023-05-31",
        max_tokens: 999,
        messages: [],
      }),
    });
    expect(tampered.status).toBe(403);
    expect(await tampered.json()).toMatchObject({
      message: expect.stringMatching(/does not match/),
    });
  });

  it("takes the global profile id, and a Bedrock API key instead of SigV4 (AWS_BEARER_TOKEN_BEDROCK)", async () => {
    const message = await provider({ bearerToken: FAKE_BEDROCK_API_KEY }).createMessage(request);
    expect(message.model).toBe(SONNET);
    expect(fake.calls.at(-1)).toMatchObject({
      path: "/model/global.anthropic.claude-sonnet-4-6/invoke",
      status: 200,
      headers: { authorization: "Bearer <redacted>" },
    });
  });

  it("refuses a body that carries the model, or another anthropic_version", async () => {
    const signed = await fetchSigned(
      fake,
      JSON.stringify({
        model: SONNET,
        anthropic_version: "2023-06-01",
        max_tokens: 1,
        messages: [],
      }),
    );
    const response = await fetch(
      `${fake.url}/model/global.anthropic.claude-sonnet-4-6/invoke`,
      signed,
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      message: "Malformed input request: extraneous key [model] is not permitted",
    });
  });
});

/** A request to the fake, SigV4-signed with the fake's key pair (as a client would sign it). */
async function fetchSigned(fake: FakeBedrock, body: string): Promise<RequestInit> {
  const url = new URL(`${fake.url}/model/global.anthropic.claude-sonnet-4-6/invoke`);
  const signer = new SignatureV4({
    service: "bedrock",
    region: "us-east-1",
    credentials: FAKE_AWS_CREDENTIALS,
    sha256: Sha256,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: "POST",
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, "content-type": "application/json" },
      body,
    }),
  );
  return { method: "POST", headers: signed.headers as Record<string, string>, body };
}
