/**
 * One LlmProvider over any of the official SDK clients: the Anthropic API's (`BaseAnthropic`),
 * `AnthropicBedrock` and `AnthropicVertex`. They share the Messages resource; how a request goes
 * on the wire (Bedrock's `/model/{id}/invoke` with SigV4, Vertex's `:rawPredict` with OAuth, the
 * version and betas moved into the body) is their SDKs' business. What this adds on every upstream:
 *
 * - Model ids: the table's id becomes the cloud's (`modelId`), and the answer names the table id
 *   again, so prices, metric labels and fallback chains are the same whatever cloud served.
 * - The client's `anthropic-beta` and `anthropic-version` go upstream as they came, except where
 *   the platform fixes the version (`platformVersion`: Bedrock and Vertex each accept one value).
 * - Streams are read as raw SSE events, not through the SDK's iterator, which drops `ping`
 *   (`Stream.fromSSEResponse` in @anthropic-ai/sdk/core/streaming.ts skips `sse.event === 'ping'`):
 *   the client gets every event the upstream sent, in its order. Over node-fetch.ts (the default)
 *   they are read from the socket's Node stream (sse-reader.ts `readSse`) and keep their `data:` text
 *   for the client; over another fetch, through the SDK's `Stream.rawEvents`.
 * - Failures come out as UpstreamError (sdk-errors.ts).
 * - Given a `wire` (anthropic-wire.ts: the Anthropic API while the service traces nothing), Messages
 *   calls are sent by it, the same request without the SDK's per-call machinery; the rest is as above.
 */
import type { Messages } from "@anthropic-ai/sdk/resources/messages/messages";
import { Stream } from "@anthropic-ai/sdk/core/streaming";
import type {
  CallOptions,
  CountTokensRequest,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "./types";
import { UpstreamError } from "./types";
import { streamError, toUpstreamError } from "./sdk-errors";
import { takeNodeBody } from "./node-fetch";
import type { MessagesWire } from "./anthropic-wire";
import type { IncomingMessage } from "node:http";
import { keepWireData, markReadPosition } from "./sse";
import { carries, lastCarrying, readSse, type SseMessage } from "./sse-reader";
import type { UpstreamKind } from "./upstream-kinds";

/** What a provider calls: the Messages resource (Bedrock's SDK removes `countTokens` from it). */
export type MessagesApi = Pick<Messages, "create"> & Partial<Pick<Messages, "countTokens">>;

export type TokenCounter = (request: CountTokensRequest, options: CallOptions) => Promise<number>;

export interface SdkProviderOptions {
  upstream: UpstreamKind;
  messages: MessagesApi;
  /**
   * The upstream's id for a model the request names (a table id, or an id passed through). Given:
   * answers name the requested id again. @default the id itself, and the upstream's answer as it is
   */
  modelId?: (model: string) => string;
  /** The only `anthropic-version` the upstream accepts: it replaces the client's. */
  platformVersion?: string;
  /** Counts tokens some other way than `messages.countTokens` (Bedrock's CountTokens API). */
  countTokens?: TokenCounter;
  /** The HTTP status of a stream's `event: error` by its type, where the type says more than 502. */
  streamErrorStatus?: (type: string) => number | undefined;
  /** Sends Messages calls instead of `messages.create`: the same request (anthropic-wire.ts). */
  wire?: MessagesWire;
}

export class SdkProvider implements LlmProvider {
  readonly synthetic = false;
  readonly upstream: UpstreamKind;

  constructor(private readonly o: SdkProviderOptions) {
    this.upstream = o.upstream;
  }

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    let message: MessageResponse;
    const body = { ...request, model: this.wireModel(request.model), stream: false as const };
    try {
      // The Lambda bundles call through the SDK: the define drops the wire there.
      message =
        process.env.AGENT_BUNDLE_LAMBDA !== "1" && this.o.wire
          ? ((await this.o.wire.create(body, this.headers(options), options)) as MessageResponse)
          : await this.o.messages.create(body, this.requestOptions(options));
    } catch (err) {
      throw toUpstreamError(err);
    }
    return this.o.modelId ? { ...message, model: request.model } : message;
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    let response: Response | undefined;
    let node: IncomingMessage | undefined;
    const body = { ...request, model: this.wireModel(request.model), stream: true as const };
    try {
      if (process.env.AGENT_BUNDLE_LAMBDA !== "1" && this.o.wire)
        node = await this.o.wire.stream(body, this.headers(options), options);
      else response = await this.o.messages.create(body, this.requestOptions(options)).asResponse();
    } catch (err) {
      throw toUpstreamError(err);
    }
    // Aborted when the consumer stops early: the SDK then cancels the body it is reading.
    const controller = new AbortController();
    // The Lambda bundles read through the SDK (AGENT_BUNDLE_LAMBDA, scripts/build.mjs): a Lambda
    // instance serves one request at a time, and the reader is code its size budget can spare.
    // The define is tested again where readSse is called: esbuild drops the reader (and
    // eventsource-parser) only when that call sits in a branch it can fold away.
    if (process.env.AGENT_BUNDLE_LAMBDA !== "1" && response) node = takeNodeBody(response);
    let finished = false;
    try {
      const batches: AsyncIterable<SseMessage[]> =
        process.env.AGENT_BUNDLE_LAMBDA !== "1" && node
          ? readSse(node)
          : oneByOne(Stream.rawEvents(response!, controller));
      for await (const batch of batches) {
        // Over the Node reader a batch is one read: its last event is marked as such (sse.ts),
        // the others as having more behind them, so the route writes the read's events at once.
        // (The Lambda bundles read through the SDK: the define drops the marking there.)
        const last =
          process.env.AGENT_BUNDLE_LAMBDA !== "1" && node ? lastCarrying(batch) : undefined;
        for (const sse of batch) {
          if (sse.event === "error") throw streamError(sse.data, this.o.streamErrorStatus);
          if (!carries(sse)) continue;
          const event = JSON.parse(sse.data) as StreamEvent;
          if (event.type === "message_start" && this.o.modelId)
            event.message = { ...event.message, model: request.model };
          else if (node) keepWireData(event, sse.event, sse.data);
          if (process.env.AGENT_BUNDLE_LAMBDA !== "1" && node)
            markReadPosition(event, sse === last);
          yield event;
        }
      }
      finished = true;
    } catch (err) {
      finished = true;
      throw toUpstreamError(err);
    } finally {
      if (!finished) {
        controller.abort();
        node?.destroy();
      }
    }
  }

  async countTokens(request: CountTokensRequest, options: CallOptions = {}): Promise<number> {
    if (this.o.countTokens) return this.o.countTokens(request, options);
    const count = this.o.messages.countTokens;
    if (!count) {
      throw new UpstreamError(
        400,
        "invalid_request_error",
        `count_tokens is not available on the ${this.upstream} upstream (LLM_UPSTREAM=${this.upstream})`,
      );
    }
    try {
      const counted = await count.call(
        this.o.messages,
        { ...request, model: this.wireModel(request.model) },
        this.requestOptions(options),
      );
      return counted.input_tokens;
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  /** The id the upstream knows the model by. */
  wireModel(model: string): string {
    return this.o.modelId ? this.o.modelId(model) : model;
  }

  /** The headers sent with a call: our request id, the client's beta and version (or the platform's). */
  headers(options: CallOptions): Record<string, string> {
    const headers: Record<string, string> = {};
    if (options.requestId) headers["x-agent-request-id"] = options.requestId;
    const version = this.o.platformVersion ?? options.forward?.version;
    if (version) headers["anthropic-version"] = version;
    if (options.forward?.beta) headers["anthropic-beta"] = options.forward.beta;
    return headers;
  }

  private requestOptions(options: CallOptions) {
    // Keys left out rather than set to undefined: the SDK rejects `timeout: undefined`.
    return {
      signal: options.signal,
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      headers: this.headers(options),
    };
  }
}

/** The SDK's events, each as a batch of one. */
async function* oneByOne(events: AsyncIterable<SseMessage>): AsyncGenerator<SseMessage[]> {
  for await (const sse of events) yield [sse];
}
