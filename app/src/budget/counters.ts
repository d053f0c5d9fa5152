/**
 * Where the budget service counts holds, assembled from its options: in process (the embedded
 * default, without Redis), or in Redis behind the failover engine (failover.ts), whose stand-ins
 * count in process while Redis is unreachable. Every engine starts a missing counter from the
 * Postgres ledger (seeding.ts): Redis waits for the ledger's answer (without it the caller counts
 * in process), an engine in process starts from the last known spend.
 */
import type { Logger } from "pino";
import { MemoryBudgetEngine, microsCeil, type Crossing } from "./engine";
import { FailoverBudgetEngine, type FailoverStats } from "./failover";
import type { Line } from "./lines";
import { RedisBudgetEngine } from "./redis-engine";
import { LedgerSeededEngine, type SeededEngine } from "./seeding";
import { withTimeout } from "./timeout";
import type { BudgetServiceOptions, BudgetStore } from "./types";

export interface BudgetCounters {
  /** Where holds are counted. */
  engine: SeededEngine;
  /** The same engine when Redis is configured. */
  failover?: FailoverBudgetEngine;
}

export function budgetCounters(
  options: Pick<
    BudgetServiceOptions,
    "redis" | "store" | "logger" | "degradedShare" | "redisTimeoutMs" | "keyTag"
  > & { now: () => number },
  hooks: {
    stats: FailoverStats;
    /** A settlement replayed into Redis crossed alert thresholds. */
    crossed(lines: readonly Line[], crossings: Crossing[]): void;
  },
): BudgetCounters {
  const { redis, logger, now } = options;
  const share = options.degradedShare ?? 0.25;
  if (!(share > 0 && share <= 1)) throw new Error(`degradedShare must be in (0, 1], got ${share}`);
  const timeoutMs = options.redisTimeoutMs ?? 1000;
  const seeded = ledgerSeeding(options.store, logger, timeoutMs);
  if (!redis) return { engine: new LedgerSeededEngine(new MemoryBudgetEngine({ now }), seeded) };
  const shared = new RedisBudgetEngine(redis, { tag: options.keyTag ?? "budget", timeoutMs });
  const failover = new FailoverBudgetEngine({
    primary: new LedgerSeededEngine(shared, { ledger: seeded.ledger }),
    usable: () => redis.status === "ready",
    standIn: (floor) =>
      new LedgerSeededEngine(new MemoryBudgetEngine({ share, now }), { ...seeded, floor }),
    share,
    logger,
    stats: hooks.stats,
    crossed: hooks.crossed,
  });
  return { engine: failover, failover };
}

/** A window's spend from the ledger (µ$, within a deadline), and what to do without it. */
function ledgerSeeding(store: BudgetStore, logger: Logger, timeoutMs: number) {
  return {
    ledger: async (line: Line) =>
      microsCeil(
        await withTimeout(
          store.sumUsageCost(line.seedFilter),
          Math.max(timeoutMs, 2000),
          "ledger sum",
        ),
      ),
    onLedgerError: (err: unknown, line: Line) =>
      logger.error(
        { err: err instanceof Error ? err.message : String(err), budget: line.budget },
        "budgets: cannot read the ledger; starting this window from the last known spend",
      ),
  };
}
