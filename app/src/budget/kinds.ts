/**
 * Budget kinds, one row each, holding everything that tells one kind from another.
 *
 * Everything else derives from this table: the unions (`BudgetName`, `UserBudgetName`,
 * `WindowBudgetName`), the BUDGET_* environment variables (config.ts), the per-user override
 * check in SQL (store/migrations.ts, store/sql-ledger.ts), the windows a hold counts against
 * (lines.ts), what a refusal says (refusal.ts), and the stack config's `agent:appBudgets` with the
 * variables a deployment sets from it (`appBudgetsSchema`, `budgetEnvironment`, imported by infra).
 * Adding a kind is adding a row; see CONTRIBUTING.md.
 *
 * Plain data and zod only: the deployment program imports this module.
 */
import * as z from "zod";

export interface BudgetKindRow {
  /** The variable holding the configured default limit, in USD (unset: no limit). */
  env: `BUDGET_${string}_USD`;
  /** The same default under the stack config's `agent:appBudgets`. */
  configKey: `${string}Usd`;
  /** What one limit covers. */
  scope: "request" | "session" | "user" | "deployment";
  /**
   * The running total a hold counts against: its Redis key part, and when it starts again (a
   * counter that never resets is dropped after `sessionIdleMs` unused and re-seeded from the
   * ledger). Null for a request, whose cost is checked on its own.
   */
  counter: { key: string; resets: "never" | "utc-day" } | null;
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
export type BudgetEnvName = Kinds[BudgetName]["env"];
export type BudgetConfigKey = Kinds[BudgetName]["configKey"];

/** Default limits in USD by stack config key (`agent:appBudgets`); unset: no limit of that kind. */
export type BudgetLimits = { [C in BudgetConfigKey]?: number };

export const isBudgetName = (name: string): name is BudgetName => Object.hasOwn(BUDGET_KINDS, name);
export const BUDGET_NAMES: readonly BudgetName[] = Object.keys(BUDGET_KINDS).filter(isBudgetName);

/** The kind's row, as the common row type (its optional fields readable). */
export const budgetKind = (name: BudgetName): BudgetKindRow => BUDGET_KINDS[name];

export const isUserBudgetName = (name: string): name is UserBudgetName =>
  isBudgetName(name) && budgetKind(name).overridesSince !== undefined;
export const USER_BUDGET_NAMES: readonly UserBudgetName[] = BUDGET_NAMES.filter(isUserBudgetName);

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

/** One property per kind, named by the row's `field`. */
function byKind<F extends "env" | "configKey", V>(
  field: F,
  value: (name: BudgetName) => V,
): Record<Kinds[BudgetName][F], V> {
  // Object.fromEntries cannot know its keys; the map over every kind gives each one.
  return Object.fromEntries(
    BUDGET_NAMES.map((name) => [BUDGET_KINDS[name][field], value(name)]),
  ) as Record<Kinds[BudgetName][F], V>;
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
    const usd = limits[BUDGET_KINDS[name].configKey];
    if (usd !== undefined) env[BUDGET_KINDS[name].env] = String(usd);
  }
  return env;
}

/** The configured default limits, read from the validated BUDGET_*_USD variables. */
export function budgetLimitsFrom(config: { [E in BudgetEnvName]?: number }): BudgetLimits {
  const limits: BudgetLimits = {};
  for (const name of BUDGET_NAMES)
    limits[BUDGET_KINDS[name].configKey] = config[BUDGET_KINDS[name].env];
  return limits;
}
