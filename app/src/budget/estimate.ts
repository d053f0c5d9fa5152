/**
 * The service's one estimate of a request's input tokens, made before the upstream call without a
 * tokenizer: about four characters a token over messages, system and tools. A request's facts
 * (request-facts.ts) carry it to the rate limiter (tokens per minute), the budget hold and the
 * router; batch pricing and the charge for a call cut by shutdown use it too.
 *
 * Only the input side of a budget hold is an estimate (the output side is bounded exactly by
 * max_tokens), so the estimate leans high where chars/4 is known to run low: characters outside
 * ASCII (CJK text runs near one token per character) count one token each, and JSON keys count
 * as text. Base64 image data would be wildly over-counted at chars/4, so an image counts as
 * IMAGE_TOKENS instead.
 */

/** Anthropic's estimate for an image at the largest size sent unscaled (about 1.15 megapixels). */
export const IMAGE_TOKENS = 1_600;
/** Framing tokens per message (role markers and block boundaries). */
const PER_MESSAGE_TOKENS = 4;
/** No request holds more than the largest context window; a huge base64 PDF must not exceed it. */
const MAX_ESTIMATE = 1_000_000;

export interface InputEstimate {
  tokens: number;
  /** The request marks blocks with cache_control: input may be billed at the cache-write price. */
  promptCaching: boolean;
  /** One of those marks asks for a 1-hour cache (`ttl: "1h"`), whose writes cost more. */
  longCacheWrites: boolean;
}

interface RequestParts {
  messages?: unknown;
  system?: unknown;
  tools?: unknown;
  /** Automatic caching: one mark for the whole request. */
  cache_control?: unknown;
}

export function estimateInput(body: RequestParts): InputEstimate {
  let ascii = 0;
  let other = 0;
  let fixed = 0;
  let promptCaching = false;
  let longCacheWrites = false;
  const mark = (cacheControl: unknown) => {
    if (!cacheControl) return;
    promptCaching = true;
    if ((cacheControl as { ttl?: unknown }).ttl === "1h") longCacheWrites = true;
  };
  const text = (s: string) => {
    const nonAscii = s.replace(/[\x00-\x7f]/g, "").length;
    other += nonAscii;
    ascii += s.length - nonAscii;
  };
  const walk = (value: unknown, depth: number): void => {
    if (depth > 64 || value === null || value === undefined) return;
    if (typeof value === "string") return text(value);
    if (typeof value === "number" || typeof value === "boolean") return text(String(value));
    if (Array.isArray(value)) {
      for (const v of value) walk(v, depth + 1);
      return;
    }
    if (typeof value !== "object") return;
    const obj = value as Record<string, unknown>;
    if (obj.type === "image") {
      fixed += IMAGE_TOKENS;
      mark(obj.cache_control);
      return;
    }
    for (const [k, v] of Object.entries(obj)) {
      if (k === "cache_control") mark(v);
      text(k);
      walk(v, depth + 1);
    }
  };
  mark(body.cache_control);
  walk(body.system, 0);
  walk(body.messages, 0);
  walk(body.tools, 0);
  const messages = Array.isArray(body.messages) ? body.messages.length : 0;
  const tokens = Math.ceil(ascii / 4) + other + fixed + messages * PER_MESSAGE_TOKENS;
  return { tokens: Math.min(MAX_ESTIMATE, tokens), promptCaching, longCacheWrites };
}

/** Estimated input tokens of a Messages API request body (messages + system + tools). */
export function estimateInputTokens(body: RequestParts): number {
  return estimateInput(body).tokens;
}
