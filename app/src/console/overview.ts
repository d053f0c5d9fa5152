/**
 * GET /v1/admin/overview: everything the operator console shows, in one JSON.
 *
 *  - Spend comes from the usage ledger (the record of spend: budgets seed their counters from it),
 *    over the current UTC day and month: the deployment's, each team's (its current members' rows,
 *    as GET /v1/admin/usage?group_by=team counts them) and the top users' today, each beside the
 *    limit that applies (the user's override, else BUDGET_USER_DAILY_USD). Holds of requests in
 *    flight are not spend yet, and ledger writes are batched (about 100 ms): a request shows once
 *    its row is written.
 *  - Requests and response-cache hits today: ledger rows by status (a hit is a `cached` row).
 *  - Savings: prompt caching from the ledger (cache-read tokens at the input price less the
 *    cache-read price, today); the response cache in process (console/activity.ts: what the
 *    spared calls would have cost, this replica, since it started).
 *  - Model mix today from the ledger; breaker state per model from the resilience layer (none on
 *    the offline model).
 *  - Recent refusals and alerts: this replica's rings (console/activity.ts).
 */
import type { AppDeps } from "../deps";
import { utcDay, utcMonth } from "../budget/lines";
import type { ModelCatalog } from "../llm/models";
import type { UsageGroup } from "../store/types";

/** How many users the overview ranks by spend today. */
export const TOP_USERS = 10;

const round = (n: number) => Math.round(n * 1e10) / 1e10;

const iso = (ms: number) => new Date(ms).toISOString();

export async function buildOverview(deps: AppDeps, catalog: ModelCatalog, now = Date.now()) {
  const admin = deps.store.admin;
  const day = utcDay(now);
  const month = utcMonth(now);
  const today = { sinceIso: iso(day.start), untilIso: iso(day.end) };
  const thisMonth = { sinceIso: iso(month.start), untilIso: iso(month.end) };
  const [users, teamsToday, teamsMonth, models, statuses, teams] = await Promise.all([
    admin.usageBy("user", today),
    admin.usageBy("team", today),
    admin.usageBy("team", thisMonth),
    admin.usageBy("model", today),
    admin.requestsByStatus(today),
    admin.listTeams(),
  ]);
  const sumCost = (groups: UsageGroup[]) => round(groups.reduce((s, g) => s + g.costUsd, 0));
  const costOf = (groups: UsageGroup[], key: string) =>
    round(groups.find((g) => g.key === key)?.costUsd ?? 0);

  const teamRows = await Promise.all(
    teams.map(async (t) => ({
      id: t.id,
      name: t.name,
      members: (await admin.listTeamMembers(t.id)).length,
      spent_today_usd: costOf(teamsToday, t.id),
      spent_month_usd: costOf(teamsMonth, t.id),
      daily_limit_usd: t.dailyUsd,
      monthly_limit_usd: t.monthlyUsd,
    })),
  );

  const defaultUserDaily = deps.config.BUDGET_USER_DAILY_USD ?? null;
  const topUsers = await Promise.all(
    users.slice(0, TOP_USERS).map(async (u) => {
      const user = u.key ?? "";
      const [overrides, team] = await Promise.all([
        deps.store.getBudgetOverrides(user),
        deps.store.getUserTeam(user),
      ]);
      const own = overrides.user_daily;
      return {
        user,
        team: team ? { id: team.id, name: team.name } : null,
        requests_today: u.requests,
        spent_today_usd: round(u.costUsd),
        daily_limit_usd: own === undefined ? defaultUserDaily : own,
        limit_source: own === undefined ? "default" : "override",
      };
    }),
  );

  const count = (status: string) => statuses.find((s) => s.status === status)?.requests ?? 0;
  const total = statuses.reduce((s, r) => s + r.requests, 0);
  const cached = count("cached");

  let promptReadTokens = 0;
  let promptSaved = 0;
  for (const m of models) {
    const p = catalog.prices(m.key ?? "");
    promptReadTokens += m.cacheReadInputTokens;
    promptSaved +=
      (m.cacheReadInputTokens * Math.max(0, p.inputPerMTok - p.cacheReadPerMTok)) / 1_000_000;
  }

  const breakers = (deps.resilience?.breakerStates() ?? []).map((b) => ({
    model: b.model,
    state: b.state === "halfOpen" ? "half_open" : b.state,
    opened_at: b.openedAt === null ? null : iso(b.openedAt),
    half_open_at: b.halfOpenAt === null ? null : iso(b.halfOpenAt),
    cooldown_until: b.cooldownUntil === null ? null : iso(b.cooldownUntil),
    failures: b.stats.failures,
    successes: b.stats.successes,
  }));
  const breakerOf = (model: string) => breakers.find((b) => b.model === model)?.state ?? null;

  const activity = deps.activity?.snapshot();

  return {
    object: "admin_overview" as const,
    at: iso(now),
    windows: {
      day: { start: today.sinceIso, end: today.untilIso },
      month: { start: thisMonth.sinceIso, end: thisMonth.untilIso },
    },
    budget_mode: deps.budgets?.mode ?? "disabled",
    deployment: {
      spent_today_usd: sumCost(users),
      spent_month_usd: sumCost(teamsMonth),
      daily_limit_usd: deps.config.BUDGET_DAILY_USD ?? null,
    },
    teams: teamRows,
    top_users: topUsers,
    requests: {
      today: total,
      cached,
      errors: count("error") + count("aborted"),
      cache_hit_ratio: total > 0 ? round(cached / total) : null,
    },
    savings: {
      response_cache: {
        scope: "replica" as const,
        since: activity?.since ?? null,
        hits: activity?.responseCache.hits ?? 0,
        saved_usd: round(activity?.responseCache.savedUsd ?? 0),
      },
      prompt_cache: {
        scope: "today" as const,
        read_tokens: promptReadTokens,
        saved_usd: round(promptSaved),
      },
    },
    models: models.map((m) => ({
      model: m.key ?? "",
      requests: m.requests,
      input_tokens: m.inputTokens,
      output_tokens: m.outputTokens,
      cost_usd: round(m.costUsd),
      breaker: breakerOf(m.key ?? ""),
    })),
    breakers,
    activity: {
      scope: "replica" as const,
      since: activity?.since ?? null,
      capacity: activity?.capacity ?? 0,
      refusals_total: activity?.refusalsTotal ?? 0,
      alerts_total: activity?.alertsTotal ?? 0,
      refusals: (activity?.refusals ?? []).map((r) => ({
        at: r.at,
        kind: r.kind,
        limit: r.limit,
        user: r.userId,
        scope_id: r.scopeId,
        retryable: r.retryable,
      })),
      alerts: (activity?.alerts ?? []).map((a) => ({
        at: a.at,
        budget: a.budget,
        scope_id: a.scopeId,
        threshold: a.threshold,
        spent_usd: round(a.spentUsd),
        limit_usd: a.limitUsd,
      })),
    },
  };
}

export type Overview = Awaited<ReturnType<typeof buildOverview>>;
