/**
 * The offline model used when no ANTHROPIC_API_KEY is configured, so `npm start` works on a
 * laptop with nothing else. Its answers are deterministic, free, and say they are synthetic.
 *
 * It speaks the Messages protocol as the API does, so clients built on it (the official SDK, the
 * Vercel AI SDK, LangChain) work against it unchanged:
 * - text blocks carry no `citations` key: the API sends one only when a block cites something,
 *   and the Vercel AI SDK's response schema rejects `citations: null`;
 * - `tool_choice` `{type: "tool", name}` or `{type: "any"}` answers with a `tool_use` block and no
 *   text before it ("the model will not emit a natural language response or explanation before
 *   tool_use content blocks": platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use,
 *   "Forcing tool use"), its input a value of the tool's `input_schema`; with tools offered and
 *   `tool_choice` auto, a tool the last user turn names is called (never in reply to tool results,
 *   so a client's tool loop ends);
 * - `output_config.format` (`output_format` in the beta) of type `json_schema` answers with one
 *   text block holding a JSON value of the schema (structured outputs);
 * - answers in prose start with SYNTHETIC_NOTICE; a JSON answer and a forced tool call cannot
 *   carry it, and are labelled by the `x-agent-synthetic` response header only;
 * - `stop_sequences`: the text ends before the earliest one, `stop_reason: "stop_sequence"` and
 *   `stop_sequence` names it; `max_tokens` cuts the answer (`stop_reason: "max_tokens"`; a tool call
 *   that no longer fits is dropped);
 * - streams send the same content as `content_block_start` / `content_block_delta` events,
 *   `input_json_delta` for a tool's input (platform.claude.com/docs/en/build-with-claude/streaming).
 *
 * Tokens are counted as the service's estimators count them: input with budget/estimate.ts (what
 * count_tokens answers offline), output at 4 characters a token.
 */
import { randomBytes } from "node:crypto";
import { estimateInputTokens } from "../budget/estimate";
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

const CHARS_PER_TOKEN = 4;
/** Size of the `partial_json` pieces a streamed tool input is sent in. */
const JSON_DELTA_CHARS = 24;

type JsonSchema = Record<string, unknown>;
type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";

/** A content block as the API sends it (the SDK's TextBlock type has `citations: ... | null`; the wire omits it). */
type WireBlock =
  { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: unknown };

interface Reply {
  blocks: WireBlock[];
  stopReason: StopReason;
  stopSequence: string | null;
  outputTokens: number;
}

interface CustomTool {
  name: string;
  inputSchema: JsonSchema;
}

export class OfflineProvider implements LlmProvider {
  readonly synthetic = true;

  async createMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): Promise<MessageResponse> {
    if (options.signal?.aborted) throw new UpstreamError(499, "aborted", "request aborted");
    const reply = compose(request);
    const stop = { reason: reply.stopReason, sequence: reply.stopSequence };
    return message(request, reply.blocks, stop, reply.outputTokens);
  }

  async *streamMessage(
    request: MessageRequest,
    options: CallOptions = {},
  ): AsyncIterable<StreamEvent> {
    const reply = compose(request);
    const check = () => {
      if (options.signal?.aborted) throw new UpstreamError(499, "aborted", "request aborted");
    };
    check();
    const start = message(request, [], { reason: null, sequence: null }, 1);
    yield wire({ type: "message_start", message: start });
    for (const [index, block] of reply.blocks.entries()) {
      const text = block.type === "text";
      yield wire({
        type: "content_block_start",
        index,
        content_block: text
          ? { type: "text", text: "" }
          : { type: "tool_use", id: block.id, name: block.name, input: {} },
      });
      // A keep-alive, where the API's own example stream has its first one (streaming docs).
      if (index === 0) yield wire({ type: "ping" });
      for (const piece of text ? textPieces(block.text) : jsonPieces(block.input)) {
        check();
        yield wire({
          type: "content_block_delta",
          index,
          delta: text
            ? { type: "text_delta", text: piece }
            : { type: "input_json_delta", partial_json: piece },
        });
      }
      yield wire({ type: "content_block_stop", index });
    }
    yield wire({
      type: "message_delta",
      delta: { stop_reason: reply.stopReason, stop_sequence: reply.stopSequence },
      usage: { output_tokens: reply.outputTokens },
    });
    yield wire({ type: "message_stop" });
  }
}

/** The message envelope; `usage` as the API reports it (every field present, no cache use). */
function message(
  request: MessageRequest,
  content: WireBlock[],
  stop: { reason: StopReason | null; sequence: string | null },
  outputTokens: number,
): MessageResponse {
  const envelope = {
    id: `msg_synthetic_${randomBytes(12).toString("hex")}`,
    type: "message",
    role: "assistant",
    model: SYNTHETIC_MODEL,
    content,
    stop_reason: stop.reason,
    stop_sequence: stop.sequence,
    usage: {
      // The service's one estimator, which POST /v1/messages/count_tokens answers with offline too.
      input_tokens: estimateInputTokens(request),
      output_tokens: outputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      service_tier: "standard",
    },
  };
  // The wire shape, which the SDK's Message type describes with fields the API leaves out.
  return envelope as unknown as MessageResponse;
}

/** One event as the API streams it (see WireBlock for why the SDK's type is not used to build it). */
function wire(event: Record<string, unknown> & { type: string }): StreamEvent {
  return event as unknown as StreamEvent;
}

const tokens = (chars: number) => Math.ceil(chars / CHARS_PER_TOKEN);

/** A text in stream deltas, a word each (whitespace kept, so the deltas add up to the text). */
const textPieces = (text: string): string[] => text.match(/\s*\S+\s*/g) ?? [];

/** A tool's input in `partial_json` pieces, which a client must join before parsing. */
function jsonPieces(input: unknown): string[] {
  const json = JSON.stringify(input);
  const pieces: string[] = [];
  for (let at = 0; at < json.length; at += JSON_DELTA_CHARS)
    pieces.push(json.slice(at, at + JSON_DELTA_CHARS));
  return pieces;
}

/** What the model answers: the blocks, why it stopped, and the output tokens they cost. */
export function compose(request: MessageRequest): Reply {
  const tools = customTools(request);
  const turn = lastUserTurn(request);
  const choice = request.tool_choice;
  const format = jsonFormat(request);
  let text: string;
  let call: CustomTool | undefined;
  if ((choice?.type === "tool" || choice?.type === "any") && tools.length > 0) {
    call =
      choice.type === "tool"
        ? tools.find((t) => t.name === choice.name)
        : (namedTool(tools, turn.text) ?? tools[0]);
    if (!call)
      throw new UpstreamError(
        400,
        "invalid_request_error",
        `tool_choice.name: no tool named ${JSON.stringify(choice.type === "tool" ? choice.name : "")} in tools`,
      );
    text = "";
  } else if (format) {
    text = JSON.stringify(sampleOf(format, { prompt: turn.text }));
  } else {
    call =
      choice?.type !== "none" && !turn.hasToolResults ? namedTool(tools, turn.text) : undefined;
    text = call
      ? `${SYNTHETIC_NOTICE} Calling ${call.name}.`
      : `${SYNTHETIC_NOTICE} You said: ${turn.text.slice(0, 400)}`.split(/\s+/).join(" ").trim();
  }

  const limitChars = Math.max(1, request.max_tokens) * CHARS_PER_TOKEN;
  const stop = earliestStop(text, request.stop_sequences ?? []);
  let stopReason: StopReason = call ? "tool_use" : "end_turn";
  let stopSequence: string | null = null;
  if (stop && stop.at <= limitChars) {
    text = text.slice(0, stop.at);
    stopReason = "stop_sequence";
    stopSequence = stop.sequence;
    call = undefined;
  } else if (text.length > limitChars) {
    text = text.slice(0, limitChars);
    stopReason = "max_tokens";
    call = undefined;
  }

  const blocks: WireBlock[] = text === "" ? [] : [{ type: "text", text }];
  let outputChars = text.length;
  if (call) {
    const input = sampleOf(call.inputSchema, { prompt: turn.text });
    const inputChars = JSON.stringify(input).length;
    if (outputChars + inputChars > limitChars) {
      // The API would send the tool call cut short; a partial input is of no use to anyone.
      stopReason = "max_tokens";
    } else {
      blocks.push({
        type: "tool_use",
        id: `toolu_synthetic_${randomBytes(12).toString("hex")}`,
        name: call.name,
        input,
      });
      outputChars += inputChars;
    }
  }
  return { blocks, stopReason, stopSequence, outputTokens: Math.max(1, tokens(outputChars)) };
}

/** Client tools (those with an `input_schema`); the API's server tools run on its side. */
function customTools(request: MessageRequest): CustomTool[] {
  const out: CustomTool[] = [];
  for (const tool of request.tools ?? []) {
    if ("input_schema" in tool && isObject(tool.input_schema))
      out.push({ name: tool.name, inputSchema: tool.input_schema as JsonSchema });
  }
  return out;
}

/** The tool the text names (`get_weather`, or `get weather`), the earliest mentioned first. */
function namedTool(tools: readonly CustomTool[], text: string): CustomTool | undefined {
  const lower = text.toLowerCase();
  let best: { tool: CustomTool; at: number } | undefined;
  for (const tool of tools) {
    const name = tool.name.toLowerCase();
    const at = [name, name.replace(/[_-]+/g, " ")]
      .map((n) => lower.search(new RegExp(`(^|[^a-z0-9_])${escapeRegExp(n)}($|[^a-z0-9_])`)))
      .filter((i) => i >= 0)
      .sort((a, b) => a - b)[0];
    if (at !== undefined && (!best || at < best.at)) best = { tool, at };
  }
  return best?.tool;
}

/** `output_config.format` (GA) or `output_format` (the structured-outputs beta), if JSON schema. */
function jsonFormat(request: MessageRequest): JsonSchema | undefined {
  const loose: Record<string, unknown> = { ...request };
  const candidates = [
    isObject(loose.output_config) ? loose.output_config.format : undefined,
    loose.output_format,
  ];
  for (const f of candidates) {
    if (isObject(f) && f.type === "json_schema" && isObject(f.schema)) return f.schema;
  }
  return undefined;
}

function earliestStop(
  text: string,
  sequences: readonly string[],
): { at: number; sequence: string } | undefined {
  let best: { at: number; sequence: string } | undefined;
  for (const sequence of sequences) {
    if (sequence === "") continue;
    const at = text.indexOf(sequence);
    if (at >= 0 && (!best || at < best.at)) best = { at, sequence };
  }
  return best;
}

/** The last user turn's text, tool results included, and whether it carries tool results. */
function lastUserTurn(request: MessageRequest): { text: string; hasToolResults: boolean } {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i];
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return { text: m.content, hasToolResults: false };
    const parts: string[] = [];
    let hasToolResults = false;
    for (const block of m.content) {
      if (block.type === "text") parts.push(block.text);
      else if (block.type === "tool_result") {
        hasToolResults = true;
        const c = block.content;
        parts.push(`tool result: ${typeof c === "string" ? c : JSON.stringify(c)}`);
      }
    }
    return { text: parts.join(" "), hasToolResults };
  }
  return { text: "", hasToolResults: false };
}

// ---- a value of a JSON schema ----------------------------------------------------------------

interface SampleContext {
  prompt: string;
  /** The schema `$ref`s resolve against. */
  root?: JsonSchema;
  /** The property or item this value is for (it names sample strings). */
  key?: string;
  /** Position among array items (makes items differ, for uniqueItems). */
  index?: number;
  /** Schemas followed so far ($ref, anyOf, properties, items): a bound on recursion. */
  depth?: number;
  /** Objects and arrays this value is inside. */
  nesting?: number;
}

const MAX_DEPTH = 32;

/**
 * A plausible value that satisfies `schema`: its `const`, `default`, first `example` or first
 * `enum` value when it has one, else one built from its type: every declared property of an
 * object (required ones included), `minItems` items of an array (at least one near the top), numbers within
 * their bounds and `multipleOf`, strings of the `format` asked for and within their lengths.
 * `pattern` is not honoured.
 */
export function sampleOf(schema: JsonSchema, ctx: SampleContext): unknown {
  const root = ctx.root ?? schema;
  const depth = ctx.depth ?? 0;
  const next = (s: unknown, over: Partial<SampleContext> = {}) =>
    isObject(s) ? sampleOf(s, { ...ctx, root, depth: depth + 1, ...over }) : null;
  if (depth > MAX_DEPTH) return null;

  if (typeof schema.$ref === "string") return next(resolveRef(root, schema.$ref));
  if ("const" in schema) return schema.const;
  if ("default" in schema && schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  const said = ctx.key === undefined ? undefined : valueInPrompt(ctx.key, ctx.prompt);
  if (Array.isArray(schema.enum) && schema.enum.length > 0) {
    const named = schema.enum.find((v) => said !== undefined && String(v) === said);
    return named ?? schema.enum[(ctx.index ?? 0) % schema.enum.length];
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) {
      const pick = options.find((o) => !(isObject(o) && o.type === "null")) ?? options[0];
      return next(pick, { depth });
    }
  }
  if (Array.isArray(schema.allOf)) return next(mergeAll(schema), { depth });

  switch (typeOf(schema)) {
    case "object": {
      const out: Record<string, unknown> = {};
      const props = isObject(schema.properties) ? schema.properties : {};
      const nesting = (ctx.nesting ?? 0) + 1;
      for (const [key, s] of Object.entries(props)) out[key] = next(s, { key, index: 0, nesting });
      return out;
    }
    case "array": {
      const min = typeof schema.minItems === "number" ? schema.minItems : 0;
      const max = typeof schema.maxItems === "number" ? schema.maxItems : Infinity;
      const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
      // One item near the top; deeper down only what minItems asks, so a recursive schema ends.
      const nesting = (ctx.nesting ?? 0) + 1;
      const count = Math.min(Math.max(min, prefix.length, nesting <= 3 ? 1 : 0), max);
      return Array.from({ length: count }, (_, i) =>
        next(prefix[i] ?? schema.items, { key: ctx.key, index: i, nesting }),
      );
    }
    case "integer":
    case "number": {
      const integer = typeOf(schema) === "integer";
      const n = said === undefined || ctx.index ? NaN : Number(said);
      if (Number.isFinite(n) && (!integer || Number.isInteger(n)) && fits(schema, n)) return n;
      return sampleNumber(schema, ctx.index ?? 0, integer);
    }
    case "boolean":
      return said === "false" ? false : true;
    case "string": {
      const min = typeof schema.minLength === "number" ? schema.minLength : 0;
      const max = typeof schema.maxLength === "number" ? schema.maxLength : Infinity;
      if (
        said !== undefined &&
        !ctx.index &&
        said.length >= min &&
        said.length <= max &&
        !schema.format
      )
        return said;
      return sampleString(schema, ctx);
    }
    default:
      return null;
  }
}

/**
 * A value the prompt gives for a property: `city: Paris`, `city = "New York"`, `count is 3`. A
 * demo asking for a tool call with some arguments gets those arguments.
 */
function valueInPrompt(key: string, prompt: string): string | undefined {
  if (key === "" || prompt === "") return undefined;
  const word = "[\\p{L}\\p{N}_]";
  const pattern = new RegExp(
    `(?<!${word})${escapeRegExp(key)}(?!${word})\\s*(?::|=|\\s+is\\s)\\s*(?:"([^"]*)"|'([^']*)'|(-?[\\p{L}\\p{N}_.]+))`,
    "iu",
  );
  const m = pattern.exec(prompt);
  const value = m?.[1] ?? m?.[2] ?? m?.[3]?.replace(/[.]+$/, "");
  return value === undefined || value === "" ? undefined : value;
}

function fits(schema: JsonSchema, n: number): boolean {
  const below = (bound: unknown, exclusive: boolean) =>
    typeof bound !== "number" || (exclusive ? n < bound : n <= bound);
  const above = (bound: unknown, exclusive: boolean) =>
    typeof bound !== "number" || (exclusive ? n > bound : n >= bound);
  return (
    above(schema.minimum, schema.exclusiveMinimum === true) &&
    above(schema.exclusiveMinimum, true) &&
    below(schema.maximum, schema.exclusiveMaximum === true) &&
    below(schema.exclusiveMaximum, true)
  );
}

function typeOf(schema: JsonSchema): string | undefined {
  const t = schema.type;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) return t.find((x) => x !== "null") ?? "null";
  if (isObject(schema.properties)) return "object";
  if (schema.items !== undefined || Array.isArray(schema.prefixItems)) return "array";
  return undefined;
}

function sampleNumber(schema: JsonSchema, index: number, integer: boolean): number {
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const step = integer ? 1 : 0.5;
  // Draft 4 has boolean exclusive flags; later drafts give the bound itself.
  const exMin = num(schema.exclusiveMinimum);
  const exMax = num(schema.exclusiveMaximum);
  const lo =
    exMin !== undefined
      ? exMin + step
      : schema.exclusiveMinimum === true && num(schema.minimum) !== undefined
        ? num(schema.minimum)! + step
        : num(schema.minimum);
  const hi =
    exMax !== undefined
      ? exMax - step
      : schema.exclusiveMaximum === true && num(schema.maximum) !== undefined
        ? num(schema.maximum)! - step
        : num(schema.maximum);
  let value = (lo !== undefined && lo > 1 ? lo : 1) + index;
  if (hi !== undefined && value > hi) value = lo !== undefined ? Math.max(lo, hi) : hi;
  const multiple = num(schema.multipleOf);
  if (multiple !== undefined && multiple > 0) {
    value = Math.ceil(value / multiple) * multiple;
    if (hi !== undefined && value > hi) value -= multiple;
  }
  return integer ? Math.ceil(value) : value;
}

const FORMATS: Readonly<Record<string, string>> = {
  "date-time": "2025-01-01T12:00:00Z",
  date: "2025-01-01",
  time: "12:00:00Z",
  duration: "PT1H",
  email: "user@example.com",
  hostname: "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
  uri: "https://example.com/",
  url: "https://example.com/",
  "uri-reference": "https://example.com/",
  uuid: "00000000-0000-4000-8000-000000000000",
};

function sampleString(schema: JsonSchema, ctx: SampleContext): string {
  const format = typeof schema.format === "string" ? FORMATS[schema.format] : undefined;
  let value = format ?? `sample ${ctx.key ?? "text"}${ctx.index ? ` ${ctx.index + 1}` : ""}`;
  const min = typeof schema.minLength === "number" ? schema.minLength : 0;
  const max = typeof schema.maxLength === "number" ? schema.maxLength : Infinity;
  if (value.length < min) value = value.padEnd(min, "x");
  if (value.length > max) value = value.slice(0, max);
  return value;
}

/** `#/$defs/x`, `#/definitions/x` and other pointers into the root schema. */
function resolveRef(root: JsonSchema, ref: string): unknown {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let at: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    at = isObject(at) ? at[part] : undefined;
  }
  return at;
}

/** `allOf` as one schema: properties merged, other keys of the last part win. */
function mergeAll(schema: JsonSchema): JsonSchema {
  const { allOf, ...rest } = schema;
  const merged: JsonSchema = { ...rest };
  const properties: Record<string, unknown> = isObject(rest.properties)
    ? { ...rest.properties }
    : {};
  for (const part of Array.isArray(allOf) ? allOf : []) {
    if (!isObject(part)) continue;
    Object.assign(merged, part);
    if (isObject(part.properties)) Object.assign(properties, part.properties);
  }
  if (Object.keys(properties).length > 0) merged.properties = properties;
  return merged;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
