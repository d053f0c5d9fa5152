import pino from "pino";
import { BatchedLedger } from "../../app/src/budget/ledger";
import type { UsageEntry } from "../../app/src/store/types";

const entry = (i: number): UsageEntry => ({
  requestId: `req_${i}`,
  userId: "u",
  model: "m",
  inputTokens: i,
  outputTokens: 0,
  cacheCreationInputTokens: 0,
  cacheReadInputTokens: 0,
  costUsd: 0,
  status: "ok",
});

describe("BatchedLedger", () => {
  const logger = pino({ level: "silent" });

  it("writes entries in batches", async () => {
    const batches: UsageEntry[][] = [];
    const ledger = new BatchedLedger({ recordUsage: async (b) => void batches.push(b) }, logger, {
      batchSize: 3,
      intervalMs: 5,
    });
    for (let i = 0; i < 7; i++) ledger.record(entry(i));
    await ledger.close();
    expect(batches.flat().map((e) => e.requestId)).toEqual(
      [0, 1, 2, 3, 4, 5, 6].map((i) => `req_${i}`),
    );
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(3);
  });

  it("counts a batch being written as pending until the database has it (a hung write included)", async () => {
    let release: () => void = () => {};
    const hung = new Promise<void>((resolve) => (release = resolve));
    const ledger = new BatchedLedger({ recordUsage: () => hung }, logger, {
      batchSize: 3,
      intervalMs: 5,
    });
    for (let i = 0; i < 5; i++) ledger.record(entry(i));
    // The first batch (3) is in flight on a write that hangs, 2 wait in the queue: 5 unwritten.
    expect(ledger.pending).toBe(5);
    release();
    await ledger.close();
    expect(ledger.pending).toBe(0);
  });

  it("keeps entries while the database is down and writes them, in order, when it returns", async () => {
    let down = true;
    const written: UsageEntry[] = [];
    const ledger = new BatchedLedger(
      {
        recordUsage: async (b) => {
          if (down) throw new Error("connection refused");
          written.push(...b);
        },
      },
      logger,
      { batchSize: 2, intervalMs: 1, maxBackoffMs: 5 },
    );
    for (let i = 0; i < 5; i++) ledger.record(entry(i));
    await new Promise((r) => setTimeout(r, 30));
    expect(written).toHaveLength(0);
    expect(ledger.pending).toBe(5);
    await expect(ledger.flush()).rejects.toThrow(/could not be written/);
    down = false;
    await ledger.flush();
    expect(written.map((e) => e.inputTokens)).toEqual([0, 1, 2, 3, 4]);
    expect(ledger.pending).toBe(0);
  });
});

describe("BatchedLedger with invalid entries", () => {
  it("drops only the entry the store rejects as invalid and writes the rest", async () => {
    const written: string[] = [];
    const store = {
      recordUsage: async (b: UsageEntry[]) => {
        if (b.some((e) => e.inputTokens < 0))
          throw new RangeError("inputTokens must be a non-negative integer");
        written.push(...b.map((e) => e.requestId));
      },
    };
    const ledger = new BatchedLedger(store, pino({ level: "silent" }), {
      batchSize: 10,
      intervalMs: 1,
    });
    ledger.record(entry(1));
    ledger.record({ ...entry(2), inputTokens: -5 });
    ledger.record(entry(3));
    await ledger.close();
    expect(written).toEqual(["req_1", "req_3"]);
    expect(ledger.pending).toBe(0);
  });

  it("stamps entries with the time they were recorded", async () => {
    const batches: UsageEntry[][] = [];
    const ledger = new BatchedLedger(
      { recordUsage: async (b) => void batches.push(b) },
      pino({ level: "silent" }),
    );
    const before = Date.now();
    ledger.record(entry(1));
    await ledger.close();
    const at = Date.parse(batches[0]![0]!.createdAt!);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });
});
