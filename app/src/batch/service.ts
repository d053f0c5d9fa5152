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
 * Usage: each stored result goes into the ledger (kind "batch", request id `batch:<id>:<custom_id>`)
 * once, by the replica whose write stored it. Budgets: an optional hook holds the batch's worst
 * case when it is accepted and hears the real cost when it ends.
 */
import { hostname } from "node:os";
import { randomBytes, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { UsageRecorder } from "../budget/ledger";
import type { ModelCatalog } from "../llm/models";
import { UpstreamError, type LlmProvider, type MessageRequest } from "../llm/types";
import type { BatchMode, BatchRecord, BatchResultInput, Store } from "../store/types";
import { AgentMetrics } from "../telemetry/metrics";
import { withSpan } from "../telemetry/instrument";
import type { Tracer } from "@opentelemetry/api";
import { prepareBatch, type BatchRequestInput } from "./prepare";
import { erroredResult, resultInput } from "./results";
import {
  countsOf,
  type BatchUpstream,
  type UpstreamBatch,
  type UpstreamBatchResult,
} from "./upstream";
import { errorMessage } from "../errors";

export type { BatchRequestInput } from "./prepare";

const MAX_BACKOFF_MS = 15 * 60_000;
/** Statuses worth retrying later in local mode, rather than recording as an errored result. */
const TRANSIENT = new Set([408, 409, 429, 499, 500, 502, 503, 504, 529]);

export type BatchStore = Pick<
  Store,
  | "createBatch"
  | "getBatch"
  | "updateBatch"
  | "deleteBatch"
  | "claimBatches"
  | "listBatchItems"
  | "saveBatchResults"
  | "summarizeBatchResults"
  | "listBatchResults"
>;

/**
 * Budget hook (optional). `reserveBatch` runs before anything is stored or submitted: throw (an
 * ApiError, say 429 budget_exceeded) to refuse the batch. `settleBatch` runs once, by whichever
 * replica finishes the batch, possibly after a restart: it gets ids and amounts, never objects
 * from the reserving process. Every result's cost is also in the ledger (kind "batch").
 */
export interface BatchBudgetHooks {
  reserveBatch(input: {
    userId: string;
    batchId: string;
    worstCaseUsd: number;
    requestCount: number;
    /** Each request's own worst case (the per-request budget applies to each). */
    requests: ReadonlyArray<{ customId: string; worstCaseUsd: number }>;
  }): Promise<void>;
  settleBatch?(
    input: {
      userId: string;
      batchId: string;
      reservedUsd: number;
      actualUsd: number;
    },
    /** When the batch was accepted (and its worst case held): the budget windows it counts in. */
    batch: { createdAt: string },
  ): Promise<void>;
}

export interface BatchServiceOptions {
  store: BatchStore;
  /** Runs local batches. */
  llm: LlmProvider;
  /** The Message Batches API; absent: batches run locally through `llm`. */
  upstream?: BatchUpstream;
  catalog: ModelCatalog;
  usage: UsageRecorder;
  logger: Pick<Logger, "info" | "warn" | "error">;
  metrics?: AgentMetrics;
  tracer?: Tracer;
  budget?: BatchBudgetHooks;
  pollIntervalMs: number;
  /** Add prompt-cache breakpoints to each request (PROMPT_CACHING). */
  promptCaching: boolean;
  /** Per-call timeout of local requests. */
  timeoutMs: number;
  /** How long a claim keeps a batch; renewed while work goes on. @default 120000 */
  leaseMs?: number;
  /** Most time one claim spends running local requests before handing the batch back. @default 20000 */
  sliceMs?: number;
  /** This replica's name in leases. @default host/pid/random */
  owner?: string;
}

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
