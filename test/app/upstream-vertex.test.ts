/**
 * LLM_UPSTREAM=vertex end to end: the service as the app builds it (createDeps: the Vertex AI
 * provider from the configuration, in the retry loop; real Postgres and Redis), clients through the
 * official SDK, and a local fake of Vertex AI that checks what Vertex checks
 * (test/support/fake-vertex.ts: the rawPredict / streamRawPredict paths with the project and
 * region, `anthropic_version: "vertex-2023-10-16"`, no model in the body, a bearer token).
 * Credentials come from an OAuth2 client holding a token (no Google endpoint, no ADC).
 *
 * Set UPSTREAM_RECORD_DIR to keep one request as the fake saw it (vertex-request.json there).
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fakeVertexAuthClient, startFakeVertex, type FakeVertex } from "../support/fake-vertex";
import { requirePostgresSync, requireRedisSync } from "../support/services";
import { ModelCatalog } from "../../app/src/llm/models";
import { VertexProvider } from "../../app/src/llm/vertex";
import { startCloudService, readSse, type CloudService } from "./upstream-service";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USER = { user: `vertex-${run}`, key: `vertex-key-${run}` };
const SONNET = "claude-sonnet-4-6";
const HAIKU = "claude-haiku-4-5";
const OPUS = "claude-opus-4-5";
const REGION = "us-east5";
/** Vertex's prices on a regional endpoint: the list prices times 1.1 (app/config/models.json). */
const REGIONAL = {
  [SONNET]: { input: 3.3, output: 16.5, write5m: 4.125, read: 0.33 },
  [HAIKU]: { input: 1.1, output: 5.5, write5m: 1.375, read: 0.11 },
};
const unique = (label: string) => `${label} ${randomBytes(6).toString("hex")}`;
const prefix = (project: string) =>
  `/v1/projects/${project}/locations/${REGION}/publishers/anthropic/models`;

(pg && redisUrl ? describe : describe.skip)("LLM_UPSTREAM=vertex", () => {
  let fake: FakeVertex;
  let service: CloudService;
  let client: Anthropic;
  const catalog = ModelCatalog.load();
  const predictions = (part: string) =>
    fake.calls.filter((c) => c.model !== "count-tokens" && c.model?.includes(part));

  beforeAll(async () => {
    const models = Object.fromEntries(catalog.table.models.map((m) => [m.vertex!.modelId, m.id]));
    fake = await startFakeVertex({ region: REGION, models });
    service = await startCloudService(
      {
        LLM_UPSTREAM: "vertex",
        CLOUD_ML_REGION: REGION,
        ANTHROPIC_VERTEX_PROJECT_ID: fake.project,
        ANTHROPIC_VERTEX_BASE_URL: fake.url,
        AGENT_API_KEYS: `${USER.user}:${USER.key}`,
        CACHE_TTL_SECONDS: "0",
        BREAKER_MIN_CALLS: "3",
      },
      { pg: pg!, redis: redisUrl! },
      { vertexAuthClient: fakeVertexAuthClient() },
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

  it("messages.create goes to :rawPredict of the Vertex model id, with a bearer token and Vertex's body", async () => {
    const before = fake.calls.length;
    const { data, response } = await client.messages
      .create({ model: HAIKU, max_tokens: 64, messages: [{ role: "user", content: unique("hi") }] })
      .withResponse();
    expect(data.model).toBe(HAIKU);
    expect(response.headers.get("x-agent-model")).toBe(HAIKU);
    const [call] = fake.calls.slice(before);
    expect(call).toMatchObject({
      method: "POST",
      path: `${prefix(fake.project)}/claude-haiku-4-5@20251001:rawPredict`,
      status: 200,
      headers: { authorization: "Bearer <redacted>" },
    });
    expect(call!.headers["anthropic-version"]).toBeUndefined();
    expect(call!.body).toMatchObject({ anthropic_version: "vertex-2023-10-16", max_tokens: 64 });
    expect(call!.body).not.toHaveProperty("model");
    if (process.env.UPSTREAM_RECORD_DIR)
      writeFileSync(
        join(process.env.UPSTREAM_RECORD_DIR, "vertex-request.json"),
        JSON.stringify(call, null, 2),
      );
  });

  it("a stream from :streamRawPredict arrives in the Messages API's event order, pings included", async () => {
    const before = fake.calls.length;
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
        messages: [{ role: "user", content: unique("stream") }],
      }),
    });
    expect(response.status).toBe(200);
    const names = (await readSse(response)).map((e) => e.event);
    expect(names.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"]);
    expect(names.filter((n) => n === "content_block_delta").length).toBeGreaterThan(0);
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(fake.calls.slice(before)[0]).toMatchObject({
      path: `${prefix(fake.project)}/claude-sonnet-4-6:streamRawPredict`,
      status: 200,
    });
  });

  it("tool use: tools reach Vertex and tool_use blocks come back, JSON and streamed", async () => {
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
          content: `${unique("weather?")} [[tool:get_weather {"city":"Oslo"}]]`,
        },
      ],
    };
    const json = await client.messages.create(params);
    expect(json.stop_reason).toBe("tool_use");
    expect(json.content.find((b) => b.type === "tool_use")).toMatchObject({
      name: "get_weather",
      input: { city: "Oslo" },
    });
    const streamed = await client.messages.stream(params).finalMessage();
    expect(streamed.content.find((b) => b.type === "tool_use")).toMatchObject({
      input: { city: "Oslo" },
    });
  });

  it("prompt caching: cache usage comes back from Vertex, the ledger charges Vertex's regional prices", async () => {
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
    for (const { data, response } of [first, second]) {
      const row = await ledgerRow(response.headers.get("request-id"));
      const u = data.usage;
      const p = REGIONAL[SONNET];
      const expected =
        (u.input_tokens * p.input +
          u.output_tokens * p.output +
          (u.cache_creation_input_tokens ?? 0) * p.write5m +
          (u.cache_read_input_tokens ?? 0) * p.read) /
        1e6;
      expect(row).toMatchObject({ model: SONNET, status: "ok" });
      expect(row!.costUsd).toBeCloseTo(expected, 10);
    }
  });

  it("count_tokens is counted by Vertex's count-tokens:rawPredict, with the Vertex model id in the body", async () => {
    const before = fake.calls.length;
    const messages = [{ role: "user" as const, content: unique("count these tokens please") }];
    const counted = await client.messages.countTokens({ model: OPUS, messages });
    expect(counted.input_tokens).toBeGreaterThan(0);
    const call = fake.calls.slice(before)[0]!;
    expect(call).toMatchObject({
      path: `${prefix(fake.project)}/count-tokens:rawPredict`,
      status: 200,
      body: { model: "claude-opus-4-5@20251101", anthropic_version: "vertex-2023-10-16", messages },
    });
  });

  it("anthropic-beta reaches Vertex as the header, the client's anthropic-version as Vertex's body version", async () => {
    const before = fake.calls.length;
    await client.messages.create(
      { model: SONNET, max_tokens: 32, messages: [{ role: "user", content: unique("beta") }] },
      {
        headers: {
          "anthropic-beta": "interleaved-thinking-2025-05-14",
          "anthropic-version": "2023-06-01",
        },
      },
    );
    const call = fake.calls[before]!;
    expect(call.headers["anthropic-beta"]).toBe("interleaved-thinking-2025-05-14");
    expect(call.headers["anthropic-version"]).toBeUndefined();
    expect(call.body).toMatchObject({ anthropic_version: "vertex-2023-10-16" });
    expect(fake.anthropic.lastRequest()!.headers["anthropic-beta"]).toBe(
      "interleaved-thinking-2025-05-14",
    );
  });

  it("features Vertex lacks are a 400 naming the upstream, and nothing goes to Vertex", async () => {
    const before = fake.calls.length;
    const files = await client.messages
      .create(
        { model: SONNET, max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
        { headers: { "anthropic-beta": "files-api-2025-04-14" } },
      )
      .catch((e: unknown) => e);
    expect(files).toBeInstanceOf(Anthropic.BadRequestError);
    expect(String((files as Error).message)).toMatch(/vertex upstream \(LLM_UPSTREAM=vertex\)/);
    const geo = await client.messages
      .create({
        model: SONNET,
        max_tokens: 16,
        inference_geo: "us",
        messages: [{ role: "user", content: "hi" }],
      } as Anthropic.MessageCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(String((geo as Error).message)).toMatch(/inference_geo.*vertex upstream/);
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
      /Message Batches are not available on the vertex upstream/,
    );
    expect(stored).not.toHaveBeenCalled();
    stored.mockRestore();
    expect(fake.calls.length).toBe(before);
  });

  it("a 503 from Vertex is retried on the same model", async () => {
    fake.failNext("claude-sonnet-4-6", 1, { status: 503, google: "UNAVAILABLE" });
    const before = predictions("sonnet").length;
    const message = await client.messages.create({
      model: SONNET,
      max_tokens: 16,
      messages: [{ role: "user", content: unique("retry") }],
    });
    expect(message.model).toBe(SONNET);
    expect(
      predictions("sonnet")
        .slice(before)
        .map((c) => c.status),
    ).toEqual([503, 200]);
  });

  it("a 529 overloaded_error moves the request to the tier's next model, charged at its Vertex price", async () => {
    fake.failNext("claude-sonnet-4-6", 1, { status: 529, type: "overloaded_error" });
    const before = fake.calls.length;
    const { data, response } = await client.messages
      .create({
        model: SONNET,
        max_tokens: 16,
        messages: [{ role: "user", content: unique("fb") }],
      })
      .withResponse();
    expect(data.model).toBe(HAIKU);
    expect(fake.calls.slice(before).map((c) => [c.path, c.status])).toEqual([
      [`${prefix(fake.project)}/claude-sonnet-4-6:rawPredict`, 529],
      [`${prefix(fake.project)}/claude-haiku-4-5@20251001:rawPredict`, 200],
    ]);
    const row = await ledgerRow(response.headers.get("request-id"));
    const p = REGIONAL[HAIKU];
    expect(row!.model).toBe(HAIKU);
    expect(row!.costUsd).toBeCloseTo(
      (data.usage.input_tokens * p.input + data.usage.output_tokens * p.output) / 1e6,
      10,
    );
  });

  it("the breaker is per model on this upstream: Vertex failures on opus open its breaker, sonnet serves", async () => {
    fake.failNext("claude-opus-4-5", 20, { status: 500, type: "api_error" });
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
    const opusCalls = predictions("opus").length;
    const m = await client.messages.create({
      model: OPUS,
      max_tokens: 16,
      messages: [{ role: "user", content: unique("deep") }],
    });
    expect(m.model).toBe(SONNET);
    expect(predictions("opus").length).toBe(opusCalls);
  });
});

describe("the fake checks what Vertex checks", () => {
  let fake: FakeVertex;
  const catalog = ModelCatalog.load(undefined, { upstream: "vertex", regional: false });
  const request = {
    model: SONNET,
    max_tokens: 16,
    messages: [{ role: "user" as const, content: "hi" }],
  };
  const provider = (o: Partial<ConstructorParameters<typeof VertexProvider>[0]>) =>
    new VertexProvider({
      catalog,
      region: "global",
      projectId: fake.project,
      baseURL: fake.url,
      authClient: fakeVertexAuthClient(),
      timeoutMs: 10_000,
      ...o,
    });

  beforeAll(async () => {
    fake = await startFakeVertex({ region: "global", models: { "claude-sonnet-4-6": SONNET } });
  });
  afterAll(() => fake?.close());

  it("answers a valid request on the global endpoint", async () => {
    expect((await provider({}).createMessage(request)).model).toBe(SONNET);
  });

  it("refuses another access token: 401 UNAUTHENTICATED", async () => {
    const wrong = provider({ authClient: fakeVertexAuthClient("ya29.someone-else") });
    await expect(wrong.createMessage(request)).rejects.toMatchObject({ status: 401 });
  });

  it("refuses another project (403) and a body that names the model or another version (400)", async () => {
    await expect(
      provider({ projectId: "another-project" }).createMessage(request),
    ).rejects.toMatchObject({ status: 403 });
    const url = `${fake.url}/projects/${fake.project}/locations/global/publishers/anthropic/models/claude-sonnet-4-6:rawPredict`;
    const headers = {
      authorization: `Bearer ${"ya29.fake-vertex-access-token-0000"}`,
      "content-type": "application/json",
    };
    const withModel = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify({ ...request, anthropic_version: "vertex-2023-10-16" }),
    });
    expect(withModel.status).toBe(400);
    const wrongVersion = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        max_tokens: 1,
        messages: request.messages,
        anthropic_version: "2026-10-21",
      }),
    });
    expect(wrongVersion.status).toBe(400);
    expect(await wrongVersion.json()).toMatchObject({
      error: { message: expect.stringMatching(/anthropic_version: must be vertex-2023-10-16/) },
    });
  });
});
