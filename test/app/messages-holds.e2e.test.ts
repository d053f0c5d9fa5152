/**
 * POST /v1/messages sends its budget hold with the rate-limit admission and the cache lookup (one
 * round trip), before it knows whether it will call the model. What a client and an operator must
 * still see: a cached answer is served even when the budget could not cover a model call, no
 * refusal is counted for it, and a hold the request did not use (cache hit, rate-limit 429) is
 * given back at once rather than shrinking the budget until its deadline.
 */
import { randomBytes } from "node:crypto";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";

const pg = requirePostgresSync();
const redis = requireRedisSync();
const run = randomBytes(4).toString("hex");

type Setup = {
  name: string;
  env: () => Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
};
const setups: Setup[] = [
  {
    name: "embedded defaults",
    env: async () => ({ env: { DATA_DIR: "memory://" }, cleanup: async () => {} }),
  },
];
if (pg && redis) {
  setups.push({
    name: "real Postgres and Redis",
    env: async () => {
      const db = await createTestDatabase(pg);
      return { env: { DATABASE_URL: db.url, REDIS_URL: redis }, cleanup: () => db.drop() };
    },
  });
}

describe.each(setups)("speculative budget holds on /v1/messages with $name", ({ env }) => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let cleanup: () => Promise<void>;
  const user = `hold-${run}-${randomBytes(2).toString("hex")}`;
  const key = `hold-key-${run}-${randomBytes(2).toString("hex")}`;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    const e = await env();
    cleanup = e.cleanup;
    service = await startService({
      ...e.env,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: `${user}:${key}`,
      CACHE_TTL_SECONDS: "300",
      BUDGET_USER_DAILY_USD: "10",
      RATE_LIMIT_RPM: "6",
    });
  });
  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await cleanup?.();
  });

  const post = (content: string) =>
    fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 1000,
        messages: [{ role: "user", content }],
      }),
    });
  // Read in process: GET /v1/usage would count against RATE_LIMIT_RPM.
  const daily = async () =>
    (await service.deps.budgets!.usageFor(user)).budgets.find((b) => b.budget === "user_daily")!;
  /** Released holds are settled without being awaited: wait for the counters to show it. */
  const heldSettles = async () => {
    for (let i = 0; i < 100 && (await daily()).reserved_usd !== 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    return daily();
  };

  it("serves a cached answer when the budget could not cover a model call, counting no refusal", async () => {
    const question = `cached question ${randomBytes(6).toString("hex")}`;
    const first = await post(question);
    expect(first.status).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    const spent = (await heldSettles()).spent_usd ?? 0;
    expect(spent).toBeGreaterThan(0);

    // Now the user's daily budget cannot hold max_tokens 1000 at haiku's output price ($0.005).
    const store = service.deps.store;
    await store.setBudgetOverride(user, "user_daily", spent + 0.001);
    service.deps.budgets!.invalidateOverrides(user);
    const refusedBefore = service.deps.budgets!.stats.refused;
    const calls = fake.requestCount;

    const hit = await post(question);
    expect(hit.status).toBe(200);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(service.deps.budgets!.stats.refused).toBe(refusedBefore);
    expect(fake.requestCount).toBe(calls);

    // A question the cache cannot answer is refused, and that refusal counts, once.
    const miss = await post(`uncached question ${randomBytes(6).toString("hex")}`);
    expect(miss.status).toBe(429);
    expect(((await miss.json()) as { error: { type: string } }).error.type).toBe("budget_exceeded");
    expect(service.deps.budgets!.stats.refused).toBe(refusedBefore + 1);
    expect(fake.requestCount).toBe(calls);
    expect((await heldSettles()).reserved_usd).toBe(0);
    await store.deleteBudgetOverride(user, "user_daily");
    service.deps.budgets!.invalidateOverrides(user);
  });

  it("gives back the hold of a cache hit and of a request the rate limiter refuses", async () => {
    const question = `hit twice ${randomBytes(6).toString("hex")}`;
    expect((await post(question)).status).toBe(200);
    expect((await heldSettles()).reserved_usd).toBe(0);
    const settledBefore = service.deps.budgets!.stats.settled;
    const hit = await post(question);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    // Back to nothing held: the hit's hold was released, not left to its 15-minute deadline.
    expect((await heldSettles()).reserved_usd).toBe(0);
    expect(service.deps.budgets!.stats.settled).toBe(settledBefore + 1);

    // RATE_LIMIT_RPM is 6: the requests above and these use it up.
    let limited: Response | undefined;
    for (let i = 0; i < 8 && !limited; i++) {
      const res = await post(`rate limited ${i} ${randomBytes(6).toString("hex")}`);
      if (res.status === 429) limited = res;
    }
    expect(limited).toBeDefined();
    expect(((await limited!.json()) as { error: { type: string } }).error.type).toBe(
      "rate_limit_error",
    );
    expect((await heldSettles()).reserved_usd).toBe(0);
  });
});
