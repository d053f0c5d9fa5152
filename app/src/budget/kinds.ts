/**
 * Budget kinds, one row each, holding everything that tells one kind from another.
 *
 * Everything else derives from this table: the unions (`BudgetName`, `UserBudgetName`,
 * `TeamBudgetName`, `WindowBudgetName`), the BUDGET_* environment variables (config.ts), the
 * limits read from a team's row (limits.ts), the per-user override check in SQL
 * (store/migrations.ts, store/sql-ledger.ts), the windows a hold counts against (lines.ts), what
 * a refusal says (refusal.ts), and the stack config's `agent:appBudgets` with the
 * variables a deployment sets from it (`appBudgetsSchema`, `budgetEnvironment`, imported by infra).
 * Adding a kind is adding a row; see CONTRIBUTING.md.
 *
 * Plain data and zod only: the deployment program imports this module.
 */
import * as z from "zod";

export interface BudgetKindRow {
  /**
   * The variable holding the configured default limit, in USD (unset: no limit). Null for a kind
   * whose limit is not configured per deployment (a team's comes from its row in `teams`).
   */
  env: `BUDGET_${string}_USD` | null;
  /** The same default under the stack config's `agent:appBudgets`; null with `env`. */
  configKey: `${string}Usd` | null;
  /** What one limit covers. */
  scope: "request" | "session" | "user" | "team" | "deployment";
  /**
   * The running total a hold counts against: its Redis key part, and when it starts again (a
   * counter that never resets is dropped after `sessionIdleMs` unused and re-seeded from the
   * ledger). Null for a request, whose cost is checked on its own.
   */
  counter: { key: string; resets: "never" | "utc-day" | "utc-month" } | null;
  /**
   * A team kind's limit: this field of the team's row (admin API, `teams`), applied to every
   * member's requests. A team without it has no limit of this kind. Team kinds have no `env`:
   * a deployment-wide default for every team would be a second source of the same limit.
   */
  teamLimit?: "dailyUsd" | "monthlyUsd";
  /**
   * Users may have their own limit (Postgres `budget_overrides`) since this schema migration, the
   * one whose CHECK first allowed the kind (`overridableCheck`). Absent: no per-user limit.
   */
  overridesSince?: number;
  /** How a refusal names the budget. */
  label: string;
  /** What a refusal advises when the budget is exhausted and gives no reset time. */
  advice: string;
}

/** In the order holds check them: the first budget that cannot cover a request refuses it. */
export const BUDGET_KINDS = {
  /** Most one request may cost; max_tokens is capped to fit. An agent turn's model calls share it. */
  request: {
    env: "BUDGET_REQUEST_USD",
    configKey: "requestUsd",
    scope: "request",
    counter: null,
    overridesSince: 100,
    label: "the per-request budget",
    advice: "its input alone costs more; shorten it",
  },
  /** Most one session may cost over its whole life: it never resets. */
  session: {
    env: "BUDGET_SESSION_USD",
    configKey: "sessionUsd",
    scope: "session",
    counter: { key: "s", resets: "never" },
    overridesSince: 100,
    label: "this session's budget",
    advice: "session budgets do not reset; start a new session",
  },
  /** Most one user (all of their keys) may spend per UTC day. */
  user_daily: {
    env: "BUDGET_USER_DAILY_USD",
    configKey: "userDailyUsd",
    scope: "user",
    counter: { key: "u", resets: "utc-day" },
    overridesSince: 100,
    label: "your daily budget",
    advice: "it resets at the end of the UTC day",
  },
  /** Most one team (all of its members) may spend per UTC day: the team's `daily_usd`. */
  team_daily: {
    env: null,
    configKey: null,
    scope: "team",
    counter: { key: "t", resets: "utc-day" },
    teamLimit: "dailyUsd",
    label: "your team's daily budget",
    advice: "it resets at the end of the UTC day",
  },
  /** Most one team may spend per UTC calendar month: the team's `monthly_usd`. */
  team_monthly: {
    env: null,
    configKey: null,
    scope: "team",
    counter: { key: "tm", resets: "utc-month" },
    teamLimit: "monthlyUsd",
    label: "your team's monthly budget",
    advice: "it resets at the end of the UTC month",
  },
  /** Most the whole deployment may spend per UTC day. */
  daily: {
    env: "BUDGET_DAILY_USD",
    configKey: "dailyUsd",
    scope: "deployment",
    counter: { key: "d", resets: "utc-day" },
    label: "the service's daily budget",
    advice: "it resets at the end of the UTC day",
  },
} as const satisfies Record<string, BudgetKindRow>;

type Kinds = typeof BUDGET_KINDS;

export type BudgetName = keyof Kinds;
/** Kinds a user may have their own limit of. */
export type UserBudgetName = {
  [K in BudgetName]: Kinds[K] extends { overridesSince: number } ? K : never;
}[BudgetName];
/** Kinds with a running total, which a hold counts against: every kind but the per-request one. */
export type WindowBudgetName = {
  [K in BudgetName]: Kinds[K]["counter"] extends null ? never : K;
}[BudgetName];
export type BudgetEnvName = Exclude<Kinds[BudgetName]["env"], null>;
export type BudgetConfigKey = Exclude<Kinds[BudgetName]["configKey"], null>;

/** Default limits in USD by stack config key (`agent:appBudgets`); unset: no limit of that kind. */
export type BudgetLimits = { [C in BudgetConfigKey]?: number };

export const isBudgetName = (name: string): name is BudgetName => Object.hasOwn(BUDGET_KINDS, name);
export const BUDGET_NAMES: readonly BudgetName[] = Object.keys(BUDGET_KINDS).filter(isBudgetName);

/** The kind's row, as the common row type (its optional fields readable). */
export const budgetKind = (name: BudgetName): BudgetKindRow => BUDGET_KINDS[name];

export const isUserBudgetName = (name: string): name is UserBudgetName =>
  isBudgetName(name) && budgetKind(name).overridesSince !== undefined;
export const USER_BUDGET_NAMES: readonly UserBudgetName[] = BUDGET_NAMES.filter(isUserBudgetName);

/** Kinds whose limit is a team's (from its row): counted per team, for every member's requests. */
export type TeamBudgetName = {
  [K in BudgetName]: Kinds[K] extends { teamLimit: string } ? K : never;
}[BudgetName];
export const isTeamBudgetName = (name: string): name is TeamBudgetName =>
  isBudgetName(name) && budgetKind(name).teamLimit !== undefined;
export const TEAM_BUDGET_NAMES: readonly TeamBudgetName[] = BUDGET_NAMES.filter(isTeamBudgetName);

export const WINDOW_BUDGET_NAMES: readonly WindowBudgetName[] = BUDGET_NAMES.filter(
  (name): name is WindowBudgetName => BUDGET_KINDS[name].counter !== null,
);

/**
 * The CHECK on `budget_overrides.budget` as of schema migration `version`: the kinds users could
 * override by then. A migration that has shipped keeps its text (databases record only its
 * version), so a new overridable kind names a new migration in `overridesSince`, and that migration
 * replaces the constraint with `overridableCheck(<its version>)`.
 */
export function overridableCheck(version: number): string {
  const names = BUDGET_NAMES.filter(
    (name) => (budgetKind(name).overridesSince ?? Infinity) <= version,
  );
  return `budget IN (${names.map((name) => `'${name}'`).join(", ")})`;
}

/** One property per kind that has the row's `field` (kinds without a configured default have none). */
function byKind<F extends "env" | "configKey", V>(
  field: F,
  value: (name: BudgetName) => V,
): Record<Exclude<Kinds[BudgetName][F], null>, V> {
  // Object.fromEntries cannot know its keys; the map over every kind with the field gives each one.
  return Object.fromEntries(
    BUDGET_NAMES.flatMap((name) => {
      const key = budgetKind(name)[field];
      return key === null ? [] : [[key, value(name)]];
    }),
  ) as Record<Exclude<Kinds[BudgetName][F], null>, V>;
}

/** The BUDGET_*_USD variables of the service's configuration (config.ts). */
export const budgetEnvShape = byKind("env", () => z.coerce.number().positive().optional());

/** `agent:appBudgets` in the stack config: a default limit per kind, in USD. */
export const appBudgetsSchema = z.strictObject(
  byKind("configKey", () => z.number().positive().optional()),
);

/** The variables that carry `limits` to the service; kinds without a limit are left out. */
export function budgetEnvironment(limits: BudgetLimits): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of BUDGET_NAMES) {
    const { configKey, env: variable } = BUDGET_KINDS[name];
    const usd = configKey === null ? undefined : limits[configKey];
    if (usd !== undefined && variable !== null) env[variable] = String(usd);
  }
  return env;
}

/** The configured default limits, read from the validated BUDGET_*_USD variables. */
export function budgetLimitsFrom(config: { [E in BudgetEnvName]?: number }): BudgetLimits {
  const limits: BudgetLimits = {};
  for (const name of BUDGET_NAMES) {
    const { configKey, env } = BUDGET_KINDS[name];
    if (configKey !== null && env !== null) limits[configKey] = config[env];
  }
  return limits;
}
