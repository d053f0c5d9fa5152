/**
 * Budgets while Redis comes and goes. FailoverBudgetEngine wraps the shared engine (Redis, seeded
 * from the ledger) with the same interface, the way ResilientProvider wraps a model provider:
 *
 *  - While Redis answers, every call goes there; the last spend + holds seen per window are kept
 *    (bounded), the floor a stand-in starts from.
 *  - A call that fails or is slower than the Redis engine's timeout, or Redis not connected at
 *    all, and this replica counts in process: a stand-in (a fresh one per outage) seeded from the
 *    larger of the ledger's sums and what Redis last showed, allowed `share` of what remained of
 *    each budget. With a share of 1/replicas the limits still hold; larger trades strictness for
 *    availability. Failing closed was rejected: a Redis outage would become a full outage of a
 *    paid API. While degraded a replica alerts on its own view (alerts say `degraded`), so two
 *    replicas may each send the same alert.
 *  - Replay: settlements Redis has not seen are queued (replay.ts) and replayed when it answers
 *    again: spend settled by a stand-in (quietly: it was alerted already), settlements that failed,
 *    and releases of holds whose reserve failed but may have run in Redis all the same.
 *
 * A hold taken by a stand-in settles against that stand-in (`Held.holder`), also after Redis is
 * back, so its hold is released where it was taken.
 */
import type { Logger } from "pino";
import type { Crossing, LineState } from "./engine";
import type { Line } from "./lines";
import { SettlementReplay, type PendingSettle } from "./replay";
import type { Held, Refused, SeededEngine, Settled } from "./seeding";

/** Windows whose last Redis reading is kept: enough for every window in use, bounded. */
const MAX_SEEN = 10_000;

export interface FailoverStats {
  /** Holds (and refusals) made by a stand-in. */
  degradedReservations: number;
  replayed: number;
  /** Settlements dropped from a full replay queue (the ledger still has them). */
  replayDropped: number;
}

export interface FailoverOptions {
  /** The shared engine: Redis, seeded from the ledger, its calls bounded by a timeout. */
  primary: SeededEngine;
  /** Whether the primary can be asked at all (its connection is up). */
  usable(): boolean;
  /** A stand-in for one outage, whose windows start no lower than `floor(key)` µ$. */
  standIn(floor: (key: string) => number): SeededEngine;
  /** The stand-in's share of each remaining budget, for the log. */
  share: number;
  logger: Logger;
  stats: FailoverStats;
  /** A replayed settlement crossed alert thresholds (Redis decided it was the first to). */
  crossed(lines: readonly Line[], crossings: Crossing[]): void;
}

export class FailoverBudgetEngine implements SeededEngine {
  private standIn: StandIn | null = null;
  private readonly lastSeen = new Map<string, number>();
  private readonly replay: SettlementReplay;
  private lastWarn = 0;

  constructor(private readonly o: FailoverOptions) {
    this.replay = new SettlementReplay(o.primary, {
      usable: o.usable,
      logger: o.logger,
      stats: o.stats,
      crossed: o.crossed,
      failed: (err) => this.failed(err),
    });
  }

  /** The primary cannot be asked: calls go to a stand-in. */
  get degraded(): boolean {
    return !this.o.usable();
  }

  /** Settlements waiting for the primary to come back. */
  get pendingSettles(): number {
    return this.replay.length;
  }

  async reserve(
    id: string,
    lines: readonly Line[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount?: number,
  ): Promise<Held | Refused> {
    if (this.o.usable()) {
      try {
        const result = await this.o.primary.reserve(
          id,
          lines,
          amount,
          minCost,
          now,
          deadline,
          minAmount,
        );
        if (result.kind === "ok")
          lines.forEach((l, i) => this.see(l.key, total(result.states[i]!)));
        else this.see(lines[result.index]!.key, total(result.state));
        this.recovered();
        return result;
      } catch (err) {
        // The reserve may have run in Redis all the same (its answer lost with the connection, or
        // later than the timeout): release it there once Redis answers, rather than let the hold
        // shrink the budget until its deadline. Settling a hold that never ran adds nothing.
        this.failed(err);
        this.queue({ id, lines, actual: 0, quiet: true });
      }
    }
    this.o.stats.degradedReservations++;
    return this.current().reserve(id, lines, amount, minCost, now, deadline, minAmount);
  }

  /** Settle a hold taken in the primary; queued for replay when it cannot be reached. */
  async settle(
    id: string,
    lines: readonly Line[],
    actual: number,
    options: { quiet?: boolean } = {},
  ): Promise<Settled> {
    try {
      if (!this.o.usable()) throw new Error("redis is not connected");
      const r = await this.o.primary.settle(id, lines, actual, options);
      lines.forEach((l, i) => {
        const spent = r.spent?.[i];
        // Spend only grows within a window; holds in flight may make the last reading higher.
        if (spent != null) this.see(l.key, Math.max(spent, this.lastSeen.get(l.key) ?? 0));
      });
      this.recovered();
      return r;
    } catch (err) {
      this.failed(err);
      this.queue({ id, lines, actual, quiet: options.quiet ?? false });
      return { already: false, crossings: [] };
    }
  }

  seed(line: Line, spent: number): Promise<boolean> {
    return this.o.usable() ? this.o.primary.seed(line, spent) : this.current().seed(line, spent);
  }

  async peek(lines: readonly Line[]): Promise<Array<LineState | null>> {
    return (await this.read(lines)).states;
  }

  async read(
    lines: readonly Line[],
  ): Promise<{ states: Array<LineState | null>; degraded: boolean }> {
    if (this.o.usable()) {
      try {
        const read = await this.o.primary.read(lines);
        lines.forEach((l, i) => {
          const state = read.states[i];
          if (state) this.see(l.key, total(state));
        });
        this.recovered();
        return read;
      } catch (err) {
        this.failed(err);
      }
    }
    return this.current().read(lines);
  }

  /** Replay what can be replayed, then stop the replay timer. */
  close(): Promise<void> {
    return this.replay.close();
  }

  private current(): StandIn {
    if (!this.standIn) {
      const floor = (key: string) => this.lastSeen.get(key) ?? 0;
      this.standIn = new StandIn(this.o.standIn(floor), (p) => this.queue(p));
      this.o.logger.warn(
        { share: this.o.share },
        "budgets: Redis unreachable; enforcing in this process with a share of each remaining budget",
      );
    }
    return this.standIn;
  }

  private recovered() {
    if (this.standIn) {
      // Holds taken meanwhile still settle against the stand-in they came from.
      this.standIn = null;
      this.o.logger.info("budgets: Redis reachable again; shared counters in use");
    }
    if (this.replay.length) void this.replay.flush();
  }

  private failed(err: unknown) {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    this.o.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "budgets: Redis call failed; counting in this process",
    );
  }

  private queue(p: PendingSettle) {
    this.replay.queue(p);
  }

  private see(key: string, micros: number) {
    this.lastSeen.delete(key);
    this.lastSeen.set(key, micros);
    if (this.lastSeen.size > MAX_SEEN) this.lastSeen.delete(this.lastSeen.keys().next().value!);
  }
}

const total = (s: LineState) => s.spent + s.reserved;

/**
 * Counts in process for one outage. Its answers say so (`degraded`), it holds what it reserved,
 * and what it settles is queued for Redis, quietly: its thresholds were alerted here.
 */
class StandIn implements SeededEngine {
  constructor(
    private readonly engine: SeededEngine,
    private readonly replay: (p: PendingSettle) => void,
  ) {}

  async reserve(
    id: string,
    lines: readonly Line[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount?: number,
  ): Promise<Held | Refused> {
    const r = await this.engine.reserve(id, lines, amount, minCost, now, deadline, minAmount);
    return r.kind === "ok" ? { ...r, holder: this } : { ...r, degraded: true };
  }

  async settle(
    id: string,
    lines: readonly Line[],
    actual: number,
    options?: { quiet?: boolean },
  ): Promise<Settled> {
    const r = await this.engine.settle(id, lines, actual, options);
    // Redis never saw this spend: replay it there, without alerting again.
    this.replay({ id: `local.${id}`, lines, actual, quiet: true });
    return { ...r, degraded: true };
  }

  seed(line: Line, spent: number): Promise<boolean> {
    return this.engine.seed(line, spent);
  }

  peek(lines: readonly Line[]): Promise<Array<LineState | null>> {
    return this.engine.peek(lines);
  }

  async read(lines: readonly Line[]): Promise<{ states: Array<LineState | null>; degraded: true }> {
    return { states: (await this.engine.read(lines)).states, degraded: true };
  }
}
