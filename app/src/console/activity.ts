/**
 * What the operator console (GET /console, GET /v1/admin/overview) shows that the usage ledger does
 * not record: recent refusals (budgets, rate limits) and budget alerts, and the cost the response
 * cache saved. Kept in process, per replica, since it started: each list is a bounded ring of the
 * newest `capacity` events, so memory stays flat however many requests are refused. With several
 * replicas the console shows the events of the replica that answered it. Every event names users
 * and budgets only: no request content, no keys.
 */
import type { BudgetAlert } from "../budget/alerts";
import type { BudgetService } from "../budget/budgets";
import type { RequestRateLimiter } from "../ratelimit/limiter";

export interface RefusalRecord {
  at: string;
  /** What refused the request: a budget, or the rate limiter. */
  kind: "budget" | "rate_limit";
  /** The budget kind (user_daily, team_daily, daily, ...) or the limit (rpm, tpm). */
  limit: string;
  userId: string;
  /** For a budget: its scope (user, team id, session id, "deployment"). */
  scopeId: string | null;
  /** The budget would cover the request once requests in flight settle. */
  retryable: boolean;
}

export interface AlertRecord {
  at: string;
  budget: string;
  scopeId: string;
  threshold: number;
  spentUsd: number;
  limitUsd: number;
}

export interface ActivitySnapshot {
  since: string;
  capacity: number;
  /** Newest first. */
  refusals: RefusalRecord[];
  alerts: AlertRecord[];
  /** Counted since the replica started (not only what the rings still hold). */
  refusalsTotal: number;
  alertsTotal: number;
  responseCache: { hits: number; savedUsd: number };
}

/** A fixed-size ring: pushing beyond capacity overwrites the oldest entry. */
class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;
  total = 0;
  constructor(readonly capacity: number) {}

  push(item: T): void {
    this.total++;
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  newest(): T[] {
    const n = this.items.length;
    const out: T[] = [];
    for (let i = 1; i <= n; i++) out.push(this.items[(this.next - i + n) % n]!);
    return out;
  }
}

export class ActivityLog {
  private readonly refusals: Ring<RefusalRecord>;
  private readonly alerts: Ring<AlertRecord>;
  private readonly since: string;
  private cacheHits = 0;
  private cacheSavedUsd = 0;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly now: () => number;

  constructor(options: { capacity?: number; now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
    const capacity = Math.max(1, options.capacity ?? 100);
    this.refusals = new Ring(capacity);
    this.alerts = new Ring(capacity);
    this.since = new Date(this.now()).toISOString();
  }

  /** Listen to the budgets' refusals and alerts and to the rate limiter's refusals. */
  observe(sources: {
    budgets?: Pick<BudgetService, "onRefused" | "onAlert">;
    rateLimiter?: Pick<RequestRateLimiter, "onRefused">;
  }): this {
    const { budgets, rateLimiter } = sources;
    if (budgets) {
      this.unsubscribe.push(
        budgets.onRefused((e) =>
          this.refused({
            kind: "budget",
            limit: e.budget,
            userId: e.userId,
            scopeId: e.scopeId,
            retryable: e.retryable,
          }),
        ),
        budgets.onAlert((a) => this.alerted(a)),
      );
    }
    if (rateLimiter) {
      this.unsubscribe.push(
        rateLimiter.onRefused((e) =>
          this.refused({
            kind: "rate_limit",
            limit: e.limit,
            userId: e.userId,
            scopeId: null,
            retryable: true,
          }),
        ),
      );
    }
    return this;
  }

  refused(r: Omit<RefusalRecord, "at">): void {
    this.refusals.push({ at: new Date(this.now()).toISOString(), ...r });
  }

  alerted(a: BudgetAlert): void {
    this.alerts.push({
      at: a.at,
      budget: a.budget,
      scopeId: a.scopeId,
      threshold: a.threshold,
      spentUsd: a.spentUsd,
      limitUsd: a.limitUsd,
    });
  }

  /** A response-cache hit that spared a model call which would have cost `savedUsd`. */
  cacheHit(savedUsd: number): void {
    this.cacheHits++;
    if (Number.isFinite(savedUsd) && savedUsd > 0) this.cacheSavedUsd += savedUsd;
  }

  snapshot(): ActivitySnapshot {
    return {
      since: this.since,
      capacity: this.refusals.capacity,
      refusals: this.refusals.newest(),
      alerts: this.alerts.newest(),
      refusalsTotal: this.refusals.total,
      alertsTotal: this.alerts.total,
      responseCache: { hits: this.cacheHits, savedUsd: this.cacheSavedUsd },
    };
  }

  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }
}
