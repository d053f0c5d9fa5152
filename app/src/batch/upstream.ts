/**
 * The Message Batches API as the batch service sees it, and its implementation over the official
 * SDK. Batches there cost half the standard price and end within 24 hours.
 */
// The base client and the one resource used, as in llm/anthropic.ts: the full `Anthropic` class
// pulls every API resource into the Lambda bundle.
import { BaseAnthropic } from "@anthropic-ai/sdk/client";
import { Batches } from "@anthropic-ai/sdk/resources/messages/batches";
import type {
  BatchCreateParams,
  MessageBatchIndividualResponse,
} from "@anthropic-ai/sdk/resources/messages/batches";
import { toUpstreamError } from "../llm/anthropic";
import type { BatchCounts } from "../store/types";

export type UpstreamBatchStatus = "in_progress" | "canceling" | "ended";

export interface UpstreamBatch {
  id: string;
  processing_status: UpstreamBatchStatus;
  request_counts: {
    processing: number;
    succeeded: number;
    errored: number;
    canceled: number;
    expired: number;
  };
}

/** The counts of an upstream batch, as stored. */
export function countsOf(b: UpstreamBatch): BatchCounts {
  const c = b.request_counts;
  return {
    processing: c.processing ?? 0,
    succeeded: c.succeeded ?? 0,
    errored: c.errored ?? 0,
    canceled: c.canceled ?? 0,
    expired: c.expired ?? 0,
  };
}

/** One line of a batch's results file: `{custom_id, result: {type: "succeeded", message} | {type: "errored", error} | ...}`. */
export interface UpstreamBatchResult {
  custom_id: string;
  result: { type: string } & Record<string, unknown>;
}

export interface BatchUpstream {
  create(
    requests: Array<{ custom_id: string; params: Record<string, unknown> }>,
  ): Promise<UpstreamBatch>;
  retrieve(id: string): Promise<UpstreamBatch>;
  /** Ask for a cancel; the batch is `canceling` until it ends, its unrun requests `canceled`. */
  cancel(id: string): Promise<UpstreamBatch>;
  /** Delete an ended batch and its results upstream. */
  delete(id: string): Promise<void>;
  /** The results of an ended batch, streamed (a batch's results file can be large). */
  results(id: string): AsyncIterable<UpstreamBatchResult>;
  /**
   * Why this upstream takes no batches at all, if it does not: the submission is refused with it
   * before anything is held or stored.
   */
  unavailable?(): Error | undefined;
}

export interface AnthropicBatchUpstreamOptions {
  apiKey: string;
  baseURL?: string;
  timeoutMs: number;
  /** Retries of status and results calls inside the SDK (creation is never retried). @default 2 */
  maxRetries?: number;
}

/** Errors come out as UpstreamError, like the Messages provider's. */
export class AnthropicBatchUpstream implements BatchUpstream {
  private readonly batches: Batches;

  constructor(options: AnthropicBatchUpstreamOptions) {
    const client = new BaseAnthropic({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 2,
    });
    this.batches = new Batches(client);
  }

  async create(
    requests: Array<{ custom_id: string; params: Record<string, unknown> }>,
  ): Promise<UpstreamBatch> {
    try {
      // Not retried: creation is not idempotent, and a retry after a lost response would submit
      // (and bill) the batch twice. The client sees the error and may retry knowingly.
      return await this.batches.create(
        { requests: requests as unknown as BatchCreateParams["requests"] },
        { maxRetries: 0 },
      );
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async retrieve(id: string): Promise<UpstreamBatch> {
    try {
      return await this.batches.retrieve(id);
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async cancel(id: string): Promise<UpstreamBatch> {
    try {
      return await this.batches.cancel(id);
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async delete(id: string): Promise<void> {
    try {
      await this.batches.delete(id);
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async *results(id: string): AsyncIterable<UpstreamBatchResult> {
    let decoder: AsyncIterable<MessageBatchIndividualResponse>;
    try {
      decoder = await this.batches.results(id);
    } catch (err) {
      throw toUpstreamError(err);
    }
    try {
      for await (const line of decoder) yield line as unknown as UpstreamBatchResult;
    } catch (err) {
      throw toUpstreamError(err);
    }
  }
}
