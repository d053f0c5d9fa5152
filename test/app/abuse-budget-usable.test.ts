/**
 * Abuse suite, item 5: a budget is usable up to what it affords. The hold is priced at the model
 * that serves (not the dearest of its fallback chain); near the edge of a budget max_tokens is
 * capped to what remains (header x-agent-max-tokens-capped) instead of the request refused. A
 * budget worth N requests at their real price serves at least 0.75 N of them one after another,
 * and never spends past it under a 120-way race. A fallback to a dearer model tops the hold up
 * first, or is skipped when the budget cannot cover it.
 */
import { openRig, type AbuseRig } from "../support/abuse";
import { serviceBackends } from "../support/services";

const HAIKU = "claude-haiku-4-5";
const SONNET = "claude-sonnet-4-6";

let n = 0;
/** Requests of one shape (same length, so the same real price), each a cache miss. */
const question = () => ({
  model: HAIKU,
  max_tokens: 4096,
  messages: [
    { role: "user", content: `question ${String(++n).padStart(6, "0")} of the same size` },
  ],
});

describe.each(serviceBackends())("abuse: budgets that can be used, with $name", (backend) => {
  let rig: AbuseRig;
  const budgets = () => rig.service.deps.budgets!;
  const setDaily = async (usd: number) => {
    await rig.service.deps.store.setBudgetOverride(rig.user, "user_daily", usd);
    budgets().invalidateOverrides(rig.user);
  };
  const daily = async () =>
    (await budgets().usageFor(rig.user)).budgets.find((b) => b.budget === "user_daily")!;
  const settled = async () => {
    for (let i = 0; i < 200 && (await daily()).reserved_usd !== 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    return daily();
  };
  /** One request's real price: what the ledger charged for it. */
  let price = 0;

  beforeAll(async () => {
    rig = await openRig(backend, {
      RATE_LIMIT_RPM: "0",
      RATE_LIMIT_TPM: "0",
      CACHE_TTL_SECONDS: "0",
      BUDGET_USER_DAILY_USD: "10",
      MAX_CONCURRENT_REQUESTS_PER_USER: "200",
    });
    // Answers of about 250 output tokens, as real answers run: a request costs ~$0.0013.
    rig.fake.setBehavior({ minReplyChars: 1000 });
    const first = await rig.post("/v1/messages", question());
    expect(first.status).toBe(200);
    await first.text();
    price = await rig.spent();
    expect(price).toBeGreaterThan(0);
  });
  afterAll(() => rig?.close());

  it("serves at least 0.75 N of the requests a budget worth N = 8.5 affords, one after another, capping max_tokens at the edge", async () => {
    const before = (await settled()).spent_usd!;
    const limit = before + 8.5 * price;
    await setDaily(limit);
    let served = 0;
    let cappedSeen: Response | undefined;
    for (let i = 0; i < 30; i++) {
      const res = await rig.post("/v1/messages", question());
      await res.text();
      if (res.status !== 200) {
        expect(res.status).toBe(429);
        break;
      }
      served++;
      if (res.headers.get("x-agent-max-tokens-capped")) cappedSeen ??= res;
    }
    const spent = (await settled()).spent_usd!;
    process.stdout.write(
      `[abuse] ${backend.name}: budget worth 8.5 requests ($${(8.5 * price).toFixed(6)}) served ${served}, spent $${(spent - before).toFixed(6)}\n`,
    );
    expect(served).toBeGreaterThanOrEqual(Math.ceil(0.75 * 8.5));
    expect(spent).toBeLessThanOrEqual(limit + 1e-6);
    expect(await rig.spent()).toBeLessThanOrEqual(limit + 1e-6);
    // Every hold was capped to what remained, and the response said so.
    expect(cappedSeen).toBeDefined();
    expect(Number(cappedSeen!.headers.get("x-agent-max-tokens-capped"))).toBeLessThan(4096);
    expect(cappedSeen!.headers.get("x-agent-max-tokens-capped-by")).toBe("user_daily");
  });

  it("never spends past a budget worth 8.5 requests under a 120-way race", async () => {
    const before = (await settled()).spent_usd!;
    const limit = before + 8.5 * price;
    await setDaily(limit);
    const statuses = await Promise.all(
      Array.from({ length: 120 }, async () => {
        const res = await rig.post("/v1/messages", question());
        await res.text();
        return res.status;
      }),
    );
    const spent = (await settled()).spent_usd!;
    const ledger = await rig.spent();
    const served = statuses.filter((s) => s === 200).length;
    process.stdout.write(
      `[abuse] ${backend.name}: 120-way race on a budget worth 8.5 requests: ${served} served, ledger total $${ledger.toFixed(6)} <= limit $${limit.toFixed(6)}\n`,
    );
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(served).toBeGreaterThanOrEqual(1);
    expect(ledger).toBeLessThanOrEqual(limit + 1e-6);
    expect(spent).toBeLessThanOrEqual(limit + 1e-6);
  });

  it("tops the hold up for a fallback to a dearer model, or skips the fallback when the budget cannot cover it", async () => {
    await setDaily(10);
    const calls = () => rig.fake.requests.filter((r) => r.path === "/v1/messages");
    // Haiku is overloaded: the next model of the fast tier is Sonnet, three times the price.
    rig.fake.failNext(1, { kind: "overloaded" });
    const before = calls().length;
    const res = await rig.post("/v1/messages", { ...question(), max_tokens: 200 });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-agent-model")).toBe(SONNET);
    expect(calls().length).toBe(before + 2);
    expect((await settled()).reserved_usd).toBe(0);

    // Now the budget covers Haiku's worst case but not Sonnet's: the fallback is skipped, and
    // the retry loop tries Haiku again instead: no Sonnet call, nothing spent past the budget.
    const spent = (await settled()).spent_usd!;
    const limit = spent + 0.002; // Haiku, 200 tokens: ~$0.001; Sonnet: ~$0.003
    await setDaily(limit);
    rig.fake.failNext(1, { kind: "overloaded" });
    const skipped = calls().length;
    const retried = await rig.post("/v1/messages", { ...question(), max_tokens: 200 });
    expect(retried.status).toBe(200);
    expect(retried.headers.get("x-agent-model")).toBe(HAIKU);
    const after = calls().slice(skipped);
    expect(after.map((c) => (c.body as { model: string }).model)).toEqual([HAIKU, HAIKU]);
    expect((await settled()).spent_usd!).toBeLessThanOrEqual(limit);
  });
});
