/**
 * What a Messages request holds on the budgets, and the arithmetic of it (pure): its estimated
 * input plus max_tokens of output, priced at the model that will serve it. Near the edge of a
 * budget the hold shrinks to what remains and max_tokens with it, down to a floor
 * (BUDGET_MIN_OUTPUT_TOKENS) below which the request is refused; a fallback to a dearer model
 * tops the hold up first (`BudgetService.topUp`) or is skipped.
 */
import type { BudgetName } from "./kinds";
import type { Line } from "./lines";
import type { SeededEngine } from "./seeding";
import type { RequestFacts } from "../request-facts";
import { worstInputPerMTok, type ModelInfo } from "../llm/models";

export interface ReserveRequest {
  /** Used in the hold's id, for correlation. */
  requestId: string;
  userId: string;
  sessionId?: string | null;
  /** The model that will serve: the hold is priced at it. */
  model: string;
  /** The request's estimated input (request-facts.ts). */
  inputTokensEstimate: number;
  maxTokens: number;
  /** The request uses cache_control: input is reserved at the cache-write price. */
  promptCaching?: boolean;
  /** ... with `ttl: "1h"`: at the 1-hour cache-write price. */
  longCacheWrites?: boolean;
  /**
   * Near the edge of a budget, max_tokens may be capped to what remains, but not below this
   * (or the request's own max_tokens, if smaller); below it the request is refused. Unset: all
   * or nothing (the whole max_tokens is held or the request refused).
   */
  minOutputTokens?: number;
  /**
   * What earlier model calls of the same request already spent (USD): the calls of one agent
   * turn share the per-request budget.
   */
  requestSpentUsd?: number;
}

/** The hold for one Messages API request: its facts' input estimate and its max_tokens. */
export function reserveRequestFor(
  request: { model: string; max_tokens: number },
  facts: Pick<RequestFacts, "inputTokens" | "promptCaching" | "longCacheWrites">,
  ids: { requestId: string; userId: string; sessionId: string | null },
  minOutputTokens?: number,
): ReserveRequest {
  return {
    ...ids,
    model: request.model,
    inputTokensEstimate: facts.inputTokens,
    maxTokens: request.max_tokens,
    promptCaching: facts.promptCaching,
    longCacheWrites: facts.longCacheWrites,
    minOutputTokens,
  };
}

/** A hold's cost, in µ$ ($/MTok is µ$/token). */
export interface HoldPrice {
  /** Input at the model's (worst) input price: cache-write price when the request may write. */
  inputCost: number;
  /** µ$ per output token. */
  outPrice: number;
}

export function holdPrice(p: ModelInfo, req: ReserveRequest): HoldPrice {
  return {
    inputCost: Math.max(0, Math.ceil(req.inputTokensEstimate)) * worstInputPerMTok(p, req),
    outPrice: p.outputPerMTok,
  };
}

/** µ$ held for `maxTokens` of output. */
export const holdAmount = (price: HoldPrice, maxTokens: number) =>
  Math.ceil(price.inputCost + maxTokens * price.outPrice);

/** Most output tokens `micros` covers after the input (0 when it does not cover the input). */
export function tokensWithin(price: HoldPrice, micros: number): number {
  if (price.outPrice <= 0) return Number.MAX_SAFE_INTEGER;
  let n = Math.max(0, Math.floor((micros - price.inputCost) / price.outPrice));
  while (n > 0 && holdAmount(price, n) > micros) n--;
  return n;
}

/** A hold on the budgets, returned by `reserve` and handed back to `settle`. */
export class Reservation {
  /** @internal */ settled = false;
  /** @internal Holds added by `topUp` for a dearer fallback model; released at settlement. */
  readonly extras: Reservation[] = [];
  constructor(
    readonly id: string,
    readonly userId: string,
    readonly sessionId: string | null,
    readonly model: string,
    /** max_tokens to send upstream: the request's, or less when a budget capped it. */
    readonly maxTokens: number,
    /** The worst-case cost held. */
    readonly reservedUsd: number,
    /** @internal */ readonly lines: readonly Line[],
    /** @internal The engine holding it. */ readonly engine: SeededEngine | null,
    /** @internal */ readonly amount: number,
    /** The budget that capped max_tokens below the request's, if one did. */
    readonly cappedBy: BudgetName | null = null,
    /** @internal What the hold was priced from, for top-ups. */
    readonly request?: ReserveRequest,
    /** @internal µ$ the per-request budget allows this request (Infinity without one). */
    readonly requestLimit = Infinity,
  ) {}

  /** µ$ held in all, top-ups included. */
  get held(): number {
    return this.extras.reduce((sum, r) => sum + r.amount, this.amount);
  }
}
