/**
 * LLM_UPSTREAM=anthropic, and what every upstream shares: the client's `anthropic-beta` and
 * `anthropic-version` reach the API unchanged, `ping` events are passed on, and
 * POST /v1/messages/count_tokens counts (the API's count_tokens, or the offline model's estimate),
 * inside the API key and the requests-per-minute limit, outside the budgets and the ledger.
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { estimateInputTokens } from "../../app/src/budget/estimate";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";
import { readSse } from "./upstream-service";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USER = { user: `upstream-a-${run}`, key: `upstream-a-key-${run}` };
const MODEL = "claude-haiku-4-5";
const unique = (label: string) => `${label} ${randomBytes(6).toString("hex")}`;

(pg && redisUrl ? describe : describe.skip)("on the Anthropic API", () => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let drop: () => Promise<void>;
  let client: Anthropic;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    const db = await createTestDatabase(pg!);
    drop = db.drop;
    service = await startService({
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl!,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      CACHE_TTL_SECONDS: "0",
      // Metrics on: deps.llm is then the telemetry wrapper, which carries calls but no counter.
    });
    client = new Anthropic({ baseURL: service.url, apiKey: USER.key, maxRetries: 0 });
  });

  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await drop?.();
  });

  it("anthropic-beta and anthropic-version reach the API as the client sent them", async () => {
    const headers = {
      "anthropic-beta": "files-api-2025-04-14,context-1m-2025-08-07",
      "anthropic-version": "2023-06-01",
    };
    await client.messages.create(
      { model: MODEL, max_tokens: 16, messages: [{ role: "user", content: unique("json") }] },
      { headers },
    );
    expect(fake.lastRequest()!.headers).toMatchObject(headers);
    await client.messages
      .stream(
        { model: MODEL, max_tokens: 16, messages: [{ role: "user", content: unique("sse") }] },
        { headers: { "anthropic-beta": "interleaved-thinking-2025-05-14" } },
      )
      .finalMessage();
    expect(fake.lastRequest()!.headers["anthropic-beta"]).toBe("interleaved-thinking-2025-05-14");
  });

  it("ping events from the API's stream are passed on, where the API sent them", async () => {
    const response = await fetch(`${service.url}/v1/messages?beta=true`, {
      method: "POST",
      headers: {
        "x-api-key": USER.key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 32,
        stream: true,
        messages: [{ role: "user", content: unique("ping") }],
      }),
    });
    const events = await readSse(response);
    expect(events.map((e) => e.event).slice(0, 3)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
    ]);
    expect(JSON.parse(events[2]!.data)).toEqual({ type: "ping" });
  });

  it("count_tokens is the API's count, betas forwarded, and is neither charged nor in the ledger", async () => {
    const messages = [{ role: "user" as const, content: unique("count me") }];
    const counted = await client.messages.countTokens({ model: MODEL, messages });
    expect(fake.lastRequest()).toMatchObject({ method: "POST", path: "/v1/messages/count_tokens" });
    const direct = await fetch(`${fake.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: {
        "x-api-key": FAKE_API_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({ model: MODEL, messages }),
    }).then((r) => r.json() as Promise<{ input_tokens: number }>);
    expect(counted.input_tokens).toBe(direct.input_tokens);
    // The beta resource (`?beta=true`, as Claude Code calls it) with betas.
    const beta = await client.beta.messages.countTokens({
      model: MODEL,
      messages,
      betas: ["context-1m-2025-08-07"],
    });
    expect(beta.input_tokens).toBe(direct.input_tokens);
    expect(fake.lastRequest()).toMatchObject({
      path: "/v1/messages/count_tokens",
      // As the SDK sent it: the betas asked for, then its own.
      headers: { "anthropic-beta": "context-1m-2025-08-07,token-counting-2024-11-01" },
    });
    await service.deps.usage.flush();
    const rows = await service.deps.store.listUsage({ userId: USER.user });
    expect(
      rows.filter((r) => r.inputTokens === direct.input_tokens && r.outputTokens === 0),
    ).toEqual([]);
  });
});

(pg && redisUrl ? describe : describe.skip)("count_tokens on the offline model", () => {
  let service: RunningService;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(pg!);
    drop = db.drop;
    service = await startService({
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl!,
      AGENT_API_KEYS: `${USER.user}-off:${USER.key}-off`,
      RATE_LIMIT_RPM: "3",
      METRICS_ENABLED: "false",
    });
  });

  afterAll(async () => {
    await service?.close();
    await drop?.();
  });

  const count = (key: string | null) =>
    fetch(`${service.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(key ? { "x-api-key": key, "anthropic-version": "2023-06-01" } : {}),
      },
      body: JSON.stringify({
        model: MODEL,
        system: "Be brief.",
        messages: [{ role: "user", content: "How many tokens is this?" }],
      }),
    });

  it("estimates with the service's one estimator, says it is synthetic, needs the API key and counts against the request rate", async () => {
    expect((await count(null)).status).toBe(401);
    const response = await count(`${USER.key}-off`);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-agent-synthetic")).toBe("true");
    expect(await response.json()).toEqual({
      input_tokens: estimateInputTokens({
        system: "Be brief.",
        messages: [{ role: "user", content: "How many tokens is this?" }],
      }),
    });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await count(`${USER.key}-off`)).status);
    expect(statuses).toContain(429);
  });
});
