/**
 * Requests per minute and tokens per minute per user, shared by every replica through Redis
 * (one atomic Lua script per count), with an in-memory limiter per replica (rate-limiter-flexible's
 * RateLimiterMemory) as insurance while Redis cannot be reached or is too slow to answer.
 *
 * - Keyed by the authenticated user id, not the raw key: every key of a user shares the limits,
 *   so minting more keys does not buy more throughput.
 * - Fixed one-minute windows that start at a user's first request: at a window edge a user can
 *   briefly reach twice the rate.
 * - Tokens: a request reserves its estimated input tokens plus max_tokens before the call
 *   (capped at the whole per-minute limit, so one large request can still run in an empty
 *   window); `settle(actual)` then refunds what was not used or charges the overrun.
 *   Cache reads are not counted, as the Anthropic API does not count them toward its limits.
 * - A request refused for tokens gives its reservation back at once; a request refused for
 *   requests still counts, so hammering does not shorten the wait.
 */
import type { Redis } from "ioredis";
import type * as Flexible from "rate-limiter-flexible";
// The package's index loads all of its ~25 store back-ends; requiring the two classes used here
// keeps them out of the Lambda bundle. Types still come from the package's declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const RateLimiterMemory =
  require("rate-limiter-flexible/lib/RateLimiterMemory") as typeof Flexible.RateLimiterMemory;
const RateLimiterRes =
  require("rate-limiter-flexible/lib/RateLimiterRes") as typeof Flexible.RateLimiterRes;
/* eslint-enable @typescript-eslint/no-require-imports */
type RateLimiterMemory = Flexible.RateLimiterMemory;
import type { Logger } from "pino";
import { withTimeout } from "../budget/timeout";
import { ApiError, errorMessage } from "../errors";
import type { AppConfig } from "../config";
import { Script } from "../store/redis-script";

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

/** One request the limiter refused (the hook for the operator console's recent refusals). */
export interface RateLimitRefusal {
  userId: string;
  limit: "rpm" | "tpm";
}

export class RequestRateLimiter {
  private readonly requests: Window | null;
  private readonly tokens: Window | null;
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

  private build(kind: "rpm" | "tpm", points: number): Window {
    const keyPrefix = `${this.options.keyPrefix ?? "rl"}:${kind}`;
    const share = this.options.degradedShare ?? 1;
    const insurance = new MemoryWindow(
      new RateLimiterMemory({
        keyPrefix,
        points: Math.max(1, Math.floor(points * share)),
        duration: WINDOW_SECONDS,
      }),
    );
    if (!this.options.redis) return insurance;
    return new RedisWindow(
      this.options.redis,
      `${keyPrefix}:`,
      points,
      // A Redis that accepts the connection but does not answer would stall every request.
      this.options.redisTimeoutMs ?? 200,
      insurance,
    );
  }

  /** The tokens a request reserves: its estimate, capped at the whole minute (0 with TPM off). */
  private wanted(estimate: number): number {
    return this.tokens ? Math.min(Math.max(0, Math.ceil(estimate)), this.options.tpm) : 0;
  }

  /** What `user` has consumed in the current windows, without consuming anything. */
  async usage(user: string): Promise<LimitUsage> {
    const read = async (w: Window | null) => (w ? await w.get(user) : undefined);
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
    // The request counts at once; its tokens once they are known (its body read). Known within
    // this tick (a body that came in one packet), one script counts both; else both counters go
    // in one round trip all the same (the Redis client pipelines commands of the same tick).
    // A reservation made beside a refused request is not kept (given back below).
    let req: Consumed | undefined;
    let tok: Consumed | undefined;
    let want = 0;
    const tokens = this.tokens;
    const pair = this.requests instanceof RedisWindow && tokens instanceof RedisWindow;
    const early =
      pair && typeof estimatedTokens !== "number"
        ? await thisTick(estimatedTokens)
        : estimatedTokens;
    if (pair && typeof early === "number") {
      want = this.wanted(early);
      [req, tok] = await (this.requests as RedisWindow).consumeWith(
        tokens as RedisWindow,
        user,
        want,
      );
    } else {
      const counting = this.requests?.consume(user, 1);
      want = this.wanted(typeof early === "number" ? early : await estimatedTokens);
      [req, tok] = await Promise.all([
        counting,
        want > 0 ? tokens?.consume(user, want) : undefined,
      ]);
    }
    if (req) {
      setHeaders(headers, "requests", this.options.rpm, req, now);
      if (req.rejected) {
        // Redis counted the tokens, refused or not: nothing will run on them.
        if (tok) void tokens!.adjust(user, -want);
        this.refused(user, "rpm");
        throw limited(
          headers,
          req.msBeforeNext,
          `${this.options.rpm} requests per minute (RATE_LIMIT_RPM)`,
        );
      }
    }
    if (!tokens || !tok || want === 0) return new TokenAdmission(headers, null, user, 0, 0);
    setHeaders(headers, "tokens", this.options.tpm, tok, now);
    if (tok.rejected) {
      // Redis counted the refused reservation: give it back, nothing will run on it.
      await tokens.adjust(user, -want);
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
    private readonly limiter: Window | null,
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
    const overrun = actual - this.reservedTokens;
    // A refund into a later window would hand out tokens that window never spent.
    if (overrun > 0 || (overrun < 0 && Date.now() < this.windowEndsAt))
      await this.limiter.adjust(this.user, overrun, this.logger);
  }
}

interface Consumed {
  rejected: boolean;
  consumedPoints: number;
  remainingPoints: number;
  msBeforeNext: number;
}

/** One limit's counters: a fixed window per key that starts at the key's first point. */
interface Window {
  /** Adds `points`; refused (and still counted) past the limit. Never throws. */
  consume(key: string, points: number): Promise<Consumed>;
  /** Adds `points` (negative: gives them back) without a limit check. Never throws. */
  adjust(key: string, points: number, logger?: Pick<Logger, "warn">): Promise<void>;
  /** Points in the key's current window (0 when none is open). Never throws. */
  get(key: string): Promise<number>;
}

/** A replica's own counters: the limit without Redis, and the insurance while Redis is out. */
class MemoryWindow implements Window {
  constructor(private readonly limiter: RateLimiterMemory) {}

  async consume(key: string, points: number): Promise<Consumed> {
    try {
      const res = await this.limiter.consume(key, points);
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
      // The in-memory limiter failed (it does not, short of a bug): let the request through.
      return {
        rejected: false,
        consumedPoints: 0,
        remainingPoints: 0,
        msBeforeNext: WINDOW_SECONDS * 1000,
      };
    }
  }

  async adjust(key: string, points: number, logger?: Pick<Logger, "warn">): Promise<void> {
    try {
      if (points < 0) await this.limiter.reward(key, -points);
      else if (points > 0) await this.limiter.penalty(key, points);
    } catch (err) {
      logger?.warn({ err: errorMessage(err) }, "could not settle a token reservation");
    }
  }

  async get(key: string): Promise<number> {
    return (await this.limiter.get(key).catch(() => null))?.consumedPoints ?? 0;
  }
}

/**
 * Lua shared by the scripts: `add(key, points)` opens the key's window (SET NX with its expiry)
 * on its first point, then adds, and answers the window's points and the ms it has left. Atomic
 * inside a script, so replicas counting at once neither lose points nor open two windows. A key
 * left without expiry (written by hand) gets the window's. rate-limiter-flexible's
 * RateLimiterRedis (v11) keeps its counters the same way, under the same keys: replicas of the
 * last release and this one count together during a rolling update. ARGV[2]: window seconds.
 */
const ADD = `
local function add(key, points)
  redis.call('SET', key, 0, 'EX', ARGV[2], 'NX')
  local total = redis.call('INCRBY', key, points)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 then
    redis.call('EXPIRE', key, ARGV[2])
    ttl = 1000 * ARGV[2]
  end
  return total, ttl
end
`;

/** KEYS: the counter. ARGV: points (negative gives back), window seconds. Returns {points, ms left}. */
const ADD_IN_WINDOW = new Script(`${ADD}
local points, ttl = add(KEYS[1], ARGV[1])
return {points, ttl}
`);

/**
 * A request and its tokens at once. KEYS: the requests counter, the tokens counter. ARGV:
 * tokens, window seconds, requests limit. Returns {requests, ms left} when the request is refused
 * (its tokens not counted), else {requests, ms left, tokens, ms left}.
 * Two keys in one script need one keyspace: the stacks deploy Redis without cluster mode
 * (ElastiCache replication group, Memorystore Basic/Standard), as the client (not Redis.Cluster)
 * requires.
 */
const ADD_REQUEST_AND_TOKENS = new Script(`${ADD}
local requests, requestsTtl = add(KEYS[1], 1)
if requests > tonumber(ARGV[3]) or tonumber(ARGV[1]) == 0 then return {requests, requestsTtl} end
local tokens, tokensTtl = add(KEYS[2], ARGV[1])
return {requests, requestsTtl, tokens, tokensTtl}
`);

/** ADD_IN_WINDOW's reply: the window's points, and the ms it has left. */
type WindowReply = [number, number];
const asWindowReply = (reply: unknown) => reply as WindowReply;
const asNumbers = (reply: unknown) => reply as number[];
const noReply = () => null;

/**
 * Counters shared by every replica through Redis. While the client is not ready (down,
 * reconnecting: it fails fast, having no offline queue), or a call takes longer than
 * `timeoutMs`, the call goes to the replica's in-memory window instead.
 */
class RedisWindow implements Window {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limit: number,
    private readonly timeoutMs: number,
    private readonly insurance: MemoryWindow,
  ) {}

  /**
   * The window's points after adding `points`, and the ms it has left; null when Redis failed
   * or did not answer within the timeout.
   */
  private add(key: string, points: number): Promise<WindowReply | null> {
    if (this.redis.status !== "ready") return Promise.resolve(null);
    return ADD_IN_WINDOW.run(
      this.redis,
      [this.prefix + key],
      [points, WINDOW_SECONDS],
      this.timeoutMs,
      "rate limit",
    ).then(asWindowReply, noReply);
  }

  /**
   * One request on this window and `tokens` on `other` (its tokens window), in one script; the
   * tokens are not counted when the request is refused. Falls back to both windows' insurance.
   */
  async consumeWith(
    other: RedisWindow,
    key: string,
    tokens: number,
  ): Promise<[Consumed, Consumed | undefined]> {
    const reply =
      this.redis.status === "ready"
        ? await ADD_REQUEST_AND_TOKENS.run(
            this.redis,
            [this.prefix + key, other.prefix + key],
            [tokens, WINDOW_SECONDS, this.limit],
            this.timeoutMs,
            "rate limit",
          ).then(asNumbers, noReply)
        : null;
    if (!reply) {
      const req = await this.insurance.consume(key, 1);
      return [
        req,
        req.rejected || tokens === 0 ? undefined : await other.insurance.consume(key, tokens),
      ];
    }
    const req = this.consumed(reply[0]!, reply[1]!);
    return [req, reply.length > 2 ? other.consumed(reply[2]!, reply[3]!) : undefined];
  }

  private consumed(points: number, msLeft: number): Consumed {
    return {
      rejected: points > this.limit,
      consumedPoints: points,
      remainingPoints: Math.max(0, this.limit - points),
      msBeforeNext: Math.max(0, msLeft),
    };
  }

  async consume(key: string, points: number): Promise<Consumed> {
    const reply = await this.add(key, points);
    if (!reply) return this.insurance.consume(key, points);
    return this.consumed(reply[0], reply[1]);
  }

  async adjust(key: string, points: number, logger?: Pick<Logger, "warn">): Promise<void> {
    if (points !== 0 && !(await this.add(key, points)))
      await this.insurance.adjust(key, points, logger);
  }

  async get(key: string): Promise<number> {
    if (this.redis.status === "ready") {
      try {
        const call = this.redis.get(this.prefix + key);
        return Number((await withTimeout(call, this.timeoutMs, "rate limit")) ?? 0);
      } catch {
        // fall through to the replica's own count
      }
    }
    return this.insurance.get(key);
  }
}

/**
 * `p`'s value if it settles within this tick (before the Redis client sends what this tick
 * queued), else undefined. A body that arrived in one packet is parsed by then.
 */
function thisTick<T>(p: Promise<T>): Promise<T | undefined> {
  return new Promise((resolve) => {
    p.then(resolve, noValue);
    setImmediate(resolve, undefined);
  });
}
const noValue = () => undefined;

/** The Anthropic API's rate-limit header names, made once rather than per response. */
const HEADER_NAMES = {
  requests: headerNames("requests"),
  tokens: headerNames("tokens"),
};

function headerNames(kind: string) {
  const prefix = `anthropic-ratelimit-${kind}-`;
  return { limit: `${prefix}limit`, remaining: `${prefix}remaining`, reset: `${prefix}reset` };
}

function setHeaders(
  headers: Record<string, string>,
  kind: "requests" | "tokens",
  limit: number,
  res: Consumed,
  now: number,
) {
  const names = HEADER_NAMES[kind];
  headers[names.limit] = String(limit);
  headers[names.remaining] = String(Math.max(0, res.remainingPoints));
  headers[names.reset] = new Date(now + Math.max(0, res.msBeforeNext))
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
