import type { FullUsage } from "../llm/stream-usage";
import type { MessageResponse } from "../llm/types";

/**
 * A cached upstream answer: the JSON message, or a complete stream as the client got it (its SSE
 * frames as one text) with the model that answered and its usage (what a hit spares is priced
 * from them). A stream is kept as text, not as its parsed events: a hit then parses one string
 * and writes it, where it parsed ~70 event objects and framed each again (`npm run bench --
 * --only cache`, 2026-12-07, side by side: SSE replay p50 1.28 and 1.44 ms with events, 1.17 to
 * 1.38 ms in four runs as text). Keeping the frames while the stream runs costs the young
 * generation as much as keeping the events did (`--trace-gc` at 256 streams: scavenge p50 31
 * and 29 ms; 22 ms with neither kept).
 */
export type CachedResponse =
  | { kind: "json"; message: MessageResponse }
  | { kind: "sse-text"; text: string; model: string; usage: FullUsage };

export interface ResponseCache {
  readonly kind: "redis" | "memory";
  /** A miss, a Redis outage and a corrupt entry all return null: the cache never fails a request. */
  get(key: string): Promise<CachedResponse | null>;
  /**
   * `text`, when the caller has it, is `value` as JSON (JSON.stringify(value)): stored as is
   * instead of serializing the value again (jsonEntryText).
   */
  set(key: string, value: CachedResponse, ttlSeconds: number, text?: string): Promise<void>;
}

/**
 * A JSON answer's cache entry as text, from the message's own JSON: the route has serialized the
 * message for its client already, and this is what JSON.stringify({ kind: "json", message })
 * gives (the same keys in the same order), without serializing the message a second time.
 */
export function jsonEntryText(messageText: string): string {
  return `{"kind":"json","message":${messageText}}`;
}
