/**
 * A batch request's result as stored and charged: its type, its usage bounded by what was admitted
 * (llm/usage-bounds.ts: max_tokens and the model's context window, as for live calls), and its
 * cost, at the batch price when it ran upstream.
 */
import type { Logger } from "pino";
import type { ModelCatalog } from "../llm/models";
import { boundUsage } from "../llm/usage-bounds";
import { withoutNul } from "../json-limits";
import type { BatchResultInput, BatchResultType } from "../store/types";
import type { UpstreamBatchResult } from "./upstream";

const RESULT_TYPES: ReadonlySet<string> = new Set<BatchResultType>([
  "succeeded",
  "errored",
  "canceled",
  "expired",
]);
const isResultType = (t: unknown): t is BatchResultType =>
  typeof t === "string" && RESULT_TYPES.has(t);

/** A request that ran into an error of ours or the upstream's: no usage, no cost. */
export function erroredResult(customId: string, type: string, message: string): BatchResultInput {
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

/** A request that never ran because its batch was canceled first: no usage, no cost. */
export function canceledResult(customId: string): BatchResultInput {
  return {
    customId,
    type: "canceled",
    result: { type: "canceled" },
    model: null,
    inputTokens: 0,
    outputTokens: 0,
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 0,
    costUsd: 0,
  };
}

export interface ResultContext {
  catalog: ModelCatalog;
  logger: Pick<Logger, "warn">;
  /** The request ran upstream: charged at the batch price. */
  batchPrice: boolean;
  /** The request's max_tokens, the bound of its output usage. */
  maxTokens: number | undefined;
}

export function resultInput(line: UpstreamBatchResult, o: ResultContext): BatchResultInput {
  const type = isResultType(line.result?.type) ? line.result.type : "errored";
  const message =
    type === "succeeded"
      ? (line.result.message as { model?: string; usage?: Record<string, unknown> } | undefined)
      : undefined;
  const u = message?.usage ?? {};
  const int = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);
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
    maxTokens: o.maxTokens !== undefined && Number.isFinite(o.maxTokens) ? o.maxTokens : Infinity,
    contextWindow: o.catalog.prices(model ?? "").contextWindow,
  });
  const usage = bounded.usage;
  if (bounded.reported)
    o.logger.warn(
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
    costUsd: model ? o.catalog.costUsd(model, usage, { batch: o.batchPrice }) : 0,
  };
}
