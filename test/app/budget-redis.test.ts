/**
 * What only the Redis-backed budgets do: recover counters from Postgres after Redis loses them,
 * and keep serving (degraded, in process) while Redis is unreachable, then hand the spend back.
 */
import net from "node:net";
import { randomBytes } from "node:crypto";
import pino from "pino";
import type { Redis } from "ioredis";
import { createRedis } from "../../app/src/bootstrap";
import { AlertDispatcher, type BudgetAlert } from "../../app/src/budget/alerts";
import {
  BudgetService,
  utcDay,
  type BudgetServiceOptions,
  type Reservation,
} from "../../app/src/budget/budgets";
import { ModelCatalog } from "../../app/src/llm/models";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";

const pgUrl = requirePostgresSync();
const redisUrl = requireRedisSync();
const logger = pino({ level: "silent" });
const catalog = ModelCatalog.load();
const HAIKU = "claude-haiku-4-5";
const DAY = 86_400_000;

const costOf = (outputTokens: number) =>
  catalog.costUsd(HAIKU, { input_tokens: 1000, output_tokens: outputTokens });
const req = (userId: string, maxTokens = 1000) => ({
  requestId: `req_${randomBytes(6).toString("hex")}`,
  userId,
  model: HAIKU,
  inputTokensEstimate: 1000,
  maxTokens,
});
function ok(r: Awaited<ReturnType<BudgetService["reserve"]>>): Reservation {
  if (!r.ok) throw new Error(`expected a reservation, got ${r.error.message}`);
  return r.reservation;
}
const userDaily = async (s: BudgetService, u: string) =>
  (await s.usageFor(u)).budgets.find((b) => b.budget === "user_daily")!;

/** Waits for a condition that depends on reconnects; fails after `ms` rather than hanging. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A TCP relay to Redis that the test can cut and restore, as a network partition would. */
class Relay {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: URL) {}
  async start() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(Number(this.target.port || 6379), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

(pgUrl && redisUrl ? describe : describe.skip)("budgets on Redis", () => {
  let store: Store;
  let drop: () => Promise<void>;
  const clients: Redis[] = [];
  const services: BudgetService[] = [];
  let clock = 0;
  const now = () => clock;

  beforeAll(async () => {
    const db = await createTestDatabase(pgUrl!);
    drop = db.drop;
    store = await openStore({ DATABASE_URL: db.url, DATABASE_POOL_MAX: 4, DATA_DIR: "unused" });
  }, 60_000);
  let relay: Relay | undefined;
  afterAll(async () => {
    await Promise.all(services.map((s) => s.close()));
    // QUIT while connected: disconnect() leaves ioredis waiting on a socket that may never close.
    await Promise.all(
      clients.map((c) =>
        c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect(),
      ),
    );
    await relay?.stop();
    await store?.close();
    await drop?.();
  });
  beforeEach(() => {
    clock = utcDay(Date.now()).start + DAY / 2;
  });

  async function connect(url = redisUrl!): Promise<Redis> {
    const redis = createRedis(url, logger);
    clients.push(redis);
    await until("redis ready", () => redis.status === "ready");
    return redis;
  }
  function service(redis: Redis, tag: string, options: Partial<BudgetServiceOptions> = {}) {
    const s = new BudgetService({
      limits: { userDailyUsd: 0.1 },
      catalog,
      store,
      logger,
      redis,
      keyTag: tag,
      now,
      ...options,
    });
    services.push(s);
    return s;
  }
  const newTag = () => `budget-test-${randomBytes(6).toString("hex")}`;

  it("re-seeds a window from the Postgres ledger when its Redis key disappears, without repeating alerts", async () => {
    const redis = await connect();
    const tag = newTag();
    const alerts: BudgetAlert[] = [];
    const dispatcher = new AlertDispatcher({ logger });
    dispatcher.onAlert((a) => alerts.push(a));
    const s = service(redis, tag, { alerts: dispatcher, limits: { userDailyUsd: 0.02 } });
    const u = `seed-${randomBytes(4).toString("hex")}`;
    // The route records each settled request in the ledger; here the test does.
    for (const out of [1000, 1000]) {
      const cost = costOf(out);
      await s.settle(ok(await s.reserve(req(u))), cost);
      await store.recordUsage([
        {
          requestId: "r",
          userId: u,
          model: HAIKU,
          inputTokens: 1000,
          outputTokens: out,
          cacheCreationInputTokens: 0,
          cacheReadInputTokens: 0,
          costUsd: cost,
          status: "ok",
          createdAt: new Date(clock).toISOString(),
        },
      ]);
    }
    expect((await userDaily(s, u)).spent_usd).toBeCloseTo(0.012, 9);
    expect(alerts.map((a) => a.threshold)).toEqual([50]);
    const held = ok(await s.reserve(req(u)));

    const keys = await redis.keys(`{${tag}}:u:*`);
    expect(keys).toHaveLength(1);
    await redis.del(keys[0]!); // eviction, FLUSHALL or a fresh Redis
    const after = await userDaily(s, u);
    expect(after.spent_usd).toBeCloseTo(0.012, 9); // not $0: seeded from the ledger
    expect(after.reserved_usd).toBe(0); // the hold in flight was lost with the key...
    await s.settle(held, costOf(1000)); // ...but its spend still counts when it settles
    expect((await userDaily(s, u)).spent_usd).toBeCloseTo(0.018, 9);
    expect(await redis.ttl(keys[0]!)).toBeGreaterThan(DAY / 1000);
    // 50 % was alerted before the key vanished: re-seeding marks it, so only 80 % is new.
    expect(alerts.map((a) => a.threshold)).toEqual([50, 80]);
  });

  it("keeps serving while Redis is unreachable, within a share of what remained, and hands the spend back", async () => {
    relay = new Relay(new URL(redisUrl!));
    await relay.start();
    const direct = await connect();
    // Through the relay, but to the same database (and credentials) as TEST_REDIS_URL names.
    const via = new URL(redisUrl!);
    via.hostname = "127.0.0.1";
    via.port = String(relay.port);
    const redis = await connect(via.toString());
    expect(redis.options.db).toBe(direct.options.db);
    const tag = newTag();
    const s = service(redis, tag, { degradedShare: 0.5 });
    const u = `down-${randomBytes(4).toString("hex")}`;
    await s.settle(ok(await s.reserve(req(u))), costOf(1000)); // $0.006 through Redis
    const straddling = ok(await s.reserve(req(u))); // held in Redis when it goes away
    expect(s.mode).toBe("redis");

    await relay.stop();
    await until("redis to drop", () => redis.status !== "ready");
    expect(s.mode).toBe("degraded");
    // Requests keep succeeding. Known spend and holds: $0.012 of $0.10; this replica may use half the rest.
    let spent = 0;
    let served = 0;
    for (;;) {
      const r = await s.reserve(req(u));
      if (!r.ok) {
        expect(r.error.details).toMatchObject({ budget: "user_daily" });
        break;
      }
      served++;
      const cost = costOf(1000);
      await s.settle(r.reservation, cost);
      spent += cost;
    }
    expect(served).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual((0.1 - 0.012) * 0.5 + 1e-12);
    expect((await s.usageFor(u)).mode).toBe("degraded");
    await s.settle(straddling, costOf(500)); // Redis is down: queued for replay
    expect(s.pendingSettles).toBe(served + 1);

    await relay.start();
    await until("redis to reconnect", () => redis.status === "ready");
    await s.usageFor(u); // any successful Redis call starts the replay
    await until("the replay", () => s.pendingSettles === 0);
    const [spentMicros, reserved] = await direct.hmget(
      `{${tag}}:u:${u}:${utcDay(clock).id}`,
      "spent",
      "reserved",
    );
    expect(Number(spentMicros) / 1e6).toBeCloseTo(0.006 + costOf(500) + spent, 9);
    expect(Number(reserved)).toBe(0);
    expect(s.mode).toBe("redis");
    // Replays are idempotent: the straddling hold's record says settled.
    expect(await direct.hget(`{${tag}}:res:${straddling.id}`, "st")).toBe("settled");
  });

  it("cleans up after itself: records of settled holds expire, the reclaim queue empties", async () => {
    const redis = await connect();
    const tag = newTag();
    const s = service(redis, tag);
    const u = `tidy-${randomBytes(4).toString("hex")}`;
    const r = ok(await s.reserve(req(u)));
    expect(await redis.zcard(`{${tag}}:deadlines`)).toBe(1);
    await s.settle(r, costOf(10));
    expect(await redis.zcard(`{${tag}}:deadlines`)).toBe(0);
    const ttl = await redis.ttl(`{${tag}}:res:${r.id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3600);
  });
});
