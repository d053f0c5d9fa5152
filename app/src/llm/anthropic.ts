/**
 * The real upstream: the Anthropic Messages API through the official SDK.
 */
// The base client plus the one resource we call: the full `Anthropic` class pulls in every API
// resource (beta, files, skills, ...), about 300 KiB more in the Lambda bundle.
import { BaseAnthropic } from "@anthropic-ai/sdk/client";
import { Messages } from "@anthropic-ai/sdk/resources/messages/messages";
import {
  APIError,
  APIUserAbortError,
  APIConnectionTimeoutError,
} from "@anthropic-ai/sdk/core/error";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "./types";
import { UpstreamError } from "./types";
import { createNodeFetch } from "./node-fetch";
import { errorMessage } from "../errors";

export interface AnthropicProviderOptions {
  apiKey: string;
  baseURL?: string;
  timeoutMs: number;
  /**
   * SDK-level retries. Off by default: ResilientProvider owns the one retry loop (retry-after,
   * backoff, deadline, fallback), and SDK retries underneath it would multiply attempts.
   * @default 0
   */
  maxRetries?: number;
  /**
   * The HTTP client under the SDK: "node" (node:http keep-alive agents, ./node-fetch.ts; about
   * 150 µs less CPU per call) or "global" (the runtime's fetch). @default "node"
   */
  http?: "node" | "global";
}

export class AnthropicProvider implements LlmProvider {
  readonly synthetic = false;
  private readonly client: { messages: Messages };

  constructor(options: AnthropicProviderOptions) {
    const base = new BaseAnthropic({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 0,
      ...(options.http === "global" ? {} : { fetch: createNodeFetch() }),
    });
    this.client = { messages: new Messages(base) };
  }

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    try {
      return await this.client.messages.create(
        { ...request, stream: false },
        requestOptions(options),
      );
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    let stream: AsyncIterable<StreamEvent>;
    try {
      stream = await this.client.messages.create(
        { ...request, stream: true },
        requestOptions(options),
      );
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
  // Keys left out rather than set to undefined: the SDK rejects `timeout: undefined`.
  return {
    signal: options.signal,
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
    ...(options.requestId ? { headers: { "x-agent-request-id": options.requestId } } : {}),
  };
}

type UpstreamErrorWithCode = UpstreamError & { errorCode?: string };

/**
 * The API's machine-readable `error.details.error_code` (e.g. `enforced_spend_limit_reached`),
 * kept on the UpstreamError so the retry loop can tell a spend cap from an ordinary 429.
 */
export function upstreamErrorCode(err: unknown): string | undefined {
  return err instanceof UpstreamError ? (err as UpstreamErrorWithCode).errorCode : undefined;
}

/** Keep the upstream's status and error type, so clients see what Anthropic said. */
export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof APIUserAbortError) return new UpstreamError(499, "aborted", "request aborted");
  if (err instanceof APIConnectionTimeoutError)
    return new UpstreamError(504, "timeout_error", "upstream model API timed out");
  if (err instanceof APIError) {
    const body = err.error as
      | { error?: { type?: string; message?: string; details?: { error_code?: unknown } } }
      | undefined;
    const type =
      body?.error?.type ?? err.type ?? (err.status ? "api_error" : "api_connection_error");
    const message = body?.error?.message ?? err.apiMessage ?? err.message;
    const headers: Record<string, string> = {};
    for (const h of ["retry-after", "retry-after-ms", "x-should-retry"]) {
      const v = err.headers?.get(h);
      if (v) headers[h] = v;
    }
    // No status: a connection failure or an `event: error` inside a stream.
    const status = err.status ?? (type === "overloaded_error" ? 529 : 502);
    const upstream = new UpstreamError(status, type, message, headers, true);
    const code = body?.error?.details?.error_code;
    if (typeof code === "string") (upstream as UpstreamErrorWithCode).errorCode = code;
    return upstream;
  }
  return new UpstreamError(
    502,
    "api_error",
    `upstream call failed: ${errorMessage(err)}`,
    {},
    true,
  );
}
