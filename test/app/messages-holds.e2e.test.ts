/**
 * POST /v1/messages sends its budget hold with the rate-limit admission and the cache lookup (one
 * round trip), before it knows whether it will call the model. What a client and an operator must
 * still see: a cached answer is served even when the budget could not cover a model call, no
 * refusal is counted for it, and a hold the request did not use (cache hit, rate-limit 429) is
 * given back at once rather than shrinking the budget until its deadline. Once most lookups hit,
 * the hold waits for the lookup instead (a hit then costs no hold).
 */
import { randomBytes } from "node:crypto";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { serviceBackends } from "../support/services";
import { HoldTiming } from "../../app/src/routes/messages";

const run = randomBytes(4).toString("hex");

const postMessage = (url: string, key: string, content: string, maxTokens: number) =>
  fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": key,
      "anthropic-version": "2023-06-01",
    },
    body: JSON.stringify({
      model: "claude-haiku-4-5",
      max_tokens: maxTokens,
      messages: [{ role: "user", content }],
    }),
  });

describe.each(serviceBackends())(
  "speculative budget holds on /v1/messages with $name",
  ({ open }) => {
    let fake: FakeAnthropic;
    let service: RunningService;
    let cleanup: () => Promise<void>;
    const user = `hold-${run}-${randomBytes(2).toString("hex")}`;
    const key = `hold-key-${run}-${randomBytes(2).toString("hex")}`;

    beforeAll(async () => {
      fake = await startFakeAnthropic();
      const e = await open();
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

    const post = (content: string) => postMessage(service.url, key, content, 1000);
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

      // Now the user's daily budget cannot hold even the fewest output tokens a request may be
      // capped to near the edge (BUDGET_MIN_OUTPUT_TOKENS, 64 at haiku's price: $0.00032).
      const store = service.deps.store;
      await store.setBudgetOverride(user, "user_daily", spent + 0.0002);
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
      expect(((await miss.json()) as { error: { type: string } }).error.type).toBe(
        "budget_exceeded",
      );
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
  },
);

describe("when /v1/messages sends its budget hold", () => {
  it("holds early while most lookups miss, and after the lookup once most hit", () => {
    const timing = new HoldTiming();
    expect(timing.early()).toBe(true);
    for (let i = 0; i < 30; i++) timing.looked(true);
    expect(timing.early()).toBe(true); // a burst of hits is not yet a majority of the last ~50
    for (let i = 0; i < 20; i++) timing.looked(true);
    expect(timing.early()).toBe(false);
    for (let i = 0; i < 50; i++) timing.looked(false);
    expect(timing.early()).toBe(true);
  });

  it("serves a stream of cache hits without holding anything once hits are the rule", async () => {
    const fake = await startFakeAnthropic();
    const user = `late-${run}`;
    const key = `late-key-${run}`;
    const service = await startService({
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      AGENT_API_KEYS: `${user}:${key}`,
      CACHE_TTL_SECONDS: "300",
      BUDGET_USER_DAILY_USD: "10",
    });
    try {
      const budgets = service.deps.budgets!;
      const post = (content: string) => postMessage(service.url, key, content, 100);
      const question = `asked again and again ${randomBytes(6).toString("hex")}`;
      expect((await post(question)).headers.get("x-cache")).toBe("MISS");
      for (let i = 0; i < 60; i++) await (await post(question)).arrayBuffer();
      const before = { ...budgets.stats };
      const hit = await post(question);
      expect(hit.headers.get("x-cache")).toBe("HIT");
      expect(budgets.stats.reserved).toBe(before.reserved);
      expect(budgets.stats.settled).toBe(before.settled);
      // A miss still holds before the model is called, and settles.
      const miss = await post(`a new question ${randomBytes(6).toString("hex")}`);
      expect(miss.headers.get("x-cache")).toBe("MISS");
      expect(budgets.stats.reserved).toBe(before.reserved + 1);
      expect(budgets.stats.settled).toBe(before.settled + 1);
    } finally {
      await service.close();
      await fake.close();
    }
  });
});
