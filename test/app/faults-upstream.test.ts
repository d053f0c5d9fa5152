/**
 * A 529 storm on the requested model, end to end over HTTP: the real service (its ResilientProvider
 * around the official SDK, built from ANTHROPIC_API_KEY + ANTHROPIC_BASE_URL as in production; real
 * Redis and Postgres) in front of two fake Anthropic APIs, one per model, behind a small router, so
 * the storm hits one model and not its fallback. The breaker opens after a bounded number of calls,
 * the fallback serves everything, the model is probed back in once healthy; when every model of
 * the chain is down, clients get a fast 503 `overloaded_error` with retry-after and are not charged.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";
import { ModelCatalog } from "../../app/src/llm/models";
import type { ResilienceEvent } from "../../app/src/llm/resilient";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
const USER = { user: `faults-up-${run}`, key: `faults-up-key-${run}` };
/** The requested model (tier "smart") and the next model of its chain. */
const PRIMARY = "claude-sonnet-4-6";
const FALLBACK = "claude-haiku-4-5";
const CLIENTS = 20;
const MIN_CALLS = 5;
const OPEN_MS = 1500;
const catalog = ModelCatalog.load();
const units = (usd: number) => Math.round(usd * 1e10);

const report = (line: string) => process.stderr.write(`[faults:upstream] ${line}\n`);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

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

/** Routes each Messages request to the fake of its `model`: one upstream per model. */
async function startModelRouter(
  byModel: Record<string, FakeAnthropic>,
): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let model = "";
      try {
        model = String((JSON.parse(body.toString("utf8")) as { model?: unknown }).model ?? "");
      } catch {
        // Not JSON: any fake answers the 400.
      }
      const target = new URL(req.url ?? "/", (byModel[model] ?? Object.values(byModel)[0]!).url);
      const upstream = http.request(
        target,
        { method: req.method, headers: { ...req.headers, host: target.host }, agent },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      // The service gave up on the call (fallback, deadline): stop the upstream one too.
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

interface Outcome {
  at: number;
  ms: number;
  status: number;
  model: string | null;
  requestId: string | null;
  stream: boolean;
  errorType?: string;
  retryAfter?: string | null;
  usage?: {
    input_tokens: number;
    output_tokens: number;
    cache_creation_input_tokens?: number;
    cache_read_input_tokens?: number;
  };
}

(pg && redisUrl ? describe : describe.skip)(
  "529 storm on the requested model (breaker, fallback, bounded calls)",
  () => {
    let primary: FakeAnthropic;
    let fallback: FakeAnthropic;
    let router: { url: string; close(): Promise<void> };
    let service: RunningService;
    let drop: (() => Promise<void>) | undefined;
    let dbUrl: string;
    let events: ResilienceEvent[] = [];

    beforeAll(async () => {
      primary = await startFakeAnthropic({ behavior: { latencyMs: 5 } });
      fallback = await startFakeAnthropic({ behavior: { latencyMs: 20 }, maxRecorded: 0 });
      router = await startModelRouter({ [PRIMARY]: primary, [FALLBACK]: fallback });
      const db = await createTestDatabase(pg!);
      drop = db.drop;
      dbUrl = db.url;
    }, 30_000);

    // A service per test: breakers keep a rolling window, which must start empty in each case.
    beforeEach(async () => {
      primary.setBehavior({ fault: undefined });
      fallback.setBehavior({ fault: undefined });
      service = await startService({
        DATABASE_URL: dbUrl,
        REDIS_URL: redisUrl!,
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: router.url,
        AGENT_API_KEYS: `${USER.user}:${USER.key}`,
        BUDGET_USER_DAILY_USD: "100",
        RATE_LIMIT_RPM: "1000000",
        RATE_LIMIT_TPM: "100000000",
        BREAKER_MIN_CALLS: String(MIN_CALLS),
        BREAKER_ERROR_PERCENT: "50",
        BREAKER_WINDOW_MS: "10000",
        BREAKER_OPEN_MS: String(OPEN_MS),
        UPSTREAM_DEADLINE_MS: "10000",
        BATCH_POLLER_ENABLED: "false",
      });
      events = [];
      service.deps.resilience!.onEvent((e) => events.push(e));
    }, 30_000);

    afterEach(async () => {
      await service?.close();
    });

    afterAll(async () => {
      await router?.close();
      await primary?.close();
      await fallback?.close();
      await drop?.();
    });

    const post = async (prompt: string, stream: boolean): Promise<Outcome> => {
      const at = Date.now();
      const res = await fetch(`${service.url}/v1/messages`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": USER.key,
          "anthropic-version": "2023-06-01",
        },
        body: JSON.stringify({
          model: PRIMARY,
          max_tokens: 64,
          stream,
          messages: [{ role: "user", content: prompt }],
        }),
      });
      const text = await res.text();
      const out: Outcome = {
        at,
        ms: 0,
        status: res.status,
        model: res.headers.get("x-agent-model"),
        requestId: res.headers.get("request-id"),
        stream,
      };
      if (res.status !== 200) {
        const body = JSON.parse(text) as {
          type: string;
          error: { type: string };
          request_id: string;
        };
        expect(body).toMatchObject({
          type: "error",
          error: { type: expect.any(String), message: expect.any(String) },
          request_id: out.requestId,
        });
        out.errorType = body.error.type;
        out.retryAfter = res.headers.get("retry-after");
      } else if (stream) {
        if (!/event: message_stop/.test(text) || /event: error/.test(text)) out.status = 502;
        for (const line of text.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const e = JSON.parse(line.slice(6)) as {
            type: string;
            message?: { usage: Outcome["usage"] };
            usage?: Outcome["usage"];
          };
          if (e.type === "message_start") out.usage = { ...e.message!.usage! };
          if (e.type === "message_delta") out.usage = { ...out.usage!, ...e.usage };
        }
      } else {
        const body = JSON.parse(text) as { model: string; usage: Outcome["usage"] };
        out.usage = body.usage;
        expect(body.model).toBe(out.model);
      }
      out.ms = Date.now() - at;
      return out;
    };

    /** CLIENTS clients back to back until `done()`, one request in four a stream. */
    async function load(tag: string, done: () => boolean): Promise<Outcome[]> {
      const outcomes: Outcome[] = [];
      let n = 0;
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, c) => {
          while (!done()) {
            const i = n++;
            outcomes.push(await post(`${tag} ${run} ${c} ${i}`, i % 4 === 0));
          }
        }),
      );
      return outcomes;
    }

    const breakerOf = (model: string) =>
      service.deps.resilience!.breakerStates().find((s) => s.model === model)!;
    const breakerEvents = (model: string, state: string) =>
      events.filter(
        (e): e is Extract<ResilienceEvent, { type: "breaker" }> =>
          e.type === "breaker" && e.model === model && e.state === state,
      );

    it("opens the failing model's breaker after a bounded number of calls; the fallback serves every request", async () => {
      // Healthy: the requested model serves.
      expect((await post(`warm ${run}`, false)).model).toBe(PRIMARY);

      primary.setBehavior({ fault: { kind: "overloaded" } });
      const primaryBefore = primary.requestCount;
      const stormAt = Date.now();
      const storm = await load("storm", () => Date.now() - stormAt > 4000);
      const stormEnd = Date.now();
      const callsToPrimary = primary.requestCount - primaryBefore;

      // Every request succeeded, served by the fallback model, streams included.
      expect(storm.filter((o) => o.status !== 200)).toEqual([]);
      expect(storm.filter((o) => o.model !== FALLBACK)).toEqual([]);
      expect(storm.filter((o) => o.stream).length).toBeGreaterThan(0);

      // The breaker opened; the failing model saw at most MIN_CALLS failures plus the calls already
      // in flight when it opened, plus one half-open probe per OPEN_MS: bounded, not one per request.
      const opened = breakerEvents(PRIMARY, "open");
      expect(opened.length).toBeGreaterThanOrEqual(1);
      const probes = breakerEvents(PRIMARY, "halfOpen").filter((e) => e.at <= stormEnd).length;
      expect(callsToPrimary).toBeGreaterThanOrEqual(MIN_CALLS);
      expect(callsToPrimary).toBeLessThanOrEqual(MIN_CALLS + CLIENTS + probes);
      expect(storm.length).toBeGreaterThan(callsToPrimary * 2);
      expect(breakerOf(FALLBACK).state).toBe("closed");
      const firstOpenAt = opened[0]!.at;
      const callsBeforeOpen = primary.requests.filter(
        (r) => r.receivedAt >= stormAt && r.receivedAt <= firstOpenAt,
      ).length;

      // Recovery: the model answers again; after OPEN_MS one probe closes the breaker.
      primary.setBehavior({ fault: undefined });
      const healedAt = Date.now();
      const heal = await load(
        "heal",
        () => breakerOf(PRIMARY).state === "closed" || Date.now() - healedAt > 10_000,
      );
      expect(heal.filter((o) => o.status !== 200)).toEqual([]);
      const backOn = await until(
        "the requested model to serve again",
        async () => {
          const o = await post(`after ${run} ${Date.now()}`, false);
          return o.model === PRIMARY ? o : undefined;
        },
        5000,
      );
      expect(breakerOf(PRIMARY).state).toBe("closed");

      // Every answer is in the ledger once, priced at the model that served it.
      await service.deps.usage.flush();
      const rows = await service.deps.store.listUsage({ userId: USER.user });
      const byId = new Map(rows.map((r) => [r.requestId, r]));
      for (const o of storm) {
        const row = byId.get(o.requestId!);
        expect(row).toMatchObject({
          status: "ok",
          model: FALLBACK,
          inputTokens: o.usage!.input_tokens,
          outputTokens: o.usage!.output_tokens,
        });
        expect(units(row!.costUsd)).toBe(units(catalog.costUsd(FALLBACK, o.usage!)));
      }

      const ms = storm.map((o) => o.ms);
      report(
        `storm ${stormEnd - stormAt} ms, ${CLIENTS} clients: ${storm.length} requests, all 200 from ${FALLBACK}; ` +
          `${callsToPrimary} calls reached the failing ${PRIMARY} (bound ${MIN_CALLS}+${CLIENTS}+${probes} probes); ` +
          `breaker open ${firstOpenAt - stormAt} ms after the storm began (${callsBeforeOpen} calls to it by then), ` +
          `${opened.length} open transition(s)`,
      );
      report(
        `storm latency p50 ${percentile(ms, 50)} ms, p90 ${percentile(ms, 90)} ms, p99 ${percentile(ms, 99)} ms, max ${Math.max(...ms)} ms; ` +
          `healthy again -> ${PRIMARY} serving after ${backOn.at + backOn.ms - healedAt} ms (OPEN_MS ${OPEN_MS})`,
      );
    }, 60_000);

    it("fails fast with 503 overloaded_error and retry-after when the whole chain is down, and charges nothing", async () => {
      primary.setBehavior({ fault: { kind: "overloaded" } });
      fallback.setBehavior({ fault: { kind: "overloaded" } });
      const before = primary.requestCount + fallback.requestCount;
      const startedAt = Date.now();
      const outcomes = await load("down", () => Date.now() - startedAt > 2000);
      const calls = primary.requestCount + fallback.requestCount - before;
      primary.setBehavior({ fault: undefined });
      fallback.setBehavior({ fault: undefined });

      expect(outcomes.filter((o) => o.status === 200)).toEqual([]);
      // Before both breakers open: the upstream's 529; after: the service's own fast 503.
      for (const o of outcomes) {
        expect([529, 503]).toContain(o.status);
        expect(o.errorType).toBe("overloaded_error");
      }
      const fast = outcomes.filter((o) => o.status === 503);
      expect(fast.length).toBeGreaterThan(outcomes.length / 2);
      for (const o of fast) expect(Number(o.retryAfter)).toBeGreaterThan(0);
      // At most UPSTREAM_MAX_ATTEMPTS (4) calls for each request sent before the breakers opened.
      // At most two for each request in flight when they opened (the model, then its fallback),
      // and one half-open probe per breaker per OPEN_MS.
      const probes = [PRIMARY, FALLBACK]
        .map((m) => breakerEvents(m, "halfOpen").filter((e) => e.at >= startedAt).length)
        .reduce((a, b) => a + b, 0);
      expect(calls).toBeLessThanOrEqual(4 * (outcomes.length - fast.length) + 2 * CLIENTS + probes);

      // Failures cost nothing, and every budget hold was released.
      await service.deps.usage.flush();
      const rows = await service.deps.store.listUsage({ userId: USER.user });
      const failedIds = new Set(outcomes.map((o) => o.requestId));
      const failedRows = rows.filter((r) => failedIds.has(r.requestId));
      expect(failedRows).toHaveLength(outcomes.length);
      for (const r of failedRows)
        expect(r).toMatchObject({ status: "error", costUsd: 0, outputTokens: 0 });
      await until(
        "budget holds released",
        async () => {
          const usage = await service.deps.budgets!.usageFor(USER.user);
          return usage.budgets.find((b) => b.budget === "user_daily")!.reserved_usd === 0;
        },
        5000,
      );
      const ms = fast.map((o) => o.ms);
      report(
        `whole chain down for 2 s: ${outcomes.length} requests (${outcomes.length - fast.length} upstream 529, ${fast.length} fast 503), ` +
          `${calls} upstream calls; fast-503 latency p50 ${percentile(ms, 50)} ms p99 ${percentile(ms, 99)} ms`,
      );
    }, 60_000);
  },
);
