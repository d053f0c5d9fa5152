/**
 * A batch's requests as accepted: each routed ("auto" and the tier aliases become a model), given
 * prompt-cache breakpoints (PROMPT_CACHING), and priced at its worst case, which the budgets hold
 * until the batch ends: its estimated input (at the cache-write price when it may write to the
 * cache) plus its max_tokens of output, at the batch discount when it goes upstream.
 */
import { worstInputPerMTok, type ModelCatalog } from "../llm/models";
import { applyPromptCaching } from "../llm/prompt-cache";
import { routeModel, type RoutableRequest } from "../llm/router";
import { messageFacts, type RequestFacts } from "../request-facts";

export interface BatchRequestInput {
  custom_id: string;
  /** A Messages request body (validated by the route); `model` may be "auto" or a tier alias. */
  params: Record<string, unknown> & RoutableRequest & { max_tokens: number };
  /** What the request asks of the model, worked out by the route's chain; read from `params` when absent. */
  facts?: RequestFacts;
}

export interface PreparedRequest {
  customId: string;
  /** What is stored and sent: the routed model, breakpoints added. */
  params: Record<string, unknown>;
  worstCaseUsd: number;
}

export interface PrepareOptions {
  /** Add prompt-cache breakpoints (PROMPT_CACHING). */
  promptCaching: boolean;
  /** Priced at the batch discount (the batch goes to the Message Batches API). */
  batchPrice: boolean;
  /** Nothing is charged (the offline synthetic model). */
  free: boolean;
}

export function prepareBatch(
  requests: readonly BatchRequestInput[],
  catalog: ModelCatalog,
  options: PrepareOptions,
): PreparedRequest[] {
  return requests.map((r) => {
    const facts = r.facts ?? messageFacts(r.params);
    const route = routeModel(r.params, catalog, { inputTokens: facts.inputTokens });
    const routed = { ...r.params, model: route.model };
    const params = applyPromptCaching(routed, catalog, { enabled: options.promptCaching });
    // Breakpoints placed here may write to the cache too.
    const writes = { ...facts, promptCaching: facts.promptCaching || params !== routed };
    return {
      customId: r.custom_id,
      params,
      worstCaseUsd: options.free
        ? 0
        : worstCaseCostUsd(route.model, params.max_tokens, writes, catalog, options.batchPrice),
    };
  });
}

/** Most one request can cost, in USD. */
export function worstCaseCostUsd(
  model: string,
  maxTokens: number,
  facts: Pick<RequestFacts, "inputTokens" | "promptCaching" | "longCacheWrites">,
  catalog: ModelCatalog,
  batchPrice: boolean,
): number {
  const p = catalog.prices(model);
  const micro =
    facts.inputTokens * worstInputPerMTok(p, facts) + Number(maxTokens ?? 0) * p.outputPerMTok;
  const usd = micro / 1_000_000;
  return batchPrice ? usd * catalog.table.batchDiscount : usd;
}
