/** A batch as the API returns it: the Message Batches API's shape, plus what this service adds. */
import type { BatchRecord } from "../store/types";

/** Results expire upstream 29 days after creation; requests must finish within 24 hours. */
const BATCH_WINDOW_MS = 24 * 3600_000;

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
