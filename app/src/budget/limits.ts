/**
 * Which limits apply to a user: the configured defaults (BUDGET_*), overridden per user by the
 * `budget_overrides` table (a number replaces the default, null removes the limit), and their
 * team's limits (team kinds, from the team's row). Overrides and the team are cached briefly
 * (`invalidate` forgets them at once on this replica); a failed lookup keeps serving with the last
 * known values, else the defaults.
 */
import type { Logger } from "pino";
import type { BudgetOverrides, Store, UserTeam } from "../store/types";
import {
  budgetKind,
  BUDGET_KINDS,
  BUDGET_NAMES,
  isUserBudgetName,
  type BudgetLimits,
} from "./kinds";
import type { Limits } from "./lines";
import { withTimeout } from "./timeout";
import { errorMessage } from "../errors";

const MAX_CACHED = 10_000;

/** What the store says about one user: their own limits and their team (null: none). */
interface UserLimits {
  overrides: BudgetOverrides;
  team: UserTeam | null;
}

export class LimitResolver {
  private readonly overrides = new Map<string, { value: UserLimits; until: number }>();
  private readonly lookups = new Map<string, Promise<UserLimits>>();

  constructor(
    private readonly limits: BudgetLimits,
    private readonly store: Pick<Store, "getBudgetOverrides" | "getUserTeam">,
    private readonly logger: Logger,
    private readonly options: { cacheMs: number; timeoutMs: number; now: () => number },
  ) {}

  async limitsFor(userId: string): Promise<Limits> {
    const { overrides, team } = await this.overridesFor(userId);
    const limits: Limits = {};
    for (const name of BUDGET_NAMES) {
      const { teamLimit } = budgetKind(name);
      const { configKey } = BUDGET_KINDS[name];
      if (teamLimit) {
        const usd = team?.[teamLimit];
        if (team && usd !== null && usd !== undefined)
          limits[name] = { usd, source: "team", teamId: team.id };
        continue;
      }
      const override = isUserBudgetName(name) ? overrides[name] : undefined;
      const configured = configKey === null ? undefined : this.limits[configKey];
      if (override !== undefined && override !== null)
        limits[name] = { usd: override, source: "override" };
      else if (override === undefined && configured !== undefined)
        limits[name] = { usd: configured, source: "default" };
    }
    return limits;
  }

  /** Forget cached overrides (after changing them, or in tests). */
  invalidate(userId?: string) {
    if (userId === undefined) this.overrides.clear();
    else this.overrides.delete(userId);
  }

  private overridesFor(userId: string): Promise<UserLimits> {
    const now = this.options.now();
    const hit = this.overrides.get(userId);
    if (hit && hit.until > now) return Promise.resolve(hit.value);
    const running = this.lookups.get(userId);
    if (running) return running;
    const lookup = withTimeout(
      Promise.all([this.store.getBudgetOverrides(userId), this.store.getUserTeam(userId)]).then(
        ([overrides, team]): UserLimits => ({ overrides, team }),
      ),
      Math.max(this.options.timeoutMs, 2000),
      "budget overrides",
    )
      .then((value) => {
        this.cache(userId, value, now + this.options.cacheMs);
        return value;
      })
      .catch((err: unknown) => {
        // Keep serving: the last known overrides, else the defaults; ask again in a few seconds.
        this.logger.warn(
          { err: errorMessage(err) },
          "budgets: cannot read per-user overrides; using the last known or the defaults",
        );
        const value = hit?.value ?? { overrides: {}, team: null };
        this.cache(userId, value, now + Math.min(5000, this.options.cacheMs));
        return value;
      })
      .finally(() => this.lookups.delete(userId));
    this.lookups.set(userId, lookup);
    return lookup;
  }

  private cache(userId: string, value: UserLimits, until: number) {
    this.overrides.delete(userId);
    this.overrides.set(userId, { value, until });
    if (this.overrides.size > MAX_CACHED)
      this.overrides.delete(this.overrides.keys().next().value!);
  }
}
