/** What differs between the drivers: PGlite persistence and locking, pg pool settings and TLS. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { openStore, setMemoryImageSource, type StoreConfig } from "../../app/src/store";
import { createPgliteClient } from "../../app/src/store/pglite";
import { createPostgresClient, poolConfig } from "../../app/src/store/postgres";
import { MIGRATIONS } from "../../app/src/store/migrations";
import { createTestDatabase, requirePostgresSync } from "../support/services";

const PG_URL = requirePostgresSync();

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("PGlite in a directory", () => {
  let dir: string;
  let config: StoreConfig;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "store-drivers-"));
    config = { DATA_DIR: dir, DATABASE_URL: undefined, DATABASE_POOL_MAX: 10 };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("keeps everything across close and reopen", async () => {
    const first = await openStore(config);
    expect(first.kind).toBe("pglite");
    const session = await first.createSession({ userId: "alice", model: "m" });
    await first.appendMessages(session.id, 0, [
      { role: "user", content: [{ type: "text", text: "remember me" }] },
    ]);
    const { key } = await first.createApiKey("alice", "k");
    await first.recordUsage([
      {
        requestId: "r",
        userId: "alice",
        sessionId: session.id,
        model: "m",
        inputTokens: 1,
        outputTokens: 2,
        cacheCreationInputTokens: 0,
        cacheReadInputTokens: 0,
        costUsd: 0.5,
        status: "ok",
      },
    ]);
    await first.close();
    expect(fs.existsSync(path.join(dir, "pglite", "PG_VERSION"))).toBe(true);

    const second = await openStore(config);
    try {
      const { updatedAt, ...unchanged } = session;
      const reopened = await second.getSession(session.id, "alice");
      expect(reopened).toMatchObject(unchanged);
      // Appending touched the session.
      expect(Date.parse(reopened!.updatedAt)).toBeGreaterThanOrEqual(Date.parse(updatedAt));
      expect((await second.listMessages(session.id)).map((m) => m.content)).toEqual([
        [{ type: "text", text: "remember me" }],
      ]);
      expect(await second.findUserByApiKey(key)).toBe("alice");
      expect((await second.listUsage({ userId: "alice" })).map((u) => u.costUsd)).toEqual([0.5]);
    } finally {
      await second.close();
    }
  });

  it("refuses a second opener of the same directory and releases the lock on close", async () => {
    const store = await openStore(config);
    await expect(openStore(config)).rejects.toThrow(/already open in this process/);
    expect(fs.existsSync(path.join(dir, "pglite.lock"))).toBe(true);
    await store.close();
    await store.close();
    expect(fs.existsSync(path.join(dir, "pglite.lock"))).toBe(false);
    await (await openStore(config)).close();
  });

  it("refuses a directory locked by another live process, and takes over a dead one's lock", async () => {
    const db = path.join(dir, "db");
    fs.writeFileSync(`${db}.lock`, String(process.ppid));
    await expect(createPgliteClient(db)).rejects.toThrow(
      new RegExp(`in use by process ${process.ppid}`),
    );

    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    fs.writeFileSync(`${db}.lock`, String(dead));
    const client = await createPgliteClient(db);
    expect(fs.readFileSync(`${db}.lock`, "utf8")).toBe(String(process.pid));
    await client.close();
  });

  it("stays in memory for DATA_DIR=memory://", async () => {
    const store = await openStore({ ...config, DATA_DIR: "memory://" });
    await store.ping();
    await store.close();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("every memory:// store starts empty and migrated, whatever another one holds (they start from one image)", async () => {
    const first = await openStore({ ...config, DATA_DIR: "memory://" });
    const second = await openStore({ ...config, DATA_DIR: "memory://" });
    try {
      const { key } = await first.createApiKey("alice", "laptop");
      expect(await first.findUserByApiKey(key)).toBe("alice");
      const third = await openStore({ ...config, DATA_DIR: "memory://" });
      try {
        for (const store of [second, third]) {
          expect(await store.findUserByApiKey(key)).toBeNull();
          expect(await store.listApiKeys("alice")).toEqual([]);
          // Migrated: it takes writes of its own.
          const own = await store.createApiKey("bob");
          expect(await store.findUserByApiKey(own.key)).toBe("bob");
        }
        expect(await first.listApiKeys("bob")).toEqual([]);
      } finally {
        await third.close();
      }
    } finally {
      await first.close();
      await second.close();
    }
  });
});

describe("the image memory:// stores start from", () => {
  const memory: StoreConfig = {
    DATA_DIR: "memory://",
    DATABASE_URL: undefined,
    DATABASE_POOL_MAX: 1,
  };
  const usable = async (store: Awaited<ReturnType<typeof openStore>>) => {
    const { key } = await store.createApiKey("carol");
    expect(await store.findUserByApiKey(key)).toBe("carol");
    await store.close();
  };

  it("comes from a source set beforehand, read once and only when a store opens", async () => {
    // The run's image, which test/support/global-setup.ts made.
    const file = process.env.AGENT_TEST_PGLITE_IMAGE;
    expect(file).toBeTruthy();
    let reads = 0;
    setMemoryImageSource(async () => {
      reads++;
      return new Blob([await fs.promises.readFile(file!)]);
    });
    expect(reads).toBe(0);
    const [first, second] = await Promise.all([openStore(memory), openStore(memory)]);
    await usable(first);
    await usable(second);
    await usable(await openStore(memory));
    expect(reads).toBe(1);
  });

  it("is made by the first store when the source fails", async () => {
    let reads = 0;
    setMemoryImageSource(async () => {
      reads++;
      throw new Error("no such image");
    });
    await usable(await openStore(memory));
    await usable(await openStore(memory));
    expect(reads).toBe(1);
  });
});

describe("pg pool configuration", () => {
  const ssl = (url: string) => (new Client(poolConfig(url)) as unknown as { ssl: unknown }).ssl;

  it("keeps libpq's meaning of sslmode", () => {
    expect(ssl("postgres://u@db:5432/x")).toBe(false);
    expect(ssl("postgres://u@db:5432/x?sslmode=disable")).toBe(false);
    expect(ssl("postgres://u@db:5432/x?sslmode=require")).toEqual({ rejectUnauthorized: false });
    const full = ssl("postgres://u@db:5432/x?sslmode=verify-full") as Record<string, unknown>;
    expect(typeof full).toBe("object");
    expect(full.rejectUnauthorized).not.toBe(false);
  });

  it("sets pool size, application name and timeouts", () => {
    expect(poolConfig("postgres://u@db/x", { max: 3, statementTimeoutMs: 1000 })).toMatchObject({
      max: 3,
      application_name: "agent-service",
      statement_timeout: 1000,
      query_timeout: 6000,
      connectionTimeoutMillis: 5000,
    });
  });
});

(PG_URL ? describe : describe.skip)("PostgreSQL driver", () => {
  let db: { url: string; drop(): Promise<void> };
  beforeAll(async () => {
    db = await createTestDatabase(PG_URL!);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("is chosen by openStore when DATABASE_URL is set, and arrives migrated", async () => {
    const store = await openStore({
      DATABASE_URL: db.url,
      DATABASE_POOL_MAX: 2,
      DATA_DIR: "/nonexistent",
    });
    try {
      expect(store.kind).toBe("postgres");
      await store.ping();
      const s = await store.createSession({ userId: "pg-user" });
      expect(await store.getSession(s.id, "pg-user")).toEqual(s);
    } finally {
      await store.close();
    }
    const client = createPostgresClient(db.url);
    const { rows } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM schema_migrations",
    );
    expect(rows[0]!.n).toBe(MIGRATIONS.length);
    await client.close();
  });

  it("names its connections and enforces the statement timeout", async () => {
    const client = createPostgresClient(db.url, { statementTimeoutMs: 200 });
    try {
      const { rows } = await client.query<{ app: string; timeout: string }>(
        "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout",
      );
      expect(rows[0]).toEqual({ app: "agent-service", timeout: "200ms" });
      await expect(client.query("SELECT pg_sleep(2)")).rejects.toThrow(/statement timeout/);
    } finally {
      await client.close();
    }
  });

  it("survives an idle connection being killed, reports it, and reconnects", async () => {
    const warn = jest.fn();
    const client = createPostgresClient(db.url, { logger: { warn } });
    const admin = createPostgresClient(db.url);
    try {
      const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await admin.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
      await eventually(() => warn.mock.calls.length > 0);
      expect(warn.mock.calls[0]![1]).toMatch(/idle connection error/);
      expect((await client.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await Promise.all([client.close(), admin.close()]);
    }
  });

  it("rolls a failed transaction back and keeps the pool usable", async () => {
    const client = createPostgresClient(db.url, { max: 1 });
    try {
      await client.query("CREATE TABLE tx_probe (i int)");
      await expect(
        client.transaction(async (tx) => {
          await tx.query("INSERT INTO tx_probe VALUES (1)");
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM tx_probe");
      expect(rows[0]!.n).toBe(0);
    } finally {
      await client.close();
    }
  });
});
