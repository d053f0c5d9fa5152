/**
 * Abuse suite, item 1: message batches go through every budget and the per-minute token limit.
 * A batch holds its worst case at the batch price on every applicable budget before the upstream
 * is called, is refused with 429 budget_exceeded (upstream never called) when that does not fit,
 * and is settled from its results when it ends.
 */
import { randomBytes } from "node:crypto";
import pino from "pino";
import { BudgetService } from "../../app/src/budget/budgets";
import { ModelCatalog } from "../../app/src/llm/models";
import { openRig, QUIET, until, type AbuseRig, type ErrorJson } from "../support/abuse";
import { serviceBackends } from "../support/services";

const OPUS = "claude-opus-4-5";
const HAIKU = "claude-haiku-4-5";

const batchOf = (n: number, model: string, maxTokens: number, tag = "q") => ({
  requests: Array.from({ length: n }, (_, i) => ({
    custom_id: `${tag}-${i}`,
    params: { model, max_tokens: maxTokens, messages: [{ role: "user", content: `${tag} ${i}` }] },
  })),
});

interface BatchJson {
  id: string;
  processing_status: string;
  cost_usd: number;
}

const upstreamBatches = (rig: AbuseRig) =>
  rig.fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/messages/batches").length;

async function daily(rig: AbuseRig) {
  const report = await rig.service.deps.budgets!.usageFor(rig.user);
  return report.budgets.find((b) => b.budget === "user_daily")!;
}

describe.each(serviceBackends())("abuse: batches and budgets with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, {
      ...QUIET,
      BUDGET_USER_DAILY_USD: "1",
      BATCH_POLL_INTERVAL_MS: "50",
    });
  });
  afterAll(() => rig?.close());

  it("refuses 50 Opus requests at max_tokens 200,000 ($125 at the batch price) on a $1 daily budget, before any upstream call", async () => {
    const res = await rig.post("/v1/messages/batches", batchOf(50, OPUS, 200_000, "opus"));
    expect(res.status).toBe(429);
    const body = (await res.json()) as ErrorJson;
    expect(body.error.type).toBe("budget_exceeded");
    expect(body.error).toMatchObject({ budget: "user_daily", limit_usd: 1 });
    expect(body.error.requested_usd as number).toBeGreaterThanOrEqual(125);
    expect(body.request_id).toMatch(/^req_/);
    expect(res.headers.get("x-should-retry")).toBe("false");
    expect(upstreamBatches(rig)).toBe(0);
    expect(await rig.spent()).toBe(0);
    expect((await daily(rig)).reserved_usd).toBe(0);
  });

  it("holds an accepted batch's worst case, settles it from its results, and then refuses a batch the rest cannot cover", async () => {
    const res = await rig.post("/v1/messages/batches", batchOf(2, HAIKU, 1000, "small"));
    expect(res.status).toBe(200);
    const batch = (await res.json()) as BatchJson;
    // 2 x 1,000 output tokens at $5/MTok, halved: at least $0.005 held until the batch ends.
    expect((await daily(rig)).reserved_usd).toBeGreaterThanOrEqual(0.005);
    expect(upstreamBatches(rig)).toBe(1);

    const ended = await until(async () => {
      const b = (await (await rig.get(`/v1/messages/batches/${batch.id}`)).json()) as BatchJson;
      return b.processing_status === "ended" && b;
    }, "the batch to end");
    const settled = await until(async () => {
      const d = await daily(rig);
      return d.reserved_usd === 0 && d;
    }, "the batch's hold to settle");
    const ledger = await rig.spent();
    expect(ended.cost_usd).toBeGreaterThan(0);
    expect(ledger).toBeCloseTo(ended.cost_usd, 8);
    expect(settled.spent_usd!).toBeCloseTo(ledger, 5);

    // The budget now affords less than the next batch's worst case: refused, upstream untouched.
    await rig.service.deps.store.setBudgetOverride(rig.user, "user_daily", ledger + 0.001);
    rig.service.deps.budgets!.invalidateOverrides(rig.user);
    const over = await rig.post("/v1/messages/batches", batchOf(2, HAIKU, 1000, "over"));
    expect(over.status).toBe(429);
    expect(((await over.json()) as ErrorJson).error.type).toBe("budget_exceeded");
    expect(upstreamBatches(rig)).toBe(1);
    expect(await rig.spent()).toBeCloseTo(ledger, 8);
    await rig.service.deps.store.deleteBudgetOverride(rig.user, "user_daily");
    rig.service.deps.budgets!.invalidateOverrides(rig.user);
  });
});

describe.each(serviceBackends())(
  "abuse: batches and the per-request budget with $name",
  (backend) => {
    let rig: AbuseRig;
    beforeAll(async () => {
      rig = await openRig(backend, { ...QUIET, BUDGET_REQUEST_USD: "0.001" });
    });
    afterAll(() => rig?.close());

    it("refuses a batch holding a request whose worst case passes BUDGET_REQUEST_USD, naming it", async () => {
      // 1,000 output tokens of Haiku at the batch price: $0.0025, over the $0.001 per request.
      const res = await rig.post("/v1/messages/batches", {
        requests: [
          batchOf(1, HAIKU, 50, "fits").requests[0],
          batchOf(1, HAIKU, 1000, "too-big").requests[0],
        ],
      });
      expect(res.status).toBe(429);
      const body = (await res.json()) as ErrorJson;
      expect(body.error).toMatchObject({ type: "budget_exceeded", budget: "request" });
      expect(body.error.message).toContain("too-big-0");
      expect(upstreamBatches(rig)).toBe(0);
    });
  },
);

describe.each(serviceBackends())("abuse: batches and RATE_LIMIT_TPM with $name", (backend) => {
  let rig: AbuseRig;
  beforeAll(async () => {
    rig = await openRig(backend, { RATE_LIMIT_RPM: "0", RATE_LIMIT_TPM: "3000" });
  });
  afterAll(() => rig?.close());

  it("counts a batch's tokens toward the per-minute limit", async () => {
    const first = await rig.post("/v1/messages/batches", batchOf(2, HAIKU, 1000, "tpm-a"));
    expect(first.status).toBe(200);
    expect(Number(first.headers.get("anthropic-ratelimit-tokens-remaining"))).toBeLessThan(1000);
    const second = await rig.post("/v1/messages/batches", batchOf(2, HAIKU, 1000, "tpm-b"));
    expect(second.status).toBe(429);
    expect(((await second.json()) as ErrorJson).error.type).toBe("rate_limit_error");
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(upstreamBatches(rig)).toBe(1);
  });
});

describe.each(serviceBackends().filter((b) => b.name.includes("Redis")))(
  "abuse: a batch's hold settled by another replica, with $name",
  (backend) => {
    let rig: AbuseRig;
    beforeAll(async () => {
      rig = await openRig(backend, { ...QUIET, BUDGET_USER_DAILY_USD: "1" });
    });
    afterAll(() => rig?.close());

    it("is settled from ids alone by a replica that never saw it (a restart, another pod)", async () => {
      const { deps } = rig.service;
      const other = BudgetService.fromConfig(deps.config, {
        catalog: ModelCatalog.load(),
        store: deps.store,
        logger: pino({ level: "silent" }),
        redis: deps.redis,
      });
      try {
        const heldAt = Date.now();
        // A hold id is idempotent for as long as the hold lives: unique per run, so a run that
        // died before settling cannot answer for this one.
        const id = `batch.replica-test-${randomBytes(6).toString("hex")}`;
        const held = await deps.budgets!.reserveHold({
          id,
          userId: rig.user,
          amountUsd: 0.4,
          ttlMs: 3_600_000,
        });
        expect(held.ok).toBe(true);
        expect((await daily(rig)).reserved_usd).toBeCloseTo(0.4, 6);
        await other.settleHold({
          id,
          userId: rig.user,
          heldAt,
          reservedUsd: 0.4,
          actualUsd: 0.1,
        });
        const after = await daily(rig);
        expect(after.reserved_usd).toBe(0);
        expect(after.spent_usd).toBeCloseTo(0.1, 6);
      } finally {
        await other.close();
      }
    });
  },
);
