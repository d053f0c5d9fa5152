/**
 * Writes usage ledger entries in batches, off the request's hot path. Entries that fail to
 * write (database down) stay queued and are retried, so spend is recorded once the database
 * returns; `flush()` on shutdown drains the queue.
 */
import type { Logger } from "pino";
import type { Store, UsageEntry } from "../store/types";
import { errorMessage } from "../errors";

export interface UsageRecorder {
  record(entry: UsageEntry): void;
  /** Write everything queued; rejects if the database still refuses. */
  flush(): Promise<void>;
  /** Entries waiting to be written. */
  readonly pending: number;
  close(): Promise<void>;
}

export interface LedgerOptions {
  /** Flush when this many entries are queued. @default 200 */
  batchSize?: number;
  /** Flush at least this often. @default 100 */
  intervalMs?: number;
  /** Longest wait between retries while the database is down. @default 5000 */
  maxBackoffMs?: number;
}

export class BatchedLedger implements UsageRecorder {
  private queue: UsageEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  /** Entries of the batch being written: not yet in the database, not in the queue either. */
  private inFlight = 0;
  private failures = 0;
  private readonly batchSize: number;
  private readonly intervalMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly store: Pick<Store, "recordUsage">,
    private readonly logger: Logger,
    options: LedgerOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 200;
    this.intervalMs = options.intervalMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
  }

  /** Entries recorded but not yet written, the batch being written included. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  record(entry: UsageEntry): void {
    // Stamp now: an entry written late (after an outage) still counts toward the right day.
    this.queue.push(entry.createdAt ? entry : { ...entry, createdAt: new Date().toISOString() });
    if (this.queue.length >= this.batchSize && this.failures === 0) void this.writeBatch();
    else this.schedule(this.intervalMs);
  }

  async flush(): Promise<void> {
    if (this.writing) await this.writing;
    while (this.queue.length > 0) {
      const before = this.queue.length;
      await this.writeBatch();
      if (this.queue.length >= before)
        throw new Error(`usage ledger: ${this.queue.length} entries could not be written`);
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /**
   * The store rejects a batch holding an invalid entry (RangeError) as a whole. Retrying it would
   * block the queue forever, so write entries one by one and drop only the invalid ones, loudly.
   */
  private async isolateInvalid(batch: UsageEntry[]): Promise<void> {
    for (const entry of batch) {
      try {
        await this.store.recordUsage([entry]);
      } catch (err) {
        if (!(err instanceof RangeError)) throw err;
        this.logger.error(
          { err: err.message, requestId: entry.requestId },
          "usage ledger entry is invalid; dropped",
        );
      }
    }
  }

  private schedule(delay: number) {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.writeBatch();
    }, delay);
    // A pending flush must not keep a finished process alive; close() flushes explicitly.
    this.timer.unref();
  }

  private writeBatch(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue.splice(0, this.batchSize);
    this.inFlight = batch.length;
    this.writing = this.store
      .recordUsage(batch)
      .catch((err: unknown) =>
        err instanceof RangeError ? this.isolateInvalid(batch) : Promise.reject(err),
      )
      .then(() => {
        this.failures = 0;
      })
      .catch((err: unknown) => {
        // Put the batch back in front: order is kept and nothing is dropped.
        this.queue = batch.concat(this.queue);
        this.failures++;
        this.logger.error(
          { err: errorMessage(err), pending: this.queue.length, attempt: this.failures },
          "usage ledger write failed; will retry",
        );
      })
      .finally(() => {
        this.writing = undefined;
        this.inFlight = 0;
        if (this.queue.length > 0) {
          const backoff =
            this.failures === 0 ? 0 : Math.min(this.maxBackoffMs, 100 * 2 ** this.failures);
          this.schedule(backoff);
        }
      });
    return this.writing;
  }
}
