/**
 * Postgres goes away: the real service (real Postgres behind a TCP proxy this test controls, real
 * Redis, the fake Anthropic API) says so on /ready, keeps serving what does not need the database
 * (static AGENT_API_KEYS keys, budgets on Redis), refuses clearly what does (keys stored in the
 * database, Idempotency-Key), queues every ledger line in memory, and writes them once the
 * database is back: no spend goes unrecorded, and nothing recorded before the outage is lost.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";
import { startTcpProxy, targetOf, type TcpProxy } from "../support/tcp-proxy";
import { ModelCatalog } from "../../app/src/llm/models";
import type { UsageEntry } from "../../app/src/store/types";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USER = { user: `faults-pg-${run}`, key: `faults-pg-key-${run}` };
const DB_USER = `faults-pg-db-${run}`;
const MODEL = "claude-haiku-4-5";
const catalog = ModelCatalog.load();
/** The ledger keeps cost_usd as numeric(20, 10): compare sums in those units, exactly. */
const units = (usd: number) => Math.round(usd * 1e10);

const report = (line: string) => process.stderr.write(`[faults:postgres] ${line}\n`);

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

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

interface Answer {
  status: number;
  requestId: string | null;
  headers: Headers;
  /** JSON body (or the error body of a refused stream). */
  json?: {
    type: string;
    error?: { type: string; message: string };
    request_id?: string | null;
    usage?: Usage;
    model?: string;
  };
  /** Usage as the client saw it (JSON `usage`, or the stream's message_start + message_delta). */
  usage?: Usage;
  model?: string;
}

/** POST /v1/messages with fetch; streams are read to the end and their usage assembled. */
async function ask(
  url: string,
  key: string,
  prompt: string,
  options: { stream?: boolean; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": key,
      "anthropic-version": "2023-06-01",
      ...options.headers,
    },
    body: JSON.stringify({
      model: MODEL,
      max_tokens: 64,
      stream: options.stream === true,
      messages: [{ role: "user", content: prompt }],
    }),
  });
  const text = await res.text();
  const answer: Answer = {
    status: res.status,
    requestId: res.headers.get("request-id"),
    headers: res.headers,
  };
  if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    answer.json = JSON.parse(text) as Answer["json"];
    if (res.status === 200) {
      answer.usage = normalise(answer.json!.usage!);
      answer.model = answer.json!.model;
    }
    return answer;
  }
  let usage: Usage | undefined;
  let complete = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ")) continue;
    const event = JSON.parse(line.slice(6)) as {
      type: string;
      message?: { usage: Usage; model: string };
      usage?: Partial<Usage>;
    };
    if (event.type === "message_start") {
      usage = normalise(event.message!.usage);
      answer.model = event.message!.model;
    } else if (event.type === "message_delta") usage = normalise({ ...usage!, ...event.usage });
    else if (event.type === "message_stop") complete = true;
    else if (event.type === "error") answer.status = 502;
  }
  if (!complete && answer.status === 200) answer.status = 502;
  answer.usage = usage;
  return answer;
}

const normalise = (u: Partial<Usage>): Usage => ({
  input_tokens: u.input_tokens ?? 0,
  output_tokens: u.output_tokens ?? 0,
  cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
  cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
});

const tokensOf = (e: UsageEntry): Usage => ({
  input_tokens: e.inputTokens,
  output_tokens: e.outputTokens,
  cache_creation_input_tokens: e.cacheCreationInputTokens,
  cache_read_input_tokens: e.cacheReadInputTokens,
});

(pg && redisUrl ? describe : describe.skip)(
  "Postgres outage (real Postgres behind a cut proxy)",
  () => {
    let fake: FakeAnthropic;
    let proxy: TcpProxy;
    let service: RunningService;
    let drop: (() => Promise<void>) | undefined;
    let dbKey: string;

    beforeAll(async () => {
      fake = await startFakeAnthropic({ maxRecorded: 0 });
      const db = await createTestDatabase(pg!);
      drop = db.drop;
      proxy = await startTcpProxy(targetOf(pg!, 5432));
      service = await startService({
        DATABASE_URL: proxy.url(db.url),
        REDIS_URL: redisUrl!,
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
        AGENT_API_KEYS: `${USER.user}:${USER.key}`,
        BUDGET_USER_DAILY_USD: "100",
        // The load below is back to back for 3 s: at the service's speed that exceeds the default
        // 600 requests a minute, and this test is about the database, not rate limits.
        RATE_LIMIT_RPM: "1000000",
        BATCH_POLLER_ENABLED: "false",
      });
      // A key that lives only in the database and has not been used yet (nothing cached).
      dbKey = (await service.deps.store.createApiKey(DB_USER, "faults")).key;
    }, 30_000);

    afterAll(async () => {
      await proxy?.restore().catch(() => undefined);
      await service?.close();
      await proxy?.close();
      await fake?.close();
      await drop?.();
    });

    it("says so on /ready, serves static keys, refuses DB-backed work with 503, and records every spend once back", async () => {
      // Before: spend that is already in the ledger.
      const before = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          ask(service.url, USER.key, `before ${run} ${i}`, { stream: i % 3 === 0 }),
        ),
      );
      expect(before.map((a) => a.status)).toEqual(Array(10).fill(200));
      await service.deps.usage.flush();
      const rowsBefore = await service.deps.store.listUsage({ userId: USER.user });
      expect(rowsBefore).toHaveLength(10);
      expect((await fetch(`${service.url}/ready`)).status).toBe(200);

      const cutAt = Date.now();
      await proxy.cut();

      // Readiness names the database; Redis is fine.
      const ready = await fetch(`${service.url}/ready`);
      const readyBody = (await ready.json()) as {
        status: string;
        down: string[];
        checks: Record<string, string>;
      };
      expect(ready.status).toBe(503);
      expect(readyBody.status).toBe("unavailable");
      expect(readyBody.down).toEqual(["database"]);
      expect(readyBody.checks.database).not.toBe("ok");
      expect(readyBody.checks.redis).toBe("ok");

      // Load while the database is away: 20 clients back to back for 3 s (long enough for the
      // ledger to fail and back off several times), a third of the requests streams.
      const during = (
        await Promise.all(
          Array.from({ length: 20 }, async (_, c) => {
            const out: Answer[] = [];
            for (let i = 0; i < 3 || Date.now() - cutAt < 3000; i++) {
              out.push(
                await ask(service.url, USER.key, `during ${run} ${c} ${i}`, {
                  stream: (c + i) % 3 === 0,
                }),
              );
            }
            return out;
          }),
        )
      ).flat();
      // What needs the database answers a clear 503 in the Anthropic error shape, with retry-after.
      const dbKeyAnswer = await ask(service.url, dbKey, `db key ${run}`);
      const idempotent = await ask(service.url, USER.key, `idempotent ${run}`, {
        headers: { "idempotency-key": `idem-${run}` },
      });
      const pendingDuring = service.deps.usage.pending;
      const restoredAt = Date.now();

      // Everything else succeeded: static keys need no database, budgets count in Redis, and the
      // ledger queues its lines in memory.
      expect(during.filter((a) => a.status !== 200)).toEqual([]);
      for (const refused of [dbKeyAnswer, idempotent]) {
        expect(refused.status).toBe(503);
        expect(refused.json).toEqual({
          type: "error",
          error: { type: "service_unavailable", message: expect.stringMatching(/retry shortly/) },
          request_id: refused.requestId,
        });
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      }
      expect(pendingDuring).toBeGreaterThanOrEqual(during.length);

      await proxy.restore();
      // The ledger retries on its own (backoff up to 5 s); /ready turns 200 again.
      const [ledgerBack, readyBack] = await Promise.all([
        until(
          "the ledger queue to drain",
          () => (service.deps.usage.pending === 0 ? Date.now() : undefined),
          15_000,
        ),
        until(
          "/ready 200",
          async () =>
            (await fetch(`${service.url}/ready`)).status === 200 ? Date.now() : undefined,
          15_000,
        ),
      ]);
      // The database key works again too.
      expect((await ask(service.url, dbKey, `db key again ${run}`)).status).toBe(200);

      const rows = await service.deps.store.listUsage({ userId: USER.user });
      // Nothing recorded before the outage is lost (or changed).
      const byId = new Map<string, UsageEntry[]>();
      for (const r of rows) byId.set(r.requestId, [...(byId.get(r.requestId) ?? []), r]);
      for (const r of rowsBefore) expect(byId.get(r.requestId)).toEqual([r]);
      // No spend goes unrecorded: every successful answer has exactly one ledger line with its
      // tokens and cost, and nothing else was written (the refused requests cost nothing).
      for (const a of [...before, ...during]) {
        const lines = byId.get(a.requestId!) ?? [];
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatchObject({ status: "ok", model: a.model });
        expect(tokensOf(lines[0]!)).toEqual(a.usage);
        expect(units(lines[0]!.costUsd)).toBe(units(catalog.costUsd(a.model!, a.usage!)));
      }
      expect(rows).toHaveLength(before.length + during.length);
      expect(byId.has(idempotent.requestId!)).toBe(false);
      const ledgerSum = rows.reduce((s, r) => s + units(r.costUsd), 0);
      const answeredSum = [...before, ...during].reduce(
        (s, a) => s + units(catalog.costUsd(a.model!, a.usage!)),
        0,
      );
      expect(ledgerSum).toBe(answeredSum);
      // Late lines keep the time they happened at, so they count toward the right day.
      const lateRows = during.map((a) => byId.get(a.requestId!)![0]!);
      for (const r of lateRows) expect(Date.parse(r.createdAt!)).toBeLessThan(restoredAt + 1);

      report(
        `cut ${restoredAt - cutAt} ms: /ready ${ready.status} down=${JSON.stringify(readyBody.down)} (${readyBody.checks.database}); ` +
          `${during.length}/${during.length} static-key requests served, DB key -> ${dbKeyAnswer.status} ${dbKeyAnswer.json?.error?.type}, ` +
          `Idempotency-Key -> ${idempotent.status} ${idempotent.json?.error?.type}; ${pendingDuring} ledger lines queued`,
      );
      report(
        `after restore: ledger drained in ${ledgerBack - restoredAt} ms, /ready 200 after ${readyBack - restoredAt} ms; ` +
          `ledger $${(ledgerSum / 1e10).toFixed(6)} = answered $${(answeredSum / 1e10).toFixed(6)} over ${rows.length} lines ` +
          `(${rowsBefore.length} from before the outage intact)`,
      );
    }, 60_000);
  },
);
