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
  set(key: string, value: CachedResponse, ttlSeconds: number): Promise<void>;
}
