/**
 * Settlements Redis has not seen yet, replayed into it once it answers again: spend settled
 * while it was unreachable (degraded mode), and releases of holds whose reserve timed out. A
 * bounded queue (the oldest is dropped when full; the ledger still has it); replayed
 * settlements are idempotent per id, so one replayed twice counts once.
 */
import type { Logger } from "pino";
import type { BudgetEngine, Crossing } from "./engine";
import type { Line } from "./lines";

export interface PendingSettle {
  id: string;
  lines: readonly Line[];
  actual: number;
  quiet: boolean;
}

const MAX_PENDING_SETTLES = 10_000;

export interface ReplayOptions {
  usable(): boolean;
  logger: Logger;
  stats: { replayed: number; replayDropped: number };
  /** A replayed settlement crossed alert thresholds. */
  crossed(lines: readonly Line[], crossings: Crossing[]): void;
  failed(err: unknown): void;
}

export class SettlementReplay {
  private readonly pending: PendingSettle[] = [];
  private flushing = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Redis: its calls time out on their own (RedisEngineOptions.timeoutMs). */
    private readonly engine: BudgetEngine<Line>,
    private readonly o: ReplayOptions,
  ) {}

  get length(): number {
    return this.pending.length;
  }

  queue(p: PendingSettle) {
    if (this.pending.length >= MAX_PENDING_SETTLES) {
      this.pending.shift();
      this.o.stats.replayDropped++;
      this.o.logger.error(
        "budgets: replay queue full; oldest settlement dropped (the ledger still has it)",
      );
    }
    this.pending.push(p);
    this.schedule();
  }

  async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return;
    if (!this.o.usable()) return this.schedule();
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const p = this.pending[0]!;
        const r = await this.engine.settle(p.id, p.lines, p.actual, { quiet: p.quiet });
        this.pending.shift();
        this.o.stats.replayed++;
        this.o.crossed(p.lines, r.crossings);
      }
    } catch (err) {
      this.o.failed(err);
      this.schedule();
    } finally {
      this.flushing = false;
    }
  }

  /** Replay what can be replayed now, then stop the timer. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    if (this.pending.length > 0) {
      this.o.logger.error(
        { pending: this.pending.length },
        "budget settlements not replayed into Redis at shutdown; the ledger still has them",
      );
    }
  }

  private schedule() {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, 1000);
    this.timer.unref();
  }
}
