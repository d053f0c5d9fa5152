/**
 * What a request asks of the model, worked out once per request: its estimated input (the one
 * estimator, budget/estimate.ts), its output bound, the model it names and whether it writes to
 * the prompt cache. A route declares how to read its body (`messageFacts` here for a Messages
 * request; the session and batch routes have their own) in its middleware chain
 * (routes/chain.ts), which puts the facts in the context (`facts`) before the rate limiter reserves
 * their tokens; the route then prices its budget hold and routes the model from the same facts.
 *
 * The body is read before the route has validated it: facts of a malformed body are zero, and the
 * route answers 400 anyway.
 */
import { estimateInput } from "./budget/estimate";

export interface RequestFacts {
  /** Estimated input tokens: messages, system and tools. */
  inputTokens: number;
  /** Most output tokens the request may generate: its max_tokens (0 when it names none). */
  maxTokens: number;
  /** The model the request names, before routing; null when it names none (or several: a batch). */
  model: string | null;
  /** The request marks blocks with cache_control: input may be billed at the cache-write price. */
  promptCaching: boolean;
  /** One of those marks asks for a 1-hour cache (`ttl: "1h"`), whose writes cost more. */
  longCacheWrites: boolean;
  /** A batch: the facts of each of its requests, in order (the totals above are their sums). */
  requests?: readonly RequestFacts[];
  /**
   * The answer is asked for as a stream (`"stream": true`): the route chain refuses it before any
   * other work while the process relays all the streams it can (overload.ts, StreamGate).
   */
  stream?: boolean;
}

/** The facts of a body that could not be read: nothing to reserve. */
export const NO_FACTS: RequestFacts = Object.freeze({
  inputTokens: 0,
  maxTokens: 0,
  model: null,
  promptCaching: false,
  longCacheWrites: false,
});

/** Tokens the request may use, reserved against RATE_LIMIT_TPM: input estimate plus output bound. */
export const factTokens = (facts: RequestFacts) => facts.inputTokens + facts.maxTokens;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The facts of a Messages API request body. */
export function messageFacts(body: unknown): RequestFacts {
  if (!isRecord(body)) return NO_FACTS;
  const estimate = estimateInput(body);
  return {
    inputTokens: estimate.tokens,
    maxTokens: typeof body.max_tokens === "number" && body.max_tokens > 0 ? body.max_tokens : 0,
    model: typeof body.model === "string" ? body.model : null,
    promptCaching: estimate.promptCaching,
    longCacheWrites: estimate.longCacheWrites,
    stream: body.stream === true,
  };
}

/** The facts of several requests sent as one (a batch): their sums, and each one's own. */
export function combinedFacts(requests: readonly RequestFacts[]): RequestFacts {
  let inputTokens = 0;
  let maxTokens = 0;
  for (const r of requests) {
    inputTokens += r.inputTokens;
    maxTokens += r.maxTokens;
  }
  return {
    inputTokens,
    maxTokens,
    model: null,
    promptCaching: requests.some((r) => r.promptCaching),
    longCacheWrites: requests.some((r) => r.longCacheWrites),
    requests,
  };
}
