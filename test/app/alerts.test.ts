/**
 * Budget alerts: delivery to a webhook (a local HTTP server), and "exactly once per threshold
 * per budget window" across replicas sharing Redis.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import pino from "pino";
import type { Redis } from "ioredis";
import { createRedis } from "../../app/src/bootstrap";
import { AlertDispatcher, alertPayload, type BudgetAlert } from "../../app/src/budget/alerts";
import { BudgetService, utcDay } from "../../app/src/budget/budgets";
import { ModelCatalog } from "../../app/src/llm/models";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";

const logger = pino({ level: "silent" });
const DAY = 86_400_000;

interface Received {
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
}

/** A webhook receiver answering each POST with the next status in `plan` (then 200), or never. */
async function receiver(plan: Array<number | "hang"> = []) {
  const received: Received[] = [];
  const hanging: http.ServerResponse[] = [];
  let arrived: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      received.push({ body: JSON.parse(raw), headers: req.headers });
      arrived?.();
      const step = plan.shift() ?? 200;
      if (step === "hang") return void hanging.push(res);
      res.writeHead(step, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    hanging,
    /** Resolves once `n` requests have arrived. */
    arrivals(n: number) {
      return new Promise<void>((resolve) => {
        const check = () => (received.length >= n ? resolve() : (arrived = check));
        check();
      });
    },
    close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const alert = (threshold: 50 | 80 | 100 = 80, scopeId = "alice"): BudgetAlert => ({
  budget: "user_daily",
  scopeId,
  threshold,
  spentUsd: 8.000001,
  limitUsd: 10,
  window: { start: "2030-01-15T00:00:00.000Z", end: "2030-01-16T00:00:00.000Z" },
  degraded: false,
  at: "2030-01-15T12:00:00.000Z",
});

describe("AlertDispatcher", () => {
  it("logs, tells listeners, and POSTs the alert as JSON", async () => {
    const hook = await receiver();
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const d = new AlertDispatcher({ logger: log, webhookUrl: hook.url });
    const seen: BudgetAlert[] = [];
    d.onAlert(() => {
      throw new Error("a broken listener must not stop the others");
    });
    d.onAlert((a) => seen.push(a));
    d.emit(alert());
    await d.idle();
    expect(seen).toEqual([alert()]);
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]!.body).toEqual({
      type: "budget_alert",
      id: "user_daily:alice:2030-01-15:80",
      budget: "user_daily",
      scope_id: "alice",
      threshold: 80,
      spent_usd: 8.000001,
      limit_usd: 10,
      window: { start: "2030-01-15T00:00:00.000Z", end: "2030-01-16T00:00:00.000Z" },
      resets_at: "2030-01-16T00:00:00.000Z",
      degraded: false,
      at: "2030-01-15T12:00:00.000Z",
    });
    expect(hook.received[0]!.headers["content-type"]).toBe("application/json");
    const event = lines.map((l) => JSON.parse(l)).find((l) => l.event === "budget_alert");
    expect(event).toMatchObject({
      budget: "user_daily",
      scope_id: "alice",
      threshold: 80,
      limit_usd: 10,
    });
    expect(d.stats).toMatchObject({ emitted: 1, delivered: 1, failed: 0 });
    await d.close();
    await hook.close();
  });

  it("retries after a 500 (and a dropped connection) with the same idempotency key", async () => {
    const hook = await receiver([500, 503]);
    const d = new AlertDispatcher({ logger, webhookUrl: hook.url, baseDelayMs: 5 });
    d.emit(alert());
    await d.idle();
    expect(hook.received).toHaveLength(3);
    expect(new Set(hook.received.map((r) => r.headers["idempotency-key"]))).toEqual(
      new Set(["user_daily:alice:2030-01-15:80"]),
    );
    expect(d.stats).toMatchObject({ delivered: 1, attempts: 3, failed: 0 });
    await d.close();
    await hook.close();
  });

  it("gives up on a 4xx at once and after maxAttempts on 5xx", async () => {
    const hook = await receiver([400, 500, 500, 500]);
    const d = new AlertDispatcher({ logger, webhookUrl: hook.url, baseDelayMs: 1, maxAttempts: 3 });
    d.emit(alert(50));
    await d.idle();
    d.emit(alert(80));
    await d.idle();
    expect(hook.received.map((r) => r.body.threshold)).toEqual([50, 80, 80, 80]);
    expect(d.stats).toMatchObject({ delivered: 0, failed: 2 });
    await d.close();
    await hook.close();
  });

  it("never blocks the caller on a slow webhook, and bounds its queue", async () => {
    const hook = await receiver(["hang"]);
    const d = new AlertDispatcher({ logger, webhookUrl: hook.url, concurrency: 1, maxQueue: 2 });
    for (const t of [50, 80, 100] as const) for (const scope of ["a", "b"]) d.emit(alert(t, scope)); // returns at once
    await hook.arrivals(1);
    // One POST hangs in flight; one alert waits; the other four were dropped, oldest first.
    expect(d.pending).toBe(2);
    expect(d.stats.dropped).toBe(4);
    expect(hook.hanging).toHaveLength(1);
    await d.close(10);
    await hook.close();
  });
});

const pgUrl = requirePostgresSync();
const redisUrl = requireRedisSync();

(pgUrl && redisUrl ? describe : describe.skip)("budget alerts across replicas", () => {
  let store: Store;
  let drop: () => Promise<void>;
  const clients: Redis[] = [];
  beforeAll(async () => {
    const db = await createTestDatabase(pgUrl!);
    drop = db.drop;
    store = await openStore({ DATABASE_URL: db.url, DATABASE_POOL_MAX: 4, DATA_DIR: "unused" });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    await store?.close();
    await drop?.();
  });

  it("fire exactly once per threshold per window with three replicas, each posting to the webhook", async () => {
    const hook = await receiver([500]); // and the first delivery fails once
    const catalog = ModelCatalog.load();
    const tag = `budget-test-${randomBytes(6).toString("hex")}`;
    let clock = utcDay(Date.now()).start + DAY / 2;
    const replicas: Array<{ budgets: BudgetService; alerts: AlertDispatcher }> = [];
    for (let i = 0; i < 3; i++) {
      const redis = createRedis(redisUrl!, logger);
      clients.push(redis);
      await new Promise<void>((r) => redis.once("ready", () => r()));
      const alerts = new AlertDispatcher({ logger, webhookUrl: hook.url, baseDelayMs: 5 });
      const budgets = new BudgetService({
        limits: { userDailyUsd: 0.06, dailyUsd: 0.12 },
        catalog,
        store,
        logger,
        redis,
        keyTag: tag,
        alerts,
        now: () => clock,
      });
      replicas.push({ budgets, alerts });
    }
    const counted: number[] = [];
    for (const r of replicas) r.budgets.onAlert((a) => counted.push(a.threshold));

    // Each request uses its whole worst case ($0.006), so spend lands on 50 %, 80 % and 100 % exactly.
    const runDay = async () =>
      Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const { budgets } = replicas[i % 3]!;
          await new Promise((r) => setTimeout(r, i % 4));
          const res = await budgets.reserve({
            requestId: `req_${i}`,
            userId: "carol",
            model: "claude-haiku-4-5",
            inputTokensEstimate: 1000,
            maxTokens: 1000,
          });
          if (res.ok) await budgets.settle(res.reservation, res.reservation.reservedUsd);
        }),
      );
    await runDay();
    await Promise.all(replicas.map((r) => r.alerts.idle()));
    const delivered = () =>
      hook.received
        .filter((r) => r.headers["idempotency-key"])
        .map((r) => `${r.body.budget}:${r.body.threshold}`);
    // user_daily: 10 requests of $0.006 reach $0.06 (50/80/100 %); daily ($0.12): 50 % only.
    const expected = ["daily:50", "user_daily:100", "user_daily:50", "user_daily:80"];
    expect([...new Set(delivered())].sort()).toEqual(expected);
    expect(hook.received).toHaveLength(expected.length + 1); // one alert was retried after the 500
    expect(counted.sort((a, b) => a - b)).toEqual([50, 50, 80, 100]);

    // The next UTC day is a new window: each threshold once more.
    clock += DAY;
    await runDay();
    await Promise.all(replicas.map((r) => r.alerts.idle()));
    expect(hook.received).toHaveLength(2 * expected.length + 1);
    const days = new Set(hook.received.map((r) => (r.body.window as { start: string }).start));
    expect(days.size).toBe(2);
    for (const r of replicas) await r.budgets.close();
    await hook.close();
  });

  it("settle returns while the webhook hangs", async () => {
    const hook = await receiver(["hang"]);
    const redis = createRedis(redisUrl!, logger);
    clients.push(redis);
    await new Promise<void>((r) => redis.once("ready", () => r()));
    const alerts = new AlertDispatcher({ logger, webhookUrl: hook.url });
    const budgets = new BudgetService({
      limits: { userDailyUsd: 0.01 },
      catalog: ModelCatalog.load(),
      store,
      logger,
      redis,
      keyTag: `budget-test-${randomBytes(6).toString("hex")}`,
      alerts,
    });
    const res = await budgets.reserve({
      requestId: "req_slow",
      userId: "dave",
      model: "claude-haiku-4-5",
      inputTokensEstimate: 1000,
      maxTokens: 1000,
    });
    if (!res.ok) throw res.error;
    await budgets.settle(res.reservation, 0.006); // crosses 50 %: the webhook is called and never answers
    await hook.arrivals(1);
    expect(alerts.pending).toBe(1);
    expect(hook.received[0]!.body).toMatchObject({
      budget: "user_daily",
      scope_id: "dave",
      threshold: 50,
    });
    // And the next request is not held up either.
    expect(
      (
        await budgets.reserve({
          requestId: "req_next",
          userId: "dave",
          model: "claude-haiku-4-5",
          inputTokensEstimate: 10,
          maxTokens: 10,
        })
      ).ok,
    ).toBe(true);
    await alerts.close(10);
    await budgets.close();
    await hook.close();
  });

  it("payloads say which budget, scope, threshold, spend, limit and window", () => {
    expect(Object.keys(alertPayload(alert())).sort()).toEqual(
      [
        "at",
        "budget",
        "degraded",
        "id",
        "limit_usd",
        "resets_at",
        "scope_id",
        "spent_usd",
        "threshold",
        "type",
        "window",
      ].sort(),
    );
  });
});
