/**
 * Budgets, run twice: in process over the embedded PGlite store (the default with no
 * services), and shared through real Redis over real Postgres (as deployed).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Hono } from "hono";
import pino from "pino";
import type { Redis } from "ioredis";
import { createRedis } from "../../app/src/bootstrap";
import { AlertDispatcher, type BudgetAlert } from "../../app/src/budget/alerts";
import {
  BudgetService,
  estimateInput,
  estimateInputTokens,
  utcDay,
  type BudgetServiceOptions,
  type Reservation,
} from "../../app/src/budget/budgets";
import { ApiError, sendError } from "../../app/src/errors";
import { utcMonth } from "../../app/src/budget/lines";
import { ModelCatalog } from "../../app/src/llm/models";
import { openStore } from "../../app/src/store";
import type { Store, UsageEntry } from "../../app/src/store/types";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";

const logger = pino({ level: "silent" });
const catalog = ModelCatalog.load();
const HAIKU = "claude-haiku-4-5"; // $1 in, $5 out per MTok: µ$ 1 and 5 per token
const SONNET = "claude-sonnet-4-6"; // $3 in, $15 out, cache write $3.75
const DAY = 86_400_000;

describe("utcDay and utcMonth (the periods budget counters reset with)", () => {
  it("gives each instant its own UTC day and month, whatever instant was asked before", () => {
    const at = (iso: string) => Date.parse(iso);
    // Back and forth across midnight and a month's end: the period kept from the last call is
    // given again only for an instant inside it.
    const asks = [
      ["2026-12-31T23:59:59.999Z", "2026-12-31", "2026-12"],
      ["2027-01-01T00:00:00.000Z", "2027-01-01", "2027-01"],
      ["2026-12-31T12:00:00.000Z", "2026-12-31", "2026-12"],
      ["2026-12-31T00:00:00.000Z", "2026-12-31", "2026-12"],
      ["2026-12-30T23:59:59.999Z", "2026-12-30", "2026-12"],
      ["2027-02-28T10:00:00.000Z", "2027-02-28", "2027-02"],
    ] as const;
    for (const [iso, day, month] of asks) {
      const ms = at(iso);
      const d = utcDay(ms);
      expect([iso, d.id, d.start <= ms && ms < d.end, d.end - d.start]).toEqual([
        iso,
        day,
        true,
        DAY,
      ]);
      expect([d.startIso, d.endIso]).toEqual([
        new Date(d.start).toISOString(),
        new Date(d.end).toISOString(),
      ]);
      const m = utcMonth(ms);
      expect([iso, m.id, m.start <= ms && ms < m.end]).toEqual([iso, month, true]);
    }
    expect(utcMonth(at("2027-02-01T00:00:00Z")).end).toBe(at("2027-03-01T00:00:00Z"));
  });
});

describe("estimateInputTokens", () => {
  it("counts about four ASCII characters a token over system, messages and tools", () => {
    const body = {
      system: "x".repeat(400),
      messages: [{ role: "user", content: "y".repeat(800) }],
      tools: [{ name: "calc", input_schema: { type: "object" } }],
    };
    const tokens = estimateInputTokens(body);
    // 1,200 characters of text plus keys and framing: a little above 300.
    expect(tokens).toBeGreaterThanOrEqual(300);
    expect(tokens).toBeLessThan(330);
    expect(estimateInputTokens({ ...body, tools: undefined })).toBeLessThan(tokens);
  });

  it("counts non-ASCII characters one token each and images at a fixed size, not their base64", () => {
    expect(
      estimateInputTokens({ messages: [{ role: "user", content: "日本語のテキスト".repeat(10) }] }),
    ).toBeGreaterThanOrEqual(80);
    const image = {
      type: "image",
      source: { type: "base64", media_type: "image/png", data: "A".repeat(4_000_000) },
    };
    const tokens = estimateInputTokens({
      messages: [{ role: "user", content: [image, { type: "text", text: "what is this?" }] }],
    });
    expect(tokens).toBeGreaterThanOrEqual(1600);
    expect(tokens).toBeLessThan(1700);
  });

  it("notices prompt caching", () => {
    expect(estimateInput({ messages: [{ role: "user", content: "hi" }] }).promptCaching).toBe(
      false,
    );
    expect(
      estimateInput({ system: [{ type: "text", text: "s", cache_control: { type: "ephemeral" } }] })
        .promptCaching,
    ).toBe(true);
  });
});

// ---- the two variants ----------------------------------------------------------------------------

interface Env {
  store: Store;
  /** Services sharing one set of counters (replicas); options apply to each. */
  services(n: number, options?: Partial<BudgetServiceOptions>): Promise<BudgetService[]>;
  /** Delete one window's counter, as a Redis flush or eviction would (Redis only). */
  dropKey?(pattern: string): Promise<number>;
  close(): Promise<void>;
}

const pgUrl = requirePostgresSync();
const redisUrl = requireRedisSync();

async function embeddedEnv(): Promise<Env> {
  const store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
  const made: BudgetService[] = [];
  return {
    store,
    async services(n, options = {}) {
      if (n !== 1) throw new Error("the embedded default is one process");
      const s = new BudgetService({ limits: {}, catalog, store, logger, ...options });
      made.push(s);
      return [s];
    },
    async close() {
      await Promise.all(made.map((s) => s.close()));
      await store.close();
    },
  };
}

async function redisEnv(): Promise<Env> {
  const db = await createTestDatabase(pgUrl!);
  const store = await openStore({ DATABASE_URL: db.url, DATABASE_POOL_MAX: 4, DATA_DIR: "unused" });
  const clients: Redis[] = [];
  const made: BudgetService[] = [];
  let tag = "";
  return {
    store,
    async services(n, options = {}) {
      tag = `budget-test-${randomBytes(6).toString("hex")}`;
      const out: BudgetService[] = [];
      for (let i = 0; i < n; i++) {
        // The production client settings: no offline queue, fail fast.
        const redis = createRedis(redisUrl!, logger);
        clients.push(redis);
        await new Promise<void>((resolve, reject) => {
          redis.once("ready", () => resolve());
          redis.once("error", reject);
        });
        const s = new BudgetService({
          limits: {},
          catalog,
          store,
          logger,
          redis,
          keyTag: tag,
          ...options,
        });
        made.push(s);
        out.push(s);
      }
      return out;
    },
    async dropKey(pattern) {
      const redis = clients[0]!;
      const keys = await redis.keys(`{${tag}}:${pattern}`);
      return keys.length ? redis.del(...keys) : 0;
    },
    async close() {
      await Promise.all(made.map((s) => s.close()));
      await Promise.all(
        clients.map((c) =>
          c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect(),
        ),
      );
      await store.close();
      await db.drop();
    },
  };
}

const variants: Array<[string, boolean, () => Promise<Env>]> = [
  ["in process (embedded PGlite)", true, embeddedEnv],
  ["Redis + Postgres", Boolean(pgUrl && redisUrl), redisEnv],
];

const user = (p = "u") => `${p}-${randomBytes(4).toString("hex")}`;
const req = (userId: string, extra: Partial<Parameters<BudgetService["reserve"]>[0]> = {}) => ({
  requestId: `req_${randomBytes(6).toString("hex")}`,
  userId,
  model: HAIKU,
  inputTokensEstimate: 1000,
  maxTokens: 1000,
  ...extra,
});
/** What the fake upstream "used": haiku, the given output tokens on 1,000 input tokens. */
const costOf = (outputTokens: number, inputTokens = 1000) =>
  catalog.costUsd(HAIKU, { input_tokens: inputTokens, output_tokens: outputTokens });

function ok(r: Awaited<ReturnType<BudgetService["reserve"]>>): Reservation {
  if (!r.ok) throw new Error(`expected a reservation, got ${r.error.message}`);
  return r.reservation;
}
function refused(r: Awaited<ReturnType<BudgetService["reserve"]>>): ApiError {
  if (r.ok) throw new Error("expected a refusal");
  return r.error;
}
const budgetOf = async (s: BudgetService, userId: string, name: string, sessionId?: string) =>
  (await s.usageFor(userId, sessionId)).budgets.find((b) => b.budget === name);

const ledgerEntry = (
  userId: string,
  costUsd: number,
  createdAt: number,
  sessionId: string | null = null,
): UsageEntry => ({
  requestId: `req_${randomBytes(4).toString("hex")}`,
  userId,
  sessionId,
  model: HAIKU,
  inputTokens: 1,
  outputTokens: 1,
  cacheCreationInputTokens: 0,
  cacheReadInputTokens: 0,
  costUsd,
  status: "ok",
  createdAt: new Date(createdAt).toISOString(),
});

describe.each(variants)("budgets: %s", (_name, available, makeEnv) => {
  const d = available ? describe : describe.skip;
  d("", () => {
    let env: Env;
    // Noon of today (UTC): window keys and deadlines stay in the future for Redis' expiries.
    let clock = 0;
    const now = () => clock;
    beforeAll(async () => {
      env = await makeEnv();
    }, 60_000);
    afterAll(() => env?.close());
    beforeEach(() => {
      clock = utcDay(Date.now()).start + DAY / 2;
    });

    it("caps max_tokens to what the request budget allows, and refuses input it cannot cover", async () => {
      const [s] = await env.services(1, { limits: { requestUsd: 0.01 }, now });
      // Sonnet: 1,000 input tokens cost $0.003, leaving $0.007 for output at $15/MTok: 466 tokens.
      const r = await s!.reserve(req(user(), { model: SONNET, maxTokens: 4096 }));
      expect(r.ok && r.maxTokens).toBe(466);
      expect(ok(r).reservedUsd).toBeLessThanOrEqual(0.01);
      // Under the cap, max_tokens is left alone.
      const small = await s!.reserve(req(user(), { model: SONNET, maxTokens: 100 }));
      expect(small.ok && small.maxTokens).toBe(100);
      // Prompt caching reserves input at the cache-write price ($3.75): fewer tokens remain.
      const cached = await s!.reserve(
        req(user(), { model: SONNET, maxTokens: 4096, promptCaching: true }),
      );
      expect(cached.ok && cached.maxTokens).toBe(416);
      // A Haiku call is held at Haiku's prices (issue 13: the model that serves; a fallback to a
      // dearer model tops the hold up first): ($0.01 - $0.001) / $5 per MTok = 1,800 tokens.
      const haiku = await s!.reserve(req(user(), { model: HAIKU, maxTokens: 4096 }));
      expect(haiku.ok && haiku.maxTokens).toBe(1800);
      const e = refused(
        await s!.reserve(req(user(), { model: SONNET, inputTokensEstimate: 4000 })),
      );
      expect(e.status).toBe(429);
      expect(e.details).toMatchObject({ budget: "request", limit_usd: 0.01, resets_at: null });
      expect(e.headers["x-should-retry"]).toBe("false");
    });

    it("holds the worst case, then settles to the actual cost; settling twice changes nothing", async () => {
      const [s] = await env.services(1, { limits: { userDailyUsd: 1 }, now });
      const u = user();
      const hold = ok(await s!.reserve(req(u)));
      expect(hold.reservedUsd).toBeCloseTo(0.006, 9); // 1,000 in at $1 + 1,000 out at $5
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0,
        reserved_usd: 0.006,
        remaining_usd: 0.994,
      });
      await s!.settle(hold, costOf(200)); // $0.002
      await s!.settle(hold, costOf(1000));
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0.002,
        reserved_usd: 0,
        remaining_usd: 0.998,
      });
      // Settling with 0 releases a hold without charging (the upstream call never happened).
      await s!.settle(ok(await s!.reserve(req(u))), 0);
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0.002,
        reserved_usd: 0,
      });
    });

    it("refuses what would pass a budget, counting holds in flight, and says which budget and when it resets", async () => {
      const [s] = await env.services(1, { limits: { userDailyUsd: 0.01 }, now });
      const u = user();
      const first = ok(await s!.reserve(req(u))); // $0.006 held
      const busy = refused(await s!.reserve(req(u)));
      // It would fit once the first settles: the client may retry.
      expect(busy.details).toMatchObject({
        budget: "user_daily",
        retryable: true,
        reserved_usd: 0.006,
      });
      expect(busy.headers["retry-after"]).toBe("1");
      await s!.settle(first, costOf(1000)); // $0.006 spent
      const spent = refused(await s!.reserve(req(u)));
      const midnight = new Date(utcDay(clock).end).toISOString();
      expect(spent.details).toMatchObject({
        budget: "user_daily",
        scope_id: u,
        limit_usd: 0.01,
        spent_usd: 0.006,
        resets_at: midnight,
        retryable: false,
      });
      expect(spent.headers).toMatchObject({
        "x-should-retry": "false",
        "retry-after": String(DAY / 2 / 1000),
      });
      expect(spent.message).toContain(midnight);

      // Through HTTP, the error has the Anthropic shape the official SDK understands.
      const app = new Hono();
      app.post("/v1/messages", async (c) => {
        const r = await s!.reserve(req(u));
        if (!r.ok) throw r.error;
        return c.json({});
      });
      app.onError((err, c) =>
        err instanceof ApiError ? sendError(c, err) : c.text("unexpected", 500),
      );
      const res = await app.request("/v1/messages", { method: "POST" });
      expect(res.status).toBe(429);
      expect(res.headers.get("x-should-retry")).toBe("false");
      const body = (await res.json()) as { type: string; error: Record<string, unknown> };
      expect(body.type).toBe("error");
      expect(body.error).toMatchObject({
        type: "budget_exceeded",
        budget: "user_daily",
        limit_usd: 0.01,
        resets_at: midnight,
      });
      expect(typeof body.error.message).toBe("string");

      // The next UTC day is a new window.
      clock += DAY;
      expect((await s!.reserve(req(u))).ok).toBe(true);
    });

    it("keeps session budgets for the session's life (no reset) and the deployment's daily budget across users", async () => {
      const [s] = await env.services(1, { limits: { sessionUsd: 0.008, dailyUsd: 0.02 }, now });
      const session = randomUUID();
      const u = user();
      await s!.settle(ok(await s!.reserve(req(u, { sessionId: session }))), costOf(1000));
      const e = refused(await s!.reserve(req(u, { sessionId: session })));
      expect(e.details).toMatchObject({
        budget: "session",
        scope_id: session,
        resets_at: null,
        window: null,
      });
      clock += 3 * DAY;
      expect(refused(await s!.reserve(req(u, { sessionId: session }))).details).toMatchObject({
        budget: "session",
      });
      // Deployment-wide: three users' spend adds up.
      clock += DAY;
      for (let i = 0; i < 3; i++) await s!.settle(ok(await s!.reserve(req(user()))), costOf(1000));
      expect(refused(await s!.reserve(req(user()))).details).toMatchObject({
        budget: "daily",
        scope_id: "deployment",
        spent_usd: 0.018,
      });
    });

    it("releases a hold nobody settled once its deadline passes, and a late settlement still counts once", async () => {
      const [s] = await env.services(1, {
        limits: { userDailyUsd: 0.01 },
        reservationTtlMs: 60_000,
        now,
      });
      const u = user();
      const orphan = ok(await s!.reserve(req(u))); // as if the replica holding it crashed
      expect(refused(await s!.reserve(req(u))).details).toMatchObject({ retryable: true });
      clock += 61_000;
      const next = ok(await s!.reserve(req(u)));
      expect(s!.stats.reclaimed).toBe(1);
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0,
        reserved_usd: 0.006,
      });
      await s!.settle(orphan, costOf(200)); // $0.002, and no second release of its hold
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0.002,
        reserved_usd: 0.006,
      });
      await s!.settle(next, costOf(400));
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        spent_usd: 0.005,
        reserved_usd: 0,
      });
    });

    it("applies per-user overrides from Postgres: a lower limit, no limit, and back to the default", async () => {
      const [s] = await env.services(1, {
        limits: { userDailyUsd: 1, requestUsd: 1 },
        overrideCacheMs: 60_000,
        now,
      });
      const u = user("olga");
      await env.store.setBudgetOverride(u, "user_daily", 0.005);
      await env.store.setBudgetOverride(u, "request", 0.004);
      const capped = await s!.reserve(req(u));
      // The request override caps output: ($0.004 - $0.001 input) / $5 per MTok = 600 tokens.
      expect(capped.ok && capped.maxTokens).toBe(600);
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        limit_usd: 0.005,
        source: "override",
        reserved_usd: 0.004,
      });
      expect(refused(await s!.reserve(req(u))).details).toMatchObject({
        budget: "user_daily",
        limit_usd: 0.005,
      });

      await env.store.setBudgetOverride(u, "user_daily", null);
      s!.invalidateOverrides(u);
      expect(await budgetOf(s!, u, "user_daily")).toBeUndefined();
      expect((await s!.reserve(req(u))).ok).toBe(true);

      expect(await env.store.deleteBudgetOverride(u, "user_daily")).toBe(true);
      s!.invalidateOverrides(u);
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({
        limit_usd: 1,
        source: "default",
      });
      // Other users keep the default.
      expect(await budgetOf(s!, user(), "request")).toMatchObject({
        limit_usd: 1,
        source: "default",
      });
    });

    it("starts counters from the Postgres ledger, so a restart (or a lost Redis) does not reset a budget", async () => {
      const u = user();
      const session = randomUUID();
      await env.store.recordUsage([
        ledgerEntry(u, 0.004, clock - 3_600_000, session),
        ledgerEntry(u, 0.003, clock - DAY), // yesterday: not in today's window
        ledgerEntry(user(), 0.002, clock - 60_000),
      ]);
      const [s] = await env.services(1, { limits: { userDailyUsd: 0.01, sessionUsd: 0.005 }, now });
      expect(await budgetOf(s!, u, "user_daily")).toMatchObject({ spent_usd: 0.004 });
      expect(await budgetOf(s!, u, "session", session)).toMatchObject({ spent_usd: 0.004 });
      expect(refused(await s!.reserve(req(u, { sessionId: session }))).details).toMatchObject({
        budget: "session",
        spent_usd: 0.004,
      });

      // A second instance (a restart, or another replica) sees the same spend.
      await s!.settle(ok(await s!.reserve(req(u))), costOf(200));
      await env.store.recordUsage([ledgerEntry(u, costOf(200), clock)]);
      const [again] = await env.services(1, { limits: { userDailyUsd: 0.01 }, now });
      expect(await budgetOf(again!, u, "user_daily")).toMatchObject({ spent_usd: 0.006 });
    });

    it("alerts once per threshold per window, and at 100 % when the budget cannot cover even one output token", async () => {
      const alerts: BudgetAlert[] = [];
      const dispatcher = new AlertDispatcher({ logger });
      dispatcher.onAlert((a) => alerts.push(a));
      const [s] = await env.services(1, {
        limits: { userDailyUsd: 0.01 },
        alerts: dispatcher,
        now,
      });
      const u = user();
      await s!.settle(ok(await s!.reserve(req(u))), costOf(800)); // $0.005: 50 %
      await s!.settle(ok(await s!.reserve(req(u, { maxTokens: 600 }))), costOf(400)); // $0.008: 80 %
      expect(alerts.map((a) => a.threshold)).toEqual([50, 80]);
      expect(alerts[1]).toMatchObject({
        budget: "user_daily",
        scopeId: u,
        limitUsd: 0.01,
        spentUsd: 0.008,
        degraded: false,
      });
      expect(alerts[1]!.window?.end).toBe(new Date(utcDay(clock).end).toISOString());
      // $0.002 left: a $0.006 worst case is refused, but a cheaper request could still run: no 100 % yet.
      refused(await s!.reserve(req(u)));
      expect(alerts).toHaveLength(2);
      await s!.settle(ok(await s!.reserve(req(u, { maxTokens: 100 }))), costOf(100)); // $0.0095
      refused(await s!.reserve(req(u, { maxTokens: 100 })));
      refused(await s!.reserve(req(u, { maxTokens: 100 })));
      expect(alerts.map((a) => a.threshold)).toEqual([50, 80, 100]);
      clock += DAY;
      await s!.settle(ok(await s!.reserve(req(u))), costOf(1000));
      expect(alerts.map((a) => a.threshold)).toEqual([50, 80, 100, 50]);
    });

    it("never lets 300 concurrent requests spend past a budget", async () => {
      const replicas = env.dropKey ? 4 : 1;
      const limitUsd = 0.3;
      const services = await env.services(replicas, { limits: { userDailyUsd: limitUsd }, now });
      const u = user();
      let spentUsd = 0;
      let served = 0;
      let refusals = 0;
      const tick = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5)));
      await Promise.all(
        Array.from({ length: 300 }, async (_, i) => {
          const s = services[i % replicas]!;
          await tick();
          const r = await s.reserve(req(u));
          if (!r.ok) {
            refusals++;
            return;
          }
          await tick();
          const actual = costOf(100 + Math.floor(Math.random() * 901));
          await s.settle(r.reservation, actual);
          spentUsd += actual;
          served++;
        }),
      );
      const usage = await budgetOf(services[0]!, u, "user_daily");
      expect(spentUsd).toBeLessThanOrEqual(limitUsd);
      expect(usage!.spent_usd!).toBeLessThanOrEqual(limitUsd);
      expect(usage!.spent_usd!).toBeCloseTo(spentUsd, 5);
      expect(usage!.reserved_usd).toBe(0);
      // Not vacuous: the budget was both used and defended.
      expect(refusals).toBeGreaterThan(0);
      expect(served).toBeGreaterThan(40);
      expect(served + refusals).toBe(300);
      process.stdout.write(
        `[budget] ${_name}: ${served} served, ${refusals} refused, spent $${spentUsd.toFixed(6)} of $${limitUsd}\n`,
      );
    });
  });
});
