/**
 * Budgets shared by every replica through Redis. Each operation is one Lua script, so checking
 * a budget and reserving against it cannot interleave with another replica's request: the
 * check-then-record race that lets comparable gateways overspend does not exist here.
 *
 * Keys (every key carries the hash tag `{<tag>}`, so all budget keys live in one cluster slot
 * and a script may touch any of them, including the reservation records it reclaims):
 *
 *   {tag}:u:<user>:<day>   hash  one budget window: spent, reserved (µ$), seeded, a50/a80/a100
 *   {tag}:d:<day>          hash  the deployment's day            (alert markers live with the
 *   {tag}:s:<session>      hash  a session, all time             window, so they reset with it)
 *   {tag}:res:<id>         hash  one reservation: st (held|expired|settled), amt, k:<key> = limit
 *   {tag}:deadlines        zset  reservation id -> deadline (ms): the reclaim queue
 *
 * Window keys expire a day after their window ends (sessions: a sliding week). A key that is
 * missing (expired, evicted, Redis flushed or replaced) is never silently restarted at zero:
 * the script answers "seed" and the service starts it from the Postgres ledger's sum.
 *
 * Reservations carry a deadline. One never settled (a replica crashed mid-request) is reclaimed
 * by the next reserve call after its deadline; a settlement arriving after that still adds its
 * real cost, and the record's state makes every settlement count once. Deadlines are compared
 * with the calling replica's clock: skew of seconds is harmless against a TTL of minutes.
 */
import type { Redis } from "ioredis";
import {
  ALERT_THRESHOLDS,
  isAlertThreshold,
  type BudgetEngine,
  type Crossing,
  type EngineLine,
  type EngineReserveResult,
  type EngineSettleResult,
  type LineState,
} from "./engine";
import { Script } from "../store/redis-script";
import { withTimeout } from "./timeout";

/** Shared by the scripts: release a held reservation's amount from each window it names. */
const RELEASE = `
local function fmt(x) return string.format('%.0f', x) end
local function release(rec)
  local fields = redis.call('HGETALL', rec)
  local st, amt
  local keys = {}
  for i = 1, #fields, 2 do
    local f = fields[i]
    if f == 'st' then st = fields[i + 1]
    elseif f == 'amt' then amt = tonumber(fields[i + 1])
    elseif string.sub(f, 1, 2) == 'k:' then keys[#keys + 1] = string.sub(f, 3) end
  end
  if st ~= 'held' or not amt then return end
  for _, k in ipairs(keys) do
    local r = redis.call('HGET', k, 'reserved')
    if r then
      local left = tonumber(r) - amt
      if left < 0 then left = 0 end
      redis.call('HSET', k, 'reserved', fmt(left))
    end
  end
end
`;

/**
 * KEYS: deadlines, record, window...
 * ARGV: now, deadline, amount, minCost, id, recordPrefix, reclaimLimit, minAmount, then limit,
 * expireAt per window.
 * Returns {'ok', reclaimed, granted, binding (0: none), spent1, reserved1, ...} | {'seed', reclaimed, {i...}} |
 *         {'refused', reclaimed, i, spent, reserved, exhausted}.
 */
const RESERVE = `${RELEASE}
local now = tonumber(ARGV[1])
local deadline = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local minCost = tonumber(ARGV[4])
local minAmount = tonumber(ARGV[8])
local n = #KEYS - 2

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[7]))
for _, rid in ipairs(expired) do
  local rec = ARGV[6] .. rid
  release(rec)
  if redis.call('EXISTS', rec) == 1 and redis.call('HGET', rec, 'st') == 'held' then
    redis.call('HSET', rec, 'st', 'expired')
    redis.call('EXPIRE', rec, 86400)
  end
  redis.call('ZREM', KEYS[1], rid)
end

-- A reservation holds once: the same command run again (resent by the client after a reconnect,
-- or delivered late when a partition heals) answers without holding a second time.
if redis.call('EXISTS', KEYS[2]) == 1 then
  local held = tonumber(redis.call('HGET', KEYS[2], 'amt')) or amount
  local out = {'ok', #expired, held, 0}
  for i = 1, n do
    local v = redis.call('HMGET', KEYS[i + 2], 'spent', 'reserved')
    out[#out + 1] = tonumber(v[1]) or 0
    out[#out + 1] = tonumber(v[2]) or 0
  end
  return out
end

local missing = {}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[i + 2], 'seeded') == 0 then missing[#missing + 1] = i end
end
if #missing > 0 then return {'seed', #expired, missing} end

-- Hold the amount asked for, or what the tightest window has left when that is less but still
-- at least minAmount (the caller caps the request to it).
local spentOf = {}
local granted = amount
local binding = 0
for i = 1, n do
  local k = KEYS[i + 2]
  local v = redis.call('HMGET', k, 'spent', 'reserved')
  local spent = tonumber(v[1]) or 0
  local reserved = tonumber(v[2]) or 0
  local limit = tonumber(ARGV[7 + 2 * i])
  local free = limit - spent - reserved
  if free < minAmount then
    local exhausted = 0
    if spent + minCost > limit and redis.call('HSETNX', k, 'a100', 1) == 1 then exhausted = 1 end
    return {'refused', #expired, i, spent, reserved, exhausted}
  end
  if free < granted then
    granted = free
    binding = i
  end
  spentOf[i] = spent
end

local out = {'ok', #expired, granted, binding}
local rec = KEYS[2]
redis.call('HSET', rec, 'st', 'held', 'amt', fmt(granted))
for i = 1, n do
  local k = KEYS[i + 2]
  local reserved = redis.call('HINCRBY', k, 'reserved', fmt(granted))
  redis.call('PEXPIREAT', k, ARGV[8 + 2 * i])
  redis.call('HSET', rec, 'k:' .. k, ARGV[7 + 2 * i])
  out[#out + 1] = spentOf[i]
  out[#out + 1] = reserved
end
redis.call('PEXPIREAT', rec, deadline + 86400000)
redis.call('ZADD', KEYS[1], deadline, ARGV[5])
return out
`;

/**
 * KEYS: deadlines, record, window...
 * ARGV: actual, id, tombstoneSeconds, quiet (1|0), then limit per window (used when the record is gone).
 * Returns {'already'} | {'ok', n, spent (or -1 when unseeded) per window, then i, threshold, spent per crossing}.
 */
const SETTLE = `${RELEASE}
local actual = tonumber(ARGV[1])
local rec = KEYS[2]
local st = redis.call('HGET', rec, 'st')
if st == 'settled' then return {'already'} end
if st == 'held' then
  release(rec)
  redis.call('ZREM', KEYS[1], ARGV[2])
end
local n = #KEYS - 2
local out = {'ok', n}
local crossed = {}
for i = 1, n do
  local k = KEYS[i + 2]
  local spent = -1
  -- A missing window is re-seeded from the ledger, which will hold this spend.
  if redis.call('HEXISTS', k, 'seeded') == 1 then
    spent = redis.call('HINCRBY', k, 'spent', fmt(actual))
    local limit = tonumber(redis.call('HGET', rec, 'k:' .. k) or ARGV[4 + i])
    if limit and limit > 0 then
      for _, t in ipairs({${ALERT_THRESHOLDS.join(", ")}}) do
        if spent * 100 >= t * limit and redis.call('HSETNX', k, 'a' .. t, 1) == 1 and ARGV[4] ~= '1' then
          crossed[#crossed + 1] = i
          crossed[#crossed + 1] = t
          crossed[#crossed + 1] = spent
        end
      end
    end
  end
  out[#out + 1] = spent
end
for _, v in ipairs(crossed) do out[#out + 1] = v end
redis.call('HSET', rec, 'st', 'settled')
redis.call('EXPIRE', rec, tonumber(ARGV[3]))
return out
`;

/**
 * KEYS: window. ARGV: spent, expireAt (ms), limit.
 * Starts the counter once (HSETNX on 'seeded'); thresholds already passed count as alerted.
 */
const SEED = `
if redis.call('HSETNX', KEYS[1], 'seeded', 1) == 0 then return 0 end
local spent = redis.call('HINCRBY', KEYS[1], 'spent', ARGV[1])
local limit = tonumber(ARGV[3])
if limit > 0 then
  for _, t in ipairs({${ALERT_THRESHOLDS.join(", ")}}) do
    if spent * 100 >= t * limit then redis.call('HSET', KEYS[1], 'a' .. t, 1) end
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`;

const scripts = {
  reserve: new Script(RESERVE),
  settle: new Script(SETTLE),
  seed: new Script(SEED),
};

export interface RedisEngineOptions {
  /** Hash tag of every key; tests use their own to stay apart. @default "budget" */
  tag?: string;
  /** Expired reservations reclaimed per reserve call, bounding the script's run time. @default 100 */
  reclaimBatch?: number;
  /** How long a settled reservation's tombstone keeps a retried settlement from counting twice. @default 3600 */
  tombstoneSeconds?: number;
  /**
   * A call slower than this rejects with a TimeoutError (the failover engine then counts in
   * process); the command may still run in Redis. @default no limit
   */
  timeoutMs?: number;
}

const int = (v: unknown) => Number(v ?? 0);

export class RedisBudgetEngine implements BudgetEngine {
  readonly kind = "redis" as const;
  readonly tag: string;
  private readonly reclaimBatch: number;
  private readonly tombstoneSeconds: number;
  private readonly timeoutMs: number | undefined;

  constructor(
    private readonly redis: Redis,
    options: RedisEngineOptions = {},
  ) {
    this.tag = options.tag ?? "budget";
    if (!/^[^{}]+$/.test(this.tag))
      throw new Error(`budget key tag "${this.tag}" must not contain braces`);
    this.reclaimBatch = options.reclaimBatch ?? 100;
    this.tombstoneSeconds = options.tombstoneSeconds ?? 3600;
    this.timeoutMs = options.timeoutMs;
  }

  /** The Redis key of a window, e.g. key("u", "alice", "2025-06-01"). */
  key(...parts: string[]): string {
    return `{${this.tag}}:${parts.map(encodeURIComponent).join(":")}`;
  }

  private get deadlines() {
    return `{${this.tag}}:deadlines`;
  }
  private get recordPrefix() {
    return `{${this.tag}}:res:`;
  }

  async reserve(
    id: string,
    lines: readonly EngineLine[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount = amount,
  ): Promise<EngineReserveResult> {
    const reply = (await scripts.reserve.run(
      this.redis,
      [this.deadlines, this.recordPrefix + id, ...lines.map((l) => l.key)],
      [
        now,
        deadline,
        amount,
        minCost,
        id,
        this.recordPrefix,
        this.reclaimBatch,
        Math.min(minAmount, amount),
        ...lines.flatMap((l) => [l.limit, l.expireAt]),
      ],
      this.timeoutMs,
      "budget reserve",
    )) as unknown[];
    const kind = reply[0];
    const reclaimed = int(reply[1]);
    if (kind === "seed")
      return { kind, reclaimed, missing: (reply[2] as unknown[]).map((i) => int(i) - 1) };
    if (kind === "refused") {
      return {
        kind,
        reclaimed,
        index: int(reply[2]) - 1,
        state: { spent: int(reply[3]), reserved: int(reply[4]) },
        exhausted: int(reply[5]) === 1,
      };
    }
    if (kind !== "ok") throw new Error(`budget reserve script answered ${String(kind)}`);
    const states: LineState[] = lines.map((_, i) => ({
      spent: int(reply[4 + 2 * i]),
      reserved: int(reply[5 + 2 * i]),
    }));
    return { kind, reclaimed, states, granted: int(reply[2]), binding: int(reply[3]) - 1 };
  }

  async settle(
    id: string,
    lines: readonly EngineLine[],
    actual: number,
    options: { quiet?: boolean } = {},
  ): Promise<EngineSettleResult> {
    const reply = (await scripts.settle.run(
      this.redis,
      [this.deadlines, this.recordPrefix + id, ...lines.map((l) => l.key)],
      [actual, id, this.tombstoneSeconds, options.quiet ? 1 : 0, ...lines.map((l) => l.limit)],
      this.timeoutMs,
      "budget settle",
    )) as unknown[];
    if (reply[0] === "already") return { already: true, crossings: [] };
    const n = int(reply[1]);
    const spent = reply.slice(2, 2 + n).map((v) => (int(v) < 0 ? null : int(v)));
    const crossings: Crossing[] = [];
    for (let i = 2 + n; i + 2 < reply.length; i += 3) {
      const threshold = int(reply[i + 1]);
      if (isAlertThreshold(threshold))
        crossings.push({ index: int(reply[i]) - 1, threshold, spent: int(reply[i + 2]) });
    }
    return { already: false, crossings, spent };
  }

  async seed(line: EngineLine, spent: number): Promise<boolean> {
    const seeded = scripts.seed.run(
      this.redis,
      [line.key],
      [spent, line.expireAt, line.limit],
      this.timeoutMs,
      "budget seed",
    );
    return int(await seeded) === 1;
  }

  async peek(lines: readonly EngineLine[]): Promise<Array<LineState | null>> {
    if (lines.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const l of lines) pipeline.hmget(l.key, "spent", "reserved", "seeded");
    const results = (await this.timed("budget peek", pipeline.exec())) ?? [];
    return results.map(([err, value]) => {
      if (err) throw err;
      const [spent, reserved, seeded] = value as Array<string | null>;
      return seeded ? { spent: int(spent), reserved: int(reserved) } : null;
    });
  }

  private timed<T>(what: string, call: Promise<T>): Promise<T> {
    return this.timeoutMs === undefined ? call : withTimeout(call, this.timeoutMs, what);
  }
}
