/**
 * The batch poller across restarts and replicas: a batch left in progress by a stopped service is
 * finished by the next one on the same database; a lease held by a crashed replica blocks others
 * until it runs out; two replicas polling the same database process each batch exactly once
 * (embedded PGlite, and real PostgreSQL when it is reachable).
 */
import pino from "pino";
import { BatchService } from "../../app/src/batch/service";
import { AnthropicBatchUpstream } from "../../app/src/batch/upstream";
import type { UsageRecorder } from "../../app/src/budget/ledger";
import { ModelCatalog } from "../../app/src/llm/models";
import { OfflineProvider } from "../../app/src/llm/offline";
import { openStore } from "../../app/src/store";
import type { Store, UsageEntry } from "../../app/src/store/types";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync } from "../support/services";

const ALICE = { user: "alice", key: "alice-key-0001" };
const QUIET = {
  METRICS_ENABLED: "false",
  RATE_LIMIT_RPM: "0",
  RATE_LIMIT_TPM: "0",
  AGENT_API_KEYS: `${ALICE.user}:${ALICE.key}`,
};
const catalog = ModelCatalog.load();
const silent = pino({ level: "silent" });

async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createBatch(service: RunningService, n: number, tag = "q"): Promise<string> {
  const res = await fetch(`${service.url}/v1/batches`, {
    method: "POST",
    headers: { "x-api-key": ALICE.key, "content-type": "application/json" },
    body: JSON.stringify({
      requests: Array.from({ length: n }, (_, i) => ({
        custom_id: `${tag}${i}`,
        params: {
          model: "claude-haiku-4-5",
          max_tokens: 16,
          messages: [{ role: "user", content: `${tag} number ${i}` }],
        },
      })),
    }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

const resultFetches = (fake: FakeAnthropic) =>
  fake.requests
    .filter((r) => r.method === "GET" && r.path.endsWith("/results"))
    .map((r) => r.path.split("/")[4]);

const pg = requirePostgresSync();

/**
 * Where the database lives across the restart: PostgreSQL when reachable (each service opens its
 * own pool, as separate processes would), and embedded PGlite kept open across the two services
 * (a file-backed PGlite takes seconds to initialise; it is the same SQL either way).
 */
const restartBackends: Array<{
  name: string;
  setup: () => Promise<{ env: Record<string, string>; store?: Store; cleanup(): Promise<void> }>;
}> = [
  {
    name: "embedded PGlite",
    setup: async () => {
      const store = await openStore({ DATA_DIR: "memory://", DATABASE_POOL_MAX: 1 });
      return { env: { DATA_DIR: "memory://" }, store, cleanup: () => store.close() };
    },
  },
];
if (pg) {
  restartBackends.push({
    name: "PostgreSQL",
    setup: async () => {
      const db = await createTestDatabase(pg);
      return { env: { DATABASE_URL: db.url }, cleanup: () => db.drop() };
    },
  });
}

describe.each(restartBackends)("a restart resumes unfinished batches ($name)", ({ setup }) => {
  let fake: FakeAnthropic;
  let backend: Awaited<ReturnType<(typeof restartBackends)[number]["setup"]>>;
  beforeAll(async () => {
    fake = await startFakeAnthropic({ batchDelayMs: 100 });
    backend = await setup();
  });
  afterAll(async () => {
    await fake.close();
    await backend.cleanup();
  });

  it("finishes, in a new service on the same database, a batch the stopped one left in progress", async () => {
    const env = {
      ...QUIET,
      ...backend.env,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      BATCH_POLL_INTERVAL_MS: "50",
    };
    const options = backend.store ? { store: backend.store } : {};
    // The first service polls rarely, so the batch is still in progress (409) whatever the load.
    const first = await startService(
      { ...env, BATCH_POLLER_ENABLED: "false", BATCH_POLL_INTERVAL_MS: "3600000" },
      options,
    );
    const id = await createBatch(first, 3);
    const early = await fetch(`${first.url}/v1/batches/${id}/results`, {
      headers: { "x-api-key": ALICE.key },
    });
    expect(early.status).toBe(409);
    await first.close();
    expect(resultFetches(fake)).toEqual([]);

    const second = await startService(env, options);
    try {
      // Time passes: the batch falls due.
      expect(await second.deps.store.updateBatch(id, { nextPollInMs: 0 })).toBe(true);
      // Read through the store, not the route: the route would poll on read, and this is about the poller.
      const ended = await waitFor(async () => {
        const b = await second.deps.store.getBatch(id);
        return b?.status === "ended" ? b : undefined;
      });
      expect(ended.counts).toMatchObject({ succeeded: 3, processing: 0 });
      const lines = (
        await (
          await fetch(`${second.url}/v1/batches/${id}/results`, {
            headers: { "x-api-key": ALICE.key },
          })
        ).text()
      )
        .trim()
        .split("\n");
      expect(lines).toHaveLength(3);
      await second.deps.usage.flush();
      const ledger = (await second.deps.store.listUsage({ userId: ALICE.user })).filter(
        (e) => e.kind === "batch",
      );
      expect(ledger).toHaveLength(3);
      expect(resultFetches(fake)).toHaveLength(1);
    } finally {
      await second.close();
    }
  });
});

describe("a lease held by a crashed replica", () => {
  let fake: FakeAnthropic;
  let service: RunningService;
  beforeAll(async () => {
    fake = await startFakeAnthropic({ batchDelayMs: 0 });
    service = await startService({
      ...QUIET,
      DATA_DIR: "memory://",
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      BATCH_POLLER_ENABLED: "false",
      BATCH_POLL_INTERVAL_MS: "50",
    });
  });
  afterAll(async () => {
    await service.close();
    await fake.close();
  });

  it("keeps the batch from others until it runs out; then the batch is resumed", async () => {
    const id = await createBatch(service, 2);
    await sleep(60); // due
    const [held] = await service.deps.store.claimBatches("crashed-replica", {
      leaseMs: 1500,
      limit: 5,
      id,
    });
    expect(held?.id).toBe(id);
    const batches = service.deps.batches!;
    expect(await batches.tick()).toBe(0);
    // The crashed replica's late writes are refused once it no longer holds the lease.
    await sleep(1600);
    expect(await service.deps.store.updateBatch(id, { status: "ended" }, "crashed-replica")).toBe(
      false,
    );
    expect(await batches.tick()).toBe(1);
    const b = await service.deps.store.getBatch(id);
    expect(b).toMatchObject({ status: "ended", counts: { succeeded: 2 } });
  });

  it("gives up a submission interrupted by a crash, after its grace period, with errored results", async () => {
    const store = service.deps.store;
    const id = "11111111-2222-4333-8444-555555555555";
    await store.createBatch({
      id,
      userId: ALICE.user,
      status: "submitting",
      mode: "upstream",
      synthetic: false,
      reservedUsd: 0.5,
      nextPollInMs: 0, // the grace period is over
      requests: [
        { customId: "x", params: { model: "claude-haiku-4-5", max_tokens: 1, messages: [] } },
      ],
    });
    expect(await service.deps.batches!.tick()).toBe(1);
    const b = await store.getBatch(id);
    expect(b).toMatchObject({
      status: "ended",
      counts: { errored: 1 },
      error: expect.stringMatching(/interrupted/),
    });
  });
});

/** Counts ledger entries instead of writing them. */
class CountingLedger implements UsageRecorder {
  readonly entries: UsageEntry[] = [];
  readonly pending = 0;
  record(entry: UsageEntry) {
    this.entries.push(entry);
  }
  async flush() {}
  async close() {}
}

function replica(store: Store, fake: FakeAnthropic, owner: string, usage: CountingLedger) {
  return new BatchService({
    store,
    llm: new OfflineProvider(),
    upstream: new AnthropicBatchUpstream({
      apiKey: FAKE_API_KEY,
      baseURL: fake.url,
      timeoutMs: 10_000,
      maxRetries: 0,
    }),
    catalog,
    usage,
    logger: silent,
    pollIntervalMs: 10,
    promptCaching: true,
    timeoutMs: 10_000,
    owner,
  });
}

const backends: Array<{
  name: string;
  open: () => Promise<{
    env: Record<string, string>;
    stores: [Store, Store];
    cleanup(): Promise<void>;
  }>;
}> = [
  {
    name: "embedded PGlite (one database, two pollers)",
    open: async () => ({
      env: { DATA_DIR: "memory://" },
      stores: [] as never,
      cleanup: async () => {},
    }),
  },
];
if (pg) {
  backends.push({
    name: "PostgreSQL (two connection pools)",
    open: async () => {
      const db = await createTestDatabase(pg);
      const a = await openStore({ DATABASE_URL: db.url, DATABASE_POOL_MAX: 4, DATA_DIR: "unused" });
      const b = await openStore({ DATABASE_URL: db.url, DATABASE_POOL_MAX: 4, DATA_DIR: "unused" });
      return {
        env: { DATABASE_URL: db.url },
        stores: [a, b],
        cleanup: async () => {
          await a.close();
          await b.close();
          await db.drop();
        },
      };
    },
  });
}

describe.each(backends)("two replicas polling $name", ({ open }) => {
  let fake: FakeAnthropic;
  let service: RunningService;
  let stores: [Store, Store];
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    fake = await startFakeAnthropic({ batchDelayMs: 0 });
    const backend = await open();
    cleanup = backend.cleanup;
    service = await startService({
      ...QUIET,
      ...backend.env,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
      BATCH_POLLER_ENABLED: "false",
      BATCH_POLL_INTERVAL_MS: "50",
    });
    // PGlite is one database in this process: both replicas share it.
    stores = backend.stores.length ? backend.stores : [service.deps.store, service.deps.store];
  });
  afterAll(async () => {
    await service.close();
    await cleanup();
    await fake.close();
  });

  it("process every batch exactly once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await createBatch(service, 4, `b${i}_`));
    await sleep(60); // all due
    // Claims racing on the same rows take disjoint sets (SKIP LOCKED, then the lease).
    const [x, y] = await Promise.all([
      stores[0].claimBatches("probe-a", { leaseMs: 60_000, limit: 4 }),
      stores[1].claimBatches("probe-b", { leaseMs: 60_000, limit: 4 }),
    ]);
    const claimed = [...x, ...y].map((c) => c.id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBe(Math.min(8, ids.length));
    expect(await stores[0].claimBatches("probe-c", { leaseMs: 60_000, limit: 10 })).toHaveLength(
      ids.length - claimed.length,
    );
    for (const c of x)
      expect(await stores[0].updateBatch(c.id, { releaseLease: true }, "probe-a")).toBe(true);
    for (const c of y)
      expect(await stores[1].updateBatch(c.id, { releaseLease: true }, "probe-b")).toBe(true);
    for (const id of ids) await stores[0].updateBatch(id, { releaseLease: true });

    const usageA = new CountingLedger();
    const usageB = new CountingLedger();
    const a = replica(stores[0], fake, "replica-a", usageA);
    const b = replica(stores[1], fake, "replica-b", usageB);
    let claimedA = 0;
    let claimedB = 0;
    await waitFor(async () => {
      const [x, y] = await Promise.all([a.tick(), b.tick()]);
      claimedA += x;
      claimedB += y;
      const states = await Promise.all(ids.map((id) => service.deps.store.getBatch(id)));
      return states.every((s) => s?.status === "ended");
    });
    const entries = [...usageA.entries, ...usageB.entries];
    expect(entries).toHaveLength(6 * 4);
    expect(new Set(entries.map((e) => e.requestId)).size).toBe(6 * 4);
    // Each upstream batch's results were downloaded once, by one replica.
    const fetched = resultFetches(fake);
    expect(fetched).toHaveLength(6);
    expect(new Set(fetched).size).toBe(6);
    // Both replicas did share the work (the first claims up to 8 at once, so allow either split).
    expect(claimedA + claimedB).toBeGreaterThanOrEqual(6);
    for (const id of ids) {
      const s = await service.deps.store.getBatch(id);
      expect(s?.counts).toMatchObject({ succeeded: 4, processing: 0 });
    }
  });
});
