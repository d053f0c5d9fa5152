/**
 * Follows a stream of Messages API events and keeps the usage they report, so spend is known
 * even when a stream ends early (client gone, upstream error).
 */
import type { MessageResponse, StreamEvent } from "./types";
import type { CacheCreation, TokenUsage } from "./models";

/** Usage with every field the ledger stores present, and the split of cache writes by ttl (priced apart). */
export interface FullUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation?: CacheCreation | null;
}

/** The usage of a whole Messages API answer, with every field present. */
export function fullUsage(u: MessageResponse["usage"]): FullUsage {
  return {
    input_tokens: u.input_tokens ?? 0,
    output_tokens: u.output_tokens ?? 0,
    cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
    cache_creation: u.cache_creation ?? null,
  };
}

export class StreamTracker {
  readonly usage: FullUsage = {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
  model: string | null = null;
  completed = false;
  /** Characters of generated text and tool input seen: the estimate when the final count never came. */
  private generatedChars = 0;
  private sawFinalUsage = false;

  observe(event: StreamEvent): void {
    switch (event.type) {
      case "message_start": {
        this.model = event.message.model;
        Object.assign(this.usage, fullUsage(event.message.usage));
        break;
      }
      case "content_block_delta": {
        const d = event.delta as {
          type: string;
          text?: string;
          partial_json?: string;
          thinking?: string;
        };
        this.generatedChars += (d.text ?? d.partial_json ?? d.thinking ?? "").length;
        break;
      }
      case "message_delta": {
        const u = event.usage as Partial<TokenUsage>;
        if (typeof u.output_tokens === "number") {
          this.usage.output_tokens = u.output_tokens;
          this.sawFinalUsage = true;
        }
        if (typeof u.input_tokens === "number") this.usage.input_tokens = u.input_tokens;
        if (typeof u.cache_creation_input_tokens === "number")
          this.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
        if (typeof u.cache_read_input_tokens === "number")
          this.usage.cache_read_input_tokens = u.cache_read_input_tokens;
        if (u.cache_creation) this.usage.cache_creation = { ...u.cache_creation };
        break;
      }
      case "message_stop":
        this.completed = true;
        break;
    }
  }

  /** Usage to charge: the reported figures, or an estimate (4 characters a token) for a cut stream. */
  finalUsage(): FullUsage {
    if (this.sawFinalUsage) return { ...this.usage };
    return {
      ...this.usage,
      output_tokens: Math.max(this.usage.output_tokens, Math.ceil(this.generatedChars / 4)),
    };
  }
}

/** Rebuild the final message from a complete event list (for sessions that stream). */
export function assembleMessage(events: StreamEvent[]): MessageResponse | null {
  let message: MessageResponse | null = null;
  const jsonParts = new Map<number, string>();
  for (const event of events) {
    if (event.type === "message_start") {
      message = { ...event.message, content: [] } as MessageResponse;
    } else if (!message) {
      continue;
    } else if (event.type === "content_block_start") {
      message.content[event.index] = structuredClone(
        event.content_block,
      ) as MessageResponse["content"][number];
    } else if (event.type === "content_block_delta") {
      const block = message.content[event.index] as unknown as Record<string, unknown> | undefined;
      const d = event.delta as unknown as Record<string, string>;
      if (!block) continue;
      if (d.type === "text_delta") block.text = String(block.text ?? "") + d.text;
      else if (d.type === "input_json_delta")
        jsonParts.set(event.index, (jsonParts.get(event.index) ?? "") + d.partial_json);
      else if (d.type === "thinking_delta")
        block.thinking = String(block.thinking ?? "") + d.thinking;
      else if (d.type === "signature_delta") block.signature = d.signature;
    } else if (event.type === "content_block_stop") {
      const json = jsonParts.get(event.index);
      const block = message.content[event.index] as unknown as Record<string, unknown> | undefined;
      if (block && json !== undefined) block.input = json ? JSON.parse(json) : {};
    } else if (event.type === "message_delta") {
      message.stop_reason = event.delta.stop_reason;
      message.stop_sequence = event.delta.stop_sequence;
      message.usage = { ...message.usage, ...(event.usage as object) } as MessageResponse["usage"];
    }
  }
  return message;
}
