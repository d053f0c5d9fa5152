/**
 * Redis goes away under load and comes back: the real service (real Redis behind a TCP proxy
 * this test controls, real Postgres, the fake Anthropic API) keeps answering every request while
 * Redis is unreachable (cache bypassed, rate limits in memory, budgets held in process), then
 * returns to Redis by itself: cache HITs again, the limiter's and the budgets' shared counters
 * move again, spend settled during the outage is replayed into Redis exactly once, and no budget
 * hold is left behind.
 *
 * Two outages: Redis stopped (connections drop, reconnects refused) and a network partition
 * (connections stay open, nothing answers, no reset: the harder case for a client).
 *
 * The shared Redis itself is never stopped, flushed or paused; keys are per run (unique users).
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";
import { startTcpProxy, targetOf, type TcpProxy } from "../support/tcp-proxy";
import { utcDay } from "../../app/src/budget/budgets";
import { microsCeil } from "../../app/src/budget/engine";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USERS = {
  cut: { user: `faults-redis-cut-${run}`, key: `faults-redis-cut-key-${run}` },
  partition: { user: `faults-redis-part-${run}`, key: `faults-redis-part-key-${run}` },
};
type Kind = keyof typeof USERS;
const MODEL = "claude-haiku-4-5";
const CLIENTS = 20;

interface Outcome {
  at: number;
  ms: number;
  status: number;
  cache: string | null;
  requestId: string | null;
  stream: boolean;
  error?: string;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const latency = (os: Outcome[]) => {
  const ms = os.map((o) => o.ms);
  return `n=${ms.length} p50 ${percentile(ms, 50)} ms p99 ${percentile(ms, 99)} ms`;
};

const report = (line: string) => process.stderr.write(`[faults:redis] ${line}\n`);

async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * CLIENTS clients sending back to back until stopped: one request in four the hot (cacheable)
 * prompt, one in five a stream, the rest unique prompts (upstream calls that are charged).
 */
function startLoad(
  send: (prompt: string, stream: boolean) => Promise<Outcome>,
  hot: string,
  tag: string,
) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  let seq = 0;
  const clients = Array.from({ length: CLIENTS }, async (_, c) => {
    while (!stopped) {
      const n = seq++;
      const isHot = n % 4 === 0;
      outcomes.push(await send(isHot ? hot : `${tag} ${c} ${n}`, !isHot && n % 5 === 0));
    }
  });
  return {
    outcomes,
    async stop() {
      stopped = true;
      await Promise.all(clients);
    },
  };
}

(pg && redisUrl ? describe : describe.skip)(
  "Redis outage under load (real Redis behind a proxy)",
  () => {
    let fake: FakeAnthropic;
    let proxy: TcpProxy;
    let direct: Redis;
    let service: RunningService;
    let dbUrl: string;
    let drop: (() => Promise<void>) | undefined;
    let load: ReturnType<typeof startLoad> | undefined;

    beforeAll(async () => {
      fake = await startFakeAnthropic({ behavior: { latencyMs: 5 }, maxRecorded: 0 });
      const db = await createTestDatabase(pg!);
      drop = db.drop;
      dbUrl = db.url;
      proxy = await startTcpProxy(targetOf(redisUrl!, 6379));
      direct = new Redis(redisUrl!, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await direct.connect();
    }, 30_000);

    // A service per outage, so its counters (degraded holds, replays) are this outage's alone.
    beforeEach(async () => {
      service = await startService({
        DATABASE_URL: dbUrl,
        REDIS_URL: proxy.url(redisUrl!),
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
        AGENT_API_KEYS: Object.values(USERS)
          .map((u) => `${u.user}:${u.key}`)
          .join(","),
        // Limits that load never reaches: this test is about availability, not refusals.
        BUDGET_USER_DAILY_USD: "100",
        RATE_LIMIT_RPM: "1000000",
        RATE_LIMIT_TPM: "100000000",
        BATCH_POLLER_ENABLED: "false",
      });
      await until("the service's Redis connection", () => service.deps.redis?.status === "ready");
    }, 30_000);

    afterEach(async () => {
      // Heal first: a failed test must not leave clients stuck behind the outage.
      await proxy.restore();
      await load?.stop();
      load = undefined;
      await service?.close();
    });

    afterAll(async () => {
      await proxy?.close();
      await fake?.close();
      direct?.disconnect();
      await drop?.();
    });

    const post = async (
      who: { key: string },
      prompt: string,
      stream: boolean,
    ): Promise<Outcome> => {
      const at = Date.now();
      try {
        const res = await fetch(`${service.url}/v1/messages`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-api-key": who.key,
            "anthropic-version": "2023-06-01",
          },
          body: JSON.stringify({
            model: MODEL,
            max_tokens: 64,
            stream,
            messages: [{ role: "user", content: prompt }],
          }),
        });
        const text = await res.text();
        const ok =
          res.status === 200 &&
          (stream
            ? /event: message_stop/.test(text) && !/event: error/.test(text)
            : (JSON.parse(text) as { type: string }).type === "message");
        return {
          at,
          ms: Date.now() - at,
          status: ok ? 200 : res.status || 0,
          cache: res.headers.get("x-cache"),
          requestId: res.headers.get("request-id"),
          stream,
          ...(ok ? {} : { error: text.slice(0, 300) }),
        };
      } catch (err) {
        return {
          at,
          ms: Date.now() - at,
          status: 0,
          cache: null,
          requestId: null,
          stream,
          error: (err as Error).message,
        };
      }
    };

    /** Reservation records in Redis still holding on `windowKey` (for a useful failure message). */
    async function heldOn(windowKey: string): Promise<string[]> {
      const held: string[] = [];
      for (const id of await direct.zrange("{budget}:deadlines", "0", "-1")) {
        const rec = await direct.hgetall(`{budget}:res:${id}`);
        if (rec[`k:${windowKey}`] !== undefined) held.push(`${id} ${rec.st} ${rec.amt}`);
      }
      return held;
    }

    it.each<[Kind, string]>([
      ["cut", "Redis stopped (connections dropped, reconnects refused)"],
      ["partition", "a network partition (connections open, nothing answers)"],
    ])(
      "%s: serves every request through %s, then returns to Redis by itself",
      async (kind) => {
        const who = USERS[kind];
        const budgetKey = `{budget}:u:${encodeURIComponent(who.user)}:${utcDay(Date.now()).id}`;
        const limiterKey = `rl:rpm:${who.user}`;
        const HOT = `hot prompt ${kind} ${run}`;
        // Baseline: the hot prompt is cached in Redis, and both shared counters live there.
        expect((await post(who, HOT, false)).cache).toBe("MISS");
        await until(
          "the first cache HIT",
          async () => (await post(who, HOT, false)).cache === "HIT",
        );
        expect(Number(await direct.get(limiterKey))).toBeGreaterThan(0);
        expect(await direct.hexists(budgetKey, "seeded")).toBe(1);
        expect(service.deps.budgets!.mode).toBe("redis");

        load = startLoad((prompt, stream) => post(who, prompt, stream), HOT, `load ${kind} ${run}`);
        const { outcomes } = load;
        await sleep(1000);

        const outageAt = Date.now();
        if (kind === "cut") await proxy.cut();
        else proxy.blackhole();
        const noticed = await until(
          "the service to notice",
          () => (service.deps.redis?.status !== "ready" ? Date.now() : undefined),
          10_000,
        );
        // Degraded mode: budgets counted in process, the limiter on its in-memory insurance.
        await until(
          "budgets in degraded mode",
          () => service.deps.budgets!.mode === "degraded",
          5000,
        );
        const ready = await fetch(`${service.url}/ready`);
        const readyBody = (await ready.json()) as { down: string[] };
        // The service keeps answering while Redis is away: a good number of requests sent during the
        // outage are answered before it ends (a dependency that hangs would stall them all).
        const answeredDuring = () => outcomes.filter((o) => o.at >= outageAt).length;
        await until("answers while Redis is away", () => answeredDuring() >= 2 * CLIENTS, 20_000);
        await sleep(Math.max(0, outageAt + 3000 - Date.now()));
        const duringOutage = answeredDuring();
        const limiterBefore = Number(await direct.get(limiterKey));
        const stats = service.deps.budgets!.stats;
        const redisHolds = () => stats.reserved - stats.degradedReservations;
        const holdsBefore = redisHolds();

        const restoredAt = Date.now();
        await proxy.restore();
        // Recovery: ioredis reconnects on its own (backoff up to 2 s); the service needs no help.
        const firstHit = await until("a cache HIT after restore", () =>
          outcomes.find((o) => o.at >= restoredAt && o.cache === "HIT"),
        );
        const limiterBack = await until("the limiter to count in Redis again", async () =>
          Number(await direct.get(limiterKey)) > limiterBefore ? Date.now() : undefined,
        );
        const budgetBack = await until("budget holds taken in Redis again", () =>
          redisHolds() > holdsBefore ? Date.now() : undefined,
        );
        await sleep(500);
        await load.stop();

        const failed = outcomes.filter((o) => o.status !== 200);
        expect(failed).toEqual([]);
        // While Redis was away nothing came from its cache (there is no in-process stand-in for it).
        expect(
          outcomes.filter((o) => o.at > noticed && o.at < restoredAt && o.cache === "HIT"),
        ).toEqual([]);
        expect(service.deps.budgets!.mode).toBe("redis");
        expect(stats.degradedReservations).toBeGreaterThan(0);

        // Spend settled in process during the outage was replayed into Redis, each settlement once:
        // Redis' counter equals the ledger (haiku's prices make every cost a whole number of µ$).
        // And no hold is left behind, not even of a reserve that ran in Redis but whose answer was
        // lost with the connection (or that ran twice: sent, then resent after the reconnect).
        await until("budget replay", () => service.deps.budgets!.pendingSettles === 0, 10_000);
        await service.deps.usage.flush();
        const rows = await service.deps.store.listUsage({ userId: who.user });
        const ledgerMicros = rows.reduce((sum, r) => sum + microsCeil(r.costUsd), 0);
        const released = await until(
          "holds released",
          async () => Number(await direct.hget(budgetKey, "reserved")) === 0,
          10_000,
        ).catch(() => false);
        const [spent, reserved] = await direct.hmget(budgetKey, "spent", "reserved");
        expect({
          reserved: Number(reserved),
          held: released ? [] : await heldOn(budgetKey),
        }).toEqual({ reserved: 0, held: [] });
        expect(Number(spent)).toBe(ledgerMicros);
        // Every answered request has its ledger line (cache hits as "cached", at no cost).
        const byId = new Set(rows.map((r) => r.requestId));
        expect(outcomes.filter((o) => !byId.has(o.requestId!))).toEqual([]);

        const phase = (from: number, to: number) =>
          outcomes.filter((o) => o.at >= from && o.at < to);
        report(
          `${kind}: ${outcomes.length} requests from ${CLIENTS} clients, ${failed.length} failed; ${duringOutage} sent during the ` +
            `${restoredAt - outageAt} ms outage (noticed after ${noticed - outageAt} ms; ${stats.degradedReservations} budget holds in process); ` +
            `/ready during it: ${ready.status} down=${JSON.stringify(readyBody.down)}`,
        );
        report(
          `${kind}: latency before ${latency(phase(0, outageAt))}; during ${latency(phase(outageAt, restoredAt))}; ` +
            `after restore ${latency(phase(restoredAt, Infinity))}`,
        );
        report(
          `${kind}: recovery after restore: first cache HIT on a request sent ${firstHit.at - restoredAt} ms after, ` +
            `limiter counting in Redis again <= ${limiterBack - restoredAt} ms, budget holds in Redis again <= ${budgetBack - restoredAt} ms; ` +
            `${stats.replayed} settlements replayed; Redis spent ${spent} µ$ = ledger ${ledgerMicros} µ$, reserved ${reserved} µ$`,
        );
      },
      60_000,
    );
  },
);
