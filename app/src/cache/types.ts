import type { MessageResponse, StreamEvent } from "../llm/types";

/** A cached upstream answer: the JSON message, or the exact SSE events of a complete stream. */
export type CachedResponse =
  { kind: "json"; message: MessageResponse } | { kind: "sse"; events: StreamEvent[] };

export interface ResponseCache {
  readonly kind: "redis" | "memory";
  /** A miss, a Redis outage and a corrupt entry all return null: the cache never fails a request. */
  get(key: string): Promise<CachedResponse | null>;
  set(key: string, value: CachedResponse, ttlSeconds: number): Promise<void>;
}
