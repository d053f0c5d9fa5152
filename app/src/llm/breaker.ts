/**
 * Health of each upstream model, as the retry loop sees it: an opossum circuit breaker per model
 * plus a cooldown that a 429's `retry-after` sets. Both are per model, so one model's outage or
 * rate limit never blocks its fallback. State lives in this process; every replica learns on its
 * own, which costs each replica a few failed calls (volumeThreshold) per outage.
 */
import CircuitBreaker from "opossum";
import { countsAgainstModel } from "./retry";

export type BreakerState = "closed" | "open" | "halfOpen";

export interface BreakerOptions {
  /** Failure percentage over the rolling window above which the breaker opens. @default 50 */
  errorThresholdPercentage?: number;
  /** Calls in the window before the percentage is considered. @default 10 */
  volumeThreshold?: number;
  /** Length of the rolling window (10 buckets). @default 30000 */
  rollingCountTimeoutMs?: number;
  /** Time open before one half-open probe is let through. @default 30000 */
  resetTimeoutMs?: number;
  /**
   * Breakers kept for model ids outside the model table (clients choose model strings, so the
   * map must be bounded); calls to further unknown models run without a breaker. @default 100
   */
  maxUnknownModels?: number;
}

/** What the resilience layer reports, for metrics (Prometheus/OTel) and logs. */
export type ResilienceEvent =
  | { type: "breaker"; model: string; state: BreakerState; at: number }
  | { type: "cooldown"; model: string; until: number }
  | {
      type: "retry";
      model: string;
      /** The attempt that failed, from 1. */
      attempt: number;
      status: number;
      errorType: string;
      /** Wait before the next attempt (0 when it goes to another model). */
      delayMs: number;
      requestId?: string;
    }
  | {
      type: "fallback";
      from: string;
      to: string;
      reason: "open" | "cooldown" | "rate_limited" | "overloaded" | "transient";
      requestId?: string;
    }
  /** No model of the chain could take the call: the request failed fast. */
  | {
      type: "rejected";
      model: string;
      reason: "open" | "cooldown";
      retryAfterMs: number;
      requestId?: string;
    };

export type ResilienceListener = (event: ResilienceEvent) => void;

export interface BreakerSnapshot {
  model: string;
  state: BreakerState;
  /** When the breaker last opened (epoch ms), or null if it never did. */
  openedAt: number | null;
  /** When an open breaker lets a probe through (epoch ms); null unless open. */
  halfOpenAt: number | null;
  /** No calls before this time (epoch ms) after a 429; null when not cooling down. */
  cooldownUntil: number | null;
  /** Counts over the rolling window. */
  stats: { fires: number; successes: number; failures: number; rejects: number };
}

type Call = () => Promise<unknown>;

/** A probe is in flight on a half-open breaker: its outcome is usually known within this. */
const PROBE_WAIT_MS = 1000;

export class ModelHealth {
  private readonly breaker: CircuitBreaker<[Call], unknown> | null;
  private openedAt: number | null = null;
  private cooldownUntil = 0;

  constructor(
    readonly model: string,
    private readonly options: Required<BreakerOptions>,
    emit: ResilienceListener | null,
  ) {
    if (!emit) {
      this.breaker = null;
      return;
    }
    this.breaker = new CircuitBreaker<[Call], unknown>((call: Call) => call(), {
      name: model,
      // Attempts have their own timeout (the SDK's) and the request its deadline.
      timeout: false,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      rollingCountTimeout: options.rollingCountTimeoutMs,
      rollingCountBuckets: 10,
      resetTimeout: options.resetTimeoutMs,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // opossum counts a filtered error as a success: the model answered, the request was wrong.
      errorFilter: (err: unknown) => !countsAgainstModel(err),
    });
    this.breaker.on("open", () => {
      this.openedAt = Date.now();
      emit({ type: "breaker", model, state: "open", at: this.openedAt });
    });
    this.breaker.on("halfOpen", () =>
      emit({ type: "breaker", model, state: "halfOpen", at: Date.now() }),
    );
    this.breaker.on("close", () =>
      emit({ type: "breaker", model, state: "closed", at: Date.now() }),
    );
  }

  get state(): BreakerState {
    if (!this.breaker || this.breaker.closed) return "closed";
    return this.breaker.opened ? "open" : "halfOpen";
  }

  /** Milliseconds until this model may be called; 0 means now. */
  waitMs(now = Date.now()): number {
    const cooling = Math.max(0, this.cooldownUntil - now);
    const b = this.breaker;
    if (!b || b.closed) return cooling;
    if (b.opened) {
      const halfOpenAt = (this.openedAt ?? now) + this.options.resetTimeoutMs;
      return Math.max(cooling, halfOpenAt - now, 1);
    }
    // Half-open: the first caller is the probe; others wait for its outcome.
    return b.pendingClose ? cooling : Math.max(cooling, PROBE_WAIT_MS);
  }

  /** Why the model cannot be called now, if it cannot. */
  blockedBy(now = Date.now()): "open" | "cooldown" | null {
    if (this.waitMs(now) === 0) return null;
    return this.state === "closed" ? "cooldown" : "open";
  }

  /** Keep calls off this model until `until` (a 429's retry-after); never shortens a cooldown. */
  coolDown(until: number): boolean {
    if (until <= this.cooldownUntil) return false;
    this.cooldownUntil = until;
    return true;
  }

  /** Run one call through the breaker; rejects with code EOPENBREAKER when it is open. */
  run<T>(call: () => Promise<T>): Promise<T> {
    return this.breaker ? (this.breaker.fire(call) as Promise<T>) : call();
  }

  /** Count a failure that happened after the call had already succeeded (a stream cut mid-way). */
  recordLateFailure(err: unknown): void {
    if (!this.breaker || !countsAgainstModel(err)) return;
    this.breaker.fire(() => Promise.reject(err)).catch(() => undefined);
  }

  snapshot(now = Date.now()): BreakerSnapshot {
    const state = this.state;
    const s = this.breaker?.stats;
    return {
      model: this.model,
      state,
      openedAt: this.openedAt,
      halfOpenAt:
        state === "open" && this.openedAt !== null
          ? this.openedAt + this.options.resetTimeoutMs
          : null,
      cooldownUntil: this.cooldownUntil > now ? this.cooldownUntil : null,
      stats: {
        fires: s?.fires ?? 0,
        successes: s?.successes ?? 0,
        failures: s?.failures ?? 0,
        rejects: s?.rejects ?? 0,
      },
    };
  }

  shutdown(): void {
    this.breaker?.shutdown();
  }
}

export function breakerDefaults(options: BreakerOptions = {}): Required<BreakerOptions> {
  return {
    errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
    volumeThreshold: options.volumeThreshold ?? 10,
    rollingCountTimeoutMs: options.rollingCountTimeoutMs ?? 30_000,
    resetTimeoutMs: options.resetTimeoutMs ?? 30_000,
    maxUnknownModels: options.maxUnknownModels ?? 100,
  };
}

/** One ModelHealth per model id: table models up front, other ids on first use up to a bound. */
export class ModelHealthRegistry {
  private readonly models = new Map<string, ModelHealth>();
  private readonly options: Required<BreakerOptions>;
  private unknown = 0;

  constructor(
    options: BreakerOptions,
    private readonly emit: ResilienceListener,
    private readonly known: ReadonlySet<string> = new Set(),
  ) {
    this.options = breakerDefaults(options);
    for (const id of known) this.models.set(id, new ModelHealth(id, this.options, emit));
  }

  get(model: string): ModelHealth {
    let health = this.models.get(model);
    if (health) return health;
    if (this.unknown >= this.options.maxUnknownModels) {
      // Untracked: no breaker, no cooldown, nothing kept.
      return new ModelHealth(model, this.options, null);
    }
    this.unknown++;
    health = new ModelHealth(model, this.options, this.emit);
    this.models.set(model, health);
    return health;
  }

  snapshots(now = Date.now()): BreakerSnapshot[] {
    return [...this.models.values()].map((h) => h.snapshot(now));
  }

  shutdown(): void {
    for (const h of this.models.values()) h.shutdown();
  }
}
