/**
 * A local fake of the Anthropic Messages API, for tests and benchmarks.
 *
 * The official SDK reaches it through `baseURL`, so everything above the wire (our LLM
 * client, retries, streaming relay, spend accounting) runs unmodified. Benchmarks measure
 * what the service adds over calling this fake directly, so it sits on bare `node:http`,
 * does no work a request does not ask for (prompt hashing only when `cache_control` is
 * present, behaviour parsing only when a control is present) and keeps bounded state.
 *
 * ## Endpoints
 * - `POST /v1/messages` (JSON, or SSE with `stream: true`)
 * - `POST /v1/messages/count_tokens`
 * - `POST /v1/messages/batches`, `GET /v1/messages/batches`, `GET|DELETE /v1/messages/batches/{id}`,
 *   `GET /v1/messages/batches/{id}/results` (JSONL), `POST /v1/messages/batches/{id}/cancel`.
 *   A batch ends `batchDelayMs` after creation (checked when it is read: no timers).
 *
 * Every request needs the API key, as `x-api-key` or as `Authorization: Bearer <key>` (which
 * is how SDK 1.x sends it), else 401 `authentication_error`; and an `anthropic-version`
 * header, else 400.
 *
 * ## What the fake answers (deterministic in the request)
 * Looking only at the last `user` message:
 * - `[[tool:NAME {json}]]` in its text (or in a tool_result's text, so tool outputs can
 *   chain further calls) and NAME in `tools`: content is a text block `Calling NAME.`
 *   followed by one `tool_use` block per directive (input = the JSON, `{}` if omitted),
 *   stop_reason `tool_use`. A NAME not in `tools` is a 400, to catch test mistakes;
 *   `tool_choice: {type: "none"}` makes the fake ignore tool directives.
 * - tool_result blocks: one line per result, `Tool result <tool_use_id>: <content text>`
 *   (`Tool result <id> (error): ...` when `is_error`), then `Echo: <text>` if the message
 *   also carries text.
 * - otherwise: `Echo: <text of the message, directives removed>`.
 * - `behavior.reply` replaces the text; the text is then padded with filler to at least
 *   `max(minReplyChars, deltas)` characters, so a benchmark asking for 64 deltas gets 64.
 * - `stop_sequences`: the text is cut at the earliest one (stop_reason `stop_sequence`,
 *   tool calls dropped). `max_tokens`: text cut at `max_tokens * 4` chars, tool calls that
 *   no longer fit dropped (the real API would send a partial one), stop_reason `max_tokens`.
 *
 * ## Usage numbers
 * Tokens are `ceil(chars / 4)` per prompt block (see {@link estimateInputTokens}); images
 * and documents count {@link MEDIA_BLOCK_TOKENS}. Prompt caching follows the real API's
 * shape: prefixes end at `cache_control` breakpoints (tools, then system, then messages;
 * top-level `cache_control` marks the last block; more than 4 breakpoints is a 400). The
 * longest prefix seen before, looked up up to 20 blocks back from each breakpoint, is
 * reported as `cache_read_input_tokens`; the rest up to the last breakpoint as
 * `cache_creation_input_tokens` (split by ttl in `cache_creation`); `input_tokens` is what
 * follows the last breakpoint. Prefixes shorter than the model's minimum (1024 tokens by
 * default) are silently not cached, as with the real API. Caches are per model; an entry lives
 * 5 minutes (or 1 hour with `ttl: "1h"`) from its last write or read (clock: the `now` option),
 * and a string `content` or `system` is the same prefix as one text block holding it.
 *
 * ## Behaviour controls (see {@link FakeBehavior})
 * Three layers, so parallel tests do not interfere:
 * 1. per request: an `x-fake-behavior: <json>` header or a `[[fake:{json}]]` directive in
 *    the last user message (the directive survives a service that does not forward headers);
 * 2. a FIFO of scripted faults, `failNext(times, fault)`, consumed by `POST /v1/messages`
 *    requests that carry no per-request fault settings;
 * 3. global defaults, `setBehavior()`.
 * Timing fields merge per field (request over global). Faults apply to `POST /v1/messages`
 * (and to batch items through directives); `latencyMs` applies to every endpoint.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as setTimeoutPromise } from "node:timers/promises";
import type Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";

/**
 * The fake's waits (latency, first token, delta pacing) do not hold the process open: a test
 * that ends while a request still waits (a 60 s latency the service was cut from, say) leaves no
 * timer that keeps its jest worker alive (before 2026-12-07, abuse-shutdown.test.ts left two
 * 60 s timers, and jest force-exited the worker). The server's socket keeps a running fake alive.
 */
const sleep = (ms: number) => setTimeoutPromise(ms, undefined, { ref: false });

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

/** The key the fake accepts unless `apiKey` is given. */
export const FAKE_API_KEY = "sk-ant-fake-0000000000";
/** Prompt caching does nothing for prefixes shorter than this (most models). */
export const DEFAULT_MIN_CACHEABLE_TOKENS = 1024;
/** Token cost the fake assigns to an image or document block, whatever its size. */
export const MEDIA_BLOCK_TOKENS = 1000;

export type FakeErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "billing_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "timeout_error"
  | "api_error"
  | "overloaded_error";

/** A failure to inject. HTTP-level faults on a streaming request fail before the stream starts. */
export type FakeFault =
  /** 429 `rate_limit_error` with `retry-after` (seconds, default 1) and rate-limit headers. */
  | { kind: "rate_limit"; retryAfterSeconds?: number; retryAfterMs?: number }
  /**
   * The spend limit / billing cap is reached: never worth retrying, so `x-should-retry: false`.
   * 429 `rate_limit_error` with `details.error_code: "enforced_spend_limit_reached"` by default
   * (the SDK maps it to `EnforcedSpendLimitReachedError`); `status: 400` reproduces the
   * `invalid_request_error` form the API has also been seen to send.
   */
  | { kind: "spend_limit"; status?: 429 | 400 }
  /** 529 `overloaded_error`. */
  | { kind: "overloaded" }
  /** 500 `api_error`. */
  | { kind: "api_error" }
  /** Any status and error type. */
  | {
      kind: "http_error";
      status: number;
      type: FakeErrorType;
      message?: string;
      headers?: Record<string, string>;
    }
  /**
   * Streams: `event: error` after `afterDeltas` content_block_delta events (default type
   * `overloaded_error`). Non-streaming requests get the same error as an HTTP status.
   */
  | { kind: "stream_error"; afterDeltas: number; errorType?: FakeErrorType; message?: string }
  /** Destroys the socket after `afterDeltas` deltas (default 0); at once for non-streaming requests. */
  | { kind: "disconnect"; afterDeltas?: number };

export interface FakeBehavior {
  /** Delay before any response byte (headers included). @default 0 */
  latencyMs?: number;
  /** Streams: delay between `message_start` and the first delta. @default 0 */
  firstTokenDelayMs?: number;
  /** Streams: deltas per content block (text padded to at least this many chars). @default one per 16 chars */
  deltas?: number;
  /** Streams: delay between consecutive deltas. @default 0 */
  deltaIntervalMs?: number;
  /** Replaces the generated text. */
  reply?: string;
  /** Pads the text with deterministic filler to at least this many characters. */
  minReplyChars?: number;
  /** Fail every request this behaviour applies to. `undefined` clears it in `setBehavior`. */
  fault?: FakeFault;
  /**
   * A misbehaving upstream: report this many output tokens in `usage` (JSON, and the stream's
   * final `message_delta`), whatever was generated and whatever max_tokens allowed.
   */
  reportedOutputTokens?: number;
  /**
   * Fail the first `times` requests that carry this `key`, then succeed: "fail N times then
   * succeed" scoped to one test, for retry tests that run in parallel with others.
   */
  failFirst?: { key: string; times: number; fault: FakeFault };
}

export interface FakeAnthropicOptions {
  /** Accepted API key(s), from `x-api-key` or `Authorization: Bearer`; `null` accepts any non-empty key. @default FAKE_API_KEY */
  apiKey?: string | readonly string[] | null;
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 0 (ephemeral) */
  port?: number;
  /** Initial global behaviour, restored by `reset()`. @default {} */
  behavior?: FakeBehavior;
  /** @default DEFAULT_MIN_CACHEABLE_TOKENS */
  minCacheableTokens?: number;
  /** Per-model minimum cacheable prefix, e.g. `{ "claude-haiku-4-5": 4096 }`. @default {} */
  minCacheableTokensByModel?: Readonly<Record<string, number>>;
  /** How long a batch stays `in_progress`. @default 100 */
  batchDelayMs?: number;
  /** Ring-buffer capacity of recorded requests; 0 disables recording. @default 1000 */
  maxRecorded?: number;
  /** Extra request headers to record (lower-case), besides the default subset. @default [] */
  recordHeaders?: readonly string[];
  /** Bound on remembered cache prefixes (oldest evicted). @default 10000 */
  maxCachedPrefixes?: number;
  /** The prompt cache's clock in ms (entries live 5 minutes or 1 hour from their last use). @default Date.now */
  now?: () => number;
}

export interface RecordedRequest {
  /** 1-based order of arrival since start or `reset()`. */
  seq: number;
  requestId: string;
  method: string;
  /** Path without the query string. */
  path: string;
  /** The recorded subset of headers (lower-case names). */
  headers: Record<string, string>;
  /** Parsed JSON body, `undefined` for GET/DELETE or an unparsable body. */
  body: unknown;
  stream: boolean;
  /** `Date.now()` at arrival. */
  receivedAt: number;
  /** Status sent (200 for streams, even if they later fail); unset while in flight. */
  status?: number;
  /** The fault injected into this request, if any. */
  fault?: FakeFault["kind"];
}

export interface FakeAnthropic {
  /** Base URL for the SDK's `baseURL`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** Recorded requests, oldest first (a copy of the ring buffer). */
  readonly requests: RecordedRequest[];
  /** Requests received since start or `reset()`, including those the ring buffer dropped. */
  readonly requestCount: number;
  lastRequest(): RecordedRequest | undefined;
  /** Merges into the global behaviour; pass a field as `undefined` to clear it. */
  setBehavior(behavior: FakeBehavior): void;
  /** The next `times` plain `POST /v1/messages` requests fail with `fault`, then requests succeed. */
  failNext(times: number, fault: FakeFault): void;
  /** Forgets recorded requests only. */
  clearRequests(): void;
  /** Back to the start state: options' behaviour, no recordings, faults, cache, batches. */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Validation of behaviour controls (they arrive as JSON from headers and prompts)
// ---------------------------------------------------------------------------------------

const nonNegInt = z.number().int().nonnegative();
const errorTypeSchema = z.enum([
  "invalid_request_error",
  "authentication_error",
  "billing_error",
  "permission_error",
  "not_found_error",
  "request_too_large",
  "rate_limit_error",
  "timeout_error",
  "api_error",
  "overloaded_error",
]);
const faultSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("rate_limit"),
    retryAfterSeconds: nonNegInt.optional(),
    retryAfterMs: nonNegInt.optional(),
  }),
  z.strictObject({
    kind: z.literal("spend_limit"),
    status: z.union([z.literal(429), z.literal(400)]).optional(),
  }),
  z.strictObject({ kind: z.literal("overloaded") }),
  z.strictObject({ kind: z.literal("api_error") }),
  z.strictObject({
    kind: z.literal("http_error"),
    status: z.number().int().min(400).max(599),
    type: errorTypeSchema,
    message: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  z.strictObject({
    kind: z.literal("stream_error"),
    afterDeltas: nonNegInt,
    errorType: errorTypeSchema.optional(),
    message: z.string().optional(),
  }),
  z.strictObject({ kind: z.literal("disconnect"), afterDeltas: nonNegInt.optional() }),
]) satisfies z.ZodType<FakeFault>;

// Strict, so a misspelt control fails the request loudly instead of silently not applying.
const behaviorSchema = z.strictObject({
  latencyMs: nonNegInt.optional(),
  firstTokenDelayMs: nonNegInt.optional(),
  deltas: z.number().int().positive().optional(),
  deltaIntervalMs: nonNegInt.optional(),
  reply: z.string().optional(),
  minReplyChars: nonNegInt.optional(),
  fault: faultSchema.optional(),
  reportedOutputTokens: nonNegInt.optional(),
  failFirst: z
    .strictObject({
      key: z.string().min(1),
      times: z.number().int().positive(),
      fault: faultSchema,
    })
    .optional(),
}) satisfies z.ZodType<FakeBehavior>;

function parseBehavior(json: string, where: string): FakeBehavior | RequestError {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return invalid(`fake-anthropic: ${where} is not valid JSON`);
  }
  const parsed = behaviorSchema.safeParse(raw);
  if (!parsed.success) {
    return invalid(
      `fake-anthropic: ${where}: ${z.prettifyError(parsed.error).replace(/\n/g, "; ")}`,
    );
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === "string" ? v : "");

interface WireMessage {
  role: string;
  content: unknown;
}

/** The fields of a Messages request the fake reads; the rest is recorded but ignored. */
interface MessagesBody {
  model: string;
  max_tokens: number;
  messages: WireMessage[];
  system?: unknown;
  tools?: unknown[];
  tool_choice?: unknown;
  stop_sequences?: string[];
  stream: boolean;
  cache_control?: unknown;
}

interface RequestError {
  status: number;
  type: FakeErrorType;
  message: string;
}
const invalid = (message: string): RequestError => ({
  status: 400,
  type: "invalid_request_error",
  message,
});
const isRequestError = (v: unknown): v is RequestError =>
  isObj(v) &&
  typeof v.status === "number" &&
  typeof v.type === "string" &&
  typeof v.message === "string";

/** Checks what the real API would reject with a 400, using its `field: problem` wording. */
function parseMessagesBody(
  raw: unknown,
  needsMaxTokens: boolean,
  field = "",
): MessagesBody | RequestError {
  if (!isObj(raw)) return invalid(`${field || "body"}: Input should be an object`);
  if (typeof raw.model !== "string" || raw.model === "")
    return invalid(`${field}model: Field required`);
  let maxTokens = 0;
  if (needsMaxTokens) {
    if (raw.max_tokens === undefined) return invalid(`${field}max_tokens: Field required`);
    if (
      typeof raw.max_tokens !== "number" ||
      !Number.isInteger(raw.max_tokens) ||
      raw.max_tokens < 1
    ) {
      return invalid(`${field}max_tokens: Input should be an integer greater than or equal to 1`);
    }
    maxTokens = raw.max_tokens;
  }
  if (!Array.isArray(raw.messages)) return invalid(`${field}messages: Field required`);
  if (raw.messages.length === 0)
    return invalid(`${field}messages: at least one message is required`);
  for (let i = 0; i < raw.messages.length; i++) {
    const m: unknown = raw.messages[i];
    if (!isObj(m)) return invalid(`${field}messages.${i}: Input should be an object`);
    if (m.role !== "user" && m.role !== "assistant" && m.role !== "system") {
      return invalid(`${field}messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    if (typeof m.content !== "string" && !Array.isArray(m.content)) {
      return invalid(`${field}messages.${i}.content: Input should be a valid string or list`);
    }
  }
  if (raw.tools !== undefined && !Array.isArray(raw.tools))
    return invalid(`${field}tools: Input should be a valid list`);
  if (
    raw.stop_sequences !== undefined &&
    (!Array.isArray(raw.stop_sequences) || !raw.stop_sequences.every((s) => typeof s === "string"))
  ) {
    return invalid(`${field}stop_sequences: Input should be a valid list of strings`);
  }
  if (raw.stream !== undefined && typeof raw.stream !== "boolean") {
    return invalid(`${field}stream: Input should be a valid boolean`);
  }
  return {
    model: raw.model,
    max_tokens: maxTokens,
    messages: raw.messages as WireMessage[],
    system: raw.system,
    tools: raw.tools as unknown[] | undefined,
    tool_choice: raw.tool_choice,
    stop_sequences: raw.stop_sequences as string[] | undefined,
    stream: raw.stream === true,
    cache_control: raw.cache_control,
  };
}

// ---------------------------------------------------------------------------------------
// Token estimation and prompt caching
// ---------------------------------------------------------------------------------------

/** The fake's tokenizer: a quarter token per character, rounded up per block. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

type CacheTtl = "5m" | "1h";
const ttlOf = (cc: unknown): CacheTtl | null =>
  isObj(cc) && cc.type === "ephemeral" ? (cc.ttl === "1h" ? "1h" : "5m") : null;

/** The parts of a request that cost input tokens (any Messages request body fits). */
export interface PromptParts {
  tools?: readonly unknown[] | undefined;
  system?: unknown;
  messages: readonly { role: string; content: unknown }[];
}

/** Called once per prompt block in cache-prefix order: tools, system, messages. */
type BlockVisitor = (tag: string, text: string, tokens: number, cache: CacheTtl | null) => void;

function toolResultText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let out = "";
  for (const b of content)
    if (isObj(b) && b.type === "text") out += (out ? "\n" : "") + str(b.text);
  return out;
}

function visitContentBlock(tag: string, block: unknown, visit: BlockVisitor): void {
  if (!isObj(block)) return;
  const cache = ttlOf(block.cache_control);
  const type = str(block.type);
  let text: string;
  switch (type) {
    case "text":
      text = str(block.text);
      break;
    case "tool_use":
    case "server_tool_use":
      text = str(block.name) + JSON.stringify(block.input ?? {});
      break;
    case "tool_result":
      text = str(block.tool_use_id) + toolResultText(block.content);
      break;
    case "thinking":
      text = str(block.thinking);
      break;
    case "image":
    case "document":
      // Real image/PDF costs depend on pixels/pages the fake does not decode: a flat cost,
      // while the hash still covers the source so a different image is a different prefix.
      visit(`${tag}:${type}`, JSON.stringify(block.source ?? null), MEDIA_BLOCK_TOKENS, cache);
      return;
    default:
      text = JSON.stringify(block);
  }
  visit(`${tag}:${type}`, text, estimateTokens(text), cache);
}

function walkPrompt(body: PromptParts, visit: BlockVisitor): void {
  for (const tool of body.tools ?? []) {
    if (!isObj(tool)) continue;
    const text =
      tool.input_schema !== undefined
        ? str(tool.name) + str(tool.description) + JSON.stringify(tool.input_schema)
        : JSON.stringify(tool);
    visit("tool", text, estimateTokens(text), ttlOf(tool.cache_control));
  }
  // A string is the same prompt as one text block holding it (tagged alike, so a client that
  // turns a string into a block to mark it still hits the cache entry the string wrote).
  if (typeof body.system === "string")
    visit("system:text", body.system, estimateTokens(body.system), null);
  else if (Array.isArray(body.system))
    for (const b of body.system) visitContentBlock("system", b, visit);
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i]!;
    // The index keeps "two blocks in one message" and "two messages" apart in the hash.
    const tag = `${m.role}#${i}`;
    if (typeof m.content === "string")
      visit(`${tag}:text`, m.content, estimateTokens(m.content), null);
    else for (const b of m.content as unknown[]) visitContentBlock(tag, b, visit);
  }
}

/** Input tokens of a request as the fake counts them (what `count_tokens` returns). */
export function estimateInputTokens(body: PromptParts): number {
  let total = 0;
  walkPrompt(body, (_tag, _text, tokens) => {
    total += tokens;
  });
  return total;
}

interface CacheUsage {
  read: number;
  write5m: number;
  write1h: number;
}
const NO_CACHE: CacheUsage = Object.freeze({ read: 0, write5m: 0, write1h: 0 });
const CACHE_LOOKBACK_BLOCKS = 20;
const MAX_CACHE_BREAKPOINTS = 4;

interface PromptAnalysis {
  totalTokens: number;
  breakpoints: number;
}

function analysePrompt(body: MessagesBody): PromptAnalysis {
  let totalTokens = 0;
  let breakpoints = ttlOf(body.cache_control) ? 1 : 0;
  walkPrompt(body, (_tag, _text, tokens, cache) => {
    totalTokens += tokens;
    if (cache) breakpoints++;
  });
  return { totalTokens, breakpoints };
}

const TTL_MS: Record<CacheTtl, number> = { "5m": 5 * 60_000, "1h": 60 * 60_000 };

/**
 * Remembers cached prefixes by hash, oldest evicted first, like an LRU of cache entries. An
 * entry lives for its ttl (5 minutes unless marked `1h`) from its last write or read: a read
 * refreshes it at no cost, as with the real API; an expired entry is a miss.
 */
class PromptCache {
  /** digest -> when it expires and the ttl a read refreshes it with. */
  private readonly seen = new Map<string, { expires: number; ttlMs: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  clear(): void {
    this.seen.clear();
  }

  apply(body: MessagesBody, minTokens: number): CacheUsage {
    const tags: string[] = [];
    const texts: string[] = [];
    const cum: number[] = [];
    const ttls: (CacheTtl | null)[] = [];
    let running = 0;
    walkPrompt(body, (tag, text, tokens, cache) => {
      running += tokens;
      tags.push(tag);
      texts.push(text);
      cum.push(running);
      ttls.push(cache);
    });
    const n = tags.length;
    if (n === 0) return NO_CACHE;
    const topLevel = ttlOf(body.cache_control);
    if (topLevel && ttls[n - 1] === null) ttls[n - 1] = topLevel;

    const breakpoints: number[] = [];
    for (let i = 0; i < n; i++) if (ttls[i]) breakpoints.push(i);
    if (breakpoints.length === 0) return NO_CACHE;

    // Hashes are needed from the first position any lookback window can reach.
    const firstNeeded = Math.max(0, breakpoints[0]! - (CACHE_LOOKBACK_BLOCKS - 1));
    const digests: string[] = new Array<string>(n);
    // Caches are per model: the same prompt on another model is a miss.
    const hash = createHash("sha256").update(body.model);
    for (let i = 0; i < n; i++) {
      hash.update(tags[i]!).update("\u0000").update(texts[i]!).update("\u0001");
      if (i >= firstNeeded) digests[i] = hash.copy().digest("base64");
    }

    const now = this.now();
    let readAt = -1;
    for (const b of breakpoints) {
      for (let j = b; j >= Math.max(0, b - (CACHE_LOOKBACK_BLOCKS - 1)); j--) {
        if (this.live(digests[j]!, now)) {
          if (j > readAt) readAt = j;
          break;
        }
      }
    }
    if (readAt >= 0) this.touch(digests[readAt]!, now, this.seen.get(digests[readAt]!)!.ttlMs);

    const usage: CacheUsage = { read: readAt >= 0 ? cum[readAt]! : 0, write5m: 0, write1h: 0 };
    let writtenUpTo = usage.read;
    for (const b of breakpoints) {
      if (b <= readAt || cum[b]! < minTokens) continue;
      const tokens = cum[b]! - writtenUpTo;
      if (ttls[b] === "1h") usage.write1h += tokens;
      else usage.write5m += tokens;
      writtenUpTo = cum[b]!;
      this.touch(digests[b]!, now, TTL_MS[ttls[b]!]);
    }
    return usage;
  }

  private live(digest: string, now: number): boolean {
    const entry = this.seen.get(digest);
    if (!entry) return false;
    if (entry.expires > now) return true;
    this.seen.delete(digest);
    return false;
  }

  private touch(digest: string, now: number, ttlMs: number): void {
    this.seen.delete(digest);
    this.seen.set(digest, { expires: now + ttlMs, ttlMs });
    if (this.seen.size > this.maxEntries) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Reading the last user turn: directives, tool results
// ---------------------------------------------------------------------------------------

interface ToolCall {
  name: string;
  input: unknown;
  json: string;
}

interface UserTurn {
  /** Text of the last user message with directives removed, trimmed. */
  text: string;
  toolCalls: ToolCall[];
  toolResults: { id: string; text: string; isError: boolean }[];
  /** Behaviour from `[[fake:{...}]]` directives, merged in order. */
  behavior: FakeBehavior | undefined;
}

const TOOL_NAME = /[A-Za-z0-9_-]/;

/** Index just past the JSON object starting at `start` (a `{`), or -1 if unbalanced. */
function endOfJsonObject(s: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) depth++;
    else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Strips `[[tool:...]]` and `[[fake:...]]` directives from `text`, collecting them. */
function scanDirectives(
  text: string,
  calls: ToolCall[],
  behaviors: string[],
): string | RequestError {
  if (!text.includes("[[")) return text;
  let out = "";
  let pos = 0;
  for (;;) {
    const at = text.indexOf("[[", pos);
    if (at < 0) break;
    const isTool = text.startsWith("tool:", at + 2);
    const isFake = text.startsWith("fake:", at + 2);
    if (!isTool && !isFake) {
      out += text.slice(pos, at + 2);
      pos = at + 2;
      continue;
    }
    let i = at + 7;
    let name = "";
    if (isTool) {
      while (i < text.length && TOOL_NAME.test(text[i]!)) name += text[i++];
      if (name === "")
        return invalid(`fake-anthropic: [[tool:...]] at offset ${at} has no tool name`);
    }
    while (text[i] === " ") i++;
    let json = "";
    if (text[i] === "{") {
      const end = endOfJsonObject(text, i);
      if (end < 0) return invalid(`fake-anthropic: unbalanced JSON in directive at offset ${at}`);
      json = text.slice(i, end);
      i = end;
      while (text[i] === " ") i++;
    }
    if (!text.startsWith("]]", i))
      return invalid(`fake-anthropic: directive at offset ${at} is not closed by ]]`);
    if (isTool) {
      let input: unknown = {};
      if (json) {
        try {
          input = JSON.parse(json);
        } catch {
          return invalid(`fake-anthropic: [[tool:${name}]] input is not valid JSON`);
        }
      }
      calls.push({ name, input, json: JSON.stringify(input) });
    } else {
      if (!json) return invalid(`fake-anthropic: [[fake:]] needs a JSON object`);
      behaviors.push(json);
    }
    out += text.slice(pos, at);
    pos = i + 2;
    // "a [[...]] b" reads "a b", not "a  b"; other spacing in the user's text is kept.
    if (out.endsWith(" ") && text[pos] === " ") pos++;
  }
  return out + text.slice(pos);
}

function readUserTurn(messages: WireMessage[]): UserTurn | RequestError {
  let last: WireMessage | undefined;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      last = messages[i];
      break;
    }
  }
  const turn: UserTurn = { text: "", toolCalls: [], toolResults: [], behavior: undefined };
  if (!last) return turn;
  const behaviorJson: string[] = [];
  const texts: string[] = [];
  const blocks: unknown[] =
    typeof last.content === "string" ? [last.content] : (last.content as unknown[]);
  for (const b of blocks) {
    if (typeof b === "string" || (isObj(b) && b.type === "text")) {
      const scanned = scanDirectives(
        typeof b === "string" ? b : str(b.text),
        turn.toolCalls,
        behaviorJson,
      );
      if (typeof scanned !== "string") return scanned;
      texts.push(scanned);
    } else if (isObj(b) && b.type === "tool_result") {
      const scanned = scanDirectives(toolResultText(b.content), turn.toolCalls, behaviorJson);
      if (typeof scanned !== "string") return scanned;
      turn.toolResults.push({
        id: str(b.tool_use_id),
        text: scanned.trim(),
        isError: b.is_error === true,
      });
    }
  }
  turn.text = texts.join("\n").trim();
  for (const json of behaviorJson) {
    const parsed = parseBehavior(json, "[[fake:...]] directive");
    if (isRequestError(parsed)) return parsed;
    turn.behavior = { ...turn.behavior, ...parsed };
  }
  return turn;
}

// ---------------------------------------------------------------------------------------
// Reply generation
// ---------------------------------------------------------------------------------------

type ReplyBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown; json: string };

interface Reply {
  blocks: ReplyBlock[];
  stopReason: "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";
  stopSequence: string | null;
  outputTokens: number;
}

const FILLER = " lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor";

function pad(text: string, minChars: number): string {
  if (text.length >= minChars) return text;
  let out = text;
  while (out.length < minChars) out += FILLER;
  return out.slice(0, minChars);
}

function generateReply(
  body: MessagesBody,
  turn: UserTurn,
  behavior: FakeBehavior,
  nextToolId: () => string,
): Reply | RequestError {
  const toolChoiceNone = isObj(body.tool_choice) && body.tool_choice.type === "none";
  const calls = toolChoiceNone ? [] : turn.toolCalls;
  for (const call of calls) {
    const declared = (body.tools ?? []).some((t) => isObj(t) && t.name === call.name);
    if (!declared) {
      return invalid(
        `fake-anthropic: [[tool:${call.name}]] names a tool that is not in the request's tools`,
      );
    }
  }

  let text: string;
  if (behavior.reply !== undefined) text = behavior.reply;
  else if (calls.length > 0) text = `Calling ${calls.map((c) => c.name).join(", ")}.`;
  else {
    const lines = turn.toolResults.map(
      (r) => `Tool result ${r.id}${r.isError ? " (error)" : ""}: ${r.text}`,
    );
    if (turn.text || lines.length === 0) lines.push(`Echo: ${turn.text}`);
    text = lines.join("\n");
  }
  text = pad(text, Math.max(behavior.minReplyChars ?? 0, behavior.deltas ?? 0));

  let stopReason: Reply["stopReason"] = calls.length > 0 ? "tool_use" : "end_turn";
  let stopSequence: string | null = null;
  let keepCalls = calls;
  let cut = -1;
  for (const seq of body.stop_sequences ?? []) {
    const at = seq ? text.indexOf(seq) : -1;
    if (at >= 0 && (cut < 0 || at < cut)) {
      cut = at;
      stopSequence = seq;
    }
  }
  if (stopSequence !== null) {
    text = text.slice(0, cut);
    stopReason = "stop_sequence";
    keepCalls = [];
  }

  let outputTokens = estimateTokens(text);
  if (outputTokens > body.max_tokens) {
    text = text.slice(0, body.max_tokens * 4);
    outputTokens = body.max_tokens;
    stopReason = "max_tokens";
    stopSequence = null;
    keepCalls = [];
  }
  const blocks: ReplyBlock[] = [{ type: "text", text }];
  for (const call of keepCalls) {
    const cost = estimateTokens(call.name + call.json);
    if (outputTokens + cost > body.max_tokens) {
      stopReason = "max_tokens";
      break;
    }
    outputTokens += cost;
    blocks.push({
      type: "tool_use",
      id: nextToolId(),
      name: call.name,
      input: call.input,
      json: call.json,
    });
  }
  return { blocks, stopReason, stopSequence, outputTokens };
}

/**
 * The API leaves `citations` out of a text block that has none (the SDK types it `| null`, but a
 * client such as the Vercel AI SDK's provider rejects a null).
 */
type ApiContentBlock = Omit<Anthropic.TextBlock, "citations"> | Anthropic.ToolUseBlock;
type ApiMessage = Omit<Anthropic.Message, "content"> & { content: ApiContentBlock[] };
/** A batch result as the API writes it (its message's text blocks without `citations`). */
type ApiBatchResult =
  | Exclude<Anthropic.Messages.MessageBatchResult, { type: "succeeded" }>
  | { type: "succeeded"; message: ApiMessage };

function contentOf(block: ReplyBlock): ApiContentBlock {
  return block.type === "text"
    ? { type: "text", text: block.text }
    : {
        type: "tool_use",
        id: block.id,
        name: block.name,
        input: block.input,
        caller: { type: "direct" },
      };
}

function usageOf(
  inputTokens: number,
  cache: CacheUsage,
  outputTokens: number,
  tier: "standard" | "batch",
): Anthropic.Usage {
  return {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: cache.write5m + cache.write1h,
    cache_read_input_tokens: cache.read,
    cache_creation: {
      ephemeral_5m_input_tokens: cache.write5m,
      ephemeral_1h_input_tokens: cache.write1h,
    },
    inference_geo: null,
    output_tokens_details: null,
    server_tool_use: null,
    service_tier: tier,
    speed: null,
  };
}

// ---------------------------------------------------------------------------------------
// Faults as HTTP responses
// ---------------------------------------------------------------------------------------

const STATUS_OF: Record<FakeErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  timeout_error: 504,
  api_error: 500,
  overloaded_error: 529,
};

interface HttpFault extends RequestError {
  headers?: Record<string, string>;
  details?: { error_code: string };
}

const OVERLOADED = "Overloaded";
const INTERNAL = "Internal server error";

function httpFaultOf(fault: FakeFault, now: number): HttpFault | "disconnect" {
  switch (fault.kind) {
    case "rate_limit": {
      const seconds = fault.retryAfterSeconds ?? 1;
      const headers: Record<string, string> = {
        "retry-after": String(seconds),
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": new Date(now + seconds * 1000).toISOString(),
      };
      if (fault.retryAfterMs !== undefined) headers["retry-after-ms"] = String(fault.retryAfterMs);
      return {
        status: 429,
        type: "rate_limit_error",
        message:
          "This request would exceed the rate limit for your organization of 50 requests per minute. " +
          "For details, refer to: https://docs.claude.com/en/api/rate-limits. " +
          "You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
        headers,
      };
    }
    case "spend_limit": {
      const d = new Date(now);
      const resetsOn = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1))
        .toISOString()
        .slice(0, 10);
      const message = `You have reached your specified API usage limits. You will regain access on ${resetsOn} at 00:00 UTC.`;
      const headers = { "x-should-retry": "false" };
      return fault.status === 400
        ? { status: 400, type: "invalid_request_error", message, headers }
        : {
            status: 429,
            type: "rate_limit_error",
            message,
            headers,
            details: { error_code: "enforced_spend_limit_reached" },
          };
    }
    case "overloaded":
      return { status: 529, type: "overloaded_error", message: OVERLOADED };
    case "api_error":
      return { status: 500, type: "api_error", message: INTERNAL };
    case "http_error":
      return {
        status: fault.status,
        type: fault.type,
        message: fault.message ?? `Injected ${fault.type}`,
        headers: fault.headers,
      };
    case "stream_error": {
      const type = fault.errorType ?? "overloaded_error";
      return { status: STATUS_OF[type], type, message: fault.message ?? defaultMessage(type) };
    }
    case "disconnect":
      return "disconnect";
  }
}

const defaultMessage = (type: FakeErrorType): string =>
  type === "overloaded_error" ? OVERLOADED : type === "api_error" ? INTERNAL : `Injected ${type}`;

// ---------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------

const DEFAULT_RECORDED_HEADERS = [
  "x-api-key",
  "authorization",
  "anthropic-version",
  "anthropic-beta",
  "content-type",
  "accept",
  "user-agent",
  "idempotency-key",
  "x-stainless-retry-count",
  "x-stainless-timeout",
  "x-fake-behavior",
];

/** Fixed-capacity ring buffer: benchmark runs must not grow memory with request count. */
class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    if (this.capacity === 0) return;
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  last(): T | undefined {
    return this.size === 0
      ? undefined
      : this.items[(this.next - 1 + this.capacity) % this.capacity];
  }

  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.size + this.capacity) % Math.max(this.capacity, 1);
    for (let i = 0; i < this.size; i++) out.push(this.items[(start + i) % this.capacity]!);
    return out;
  }

  clear(): void {
    this.items.fill(undefined);
    this.next = 0;
    this.size = 0;
  }
}

// ---------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------

interface BatchEntry {
  id: string;
  createdAt: number;
  requests: { custom_id: string; params: MessagesBody }[];
  cancelInitiatedAt: number | null;
  endedAt: number | null;
  results: { custom_id: string; result: ApiBatchResult }[] | null;
}

const BATCH_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_BATCHES = 1000;
const MAX_FAIL_FIRST_KEYS = 10_000;

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const DEFAULT_DELTA_CHARS = 16;

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  record: RecordedRequest | undefined;
}

/** Splits `s` into `count` near-equal chunks (one per 16 chars if unset), never inside a surrogate pair. */
function chunks(s: string, count: number | undefined): string[] {
  if (s.length === 0) return [];
  const n =
    count === undefined ? Math.ceil(s.length / DEFAULT_DELTA_CHARS) : Math.min(count, s.length);
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i <= n; i++) {
    let end = i === n ? s.length : Math.round((i * s.length) / n);
    const c = s.charCodeAt(end - 1);
    if (end < s.length && c >= 0xd800 && c <= 0xdbff) end++;
    if (end > start) out.push(s.slice(start, end));
    start = end;
  }
  return out;
}

/** Buffers SSE events between awaits so a stream with no delays is one socket write. */
class SseWriter {
  private buf = "";
  closed = false;

  constructor(private readonly res: ServerResponse) {
    res.once("close", () => {
      this.closed = true;
    });
  }

  event(type: string, data: object): void {
    this.buf += `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  flush(): void {
    if (this.buf && !this.closed) this.res.write(this.buf);
    this.buf = "";
  }

  end(): void {
    if (!this.closed) this.res.end(this.buf);
    this.buf = "";
  }

  /** Sends what is buffered, then cuts the connection without a proper end. */
  destroy(): void {
    const socket = this.res.socket;
    if (this.closed || !socket) return;
    if (this.buf) this.res.write(this.buf, () => socket.destroy());
    else socket.destroy();
    this.buf = "";
  }
}

class FakeAnthropicServer implements FakeAnthropic {
  url = "";
  port = 0;
  private readonly server: Server;
  private readonly apiKeys: ReadonlySet<string> | null;
  private readonly recordedHeaders: readonly string[];
  private readonly ring: Ring<RecordedRequest>;
  private readonly cache: PromptCache;
  private behavior: FakeBehavior;
  private faultQueue: FakeFault[] = [];
  private failFirstCounts = new Map<string, number>();
  private batches = new Map<string, BatchEntry>();
  private seq = 0;
  private idSeq = 0;

  constructor(private readonly options: FakeAnthropicOptions) {
    const key = options.apiKey === undefined ? FAKE_API_KEY : options.apiKey;
    this.apiKeys = key === null ? null : new Set(typeof key === "string" ? [key] : key);
    this.recordedHeaders = [...DEFAULT_RECORDED_HEADERS, ...(options.recordHeaders ?? [])];
    this.ring = new Ring(options.maxRecorded ?? 1000);
    this.cache = new PromptCache(options.maxCachedPrefixes ?? 10_000, options.now);
    this.behavior = { ...options.behavior };
    // noDelay: small SSE writes must leave at once, not wait on Nagle + delayed ACK (~40 ms).
    this.server = createServer({ noDelay: true }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          this.sendError(
            { req, res, requestId: "req_fake_internal", record: undefined },
            { status: 500, type: "api_error", message: `fake-anthropic bug: ${String(err)}` },
          );
        } else res.destroy();
      });
    });
  }

  async listen(): Promise<void> {
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      // A deep accept queue, as the service's (node-server.ts LISTEN_BACKLOG): at Node's default
      // (511) the benchmark's bursts of new upstream connections overflowed it and each dropped
      // SYN cost its stream a 1 s retransmit, charged to the path under test.
      this.server.listen({ port: this.options.port ?? 0, host, backlog: 4096 }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.url = `http://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  get requests(): RecordedRequest[] {
    return this.ring.toArray();
  }

  get requestCount(): number {
    return this.seq;
  }

  lastRequest(): RecordedRequest | undefined {
    return this.ring.last();
  }

  setBehavior(behavior: FakeBehavior): void {
    this.behavior = { ...this.behavior, ...behavior };
  }

  failNext(times: number, fault: FakeFault): void {
    for (let i = 0; i < times; i++) this.faultQueue.push(fault);
  }

  clearRequests(): void {
    this.ring.clear();
  }

  reset(): void {
    this.behavior = { ...this.options.behavior };
    this.faultQueue = [];
    this.failFirstCounts.clear();
    this.batches.clear();
    this.cache.clear();
    this.ring.clear();
    this.seq = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // Keep-alive connections from SDK clients would otherwise hold close() open.
      this.server.closeAllConnections();
    });
  }

  private nextId(prefix: string): string {
    return prefix + (++this.idSeq).toString(36).padStart(16, "0");
  }

  private minCacheableTokens(model: string): number {
    return (
      this.options.minCacheableTokensByModel?.[model] ??
      this.options.minCacheableTokens ??
      DEFAULT_MIN_CACHEABLE_TOKENS
    );
  }

  // -------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seq = ++this.seq;
    const requestId = `req_fake${seq.toString(36).padStart(16, "0")}`;
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method ?? "GET";
    const ctx: Ctx = { req, res, requestId, record: undefined };

    let rawBody: unknown;
    if (method === "POST") {
      const text = await readBody(req);
      if (text === null) {
        this.recordRequest(ctx, seq, method, path, undefined);
        return this.sendError(ctx, {
          status: 413,
          type: "request_too_large",
          message: "Request exceeds the maximum allowed number of bytes.",
        });
      }
      if (text !== "") {
        try {
          rawBody = JSON.parse(text);
        } catch {
          this.recordRequest(ctx, seq, method, path, undefined);
          return this.sendError(
            ctx,
            invalid("There was an issue with the request body: invalid JSON"),
          );
        }
      }
    }
    this.recordRequest(ctx, seq, method, path, rawBody);

    const authError = this.checkHeaders(req);
    if (authError) return this.sendError(ctx, authError);

    let headerBehavior: FakeBehavior | undefined;
    const header = req.headers["x-fake-behavior"];
    if (typeof header === "string" && header !== "") {
      const parsed = parseBehavior(header, "x-fake-behavior header");
      if (isRequestError(parsed)) return this.sendError(ctx, parsed);
      headerBehavior = parsed;
    }

    if (path === "/v1/messages") {
      if (method !== "POST") return this.notFound(ctx);
      return this.handleMessages(ctx, rawBody, headerBehavior);
    }
    // Faults are for the generation endpoint; the others only honour latency.
    const latency = headerBehavior?.latencyMs ?? this.behavior.latencyMs ?? 0;
    if (latency > 0) await sleep(latency);

    if (path === "/v1/messages/count_tokens") {
      if (method !== "POST") return this.notFound(ctx);
      const body = parseMessagesBody(rawBody, false);
      if (isRequestError(body)) return this.sendError(ctx, body);
      const count: Anthropic.MessageTokensCount = { input_tokens: estimateInputTokens(body) };
      return this.sendJson(ctx, 200, count);
    }
    if (path === "/v1/messages/batches") {
      if (method === "POST") return this.createBatch(ctx, rawBody);
      if (method === "GET") return this.listBatches(ctx);
      return this.notFound(ctx);
    }
    if (path.startsWith("/v1/messages/batches/")) {
      const [id, action, extra] = path.slice("/v1/messages/batches/".length).split("/");
      if (!id || extra !== undefined) return this.notFound(ctx);
      if (action === undefined && method === "GET") return this.retrieveBatch(ctx, id);
      if (action === undefined && method === "DELETE") return this.deleteBatch(ctx, id);
      if (action === "results" && method === "GET") return this.batchResults(ctx, id);
      if (action === "cancel" && method === "POST") return this.cancelBatch(ctx, id);
    }
    return this.notFound(ctx);
  }

  private recordRequest(ctx: Ctx, seq: number, method: string, path: string, body: unknown): void {
    const headers: Record<string, string> = {};
    for (const name of this.recordedHeaders) {
      const v = ctx.req.headers[name];
      if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(", ") : v;
    }
    const record: RecordedRequest = {
      seq,
      requestId: ctx.requestId,
      method,
      path,
      headers,
      body,
      stream: isObj(body) && body.stream === true,
      receivedAt: Date.now(),
    };
    ctx.record = record;
    this.ring.push(record);
  }

  private checkHeaders(req: IncomingMessage): RequestError | null {
    // SDK 1.x sends the API key as `Authorization: Bearer <key>`; older clients and curl
    // send `x-api-key`. The API takes either, so the fake does too.
    const auth = req.headers.authorization;
    const key =
      req.headers["x-api-key"] ??
      (auth !== undefined && auth.startsWith("Bearer ") ? auth.slice(7) : undefined);
    if (typeof key !== "string" || key === "") {
      return { status: 401, type: "authentication_error", message: "x-api-key header is required" };
    }
    if (this.apiKeys !== null && !this.apiKeys.has(key)) {
      return { status: 401, type: "authentication_error", message: "invalid x-api-key" };
    }
    if (typeof req.headers["anthropic-version"] !== "string") {
      return invalid("anthropic-version: header is required");
    }
    return null;
  }

  /** Picks the fault for a `/v1/messages` request, following the documented precedence. */
  private pickFault(perRequest: FakeBehavior | undefined): FakeFault | undefined {
    if (perRequest && (perRequest.fault !== undefined || perRequest.failFirst !== undefined)) {
      const ff = perRequest.failFirst;
      if (ff) {
        const used = this.failFirstCounts.get(ff.key) ?? 0;
        if (used < ff.times) {
          if (
            !this.failFirstCounts.has(ff.key) &&
            this.failFirstCounts.size >= MAX_FAIL_FIRST_KEYS
          ) {
            const oldest = this.failFirstCounts.keys().next();
            if (!oldest.done) this.failFirstCounts.delete(oldest.value);
          }
          this.failFirstCounts.set(ff.key, used + 1);
          return ff.fault;
        }
      }
      return perRequest.fault;
    }
    return this.faultQueue.shift() ?? this.behavior.fault;
  }

  private async handleMessages(
    ctx: Ctx,
    rawBody: unknown,
    headerBehavior: FakeBehavior | undefined,
  ): Promise<void> {
    const body = parseMessagesBody(rawBody, true);
    if (isRequestError(body)) return this.sendError(ctx, body);
    const turn = readUserTurn(body.messages);
    if (isRequestError(turn)) return this.sendError(ctx, turn);
    const prompt = analysePrompt(body);
    if (prompt.breakpoints > MAX_CACHE_BREAKPOINTS) {
      return this.sendError(
        ctx,
        invalid(
          `A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found ${prompt.breakpoints}.`,
        ),
      );
    }

    const perRequest =
      headerBehavior && turn.behavior
        ? { ...headerBehavior, ...turn.behavior }
        : (headerBehavior ?? turn.behavior);
    const behavior = perRequest ? { ...this.behavior, ...perRequest } : this.behavior;
    const fault = this.pickFault(perRequest);
    if (fault && ctx.record) ctx.record.fault = fault.kind;

    if ((behavior.latencyMs ?? 0) > 0) await sleep(behavior.latencyMs!);
    if (fault && (!body.stream || (fault.kind !== "stream_error" && fault.kind !== "disconnect"))) {
      const http = httpFaultOf(fault, Date.now());
      if (http === "disconnect") {
        ctx.req.socket.destroy();
        return;
      }
      return this.sendError(ctx, http);
    }

    const reply = generateReply(body, turn, behavior, () => this.nextId("toolu_fake"));
    if (isRequestError(reply)) return this.sendError(ctx, reply);
    const cache =
      prompt.breakpoints > 0
        ? this.cache.apply(body, this.minCacheableTokens(body.model))
        : NO_CACHE;
    const inputTokens = prompt.totalTokens - cache.read - cache.write5m - cache.write1h;
    const id = this.nextId("msg_fake");

    if (!body.stream) {
      const message: ApiMessage = {
        id,
        type: "message",
        role: "assistant",
        model: body.model,
        content: reply.blocks.map(contentOf),
        stop_reason: reply.stopReason,
        stop_sequence: reply.stopSequence,
        stop_details: null,
        container: null,
        diagnostics: null,
        usage: usageOf(
          inputTokens,
          cache,
          behavior.reportedOutputTokens ?? reply.outputTokens,
          "standard",
        ),
      };
      return this.sendJson(ctx, 200, message);
    }
    return this.stream(ctx, body, id, reply, inputTokens, cache, behavior, fault);
  }

  private async stream(
    ctx: Ctx,
    body: MessagesBody,
    id: string,
    reply: Reply,
    inputTokens: number,
    cache: CacheUsage,
    behavior: FakeBehavior,
    fault: FakeFault | undefined,
  ): Promise<void> {
    const { res } = ctx;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "request-id": ctx.requestId,
    });
    if (ctx.record) ctx.record.status = 200;
    const w = new SseWriter(res);

    const start: Anthropic.RawMessageStartEvent = {
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model: body.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        stop_details: null,
        container: null,
        diagnostics: null,
        // As the real API does: input side final, output a placeholder until message_delta.
        usage: usageOf(inputTokens, cache, Math.min(1, reply.outputTokens), "standard"),
      },
    };
    w.event("message_start", start);

    const breakAfter =
      fault?.kind === "stream_error" || fault?.kind === "disconnect"
        ? (fault.afterDeltas ?? 0)
        : -1;
    let sent = 0;
    let firstDeltaAt = 0;
    for (let index = 0; index < reply.blocks.length; index++) {
      const block = reply.blocks[index]!;
      // As the API sends it: a text block starts as {type, text: ""}, without citations.
      const startEvent: Omit<Anthropic.RawContentBlockStartEvent, "content_block"> & {
        content_block: ApiContentBlock;
      } = {
        type: "content_block_start",
        index,
        content_block:
          block.type === "text"
            ? { type: "text", text: "" }
            : {
                type: "tool_use",
                id: block.id,
                name: block.name,
                input: {},
                caller: { type: "direct" },
              },
      };
      w.event("content_block_start", startEvent);
      if (index === 0) w.event("ping", { type: "ping" });
      // The real API opens a tool_use block with an empty partial_json; clients must cope.
      const parts =
        block.type === "text"
          ? chunks(block.text, behavior.deltas)
          : ["", ...chunks(block.json, behavior.deltas)];
      for (const part of parts) {
        if (sent === breakAfter) return this.breakStream(ctx, w, fault!);
        // Deadlines count from the first delta rather than chaining sleeps, so timer jitter
        // does not pile up: 64 deltas at 20 ms take 1.26 s, as a benchmark expects.
        const interval = behavior.deltaIntervalMs ?? 0;
        const wait =
          sent === 0
            ? (behavior.firstTokenDelayMs ?? 0)
            : interval > 0
              ? firstDeltaAt + sent * interval - performance.now()
              : 0;
        if (wait >= 1) {
          w.flush();
          await sleep(wait);
          if (w.closed) return;
        }
        const delta: Anthropic.RawContentBlockDeltaEvent = {
          type: "content_block_delta",
          index,
          delta:
            block.type === "text"
              ? { type: "text_delta", text: part }
              : { type: "input_json_delta", partial_json: part },
        };
        w.event("content_block_delta", delta);
        if (sent++ === 0) firstDeltaAt = performance.now();
      }
      w.event("content_block_stop", {
        type: "content_block_stop",
        index,
      } satisfies Anthropic.RawContentBlockStopEvent);
    }
    if (breakAfter >= 0) return this.breakStream(ctx, w, fault!);

    const messageDelta: Anthropic.RawMessageDeltaEvent = {
      type: "message_delta",
      delta: {
        stop_reason: reply.stopReason,
        stop_sequence: reply.stopSequence,
        stop_details: null,
        container: null,
      },
      usage: {
        input_tokens: inputTokens,
        output_tokens: behavior.reportedOutputTokens ?? reply.outputTokens,
        cache_creation_input_tokens: cache.write5m + cache.write1h,
        cache_read_input_tokens: cache.read,
        output_tokens_details: null,
        server_tool_use: null,
      },
    };
    w.event("message_delta", messageDelta);
    w.event("message_stop", { type: "message_stop" } satisfies Anthropic.RawMessageStopEvent);
    w.end();
  }

  private breakStream(ctx: Ctx, w: SseWriter, fault: FakeFault): void {
    if (fault.kind === "disconnect") return w.destroy();
    const http = httpFaultOf(fault, Date.now());
    if (http === "disconnect") return w.destroy();
    w.event("error", {
      type: "error",
      error: { type: http.type, message: http.message },
      request_id: ctx.requestId,
    });
    w.end();
  }

  // ---- batches --------------------------------------------------------------------------

  private createBatch(ctx: Ctx, rawBody: unknown): void {
    if (!isObj(rawBody) || !Array.isArray(rawBody.requests))
      return this.sendError(ctx, invalid("requests: Field required"));
    if (rawBody.requests.length === 0)
      return this.sendError(ctx, invalid("requests: List should have at least 1 item"));
    const requests: BatchEntry["requests"] = [];
    const ids = new Set<string>();
    for (let i = 0; i < rawBody.requests.length; i++) {
      const r: unknown = rawBody.requests[i];
      if (!isObj(r) || typeof r.custom_id !== "string" || r.custom_id === "") {
        return this.sendError(ctx, invalid(`requests.${i}.custom_id: Field required`));
      }
      if (ids.has(r.custom_id)) {
        return this.sendError(
          ctx,
          invalid(`requests.${i}.custom_id: duplicate custom_id '${r.custom_id}'`),
        );
      }
      ids.add(r.custom_id);
      const params = parseMessagesBody(r.params, true, `requests.${i}.params.`);
      if (isRequestError(params)) return this.sendError(ctx, params);
      if (params.stream)
        return this.sendError(
          ctx,
          invalid(`requests.${i}.params.stream: streaming is not supported in batches`),
        );
      requests.push({ custom_id: r.custom_id, params });
    }
    if (this.batches.size >= MAX_BATCHES) {
      const oldest = this.batches.keys().next();
      if (!oldest.done) this.batches.delete(oldest.value);
    }
    const batch: BatchEntry = {
      id: this.nextId("msgbatch_fake"),
      createdAt: Date.now(),
      requests,
      cancelInitiatedAt: null,
      endedAt: null,
      results: null,
    };
    this.batches.set(batch.id, batch);
    this.sendJson(ctx, 200, this.batchView(batch));
  }

  private findBatch(ctx: Ctx, id: string): BatchEntry | undefined {
    const batch = this.batches.get(id);
    if (!batch) {
      this.sendError(ctx, {
        status: 404,
        type: "not_found_error",
        message: `Message batch ${id} not found`,
      });
      return undefined;
    }
    this.advanceBatch(batch);
    return batch;
  }

  private retrieveBatch(ctx: Ctx, id: string): void {
    const batch = this.findBatch(ctx, id);
    if (batch) this.sendJson(ctx, 200, this.batchView(batch));
  }

  private listBatches(ctx: Ctx): void {
    // Newest first, as the real list endpoint pages.
    const data = [...this.batches.values()].reverse().map((b) => {
      this.advanceBatch(b);
      return this.batchView(b);
    });
    this.sendJson(ctx, 200, {
      data,
      has_more: false,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
    });
  }

  private cancelBatch(ctx: Ctx, id: string): void {
    const batch = this.findBatch(ctx, id);
    if (!batch) return;
    // Cancelling an ended batch changes nothing; the real API answers with the batch too.
    if (batch.endedAt === null && batch.cancelInitiatedAt === null)
      batch.cancelInitiatedAt = Date.now();
    this.sendJson(ctx, 200, this.batchView(batch));
  }

  private deleteBatch(ctx: Ctx, id: string): void {
    const batch = this.findBatch(ctx, id);
    if (!batch) return;
    if (batch.endedAt === null) {
      return this.sendError(
        ctx,
        invalid(`Batch ${id} cannot be deleted while processing; cancel it first`),
      );
    }
    this.batches.delete(id);
    this.sendJson(ctx, 200, {
      id,
      type: "message_batch_deleted",
    } satisfies Anthropic.Messages.DeletedMessageBatch);
  }

  private batchResults(ctx: Ctx, id: string): void {
    const batch = this.findBatch(ctx, id);
    if (!batch) return;
    if (!batch.results) {
      return this.sendError(
        ctx,
        invalid(
          `Batch ${id} has not ended yet; results are available once processing_status is 'ended'`,
        ),
      );
    }
    let jsonl = "";
    for (const r of batch.results) jsonl += JSON.stringify(r) + "\n";
    this.send(ctx, 200, jsonl, "application/binary");
  }

  /** Moves a batch on as time passes: a cancelled batch ends at the next look, others after the delay. */
  private advanceBatch(batch: BatchEntry): void {
    if (batch.endedAt !== null) return;
    const now = Date.now();
    if (batch.cancelInitiatedAt !== null && batch.cancelInitiatedAt < now) {
      batch.results = batch.requests.map((r) => ({
        custom_id: r.custom_id,
        result: { type: "canceled" },
      }));
      batch.endedAt = now;
    } else if (
      batch.cancelInitiatedAt === null &&
      now - batch.createdAt >= (this.options.batchDelayMs ?? 100)
    ) {
      batch.results = batch.requests.map((r) => ({
        custom_id: r.custom_id,
        result: this.runBatchItem(r.params),
      }));
      batch.endedAt = now;
    }
  }

  private runBatchItem(params: MessagesBody): ApiBatchResult {
    const errored = (e: RequestError): ApiBatchResult => ({
      type: "errored",
      error: {
        type: "error",
        error: { type: e.type, message: e.message } as Anthropic.ErrorObject,
        request_id: null,
      },
    });
    const turn = readUserTurn(params.messages);
    if (isRequestError(turn)) return errored(turn);
    // Only `[[fake:...]]` directives inject faults into batch items: the failNext queue and
    // global fault model live traffic, which a batch is not.
    const behavior = turn.behavior ? { ...this.behavior, ...turn.behavior } : this.behavior;
    const ownsFault = turn.behavior?.fault !== undefined || turn.behavior?.failFirst !== undefined;
    const fault = ownsFault ? this.pickFault(turn.behavior) : undefined;
    if (fault) {
      const http = httpFaultOf(fault, Date.now());
      return errored(
        http === "disconnect" ? { status: 500, type: "api_error", message: INTERNAL } : http,
      );
    }
    const prompt = analysePrompt(params);
    if (prompt.breakpoints > MAX_CACHE_BREAKPOINTS) {
      return errored(
        invalid(
          `A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found ${prompt.breakpoints}.`,
        ),
      );
    }
    const reply = generateReply(params, turn, behavior, () => this.nextId("toolu_fake"));
    if (isRequestError(reply)) return errored(reply);
    const cache =
      prompt.breakpoints > 0
        ? this.cache.apply(params, this.minCacheableTokens(params.model))
        : NO_CACHE;
    return {
      type: "succeeded",
      message: {
        id: this.nextId("msg_fake"),
        type: "message",
        role: "assistant",
        model: params.model,
        content: reply.blocks.map(contentOf),
        stop_reason: reply.stopReason,
        stop_sequence: reply.stopSequence,
        stop_details: null,
        container: null,
        diagnostics: null,
        usage: usageOf(
          prompt.totalTokens - cache.read - cache.write5m - cache.write1h,
          cache,
          behavior.reportedOutputTokens ?? reply.outputTokens,
          "batch",
        ),
      },
    };
  }

  private batchView(batch: BatchEntry): Anthropic.Messages.MessageBatch {
    const counts: Anthropic.Messages.MessageBatchRequestCounts = {
      processing: 0,
      succeeded: 0,
      errored: 0,
      canceled: 0,
      expired: 0,
    };
    if (batch.results) for (const r of batch.results) counts[r.result.type]++;
    else counts.processing = batch.requests.length;
    const iso = (ms: number | null): string | null =>
      ms === null ? null : new Date(ms).toISOString();
    return {
      id: batch.id,
      type: "message_batch",
      processing_status:
        batch.endedAt !== null
          ? "ended"
          : batch.cancelInitiatedAt !== null
            ? "canceling"
            : "in_progress",
      request_counts: counts,
      created_at: new Date(batch.createdAt).toISOString(),
      expires_at: new Date(batch.createdAt + BATCH_TTL_MS).toISOString(),
      ended_at: iso(batch.endedAt),
      cancel_initiated_at: iso(batch.cancelInitiatedAt),
      archived_at: null,
      results_url:
        batch.endedAt !== null ? `${this.url}/v1/messages/batches/${batch.id}/results` : null,
    };
  }

  // ---- responses ------------------------------------------------------------------------

  private notFound(ctx: Ctx): void {
    this.sendError(ctx, {
      status: 404,
      type: "not_found_error",
      message: `${ctx.req.method} ${ctx.req.url} not found`,
    });
  }

  private sendError(ctx: Ctx, err: HttpFault | RequestError): void {
    const details = "details" in err ? err.details : undefined;
    const body = JSON.stringify({
      type: "error",
      error: details
        ? { type: err.type, message: err.message, details }
        : { type: err.type, message: err.message },
      request_id: ctx.requestId,
    });
    this.send(
      ctx,
      err.status,
      body,
      "application/json",
      "headers" in err ? err.headers : undefined,
    );
  }

  private sendJson(ctx: Ctx, status: number, value: unknown): void {
    this.send(ctx, status, JSON.stringify(value), "application/json");
  }

  private send(
    ctx: Ctx,
    status: number,
    body: string,
    contentType: string,
    extra?: Record<string, string>,
  ): void {
    if (ctx.record) ctx.record.status = status;
    const headers: Record<string, string | number> = {
      "content-type": contentType,
      "content-length": Buffer.byteLength(body),
      "request-id": ctx.requestId,
    };
    if (extra) Object.assign(headers, extra);
    ctx.res.writeHead(status, headers);
    ctx.res.end(body);
  }
}

/** Reads the body as UTF-8; `null` when it exceeds the API's request size limit. */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else parts.push(chunk);
    });
    req.on("end", () =>
      resolve(
        tooLarge
          ? null
          : parts.length === 1
            ? parts[0]!.toString("utf8")
            : Buffer.concat(parts).toString("utf8"),
      ),
    );
    req.on("error", reject);
  });
}

/**
 * Starts the fake on 127.0.0.1 (ephemeral port unless `port` is given).
 *
 * @example
 * const fake = await startFakeAnthropic({ minCacheableTokens: 1024 });
 * const client = new Anthropic({ baseURL: fake.url, apiKey: FAKE_API_KEY, maxRetries: 0 });
 * fake.failNext(2, { kind: "overloaded" });
 * // ... exercise the code under test, then:
 * expect(fake.requests.map((r) => r.status)).toEqual([529, 529, 200]);
 * await fake.close();
 */
export async function startFakeAnthropic(
  options: FakeAnthropicOptions = {},
): Promise<FakeAnthropic> {
  const fake = new FakeAnthropicServer(options);
  await fake.listen();
  return fake;
}
