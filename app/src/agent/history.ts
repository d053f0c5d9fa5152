/**
 * Turning a stored session history into a valid Messages API conversation. Stored histories are
 * kept exactly as they happened; the API's shape rules are applied here, at request time.
 */
import type { MessageRequest } from "../llm/types";
import type { ContentBlock } from "../store/types";

export interface HistoryMessage {
  role: "user" | "assistant";
  content: ContentBlock[];
}

type RequestMessage = MessageRequest["messages"][number];

/** Block types that may carry a prompt-cache breakpoint (thinking blocks, for one, may not). */
const CACHEABLE = new Set([
  "text",
  "image",
  "document",
  "tool_result",
  "tool_use",
  "search_result",
]);

/**
 * The conversation to send upstream:
 * - messages with no content are left out (the API rejects them, and a model can legitimately
 *   answer with an empty end_turn);
 * - consecutive messages of one role are merged into one, in order. That happens when a turn
 *   ended with tool results the model never saw (iteration cap) and the next turn starts with the
 *   user's text: the merged message holds the tool results first, which is where the API wants them.
 */
export function toRequestMessages(history: readonly HistoryMessage[]): RequestMessage[] {
  const out: HistoryMessage[] = [];
  for (const m of history) {
    if (m.content.length === 0) continue;
    const last = out[out.length - 1];
    if (last && last.role === m.role) last.content = [...last.content, ...m.content];
    else out.push({ role: m.role, content: [...m.content] });
  }
  return out as unknown as RequestMessage[];
}

/**
 * Mark the end of the conversation as a prompt-cache breakpoint. Every iteration of a tool loop
 * (and every later turn) resends the whole history, so caching its prefix makes those calls read
 * it at a tenth of the input price. One breakpoint is enough: the API finds the previous call's
 * cache entry by looking back from it. The input is not modified.
 */
export function withCacheBreakpoint(messages: readonly RequestMessage[]): RequestMessage[] {
  const last = messages[messages.length - 1];
  if (!last || typeof last.content === "string" || last.content.length === 0) return [...messages];
  const blocks = last.content as unknown as ContentBlock[];
  const tail = blocks[blocks.length - 1]!;
  if (!CACHEABLE.has(tail.type) || (tail.type === "text" && tail.text === "")) return [...messages];
  const marked = {
    ...last,
    content: [...blocks.slice(0, -1), { ...tail, cache_control: { type: "ephemeral" } }],
  };
  return [...messages.slice(0, -1), marked as unknown as RequestMessage];
}

/**
 * A client's message content as stored blocks. A plain string becomes one text block. Any
 * `cache_control` a client sent is dropped: breakpoints are placed by the server (the API allows
 * only four per request, and stored ones would pile up turn after turn).
 */
export function userContentBlocks(content: string | ContentBlock[]): ContentBlock[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((block) => {
    const { cache_control: _dropped, ...rest } = block;
    return rest as ContentBlock;
  });
}
