/**
 * The Anthropic API upstream (LLM_UPSTREAM=anthropic with ANTHROPIC_API_KEY) through the official
 * SDK. The request path (model ids, forwarded headers, raw SSE with pings) is SdkProvider's.
 */
// The base client plus the one resource we call: the full `Anthropic` class pulls in every API
// resource (beta, files, skills, ...), about 300 KiB more in the Lambda bundle.
import { BaseAnthropic } from "@anthropic-ai/sdk/client";
import { Messages } from "@anthropic-ai/sdk/resources/messages/messages";
import { SdkProvider } from "./sdk-provider";
import { createNodeFetch } from "./node-fetch";

export { toUpstreamError, upstreamErrorCode } from "./sdk-errors";

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

export class AnthropicProvider extends SdkProvider {
  constructor(options: AnthropicProviderOptions) {
    const base = new BaseAnthropic({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 0,
      ...(options.http === "global" ? {} : { fetch: createNodeFetch() }),
    });
    // Model ids go as they are, and the answer's `model` is the API's own.
    super({ upstream: "anthropic", messages: new Messages(base) });
  }
}
