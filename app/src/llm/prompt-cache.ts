/**
 * Automatic prompt-cache breakpoints, and the token estimates they (and routing and history
 * trimming) rest on.
 *
 * The Messages API caches a prompt prefix that ends at a block marked
 * `cache_control: {type: "ephemeral"}`: a later request with the same prefix reads it at about a
 * tenth of the input price (writing it costs about 1.25x, once). A request may carry at most four
 * breakpoints, and a prefix shorter than the model's minimum (`minCacheableTokens` in the model
 * table) is silently not cached. Each model has its own cache, and an entry lives five minutes
 * from its last use. `applyPromptCaching` places breakpoints where a prefix is stable across
 * calls, in prompt order:
 *
 *   1. the last tool definition  (tools are resent unchanged on every call);
 *   2. the end of the system prompt (shared by every conversation that uses it);
 *   3. in a conversation (a request with history), the end of the last message before the newest
 *      user turn, usually the previous reply: conversations that open alike (the same first
 *      question, and from the response cache the same answer) share the cached prefix up to it,
 *      and its short lookback finds the previous call's entry (the API looks back about 20 blocks
 *      from a breakpoint for an earlier one);
 *   4. in a conversation, the end of the newest user turn, as Anthropic recommends for multi-turn
 *      conversations: the next call resends all of this one and reads it from the cache, paying
 *      the write price only for the reply and its own new turn.
 *
 * A request of one message gets no message breakpoint: it is often a one-off, and marking it
 * would bill its question at the write price (1.25x) for a read that may never come; if the
 * conversation goes on, the second call writes that turn instead.
 *
 * A candidate is marked only when the prefix up to it (tools, then system, then messages) is at
 * least the model's minimum. Breakpoints the client set are left alone and count toward the
 * limit; when fewer slots remain than candidates, the later candidates win, because each cached
 * prefix contains everything before it. The input is never modified.
 *
 * Token counts here are estimates (about four characters a token, as the API's tokenizer averages
 * on English text): they decide whether a breakpoint is worth placing, never what anyone is charged.
 */
import type { ModelCatalog } from "./models";

/** The API's limit on `cache_control` blocks per request. */
export const MAX_CACHE_BREAKPOINTS = 4;
/** Minimum prefix for models the table does not know (the API's minimum for most models). */
export const DEFAULT_MIN_CACHEABLE_TOKENS = 1024;
/** Images and documents: their real cost depends on pixels and pages; this is a typical size. */
export const MEDIA_BLOCK_TOKENS = 1600;
/** Role markers and separators the API adds around each message. */
const PER_MESSAGE_TOKENS = 4;

const EPHEMERAL = Object.freeze({ type: "ephemeral" as const });

/** Block types that may carry a breakpoint (thinking and redacted_thinking blocks may not). */
const CACHEABLE = new Set([
  "text",
  "image",
  "document",
  "tool_use",
  "tool_result",
  "search_result",
]);

type Block = Record<string, unknown> & { type?: unknown };
type Message = { role: string; content: unknown };

/** What breakpoints are placed in: a Messages request, or a batch's request as validated. */
export interface CacheableRequest {
  model: string;
  messages: readonly Message[];
  system?: unknown;
  tools?: readonly unknown[] | null;
  /** Automatic caching: one mark for the whole request. */
  cache_control?: unknown;
}

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Estimated tokens of one content block (text, tool_use, tool_result, image, ...). */
export function estimateBlockTokens(block: unknown): number {
  if (typeof block === "string") return estimateTextTokens(block);
  if (typeof block !== "object" || block === null) return 0;
  const b = block as Block;
  switch (b.type) {
    case "text":
      return typeof b.text === "string" ? estimateTextTokens(b.text) : 0;
    case "thinking":
      return typeof b.thinking === "string" ? estimateTextTokens(b.thinking) : 0;
    case "tool_use":
    case "server_tool_use":
      return (
        estimateTextTokens(String(b.name ?? "")) + estimateTextTokens(JSON.stringify(b.input ?? {}))
      );
    case "tool_result": {
      const c = b.content;
      if (typeof c === "string") return estimateTextTokens(c) + 8;
      if (Array.isArray(c)) return c.reduce((n: number, x) => n + estimateBlockTokens(x), 8);
      return 8;
    }
    case "image":
    case "document":
      return MEDIA_BLOCK_TOKENS;
    default:
      return estimateTextTokens(JSON.stringify(b));
  }
}

/** Estimated tokens of a message's content (a string or blocks), plus the per-message overhead. */
export function estimateMessageTokens(message: { content: unknown }): number {
  const c = message.content;
  if (typeof c === "string") return estimateTextTokens(c) + PER_MESSAGE_TOKENS;
  if (!Array.isArray(c)) return PER_MESSAGE_TOKENS;
  let n = PER_MESSAGE_TOKENS;
  for (const block of c) n += estimateBlockTokens(block);
  return n;
}

export function estimateToolTokens(tool: unknown): number {
  if (typeof tool !== "object" || tool === null) return 0;
  const t = tool as Record<string, unknown>;
  if (t.input_schema === undefined) return estimateTextTokens(JSON.stringify(t));
  return (
    estimateTextTokens(String(t.name ?? "")) +
    estimateTextTokens(String(t.description ?? "")) +
    estimateTextTokens(JSON.stringify(t.input_schema))
  );
}

export function estimateSystemTokens(system: unknown): number {
  if (typeof system === "string") return estimateTextTokens(system);
  if (!Array.isArray(system)) return 0;
  let n = 0;
  for (const block of system) n += estimateBlockTokens(block);
  return n;
}

/** Estimated input tokens of a whole request: tools, system prompt and messages. */
export function estimateRequestTokens(request: {
  tools?: readonly unknown[] | null;
  system?: unknown;
  messages: readonly { content: unknown }[];
}): number {
  let n = estimateSystemTokens(request.system);
  for (const tool of request.tools ?? []) n += estimateToolTokens(tool);
  for (const m of request.messages) n += estimateMessageTokens(m);
  return n;
}

const hasBreakpoint = (x: unknown): boolean =>
  typeof x === "object" && x !== null && (x as Block).cache_control != null;

/** Breakpoints a request already carries: tools, system blocks, message blocks, and top level. */
export function countCacheBreakpoints(request: {
  tools?: readonly unknown[] | null;
  system?: unknown;
  messages: readonly Message[];
  cache_control?: unknown;
}): number {
  let n = request.cache_control != null ? 1 : 0;
  for (const tool of request.tools ?? []) if (hasBreakpoint(tool)) n++;
  if (Array.isArray(request.system)) for (const b of request.system) if (hasBreakpoint(b)) n++;
  for (const m of request.messages) {
    if (Array.isArray(m.content)) for (const b of m.content) if (hasBreakpoint(b)) n++;
  }
  return n;
}

export interface PromptCachingOptions {
  /** `false` returns the request unchanged (PROMPT_CACHING=false). @default true */
  enabled?: boolean;
  /** Overrides the model table's minimum (tests, models the table does not know). */
  minCacheableTokens?: number;
}

type Candidate =
  | { where: "tools"; index: number }
  | { where: "system"; index: number }
  | { where: "message"; index: number; block: number };

/** The index of the last block of `blocks` that may carry a breakpoint, or -1. */
function lastCacheableBlock(blocks: readonly unknown[]): number {
  for (let i = blocks.length - 1; i >= 0; i--) {
    const b = blocks[i] as Block | undefined;
    if (!b || typeof b !== "object" || !CACHEABLE.has(String(b.type))) continue;
    if (b.type === "text" && (typeof b.text !== "string" || b.text === "")) continue;
    return i;
  }
  return -1;
}

/** A breakpoint on the last cacheable block of message `index`, when its prefix reaches the minimum. */
function messageCandidate(
  m: Message,
  index: number,
  prefix: number,
  minimum: number,
): Candidate | null {
  if (prefix < minimum) return null;
  if (typeof m.content === "string") {
    return m.content !== "" ? { where: "message", index, block: 0 } : null;
  }
  if (!Array.isArray(m.content)) return null;
  const b = lastCacheableBlock(m.content);
  if (b < 0 || hasBreakpoint(m.content[b])) return null;
  return { where: "message", index, block: b };
}

/**
 * The request with prompt-cache breakpoints added where they pay off (see the module comment).
 * Returns the same object when nothing is added.
 */
export function applyPromptCaching<R extends CacheableRequest>(
  request: R,
  catalog: Pick<ModelCatalog, "get">,
  options: PromptCachingOptions = {},
): R {
  if (options.enabled === false) return request;
  const { messages, system } = request;
  const tools = request.tools ?? [];
  const existing = countCacheBreakpoints(request);
  const slots = MAX_CACHE_BREAKPOINTS - existing;
  if (slots <= 0) return request;
  const minimum =
    options.minCacheableTokens ??
    catalog.get(request.model)?.minCacheableTokens ??
    DEFAULT_MIN_CACHEABLE_TOKENS;

  const candidates: Candidate[] = [];
  let prefix = 0;

  // 1. The last tool.
  for (const tool of tools) prefix += estimateToolTokens(tool);
  const lastTool = tools.length - 1;
  if (lastTool >= 0 && prefix >= minimum && !hasBreakpoint(tools[lastTool])) {
    candidates.push({ where: "tools", index: lastTool });
  }

  // 2. The end of the system prompt.
  prefix += estimateSystemTokens(system);
  if (typeof system === "string" && system !== "" && prefix >= minimum) {
    candidates.push({ where: "system", index: 0 });
  } else if (Array.isArray(system) && system.length > 0 && prefix >= minimum) {
    const i = lastCacheableBlock(system);
    if (i >= 0 && !hasBreakpoint(system[i])) candidates.push({ where: "system", index: i });
  }

  // 3. and 4. In a conversation (the request carries history): the end of the last message before
  // the newest user turn (the previous reply) and the end of the newest user turn.
  let newest = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      newest = i;
      break;
    }
  }
  if (newest > 0) {
    for (let i = 0; i <= newest; i++) {
      prefix += estimateMessageTokens(messages[i]!);
      if (i === newest - 1 || i === newest) {
        const c = messageCandidate(messages[i]!, i, prefix, minimum);
        if (c) candidates.push(c);
      }
    }
  }

  if (candidates.length === 0) return request;
  // Later breakpoints cover more: each cached prefix holds everything before it.
  const chosen = candidates.slice(Math.max(0, candidates.length - slots));

  const out = { ...request } as unknown as Record<string, unknown>;
  for (const c of chosen) {
    if (c.where === "tools") {
      const copy = [...tools];
      copy[c.index] = { ...(copy[c.index] as object), cache_control: EPHEMERAL };
      out.tools = copy;
    } else if (c.where === "system") {
      out.system =
        typeof system === "string"
          ? [{ type: "text", text: system, cache_control: EPHEMERAL }]
          : (system as unknown[]).map((b, i) =>
              i === c.index ? { ...(b as object), cache_control: EPHEMERAL } : b,
            );
    } else {
      const m = messages[c.index]!;
      const content =
        typeof m.content === "string"
          ? [{ type: "text", text: m.content, cache_control: EPHEMERAL }]
          : (m.content as unknown[]).map((b, i) =>
              i === c.block ? { ...(b as object), cache_control: EPHEMERAL } : b,
            );
      // Two message breakpoints may be added: the second copies on from the first's copy.
      const copy = [...((out.messages as unknown[] | undefined) ?? messages)];
      copy[c.index] = { ...m, content };
      out.messages = copy;
    }
  }
  return out as R;
}
