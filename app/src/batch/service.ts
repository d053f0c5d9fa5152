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
import { estimateInput } from "../budget/estimate";
import { worstInputPerMTok, type ModelCatalog } from "../llm/models";
import { applyPromptCaching } from "../llm/prompt-cache";
import { routeModel } from "../llm/router";
import { UpstreamError, type LlmProvider, type MessageRequest } from "../llm/types";
import type {
  BatchCounts,
  BatchMode,
  BatchRecord,
  BatchResultInput,
  BatchResultType,
  Store,
} from "../store/types";
import { AgentMetrics } from "../telemetry/metrics";
import { withSpan } from "../telemetry/otel";
import { withoutNul } from "../json-limits";
import { boundUsage } from "../llm/usage-bounds";
import type { Tracer } from "@opentelemetry/api";
import type { BatchUpstream, UpstreamBatch, UpstreamBatchResult } from "./upstream";

/** Results expire upstream 29 days after creation; requests must finish within 24 hours. */
const BATCH_WINDOW_MS = 24 * 3600_000;
const MAX_BACKOFF_MS = 15 * 60_000;
const RESULT_TYPES: ReadonlySet<string> = new Set(["succeeded", "errored", "canceled", "expired"]);
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

export interface BatchRequestInput {
  custom_id: string;
  /** A Messages request body (validated by the route); `model` may be "auto" or a tier alias. */
  params: Record<string, unknown> & { model: string; max_tokens: number; messages: unknown[] };
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
    const { catalog } = this.o;
    const prepared = requests.map((r) => {
      const route = routeModel(r.params as never, catalog);
      const params = applyPromptCaching(
        { ...r.params, model: route.model } as unknown as MessageRequest,
        catalog,
        {
          enabled: this.o.promptCaching,
        },
      ) as unknown as Record<string, unknown>;
      return { customId: r.custom_id, params };
    });
    const id = randomUUID();
    const synthetic = this.mode === "local" && this.o.llm.synthetic;
    const each = prepared.map((p) => ({
      customId: p.customId,
      worstCaseUsd: synthetic ? 0 : worstCaseCostUsd([p.params], catalog, this.mode === "upstream"),
    }));
    const worstCaseUsd = each.reduce((sum, r) => sum + r.worstCaseUsd, 0);
    const createdAt = new Date().toISOString();
    await this.budget?.reserveBatch({
      userId,
      batchId: id,
      worstCaseUsd,
      requestCount: prepared.length,
      requests: each,
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
        requests: prepared,
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
      this.o.logger.warn({ err: (err as Error).message, batch: id }, "batch poll on read failed");
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
      this.o.logger.warn({ err: (err as Error).message }, "batch poller could not claim batches");
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
          err: (err as Error).message,
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
      chunk.push(this.resultInput(line, true, admitted.get(String(line.custom_id))));
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
      return this.errored(
        customId,
        "invalid_request_error",
        "the request's parameters were not kept",
      );
    try {
      const message = await this.o.llm.createMessage(params as unknown as MessageRequest, {
        timeoutMs: this.o.timeoutMs,
      });
      return this.resultInput(
        { custom_id: customId, result: { type: "succeeded", message } as never },
        false,
        Number(params.max_tokens),
      );
    } catch (err) {
      const e =
        err instanceof UpstreamError
          ? err
          : new UpstreamError(500, "api_error", (err as Error)?.message ?? String(err));
      if (TRANSIENT.has(e.status)) throw e;
      return this.errored(customId, e.type, e.message);
    }
  }

  private errored(customId: string, type: string, message: string): BatchResultInput {
    return {
      customId,
      type: "errored",
      result: { type: "errored", error: { type: "error", error: { type, message } } },
      model: null,
      inputTokens: 0,
      outputTokens: 0,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: 0,
      costUsd: 0,
    };
  }

  /**
   * A result as stored and charged. Usage beyond the request's `maxTokens` or the model's context
   * window is clamped to it (and logged), as for live calls (llm/usage-bounds.ts).
   */
  private resultInput(
    line: UpstreamBatchResult,
    batchPrice: boolean,
    maxTokens: number | undefined,
  ): BatchResultInput {
    const type = (
      RESULT_TYPES.has(line.result?.type) ? line.result.type : "errored"
    ) as BatchResultType;
    const message =
      type === "succeeded"
        ? (line.result.message as { model?: string; usage?: Record<string, unknown> } | undefined)
        : undefined;
    const u = message?.usage ?? {};
    const int = (v: unknown) =>
      typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0;
    const split = (u.cache_creation ?? {}) as Record<string, unknown>;
    const model = message?.model ?? null;
    const reported = {
      input_tokens: int(u.input_tokens),
      output_tokens: int(u.output_tokens),
      cache_creation_input_tokens: int(u.cache_creation_input_tokens),
      cache_read_input_tokens: int(u.cache_read_input_tokens),
      cache_creation: { ephemeral_1h_input_tokens: int(split.ephemeral_1h_input_tokens) },
    };
    const bounded = boundUsage(reported, {
      maxTokens: Number.isFinite(maxTokens) ? maxTokens! : Infinity,
      contextWindow: this.o.catalog.prices(model ?? "").contextWindow,
    });
    const usage = bounded.usage;
    if (bounded.reported)
      this.o.logger.warn(
        { customId: line.custom_id, model, reported: bounded.reported, charged: usage },
        "batch result reported usage beyond what was admitted; charging the admitted bounds",
      );
    return {
      customId: String(line.custom_id),
      type,
      // Model output, stored in Postgres, which cannot hold a NUL character.
      result: withoutNul(line.result),
      model,
      inputTokens: usage.input_tokens,
      outputTokens: usage.output_tokens,
      cacheCreationInputTokens: usage.cache_creation_input_tokens,
      cacheReadInputTokens: usage.cache_read_input_tokens,
      costUsd: model ? this.o.catalog.costUsd(model, usage, { batch: batchPrice }) : 0,
    };
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
        left.map((i) => this.errored(i.customId, "api_error", missingReason)),
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

/**
 * Most the batch can cost: each request's estimated input (at the cache-write price when it marks
 * breakpoints) plus its max_tokens of output, at the batch discount when it goes upstream.
 */
export function worstCaseCostUsd(
  requests: ReadonlyArray<Record<string, unknown>>,
  catalog: ModelCatalog,
  batchPrice: boolean,
): number {
  let micro = 0;
  for (const params of requests) {
    const p = catalog.prices(String(params.model));
    const input = estimateInput(params);
    micro +=
      input.tokens * worstInputPerMTok(p, input) + Number(params.max_tokens ?? 0) * p.outputPerMTok;
  }
  const usd = micro / 1_000_000;
  return batchPrice ? usd * catalog.table.batchDiscount : usd;
}

function countsOf(b: UpstreamBatch): BatchCounts {
  const c = b.request_counts;
  return {
    processing: c.processing ?? 0,
    succeeded: c.succeeded ?? 0,
    errored: c.errored ?? 0,
    canceled: c.canceled ?? 0,
    expired: c.expired ?? 0,
  };
}

/** The batch as the API returns it: the Message Batches API's shape, plus what this service adds. */
export function batchView(b: BatchRecord, basePath = "/v1/batches") {
  const ended = b.status === "ended";
  return {
    id: b.id,
    type: "message_batch" as const,
    processing_status: ended ? ("ended" as const) : ("in_progress" as const),
    request_counts: b.counts,
    created_at: b.createdAt,
    ended_at: b.endedAt,
    expires_at: new Date(Date.parse(b.createdAt) + BATCH_WINDOW_MS).toISOString(),
    cancel_initiated_at: null,
    archived_at: null,
    results_url: ended ? `${basePath}/${b.id}/results` : null,
    // This service's additions.
    mode: b.mode,
    synthetic: b.synthetic,
    cost_usd: b.costUsd,
    error: b.error,
  };
}
