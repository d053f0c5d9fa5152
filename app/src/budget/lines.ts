/**
 * The budget windows a hold counts against (a session, a user's UTC day, a team's UTC day and
 * month, the deployment's UTC day: the kinds of kinds.ts with a counter), as engine lines with what alerts and refusals say
 * about each. Pure: the same user, session, limits and time always give the same keys, so a hold
 * taken by one replica can be settled by another (batches settle after restarts this way).
 */
import type { SpendFilter } from "../store/types";
import type { BudgetWindow } from "./alerts";
import { microsFloor, type EngineLine } from "./engine";
import {
  BUDGET_KINDS,
  WINDOW_BUDGET_NAMES,
  type BudgetKindRow,
  type BudgetName,
  type WindowBudgetName,
} from "./kinds";

export const DAY_MS = 86_400_000;

export interface Limit {
  usd: number;
  /** A configured default (BUDGET_*), the user's own (`budget_overrides`), or their team's row. */
  source: "default" | "override" | "team";
  /** For a team kind: the team whose members share the window. */
  teamId?: string;
}

/** The limits that apply to one user, by kind; absent: no limit of that kind. */
export type Limits = { [K in BudgetName]?: Limit };

/** One budget window a hold counts against, with what alerts and errors say about it. */
export interface Line extends EngineLine {
  budget: WindowBudgetName;
  scopeId: string;
  limitUsd: number;
  source: Limit["source"];
  window: BudgetWindow | null;
  seedFilter: SpendFilter;
}

/**
 * A UTC day or month: its id (YYYY-MM-DD, YYYY-MM), its bounds in ms (end excluded) and as ISO
 * timestamps (the budget window of a line, and its seed query's range).
 */
export type Period = Readonly<{
  id: string;
  start: number;
  end: number;
  startIso: string;
  endIso: string;
}>;

function makePeriod(id: string, start: number, end: number): Period {
  const startIso = new Date(start).toISOString();
  return Object.freeze({ id, start, end, startIso, endIso: new Date(end).toISOString() });
}

/**
 * The last period each function computed, returned again while `ms` falls in it: every hold and
 * settlement asks for today's period once per budget line, and two Dates and an ISO string each
 * time cost ~1 % of the service's CPU under load (`--cpu-prof`, 2026-12-07).
 */
let lastDay: Period | undefined;
let lastMonth: Period | undefined;

export function utcDay(ms: number): Period {
  if (lastDay && ms >= lastDay.start && ms < lastDay.end) return lastDay;
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const id = new Date(start).toISOString().slice(0, 10);
  return (lastDay = makePeriod(id, start, start + DAY_MS));
}

export function utcMonth(ms: number): Period {
  if (lastMonth && ms >= lastMonth.start && ms < lastMonth.end) return lastMonth;
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return (lastMonth = makePeriod(new Date(start).toISOString().slice(0, 7), start, end));
}

/** The period a counter that resets covers at `ms`; null for one that never resets. */
function periodOf(resets: "never" | "utc-day" | "utc-month", ms: number) {
  if (resets === "never") return null;
  return resets === "utc-day" ? utcDay(ms) : utcMonth(ms);
}

export interface LineKeys {
  /** Redis key hash tag. */
  keyTag: string;
  /** A counter that never resets (a session's) is dropped after this long unused. */
  sessionIdleMs: number;
}

/** Whose spend a counter holds: its scope id, the parts of its key, and its rows in the ledger. */
function scopeOf(
  scope: Exclude<BudgetKindRow["scope"], "request">,
  userId: string,
  sessionId: string | null,
  limit: Limit,
): { id: string; keyParts: string[]; filter: SpendFilter } | null {
  switch (scope) {
    case "session":
      return sessionId ? { id: sessionId, keyParts: [sessionId], filter: { sessionId } } : null;
    case "user":
      return { id: userId, keyParts: [userId], filter: { userId } };
    case "team":
      // The ledger has no team column: a team's spend is its current members' (store: teamId).
      return limit.teamId
        ? { id: limit.teamId, keyParts: [limit.teamId], filter: { teamId: limit.teamId } }
        : null;
    case "deployment":
      return { id: "deployment", keyParts: [], filter: {} };
  }
}

/** The windows that apply to `userId` (and `sessionId`) at `now`, given their limits. */
export function budgetLines(
  keys: LineKeys,
  userId: string,
  sessionId: string | null,
  limits: Limits,
  now: number,
): Line[] {
  const key = (...parts: string[]) => `{${keys.keyTag}}:${parts.map(encodeURIComponent).join(":")}`;
  const lines: Line[] = [];
  for (const budget of WINDOW_BUDGET_NAMES) {
    const limit = limits[budget];
    const { counter, scope: scopeKind } = BUDGET_KINDS[budget];
    const scope = limit && scopeOf(scopeKind, userId, sessionId, limit);
    if (!limit || !scope) continue;
    const period = periodOf(counter.resets, now);
    const window: BudgetWindow | null = period && { start: period.startIso, end: period.endIso };
    lines.push({
      budget,
      key: period
        ? key(counter.key, ...scope.keyParts, period.id)
        : key(counter.key, ...scope.keyParts),
      limit: microsFloor(limit.usd),
      limitUsd: limit.usd,
      source: limit.source,
      scopeId: scope.id,
      window,
      seedFilter: window
        ? { ...scope.filter, sinceIso: window.start, untilIso: window.end }
        : scope.filter,
      // Day and month counters outlive their period by a day, so a hold taken just before
      // midnight settles into it.
      expireAt: period ? period.end + DAY_MS : now + keys.sessionIdleMs,
    });
  }
  return lines;
}
