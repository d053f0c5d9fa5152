/**
 * Spend budgets in USD: per request, per session, per user per UTC day and for the whole
 * deployment per UTC day. Unset means no limit of that kind; users can have their own limits
 * (Postgres `budget_overrides`).
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
 *  - Postgres' usage ledger is the record of spend. A Redis window counter that is missing
 *    (first use in a window, expiry, eviction, FLUSHALL, a new Redis) is seeded from the
 *    ledger's sum for that window before anything is reserved against it, so losing Redis
 *    never resets a budget. Limits: ledger writes are batched (about 100 ms), so spend settled
 *    just before a flush can be missed, and holds in flight at a flush are forgotten (their
 *    later settlements still count).
 *  - Redis unreachable (or slower than `redisTimeoutMs`): requests keep being served. Each
 *    replica switches to an in-process engine seeded from the larger of the last counters it
 *    saw in Redis and the ledger's sums, and may spend only `degradedShare` of what remained of
 *    each budget; with a share of 1/replicas the limits still hold, larger trades strictness
 *    for availability. Spend settled meanwhile is replayed into Redis when it returns (a
 *    bounded queue; the replayed settlements are idempotent). Failing closed was rejected: a
 *    Redis outage would become a full outage of a paid API. While degraded, a replica alerts
 *    on its own view, so two replicas may each send the same alert.
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
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import { ApiError } from "../errors";
import type { ModelCatalog } from "../llm/models";
import { AlertDispatcher, type AlertListener, type BudgetName } from "./alerts";
import {
  MemoryBudgetEngine,
  microsCeil,
  microsFloor,
  usd,
  type BudgetEngine,
  type Crossing,
  type EngineReserveResult,
  type LineState,
} from "./engine";
import { RedisBudgetEngine } from "./redis-engine";
import { budgetLines, DAY_MS, type Limits, type Line } from "./lines";
import { LimitResolver } from "./limits";
import { withTimeout } from "./timeout";
import { SettlementReplay, type PendingSettle } from "./replay";
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
import { budgetExceeded, type Refusal } from "./refusal";
import {
  holdAmount,
  holdPrice,
  Reservation,
  tokensWithin,
  type ReserveRequest,
} from "./reservation";

export { estimateInput, estimateInputTokens } from "./estimate";
export type { BudgetAlert, BudgetName, BudgetWindow } from "./alerts";
export { utcDay } from "./lines";
export type { BudgetLimits } from "./limits";
export type * from "./types";
export { Reservation, reserveRequestFor, type ReserveRequest } from "./reservation";

const MAX_CACHED = 10_000;

export class BudgetService {
  readonly alerts: AlertDispatcher;
  private readonly ownsAlerts: boolean;
  private readonly catalog: ModelCatalog;
  private readonly store: BudgetStore;
  private readonly logger: Logger;
  private readonly redis?: Redis;
  private readonly redisEngine?: RedisBudgetEngine;
  /** The only engine without Redis. */
  private readonly embedded?: MemoryBudgetEngine;
  /** Stands in for Redis while it is unreachable; a fresh one per outage. */
  private degraded: MemoryBudgetEngine | null = null;
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly share: number;
  private readonly timeoutMs: number;
  private readonly sessionIdleMs: number;
  private readonly keyTag: string;
  private readonly limitResolver: LimitResolver;
  private readonly seeding = new WeakMap<BudgetEngine, Map<string, Promise<void>>>();
  /** Last spent + reserved seen in Redis per window: the floor a degraded engine starts from. */
  private readonly lastSeen = new Map<string, number>();
  /** Settlements waiting for Redis (absent without Redis). */
  private readonly replay?: SettlementReplay;
  private readonly settling = new Set<Promise<void>>();
  private lastRedisWarn = 0;
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
    this.store = options.store;
    this.logger = options.logger;
    this.redis = options.redis;
    this.now = options.now ?? Date.now;
    this.ttlMs = options.reservationTtlMs ?? 900_000;
    this.share = options.degradedShare ?? 0.25;
    this.timeoutMs = options.redisTimeoutMs ?? 1000;
    this.limitResolver = new LimitResolver(options.limits, options.store, options.logger, {
      cacheMs: options.overrideCacheMs ?? 30_000,
      timeoutMs: this.timeoutMs,
      now: this.now,
    });
    this.sessionIdleMs = options.sessionIdleMs ?? 7 * DAY_MS;
    this.keyTag = options.keyTag ?? "budget";
    if (!(this.share > 0 && this.share <= 1))
      throw new Error(`degradedShare must be in (0, 1], got ${this.share}`);
    if (options.redis) {
      this.redisEngine = new RedisBudgetEngine(options.redis, { tag: this.keyTag });
      this.replay = new SettlementReplay(this.redisEngine, {
        usable: () => this.redisUsable(),
        timeoutMs: this.timeoutMs,
        logger: this.logger,
        stats: this.stats,
        crossed: (lines, crossings) => this.alertCrossings(lines, crossings, false),
        failed: (err) => this.redisFailed(err),
      });
    } else this.embedded = new MemoryBudgetEngine({ now: this.now });
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
      redis?: Redis;
      alerts?: AlertDispatcher;
    },
  ): BudgetService {
    return new BudgetService({
      ...deps,
      limits: {
        requestUsd: config.BUDGET_REQUEST_USD,
        sessionUsd: config.BUDGET_SESSION_USD,
        userDailyUsd: config.BUDGET_USER_DAILY_USD,
        dailyUsd: config.BUDGET_DAILY_USD,
      },
      webhookUrl: config.ALERT_WEBHOOK_URL,
      reservationTtlMs: config.BUDGET_RESERVATION_TTL_SECONDS * 1000,
      degradedShare: config.BUDGET_DEGRADED_SHARE,
    });
  }

  /** Where counters live right now. */
  get mode(): UsageReport["mode"] {
    if (!this.redis) return "embedded";
    return this.redisUsable() ? "redis" : "degraded";
  }

  /** Settlements waiting for Redis to come back. */
  get pendingSettles(): number {
    return this.replay?.length ?? 0;
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
      [...reservation.lines],
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
    const engine = this.redisEngine ?? this.embedded ?? null;
    const amount = microsCeil(req.reservedUsd);
    const reservation = new Reservation(
      req.id,
      req.userId,
      null,
      "",
      0,
      req.reservedUsd,
      lines,
      engine,
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
    if (engine === this.redisEngine) {
      try {
        if (!this.redisUsable()) throw new Error("redis is not connected");
        const r = await withTimeout(
          engine.settle(id, lines as Line[], actual),
          this.timeoutMs,
          "budget settle",
        );
        lines.forEach((l, i) => {
          const spent = r.spent?.[i];
          // Spend only grows within a window; holds in flight may make the last reading higher.
          if (spent != null) this.see(l.key, Math.max(spent, this.lastSeen.get(l.key) ?? 0));
        });
        this.redisOk();
        this.alertCrossings(lines, r.crossings, false);
      } catch (err) {
        this.redisFailed(err);
        this.queueSettle({ id, lines, actual, quiet: false });
      }
      return;
    }
    const r = await engine.settle(id, lines as Line[], actual);
    const degraded = engine !== this.embedded;
    this.alertCrossings(lines, r.crossings, degraded);
    // Redis never saw this spend: replay it there, without alerting again.
    if (degraded) this.queueSettle({ id: `local.${id}`, lines, actual, quiet: true });
  }

  /** The caller's limits, spend and holds in flight for each budget that applies. */
  async usageFor(userId: string, sessionId?: string | null): Promise<UsageReport> {
    const now = this.now();
    const limits = await this.limitsFor(userId);
    const lines = this.linesFor(userId, sessionId ?? null, limits, now);
    let states: LineState[] | undefined;
    let mode: UsageReport["mode"] = this.redisEngine ? "redis" : "embedded";
    if (this.redisEngine && this.redisUsable()) {
      try {
        states = await this.peekSeeded(this.redisEngine, lines);
        this.redisOk();
      } catch (err) {
        this.redisFailed(err);
      }
    }
    if (!states) {
      if (this.redisEngine) mode = "degraded";
      states = await this.peekSeeded(this.localEngine(), lines);
    }
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
      const s = states![i]!;
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
      mode,
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
    await this.replay?.close();
    if (this.ownsAlerts) await this.alerts.close();
  }

  // ---- internals ---------------------------------------------------------------------------

  private redisUsable(): boolean {
    return this.redis?.status === "ready";
  }

  private localEngine(): MemoryBudgetEngine {
    if (this.embedded) return this.embedded;
    if (!this.degraded) {
      this.degraded = new MemoryBudgetEngine({ share: this.share, now: this.now });
      this.logger.warn(
        { share: this.share },
        "budgets: Redis unreachable; enforcing in this process with a share of each remaining budget",
      );
    }
    return this.degraded;
  }

  private redisOk() {
    if (this.degraded) {
      // Holds taken while degraded still settle against the engine they came from.
      this.degraded = null;
      this.logger.info("budgets: Redis reachable again; shared counters in use");
    }
    if (this.replay?.length) void this.replay.flush();
  }

  private redisFailed(err: unknown) {
    const now = Date.now();
    if (now - this.lastRedisWarn < 10_000) return;
    this.lastRedisWarn = now;
    this.logger.warn(
      { err: (err as Error).message },
      "budgets: Redis call failed; counting in this process",
    );
  }

  /** Hold `amount` µ$ on every line, all or nothing; or the refusal the client gets. */
  private async holdOn(
    userId: string,
    lines: Line[],
    id: string,
    amount: number,
    minCost: number,
    now: number,
    ttlMs: number,
    options: { speculative?: boolean; hint?: string; minAmount?: number },
  ): Promise<
    | { ok: true; engine: BudgetEngine | null; granted: number; binding: number }
    | Extract<ReserveResult, { ok: false }>
  > {
    if (lines.length === 0) return { ok: true, engine: null, granted: amount, binding: -1 };
    const minAmount = options.minAmount ?? amount;
    const { engine, result } = await this.runReserve(
      id,
      lines,
      amount,
      minCost,
      now,
      ttlMs,
      minAmount,
    );
    this.stats.reclaimed += result.reclaimed;
    if (result.kind === "refused") {
      const line = lines[result.index]!;
      if (result.exhausted)
        this.alert(
          line,
          100,
          result.state.spent,
          engine !== this.redisEngine && engine !== this.embedded,
        );
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
    if (result.kind !== "ok") throw new Error("unreachable: seeding is resolved by runReserve");
    this.stats.reserved++;
    return { ok: true, engine, granted: result.granted, binding: result.binding };
  }

  private async runReserve(
    id: string,
    lines: Line[],
    amount: number,
    minCost: number,
    now: number,
    ttlMs: number,
    minAmount: number,
  ): Promise<{ engine: BudgetEngine; result: EngineReserveResult }> {
    const deadline = now + ttlMs;
    if (this.redisEngine && this.redisUsable()) {
      const engine = this.redisEngine;
      try {
        const result = await this.withSeeding(engine, lines, () =>
          withTimeout(
            engine.reserve(id, lines, amount, minCost, now, deadline, minAmount),
            this.timeoutMs,
            "budget reserve",
          ),
        );
        this.remember(lines, result);
        this.redisOk();
        return { engine, result };
      } catch (err) {
        // The reserve may have run in Redis all the same (its answer lost with the connection, or
        // later than the timeout): release it there once Redis answers, rather than let the hold
        // shrink the budget until its deadline. Settling a hold that never ran adds nothing.
        this.redisFailed(err);
        this.queueSettle({ id, lines, actual: 0, quiet: true });
      }
    }
    const engine = this.localEngine();
    if (engine !== this.embedded) this.stats.degradedReservations++;
    const result = await this.withSeeding(engine, lines, () =>
      engine.reserve(id, lines, amount, minCost, now, deadline, minAmount),
    );
    return { engine, result };
  }

  /** Run `op`; while it asks for counters to be seeded, seed them and run it again. */
  private async withSeeding(
    engine: BudgetEngine,
    lines: Line[],
    op: () => Promise<EngineReserveResult>,
  ): Promise<EngineReserveResult> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const result = await op();
      if (result.kind !== "seed") return result;
      await Promise.all(result.missing.map((i) => this.seedLine(engine, lines[i]!)));
    }
    throw new Error("budget counters vanished while being seeded (three times in a row)");
  }

  private async peekSeeded(engine: BudgetEngine, lines: Line[]): Promise<LineState[]> {
    const timed = <T>(p: Promise<T>) =>
      engine === this.redisEngine ? withTimeout(p, this.timeoutMs, "budget peek") : p;
    let states = await timed(engine.peek(lines));
    const missing = states.flatMap((s, i) => (s ? [] : [i]));
    if (missing.length > 0) {
      await Promise.all(missing.map((i) => this.seedLine(engine, lines[i]!)));
      states = await timed(engine.peek(lines));
    }
    if (engine === this.redisEngine)
      lines.forEach((l, i) => states[i] && this.see(l.key, states[i]!.spent + states[i]!.reserved));
    return states.map((s) => s ?? { spent: 0, reserved: 0 });
  }

  /** Start a window's counter from the ledger; concurrent callers in this process share one query. */
  private seedLine(engine: BudgetEngine, line: Line): Promise<void> {
    let inFlight = this.seeding.get(engine);
    if (!inFlight) this.seeding.set(engine, (inFlight = new Map()));
    const running = inFlight.get(line.key);
    if (running) return running;
    const map = inFlight;
    const run = (async () => {
      let spent: number;
      try {
        spent = microsCeil(
          await withTimeout(
            this.store.sumUsageCost(line.seedFilter),
            Math.max(this.timeoutMs, 2000),
            "ledger sum",
          ),
        );
      } catch (err) {
        // Redis waits for the truth: the caller falls back to this process' counters.
        if (engine === this.redisEngine) throw err;
        this.logger.error(
          { err: (err as Error).message, budget: line.budget },
          "budgets: cannot read the ledger; starting this window from the last known spend",
        );
        spent = 0;
      }
      if (engine === this.degraded) spent = Math.max(spent, this.lastSeen.get(line.key) ?? 0);
      const seed = engine.seed(line, spent);
      await (engine === this.redisEngine ? withTimeout(seed, this.timeoutMs, "budget seed") : seed);
    })().finally(() => map.delete(line.key));
    map.set(line.key, run);
    return run;
  }

  private remember(lines: Line[], result: EngineReserveResult) {
    if (result.kind === "ok")
      lines.forEach((l, i) =>
        this.see(l.key, result.states[i]!.spent + result.states[i]!.reserved),
      );
    else if (result.kind === "refused")
      this.see(lines[result.index]!.key, result.state.spent + result.state.reserved);
  }

  private see(key: string, micros: number) {
    this.lastSeen.delete(key);
    this.lastSeen.set(key, micros);
    if (this.lastSeen.size > MAX_CACHED) this.lastSeen.delete(this.lastSeen.keys().next().value!);
  }

  private queueSettle(p: PendingSettle) {
    this.replay?.queue(p);
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

  private refuse(
    userId: string,
    speculative: boolean,
    r: Refusal,
  ): Extract<ReserveResult, { ok: false }> {
    let reported = false;
    const report = () => {
      if (reported) return;
      reported = true;
      this.stats.refused++;
      for (const l of this.refusalListeners) {
        try {
          l({ budget: r.budget, scopeId: r.scopeId, userId, retryable: r.retryable });
        } catch (err) {
          this.logger.error({ err: (err as Error).message }, "budget refusal listener threw");
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
