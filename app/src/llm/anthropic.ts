/**
 * The real upstream: the Anthropic Messages API through the official SDK.
 */
import Anthropic, { APIError, APIUserAbortError, APIConnectionTimeoutError } from "@anthropic-ai/sdk";
import type { CallOptions, LlmProvider, MessageRequest, MessageResponse, StreamEvent } from "./types";
import { UpstreamError } from "./types";

export interface AnthropicProviderOptions {
  apiKey: string;
  baseURL?: string;
  timeoutMs: number;
  /** SDK-level retries (it honours retry-after). @default 2 */
  maxRetries?: number;
}

export class AnthropicProvider implements LlmProvider {
  readonly synthetic = false;
  private readonly client: Anthropic;

  constructor(options: AnthropicProviderOptions) {
    this.client = new Anthropic({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 2,
    });
  }

  async createMessage(request: MessageRequest, options: CallOptions = {}): Promise<MessageResponse> {
    try {
      return await this.client.messages.create({ ...request, stream: false }, requestOptions(options));
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async *streamMessage(request: MessageRequest, options: CallOptions = {}): AsyncIterable<StreamEvent> {
    let stream: AsyncIterable<StreamEvent>;
    try {
      stream = await this.client.messages.create({ ...request, stream: true }, requestOptions(options));
    } catch (err) {
      throw toUpstreamError(err);
    }
    try {
      for await (const event of stream) yield event;
    } catch (err) {
      throw toUpstreamError(err);
    }
  }
}

function requestOptions(options: CallOptions) {
  return {
    signal: options.signal,
    timeout: options.timeoutMs,
    headers: options.requestId ? { "x-agent-request-id": options.requestId } : undefined,
  };
}

/** Keep the upstream's status and error type, so clients see what Anthropic said. */
export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof APIUserAbortError) return new UpstreamError(499, "aborted", "request aborted");
  if (err instanceof APIConnectionTimeoutError) return new UpstreamError(504, "timeout_error", "upstream model API timed out");
  if (err instanceof APIError) {
    const body = err.error as { error?: { type?: string; message?: string } } | undefined;
    const type = body?.error?.type ?? err.type ?? (err.status ? "api_error" : "api_connection_error");
    const message = body?.error?.message ?? err.apiMessage ?? err.message;
    const headers: Record<string, string> = {};
    for (const h of ["retry-after", "retry-after-ms", "x-should-retry"]) {
      const v = err.headers?.get(h);
      if (v) headers[h] = v;
    }
    // No status: a connection failure or an `event: error` inside a stream.
    const status = err.status ?? (type === "overloaded_error" ? 529 : 502);
    return new UpstreamError(status, type, message, headers);
  }
  return new UpstreamError(502, "api_error", `upstream call failed: ${(err as Error)?.message ?? String(err)}`);
}
