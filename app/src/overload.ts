/**
 * Admission when the event loop jams. A process whose loop runs far behind (a burst of work in
 * each turn: thousands of requests arriving at once, big bodies to parse) answers everything late,
 * and piling more requests on it only makes every turn longer. Its lag, how late a timer due now
 * actually runs, says so directly.
 *
 * The lag alone missed a process past its capacity in many short turns (measured with `npm run
 * bench`, 2026-12-06: at 256 concurrent streams, or 1,500 JSON req/s offered, first tokens waited
 * seconds while the lag stayed under 150 ms). Most of that wait turned out to be outside the
 * process: connections queued in the kernel, accepted one per loop turn (fixed by more listening
 * descriptors: app/entrypoints/accept.ts). Once they are taken in at once, the queue forms inside
 * the process, and a second signal can watch it: the time each request spends in the process
 * before its model call, judged CoDel's way (Sojourn, below: OVERLOAD_SOJOURN_MS). It is opt-in:
 * at a 100 ms target it refused 1,106 of the 13,400 requests of the benchmark's x100 spike (a cold
 * process queues briefly) and still let 1,024 concurrent streams stall, since a stream's cost is
 * in relaying it, after the model call.
 *
 * The guard refuses new API requests at once, with 503 `overloaded_error` and `retry-after`, while
 * the process is overloaded: the lag, smoothed, is above OVERLOAD_LAG_MS (or a standing queue is
 * seen, OVERLOAD_SOJOURN_MS) **and** at least
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
import type { ServerResponse } from "node:http";
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors";
import { holdWhileResponding, outgoingOf, type AppContext, type AppEnv } from "./http";

export interface OverloadOptions {
  /** Refuse while the smoothed event-loop lag is above this (ms). */
  maxLagMs: number;
  /** ... and at least this many requests are in flight on the process. */
  minInFlight: number;
  /** What `retry-after` says (seconds). @default 1 */
  retryAfterSeconds?: number;
  /** How often the lag is sampled (ms). @default 20 */
  sampleMs?: number;
  /**
   * Refuse while the shortest time a request spent in the process before its model call, over
   * each interval, stays above this (ms): a standing queue. 0 or absent: not watched.
   */
  sojournMs?: number;
  /** The interval over which the shortest sojourn is taken (ms). @default 500 */
  intervalMs?: number;
  /** Most streams relayed at once (StreamGate). 0 or absent: streams are not counted. */
  maxStreams?: number;
  /** The lag above which the stream limit is lowered (ms). 0: the ceiling alone. @default 100 */
  streamLagMs?: number;
}

/**
 * A standing queue in the process, told from a passing burst the way CoDel tells it in network
 * queues (Nichols and Jacobson, "Controlling Queue Delay", ACM Queue 2012): by the **shortest**
 * wait over an interval. A burst makes some requests wait and drains within the interval, so some
 * request in it still got through quickly; when even the quickest request of a whole interval
 * waited longer than the target, the process holds more work than it gets through.
 *
 * The wait measured is a request's time from the guard to its model call (auth, admission, cache
 * lookup, budget hold): the service's own work and its queueing, without the upstream's latency.
 */
export class Sojourn {
  private windowStart: number;
  private windowMin = Number.POSITIVE_INFINITY;
  private over = false;
  /** The shortest sojourn of the last full interval (ms; 0 when it had none). */
  lastMinMs = 0;

  constructor(
    readonly targetMs: number,
    readonly intervalMs = 500,
    now = performance.now(),
  ) {
    this.windowStart = now;
  }

  /** One request's wait before its model call. */
  record(ms: number, now = performance.now()): void {
    this.roll(now);
    if (ms < this.windowMin) this.windowMin = ms;
  }

  /**
   * Whether the last full interval's quickest request waited longer than the target. An interval
   * with no request reaching its model call (all refused, or none arrived) ends it: admitting
   * again is how the guard learns whether the queue has drained.
   */
  standing(now = performance.now()): boolean {
    this.roll(now);
    return this.over;
  }

  private roll(now: number): void {
    if (now - this.windowStart < this.intervalMs) return;
    const min = this.windowMin;
    this.over = min !== Number.POSITIVE_INFINITY && min > this.targetMs;
    this.lastMinMs = min === Number.POSITIVE_INFINITY ? 0 : min;
    this.windowMin = Number.POSITIVE_INFINITY;
    this.windowStart = now;
  }
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
  private sum = 0;
  private count = 0;

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
    this.sum += lag;
    this.count++;
  }

  /**
   * The mean of the samples since the last call (ms; undefined when none was taken): a lag that
   * held over a span, where `lagMs` jumps with a single late timer. The stream gate's: each call
   * starts a new span.
   */
  takeMean(): number | undefined {
    if (this.count === 0) return undefined;
    const mean = this.sum / this.count;
    this.sum = 0;
    this.count = 0;
    return mean;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * How many streams the process relays at once. A stream costs the process for as long as it
 * lasts (a write per delta), and past what the process can relay every stream it holds stalls at
 * once: measured with `npm run bench -- --only streams` (2026-12-06, one process on this 2-core
 * VM, 64 deltas 20 ms apart): 256 streams relayed with a first-token p99 of 165 ms and no stall,
 * 512 stalled (gaps to 381 ms), and 1,024 admitted together stalled 3,519 times with first tokens
 * after 4 s, although the lag guard refused 793 of them. The lag reacts after the streams are in:
 * by then they are all stalling. So the gate counts streams, and refuses the next one (503,
 * `retry-after`) at a limit:
 *
 * - never above `maxStreams` (OVERLOAD_MAX_STREAMS), a ceiling taken from that measurement, so
 *   that a burst is refused before it is in;
 * - lowered, multiplicatively, below the streams open while the lag's mean over a step is above `lagMs`
 *   (OVERLOAD_STREAM_LAG_MS; a delta relayed that late is already a visible pause), and raised
 *   back, a twentieth at a time, while the lag is under half of it: a slower machine, or JSON
 *   traffic beside the streams, gets a lower limit without anyone measuring it (additive increase,
 *   multiplicative decrease, as TCP and Netflix's concurrency-limits adjust theirs). Lowered
 *   again only once the streams open are back within it (those past it came in before, and the
 *   lag is theirs), and raised only while streams ask for the places, so that a limit learnt
 *   under load holds through a quiet spell.
 *
 * The limit moves at most once per `stepMs`: a change shows in the lag only once the streams it
 * admitted or refused have started or ended. It never goes below `minStreams` (the guard passes
 * OVERLOAD_MIN_IN_FLIGHT, 64): a lag so few streams saw is a pause (a collection, a busy
 * neighbour), not their load, and refusing them cures nothing. With a floor of 16 the memory soak
 * (500 req/s, a tenth of it streams, ~20 open) had streams refused during such pauses.
 *
 * A refusal's `retry-after` follows how full the gate stays (`retryAfterSeconds`). At one second,
 * clients a full gate keeps waiting come back every second: 1,024 clients for ~200 places asked
 * ~700 times a second (`npm run bench -- --only streams`, 2026-12-07), each refusal a request the
 * process parses and answers while its streams wait. Each step, the gate compares the streams it
 * refused with the places that came free: refusing more than twice as many, it stretches
 * `retry-after` by that ratio (to `maxRetryAfterSeconds`, 30); refusing none, it shrinks it by a
 * fifth (to 1 s). The waiting clients then ask about twice as often as a place comes free, as a
 * queue would serve them, and the official SDK waits what `retry-after` says (up to 60 s).
 */
export class StreamGate {
  private open = 0;
  private lastStep: number;
  /** The limit now (at most maxStreams). */
  limit: number;
  /** Streams refused since start. */
  refused = 0;
  /** The loop's mean lag over the step that last lowered the limit (ms). */
  loweredAtLagMs = 0;
  /** What a refusal asks the client to wait, in seconds (fractional; sent rounded up). */
  retryAfter = 1;
  /** Streams refused and places freed in the current step. */
  private refusedInStep = 0;
  private freedInStep = 0;
  /** The same, of the step before. */
  private refusedBefore = 0;
  private freedBefore = 0;

  constructor(
    readonly maxStreams: number,
    readonly lagMs: number,
    private readonly lag: Pick<LoopLag, "takeMean">,
    readonly minStreams: number,
    readonly stepMs = 250,
    now = performance.now(),
    readonly maxRetryAfterSeconds = 30,
  ) {
    this.limit = maxStreams;
    this.lastStep = now;
  }

  /** Streams being relayed now. */
  get streams(): number {
    return this.open;
  }

  /** Whether the next stream would be refused now (no place taken, none counted as refused). */
  full(now = performance.now()): boolean {
    this.adjust(now);
    return this.open >= this.limit;
  }

  /** Takes a place for one stream, or returns false: the caller refuses it. */
  enter(now = performance.now()): boolean {
    if (this.full(now)) {
      this.refused++;
      this.refusedInStep++;
      return false;
    }
    this.open++;
    return true;
  }

  /** The stream has ended (or was never relayed). */
  leave(): void {
    if (this.open > 0) {
      this.open--;
      this.freedInStep++;
    }
  }

  /** `retry-after` for a refusal now: whole seconds, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfter));
  }

  private adjust(now: number): void {
    if (now - this.lastStep < this.stepMs) return;
    // The limit was put to the test: a stream was refused, or nearly every place is taken.
    const tested = this.refusedInStep > 0 || this.open >= this.limit * 0.9;
    this.stretchRetryAfter(Math.floor((now - this.lastStep) / this.stepMs));
    this.lastStep = now;
    if (this.lagMs <= 0) return;
    // The lag's mean over the step, not its smoothed peak: one late timer is not a jam.
    const lag = this.lag.takeMean();
    if (lag === undefined) return;
    if (lag > this.lagMs && this.open >= this.minStreams) {
      // Streams open past the limit came in before it was lowered: the lag is still theirs, and no
      // new one gets in until they end. Lowering it again for the same lag would compound (it fell
      // from 374 to 67 within 1.5 s at 1,024 streams, where ~170 keep the lag under 55 ms):
      // the limit drops again once the streams open are back within it.
      if (this.open <= this.limit) {
        this.limit = Math.max(this.minStreams, Math.floor(this.open * 0.8));
        this.loweredAtLagMs = lag;
      }
    } else if (lag < this.lagMs / 2 && this.limit < this.maxStreams && tested) {
      // Raised only while in use (as TCP validates its window, RFC 7661): a limit learnt under
      // load holds through a quiet spell, and the next burst is refused there, not at the ceiling.
      this.limit = Math.min(this.maxStreams, this.limit + Math.max(1, Math.ceil(this.limit / 20)));
    }
  }

  /**
   * The step's refusals against the places it freed (each averaged with the step before: a step
   * is short), as the class's doc says; stretched at most twofold per step. `steps` have passed
   * since the last adjustment: those after the first saw no stream asked for, none refused.
   */
  private stretchRetryAfter(steps: number): void {
    if (steps > 1) {
      this.retryAfter = Math.max(1, this.retryAfter * 0.8 ** (steps - 1));
      this.refusedBefore = this.freedBefore = 0;
    }
    const refusedNow = this.refusedInStep;
    const refused = (refusedNow + this.refusedBefore) / 2;
    const freed = (this.freedInStep + this.freedBefore) / 2;
    this.refusedBefore = refusedNow;
    this.freedBefore = this.freedInStep;
    this.refusedInStep = this.freedInStep = 0;
    if (refusedNow === 0) this.retryAfter = Math.max(1, this.retryAfter * 0.8);
    else if (refused > 2 * freed)
      this.retryAfter = Math.min(
        this.maxRetryAfterSeconds,
        this.retryAfter * Math.min(2, refused / (2 * Math.max(freed, 0.5))),
      );
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
  /** The sojourn watch, when OVERLOAD_SOJOURN_MS is on. */
  readonly sojourn: Sojourn | undefined;
  /** The stream gate, when OVERLOAD_MAX_STREAMS is on. */
  readonly streams: StreamGate | undefined;
  /**
   * Called by a route once it knows the request streams, before any work is spent on it: takes
   * the stream's place until the response closes, or throws the 503. Where there is no Node
   * response (Lambda: one request per instance) streams are not counted.
   */
  admitStream(c: AppContext): void;
  /**
   * The next stream would be refused now: a route chain then reads the body before its rate-limit
   * admission, so that a stream it cannot relay is refused with no Redis round trip spent on it
   * (routes/chain.ts). False without a stream gate.
   */
  streamsFull(): boolean;
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

  const sojourn = options.sojournMs
    ? new Sojourn(options.sojournMs, options.intervalMs)
    : undefined;
  // Not in the Lambda bundles (AGENT_BUNDLE_LAMBDA, scripts/build.mjs): an instance serves one
  // request at a time, so there is nothing to count, and bedrock.js has no room for the class.
  const streams =
    process.env.AGENT_BUNDLE_LAMBDA !== "1" && options.maxStreams
      ? new StreamGate(options.maxStreams, options.streamLagMs ?? 100, lag, options.minInFlight)
      : undefined;
  /** Responses holding a place of the stream gate. */
  const relaying = new WeakSet<ServerResponse>();
  /** Why the last refusal was made: the lag, or time queued in the process. */
  let cause: "lag" | "sojourn" = "lag";

  const overloaded = (now: number): boolean => {
    if (inFlight < options.minInFlight) return (refusing = false);
    // Once refusing, it takes the lag back under half the limit to stop (hysteresis).
    const limit = refusing && cause === "lag" ? options.maxLagMs / 2 : options.maxLagMs;
    if (options.maxLagMs > 0 && lag.lagMs > limit) cause = "lag";
    else if (sojourn?.standing(now)) cause = "sojourn";
    else return (refusing = false);
    return (refusing = true);
  };

  const refusal = () =>
    cause === "lag"
      ? `this replica is overloaded (event loop ${Math.round(lag.lagMs)} ms behind with ${inFlight} requests in flight; OVERLOAD_LAG_MS): retry after retry-after`
      : `this replica is overloaded (requests waited at least ${Math.round(sojourn?.lastMinMs ?? 0)} ms in it before their model call, with ${inFlight} in flight; OVERLOAD_SOJOURN_MS): retry after retry-after`;

  const middleware: MiddlewareHandler<AppEnv> = async (c, next) => {
    const arrived = performance.now();
    if (overloaded(arrived)) {
      refused++;
      throw new ApiError(503, "overloaded_error", refusal(), {
        "retry-after": retryAfter,
        "x-should-retry": "true",
      });
    }
    // The wait from here to the model call is this request's time queued in the process.
    if (sojourn) {
      let sampled = false;
      c.set("dispatching", () => {
        if (sampled) return;
        sampled = true;
        sojourn.record(performance.now() - arrived);
      });
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
      return refused + (streams?.refused ?? 0);
    },
    lag,
    sojourn,
    streams,
    admitStream(c) {
      // Folded away in the Lambda bundles (no stream gate there): esbuild drops the rest.
      if (process.env.AGENT_BUNDLE_LAMBDA === "1") return;
      const outgoing = streams && outgoingOf(c);
      // Admitted once per response: the chain's early check and the route may both ask.
      if (!streams || !outgoing || outgoing.closed || relaying.has(outgoing)) return;
      if (!streams.enter()) {
        // The figure the gate decided on: the loop's mean lag over a step, not the smoothed one.
        const lowered =
          streams.limit < streams.maxStreams
            ? `, lowered from OVERLOAD_MAX_STREAMS ${streams.maxStreams} after the event loop ran ${Math.round(streams.loweredAtLagMs)} ms behind on average (OVERLOAD_STREAM_LAG_MS ${streams.lagMs})`
            : " (OVERLOAD_MAX_STREAMS)";
        throw new ApiError(
          503,
          "overloaded_error",
          `this replica is relaying ${streams.streams} streams, its limit now${lowered}: retry after retry-after`,
          { "retry-after": String(streams.retryAfterSeconds()), "x-should-retry": "true" },
        );
      }
      relaying.add(outgoing);
      outgoing.once("close", () => streams.leave());
    },
    streamsFull: () => streams?.full() ?? false,
    close: () => lag.stop(),
  };
}
