/**
 * The service's one retry loop, as a decorator over any LlmProvider, so routes need no change.
 *
 * - Retries honour `retry-after-ms` / `retry-after`, otherwise back off exponentially with jitter.
 *   The SDK's own retries must be off (AnthropicProvider's default), or attempts multiply.
 * - Never retried: spend-limit and billing refusals (`x-should-retry: false`, `error_code`
 *   `enforced_spend_limit_reached`, ...), 4xx other than 408/409/429, a caller that went away.
 * - One overall deadline per request (UPSTREAM_DEADLINE_MS) bounds attempts, waits and backoff;
 *   each attempt's timeout is cut to what is left of it. For a stream the deadline covers the
 *   time to its first event; after that the stream runs under the per-attempt timeout only.
 * - A circuit breaker per model (opossum): 429, 529, 5xx and timeouts count as failures, client
 *   errors do not. While a model's breaker is open, or while it cools down after a 429, requests
 *   go to the next model of its tier's chain (app/config/models.json `fallbacks`). When no model
 *   of the chain can take the call, the request fails fast: 503 `overloaded_error` with
 *   `retry-after` set to the time until the first breaker lets a probe through.
 * - 429 and 529 move to the fallback at once (retrying the same model alone rarely helps); other
 *   transient failures retry the same model once after a backoff, then move on.
 * - A fallback to a dearer model than the request's is taken only if `admitModel` (the budget
 *   hold's top-up) agrees; otherwise that model is skipped.
 * - Streams: retries and fallback happen only before the first event is handed on. A failure
 *   after that reaches the consumer (and counts against the model), never a second stream.
 *
 * The message's `model` says which model served; fallbacks are also reported as events.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { AppConfig } from "../config";
import type { ModelCatalog } from "./models";
import type {
  CallOptions,
  CountTokensRequest,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "./types";
import { UpstreamError } from "./types";
import { follow } from "./signals";
import {
  ModelHealthRegistry,
  type BreakerOptions,
  type BreakerSnapshot,
  type ModelHealth,
  type ResilienceEvent,
  type ResilienceListener,
} from "./breaker";
import {
  asUpstreamError,
  backoffMs,
  classify,
  retryAfterMs,
  type BackoffOptions,
  type FailureKind,
} from "./retry";
import { errorMessage } from "../errors";

export type { BreakerSnapshot, ResilienceEvent, ResilienceListener } from "./breaker";

export interface ResilientOptions {
  /** Supplies the fallback chains; without it a request only ever uses its own model. */
  catalog?: ModelCatalog;
  /** Fall back along the tier's chain. @default true */
  fallback?: boolean;
  /** Overall time budget per request, across attempts and waits. @default 180000 */
  deadlineMs?: number;
  /** Upstream attempts per request, across retries and fallback models. @default 4 */
  maxAttempts?: number;
  /** Longest wait the loop accepts (a long retry-after, a long cooldown); beyond it the error goes back to the client. @default 30000 */
  maxWaitMs?: number;
  backoff?: BackoffOptions;
  breaker?: BreakerOptions;
  logger?: Pick<Logger, "warn" | "info" | "debug">;
  /** For tests of the jitter. @default Math.random */
  random?: () => number;
}

/** Transient failures on one model before a request moves to the next model of the chain. */
const SAME_MODEL_TRIES = 2;

interface Failure {
  model: string;
  error: UpstreamError;
  kind: FailureKind;
  attempt: number;
}

type Choice =
  | { kind: "call"; model: string; waitMs: number; reason?: "open" | "cooldown" }
  /** Only open breakers (or models skipped for this request) remain: fail fast. */
  | { kind: "none"; model: string; reason: "open"; retryAfterMs: number };

export class ResilientProvider implements LlmProvider {
  readonly synthetic: boolean;
  private readonly health: ModelHealthRegistry;
  private readonly listeners = new Set<ResilienceListener>();
  private readonly deadlineMs: number;
  private readonly maxAttempts: number;
  private readonly maxWaitMs: number;
  private readonly random: () => number;

  constructor(
    private readonly inner: LlmProvider,
    private readonly options: ResilientOptions = {},
  ) {
    this.synthetic = inner.synthetic;
    this.deadlineMs = options.deadlineMs ?? 180_000;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 4);
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
    this.random = options.random ?? Math.random;
    const known = new Set(options.catalog?.table.models.map((m) => m.id) ?? []);
    this.health = new ModelHealthRegistry(options.breaker ?? {}, (e) => this.emit(e), known);
  }

  /** Subscribe to breaker transitions, retries, fallbacks and fast failures. Returns the unsubscribe. */
  onEvent(listener: ResilienceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every tracked model's breaker state, cooldown and rolling counts (for /metrics and dashboards). */
  breakerStates(): BreakerSnapshot[] {
    return this.health.snapshots();
  }

  /** The models a request for `model` may be served by, in order of preference. */
  modelChain(model: string): string[] {
    const catalog = this.options.catalog;
    if (!catalog || this.options.fallback === false) return [model];
    return catalog.chainFor(model);
  }

  /** Stop the breakers' window timers. */
  close(): void {
    this.health.shutdown();
    this.listeners.clear();
  }

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    const { value } = await this.execute(request, options, (model, call) =>
      this.inner.createMessage(model === request.model ? request : { ...request, model }, call),
    );
    return value;
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    // The stream's signal must follow the caller's for as long as the stream is read: the link is
    // cut when the stream ends (below), not when the first event arrives.
    const { value, health, unlink } = await this.execute(
      request,
      options,
      async (model, call) => {
        const it = this.inner
          .streamMessage(model === request.model ? request : { ...request, model }, call)
          [Symbol.asyncIterator]();
        try {
          return { it, first: await it.next() };
        } catch (err) {
          await it.return?.().catch(() => undefined);
          throw err;
        }
      },
      true,
    );
    // The first event exists: from here on no retry and no fallback, whatever happens.
    const { it, first } = value;
    let finished = first.done === true;
    try {
      if (first.done) return;
      yield first.value;
      for (;;) {
        let next: IteratorResult<StreamEvent>;
        try {
          next = await it.next();
        } catch (err) {
          finished = true;
          health.recordLateFailure(err);
          throw err;
        }
        if (next.done) {
          finished = true;
          return;
        }
        yield next.value;
      }
    } finally {
      // The consumer stopped early: close the upstream stream so the call is not left running.
      if (!finished) await it.return?.().catch(() => undefined);
      unlink();
    }
  }

  /**
   * Counted by the upstream as it is, without retries or fallback: a count is no generation, and
   * its failures say nothing about a model's health (the breakers stay out of it).
   */
  countTokens(request: CountTokensRequest, options: CallOptions = {}): Promise<number> {
    if (!this.inner.countTokens)
      return Promise.reject(
        new UpstreamError(400, "invalid_request_error", "count_tokens is not available upstream"),
      );
    return this.inner.countTokens(request, options);
  }

  private async execute<T>(
    request: MessageRequest,
    options: CallOptions,
    call: (model: string, options: CallOptions) => Promise<T>,
    /** The caller goes on using the call's signal after this returns and calls `unlink` itself. */
    keepLinked = false,
  ): Promise<{ value: T; model: string; health: ModelHealth; unlink: () => void }> {
    const requested = request.model;
    const chain = this.modelChain(requested);
    const deadlineAt = Date.now() + this.deadlineMs;
    // The call's signal: it aborts at the deadline, or with the caller's signal, which it follows
    // (not AbortSignal.any(): the caller's signal may live as long as the process, signals.ts).
    const controller = new AbortController();
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      controller.abort();
    }, this.deadlineMs);
    timer.unref?.();
    const unlink = options.signal ? follow(options.signal, controller) : () => {};
    const signal = controller.signal;
    let handedOver = false;
    const state: RequestState = { ownWait: new Map(), strikes: new Map() };
    const requestId = options.requestId;
    let previous: string | undefined;
    let attempt = 0;
    try {
      for (;;) {
        if (options.signal?.aborted) throw aborted();
        const now = Date.now();
        const choice = this.choose(chain, state, now);
        const last = state.last;
        if (
          choice.kind === "call" &&
          choice.model !== requested &&
          options.admitModel &&
          !(await options.admitModel(choice.model))
        ) {
          // The budgets cannot cover this model's price: not an attempt, the next one is tried.
          state.ownWait.set(choice.model, Infinity);
          state.budgetSkipped = true;
          continue;
        }
        if (choice.kind === "none") {
          // Every fallback left was too dear for the budgets: the client gets the real failure.
          if (state.budgetSkipped && last) throw last.error;
          this.emit({
            type: "rejected",
            model: requested,
            reason: choice.reason,
            retryAfterMs: choice.retryAfterMs,
            requestId,
          });
          throw unavailable(chain, choice.retryAfterMs);
        }
        if (now + choice.waitMs >= deadlineAt || choice.waitMs > this.maxWaitMs) {
          // Waiting would overrun the deadline: hand the client the error and how long to wait.
          if (last) throw withRetryAfter(last.error, choice.waitMs);
          throw new UpstreamError(
            429,
            "rate_limit_error",
            `model ${choice.model} is rate limited upstream; retry after the delay in retry-after`,
            retryAfterHeader(choice.waitMs),
          );
        }
        if (last) {
          this.emit({
            type: "retry",
            model: last.model,
            attempt: last.attempt,
            status: last.error.status,
            errorType: last.error.type,
            delayMs: choice.waitMs,
            requestId,
          });
        }
        const from = previous ?? requested;
        if (choice.model !== from) {
          const reason =
            last && previous !== undefined
              ? last.kind === "fatal"
                ? "transient"
                : last.kind
              : (choice.reason ?? "open");
          this.emit({ type: "fallback", from, to: choice.model, reason, requestId });
        }
        if (choice.waitMs > 0) {
          await sleep(choice.waitMs, undefined, { signal }).catch(() => undefined);
          if (options.signal?.aborted) throw aborted();
          if (expired) throw deadlineExceeded(this.deadlineMs, attempt, last);
        }

        attempt++;
        previous = choice.model;
        const health = this.health.get(choice.model);
        const remaining = Math.max(1, deadlineAt - Date.now());
        const boundByDeadline = remaining <= (options.timeoutMs ?? Infinity);
        const attemptOptions: CallOptions = {
          ...options,
          signal,
          timeoutMs: Math.min(options.timeoutMs ?? remaining, remaining),
        };
        try {
          const value = await health.run(() => call(choice.model, attemptOptions));
          handedOver = keepLinked;
          return { value, model: choice.model, health, unlink };
        } catch (err) {
          if ((err as { code?: string }).code === "EOPENBREAKER") {
            // It opened (or a probe started) since we looked: not an attempt; skip the model.
            attempt--;
            state.ownWait.set(choice.model, Infinity);
            continue;
          }
          if (options.signal?.aborted) throw asUpstreamError(err);
          const error = asUpstreamError(err);
          // An attempt given only the time left times out together with the deadline, and its
          // own timer may fire first: either way the deadline is what ended it.
          if (expired || (boundByDeadline && error.type === "timeout_error"))
            throw deadlineExceeded(this.deadlineMs, attempt, state.last);
          const kind = classify(error);
          if (kind === "fatal") throw error;
          const failure: Failure = { model: choice.model, error, kind, attempt };
          state.last = failure;
          if (attempt >= this.maxAttempts) throw error;
          this.schedule(health, failure, state);
          this.options.logger?.debug(
            { model: choice.model, attempt, status: error.status, type: error.type, requestId },
            "upstream attempt failed; retrying",
          );
        }
      }
    } finally {
      clearTimeout(timer);
      if (!handedOver) unlink();
    }
  }

  /**
   * The next model to call and how long to wait first. In order: the same model again after a
   * transient failure (a blip should not change the model a client gets); else the first model of
   * the chain that can be called now; else the one that can be called soonest, unless only open
   * breakers remain, in which case there is nothing to wait for within a request.
   */
  private choose(chain: string[], state: RequestState, now: number): Choice {
    const last = state.last;
    if (last?.kind === "transient" && (state.strikes.get(last.model) ?? 0) < SAME_MODEL_TRIES) {
      const h = this.health.get(last.model);
      if (h.waitMs(now) === 0) {
        return {
          kind: "call",
          model: last.model,
          waitMs: Math.max(0, (state.ownWait.get(last.model) ?? 0) - now),
        };
      }
    }
    let soonest: { model: string; waitMs: number; reason: "open" | "cooldown" } | undefined;
    let firstBlock: "open" | "cooldown" | undefined;
    let openRetryAfter = Infinity;
    for (const model of chain) {
      const h = this.health.get(model);
      const shared = h.waitMs(now);
      const blocked = h.blockedBy(now);
      const own = Math.max(0, (state.ownWait.get(model) ?? 0) - now);
      firstBlock ??= blocked ?? undefined;
      if (blocked === "open") {
        openRetryAfter = Math.min(openRetryAfter, shared);
        continue;
      }
      if (own === Infinity) continue;
      const wait = Math.max(shared, own);
      if (wait === 0) return { kind: "call", model, waitMs: 0, reason: firstBlock };
      if (!soonest || wait < soonest.waitMs)
        soonest = { model, waitMs: wait, reason: blocked ?? "cooldown" };
    }
    if (soonest)
      return { kind: "call", model: soonest.model, waitMs: soonest.waitMs, reason: soonest.reason };
    return {
      kind: "none",
      model: chain[0]!,
      reason: "open",
      retryAfterMs: Number.isFinite(openRetryAfter) ? openRetryAfter : 1000,
    };
  }

  /** When this request may call the failed model again, and the model-wide cooldown after a 429. */
  private schedule(health: ModelHealth, failure: Failure, state: RequestState, now = Date.now()) {
    const asked = retryAfterMs(failure.error, now);
    if (failure.kind === "rate_limited") {
      const wait = asked ?? backoffMs(failure.attempt, this.options.backoff, this.random);
      if (health.coolDown(now + wait))
        this.emit({ type: "cooldown", model: failure.model, until: now + wait });
      state.ownWait.set(failure.model, now + wait);
      return;
    }
    let retry = failure.attempt;
    if (failure.kind === "transient") {
      retry = (state.strikes.get(failure.model) ?? 0) + 1;
      state.strikes.set(failure.model, retry);
    }
    const wait = Math.max(asked ?? 0, backoffMs(retry, this.options.backoff, this.random));
    state.ownWait.set(failure.model, now + wait);
  }

  private emit(event: ResilienceEvent): void {
    if (event.type === "breaker") {
      this.options.logger?.warn(
        { model: event.model, state: event.state },
        `circuit breaker ${event.state}`,
      );
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.options.logger?.warn({ err: errorMessage(err) }, "resilience event listener failed");
      }
    }
  }
}

interface RequestState {
  /** Per model: not before this time (epoch ms) for this request; Infinity = skip. */
  ownWait: Map<string, number>;
  /** Per model: transient failures in this request. */
  strikes: Map<string, number>;
  last?: Failure;
  /** A fallback was skipped because the budgets could not cover its price. */
  budgetSkipped?: boolean;
}

const aborted = () => new UpstreamError(499, "aborted", "request aborted");

function retryAfterHeader(ms: number): Record<string, string> {
  return { "retry-after": String(Math.max(1, Math.ceil(ms / 1000))) };
}

function withRetryAfter(err: UpstreamError, ms: number): UpstreamError {
  if (!Number.isFinite(ms) || ms <= 0) return err;
  const headers = { ...err.headers, ...retryAfterHeader(ms) };
  delete headers["retry-after-ms"];
  return Object.assign(new UpstreamError(err.status, err.type, err.message, headers, err.remote), {
    cause: err,
  });
}

function unavailable(chain: string[], retryAfter: number): UpstreamError {
  const which = chain.length > 1 ? `models ${chain.join(", ")} are` : `model ${chain[0]} is`;
  return new UpstreamError(
    503,
    "overloaded_error",
    `${which} failing (circuit breaker open); retry after the delay in retry-after`,
    retryAfterHeader(retryAfter),
  );
}

function deadlineExceeded(
  deadlineMs: number,
  attempts: number,
  last: Failure | undefined,
): UpstreamError {
  const tail = last
    ? `; last failure: ${last.error.status} ${last.error.type} from ${last.model}`
    : "";
  return new UpstreamError(
    504,
    "timeout_error",
    `no answer from the model API within the ${deadlineMs} ms deadline (UPSTREAM_DEADLINE_MS) after ${attempts} attempt(s)${tail}`,
  );
}

/** The resilience settings from the validated configuration. */
export function resilienceOptions(
  config: Pick<
    AppConfig,
    | "UPSTREAM_DEADLINE_MS"
    | "UPSTREAM_MAX_ATTEMPTS"
    | "MODEL_FALLBACK"
    | "BREAKER_ERROR_PERCENT"
    | "BREAKER_MIN_CALLS"
    | "BREAKER_WINDOW_MS"
    | "BREAKER_OPEN_MS"
  >,
  extra: Pick<ResilientOptions, "catalog" | "logger"> = {},
): ResilientOptions {
  return {
    ...extra,
    deadlineMs: config.UPSTREAM_DEADLINE_MS,
    maxAttempts: config.UPSTREAM_MAX_ATTEMPTS,
    fallback: config.MODEL_FALLBACK,
    breaker: {
      errorThresholdPercentage: config.BREAKER_ERROR_PERCENT,
      volumeThreshold: config.BREAKER_MIN_CALLS,
      rollingCountTimeoutMs: config.BREAKER_WINDOW_MS,
      resetTimeoutMs: config.BREAKER_OPEN_MS,
    },
  };
}
