/**
 * Usage the service will charge for, whatever the upstream reports: no more output than the
 * max_tokens it admitted (and held budget for), and no more input than the model's context window
 * holds. A misbehaving or compromised upstream (or a proxy in between) that reports more cannot
 * drive a user past a budget; the difference is logged, since it means something upstream is wrong.
 */
import type { FullUsage } from "./stream-usage";

export interface UsageBounds {
  /** max_tokens as sent upstream. */
  maxTokens: number;
  /** The model's context window (input of every kind together). */
  contextWindow: number;
}

export interface BoundedUsage {
  usage: FullUsage;
  /** What was reported, when it was out of bounds (for the log line); null otherwise. */
  reported: FullUsage | null;
}

export function boundUsage(usage: FullUsage, bounds: UsageBounds): BoundedUsage {
  const cap = (n: number, max: number) => Math.max(0, Math.min(Number.isFinite(n) ? n : 0, max));
  const output = cap(usage.output_tokens, Math.max(0, bounds.maxTokens));
  // Input kinds share the window; the dearest (cache writes, then plain input) are kept first,
  // so clamping never charges less than an honest answer of that size would cost.
  let room = Math.max(0, bounds.contextWindow);
  const writes = cap(usage.cache_creation_input_tokens, room);
  room -= writes;
  const input = cap(usage.input_tokens, room);
  room -= input;
  const reads = cap(usage.cache_read_input_tokens, room);
  const unchanged =
    output === usage.output_tokens &&
    writes === usage.cache_creation_input_tokens &&
    input === usage.input_tokens &&
    reads === usage.cache_read_input_tokens;
  if (unchanged) return { usage, reported: null };
  const split = usage.cache_creation;
  return {
    usage: {
      input_tokens: input,
      output_tokens: output,
      cache_creation_input_tokens: writes,
      cache_read_input_tokens: reads,
      cache_creation: split
        ? {
            ephemeral_1h_input_tokens: Math.min(split.ephemeral_1h_input_tokens ?? 0, writes),
            ephemeral_5m_input_tokens: Math.min(split.ephemeral_5m_input_tokens ?? 0, writes),
          }
        : split,
    },
    reported: usage,
  };
}
