/**
 * The upstream model provider as the rest of the service sees it. Implementations: the Anthropic
 * API, Amazon Bedrock and Vertex AI through the official SDKs (llm/upstream.ts picks one from
 * LLM_UPSTREAM), and an offline synthetic model used when LLM_UPSTREAM is anthropic and no
 * ANTHROPIC_API_KEY is configured (clearly labelled as synthetic in logs and responses).
 */
import type Anthropic from "@anthropic-ai/sdk";

export type MessageRequest = Anthropic.MessageCreateParamsNonStreaming;
export type MessageResponse = Anthropic.Message;
/**
 * A keep-alive the API sends inside a stream (after `content_block_start`, and while a long block
 * is generated). The SDK's own stream iterator drops it; the providers here pass it on, so a
 * client behind this service sees the stream the API sent.
 */
export interface PingEvent {
  type: "ping";
}
export type StreamEvent = Anthropic.RawMessageStreamEvent | PingEvent;
export type Usage = Anthropic.Usage;
export type CountTokensRequest = Anthropic.MessageCountTokensParams;

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
  /**
   * The client's `anthropic-beta` and `anthropic-version`, sent upstream as they came (Bedrock and
   * Vertex take them in the body: their SDKs move them there, llm/sdk-provider.ts).
   */
  forward?: ForwardedHeaders;
}

export interface ForwardedHeaders {
  /** `anthropic-beta` as the client sent it (comma-separated names). */
  beta?: string;
  /** `anthropic-version` as the client sent it. */
  version?: string;
}

export interface LlmProvider {
  /** True for the offline model: responses are not real model output. */
  readonly synthetic: boolean;
  createMessage(request: MessageRequest, options?: CallOptions): Promise<MessageResponse>;
  /** Raw SSE events in the order the Messages API sends them. */
  streamMessage(request: MessageRequest, options?: CallOptions): AsyncIterable<StreamEvent>;
  /**
   * The input tokens of a request, counted by the upstream (`POST /v1/messages/count_tokens` or
   * its cloud's equivalent). Absent on the offline model: the route estimates instead.
   */
  countTokens?(request: CountTokensRequest, options?: CallOptions): Promise<number>;
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
