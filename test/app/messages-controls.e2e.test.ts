/**
 * The controls as a client meets them on /v1/messages: routing of "auto", automatic prompt
 * caching, and budget refusals, through the official SDK against the fake upstream.
 */
import Anthropic from "@anthropic-ai/sdk";
import { randomBytes } from "node:crypto";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";

const run = randomBytes(4).toString("hex");
const USER = { user: `ctl-${run}`, key: `ctl-key-${run}` };

describe("/v1/messages controls", () => {
  let fake: FakeAnthropic;
  let store: Store;
  let service: RunningService;
  let client: Anthropic;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
    service = await startService(
      {
        DATA_DIR: "memory://",
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
        AGENT_API_KEYS: `${USER.user}:${USER.key}`,
        BUDGET_REQUEST_USD: "0.05",
        CACHE_TTL_SECONDS: "0",
      },
      { store },
    );
    client = new Anthropic({ baseURL: service.url, apiKey: USER.key, maxRetries: 0 });
  });
  afterAll(async () => {
    await service?.close();
    await store?.close();
    await fake?.close();
  });

  it('routes model "auto": a short question goes to the fast tier, and the response says so', async () => {
    const res = await client.messages
      .create({
        model: "auto",
        max_tokens: 100,
        messages: [{ role: "user", content: "What is the capital of France?" }],
      })
      .withResponse();
    expect(res.response.headers.get("x-agent-route-reason")).toMatch(/^auto:/);
    expect(res.data.model).toBe("claude-haiku-4-5");
    expect(fake.lastRequest()!.body).toMatchObject({ model: "claude-haiku-4-5" });
  });

  it("routes a tier alias to the head of its chain", async () => {
    const res = await client.messages
      .create({ model: "deep", max_tokens: 50, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(res.response.headers.get("x-agent-route-reason")).toBe("alias:deep");
    expect(res.data.model).toBe("claude-opus-4-5");
  });

  it("marks a long system prompt for prompt caching, so the second call reads the cache", async () => {
    const system = "You answer questions about the platform's runbooks. ".repeat(500);
    const ask = (q: string) =>
      client.messages.create({
        model: "claude-sonnet-4-6",
        max_tokens: 50,
        system,
        messages: [{ role: "user", content: q }],
      });
    const first = await ask(`first ${run}`);
    const sent = fake.lastRequest()!.body as { system: Array<{ cache_control?: unknown }> };
    expect(sent.system.at(-1)!.cache_control).toEqual({ type: "ephemeral" });
    const second = await ask(`second ${run}`);
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(1024);
    expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens);
  });

  it.each([
    ["JSON", false],
    ["a stream", true],
  ])("charges 1-hour cache writes at the 1-hour price in the ledger (%s)", async (_, stream) => {
    // Lengths of their own, so their ledger rows are told apart by their cache writes.
    const system = `You answer questions about the on-call rota. `.repeat(stream ? 700 : 600);
    const params = {
      model: "claude-sonnet-4-6",
      max_tokens: 50,
      system: [
        {
          type: "text" as const,
          text: system,
          cache_control: { type: "ephemeral" as const, ttl: "1h" as const },
        },
      ],
      messages: [{ role: "user" as const, content: `long-lived ${run}` }],
    };
    const answer = stream
      ? await client.messages.stream(params).finalMessage()
      : await client.messages.create(params);
    const writes = answer.usage.cache_creation?.ephemeral_1h_input_tokens ?? 0;
    expect(writes).toBeGreaterThan(1024);
    expect(answer.usage.cache_creation_input_tokens).toBe(writes);
    // sonnet: $3 in, $15 out, $6 per million 1-hour writes (not the 5-minute $3.75).
    const expected =
      (answer.usage.input_tokens * 3 + answer.usage.output_tokens * 15 + writes * 6) / 1e6;
    let entry: { costUsd: number } | undefined;
    for (let i = 0; i < 50 && !entry; i++) {
      await new Promise((r) => setTimeout(r, 20));
      entry = (await store.listUsage({ userId: USER.user })).find(
        (e) => e.cacheCreationInputTokens === writes,
      );
    }
    expect(entry?.costUsd).toBeCloseTo(expected, 8);
  });

  it("caps max_tokens to what the request budget allows", async () => {
    // $0.05 at opus' $25/M output leaves room for about 2,000 output tokens, not 20,000.
    await client.messages.create({
      model: "claude-opus-4-5",
      max_tokens: 20_000,
      messages: [{ role: "user", content: "cap me" }],
    });
    const sent = fake.lastRequest()!.body as { max_tokens: number };
    expect(sent.max_tokens).toBeLessThan(2_000);
    expect(sent.max_tokens).toBeGreaterThan(100);
  });

  it("refuses a request whose input alone exceeds the request budget with 429 budget_exceeded", async () => {
    const before = fake.requestCount;
    const huge = "word ".repeat(60_000); // ~75k input tokens at $5/M = $0.37 > $0.05
    const err = await client.messages
      .create({
        model: "claude-opus-4-5",
        max_tokens: 10,
        messages: [{ role: "user", content: huge }],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const body = (err as InstanceType<typeof Anthropic.APIError>).error as {
      error: { type: string; budget: string; limit_usd: number };
    };
    expect(body.error).toMatchObject({
      type: "budget_exceeded",
      budget: "request",
      limit_usd: 0.05,
    });
    expect(fake.requestCount).toBe(before);
  });

  it("reports the caller's budgets on /v1/usage", async () => {
    const res = await fetch(`${service.url}/v1/usage`, { headers: { "x-api-key": USER.key } });
    expect(res.status).toBe(200);
    const usage = (await res.json()) as { budgets: Array<{ budget: string; limit_usd: number }> };
    expect(usage.budgets.find((b) => b.budget === "request")).toMatchObject({ limit_usd: 0.05 });
  });
});
