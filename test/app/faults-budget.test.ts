/**
 * Budgets under concurrency, end to end over HTTP against real Redis (the shared budget engine)
 * and real Postgres (the ledger): 300 concurrent requests against a small per-user daily budget,
 * on one service and on two replicas sharing Redis and Postgres. The spend recorded never passes
 * the budget, and the ledger matches the responses exactly: every 200 has exactly one ledger line
 * with its tokens and cost, every 429 is `budget_exceeded` and cost nothing. And a client that
 * disconnects mid-stream is still charged for what was generated: the hold returns to zero and
 * the ledger line says `aborted`, with the partial tokens.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { startFakeAnthropic, FAKE_API_KEY, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase, requirePostgresSync, requireRedisSync } from "../support/services";
import { estimateInput, utcDay } from "../../app/src/budget/budgets";
import { RedisBudgetEngine } from "../../app/src/budget/redis-engine";
import { ModelCatalog } from "../../app/src/llm/models";
import type { UsageEntry } from "../../app/src/store/types";

const pg = requirePostgresSync();
const redisUrl = requireRedisSync();
const run = randomBytes(4).toString("hex");
/** Its fallback chain holds no dearer model, so a hold is priced at the model's own prices. */
const MODEL = "claude-sonnet-4-6";
const BUDGET_USD = 0.05;
const MAX_TOKENS = 100;
const REQUESTS = 300;
const catalog = ModelCatalog.load();
const prices = catalog.prices(MODEL);
/** Sonnet's $/MTok are whole µ$ per token: every cost is a whole number of µ$, summed exactly. */
const micros = (usd: number) => Math.round(usd * 1e6);

const report = (line: string) => process.stderr.write(`[faults:budget] ${line}\n`);

async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
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

interface Outcome {
  status: number;
  requestId: string;
  stream: boolean;
  usage?: Usage;
  error?: { type: string; message: string; budget?: string; retryable?: boolean };
  shouldRetry?: string | null;
}

const normalise = (u: Partial<Usage>): Usage => ({
  input_tokens: u.input_tokens ?? 0,
  output_tokens: u.output_tokens ?? 0,
  cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
  cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
});

/** A prompt whose answer fills max_tokens (so a request costs close to its hold), slowed a little. */
const prompt = (tag: string) =>
  `${tag} [[fake:${JSON.stringify({ minReplyChars: MAX_TOKENS * 4 + 40, latencyMs: 100 })}]]`;

async function post(url: string, key: string, text: string, stream: boolean): Promise<Outcome> {
  const res = await fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": key,
      "anthropic-version": "2023-06-01",
    },
    body: JSON.stringify({
      model: MODEL,
      max_tokens: MAX_TOKENS,
      stream,
      messages: [{ role: "user", content: text }],
    }),
  });
  const body = await res.text();
  const out: Outcome = { status: res.status, requestId: res.headers.get("request-id")!, stream };
  if (res.status !== 200) {
    const json = JSON.parse(body) as { type: string; error: Outcome["error"]; request_id: string };
    expect(json).toMatchObject({ type: "error", request_id: out.requestId });
    out.error = json.error;
    out.shouldRetry = res.headers.get("x-should-retry");
    return out;
  }
  if (!stream) {
    out.usage = normalise((JSON.parse(body) as { usage: Usage }).usage);
    return out;
  }
  let complete = false;
  for (const line of body.split("\n")) {
    if (!line.startsWith("data: ")) continue;
    const e = JSON.parse(line.slice(6)) as {
      type: string;
      message?: { usage: Usage };
      usage?: Partial<Usage>;
    };
    if (e.type === "message_start") out.usage = normalise(e.message!.usage);
    else if (e.type === "message_delta") out.usage = normalise({ ...out.usage, ...e.usage });
    else if (e.type === "message_stop") complete = true;
    else if (e.type === "error") out.status = 502;
  }
  if (!complete && out.status === 200) out.status = 502;
  return out;
}

const tokensOf = (e: UsageEntry): Usage => ({
  input_tokens: e.inputTokens,
  output_tokens: e.outputTokens,
  cache_creation_input_tokens: e.cacheCreationInputTokens,
  cache_read_input_tokens: e.cacheReadInputTokens,
});

(pg && redisUrl ? describe : describe.skip)(
  "budgets under concurrency and disconnects (real Redis + Postgres)",
  () => {
    let fake: FakeAnthropic;
    let direct: Redis;
    let dbUrl: string;
    let drop: (() => Promise<void>) | undefined;
    const services: RunningService[] = [];

    beforeAll(async () => {
      fake = await startFakeAnthropic({ maxRecorded: 0 });
      const db = await createTestDatabase(pg!);
      drop = db.drop;
      dbUrl = db.url;
      direct = new Redis(redisUrl!, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await direct.connect();
    }, 30_000);

    afterAll(async () => {
      await Promise.all(services.map((s) => s.close()));
      await fake?.close();
      direct?.disconnect();
      await drop?.();
    });

    async function replica(users: Array<{ user: string; key: string }>): Promise<RunningService> {
      const service = await startService({
        DATABASE_URL: dbUrl,
        REDIS_URL: redisUrl!,
        ANTHROPIC_API_KEY: FAKE_API_KEY,
        ANTHROPIC_BASE_URL: fake.url,
        AGENT_API_KEYS: users.map((u) => `${u.user}:${u.key}`).join(","),
        BUDGET_USER_DAILY_USD: String(BUDGET_USD),
        RATE_LIMIT_RPM: "1000000",
        RATE_LIMIT_TPM: "100000000",
        BATCH_POLLER_ENABLED: "false",
      });
      services.push(service);
      await until("redis", () => service.deps.redis?.status === "ready");
      return service;
    }

    const windowKey = (user: string) =>
      `{budget}:u:${encodeURIComponent(user)}:${utcDay(Date.now()).id}`;

    /** 300 requests at once (one in three a stream), spread over the replicas; then the checks. */
    async function overload(
      name: string,
      replicas: RunningService[],
      who: { user: string; key: string },
    ) {
      const started = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: REQUESTS }, (_, i) =>
          post(
            replicas[i % replicas.length]!.url,
            who.key,
            prompt(`${name} ${run} ${i}`),
            i % 3 === 0,
          ),
        ),
      );
      const elapsed = Date.now() - started;
      await Promise.all(replicas.map((s) => s.deps.usage.flush()));
      const rows = await replicas[0]!.deps.store.listUsage({ userId: who.user });

      // Only answers and budget refusals.
      expect(outcomes.filter((o) => o.status !== 200 && o.status !== 429)).toEqual([]);
      const served = outcomes.filter((o) => o.status === 200);
      const refused = outcomes.filter((o) => o.status === 429);
      expect(served.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      for (const o of refused) {
        expect(o.error).toMatchObject({ type: "budget_exceeded", budget: "user_daily" });
        // A refusal the budget can never cover today tells the SDK not to retry.
        if (o.error!.retryable === false) expect(o.shouldRetry).toBe("false");
      }

      // The ledger matches the responses exactly: one line per 200 with its tokens and cost, none
      // for a 429, nothing else.
      const byId = new Map<string, UsageEntry[]>();
      for (const r of rows) byId.set(r.requestId, [...(byId.get(r.requestId) ?? []), r]);
      for (const o of served) {
        const lines = byId.get(o.requestId) ?? [];
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatchObject({ status: "ok", model: MODEL });
        expect(tokensOf(lines[0]!)).toEqual(o.usage);
        expect(micros(lines[0]!.costUsd)).toBe(micros(catalog.costUsd(MODEL, o.usage!)));
      }
      for (const o of refused) expect(byId.has(o.requestId)).toBe(false);
      expect(rows).toHaveLength(served.length);

      // The spend recorded never passes the budget.
      const spentMicros = rows.reduce((s, r) => s + micros(r.costUsd), 0);
      const overspend = Math.max(0, spentMicros - micros(BUDGET_USD));
      expect(overspend).toBe(0);

      // Redis' counter is the ledger, and no hold is left behind.
      await until(
        "holds released",
        async () => Number(await direct.hget(windowKey(who.user), "reserved")) === 0,
      );
      const [spent, reserved] = await direct.hmget(windowKey(who.user), "spent", "reserved");
      expect(Number(spent)).toBe(spentMicros);
      expect(Number(reserved)).toBe(0);
      const usage = await replicas[0]!.deps.budgets!.usageFor(who.user);
      expect(usage.mode).toBe("redis");
      expect(usage.budgets.find((b) => b.budget === "user_daily")).toMatchObject({
        spent_usd: spentMicros / 1e6,
        reserved_usd: 0,
      });

      const hold =
        estimateInput({ messages: [{ role: "user", content: prompt(`${name} ${run} 100`) }] })
          .tokens *
          prices.inputPerMTok +
        MAX_TOKENS * prices.outputPerMTok;
      const retryable = refused.filter((o) => o.error!.retryable).length;
      report(
        `${name}: ${REQUESTS} concurrent requests on ${replicas.length} replica(s) in ${elapsed} ms against $${BUDGET_USD}/day ` +
          `(${MODEL}, max_tokens ${MAX_TOKENS}, hold about $${(hold / 1e6).toFixed(6)}): ${served.length} served, ${refused.length} refused ` +
          `(${retryable} retryable, ${refused.length - retryable} exhausted); ledger $${(spentMicros / 1e6).toFixed(6)} ` +
          `(${((100 * spentMicros) / micros(BUDGET_USD)).toFixed(1)} % of the budget), overspend $${(overspend / 1e6).toFixed(6)}; ` +
          `Redis spent ${spent} µ$ reserved ${reserved} µ$`,
      );
    }

    it("300 concurrent requests on one service never pass a $0.05 user budget; ledger = responses", async () => {
      const who = { user: `faults-budget-one-${run}`, key: `faults-budget-one-key-${run}` };
      const service = await replica([who]);
      await overload("one service", [service], who);
    }, 60_000);

    it("the same with two replicas sharing Redis and Postgres", async () => {
      const who = { user: `faults-budget-two-${run}`, key: `faults-budget-two-key-${run}` };
      const replicas = [await replica([who]), await replica([who])];
      await overload("two replicas", replicas, who);
    }, 60_000);

    it("settles and records a stream the client abandons: hold back to zero, ledger line aborted with partial tokens", async () => {
      const who = { user: `faults-budget-abort-${run}`, key: `faults-budget-abort-key-${run}` };
      const service = await replica([who]);
      const controller = new AbortController();
      const text = `abandon ${run} [[fake:${JSON.stringify({ minReplyChars: 1200, deltas: 60, deltaIntervalMs: 25 })}]]`;
      const res = await fetch(`${service.url}/v1/messages`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": who.key,
          "anthropic-version": "2023-06-01",
        },
        body: JSON.stringify({
          model: MODEL,
          max_tokens: 400,
          stream: true,
          messages: [{ role: "user", content: text }],
        }),
        signal: controller.signal,
      });
      expect(res.status).toBe(200);
      const requestId = res.headers.get("request-id")!;
      // Read until a few deltas have arrived, then hang up.
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let seen = "";
      let inputTokens = 0;
      while ((seen.match(/event: content_block_delta/g) ?? []).length < 5) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the stream ended before the client hung up");
        seen += decoder.decode(value, { stream: true });
        const start = /event: message_start\ndata: (.*)\n/.exec(seen);
        if (start)
          inputTokens = (JSON.parse(start[1]!) as { message: { usage: Usage } }).message.usage
            .input_tokens;
      }
      const deltasSeen = (seen.match(/event: content_block_delta/g) ?? []).length;
      controller.abort();
      await reader.cancel().catch(() => undefined);

      // The service notices, stops the upstream call, settles the hold and records the line.
      const row = await until("the ledger line", async () => {
        await service.deps.usage.flush();
        return (await service.deps.store.listUsage({ userId: who.user })).find(
          (r) => r.requestId === requestId,
        );
      });
      expect(row).toMatchObject({ status: "aborted", model: MODEL, inputTokens });
      // Partial output: at least what the client saw, less than the full 300-token answer.
      expect(row.outputTokens).toBeGreaterThanOrEqual(Math.floor((deltasSeen * 20) / 4));
      expect(row.outputTokens).toBeLessThan(300);
      expect(row.costUsd).toBeGreaterThan(0);
      expect(micros(row.costUsd)).toBe(micros(catalog.costUsd(MODEL, tokensOf(row))));
      await until(
        "the hold released",
        async () => Number(await direct.hget(windowKey(who.user), "reserved")) === 0,
      );
      const [spent, reserved] = await direct.hmget(windowKey(who.user), "spent", "reserved");
      expect(Number(reserved)).toBe(0);
      expect(Number(spent)).toBe(micros(row.costUsd));
      const usage = await service.deps.budgets!.usageFor(who.user);
      expect(usage.budgets.find((b) => b.budget === "user_daily")).toMatchObject({
        reserved_usd: 0,
        spent_usd: micros(row.costUsd) / 1e6,
      });
      report(
        `client hung up after ${deltasSeen} deltas: ledger line ${row.status}, ${row.inputTokens} in / ${row.outputTokens} out tokens ` +
          `(of 300), $${row.costUsd.toFixed(6)} charged; hold back to ${reserved} µ$, Redis spent ${spent} µ$`,
      );
    }, 30_000);

    // What a connection lost mid-call can do to a reserve: run once, its answer lost, then run
    // again when the client resends it after reconnecting (or when a healed partition delivers it
    // late). The hold must count once, or releasing it leaves a phantom hold on the budget.
    it("holds once per reservation id, however often the reserve command runs", async () => {
      const engine = new RedisBudgetEngine(direct, { tag: `faults-budget-${run}` });
      const line = {
        key: engine.key("u", `twice-${run}`, "day"),
        limit: 10_000,
        expireAt: Date.now() + 60_000,
      };
      expect(await engine.seed(line, 0)).toBe(true);
      const now = Date.now();
      const first = await engine.reserve("twice", [line], 3000, 10, now, now + 60_000);
      const again = await engine.reserve("twice", [line], 3000, 10, now, now + 60_000);
      expect(first).toMatchObject({ kind: "ok", states: [{ spent: 0, reserved: 3000 }] });
      expect(again).toMatchObject({ kind: "ok", states: [{ spent: 0, reserved: 3000 }] });
      // Released (settled at 0): nothing held; a late copy of the reserve holds nothing either.
      await engine.settle("twice", [line], 0);
      await engine.reserve("twice", [line], 3000, 10, now, now + 60_000);
      expect(await engine.peek([line])).toEqual([{ spent: 0, reserved: 0 }]);
      await direct.del(
        line.key,
        `{faults-budget-${run}}:res:twice`,
        `{faults-budget-${run}}:deadlines`,
      );
    });
  },
);
