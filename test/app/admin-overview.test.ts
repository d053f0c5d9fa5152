/**
 * GET /v1/admin/overview (the operator console's snapshot) through the real service, on the
 * embedded defaults and on real Postgres and Redis: who may read it, and its numbers from a seeded
 * ledger, real refusals (a budget, the rate limit) and a response-cache hit.
 */
import { randomBytes } from "node:crypto";
import { ActivityLog } from "../../app/src/console/activity";
import { utcDay, utcMonth } from "../../app/src/budget/lines";
import type { Overview } from "../../app/src/console/overview";
import { FAKE_API_KEY, startFakeAnthropic, type FakeAnthropic } from "../support/fake-anthropic";
import { startService, type RunningService } from "../support/service";
import { serviceBackends } from "../support/services";

const run = randomBytes(4).toString("hex");
const ADMIN = { name: "ops", key: `admin-key-${run}-0123456789` };
const USER = { user: `static-${run}`, key: `user-key-${run}` };

describe("ActivityLog", () => {
  it("keeps the newest events in a bounded ring, newest first, and counts them all", () => {
    let t = Date.parse("2026-01-02T03:04:05.000Z");
    const log = new ActivityLog({ capacity: 3, now: () => t++ });
    for (let i = 0; i < 5; i++)
      log.refused({
        kind: "budget",
        limit: "user_daily",
        userId: `u${i}`,
        scopeId: null,
        retryable: false,
      });
    log.cacheHit(0.25);
    log.cacheHit(Number.NaN);
    const s = log.snapshot();
    expect(s.refusals.map((r) => r.userId)).toEqual(["u4", "u3", "u2"]);
    expect(s.refusalsTotal).toBe(5);
    expect(s.responseCache).toEqual({ hits: 2, savedUsd: 0.25 });
    expect(s.since).toBe("2026-01-02T03:04:05.000Z");
  });
});

describe.each(serviceBackends())("GET /v1/admin/overview with $name", ({ open }) => {
  let service: RunningService;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const e = await open();
    cleanup = e.cleanup;
    service = await startService({
      ...e.env,
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      ADMIN_API_KEYS: `${ADMIN.name}:${ADMIN.key}`,
      BUDGET_USER_DAILY_USD: "10",
      BUDGET_DAILY_USD: "50",
      RATE_LIMIT_RPM: "3",
    });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await cleanup?.();
  });

  const call = (method: string, path: string, key: string | null = ADMIN.key, body?: unknown) =>
    fetch(`${service.url}${path}`, {
      method,
      headers: {
        ...(key ? { "x-api-key": key } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const message = (key: string, text: string) =>
    fetch(`${service.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: "claude-haiku-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: text }],
      }),
    });

  it("answers 401 without a key, 403 to a user's key, and never caches", async () => {
    const none = await call("GET", "/v1/admin/overview", null);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { type: "authentication_error" } });
    const user = await call("GET", "/v1/admin/overview", USER.key);
    expect(user.status).toBe(403);
    expect(await user.json()).toMatchObject({ error: { type: "permission_error" } });
    const ok = await call("GET", "/v1/admin/overview");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("cache-control")).toBe("no-store");
  });

  it("sums today's and this month's ledger per deployment, team, user and model, with limits, savings, refusals and breakers", async () => {
    const now = Date.now();
    const day = utcDay(now);
    const month = utcMonth(now);
    const team = (await (
      await call("POST", "/v1/admin/teams", undefined, {
        name: `platform-${run}`,
        budgets: { daily_usd: 10, monthly_usd: 100 },
      })
    ).json()) as { id: string; name: string };
    const [alice, bob, carol] = [`alice-${run}`, `bob-${run}`, `carol-${run}`] as const;
    await call("PATCH", `/v1/admin/users/${alice}`, undefined, { team: team.id });
    await call("PUT", `/v1/admin/users/${bob}/budgets`, undefined, { user_daily: 5 });
    const at = new Date(Math.max(day.start, now - 60_000)).toISOString();
    const entry = (
      userId: string,
      model: string,
      costUsd: number,
      extra: Partial<{
        cacheReadInputTokens: number;
        status: "ok" | "cached";
        createdAt: string;
      }> = {},
    ) => ({
      requestId: `req-${randomBytes(6).toString("hex")}`,
      userId,
      model,
      inputTokens: 100,
      outputTokens: 10,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: extra.cacheReadInputTokens ?? 0,
      costUsd,
      status: extra.status ?? ("ok" as const),
      createdAt: extra.createdAt ?? at,
    });
    // Earlier this month (when today is not the 1st): counts for the month, not the day.
    const earlier = month.start < day.start;
    await service.deps.store.recordUsage([
      entry(alice, "claude-haiku-4-5", 8.5, { cacheReadInputTokens: 1_000_000 }),
      entry(bob, "claude-sonnet-4-6", 6),
      entry(carol, "claude-haiku-4-5", 2),
      entry(carol, "claude-haiku-4-5", 0, { status: "cached" }),
      ...(earlier
        ? [entry(alice, "claude-haiku-4-5", 20, { createdAt: new Date(month.start).toISOString() })]
        : []),
      // Last month: in neither window.
      entry(alice, "claude-haiku-4-5", 1000, {
        createdAt: new Date(month.start - 1).toISOString(),
      }),
    ]);

    // A budget refusal (bob's override is spent) and a rate-limit refusal (RPM 3).
    const { key: bobKey } = (await (
      await call("POST", "/v1/admin/keys", undefined, { user: bob })
    ).json()) as { key: string };
    const refused = await message(bobKey, "hello");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { type: "budget_exceeded", budget: "user_daily" },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push(
        (await fetch(`${service.url}/v1/usage`, { headers: { "x-api-key": USER.key } })).status,
      );
    expect(statuses).toEqual([200, 200, 200, 429]);
    // A response-cache hit, on the offline model (which costs nothing): counted, saving $0.
    const { key: daveKey } = (await (
      await call("POST", "/v1/admin/keys", undefined, { user: `dave-${run}` })
    ).json()) as { key: string };
    expect((await message(daveKey, "same question")).headers.get("x-cache")).toBe("MISS");
    expect((await message(daveKey, "same question")).headers.get("x-cache")).toBe("HIT");
    await service.deps.usage.flush();

    const res = await call("GET", "/v1/admin/overview");
    expect(res.status).toBe(200);
    const o = (await res.json()) as Overview;
    expect(o.windows.day).toEqual({
      start: new Date(day.start).toISOString(),
      end: new Date(day.end).toISOString(),
    });
    // Dave's offline request and its cached replay cost $0.
    expect(o.deployment).toEqual({
      spent_today_usd: 16.5,
      spent_month_usd: earlier ? 36.5 : 16.5,
      daily_limit_usd: 50,
    });
    expect(o.teams.find((t) => t.id === team.id)).toEqual({
      id: team.id,
      name: team.name,
      members: 1,
      spent_today_usd: 8.5,
      spent_month_usd: earlier ? 28.5 : 8.5,
      daily_limit_usd: 10,
      monthly_limit_usd: 100,
    });
    expect(o.top_users.slice(0, 3)).toEqual([
      {
        user: alice,
        team: { id: team.id, name: team.name },
        requests_today: 1,
        spent_today_usd: 8.5,
        daily_limit_usd: 10,
        limit_source: "default",
      },
      {
        user: bob,
        team: null,
        requests_today: 1,
        spent_today_usd: 6,
        daily_limit_usd: 5,
        limit_source: "override",
      },
      expect.objectContaining({ user: carol, requests_today: 2, spent_today_usd: 2 }),
    ]);
    expect(o.requests).toEqual({ today: 6, cached: 2, errors: 0, cache_hit_ratio: 0.3333333333 });
    // 1M cache-read tokens on Haiku: $1.00 at the input price less $0.10 at the read price.
    expect(o.savings.prompt_cache).toEqual({
      scope: "today",
      read_tokens: 1_000_000,
      saved_usd: 0.9,
    });
    expect(o.savings.response_cache).toMatchObject({ scope: "replica", hits: 1, saved_usd: 0 });
    expect(o.models.map((m) => [m.model, m.requests, m.cost_usd])).toEqual([
      ["claude-haiku-4-5", 4, 10.5], // with Dave's cache hit, recorded under the model asked for
      ["claude-sonnet-4-6", 1, 6],
      [expect.any(String), 1, 0], // the offline model's answer to Dave
    ]);
    // The offline model has no upstream, so no breakers.
    expect(o.breakers).toEqual([]);
    expect(o.activity.refusals.slice(0, 2)).toEqual([
      expect.objectContaining({ kind: "rate_limit", limit: "rpm", user: USER.user }),
      expect.objectContaining({
        kind: "budget",
        limit: "user_daily",
        user: bob,
        scope_id: bob,
        retryable: false,
      }),
    ]);
    expect(o.activity.refusals_total).toBe(2);
    expect(o.activity.capacity).toBe(100);
    // Reading the overview is not an admin action: nothing in the audit log.
    const audit = (await (await call("GET", "/v1/admin/audit?limit=1000")).json()) as {
      data: Array<{ action: string }>;
    };
    expect(audit.data.map((a) => a.action)).not.toContain("overview");
  });
});

describe("GET /v1/admin/overview with a real upstream (the fake Anthropic API)", () => {
  let fake: FakeAnthropic;
  let service: RunningService;

  beforeAll(async () => {
    fake = await startFakeAnthropic();
    service = await startService({
      DATA_DIR: "memory://",
      AGENT_API_KEYS: `${USER.user}:${USER.key}`,
      ADMIN_API_KEYS: `${ADMIN.name}:${ADMIN.key}`,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      ANTHROPIC_BASE_URL: fake.url,
    });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  it("shows each model's breaker, its spend, and what a response-cache hit saved", async () => {
    const ask = () =>
      fetch(`${service.url}/v1/messages`, {
        method: "POST",
        headers: {
          "x-api-key": USER.key,
          "anthropic-version": "2023-06-01",
          "content-type": "application/json",
        },
        body: JSON.stringify({
          model: "claude-haiku-4-5",
          max_tokens: 16,
          messages: [{ role: "user", content: `breaker ${run}` }],
        }),
      });
    const first = await ask();
    expect(first.headers.get("x-cache")).toBe("MISS");
    const { usage } = (await first.json()) as {
      usage: { input_tokens: number; output_tokens: number };
    };
    expect((await ask()).headers.get("x-cache")).toBe("HIT");
    await service.deps.usage.flush();
    const o = (await (
      await fetch(`${service.url}/v1/admin/overview`, { headers: { "x-api-key": ADMIN.key } })
    ).json()) as Overview;
    // Haiku: $1/MTok in, $5/MTok out. The hit spared a call costing as much as the first.
    const cost = (usage.input_tokens * 1 + usage.output_tokens * 5) / 1e6;
    // Every model of the table has a breaker; the one called has a success on it.
    expect(o.breakers).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ model: "claude-haiku-4-5", state: "closed", successes: 1 }),
        expect.objectContaining({ model: "claude-sonnet-4-6", state: "closed", opened_at: null }),
      ]),
    );
    expect(o.models).toEqual([
      expect.objectContaining({ model: "claude-haiku-4-5", requests: 2, breaker: "closed" }),
    ]);
    expect(o.models[0]!.cost_usd).toBeCloseTo(cost, 9);
    expect(o.savings.response_cache.hits).toBe(1);
    expect(o.savings.response_cache.saved_usd).toBeCloseTo(cost, 9);
    expect(o.requests).toEqual({ today: 2, cached: 1, errors: 0, cache_hit_ratio: 0.5 });
  });
});
