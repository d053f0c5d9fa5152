/**
 * Message batches: many Messages requests accepted at once, answered later, results kept in
 * Postgres (`batches`, `batch_results`).
 *
 * Two modes, fixed per batch when it is created:
 * - `upstream` (ANTHROPIC_API_KEY set): the batch is submitted to the Message Batches API while
 *   the client waits, so a refusal reaches it at once. Results cost the batch price
 *   (`ModelCatalog.costUsd(..., {batch: true})`, half the standard price today).
 * - `local` (no API key: the offline synthetic model): the poller runs the requests one by one
 *   through the service's model provider; the batch is marked `synthetic`.
 *
 * The poller: every BATCH_POLL_INTERVAL_MS each replica leases the batches that are due
 * (`claimBatches`: FOR UPDATE SKIP LOCKED, then a lease in the row), so exactly one replica works
 * on a batch at a time and no transaction stays open across upstream calls. A replica that dies
 * leaves a lease that runs out, and whoever claims the batch next resumes it: results already
 * stored are skipped (a result is written only where none is), so nothing is stored or charged
 * twice. A read of a batch that is due polls it at once (the Lambda target has no background
 * timer between invocations). Failed polls back off exponentially, up to 15 minutes.
 *
 * Cancel: the batch is `canceling` until whoever works on it notices (a local worker reads the
 * status before each request; upstream, the Message Batches API cancels and the poller collects
 * the `canceled` results), then it ends as any batch does, which settles its budget hold to the
 * cost of what ran. Delete: only an ended batch, with its results (and the upstream copy).
 *
 * Usage: each stored result goes into the ledger (kind "batch", request id `batch:<id>:<custom_id>`)
 * once, by the replica whose write stored it. Budgets: an optional hook holds the batch's worst
 * case when it is accepted and hears the real cost when it ends.
 */
import { hostname } from "node:os";
import { randomBytes, randomUUID } from "node:crypto";
import { UpstreamError, type MessageRequest } from "../llm/types";
import type { BatchMode, BatchRecord, BatchResultInput } from "../store/types";
import { AgentMetrics } from "../telemetry/metrics";
import { withSpan } from "../telemetry/instrument";
import type { BatchBudgetHooks, BatchServiceOptions } from "./options";
import { prepareBatch, type BatchRequestInput } from "./prepare";
import { canceledResult, erroredResult, resultInput } from "./results";
import { countsOf, type UpstreamBatch, type UpstreamBatchResult } from "./upstream";
import { ApiError, errorMessage } from "../errors";

export type { BatchRequestInput } from "./prepare";

const MAX_BACKOFF_MS = 15 * 60_000;
/** Statuses worth retrying later in local mode, rather than recording as an errored result. */
const TRANSIENT = new Set([408, 409, 429, 499, 500, 502, 503, 504, 529]);

export type { BatchBudgetHooks, BatchServiceOptions, BatchStore } from "./options";

export class BatchService {
  readonly mode: BatchMode;
  readonly owner: string;
  private readonly metrics: AgentMetrics;
  private readonly leaseMs: number;
  private readonly sliceMs: number;
  /** The budget hook; may be set after construction (bootstrap wires it to the budget service). */
  budget: BatchBudgetHooks | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopping = false;

  constructor(private readonly o: BatchServiceOptions) {
    this.mode = o.upstream ? "upstream" : "local";
    this.owner = o.owner ?? `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
    this.metrics = o.metrics ?? AgentMetrics.noop();
    this.leaseMs = o.leaseMs ?? 120_000;
    this.sliceMs = o.sliceMs ?? 20_000;
    this.budget = o.budget;
  }

  /** Accept a batch: route and prepare each request, hold the budget, store it, submit it upstream. */
  async create(userId: string, requests: readonly BatchRequestInput[]): Promise<BatchRecord> {
    const refused = this.o.upstream?.unavailable?.();
    if (refused) throw refused;
    const id = randomUUID();
    const synthetic = this.mode === "local" && this.o.llm.synthetic;
    const prepared = prepareBatch(requests, this.o.catalog, {
      promptCaching: this.o.promptCaching,
      batchPrice: this.mode === "upstream",
      free: synthetic,
    });
    const worstCaseUsd = prepared.reduce((sum, r) => sum + r.worstCaseUsd, 0);
    const createdAt = new Date().toISOString();
    await this.budget?.reserveBatch({
      userId,
      batchId: id,
      worstCaseUsd,
      requestCount: prepared.length,
      requests: prepared.map((p) => ({ customId: p.customId, worstCaseUsd: p.worstCaseUsd })),
    });
    const release = () => this.settleBudget(userId, id, createdAt, worstCaseUsd, 0);

    let record: BatchRecord;
    try {
      record = await this.o.store.createBatch({
        id,
        userId,
        mode: this.mode,
        synthetic,
        status: this.mode === "upstream" ? "submitting" : "in_progress",
        reservedUsd: worstCaseUsd,
        // A submission that never completes (crash mid-call) is given up after this long.
        nextPollInMs: this.mode === "upstream" ? Math.max(600_000, 2 * this.o.timeoutMs) : 0,
        requests: prepared.map((p) => ({ customId: p.customId, params: p.params })),
      });
    } catch (err) {
      await release();
      throw err;
    }
    this.metrics.batchCreated(this.mode);
    if (!this.o.upstream) {
      this.kick();
      return record;
    }

    let submitted: UpstreamBatch;
    try {
      submitted = await this.o.upstream.create(
        prepared.map((p) => ({ custom_id: p.customId, params: p.params })),
      );
    } catch (err) {
      // Refused upstream: nothing was accepted, so nothing is kept.
      await this.o.store
        .deleteBatch(id)
        .catch((e: Error) =>
          this.o.logger.error({ err: e.message, batch: id }, "could not delete a refused batch"),
        );
      await release();
      throw err;
    }
    const updated = await this.o.store
      .updateBatch(id, {
        status: "in_progress",
        upstreamId: submitted.id,
        counts: countsOf(submitted),
        nextPollInMs: this.o.pollIntervalMs,
      })
      .catch((err: Error) => {
        // The upstream batch exists but we could not record it: say where it is, loudly.
        this.o.logger.error(
          { err: err.message, batch: id, upstreamBatch: submitted.id },
          "batch submitted but not recorded",
        );
        throw err;
      });
    if (!updated) throw new Error(`batch ${id} vanished while it was submitted`);
    this.o.logger.info(
      { batch: id, upstreamBatch: submitted.id, requests: prepared.length },
      "batch submitted",
    );
    return (await this.o.store.getBatch(id)) ?? record;
  }

  /** The caller's batch, or null (unknown, another user's). A due batch is polled first. */
  async get(userId: string, id: string): Promise<BatchRecord | null> {
    const record = await this.o.store.getBatch(id, userId);
    if (!record || record.status === "ended" || Date.parse(record.nextPollAt) > Date.now())
      return record;
    if (record.mode === "local") {
      this.kick();
      return record;
    }
    try {
      const [claimed] = await this.o.store.claimBatches(this.owner, {
        leaseMs: this.leaseMs,
        limit: 1,
        id,
      });
      if (claimed) await this.process(claimed);
    } catch (err) {
      this.o.logger.warn({ err: errorMessage(err), batch: id }, "batch poll on read failed");
    }
    return (await this.o.store.getBatch(id, userId)) ?? record;
  }

  /** The caller's batches, newest first (see Store.listBatches); null for a cursor not theirs. */
  list(
    userId: string,
    page: { limit: number; afterId?: string; beforeId?: string },
  ): Promise<{ batches: BatchRecord[]; hasMore: boolean } | null> {
    return this.o.store.listBatches(userId, page);
  }

  /**
   * Cancel the caller's batch (null: not theirs). It is `canceling` until whoever works on it
   * stops: a local request already running finishes, the rest get `canceled` results; upstream,
   * the Message Batches API cancels and the poller collects the results. Either way the batch then
   * ends as usual (`finish`), which settles its budget hold to the cost of what ran, releasing the
   * rest. An ended batch is returned as it is, as the API does.
   */
  async cancel(userId: string, id: string): Promise<BatchRecord | null> {
    const record = await this.o.store.getBatch(id, userId);
    if (!record || record.status === "ended" || record.status === "canceling") return record;
    if (record.status === "submitting") {
      throw new ApiError(
        409,
        "conflict_error",
        `batch ${id} is still being submitted upstream; cancel it once it is in progress`,
      );
    }
    if (record.mode === "upstream") {
      if (!this.o.upstream || !record.upstreamId)
        throw new Error("this replica has no ANTHROPIC_API_KEY to cancel an upstream batch with");
      const upstream = await this.o.upstream.cancel(record.upstreamId);
      if (upstream.processing_status === "ended") {
        // It ended before the cancel reached it: nothing to cancel, only results to collect.
        await this.o.store.updateBatch(id, { nextPollInMs: 0 });
        return this.get(userId, id);
      }
    }
    const canceling = await this.o.store.updateBatch(id, {
      status: "canceling",
      ifStatus: ["in_progress"],
      nextPollInMs: 0,
    });
    if (canceling) this.o.logger.info({ batch: id, mode: record.mode }, "batch cancel requested");
    // Due at once: a local batch nobody works on is canceled now, an upstream one polled now.
    this.kick();
    return (await this.o.store.getBatch(id, userId)) ?? record;
  }

  /**
   * Delete the caller's ended batch and its results ("not_ended" while it is in progress: cancel it
   * first, as the API asks). Upstream, the copy of an upstream batch goes too. The ledger keeps its
   * usage: that was spent.
   */
  async delete(userId: string, id: string): Promise<"deleted" | "not_found" | "not_ended"> {
    const record = await this.o.store.getBatch(id, userId);
    if (!record) return "not_found";
    if (record.status !== "ended") return "not_ended";
    if (!(await this.o.store.deleteBatch(id, { userId, status: "ended" }))) return "not_found";
    if (record.upstreamId && this.o.upstream) {
      await this.o.upstream
        .delete(record.upstreamId)
        .catch((err: unknown) =>
          this.o.logger.warn(
            { err: errorMessage(err), batch: id, upstreamBatch: record.upstreamId },
            "the upstream copy of a deleted batch could not be deleted",
          ),
        );
    }
    this.o.logger.info({ batch: id }, "batch deleted");
    return "deleted";
  }

  /** The results file: one JSON line per request, `{custom_id, result}`, in request order. */
  async *resultLines(batchId: string): AsyncGenerator<string> {
    let after = -1;
    for (;;) {
      const rows = await this.o.store.listBatchResults(batchId, { afterSeq: after, limit: 1000 });
      if (rows.length === 0) return;
      let chunk = "";
      for (const r of rows)
        chunk += JSON.stringify({ custom_id: r.customId, result: r.result }) + "\n";
      yield chunk;
      after = rows[rows.length - 1]!.seq;
    }
  }

  // ---- the poller ------------------------------------------------------------------------------

  start(): void {
    if (this.timer || this.stopping) return;
    this.timer = setInterval(() => this.kick(), this.o.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Stop polling and wait for the batch in hand; its lease is handed back. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Look for due batches now (after creating a local batch, say). */
  kick(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.tick();
        } while (this.again && !this.stopping);
      } finally {
        this.running = undefined;
      }
    })();
  }

  /** Wait until the poller is idle (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Claim the batches that are due and work on each; returns how many were claimed. */
  async tick(): Promise<number> {
    let claimed: BatchRecord[];
    try {
      claimed = await this.o.store.claimBatches(this.owner, { leaseMs: this.leaseMs, limit: 8 });
    } catch (err) {
      this.o.logger.warn({ err: errorMessage(err) }, "batch poller could not claim batches");
      return 0;
    }
    for (const batch of claimed) {
      if (this.stopping) {
        await this.o.store
          .updateBatch(batch.id, { releaseLease: true }, this.owner)
          .catch(() => false);
        continue;
      }
      await this.process(batch);
    }
    return claimed.length;
  }

  private async process(batch: BatchRecord): Promise<void> {
    try {
      await withSpan(
        this.o.tracer,
        "batch.process",
        { "agent.batch.id": batch.id, "agent.batch.mode": batch.mode },
        () => {
          if (batch.status === "submitting") return this.abandonSubmission(batch);
          return batch.mode === "upstream" ? this.pollUpstream(batch) : this.runLocal(batch);
        },
      );
    } catch (err) {
      const delay = Math.min(
        MAX_BACKOFF_MS,
        this.o.pollIntervalMs * 2 ** Math.min(batch.pollAttempts, 16),
      );
      this.o.logger.warn(
        {
          err: errorMessage(err),
          batch: batch.id,
          attempt: batch.pollAttempts,
          retryInMs: delay,
        },
        "batch poll failed; will retry",
      );
      await this.o.store
        .updateBatch(batch.id, { nextPollInMs: delay, releaseLease: true }, this.owner)
        .catch((e: Error) =>
          this.o.logger.error(
            { err: e.message, batch: batch.id },
            "could not release a batch lease",
          ),
        );
    }
  }

  private async pollUpstream(batch: BatchRecord): Promise<void> {
    const upstream = this.o.upstream;
    if (!upstream) {
      // Configured without an API key now, but the batch was sent upstream: leave it for a replica that has one.
      throw new Error("this replica has no ANTHROPIC_API_KEY to poll an upstream batch with");
    }
    let status: UpstreamBatch;
    try {
      status = await upstream.retrieve(batch.upstreamId!);
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 404) {
        return this.finish(
          batch,
          "the upstream batch no longer exists; its requests have no result",
        );
      }
      throw err;
    }
    if (status.processing_status !== "ended") {
      await this.o.store.updateBatch(
        batch.id,
        {
          counts: countsOf(status),
          nextPollInMs: this.o.pollIntervalMs,
          resetAttempts: true,
          releaseLease: true,
        },
        this.owner,
      );
      return;
    }
    const admitted = await this.maxTokensOf(batch.id);
    let chunk: BatchResultInput[] = [];
    for await (const line of upstream.results(batch.upstreamId!)) {
      chunk.push(this.result(line, true, admitted.get(String(line.custom_id))));
      if (chunk.length >= 500) {
        await this.save(batch, chunk);
        chunk = [];
        await this.o.store.updateBatch(batch.id, { renewLeaseMs: this.leaseMs }, this.owner);
      }
    }
    await this.save(batch, chunk);
    await this.finish(batch, "missing from the upstream batch's results");
  }

  /** max_tokens of each request still waiting for its result (the bound of its output usage). */
  private async maxTokensOf(batchId: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let after = -1; ;) {
      const items = await this.o.store.listBatchItems(batchId, {
        pendingOnly: true,
        afterSeq: after,
        limit: 1000,
      });
      if (items.length === 0) return out;
      for (const i of items) out.set(i.customId, Number(i.params?.max_tokens));
      after = items[items.length - 1]!.seq;
    }
  }

  private async runLocal(batch: BatchRecord): Promise<void> {
    const deadline = performance.now() + this.sliceMs;
    for (;;) {
      const items = await this.o.store.listBatchItems(batch.id, { pendingOnly: true, limit: 16 });
      if (items.length === 0) return this.finish(batch, "the request was lost before it ran");
      for (const item of items) {
        // Read before each request: the cancel may have reached another replica.
        if ((await this.o.store.getBatch(batch.id))?.status === "canceling")
          return this.cancelPending(batch);
        if (this.stopping || performance.now() > deadline) {
          // Hand the batch back, due at once: this or another replica carries on.
          const { counts, costUsd } = await this.o.store.summarizeBatchResults(batch.id);
          await this.o.store.updateBatch(
            batch.id,
            { counts, costUsd, nextPollInMs: 0, releaseLease: true },
            this.owner,
          );
          this.again = !this.stopping;
          return;
        }
        await this.save(batch, [await this.runOne(item.customId, item.params)]);
      }
      const { counts, costUsd } = await this.o.store.summarizeBatchResults(batch.id);
      await this.o.store.updateBatch(
        batch.id,
        { counts, costUsd, renewLeaseMs: this.leaseMs, resetAttempts: true },
        this.owner,
      );
    }
  }

  /** One local request; transient failures throw (the batch is retried later), others become errored results. */
  private async runOne(
    customId: string,
    params: Record<string, unknown> | null,
  ): Promise<BatchResultInput> {
    if (!params)
      return erroredResult(
        customId,
        "invalid_request_error",
        "the request's parameters were not kept",
      );
    try {
      const message = await this.o.llm.createMessage(params as unknown as MessageRequest, {
        timeoutMs: this.o.timeoutMs,
      });
      return this.result(
        { custom_id: customId, result: { type: "succeeded", message } as never },
        false,
        Number(params.max_tokens),
      );
    } catch (err) {
      const e =
        err instanceof UpstreamError ? err : new UpstreamError(500, "api_error", errorMessage(err));
      if (TRANSIENT.has(e.status)) throw e;
      return erroredResult(customId, e.type, e.message);
    }
  }

  private result(
    line: UpstreamBatchResult,
    batchPrice: boolean,
    maxTokens: number | undefined,
  ): BatchResultInput {
    return resultInput(line, {
      catalog: this.o.catalog,
      logger: this.o.logger,
      batchPrice,
      maxTokens,
    });
  }

  /** Store results; ledger and metrics only for those this call stored (never twice). */
  private async save(batch: BatchRecord, results: BatchResultInput[]): Promise<void> {
    if (results.length === 0) return;
    const stored = new Set(await this.o.store.saveBatchResults(batch.id, results));
    const createdAt = new Date().toISOString();
    for (const r of results) {
      if (!stored.has(r.customId)) continue;
      this.metrics.batchResult(r.type);
      if (r.type !== "succeeded" && r.type !== "errored") continue;
      const usage = {
        input_tokens: r.inputTokens,
        output_tokens: r.outputTokens,
        cache_creation_input_tokens: r.cacheCreationInputTokens,
        cache_read_input_tokens: r.cacheReadInputTokens,
      };
      if (r.model) this.metrics.recordUsage(r.model, usage, r.costUsd, "batch");
      this.o.usage.record({
        requestId: `batch:${batch.id}:${r.customId}`,
        userId: batch.userId,
        sessionId: null,
        model: r.model ?? "unknown",
        inputTokens: r.inputTokens,
        outputTokens: r.outputTokens,
        cacheCreationInputTokens: r.cacheCreationInputTokens,
        cacheReadInputTokens: r.cacheReadInputTokens,
        costUsd: r.costUsd,
        status: r.type === "succeeded" ? "ok" : "error",
        kind: "batch",
        createdAt,
      });
    }
  }

  /** Give every request still without a result an errored one, end the batch, settle the budget. */
  private async finish(batch: BatchRecord, missingReason: string): Promise<void> {
    for (;;) {
      const left = await this.o.store.listBatchItems(batch.id, { pendingOnly: true, limit: 1000 });
      if (left.length === 0) break;
      await this.save(
        batch,
        left.map((i) => erroredResult(i.customId, "api_error", missingReason)),
      );
    }
    const { counts, costUsd } = await this.o.store.summarizeBatchResults(batch.id);
    const ended = await this.o.store.updateBatch(
      batch.id,
      { status: "ended", counts, costUsd, resetAttempts: true, releaseLease: true },
      this.owner,
    );
    if (!ended) return; // the lease ran out meanwhile: the replica that holds it now finishes
    this.o.logger.info({ batch: batch.id, ...counts, costUsd }, "batch ended");
    await this.settleBudget(batch.userId, batch.id, batch.createdAt, batch.reservedUsd, costUsd);
  }

  /** A canceled local batch: every request not run yet gets a `canceled` result, then it ends. */
  private async cancelPending(batch: BatchRecord): Promise<void> {
    for (;;) {
      const left = await this.o.store.listBatchItems(batch.id, { pendingOnly: true, limit: 1000 });
      if (left.length === 0) break;
      await this.save(
        batch,
        left.map((i) => canceledResult(i.customId)),
      );
    }
    await this.finish(batch, "the batch was canceled");
  }

  /** A submission that never completed (the process died during it): whether upstream got it is unknown. */
  private async abandonSubmission(batch: BatchRecord): Promise<void> {
    await this.o.store.updateBatch(
      batch.id,
      { error: "submission was interrupted; the batch was not processed" },
      this.owner,
    );
    await this.finish(batch, "the batch's submission was interrupted");
  }

  private async settleBudget(
    userId: string,
    batchId: string,
    createdAt: string,
    reservedUsd: number,
    actualUsd: number,
  ): Promise<void> {
    if (!this.budget?.settleBatch) return;
    await this.budget
      .settleBatch({ userId, batchId, reservedUsd, actualUsd }, { createdAt })
      .catch((err: Error) =>
        this.o.logger.error({ err: err.message, batch: batchId }, "batch budget settle failed"),
      );
  }
}
