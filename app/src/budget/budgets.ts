/**
 * Spend budgets in USD, one of each kind in kinds.ts: per request, per session, per user per UTC
 * day, per team per UTC day and month, and for the whole deployment per UTC day. Unset means no
 * limit of that kind; users can have their own limits (Postgres `budget_overrides`), and a team's
 * limits come from its row (`teams`), shared by its members.
 *
 * Enforcement reserves before spending. Before the upstream call, `reserve` holds the request's
 * worst case (estimated input plus max_tokens of output, max_tokens first capped to what the
 * request budget allows) on every applicable budget at once, or refuses with a 429
 * `budget_exceeded`; afterwards `settle` replaces the hold with the real cost. Checking and
 * holding are one atomic step (a Lua script in Redis shared by the replicas; in process on the
 * embedded default), so any number of concurrent requests cannot together pass a limit.
 *
 * Where the truth lives, and what happens when a part is missing:
 *
 *  - Postgres' usage ledger is the record of spend. A counter that is missing is started from the
 *    ledger's sum for its window before anything is reserved against it (seeding.ts), so losing
 *    Redis never resets a budget. Limits: ledger writes are batched (about 100 ms), so spend
 *    settled just before a flush can be missed, and holds in flight at a flush are forgotten
 *    (their later settlements still count).
 *  - Redis unreachable (or slower than `redisTimeoutMs`): requests keep being served, counted in
 *    process with `degradedShare` of what remained of each budget, and the spend is replayed into
 *    Redis when it returns (failover.ts).
 *  - A replica that dies mid-request leaves a hold behind: every hold has a deadline
 *    (`reservationTtlMs`) and the next reservation after it releases the hold.
 *  - Alerts fire once per threshold per budget window: the marker is set in the same atomic
 *    step as the spend that crosses it. A counter re-seeded from the ledger marks thresholds
 *    already passed as alerted. The 100 % alert fires when settled spend reaches the limit,
 *    or when the budget first refuses a request it cannot cover even with one output token
 *    (holds take worst cases, so settled spend usually stops a little short of the limit).
 *
 * The input side of a hold is an estimate (estimate.ts); a request whose real input is larger
 * than estimated can settle above its hold, the one way spend can pass a limit.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import type { ApiError } from "../errors";
import type { ModelCatalog } from "../llm/models";
import { AlertDispatcher, type AlertListener } from "./alerts";
import { budgetCounters } from "./counters";
import { microsCeil, microsFloor, usd, type Crossing, type LineState } from "./engine";
import type { FailoverBudgetEngine } from "./failover";
import { budgetLimitsFrom, type BudgetName } from "./kinds";
import { budgetLines, DAY_MS, type Limits, type Line } from "./lines";
import { LimitResolver } from "./limits";
import { budgetExceeded, type Refusal } from "./refusal";
import {
  holdAmount,
  holdPrice,
  Reservation,
  tokensWithin,
  type ReserveRequest,
} from "./reservation";
import type { SeededEngine } from "./seeding";
import type {
  BudgetServiceOptions,
  BudgetStore,
  BudgetUsage,
  HoldRequest,
  RefusalEvent,
  ReserveOptions,
  ReserveResult,
  UsageReport,
} from "./types";

export { estimateInput, estimateInputTokens } from "./estimate";
export type { BudgetAlert, BudgetWindow } from "./alerts";
export type { BudgetLimits, BudgetName } from "./kinds";
export { utcDay } from "./lines";
export type * from "./types";
export { Reservation, reserveRequestFor, type ReserveRequest } from "./reservation";

type Refused = Extract<ReserveResult, { ok: false }>;

export class BudgetService {
  readonly alerts: AlertDispatcher;
  private readonly ownsAlerts: boolean;
  private readonly catalog: ModelCatalog;
  private readonly logger: Logger;
  /** Where holds are counted: the failover engine around Redis, or the embedded one. */
  private readonly engine: SeededEngine;
  /** The same engine when Redis is configured. */
  private readonly failover?: FailoverBudgetEngine;
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly sessionIdleMs: number;
  private readonly keyTag: string;
  private readonly limitResolver: LimitResolver;
  private readonly settling = new Set<Promise<void>>();
  private readonly refusalListeners = new Set<(e: RefusalEvent) => void>();
  /** Counters for metrics and tests. */
  readonly stats = {
    reserved: 0,
    refused: 0,
    settled: 0,
    reclaimed: 0,
    degradedReservations: 0,
    replayed: 0,
    replayDropped: 0,
  };

  constructor(options: BudgetServiceOptions) {
    this.catalog = options.catalog;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.ttlMs = options.reservationTtlMs ?? 900_000;
    this.limitResolver = new LimitResolver(options.limits, options.store, options.logger, {
      cacheMs: options.overrideCacheMs ?? 30_000,
      timeoutMs: options.redisTimeoutMs ?? 1000,
      now: this.now,
    });
    this.sessionIdleMs = options.sessionIdleMs ?? 7 * DAY_MS;
    this.keyTag = options.keyTag ?? "budget";
    const counters = budgetCounters(
      { ...options, now: this.now },
      {
        stats: this.stats,
        crossed: (lines, crossings) => this.alertCrossings(lines, crossings, false),
      },
    );
    this.engine = counters.engine;
    this.failover = counters.failover;
    this.ownsAlerts = !options.alerts;
    this.alerts =
      options.alerts ??
      new AlertDispatcher({ logger: options.logger, webhookUrl: options.webhookUrl });
  }

  static fromConfig(
    config: AppConfig,
    deps: {
      catalog: ModelCatalog;
      store: BudgetStore;
      logger: Logger;
      redis?: BudgetServiceOptions["redis"];
      alerts?: AlertDispatcher;
    },
  ): BudgetService {
    return new BudgetService({
      ...deps,
      limits: budgetLimitsFrom(config),
      webhookUrl: config.ALERT_WEBHOOK_URL,
      reservationTtlMs: config.BUDGET_RESERVATION_TTL_SECONDS * 1000,
      degradedShare: config.BUDGET_DEGRADED_SHARE,
    });
  }

  /** Where counters live right now. */
  get mode(): UsageReport["mode"] {
    if (!this.failover) return "embedded";
    return this.failover.degraded ? "degraded" : "redis";
  }

  /** Settlements waiting for Redis to come back. */
  get pendingSettles(): number {
    return this.failover?.pendingSettles ?? 0;
  }

  /** Metrics hook: called for every alert (after it is logged, before the webhook). */
  onAlert(listener: AlertListener): () => void {
    return this.alerts.onAlert(listener);
  }

  /** Metrics hook: called for every refused request. */
  onRefused(listener: (e: RefusalEvent) => void): () => void {
    this.refusalListeners.add(listener);
    return () => this.refusalListeners.delete(listener);
  }

  /**
   * Hold the request's worst-case cost on every budget that applies, or refuse it. Never
   * throws: store and Redis failures degrade (see the module comment).
   */
  async reserve(req: ReserveRequest, options: ReserveOptions = {}): Promise<ReserveResult> {
    const speculative = options.speculative === true;
    const now = this.now();
    const limits = await this.limitsFor(req.userId);
    const price = holdPrice(this.catalog.prices(req.model), req);
    let maxTokens = Math.max(1, Math.floor(req.maxTokens));
    let cappedBy: BudgetName | null = null;
    let requestLimit = Infinity;

    if (limits.request) {
      requestLimit = microsFloor(limits.request.usd) - microsCeil(req.requestSpentUsd ?? 0);
      const cheapest = holdAmount(price, 1);
      if (cheapest > requestLimit) {
        return this.refuse(req.userId, speculative, {
          budget: "request",
          scopeId: req.requestId,
          limitUsd: limits.request.usd,
          window: null,
          state: null,
          requested: cheapest,
          retryable: false,
        });
      }
      const cap = Math.max(1, tokensWithin(price, requestLimit));
      if (cap < maxTokens) {
        maxTokens = cap;
        cappedBy = "request";
      }
    }

    const amount = holdAmount(price, maxTokens);
    const floor =
      req.minOutputTokens === undefined
        ? maxTokens
        : Math.min(maxTokens, Math.max(1, Math.floor(req.minOutputTokens)));
    const minAmount = holdAmount(price, floor);
    const minCost = holdAmount(price, 1);
    const lines = this.linesFor(req.userId, req.sessionId ?? null, limits, now);
    const id = `${req.requestId}.${randomUUID()}`;
    const held = await this.holdOn(req.userId, lines, id, amount, minCost, now, this.ttlMs, {
      speculative,
      minAmount,
    });
    if (!held.ok) return held;
    let granted = amount;
    if (held.granted < amount) {
      // What the tightest budget had left: max_tokens shrinks to fit it.
      granted = held.granted;
      maxTokens = Math.max(floor, Math.min(maxTokens, tokensWithin(price, granted)));
      cappedBy = lines[held.binding]?.budget ?? cappedBy;
    }
    const reservation = new Reservation(
      id,
      req.userId,
      req.sessionId ?? null,
      req.model,
      maxTokens,
      usd(granted),
      lines,
      held.engine,
      granted,
      cappedBy,
      req,
      requestLimit,
    );
    return { ok: true, reservation, maxTokens, cappedBy };
  }

  /**
   * Before a fallback to `model`: raise the hold to that model's worst case (same input and
   * max_tokens), atomically, on every budget the request holds. False when a budget (the
   * per-request one included) cannot cover it: the caller skips that model. A model no dearer
   * than what is held needs nothing more.
   */
  async topUp(reservation: Reservation, model: string): Promise<boolean> {
    const req = reservation.request;
    if (!req || reservation.settled) return false;
    const need = holdAmount(holdPrice(this.catalog.prices(model), req), reservation.maxTokens);
    const delta = need - reservation.held;
    if (delta <= 0) return true;
    if (need > reservation.requestLimit) return false;
    const id = `${reservation.id}.up${reservation.extras.length + 1}`;
    const held = await this.holdOn(
      reservation.userId,
      reservation.lines,
      id,
      delta,
      delta,
      this.now(),
      this.ttlMs,
      { speculative: true },
    );
    if (!held.ok) return false;
    reservation.extras.push(
      new Reservation(
        id,
        reservation.userId,
        reservation.sessionId,
        model,
        0,
        usd(delta),
        reservation.lines,
        held.engine,
        delta,
      ),
    );
    return true;
  }

  /**
   * Hold a fixed amount on the user's window budgets, all or nothing, under the caller's id and
   * time to live: a batch's worst case, held until it ends (a day or more). Whichever replica
   * finishes the work settles it with `settleHold`, from ids alone. Never throws.
   */
  async reserveHold(req: HoldRequest): Promise<{ ok: true } | { ok: false; error: ApiError }> {
    const now = this.now();
    const limits = await this.limitsFor(req.userId);
    const amount = microsCeil(req.amountUsd);
    const perRequest = limits.request;
    const over = perRequest && req.requests?.find((r) => r.amountUsd > perRequest.usd);
    if (perRequest && over) {
      return this.refuse(req.userId, false, {
        budget: "request",
        scopeId: req.id,
        limitUsd: perRequest.usd,
        window: null,
        state: null,
        requested: microsCeil(over.amountUsd),
        retryable: false,
        hint: `request "${over.name}" alone may cost more; lower its max_tokens`,
      });
    }
    const lines = this.linesFor(req.userId, null, limits, now);
    const held = await this.holdOn(req.userId, lines, req.id, amount, amount, now, req.ttlMs, {
      hint: req.hint,
    });
    return held.ok ? { ok: true } : { ok: false, error: held.error };
  }

  /**
   * Settle a hold taken with `reserveHold` at `heldAt`, possibly by another replica or before a
   * restart: its windows are found again from the user, the time it was taken and today's limits.
   */
  async settleHold(req: {
    id: string;
    userId: string;
    heldAt: number;
    reservedUsd: number;
    actualUsd: number;
  }): Promise<void> {
    const limits = await this.limitsFor(req.userId);
    const lines = this.linesFor(req.userId, null, limits, req.heldAt);
    const amount = microsCeil(req.reservedUsd);
    const reservation = new Reservation(
      req.id,
      req.userId,
      null,
      "",
      0,
      req.reservedUsd,
      lines,
      this.engine,
      amount,
    );
    await this.settle(reservation, req.actualUsd);
  }

  /** The per-request limit that applies to the user (USD), if any. */
  async requestLimitUsd(userId: string): Promise<number | undefined> {
    return (await this.limitsFor(userId)).request?.usd;
  }

  /** Give back a hold nothing was spent against (a speculative one the request did not use). */
  release(reservation: Reservation): Promise<void> {
    return this.settle(reservation, 0);
  }

  /**
   * Replace the hold with the real cost (0 releases it). Idempotent; never throws. Call it in a
   * `finally`, with the cost of whatever was used, including a stream the client abandoned.
   */
  settle(reservation: Reservation, actualCostUsd: number): Promise<void> {
    const running = this.settleNow(reservation, actualCostUsd);
    // close() waits for these: a settlement issued just before shutdown still reaches Redis.
    this.settling.add(running);
    void running.finally(() => this.settling.delete(running));
    return running;
  }

  private async settleNow(reservation: Reservation, actualCostUsd: number): Promise<void> {
    if (reservation.settled) return;
    // Top-ups only held room for a dearer fallback: the real cost goes on the main hold.
    for (const extra of reservation.extras) void this.settle(extra, 0);
    reservation.settled = true;
    this.stats.settled++;
    let actual: number;
    if (Number.isFinite(actualCostUsd) && actualCostUsd >= 0) actual = microsCeil(actualCostUsd);
    else {
      this.logger.error(
        { reservation: reservation.id, actualCostUsd },
        "budget settle: invalid cost; charging the reserved worst case",
      );
      actual = reservation.amount;
    }
    const { engine, lines, id } = reservation;
    if (!engine || lines.length === 0) return;
    const r = await engine.settle(id, lines, actual);
    this.alertCrossings(lines, r.crossings, r.degraded === true);
  }

  /** The caller's limits, spend and holds in flight for each budget that applies. */
  async usageFor(userId: string, sessionId?: string | null): Promise<UsageReport> {
    const now = this.now();
    const limits = await this.limitsFor(userId);
    const lines = this.linesFor(userId, sessionId ?? null, limits, now);
    const read = await this.engine.read(lines);
    const budgets: BudgetUsage[] = [];
    if (limits.request) {
      budgets.push({
        budget: "request",
        scope_id: "request",
        limit_usd: limits.request.usd,
        spent_usd: null,
        reserved_usd: null,
        remaining_usd: limits.request.usd,
        window: null,
        resets_at: null,
        source: limits.request.source,
      });
    }
    lines.forEach((line, i) => {
      const s: LineState = read.states[i] ?? { spent: 0, reserved: 0 };
      budgets.push({
        budget: line.budget,
        scope_id: line.scopeId,
        limit_usd: line.limitUsd,
        spent_usd: usd(s.spent),
        reserved_usd: usd(s.reserved),
        remaining_usd: usd(Math.max(0, line.limit - s.spent - s.reserved)),
        window: line.window,
        resets_at: line.window?.end ?? null,
        source: line.source,
      });
    });
    return {
      object: "usage",
      user_id: userId,
      session_id: sessionId ?? null,
      at: new Date(now).toISOString(),
      mode: !this.failover ? "embedded" : read.degraded ? "degraded" : "redis",
      budgets,
    };
  }

  /** Forget cached overrides (after changing them, or in tests). */
  invalidateOverrides(userId?: string) {
    this.limitResolver.invalidate(userId);
  }

  /** Replay what can be replayed into Redis, then stop timers and the alert queue. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.settling]);
    await this.failover?.close();
    if (this.ownsAlerts) await this.alerts.close();
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Hold `amount` µ$ on every line, all or nothing; or the refusal the client gets. */
  private async holdOn(
    userId: string,
    lines: readonly Line[],
    id: string,
    amount: number,
    minCost: number,
    now: number,
    ttlMs: number,
    options: { speculative?: boolean; hint?: string; minAmount?: number },
  ): Promise<
    { ok: true; engine: SeededEngine | null; granted: number; binding: number } | Refused
  > {
    if (lines.length === 0) return { ok: true, engine: null, granted: amount, binding: -1 };
    const minAmount = options.minAmount ?? amount;
    const result = await this.engine.reserve(
      id,
      lines,
      amount,
      minCost,
      now,
      now + ttlMs,
      minAmount,
    );
    this.stats.reclaimed += result.reclaimed;
    if (result.kind === "refused") {
      const line = lines[result.index]!;
      if (result.exhausted) this.alert(line, 100, result.state.spent, result.degraded === true);
      return this.refuse(userId, options.speculative === true, {
        budget: line.budget,
        scopeId: line.scopeId,
        limitUsd: line.limitUsd,
        window: line.window,
        state: result.state,
        requested: minAmount,
        retryable: result.state.spent + minAmount <= line.limit,
        hint: options.hint,
      });
    }
    this.stats.reserved++;
    return {
      ok: true,
      engine: result.holder ?? this.engine,
      granted: result.granted,
      binding: result.binding,
    };
  }

  private alertCrossings(lines: readonly Line[], crossings: Crossing[], degraded: boolean) {
    for (const c of crossings) this.alert(lines[c.index]!, c.threshold, c.spent, degraded);
  }

  private alert(line: Line, threshold: Crossing["threshold"], spent: number, degraded: boolean) {
    this.alerts.emit({
      budget: line.budget,
      scopeId: line.scopeId,
      threshold,
      spentUsd: usd(spent),
      limitUsd: line.limitUsd,
      window: line.window,
      degraded,
      at: new Date(this.now()).toISOString(),
    });
  }

  private refuse(userId: string, speculative: boolean, r: Refusal): Refused {
    let reported = false;
    const report = () => {
      if (reported) return;
      reported = true;
      this.stats.refused++;
      for (const l of this.refusalListeners) {
        try {
          l({ budget: r.budget, scopeId: r.scopeId, userId, retryable: r.retryable });
        } catch (err) {
          this.logger.error(
            { err: err instanceof Error ? err.message : String(err) },
            "budget refusal listener threw",
          );
        }
      }
    };
    if (!speculative) report();
    return {
      ok: false,
      error: budgetExceeded(r, this.now()),
      report: speculative ? report : () => {},
    };
  }

  private linesFor(userId: string, sessionId: string | null, limits: Limits, now: number): Line[] {
    return budgetLines(
      { keyTag: this.keyTag, sessionIdleMs: this.sessionIdleMs },
      userId,
      sessionId,
      limits,
      now,
    );
  }

  private limitsFor(userId: string): Promise<Limits> {
    return this.limitResolver.limitsFor(userId);
  }
}
