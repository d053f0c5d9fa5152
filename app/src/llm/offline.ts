/**
 * The offline model used when no ANTHROPIC_API_KEY is configured, so `npm start` works on a
 * laptop with nothing else. Its answers are deterministic, free, and say they are synthetic.
 */
import { randomBytes } from "node:crypto";
import { SYNTHETIC_MODEL } from "./models";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "./types";
import { UpstreamError } from "./types";

export const SYNTHETIC_NOTICE = "[synthetic response: no ANTHROPIC_API_KEY is configured]";

export class OfflineProvider implements LlmProvider {
  readonly synthetic = true;

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    if (options.signal?.aborted) throw new UpstreamError(499, "aborted", "request aborted");
    return this.compose(request);
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    const message = this.compose(request);
    const text = message.content[0]?.type === "text" ? message.content[0].text : "";
    yield {
      type: "message_start",
      message: {
        ...message,
        content: [],
        stop_reason: null,
        usage: { ...message.usage, output_tokens: 1 },
      },
    } as StreamEvent;
    yield {
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "", citations: null },
    } as StreamEvent;
    for (const chunk of text.match(/\S+\s*/g) ?? []) {
      if (options.signal?.aborted) throw new UpstreamError(499, "aborted", "request aborted");
      yield {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text: chunk },
      } as StreamEvent;
    }
    yield { type: "content_block_stop", index: 0 } as StreamEvent;
    yield {
      type: "message_delta",
      delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: message.usage.output_tokens },
    } as StreamEvent;
    yield { type: "message_stop" } as StreamEvent;
  }

  private compose(request: MessageRequest): MessageResponse {
    const prompt = lastUserText(request);
    const words = `${SYNTHETIC_NOTICE} You said: ${prompt.slice(0, 400)}`
      .split(/\s+/)
      .filter(Boolean);
    const outputLimit = Math.max(1, request.max_tokens);
    const truncated = words.length > outputLimit;
    const text = (truncated ? words.slice(0, outputLimit) : words).join(" ");
    const inputChars =
      JSON.stringify(request.messages).length + JSON.stringify(request.system ?? "").length;
    return {
      id: `msg_synthetic_${randomBytes(12).toString("hex")}`,
      type: "message",
      role: "assistant",
      model: SYNTHETIC_MODEL,
      content: [{ type: "text", text, citations: null }],
      stop_reason: truncated ? "max_tokens" : "end_turn",
      stop_sequence: null,
      usage: {
        input_tokens: Math.ceil(inputChars / 4),
        output_tokens: Math.min(outputLimit, words.length),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    } as MessageResponse;
  }
}

function lastUserText(request: MessageRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i];
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return m.content;
    const parts: string[] = [];
    for (const block of m.content) {
      if (block.type === "text") parts.push(block.text);
      else if (block.type === "tool_result") {
        const c = block.content;
        parts.push(`tool result: ${typeof c === "string" ? c : JSON.stringify(c)}`);
      }
    }
    return parts.join(" ");
  }
  return "";
}
