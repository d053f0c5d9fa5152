/**
 * The upstream model provider as the rest of the service sees it. Two implementations:
 * the Anthropic API through the official SDK, and an offline synthetic model used when no
 * ANTHROPIC_API_KEY is configured (clearly labelled as synthetic in logs and responses).
 */
import type Anthropic from "@anthropic-ai/sdk";

export type MessageRequest = Anthropic.MessageCreateParamsNonStreaming;
export type MessageResponse = Anthropic.Message;
export type StreamEvent = Anthropic.RawMessageStreamEvent;
export type Usage = Anthropic.Usage;

export interface CallOptions {
  /** Aborts the upstream call (client went away, deadline passed, shutdown). */
  signal?: AbortSignal;
  /** Per-attempt timeout in milliseconds. */
  timeoutMs?: number;
  /** Our request id, forwarded for correlation. */
  requestId?: string;
  /**
   * Asked before a fallback to a model other than the request's own: false skips that model
   * (the request's budget hold could not be raised to that model's price).
   */
  admitModel?(model: string): Promise<boolean>;
}

export interface LlmProvider {
  /** True for the offline model: responses are not real model output. */
  readonly synthetic: boolean;
  createMessage(request: MessageRequest, options?: CallOptions): Promise<MessageResponse>;
  /** Raw SSE events in the order the Messages API sends them. */
  streamMessage(request: MessageRequest, options?: CallOptions): AsyncIterable<StreamEvent>;
}

/** A failure reported by the upstream API (or our offline model) with Anthropic's error shape. */
export class UpstreamError extends Error {
  constructor(
    public readonly status: number,
    public readonly type: string,
    message: string,
    public readonly headers: Record<string, string> = {},
    /**
     * The status, type and message came from the upstream (its body may echo anything: a key,
     * an HTML page): never shown to a client as they are (llm/upstream-errors.ts).
     */
    public readonly remote = false,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}
