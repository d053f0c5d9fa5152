/**
 * The counting core of budgets: reserve a worst-case amount against several budget windows at
 * once (all or nothing), settle it to the real cost, release reservations nobody settled.
 *
 * Two engines share these semantics: Redis (one Lua script per operation, shared by all
 * replicas: see redis-engine.ts) and MemoryBudgetEngine below (the embedded default, and each
 * replica's stand-in while Redis is unreachable). Decorators with the same interface add what an
 * engine alone lacks: counters seeded from the ledger (seeding.ts), and the fallback from Redis
 * to a stand-in and back (failover.ts).
 *
 * Amounts are integer micro-dollars (µ$): exact in Lua's doubles up to $9 billion, and
 * $/MTok prices are µ$/token. Costs round up and limits round down, so a counter is never
 * below the true spend it stands for.
 */

export const ALERT_THRESHOLDS = [50, 80, 100] as const;
export type AlertThreshold = (typeof ALERT_THRESHOLDS)[number];
export const isAlertThreshold = (n: number): n is AlertThreshold =>
  ALERT_THRESHOLDS.some((t) => t === n);

export const microsCeil = (usd: number) => Math.ceil(Math.round(usd * 1e12) / 1e6);
export const microsFloor = (usd: number) => Math.floor(Math.round(usd * 1e12) / 1e6);
export const usd = (micros: number) => micros / 1e6;

/** One budget window a reservation counts against. */
export interface EngineLine {
  /** Identifies the window: a Redis key, or a map key in memory. */
  key: string;
  /** µ$. */
  limit: number;
  /** When the window's counter may be dropped (epoch ms); session windows slide it forward. */
  expireAt: number;
}

export interface LineState {
  /** Settled spend, µ$. */
  spent: number;
  /** Held by reservations in flight, µ$. */
  reserved: number;
}

export type EngineReserveResult =
  | {
      kind: "ok";
      states: LineState[];
      reclaimed: number;
      /** µ$ held: `amount`, or less (at least `minAmount`) when that is all the lines had left. */
      granted: number;
      /** The line that limited the grant, or -1 when `amount` was held in full. */
      binding: number;
    }
  /** These lines' counters are missing (new window, Redis flushed): seed them and try again. */
  | { kind: "seed"; missing: number[]; reclaimed: number }
  | {
      kind: "refused";
      index: number;
      state: LineState;
      /** This refusal found the budget exhausted, and was the first to: fire its 100 % alert. */
      exhausted: boolean;
      reclaimed: number;
    };

export interface Crossing {
  index: number;
  threshold: AlertThreshold;
  /** Settled spend right after the crossing, µ$. */
  spent: number;
}

export interface EngineSettleResult {
  /** The reservation had been settled before: nothing changed. */
  already: boolean;
  /** Alert thresholds this settlement crossed first, across every replica. */
  crossings: Crossing[];
  /** Settled spend per line afterwards (µ$), null where the counter is missing; absent when `already`. */
  spent?: Array<number | null>;
}

export interface BudgetEngine<L extends EngineLine = EngineLine> {
  /**
   * Reserve `amount` on every line, or on none. When a line has less than `amount` left, hold
   * what the tightest line has left instead, provided that is at least `minAmount` (the caller
   * then caps the request to it); refused when any line's spent + reserved + minAmount would pass
   * its limit. Checking and holding are one atomic step. First drops reservations whose deadline
   * passed. `minCost` is what the cheapest form of the request would cost (input plus one output
   * token): a line that cannot cover even that is exhausted, which fires its 100 % alert.
   */
  reserve(
    id: string,
    lines: readonly L[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount?: number,
  ): Promise<EngineReserveResult>;
  /**
   * Release the reservation and add `actual` to every line's spend. The Redis engine is
   * idempotent per id (retried settlements); in memory the service's Reservation object guards
   * against a second settlement. A reservation already reclaimed as expired still adds its
   * actual spend. With `quiet`,
   * thresholds crossed are marked without being reported (the caller already alerted).
   */
  settle(
    id: string,
    lines: readonly L[],
    actual: number,
    options?: { quiet?: boolean },
  ): Promise<EngineSettleResult>;
  /**
   * Start a window's counter at `spent` (from the ledger) unless another caller already did;
   * thresholds already passed are marked as alerted, since they were alerted when crossed.
   */
  seed(line: L, spent: number): Promise<boolean>;
  /** Current counters; null for a line whose counter is missing (needs seeding). */
  peek(lines: readonly L[]): Promise<Array<LineState | null>>;
}

interface Window {
  spent: number;
  reserved: number;
  /** Spend at seeding: the share of a degraded replica applies to what remained then. */
  base: number;
  alerted: Set<number>;
  expireAt: number;
}

interface Held {
  keys: string[];
  limits: number[];
  amount: number;
  deadline: number;
  ttl: number;
}

export interface MemoryEngineOptions {
  /**
   * Share of each window's remainder (at seeding) this engine may spend: 1 when it is the only
   * counter (embedded default); less when it stands in for Redis on one of several replicas.
   * @default 1
   */
  share?: number;
  /** Clock for dropping expired windows. @default Date.now */
  now?: () => number;
}

/** Budgets counted in this process. Every method runs synchronously, so each is atomic. */
export class MemoryBudgetEngine implements BudgetEngine {
  readonly kind = "memory" as const;
  private readonly windows = new Map<string, Window>();
  private readonly held = new Map<string, Held>();
  /**
   * Holds grouped by time to live (requests use the service's TTL, batches a day and more): within
   * a group insertion order is deadline order, so expiry scans stop at the first live hold.
   */
  private readonly byTtl = new Map<number, Map<string, Held>>();
  private readonly share: number;
  private readonly now: () => number;
  private lastPrune = 0;

  constructor(options: MemoryEngineOptions = {}) {
    this.share = options.share ?? 1;
    this.now = options.now ?? Date.now;
  }

  /** Windows and reservations currently tracked (for tests and memory checks). */
  get size(): { windows: number; held: number } {
    return { windows: this.windows.size, held: this.held.size };
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
    const reclaimed = this.reclaim(now);
    this.prune(now);
    const missing = lines.flatMap((l, i) => (this.windows.has(l.key) ? [] : [i]));
    if (missing.length > 0) return { kind: "seed", missing, reclaimed };
    const windows = lines.map((l) => this.windows.get(l.key)!);
    let granted = amount;
    let binding = -1;
    for (const [i, w] of windows.entries()) {
      const limit = this.effectiveLimit(w, lines[i]!.limit);
      const free = limit - w.spent - w.reserved;
      if (free < granted && free >= minAmount) {
        granted = free;
        binding = i;
      }
      if (free < minAmount) {
        let exhausted = false;
        if (w.spent + minCost > limit && !w.alerted.has(100)) {
          w.alerted.add(100);
          exhausted = true;
        }
        return {
          kind: "refused",
          index: i,
          state: { spent: w.spent, reserved: w.reserved },
          exhausted,
          reclaimed,
        };
      }
    }
    const states = windows.map((w, i) => {
      w.reserved += granted;
      w.expireAt = Math.max(w.expireAt, lines[i]!.expireAt);
      return { spent: w.spent, reserved: w.reserved };
    });
    const held: Held = {
      keys: lines.map((l) => l.key),
      limits: lines.map((l) => l.limit),
      amount: granted,
      deadline,
      ttl: deadline - now,
    };
    this.held.set(id, held);
    let group = this.byTtl.get(held.ttl);
    if (!group) this.byTtl.set(held.ttl, (group = new Map()));
    group.set(id, held);
    return { kind: "ok", states, reclaimed, granted, binding };
  }

  async settle(
    id: string,
    lines: readonly EngineLine[],
    actual: number,
    options: { quiet?: boolean } = {},
  ): Promise<EngineSettleResult> {
    const held = this.held.get(id);
    if (held) this.release(id, held);
    const crossings: Crossing[] = [];
    const spent = lines.map((line, index) => {
      const w = this.windows.get(line.key);
      // A window dropped meanwhile is re-seeded from the ledger, which will hold this spend.
      if (!w) return null;
      w.spent += actual;
      const limit = held?.limits[index] ?? line.limit;
      for (const threshold of ALERT_THRESHOLDS) {
        if (limit > 0 && w.spent * 100 >= threshold * limit && !w.alerted.has(threshold)) {
          w.alerted.add(threshold);
          if (!options.quiet) crossings.push({ index, threshold, spent: w.spent });
        }
      }
      return w.spent;
    });
    return { already: false, crossings, spent };
  }

  async seed(line: EngineLine, spent: number): Promise<boolean> {
    if (this.windows.has(line.key)) return false;
    const alerted = new Set<number>(
      ALERT_THRESHOLDS.filter((t) => line.limit > 0 && spent * 100 >= t * line.limit),
    );
    this.windows.set(line.key, {
      spent,
      reserved: 0,
      base: spent,
      alerted,
      expireAt: line.expireAt,
    });
    return true;
  }

  async peek(lines: readonly EngineLine[]): Promise<Array<LineState | null>> {
    this.reclaim(this.now());
    return lines.map((l) => {
      const w = this.windows.get(l.key);
      return w ? { spent: w.spent, reserved: w.reserved } : null;
    });
  }

  private effectiveLimit(w: Window, limit: number): number {
    if (this.share >= 1) return limit;
    return Math.floor(w.base + Math.max(0, limit - w.base) * this.share);
  }

  private release(id: string, held: Held) {
    this.held.delete(id);
    this.byTtl.get(held.ttl)?.delete(id);
    for (const key of held.keys) {
      const w = this.windows.get(key);
      if (w) w.reserved = Math.max(0, w.reserved - held.amount);
    }
  }

  private reclaim(now: number): number {
    let n = 0;
    for (const group of this.byTtl.values()) {
      for (const [id, held] of group) {
        if (held.deadline > now) break;
        this.release(id, held);
        n++;
      }
    }
    return n;
  }

  /** Drop windows past their expiry once a minute, keeping memory flat over days. */
  private prune(now: number) {
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    for (const [key, w] of this.windows)
      if (w.expireAt <= now && w.reserved === 0) this.windows.delete(key);
  }
}
