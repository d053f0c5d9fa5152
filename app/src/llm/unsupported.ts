/**
 * The Message Batches API on an upstream that has none (Bedrock, Vertex AI: llm/features.ts).
 * The batch service keeps its `upstream` mode, and the submission is refused with a 400 naming
 * the upstream, rather than the requests being run one by one at the full price (the service's
 * `local` mode, meant for the offline model) or dropped.
 */
import type { BatchUpstream, UpstreamBatch, UpstreamBatchResult } from "../batch/upstream";
import { UpstreamError } from "./types";
import type { UpstreamKind } from "./upstream-kinds";

export class UnsupportedBatchUpstream implements BatchUpstream {
  constructor(private readonly upstream: UpstreamKind) {}

  unavailable(): UpstreamError {
    return this.refusal();
  }

  create(): Promise<UpstreamBatch> {
    return Promise.reject(this.refusal());
  }

  retrieve(): Promise<UpstreamBatch> {
    return Promise.reject(this.refusal());
  }

  cancel(): Promise<UpstreamBatch> {
    return Promise.reject(this.refusal());
  }

  delete(): Promise<void> {
    return Promise.reject(this.refusal());
  }

  async *results(): AsyncIterable<UpstreamBatchResult> {
    throw this.refusal();
  }

  private refusal(): UpstreamError {
    const u = this.upstream;
    return new UpstreamError(
      400,
      "invalid_request_error",
      `Message Batches are not available on the ${u} upstream (LLM_UPSTREAM=${u}): ` +
        "send the requests to /v1/messages one by one",
    );
  }
}
