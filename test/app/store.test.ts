/**
 * One behavioural suite, run against every driver: PGlite in memory, PGlite in a directory, and
 * real PostgreSQL (skipped locally when it is not running, failing in CI).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { migrate, MIGRATIONS, type Migration } from "../../app/src/store/migrations";
import { createPgliteClient } from "../../app/src/store/pglite";
import { createPostgresClient } from "../../app/src/store/postgres";
import { SqlStore } from "../../app/src/store/sql-store";
import { ConcurrentAppendError, type SqlClient, type UsageEntry } from "../../app/src/store/types";
import { createTestDatabase, requirePostgresSync } from "../support/services";

/** A fresh, unmigrated database; `another()` is a second client on it (PGlite has only one). */
interface Handle {
  client: SqlClient;
  another(): SqlClient;
  cleanup(): Promise<void>;
}

const PG_URL = requirePostgresSync();

const drivers: Array<{ name: string; enabled: boolean; open(): Promise<Handle> }> = [
  {
    name: "pglite in memory",
    enabled: true,
    async open() {
      const client = await createPgliteClient("memory://");
      return { client, another: () => client, cleanup: () => client.close() };
    },
  },
  {
    name: "pglite in a directory",
    enabled: true,
    async open() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "store-test-"));
      const client = await createPgliteClient(path.join(dir, "db")).catch((err: unknown) => {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      });
      return {
        client,
        another: () => client,
        async cleanup() {
          await client.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "postgres",
    enabled: PG_URL !== null,
    async open() {
      const db = await createTestDatabase(PG_URL!);
      const clients = [createPostgresClient(db.url, { max: 5 })];
      return {
        client: clients[0]!,
        another() {
          const c = createPostgresClient(db.url, { max: 1 });
          clients.push(c);
          return c;
        },
        async cleanup() {
          await Promise.all(clients.map((c) => c.close()));
          await db.drop();
        },
      };
    },
  },
];

/** Records every statement, to check how many round trips an operation takes. */
function counting(client: SqlClient): { client: SqlClient; statements: string[] } {
  const statements: string[] = [];
  const query =
    (runner: Pick<SqlClient, "query">) =>
    <T>(text: string, params?: unknown[]) => {
      statements.push(text);
      return runner.query<T>(text, params);
    };
  return {
    statements,
    client: {
      kind: client.kind,
      query: query(client),
      transaction: (fn) => client.transaction((tx) => fn({ query: query(tx) })),
      close: () => client.close(),
    },
  };
}

const text = (t: string) => [{ type: "text", text: t }];

function usage(overrides: Partial<UsageEntry> = {}): UsageEntry {
  return {
    requestId: "req_1",
    userId: "u-usage",
    model: "claude-sonnet-4-5",
    inputTokens: 10,
    outputTokens: 20,
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 0,
    costUsd: 0.001,
    status: "ok",
    ...overrides,
  };
}

for (const driver of drivers) {
  (driver.enabled ? describe : describe.skip)(`SqlStore on ${driver.name}`, () => {
    let handle: Handle;
    let store: SqlStore;

    beforeAll(async () => {
      handle = await driver.open();
      store = new SqlStore(handle.client);
      await store.migrate();
    });
    afterAll(async () => {
      await handle?.cleanup();
    });

    describe("migrations", () => {
      it("are idempotent: a second run applies nothing and keeps one row per version", async () => {
        expect(await migrate(handle.client)).toEqual([]);
        await store.migrate();
        const { rows } = await handle.client.query<{ version: number }>(
          "SELECT version FROM schema_migrations ORDER BY version",
        );
        expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      });

      it("apply only what was appended, and roll a failing migration back entirely", async () => {
        const extra: Migration = {
          version: 900,
          name: "extra",
          statements: ["CREATE TABLE extra_900 (i int)"],
        };
        expect(await migrate(handle.client, [...MIGRATIONS, extra])).toEqual([900]);
        expect(await migrate(handle.client, [...MIGRATIONS, extra])).toEqual([]);

        const broken: Migration = {
          version: 901,
          name: "broken",
          statements: ["CREATE TABLE extra_901 (i int)", "SELECT no_such_function()"],
        };
        await expect(migrate(handle.client, [...MIGRATIONS, extra, broken])).rejects.toThrow(
          /migration 901 \(broken\)/,
        );
        const { rows } = await handle.client.query<{ t: string | null; n: number }>(
          "SELECT to_regclass('extra_901')::text AS t, (SELECT count(*)::int FROM schema_migrations WHERE version = 901) AS n",
        );
        expect(rows[0]).toEqual({ t: null, n: 0 });
      });

      it("check an up-to-date schema with one read, without the transaction and its lock", async () => {
        const calls: string[] = [];
        const counting: Pick<SqlClient, "query" | "transaction"> = {
          query: (text, params) => {
            calls.push(text);
            return handle.client.query(text, params);
          },
          transaction: (fn) => {
            calls.push("transaction");
            return handle.client.transaction(fn);
          },
        };
        expect(await migrate(counting)).toEqual([]);
        expect(calls).toEqual(["SELECT version FROM schema_migrations"]);

        // One version missing: the locked path applies it.
        calls.length = 0;
        const extra: Migration = {
          version: 950,
          name: "extra 950",
          statements: ["CREATE TABLE extra_950 (i int)"],
        };
        expect(await migrate(counting, [...MIGRATIONS, extra])).toEqual([950]);
        expect(calls).toEqual(["SELECT version FROM schema_migrations", "transaction"]);
      });

      it("refuse versions out of order", async () => {
        const a: Migration = { version: 5, name: "a", statements: [] };
        const b: Migration = { version: 5, name: "b", statements: [] };
        await expect(migrate(handle.client, [a, b])).rejects.toThrow(/increasing order/);
      });

      it("run from five clients at once on a fresh database: no error, one row per version", async () => {
        const fresh = await driver.open();
        try {
          const clients = [fresh.client, ...Array.from({ length: 4 }, () => fresh.another())];
          const applied = await Promise.all(clients.map((c) => migrate(c)));
          // Exactly one caller did the work; the others found it done under the lock.
          expect(applied.flat().sort((x, y) => x - y)).toEqual(MIGRATIONS.map((m) => m.version));
          expect(applied.filter((a) => a.length > 0)).toHaveLength(1);
          const { rows } = await fresh.client.query<{ version: number; n: number }>(
            "SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version",
          );
          expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, n: 1 })));
        } finally {
          await fresh.cleanup();
        }
      });
    });

    it("answers ping and reports its kind", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      expect(store.kind).toBe(handle.client.kind);
    });

    describe("sessions", () => {
      it("round-trip and belong to their owner only", async () => {
        const created = await store.createSession({
          userId: "alice",
          model: "claude-haiku-4-5",
          system: "be brief",
          metadata: { source: "test", nested: { n: 1 } },
        });
        expect(created).toMatchObject({
          userId: "alice",
          model: "claude-haiku-4-5",
          system: "be brief",
          metadata: { source: "test", nested: { n: 1 } },
        });
        expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(new Date(created.createdAt).toISOString()).toBe(created.createdAt);

        expect(await store.getSession(created.id, "alice")).toEqual(created);
        expect(await store.getSession(created.id, "mallory")).toBeNull();
        expect(await store.getSession("00000000-0000-4000-8000-000000000000", "alice")).toBeNull();
        expect(await store.getSession("not-a-uuid", "alice")).toBeNull();
      });

      it("defaults model, system and metadata", async () => {
        const s = await store.createSession({ userId: "bob" });
        expect(s).toMatchObject({ model: null, system: null, metadata: {} });
      });

      it("can be re-pinned to another model", async () => {
        const s = await store.createSession({ userId: "alice", model: "a" });
        await store.setSessionModel(s.id, "b");
        const after = await store.getSession(s.id, "alice");
        expect(after?.model).toBe("b");
        expect(Date.parse(after!.updatedAt)).toBeGreaterThanOrEqual(Date.parse(s.updatedAt));
        await expect(
          store.setSessionModel("00000000-0000-4000-8000-000000000000", "b"),
        ).rejects.toThrow(/not found/);
      });
    });

    describe("messages", () => {
      it("append in order and list back with content and model", async () => {
        const s = await store.createSession({ userId: "alice" });
        await store.appendMessages(s.id, 0, [
          { role: "user", content: text("hi") },
          {
            role: "assistant",
            content: [{ type: "tool_use", id: "t1", name: "calc", input: { x: 1 } }],
            model: "m1",
          },
        ]);
        await store.appendMessages(s.id, 2, [
          { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "2" }] },
        ]);
        await store.appendMessages(s.id, 3, []);
        const history = await store.listMessages(s.id);
        expect(history.map(({ createdAt: _createdAt, ...m }) => m)).toEqual([
          { seq: 0, role: "user", content: text("hi"), model: null },
          {
            seq: 1,
            role: "assistant",
            content: [{ type: "tool_use", id: "t1", name: "calc", input: { x: 1 } }],
            model: "m1",
          },
          {
            seq: 2,
            role: "user",
            content: [{ type: "tool_result", tool_use_id: "t1", content: "2" }],
            model: null,
          },
        ]);
      });

      it("reject a stale or skipping expectedNextSeq and store nothing", async () => {
        const s = await store.createSession({ userId: "alice" });
        await store.appendMessages(s.id, 0, [{ role: "user", content: text("a") }]);
        await expect(
          store.appendMessages(s.id, 0, [{ role: "user", content: text("stale") }]),
        ).rejects.toBeInstanceOf(ConcurrentAppendError);
        await expect(
          store.appendMessages(s.id, 5, [{ role: "user", content: text("gap") }]),
        ).rejects.toBeInstanceOf(ConcurrentAppendError);
        expect((await store.listMessages(s.id)).map((m) => m.content)).toEqual([text("a")]);
      });

      it("fail clearly for an unknown session or a bad position", async () => {
        const missing = "00000000-0000-4000-8000-000000000000";
        await expect(
          store.appendMessages(missing, 0, [{ role: "user", content: text("x") }]),
        ).rejects.toThrow(/not found/);
        await expect(
          store.appendMessages("nope", 0, [{ role: "user", content: text("x") }]),
        ).rejects.toThrow(/not found/);
        await expect(store.appendMessages(missing, -1, [])).rejects.toThrow(RangeError);
        expect(await store.listMessages("nope")).toEqual([]);
      });

      it("let exactly one of two concurrent appenders win, atomically", async () => {
        const s = await store.createSession({ userId: "alice" });
        await store.appendMessages(s.id, 0, [{ role: "user", content: text("start") }]);
        const appendAs = (who: string) =>
          store.appendMessages(s.id, 1, [
            { role: "assistant", content: text(`${who}-1`) },
            { role: "user", content: text(`${who}-2`) },
          ]);
        const results = await Promise.allSettled([appendAs("A"), appendAs("B")]);
        const won = results.findIndex((r) => r.status === "fulfilled");
        const lost = results.find((r) => r.status === "rejected");
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        expect((lost as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrentAppendError);
        const winner = won === 0 ? "A" : "B";
        expect((await store.listMessages(s.id)).map((m) => [m.seq, m.content])).toEqual([
          [0, text("start")],
          [1, text(`${winner}-1`)],
          [2, text(`${winner}-2`)],
        ]);
      });

      it("never interleave or lose turns when many writers retry", async () => {
        const s = await store.createSession({ userId: "alice" });
        const writers = 5;
        const turns = 4;
        let conflicts = 0;
        const writer = async (w: number) => {
          for (let t = 0; t < turns; t++) {
            for (;;) {
              const next = (await store.listMessages(s.id)).length;
              try {
                await store.appendMessages(s.id, next, [
                  { role: "user", content: text(`w${w}t${t}q`) },
                  { role: "assistant", content: text(`w${w}t${t}a`) },
                ]);
                break;
              } catch (err) {
                if (!(err instanceof ConcurrentAppendError)) throw err;
                conflicts++;
              }
            }
          }
        };
        await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
        const history = await store.listMessages(s.id);
        expect(history.map((m) => m.seq)).toEqual(
          Array.from({ length: writers * turns * 2 }, (_, i) => i),
        );
        const pairs = new Set<string>();
        for (let i = 0; i < history.length; i += 2) {
          const q = String(history[i]!.content[0]?.text);
          const a = String(history[i + 1]!.content[0]?.text);
          expect(a).toBe(q.replace(/q$/, "a"));
          pairs.add(q);
        }
        expect(pairs.size).toBe(writers * turns);
        expect(conflicts).toBeGreaterThanOrEqual(0);
      });
    });

    describe("usage ledger", () => {
      it("writes a batch in one statement and returns numbers, not strings", async () => {
        const session = await store.createSession({ userId: "u-batch" });
        const entries: UsageEntry[] = [
          usage({
            userId: "u-batch",
            requestId: "r1",
            costUsd: 0.0123456789,
            inputTokens: 5_000_000_000,
          }),
          usage({
            userId: "u-batch",
            requestId: "r2",
            sessionId: session.id,
            status: "cached",
            kind: "session",
            latencyMs: 12.6,
            cacheCreationInputTokens: 1024,
            cacheReadInputTokens: 2048,
            createdAt: "2030-01-02T03:04:05.678Z",
          }),
          usage({ userId: "u-batch", requestId: "r3", status: "aborted", costUsd: 0 }),
        ];
        const spy = counting(handle.client);
        await new SqlStore(spy.client).recordUsage(entries);
        expect(spy.statements).toHaveLength(1);

        const got = await store.listUsage({ userId: "u-batch" });
        expect(got).toHaveLength(3);
        const byId = Object.fromEntries(got.map((e) => [e.requestId, e]));
        expect(byId.r1).toMatchObject({
          inputTokens: 5_000_000_000,
          costUsd: 0.0123456789,
          sessionId: null,
          kind: "messages",
        });
        expect(byId.r2).toMatchObject({
          sessionId: session.id,
          status: "cached",
          kind: "session",
          latencyMs: 13,
          cacheCreationInputTokens: 1024,
          cacheReadInputTokens: 2048,
          createdAt: "2030-01-02T03:04:05.678Z",
        });
        expect(byId.r3).toMatchObject({ status: "aborted", costUsd: 0, latencyMs: undefined });
        for (const e of got) {
          for (const k of [
            "inputTokens",
            "outputTokens",
            "cacheCreationInputTokens",
            "cacheReadInputTokens",
            "costUsd",
          ] as const) {
            expect(typeof e[k]).toBe("number");
          }
        }
        expect((await store.listUsage({ sessionId: session.id })).map((e) => e.requestId)).toEqual([
          "r2",
        ]);
        expect(
          (await store.listUsage({ userId: "u-batch", sinceIso: "2030-01-01T00:00:00Z" })).map(
            (e) => e.requestId,
          ),
        ).toEqual(["r2"]);
        expect(await store.listUsage({ sessionId: "not-a-uuid" })).toEqual([]);
      });

      it("rejects a batch with an invalid entry and writes none of it", async () => {
        const bad = [
          usage({ userId: "u-bad", requestId: "ok" }),
          usage({ userId: "u-bad", requestId: "neg", outputTokens: -1 }),
        ];
        await expect(store.recordUsage(bad)).rejects.toThrow(/request neg: token counts/);
        await expect(
          store.recordUsage([usage({ userId: "u-bad", costUsd: Number.NaN })]),
        ).rejects.toThrow(/costUsd/);
        await expect(
          store.recordUsage([usage({ userId: "u-bad", sessionId: "s1" })]),
        ).rejects.toThrow(/sessionId/);
        expect(await store.listUsage({ userId: "u-bad" })).toEqual([]);
        await expect(store.recordUsage([])).resolves.toBeUndefined();
      });

      it("splits a batch too large for one statement, still all-or-nothing", async () => {
        const many = Array.from({ length: 5_200 }, (_, i) =>
          usage({ userId: "u-many", requestId: `m${i}` }),
        );
        await store.recordUsage(many);
        expect(await store.listUsage({ userId: "u-many" })).toHaveLength(5_200);

        const poisoned = [
          ...many.slice(0, 5_100),
          usage({ userId: "u-many", requestId: "late", model: null as unknown as string }),
        ];
        await expect(store.recordUsage(poisoned)).rejects.toThrow();
        expect(await store.listUsage({ userId: "u-many" })).toHaveLength(5_200);
      });
    });

    describe("api keys", () => {
      it("create, resolve, list and revoke; the plaintext is never stored", async () => {
        const { key, record } = await store.createApiKey("carol", "laptop");
        expect(key).toMatch(/^ak_[A-Za-z0-9_-]{43}$/);
        expect(record).toMatchObject({
          userId: "carol",
          name: "laptop",
          prefix: key.slice(0, 11),
          revokedAt: null,
          lastUsedAt: null,
        });

        const { rows } = await handle.client.query<{ key_hash: string }>(
          "SELECT * FROM api_keys WHERE user_id = 'carol'",
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]!.key_hash).toBe(createHash("sha256").update(key).digest("hex"));
        const stored = JSON.stringify(rows);
        expect(stored).not.toContain(key);
        expect(stored).not.toContain(key.slice(11));

        expect(await store.findUserByApiKey(key)).toBe("carol");
        expect(await store.findUserByApiKey(`${key}x`)).toBeNull();
        const second = await store.createApiKey("carol");
        await store.createApiKey("dave");
        expect((await store.listApiKeys("carol")).map((k) => k.id)).toEqual([
          record.id,
          second.record.id,
        ]);
        expect((await store.listApiKeys()).map((k) => k.userId)).toEqual(
          expect.arrayContaining(["carol", "dave"]),
        );
        expect((await store.listApiKeys("carol"))[0]!.lastUsedAt).not.toBeNull();

        expect(await store.revokeApiKey(record.id)).toBe(true);
        expect(await store.revokeApiKey(record.id)).toBe(false);
        expect(await store.revokeApiKey("not-a-uuid")).toBe(false);
        expect(await store.findUserByApiKey(key)).toBeNull();
        expect(await store.findUserByApiKey(second.key)).toBe("carol");
        expect((await store.listApiKeys("carol"))[0]!.revokedAt).not.toBeNull();
      });

      it("write last_used_at only when it is stale, not on every lookup", async () => {
        const spy = counting(handle.client);
        const hot = new SqlStore(spy.client, { lastUsedRefreshMs: 60_000 });
        const { key } = await hot.createApiKey("erin");
        spy.statements.length = 0;
        expect(await hot.findUserByApiKey(key)).toBe("erin");
        expect(spy.statements.filter((s) => /UPDATE api_keys/.test(s))).toHaveLength(1);
        spy.statements.length = 0;
        for (let i = 0; i < 3; i++) expect(await hot.findUserByApiKey(key)).toBe("erin");
        expect(spy.statements).toHaveLength(3);
      });

      it("refuse user ids that static keys could not have", async () => {
        await expect(store.createApiKey("has space")).rejects.toThrow(/invalid user id/);
      });
    });
  });
}
