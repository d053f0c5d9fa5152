/**
 * Team budgets (budget kinds `team_daily`, `team_monthly`): a member's request is held against
 * their own budgets and their team's at once, the team's limit coming from its row (admin API).
 * Each scenario runs on the embedded defaults (PGlite, in-process counters) and on real Postgres
 * and Redis, where two replicas share the team's counter.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import pino from "pino";
import { createRedis } from "../../app/src/bootstrap";
import { BudgetService, type BudgetAlert, type ReserveRequest } from "../../app/src/budget/budgets";
import type { BudgetLimits } from "../../app/src/budget/kinds";
import { ModelCatalog } from "../../app/src/llm/models";
import { openStore } from "../../app/src/store";
import type { Store } from "../../app/src/store/types";
import { serviceBackends } from "../support/services";

const logger = pino({ level: "silent" });
const catalog = ModelCatalog.load();
// claude-haiku-4-5: 1,000 input and 1,000 output tokens hold $0.006.
const MODEL = "claude-haiku-4-5";
const HOLD_USD = 0.006;

describe.each(serviceBackends())("team budgets with $name", ({ open }) => {
  let store: Store;
  let redis: Redis | undefined;
  let cleanup: () => Promise<void>;
  const services: BudgetService[] = [];

  beforeAll(async () => {
    const e = await open();
    cleanup = e.cleanup;
    store = await openStore({
      DATABASE_URL: e.env.DATABASE_URL,
      DATA_DIR: e.env.DATA_DIR ?? "unused",
      DATABASE_POOL_MAX: 4,
    });
    if (e.env.REDIS_URL) {
      const r = createRedis(e.env.REDIS_URL, logger);
      redis = r;
      await new Promise<void>((resolve) => r.once("ready", () => resolve()));
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.close()));
    await redis?.quit();
    await store?.close();
    await cleanup?.();
  });

  /** Budget services sharing one key tag: replicas of one deployment (in process: one replica). */
  function replicas(n: number, limits: BudgetLimits = {}): BudgetService[] {
    const keyTag = `team-test-${randomBytes(6).toString("hex")}`;
    const made = Array.from(
      { length: redis ? n : 1 },
      () => new BudgetService({ limits, catalog, store, logger, redis, keyTag }),
    );
    services.push(...made);
    return made;
  }

  const unique = (label: string) => `${label}-${randomBytes(4).toString("hex")}`;

  async function teamOf(budgets: { dailyUsd?: number; monthlyUsd?: number }, users: string[]) {
    const team = await store.admin.createTeam({ name: unique("team"), ...budgets });
    for (const u of users) await store.admin.setUserTeam(u, team.id);
    return team;
  }

  const request = (userId: string, n: number): ReserveRequest => ({
    requestId: `req_${userId}_${n}`,
    userId,
    model: MODEL,
    inputTokensEstimate: 1000,
    maxTokens: 1000,
  });

  it("refuses a member once the team's daily budget is spent, though their own is not, and names the team budget", async () => {
    const [alice, bob, carol] = [unique("alice"), unique("bob"), unique("carol")];
    const team = await teamOf({ dailyUsd: 0.01 }, [alice, bob]);
    const [budgets] = replicas(1, { userDailyUsd: 5 });
    const first = await budgets!.reserve(request(bob, 1));
    if (!first.ok) throw first.error;
    await budgets!.settle(first.reservation, 0.009);

    const refused = await budgets!.reserve(request(alice, 1));
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.status).toBe(429);
    expect(refused.error.type).toBe("budget_exceeded");
    expect(refused.error.message).toMatch(/^your team's daily budget of \$0\.01 cannot cover/);
    expect(refused.error.details).toMatchObject({
      budget: "team_daily",
      scope_id: team.id,
      limit_usd: 0.01,
      spent_usd: 0.009,
    });
    // Alice's own budget is untouched, and a user in no team is not held by the team's.
    const usage = await budgets!.usageFor(alice);
    expect(usage.budgets.find((b) => b.budget === "user_daily")).toMatchObject({
      spent_usd: 0,
      remaining_usd: 5,
    });
    expect(usage.budgets.find((b) => b.budget === "team_daily")).toMatchObject({
      scope_id: team.id,
      source: "team",
      spent_usd: 0.009,
    });
    const outsider = await budgets!.reserve(request(carol, 1));
    expect(outsider.ok).toBe(true);
    if (outsider.ok) await budgets!.release(outsider.reservation);

    // Raising the team's limit (admin PATCH) lets members through once their limits are re-read.
    await store.admin.updateTeam(team.id, { dailyUsd: 1 });
    budgets!.invalidateOverrides();
    const after = await budgets!.reserve(request(alice, 2));
    expect(after.ok).toBe(true);
    if (after.ok) await budgets!.release(after.reservation);
  });

  it("holds the team's monthly budget too, and starts a team's counters from its members' ledger rows", async () => {
    const [alice, bob] = [unique("alice"), unique("bob")];
    const team = await teamOf({ monthlyUsd: 0.5 }, [alice, bob]);
    const now = new Date().toISOString();
    await store.recordUsage(
      [alice, bob, unique("outsider")].map((userId, i) => ({
        requestId: `seed_${i}`,
        userId,
        model: MODEL,
        inputTokens: 0,
        outputTokens: 0,
        cacheCreationInputTokens: 0,
        cacheReadInputTokens: 0,
        costUsd: 0.248,
        status: "ok" as const,
        createdAt: now,
      })),
    );
    // New counters: the team's month starts from its two members' $0.496, not the outsider's.
    const [budgets] = replicas(1);
    const refused = await budgets!.reserve(request(alice, 1));
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.details).toMatchObject({
      budget: "team_monthly",
      scope_id: team.id,
      spent_usd: 0.496,
    });
    expect(refused.error.message).toMatch(/^your team's monthly budget of \$0\.5 cannot cover/);
    const resetsAt = new Date();
    expect(refused.error.details.resets_at).toBe(
      new Date(Date.UTC(resetsAt.getUTCFullYear(), resetsAt.getUTCMonth() + 1, 1)).toISOString(),
    );
  });

  it("never lets members racing on two replicas hold more than the team's budget", async () => {
    const [alice, bob] = [unique("alice"), unique("bob")];
    const team = await teamOf({ dailyUsd: 0.05 }, [alice, bob]);
    const [one, two = one] = replicas(2, { userDailyUsd: 5 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? one! : two!).reserve(request(i % 2 ? alice : bob, i)),
      ),
    );
    const held = results.flatMap((r) => (r.ok ? [r.reservation] : []));
    // $0.05 covers eight holds of $0.006, never a ninth.
    expect(held).toHaveLength(Math.floor(0.05 / HOLD_USD));
    for (const r of results) {
      if (!r.ok) expect(r.error.details).toMatchObject({ budget: "team_daily", scope_id: team.id });
    }
    await Promise.all(held.map((r) => one!.settle(r, HOLD_USD)));
    const usage = await two!.usageFor(alice);
    const teamUsage = usage.budgets.find((b) => b.budget === "team_daily")!;
    expect(teamUsage.spent_usd).toBeCloseTo(8 * HOLD_USD, 9);
    expect(teamUsage.spent_usd!).toBeLessThanOrEqual(0.05);
    expect(teamUsage.reserved_usd).toBe(0);
  });

  it("alerts at 50, 80 and 100 % of the team's budget, once each, whichever member spends", async () => {
    const [alice, bob] = [unique("alice"), unique("bob")];
    const team = await teamOf({ dailyUsd: 1 }, [alice, bob]);
    const [one, two = one] = replicas(2);
    const alerts: BudgetAlert[] = [];
    for (const s of new Set([one!, two!])) s.onAlert((a) => alerts.push(a));
    const spend = async (svc: BudgetService, userId: string, n: number, usd: number) => {
      const r = await svc.reserve(request(userId, n));
      if (!r.ok) throw r.error;
      await svc.settle(r.reservation, usd);
    };
    await spend(one!, alice, 1, 0.3); // 30 %
    await spend(two!, bob, 2, 0.25); // 55 %: 50
    await spend(one!, bob, 3, 0.05); // 60 %
    await spend(two!, alice, 4, 0.3); // 90 %: 80
    await spend(one!, alice, 5, 0.15); // 105 %: 100
    const refused = await two!.reserve(request(bob, 6));
    expect(refused.ok).toBe(false);
    const teamAlerts = alerts.filter((a) => a.budget === "team_daily");
    expect(teamAlerts.map((a) => [a.threshold, a.scopeId])).toEqual([
      [50, team.id],
      [80, team.id],
      [100, team.id],
    ]);
    expect(teamAlerts[2]).toMatchObject({ limitUsd: 1 });
  });
});
