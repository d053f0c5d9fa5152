/** What a BatchService is built from (batch/service.ts): its store, model, upstream, budget hooks. */
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { UsageRecorder } from "../budget/ledger";
import type { ModelCatalog } from "../llm/models";
import type { LlmProvider } from "../llm/types";
import type { Store } from "../store/types";
import type { AgentMetrics } from "../telemetry/metrics";
import type { BatchUpstream } from "./upstream";

export type BatchStore = Pick<
  Store,
  | "createBatch"
  | "getBatch"
  | "updateBatch"
  | "deleteBatch"
  | "listBatches"
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
