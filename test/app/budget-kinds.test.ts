/**
 * The budget kinds table (app/src/budget/kinds.ts) and what derives from it: the SQL check of
 * per-user overrides, the environment variables, the stack config's `agent:appBudgets`, the
 * windows a hold counts against.
 */
import {
  appBudgetsSchema,
  BUDGET_KINDS,
  BUDGET_NAMES,
  budgetEnvironment,
  budgetLimitsFrom,
  overridableCheck,
  TEAM_BUDGET_NAMES,
  USER_BUDGET_NAMES,
  WINDOW_BUDGET_NAMES,
} from "../../app/src/budget/kinds";
import { budgetLines } from "../../app/src/budget/lines";
import { envSchema, loadConfig } from "../../app/src/config";
import { MIGRATIONS } from "../../app/src/store/migrations";

describe("budget kinds", () => {
  it("names the kinds in the order holds check them", () => {
    expect(BUDGET_NAMES).toEqual([
      "request",
      "session",
      "user_daily",
      "team_daily",
      "team_monthly",
      "daily",
    ]);
    expect(USER_BUDGET_NAMES).toEqual(["request", "session", "user_daily"]);
    expect(TEAM_BUDGET_NAMES).toEqual(["team_daily", "team_monthly"]);
    expect(WINDOW_BUDGET_NAMES).toEqual([
      "session",
      "user_daily",
      "team_daily",
      "team_monthly",
      "daily",
    ]);
  });

  it("keeps the text of the shipped migration that created budget_overrides", () => {
    // Databases record only a migration's version: its statements must never change.
    const v100 = MIGRATIONS.find((m) => m.version === 100)!;
    expect(v100.statements.join("\n")).toContain(
      "CHECK (budget IN ('request', 'session', 'user_daily'))",
    );
  });

  it("allows each overridable kind in the migration its row names", () => {
    for (const name of USER_BUDGET_NAMES) {
      const since = BUDGET_KINDS[name].overridesSince;
      const migration = MIGRATIONS.find((m) => m.version === since);
      expect(migration).toBeDefined();
      expect(migration!.statements.join("\n")).toContain(overridableCheck(since));
      expect(overridableCheck(since)).toContain(`'${name}'`);
    }
  });

  it("reads one variable per kind, and the stack config's appBudgets carries them there", () => {
    for (const name of BUDGET_NAMES) {
      const { env, configKey } = BUDGET_KINDS[name];
      // Team kinds take their limit from the team's row only: no deployment default to configure.
      if (TEAM_BUDGET_NAMES.some((t) => t === name)) {
        expect([env, configKey]).toEqual([null, null]);
        continue;
      }
      expect(env).not.toBeNull();
      expect(envSchema.shape).toHaveProperty(env!);
    }
    expect(Object.keys(envSchema.shape).filter((v) => /^BUDGET_TEAM/.test(v))).toEqual([]);
    const stack = appBudgetsSchema.parse({ userDailyUsd: 2, dailyUsd: 50 });
    const env = budgetEnvironment(stack);
    expect(env).toEqual({ BUDGET_USER_DAILY_USD: "2", BUDGET_DAILY_USD: "50" });
    expect(budgetLimitsFrom(loadConfig(env))).toEqual({
      requestUsd: undefined,
      sessionUsd: undefined,
      userDailyUsd: 2,
      dailyUsd: 50,
    });
  });

  it("refuses what the stack config must not hold", () => {
    expect(appBudgetsSchema.safeParse({ weeklyUsd: 1 }).success).toBe(false);
    expect(appBudgetsSchema.safeParse({ sessionUsd: 0 }).success).toBe(false);
    expect(appBudgetsSchema.safeParse({}).success).toBe(true);
  });

  it("gives each kind with a counter its window", () => {
    const limit = { usd: 1, source: "default" as const };
    const now = Date.parse("2025-06-01T12:00:00Z");
    const lines = budgetLines(
      { keyTag: "t", sessionIdleMs: 1000 },
      "alice",
      "6f1c0a52-0000-4000-8000-000000000000",
      { request: limit, session: limit, user_daily: limit, daily: limit },
      now,
    );
    expect(lines.map((l) => [l.budget, l.key, l.scopeId, l.window?.end ?? null])).toEqual([
      [
        "session",
        "{t}:s:6f1c0a52-0000-4000-8000-000000000000",
        "6f1c0a52-0000-4000-8000-000000000000",
        null,
      ],
      ["user_daily", "{t}:u:alice:2025-06-01", "alice", "2025-06-02T00:00:00.000Z"],
      ["daily", "{t}:d:2025-06-01", "deployment", "2025-06-02T00:00:00.000Z"],
    ]);
    expect(lines[0]!.seedFilter).toEqual({ sessionId: "6f1c0a52-0000-4000-8000-000000000000" });
    expect(lines[0]!.expireAt).toBe(now + 1000);
    expect(lines[1]!.seedFilter).toEqual({
      userId: "alice",
      sinceIso: "2025-06-01T00:00:00.000Z",
      untilIso: "2025-06-02T00:00:00.000Z",
    });
    // A team's windows are keyed by the team, its month running to the first of the next month.
    const team = {
      usd: 1,
      source: "team" as const,
      teamId: "6f1c0a52-0000-4000-8000-0000000000aa",
    };
    const teamLines = budgetLines(
      { keyTag: "t", sessionIdleMs: 1000 },
      "alice",
      null,
      { team_daily: team, team_monthly: team },
      Date.parse("2025-12-31T23:00:00Z"),
    );
    expect(teamLines.map((l) => [l.budget, l.key, l.scopeId, l.window])).toEqual([
      [
        "team_daily",
        `{t}:t:${team.teamId}:2025-12-31`,
        team.teamId,
        { start: "2025-12-31T00:00:00.000Z", end: "2026-01-01T00:00:00.000Z" },
      ],
      [
        "team_monthly",
        `{t}:tm:${team.teamId}:2025-12`,
        team.teamId,
        { start: "2025-12-01T00:00:00.000Z", end: "2026-01-01T00:00:00.000Z" },
      ],
    ]);
    expect(teamLines[1]!.seedFilter).toEqual({
      teamId: team.teamId,
      sinceIso: "2025-12-01T00:00:00.000Z",
      untilIso: "2026-01-01T00:00:00.000Z",
    });
    expect(teamLines[1]!.expireAt).toBe(Date.parse("2026-01-02T00:00:00Z"));
    // Without a team id (no team), no team window.
    expect(
      budgetLines({ keyTag: "t", sessionIdleMs: 1 }, "alice", null, { team_daily: limit }, now),
    ).toEqual([]);
    // Without a session, no session window.
    expect(
      budgetLines({ keyTag: "t", sessionIdleMs: 1 }, "alice", null, { session: limit }, now),
    ).toEqual([]);
  });
});
