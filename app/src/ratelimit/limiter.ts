/**
 * Requests per minute and tokens per minute per user, shared by every replica through Redis
 * (rate-limiter-flexible's atomic Lua counters), with an in-memory limiter per replica as
 * insurance while Redis cannot be reached or is too slow to answer.
 *
 * - Keyed by the authenticated user id, not the raw key: every key of a user shares the limits,
 *   so minting more keys does not buy more throughput.
 * - Fixed one-minute windows that start at a user's first request (rate-limiter-flexible's
 *   model): at a window edge a user can briefly reach twice the rate.
 * - Tokens: a request reserves its estimated input tokens plus max_tokens before the call
 *   (capped at the whole per-minute limit, so one large request can still run in an empty
 *   window); `settle(actual)` then refunds what was not used or charges the overrun.
 *   Cache reads are not counted, as the Anthropic API does not count them toward its limits.
 * - A request refused for tokens gives its reservation back at once; a request refused for
 *   requests still counts, so hammering does not shorten the wait.
 */
import type { Redis } from "ioredis";
import type * as Flexible from "rate-limiter-flexible";
// The package's index loads all of its ~25 store back-ends; requiring the four classes used here
// keeps about 55 KiB out of the Lambda bundle. Types still come from the package's declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const RateLimiterMemory =
  require("rate-limiter-flexible/lib/RateLimiterMemory") as typeof Flexible.RateLimiterMemory;
const RateLimiterRedis =
  require("rate-limiter-flexible/lib/RateLimiterRedis") as typeof Flexible.RateLimiterRedis;
const RateLimiterRes =
  require("rate-limiter-flexible/lib/RateLimiterRes") as typeof Flexible.RateLimiterRes;
const RLWrapperTimeouts =
  require("rate-limiter-flexible/lib/RLWrapperTimeouts") as typeof Flexible.RLWrapperTimeouts;
/* eslint-enable @typescript-eslint/no-require-imports */
type RateLimiterAbstract = Flexible.RateLimiterAbstract;
type RLWrapperTimeouts = Flexible.RLWrapperTimeouts;
import type { Logger } from "pino";
import { ApiError, errorMessage } from "../errors";
import type { AppConfig } from "../config";

export interface RateLimiterOptions {
  /** Requests per minute per user; 0 disables. */
  rpm: number;
  /** Tokens per minute per user; 0 disables. */
  tpm: number;
  /** Shared counters; without it every replica limits on its own. */
  redis?: Redis;
  /** Redis key prefix, e.g. to isolate tests. @default "rl" */
  keyPrefix?: string;
  /** A Redis call slower than this falls back to the in-memory limiter. @default 200 */
  redisTimeoutMs?: number;
  /** Share of each limit a replica enforces alone while Redis is unreachable. @default 1 */
  degradedShare?: number;
  logger?: Pick<Logger, "warn">;
}

/** The window's length: both limits are per minute. */
const WINDOW_SECONDS = 60;

/** What admission granted; keep it until the request ends and call `settle`. */
export interface Admission {
  /** Rate-limit headers in the Anthropic API's names, for the response. */
  readonly headers: Record<string, string>;
  /** Tokens reserved up front (0 when TPM is off or the request carries no model call). */
  readonly reservedTokens: number;
  /** True once settled (settling twice does nothing). */
  readonly settled: boolean;
  /**
   * Correct the reservation with the tokens the request really used: refunds the unused part
   * (only within the window it was reserved in) or charges the overrun. Never throws.
   */
  settle(actualTokens: number): Promise<void>;
}

type Limiter = RateLimiterAbstract | RLWrapperTimeouts;

/** One request the limiter refused (the hook for the operator console's recent refusals). */
export interface RateLimitRefusal {
  userId: string;
  limit: "rpm" | "tpm";
}

export class RequestRateLimiter {
  private readonly requests: Limiter | null;
  private readonly tokens: Limiter | null;
  private readonly refusalListeners = new Set<(e: RateLimitRefusal) => void>();

  constructor(private readonly options: RateLimiterOptions) {
    this.requests = options.rpm > 0 ? this.build("rpm", options.rpm) : null;
    this.tokens = options.tpm > 0 ? this.build("tpm", options.tpm) : null;
  }

  get enabled(): boolean {
    return this.requests !== null || this.tokens !== null;
  }

  /** Call `listener` for every refused request; returns the function that removes it. */
  onRefused(listener: (e: RateLimitRefusal) => void): () => void {
    this.refusalListeners.add(listener);
    return () => this.refusalListeners.delete(listener);
  }

  private refused(userId: string, limit: RateLimitRefusal["limit"]): void {
    for (const listener of this.refusalListeners) {
      try {
        listener({ userId, limit });
      } catch (err) {
        this.options.logger?.warn({ err: errorMessage(err) }, "rate limit refusal listener threw");
      }
    }
  }

  private build(kind: "rpm" | "tpm", points: number): Limiter {
    const keyPrefix = `${this.options.keyPrefix ?? "rl"}:${kind}`;
    const share = this.options.degradedShare ?? 1;
    const insurance = new RateLimiterMemory({
      keyPrefix,
      points: Math.max(1, Math.floor(points * share)),
      duration: WINDOW_SECONDS,
    });
    if (!this.options.redis) return insurance;
    const shared = new RateLimiterRedis({
      storeClient: this.options.redis,
      keyPrefix,
      points,
      duration: WINDOW_SECONDS,
      // ioredis is built with enableOfflineQueue: false; fail over at once rather than wait.
      rejectIfRedisNotReady: true,
      insuranceLimiter: insurance,
    });
    // A Redis that accepts the connection but does not answer would stall every request.
    return new RLWrapperTimeouts({
      limiter: shared,
      timeoutMs: this.options.redisTimeoutMs ?? 200,
      insuranceLimiter: insurance,
    });
  }

  /** What `user` has consumed in the current windows, without consuming anything. */
  async usage(user: string): Promise<LimitUsage> {
    const read = async (l: Limiter | null) =>
      l ? ((await l.get(user).catch(() => null))?.consumedPoints ?? 0) : undefined;
    return { requests: await read(this.requests), tokens: await read(this.tokens) };
  }

  /**
   * Count one request and reserve `estimatedTokens` (a promise when the body is still being
   * read: the request is counted at once all the same). Throws a 429 `rate_limit_error` ApiError
   * with `retry-after` and the rate-limit headers when either limit is reached.
   */
  async admit(user: string, estimatedTokens: number | Promise<number>): Promise<Admission> {
    const headers: Record<string, string> = {};
    const now = Date.now();
    // The request counts at once; its tokens once they are known (its body read). Known already,
    // both counters go in one round trip (the Redis client pipelines commands of the same tick).
    // A reservation made beside a refused request is given back below.
    const counting = this.requests ? consume(this.requests, user, 1) : undefined;
    const estimate = typeof estimatedTokens === "number" ? estimatedTokens : await estimatedTokens;
    const want = this.tokens ? Math.min(Math.max(0, Math.ceil(estimate)), this.options.tpm) : 0;
    const tokens = want > 0 ? this.tokens : null;
    const [req, tok] = await Promise.all([
      counting,
      tokens ? consume(tokens, user, want) : undefined,
    ]);
    if (req) {
      setHeaders(headers, "requests", this.options.rpm, req, now);
      if (req.rejected) {
        // Redis counted the tokens, refused or not: nothing will run on them.
        if (tok) void tokens!.reward(user, want).catch(() => undefined);
        this.refused(user, "rpm");
        throw limited(
          headers,
          req.msBeforeNext,
          `${this.options.rpm} requests per minute (RATE_LIMIT_RPM)`,
        );
      }
    }
    if (!tokens || !tok) return new TokenAdmission(headers, null, user, 0, 0);
    setHeaders(headers, "tokens", this.options.tpm, tok, now);
    if (tok.rejected) {
      // Redis counted the refused reservation: give it back, nothing will run on it.
      await tokens.reward(user, want).catch(() => undefined);
      headers["anthropic-ratelimit-tokens-remaining"] = String(
        Math.max(0, this.options.tpm - (tok.consumedPoints - want)),
      );
      this.refused(user, "tpm");
      throw limited(
        headers,
        tok.msBeforeNext,
        `${this.options.tpm} tokens per minute (RATE_LIMIT_TPM); this request reserves about ${want} (input estimate + max_tokens)`,
      );
    }
    return new TokenAdmission(
      headers,
      tokens,
      user,
      want,
      now + tok.msBeforeNext,
      this.options.logger,
    );
  }
}

/** Points a user has consumed in the current windows (for ops and tests); undefined for a limit that is off. */
export interface LimitUsage {
  requests?: number;
  tokens?: number;
}

class TokenAdmission implements Admission {
  private done = false;
  constructor(
    readonly headers: Record<string, string>,
    private readonly limiter: Limiter | null,
    private readonly user: string,
    readonly reservedTokens: number,
    private readonly windowEndsAt: number,
    private readonly logger?: Pick<Logger, "warn">,
  ) {
    if (!limiter) this.done = true;
  }

  get settled(): boolean {
    return this.done;
  }

  async settle(actualTokens: number): Promise<void> {
    if (this.done || !this.limiter) return;
    this.done = true;
    const actual = Number.isFinite(actualTokens)
      ? Math.max(0, Math.ceil(actualTokens))
      : this.reservedTokens;
    const diff = this.reservedTokens - actual;
    try {
      if (diff > 0 && Date.now() < this.windowEndsAt) await this.limiter.reward(this.user, diff);
      // A refund into a later window would hand out tokens that window never spent.
      else if (diff < 0) await this.limiter.penalty(this.user, -diff);
    } catch (err) {
      this.logger?.warn({ err: errorMessage(err) }, "could not settle a token reservation");
    }
  }
}

interface Consumed {
  rejected: boolean;
  consumedPoints: number;
  remainingPoints: number;
  msBeforeNext: number;
}

async function consume(limiter: Limiter, key: string, points: number): Promise<Consumed> {
  try {
    const res = await limiter.consume(key, points);
    return {
      rejected: false,
      consumedPoints: res.consumedPoints,
      remainingPoints: res.remainingPoints,
      msBeforeNext: res.msBeforeNext,
    };
  } catch (err) {
    if (err instanceof RateLimiterRes) {
      return {
        rejected: true,
        consumedPoints: err.consumedPoints,
        remainingPoints: 0,
        msBeforeNext: err.msBeforeNext,
      };
    }
    // Neither Redis nor the insurance limiter answered: let the request through rather than fail it.
    return {
      rejected: false,
      consumedPoints: 0,
      remainingPoints: 0,
      msBeforeNext: WINDOW_SECONDS * 1000,
    };
  }
}

function setHeaders(
  headers: Record<string, string>,
  kind: "requests" | "tokens",
  limit: number,
  res: Consumed,
  now: number,
) {
  headers[`anthropic-ratelimit-${kind}-limit`] = String(limit);
  headers[`anthropic-ratelimit-${kind}-remaining`] = String(Math.max(0, res.remainingPoints));
  headers[`anthropic-ratelimit-${kind}-reset`] = new Date(now + Math.max(0, res.msBeforeNext))
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z");
}

function limited(headers: Record<string, string>, msBeforeNext: number, what: string): ApiError {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new ApiError(
    429,
    "rate_limit_error",
    `rate limit reached: ${what}; retry after ${seconds} s`,
    { ...headers, "retry-after": String(seconds) },
  );
}

/** The limiter from the validated configuration, or null when both limits are off. */
export function rateLimiterFromConfig(
  config: Pick<AppConfig, "RATE_LIMIT_RPM" | "RATE_LIMIT_TPM" | "RATE_LIMIT_DEGRADED_SHARE">,
  redis: Redis | undefined,
  logger?: Pick<Logger, "warn">,
): RequestRateLimiter | null {
  const limiter = new RequestRateLimiter({
    rpm: config.RATE_LIMIT_RPM,
    tpm: config.RATE_LIMIT_TPM,
    degradedShare: config.RATE_LIMIT_DEGRADED_SHARE,
    redis,
    logger,
  });
  return limiter.enabled ? limiter : null;
}
