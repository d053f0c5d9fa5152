/**
 * Counters that start from the ledger. An engine answers "seed" to a reserve (or null to a peek)
 * for a window whose counter is missing: its first use, an expiry, an eviction, a flushed or new
 * Redis. LedgerSeededEngine wraps an engine with the same interface and answers that itself: it
 * reads the window's spend from the Postgres ledger, starts the counter from it and asks again,
 * so losing a counter never resets a budget. Concurrent callers in this process share one ledger
 * query per window.
 *
 * `SeededEngine` is the engine as the budget service uses it: it never answers "seed", and its
 * answers say when they came from a stand-in counting in process (failover.ts).
 */
import type { BudgetEngine, EngineReserveResult, EngineSettleResult, LineState } from "./engine";
import type { Line } from "./lines";

/** A hold taken. `holder`: the engine that holds it when not the one asked (settle it there). */
export type Held = Extract<EngineReserveResult, { kind: "ok" }> & { holder?: SeededEngine };
/** A refusal; `degraded` when a stand-in counting in process refused. */
export type Refused = Extract<EngineReserveResult, { kind: "refused" }> & { degraded?: boolean };
/** A settlement; `degraded` when a stand-in counting in process settled it. */
export type Settled = EngineSettleResult & { degraded?: boolean };

export interface SeededEngine extends BudgetEngine<Line> {
  reserve(
    id: string,
    lines: readonly Line[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount?: number,
  ): Promise<Held | Refused>;
  settle(
    id: string,
    lines: readonly Line[],
    actual: number,
    options?: { quiet?: boolean },
  ): Promise<Settled>;
  /** The counters, seeded where missing; `degraded` when a stand-in answered. */
  read(lines: readonly Line[]): Promise<{ states: Array<LineState | null>; degraded: boolean }>;
}

export interface LedgerSeedOptions {
  /** µ$ the ledger holds for the line's window. */
  ledger(line: Line): Promise<number>;
  /**
   * Without it a ledger failure fails the call: a shared counter waits for the truth, and the
   * caller falls back. With it the failure is reported and the window starts from `floor`.
   */
  onLedgerError?(err: unknown, line: Line): void;
  /** The least a window starts from: for a stand-in, what Redis last showed of it. @default 0 */
  floor?(key: string): number;
}

export class LedgerSeededEngine implements SeededEngine {
  private readonly seeding = new Map<string, Promise<void>>();

  constructor(
    private readonly inner: BudgetEngine,
    private readonly o: LedgerSeedOptions,
  ) {}

  /** Reserve; while the engine asks for counters to be seeded, seed them and ask again. */
  async reserve(
    id: string,
    lines: readonly Line[],
    amount: number,
    minCost: number,
    now: number,
    deadline: number,
    minAmount?: number,
  ): Promise<Held | Refused> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const result = await this.inner.reserve(id, lines, amount, minCost, now, deadline, minAmount);
      if (result.kind !== "seed") return result;
      await Promise.all(result.missing.map((i) => this.seedLine(lines[i]!)));
    }
    throw new Error("budget counters vanished while being seeded (three times in a row)");
  }

  settle(
    id: string,
    lines: readonly Line[],
    actual: number,
    options?: { quiet?: boolean },
  ): Promise<Settled> {
    return this.inner.settle(id, lines, actual, options);
  }

  seed(line: Line, spent: number): Promise<boolean> {
    return this.inner.seed(line, spent);
  }

  async peek(lines: readonly Line[]): Promise<Array<LineState | null>> {
    return (await this.read(lines)).states;
  }

  async read(
    lines: readonly Line[],
  ): Promise<{ states: Array<LineState | null>; degraded: false }> {
    let states = await this.inner.peek(lines);
    const missing = states.flatMap((s, i) => (s ? [] : [i]));
    if (missing.length > 0) {
      await Promise.all(missing.map((i) => this.seedLine(lines[i]!)));
      states = await this.inner.peek(lines);
    }
    return { states, degraded: false };
  }

  /** Start a window's counter from the ledger; concurrent callers share one query. */
  private seedLine(line: Line): Promise<void> {
    const running = this.seeding.get(line.key);
    if (running) return running;
    const run = (async () => {
      let spent: number;
      try {
        spent = await this.o.ledger(line);
      } catch (err) {
        if (!this.o.onLedgerError) throw err;
        this.o.onLedgerError(err, line);
        spent = 0;
      }
      if (this.o.floor) spent = Math.max(spent, this.o.floor(line.key));
      await this.inner.seed(line, spent);
    })().finally(() => this.seeding.delete(line.key));
    this.seeding.set(line.key, run);
    return run;
  }
}
