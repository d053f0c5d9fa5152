/**
 * GET /v1/usage through the real app (buildApp), over the embedded PGlite store with in-process
 * budgets, and once over Redis + Postgres.
 */
import { randomBytes } from "node:crypto";
import pino from "pino";
import { buildApp } from "../../app/src/app";
import { CachedKeyResolver } from "../../app/src/auth";
import { BatchedLedger } from "../../app/src/budget/ledger";
import { BudgetService, utcDay, type UsageReport } from "../../app/src/budget/budgets";
import { MemoryResponseCache } from "../../app/src/cache/memory";
import { loadConfig } from "../../app/src/config";
import type { AppDeps } from "../../app/src/deps";
import { ModelCatalog } from "../../app/src/llm/models";
import { OfflineProvider } from "../../app/src/llm/offline";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";
import { createRedis } from "../../app/src/bootstrap";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";

const logger = pino({ level: "silent" });
const catalog = ModelCatalog.load();
const ALICE = "alice-key-0001";
const BOB = "bob-key-00002";

function appFor(
  store: Store,
  budgets: BudgetService | undefined,
  env: Record<string, string> = {},
) {
  const config = loadConfig({ DATA_DIR: "memory://", LOG_LEVEL: "silent", ...env });
  const ledger = new BatchedLedger(store, logger, { intervalMs: 5 });
  const deps: AppDeps = {
    config,
    logger,
    store,
    llm: new OfflineProvider(),
    cache: new MemoryResponseCache(),
    usage: ledger,
    budgets,
    auth: new CachedKeyResolver({
      staticKeys: [
        { user: "alice", key: ALICE },
        { user: "bob", key: BOB },
      ],
    }),
    lifecycle: { draining: false },
    close: async () => ledger.close(),
  };
  const app = buildApp(deps, { catalog });
  return {
    get: (path: string, key: string | null = ALICE) =>
      app.request(path, { headers: key ? { "x-api-key": key } : {} }),
    close: () => ledger.close(),
  };
}

describe("GET /v1/usage", () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
  }, 60_000);
  afterAll(() => store?.close());

  it("reports limit, spend, holds in flight, remaining and reset time for each budget that applies", async () => {
    const budgets = BudgetService.fromConfig(
      loadConfig({
        BUDGET_REQUEST_USD: "0.5",
        BUDGET_SESSION_USD: "2",
        BUDGET_USER_DAILY_USD: "5",
        BUDGET_DAILY_USD: "100",
      }),
      { catalog, store, logger },
    );
    const app = appFor(store, budgets);
    const session = await store.createSession({ userId: "alice" });
    const held = await budgets.reserve({
      requestId: "req_1",
      userId: "alice",
      sessionId: session.id,
      model: "claude-haiku-4-5",
      inputTokensEstimate: 1000,
      maxTokens: 1000,
    });
    if (!held.ok) throw held.error;
    const settled = await budgets.reserve({
      requestId: "req_2",
      userId: "alice",
      model: "claude-haiku-4-5",
      inputTokensEstimate: 1000,
      maxTokens: 1000,
    });
    if (!settled.ok) throw settled.error;
    await budgets.settle(settled.reservation, 0.002);

    const res = await app.get(`/v1/usage?session_id=${session.id}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as UsageReport;
    const day = utcDay(Date.now());
    const window = {
      start: new Date(day.start).toISOString(),
      end: new Date(day.end).toISOString(),
    };
    expect(body).toMatchObject({
      object: "usage",
      user_id: "alice",
      session_id: session.id,
      mode: "embedded",
    });
    expect(Date.parse(body.at)).not.toBeNaN();
    expect(body.budgets).toEqual([
      {
        budget: "request",
        scope_id: "request",
        limit_usd: 0.5,
        spent_usd: null,
        reserved_usd: null,
        remaining_usd: 0.5,
        window: null,
        resets_at: null,
        source: "default",
      },
      {
        budget: "session",
        scope_id: session.id,
        limit_usd: 2,
        spent_usd: 0,
        reserved_usd: 0.006,
        remaining_usd: 1.994,
        window: null,
        resets_at: null,
        source: "default",
      },
      {
        budget: "user_daily",
        scope_id: "alice",
        limit_usd: 5,
        spent_usd: 0.002,
        reserved_usd: 0.006,
        remaining_usd: 4.992,
        window,
        resets_at: window.end,
        source: "default",
      },
      {
        budget: "daily",
        scope_id: "deployment",
        limit_usd: 100,
        spent_usd: 0.002,
        reserved_usd: 0.006,
        remaining_usd: 99.992,
        window,
        resets_at: window.end,
        source: "default",
      },
    ]);

    // Without a session id, no session budget; bob sees his own (empty) user budget.
    const plain = (await (await app.get("/v1/usage")).json()) as UsageReport;
    expect(plain.budgets.map((b) => b.budget)).toEqual(["request", "user_daily", "daily"]);
    const bob = (await (await app.get("/v1/usage", BOB)).json()) as UsageReport;
    expect(bob.budgets.find((b) => b.budget === "user_daily")).toMatchObject({
      scope_id: "bob",
      spent_usd: 0,
    });

    // Another user's session, a malformed id and no key.
    expect((await app.get(`/v1/usage?session_id=${session.id}`, BOB)).status).toBe(404);
    expect((await app.get("/v1/usage?session_id=nope")).status).toBe(404);
    expect((await app.get("/v1/usage", null)).status).toBe(401);
    await budgets.close();
    await app.close();
  });

  it("shows per-user overrides, and an empty list when no budget applies", async () => {
    await store.setBudgetOverride("alice", "user_daily", 1.25);
    const budgets = BudgetService.fromConfig(loadConfig({ BUDGET_USER_DAILY_USD: "5" }), {
      catalog,
      store,
      logger,
    });
    const app = appFor(store, budgets);
    const alice = (await (await app.get("/v1/usage")).json()) as UsageReport;
    expect(alice.budgets).toEqual([
      expect.objectContaining({ budget: "user_daily", limit_usd: 1.25, source: "override" }),
    ]);
    await store.setBudgetOverride("bob", "user_daily", null);
    expect(((await (await app.get("/v1/usage", BOB)).json()) as UsageReport).budgets).toEqual([]);
    await store.deleteBudgetOverride("alice", "user_daily");
    await store.deleteBudgetOverride("bob", "user_daily");
    await budgets.close();
    await app.close();

    const none = appFor(store, undefined);
    expect(await (await none.get("/v1/usage")).json()).toMatchObject({
      object: "usage",
      user_id: "alice",
      mode: "disabled",
      budgets: [],
    });
    await none.close();
  });
});

const pgUrl = requirePostgresSync();
const redisUrl = requireRedisSync();

(pgUrl && redisUrl ? describe : describe.skip)("GET /v1/usage on Redis + Postgres", () => {
  it("reports the counters every replica shares", async () => {
    const db = await createTestDatabase(pgUrl!);
    const store = await openStore({
      DATABASE_URL: db.url,
      DATABASE_POOL_MAX: 2,
      DATA_DIR: "unused",
    });
    const redis = createRedis(redisUrl!, logger);
    await new Promise<void>((r) => redis.once("ready", () => r()));
    const keyTag = `budget-test-${randomBytes(6).toString("hex")}`;
    const replica = new BudgetService({
      limits: { userDailyUsd: 3 },
      catalog,
      store,
      logger,
      redis,
      keyTag,
    });
    const served = new BudgetService({
      limits: { userDailyUsd: 3 },
      catalog,
      store,
      logger,
      redis,
      keyTag,
    });
    try {
      const r = await replica.reserve({
        requestId: "req_r",
        userId: "alice",
        model: "claude-sonnet-4-6",
        inputTokensEstimate: 2000,
        maxTokens: 2000,
      });
      if (!r.ok) throw r.error;
      const app = appFor(store, served);
      const body = (await (await app.get("/v1/usage")).json()) as UsageReport;
      expect(body.mode).toBe("redis");
      expect(body.budgets).toEqual([
        expect.objectContaining({
          budget: "user_daily",
          spent_usd: 0,
          reserved_usd: 0.036,
          remaining_usd: 2.964,
        }),
      ]);
      await replica.settle(r.reservation, 0.01);
      const after = (await (await app.get("/v1/usage")).json()) as UsageReport;
      expect(after.budgets[0]).toMatchObject({ spent_usd: 0.01, reserved_usd: 0 });
      await app.close();
    } finally {
      await replica.close();
      await served.close();
      await redis.quit();
      await store.close();
      await db.drop();
    }
  });
});
