/**
 * The budget windows a hold counts against (a session, a user's UTC day, the deployment's UTC
 * day), as engine lines with what alerts and refusals say about each. Pure: the same user,
 * session, limits and time always give the same keys, so a hold taken by one replica can be
 * settled by another (batches settle after restarts this way).
 */
import type { SpendFilter } from "../store/types";
import type { BudgetName, BudgetWindow } from "./alerts";
import { microsFloor, type EngineLine } from "./engine";

export const DAY_MS = 86_400_000;

export interface Limit {
  usd: number;
  source: "default" | "override";
}

export interface Limits {
  request?: Limit;
  session?: Limit;
  user_daily?: Limit;
  daily?: Limit;
}

/** One budget window a hold counts against, with what alerts and errors say about it. */
export interface Line extends EngineLine {
  budget: Exclude<BudgetName, "request">;
  scopeId: string;
  limitUsd: number;
  source: Limit["source"];
  window: BudgetWindow | null;
  seedFilter: SpendFilter;
}

export function utcDay(ms: number): { id: string; start: number; end: number } {
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return { id: new Date(start).toISOString().slice(0, 10), start, end: start + DAY_MS };
}

export interface LineKeys {
  /** Redis key hash tag. */
  keyTag: string;
  /** A session's counter is dropped after this long unused. */
  sessionIdleMs: number;
}

/** The windows that apply to `userId` (and `sessionId`) at `now`, given their limits. */
export function budgetLines(
  keys: LineKeys,
  userId: string,
  sessionId: string | null,
  limits: Limits,
  now: number,
): Line[] {
  const lines: Line[] = [];
  const day = utcDay(now);
  const window: BudgetWindow = {
    start: new Date(day.start).toISOString(),
    end: new Date(day.end).toISOString(),
  };
  const key = (...parts: string[]) => `{${keys.keyTag}}:${parts.map(encodeURIComponent).join(":")}`;
  const line = (
    budget: Line["budget"],
    limit: Limit,
    rest: Pick<Line, "key" | "scopeId" | "window" | "seedFilter" | "expireAt">,
  ): Line => ({
    budget,
    limit: microsFloor(limit.usd),
    limitUsd: limit.usd,
    source: limit.source,
    ...rest,
  });
  if (sessionId && limits.session) {
    lines.push(
      line("session", limits.session, {
        key: key("s", sessionId),
        scopeId: sessionId,
        window: null,
        seedFilter: { sessionId },
        expireAt: now + keys.sessionIdleMs,
      }),
    );
  }
  // Counters outlive their day by a day, so a hold taken just before midnight settles into it.
  const dayRange = { sinceIso: window.start, untilIso: window.end };
  if (limits.user_daily) {
    lines.push(
      line("user_daily", limits.user_daily, {
        key: key("u", userId, day.id),
        scopeId: userId,
        window,
        seedFilter: { userId, ...dayRange },
        expireAt: day.end + DAY_MS,
      }),
    );
  }
  if (limits.daily) {
    lines.push(
      line("daily", limits.daily, {
        key: key("d", day.id),
        scopeId: "deployment",
        window,
        seedFilter: dayRange,
        expireAt: day.end + DAY_MS,
      }),
    );
  }
  return lines;
}
