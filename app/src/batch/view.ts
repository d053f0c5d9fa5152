/**
 * A batch as the API returns it: the Message Batches API's shape (the official SDK's
 * `MessageBatch`, resources/messages/batches.d.ts), plus what this service adds.
 */
import type {
  DeletedMessageBatch,
  MessageBatch,
} from "@anthropic-ai/sdk/resources/messages/batches";
import type { BatchMode, BatchRecord } from "../store/types";

/** Results expire upstream 29 days after creation; requests must finish within 24 hours. */
const BATCH_WINDOW_MS = 24 * 3600_000;

export interface BatchView extends MessageBatch {
  mode: BatchMode;
  /** Answered by the offline synthetic model. */
  synthetic: boolean;
  cost_usd: number;
  error: string | null;
}

export function batchView(b: BatchRecord, basePath = "/v1/batches"): BatchView {
  const ended = b.status === "ended";
  return {
    id: b.id,
    type: "message_batch",
    processing_status: ended ? "ended" : b.status === "canceling" ? "canceling" : "in_progress",
    request_counts: b.counts,
    created_at: b.createdAt,
    ended_at: b.endedAt,
    expires_at: new Date(Date.parse(b.createdAt) + BATCH_WINDOW_MS).toISOString(),
    cancel_initiated_at: b.cancelInitiatedAt,
    archived_at: null,
    results_url: ended ? `${basePath}/${b.id}/results` : null,
    // This service's additions.
    mode: b.mode,
    synthetic: b.synthetic,
    cost_usd: b.costUsd,
    error: b.error,
  };
}

/** What DELETE answers. */
export function deletedView(id: string): DeletedMessageBatch {
  return { id, type: "message_batch_deleted" };
}
