/**
 * Admission when the event loop jams. A process whose loop runs far behind (a burst of work in
 * each turn: thousands of requests arriving at once, big bodies to parse) answers everything late,
 * and piling more requests on it only makes every turn longer. Its lag, how late a timer due now
 * actually runs, says so directly.
 *
 * What it does not see (measured with `npm run bench`, 2026-12-06): a process past its capacity
 * in many short turns. At 256 concurrent streams, or 1,500 JSON req/s offered, on the 2-core
 * benchmark machine, first tokens waited seconds while the lag stayed under 150 ms: the wait is
 * spread over the many turns each request needs, and in connections not yet read. A limit on
 * time in the service (CoDel-style sojourn, or an adaptive concurrency limit) would catch that;
 * this guard does not claim to.
 *
 * The guard refuses new API requests at once, with 503 `overloaded_error` and `retry-after`, while
 * the process is overloaded: the lag, smoothed, is above OVERLOAD_LAG_MS **and** at least
 * OVERLOAD_MIN_IN_FLIGHT requests are in flight on it. Requests already admitted (a stream mid-way)
 * are never cut: refusing the new ones is what lets them finish on time. The second condition
 * keeps a process with few requests from refusing for a pause that is not load (a long garbage
 * collection, a synchronous start-up step): a lag it did not cause by serving cannot be cured by
 * refusing. Refusing stops once the lag is back under half the limit (hysteresis: no flapping).
 *
 * Clients retry as the API's own 529 asks them to: the official SDKs retry a 503 after
 * `retry-after` (twice by default), and `x-should-retry: true` says it is safe. A 503 is also what
 * load balancers and Cloud Run read as "this instance is busy", so they send the retry elsewhere.
 *
 * Health probes are not under /v1 and the admin API answers before this guard: an operator can
 * still look at a process that refuses work. Per process, in memory.
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors";
import { holdWhileResponding, type AppEnv } from "./http";

export interface OverloadOptions {
  /** Refuse while the smoothed event-loop lag is above this (ms). */
  maxLagMs: number;
  /** ... and at least this many requests are in flight on the process. */
  minInFlight: number;
  /** What `retry-after` says (seconds). @default 1 */
  retryAfterSeconds?: number;
  /** How often the lag is sampled (ms). @default 20 */
  sampleMs?: number;
}

/**
 * The event loop's lag, sampled by a timer (unref'd: it never keeps the process alive). The
 * smoothed figure is an exponential moving average that rises at once (a jam is news the moment
 * it is seen) and decays over about five samples.
 */
export class LoopLag {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  /** Smoothed lag, ms. */
  lagMs = 0;
  /** Largest single sample since start, ms (for the metrics and the benchmark). */
  maxMs = 0;

  constructor(private readonly sampleMs = 20) {}

  start(): this {
    if (this.timer) return this;
    this.last = performance.now();
    this.timer = setInterval(() => this.sample(performance.now()), this.sampleMs);
    this.timer.unref();
    return this;
  }

  /** One sample taken at `now`: how late the timer ran. Public for tests. */
  sample(now: number): void {
    const lag = Math.max(0, now - this.last - this.sampleMs);
    this.last = now;
    if (lag > this.maxMs) this.maxMs = lag;
    this.lagMs = lag >= this.lagMs ? lag : this.lagMs + (lag - this.lagMs) * 0.2;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export interface OverloadGuard {
  middleware: MiddlewareHandler<AppEnv>;
  /** Requests in flight that went through the guard. */
  readonly inFlight: number;
  /** Whether new requests are being refused now. */
  readonly refusing: boolean;
  /** Requests refused since start. */
  readonly refused: number;
  readonly lag: LoopLag;
  close(): void;
}

export function overloadGuard(
  options: OverloadOptions,
  lag = new LoopLag(options.sampleMs),
): OverloadGuard {
  lag.start();
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  let inFlight = 0;
  let refusing = false;
  let refused = 0;

  const overloaded = (): boolean => {
    // Once refusing, it takes the lag back under half the limit to stop (hysteresis).
    const limit = refusing ? options.maxLagMs / 2 : options.maxLagMs;
    refusing = lag.lagMs > limit && inFlight >= options.minInFlight;
    return refusing;
  };

  const middleware: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (overloaded()) {
      refused++;
      throw new ApiError(
        503,
        "overloaded_error",
        `this replica is overloaded (event loop ${Math.round(lag.lagMs)} ms behind with ${inFlight} requests in flight; OVERLOAD_LAG_MS): retry after retry-after`,
        { "retry-after": retryAfter, "x-should-retry": "true" },
      );
    }
    inFlight++;
    await holdWhileResponding(c, next, () => inFlight--);
  };

  return {
    middleware,
    get inFlight() {
      return inFlight;
    },
    get refusing() {
      return refusing;
    },
    get refused() {
      return refused;
    },
    lag,
    close: () => lag.stop(),
  };
}
