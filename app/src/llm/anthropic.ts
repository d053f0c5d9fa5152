/**
 * The Anthropic API upstream (LLM_UPSTREAM=anthropic with ANTHROPIC_API_KEY) through the official
 * SDK. The request path (model ids, forwarded headers, raw SSE with pings) is SdkProvider's; with
 * `calls: "wire"`, Messages calls go out through anthropic-wire.ts (the SDK's request, sent lean).
 */
// The base client plus the one resource we call: the full `Anthropic` class pulls in every API
// resource (beta, files, skills, ...), about 300 KiB more in the Lambda bundle.
import { BaseAnthropic } from "@anthropic-ai/sdk/client";
import { Messages } from "@anthropic-ai/sdk/resources/messages/messages";
import { SdkProvider } from "./sdk-provider";
import { createNodeFetch, nodeAgents } from "./node-fetch";
import { MessagesWire } from "./anthropic-wire";

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
  /**
   * How Messages calls go out over the "node" client: "sdk", through the SDK's request path (its
   * call span, and the trace context it sends upstream, while tracing is on), or "wire", the same
   * request sent by anthropic-wire.ts at under half the CPU. upstream.ts picks "wire" while
   * the service traces nothing. count_tokens always goes through the SDK. @default "sdk"
   */
  calls?: "sdk" | "wire";
}

export class AnthropicProvider extends SdkProvider {
  constructor(options: AnthropicProviderOptions) {
    const agents = options.http === "global" ? undefined : nodeAgents();
    const base = new BaseAnthropic({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 0,
      ...(agents ? { fetch: createNodeFetch(agents) } : {}),
    });
    // The Lambda bundles call through the SDK (one request per instance; the define drops the wire).
    const wire =
      process.env.AGENT_BUNDLE_LAMBDA !== "1" && agents && options.calls === "wire"
        ? new MessagesWire(base, agents)
        : undefined;
    // Model ids go as they are, and the answer's `model` is the API's own.
    super({ upstream: "anthropic", messages: new Messages(base), wire });
  }
}
