/**
 * The agent's built-in tools and the registry that runs them. Every tool is pure and safe to
 * run on the server: no network, no file system, no code execution. A tool call never throws
 * out of the registry: unknown tools, invalid input, failures and timeouts all come back as a
 * result with `isError`, phrased so the model can correct itself and call again.
 */
import type Anthropic from "@anthropic-ai/sdk";
import * as z from "zod";
import {
  CalculatorError,
  evaluateExpression,
  formatNumber,
  MAX_EXPRESSION_LENGTH,
} from "./calculator";
import { JsonQueryError, parsePath, queryJson } from "./json-query";

/** A tool definition in the Messages API's `tools` format. */
export type ToolDefinition = Anthropic.Tool;

/** Thrown by a tool for an expected failure; its message goes to the model verbatim. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ToolError";
  }
}

export interface ToolContext {
  /** Aborted when the call times out or the turn is cancelled. */
  signal: AbortSignal;
  now(): Date;
}

export interface AgentTool<S extends z.ZodType = z.ZodType> {
  /** Must match the API's rule for tool names: ^[a-zA-Z0-9_-]{1,64}$. */
  readonly name: string;
  /** What the model reads to decide when and how to call the tool. */
  readonly description: string;
  /** Validates the model's input; also the source of the JSON input_schema sent upstream. */
  readonly input: S;
  /** @default the registry's defaultTimeoutMs */
  readonly timeoutMs?: number;
  /** @default the registry's defaultMaxOutputChars */
  readonly maxOutputChars?: number;
  run(input: z.output<S>, context: ToolContext): string | Promise<string>;
}

/** Typed at the definition site, stored untyped in the registry. */
export function defineTool<S extends z.ZodType>(tool: AgentTool<S>): AgentTool {
  return tool as unknown as AgentTool;
}

export interface ToolOutcome {
  content: string;
  isError: boolean;
}

export interface ToolRegistryOptions {
  /** @default 5000 */
  defaultTimeoutMs?: number;
  /** Output longer than this is cut, with a note saying so. @default 16000 */
  defaultMaxOutputChars?: number;
  /** Clock for tools that read the time (injectable for tests). @default () => new Date() */
  now?: () => Date;
}

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export class ToolRegistry {
  private readonly byName = new Map<string, AgentTool>();
  private readonly defaultTimeoutMs: number;
  private readonly defaultMaxOutputChars: number;
  private readonly now: () => Date;
  private cachedDefinitions: ToolDefinition[] | undefined;

  constructor(tools: readonly AgentTool[], options: ToolRegistryOptions = {}) {
    for (const tool of tools) {
      if (!TOOL_NAME.test(tool.name))
        throw new Error(`tool name "${tool.name}" must match ${TOOL_NAME}`);
      if (this.byName.has(tool.name)) throw new Error(`tool "${tool.name}" is registered twice`);
      this.byName.set(tool.name, tool);
    }
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 5000;
    this.defaultMaxOutputChars = options.defaultMaxOutputChars ?? 16_000;
    this.now = options.now ?? (() => new Date());
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** The `tools` array for a Messages API request; built once, since schemas never change. */
  definitions(): ToolDefinition[] {
    this.cachedDefinitions ??= [...this.byName.values()].map((tool) => {
      const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.input, {
        io: "input",
      }) as Record<string, unknown>;
      if (schema.type !== "object")
        throw new Error(`tool "${tool.name}": input must be an object schema`);
      return {
        name: tool.name,
        description: tool.description,
        input_schema: schema as ToolDefinition["input_schema"],
      };
    });
    return this.cachedDefinitions;
  }

  async execute(name: string, input: unknown, signal?: AbortSignal): Promise<ToolOutcome> {
    const tool = this.byName.get(name);
    if (!tool) {
      return this.failure(
        `unknown tool "${name}"; the available tools are: ${this.names.join(", ")}`,
        this.defaultMaxOutputChars,
      );
    }
    const cap = tool.maxOutputChars ?? this.defaultMaxOutputChars;
    const parsed = tool.input.safeParse(input);
    if (!parsed.success) {
      return this.failure(
        `invalid input for tool "${name}": ${formatIssues(parsed.error.issues)}. Fix the input and call the tool again.`,
        cap,
      );
    }
    const timeoutMs = tool.timeoutMs ?? this.defaultTimeoutMs;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onCancel = () => controller.abort();
    signal?.addEventListener("abort", onCancel, { once: true });
    try {
      if (signal?.aborted) throw new CancelledError();
      // The race bounds tools that await; the built-in tools are synchronous and bounded by
      // their input limits instead, since no timer can interrupt running JavaScript.
      const output = await Promise.race([
        Promise.resolve().then(() =>
          tool.run(parsed.data, { signal: controller.signal, now: this.now }),
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            controller.abort();
            reject(new TimeoutError());
          }, timeoutMs);
          controller.signal.addEventListener(
            "abort",
            () => reject(signal?.aborted ? new CancelledError() : new TimeoutError()),
            { once: true },
          );
        }),
      ]);
      if (typeof output !== "string") throw new Error(`returned ${typeof output}, not a string`);
      return { content: truncate(output, cap), isError: false };
    } catch (err) {
      if (err instanceof TimeoutError)
        return this.failure(`tool "${name}" timed out after ${timeoutMs} ms`, cap);
      if (err instanceof CancelledError)
        return this.failure(`tool "${name}" was cancelled: the request was aborted`, cap);
      if (err instanceof ToolError) return this.failure(err.message, cap);
      return this.failure(`tool "${name}" failed: ${(err as Error)?.message ?? String(err)}`, cap);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onCancel);
    }
  }

  private failure(message: string, cap: number): ToolOutcome {
    return { content: truncate(message, cap), isError: true };
  }
}

class TimeoutError extends Error {}
class CancelledError extends Error {}

function formatIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
}

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const note = `\n[output truncated: showing ${max} of ${text.length} characters]`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}

// ---------------------------------------------------------------------------------------------
// Built-in tools

export const calculatorTool = defineTool({
  name: "calculator",
  description:
    "Evaluates an arithmetic expression exactly as written and returns the number. Use it for any " +
    "arithmetic beyond the trivial instead of computing in your head. Supports + - * / % (remainder), " +
    "^ or ** (power, right-associative, binds tighter than unary minus: -2^2 = -4), parentheses, " +
    "unary minus, decimals and scientific notation (1.5e3). No functions, variables or units.",
  input: z.strictObject({
    expression: z
      .string()
      .min(1, "must not be empty")
      .max(MAX_EXPRESSION_LENGTH, `must be at most ${MAX_EXPRESSION_LENGTH} characters`)
      .describe('The expression, e.g. "(12.5 + 7) * 3 ^ 2 / 4"'),
  }),
  timeoutMs: 1000,
  run({ expression }) {
    try {
      return formatNumber(evaluateExpression(expression));
    } catch (err) {
      if (err instanceof CalculatorError)
        throw new ToolError(`cannot evaluate "${expression}": ${err.message}`);
      throw err;
    }
  },
});

export const currentTimeTool = defineTool({
  name: "current_time",
  description:
    "Returns the current date and time. You have no clock of your own: call this whenever an answer " +
    "depends on today's date, the day of the week or the time of day. Give an IANA time zone such as " +
    '"Europe/Paris" or "America/New_York" for local time; the default is UTC.',
  input: z.strictObject({
    time_zone: z
      .string()
      .min(1, "must not be empty")
      .max(64, "must be at most 64 characters")
      .optional()
      .describe('IANA time zone name, e.g. "Asia/Tokyo". Default: "UTC".'),
  }),
  timeoutMs: 1000,
  run({ time_zone }, { now }) {
    const zone = time_zone ?? "UTC";
    let format: Intl.DateTimeFormat;
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        weekday: "long",
        timeZoneName: "longOffset",
      });
    } catch {
      throw new ToolError(
        `unknown time zone "${zone}": use an IANA name such as "UTC", "Europe/Berlin" or "America/Los_Angeles"`,
      );
    }
    const at = now();
    const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
    const offset = utcOffset(parts.timeZoneName ?? "GMT");
    const resolvedZone = format.resolvedOptions().timeZone;
    return JSON.stringify({
      // ICU canonicalizes to legacy names (Asia/Kolkata -> Asia/Calcutta): echo the name asked
      // for, in the resolved spelling only when the two differ just by case.
      time_zone: resolvedZone.toLowerCase() === zone.toLowerCase() ? resolvedZone : zone,
      local: `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`,
      utc: at.toISOString(),
      weekday: parts.weekday,
      utc_offset: offset,
      unix_seconds: Math.floor(at.getTime() / 1000),
    });
  },
});

/** "GMT+05:30" -> "+05:30"; "GMT" (UTC itself) -> "+00:00". */
function utcOffset(name: string): string {
  const m = /^(?:GMT|UTC)(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$/.exec(name);
  if (!m || !m[1]) return "+00:00";
  return `${m[1]}${m[2]!.padStart(2, "0")}:${m[3] ?? "00"}`;
}

const MAX_TEXT_CHARS = 100_000;

export const textStatsTool = defineTool({
  name: "text_stats",
  description:
    "Counts exactly what is in a text: characters (as a reader sees them), words, sentences, lines, " +
    "paragraphs and UTF-8 bytes, and optionally how often a substring occurs. Use it instead of " +
    'counting yourself, e.g. for length limits or "how many times does X appear".',
  input: z.strictObject({
    text: z
      .string()
      .max(MAX_TEXT_CHARS, `must be at most ${MAX_TEXT_CHARS} characters`)
      .describe("The text to measure."),
    find: z
      .string()
      .min(1, "must not be empty")
      .max(1000, "must be at most 1000 characters")
      .optional()
      .describe("Optional substring to count (non-overlapping)."),
    case_sensitive: z
      .boolean()
      .optional()
      .describe("Whether `find` matches case exactly. Default: true."),
  }),
  timeoutMs: 2000,
  run({ text, find, case_sensitive }) {
    const segments = (granularity: "grapheme" | "word" | "sentence") => [
      ...new Intl.Segmenter("en", { granularity }).segment(text),
    ];
    const graphemes = segments("grapheme");
    // A final line break ends the last line rather than starting an empty one, as editors count.
    const body = text.replace(/(\r\n|\r|\n)$/, "");
    const stats: Record<string, number> = {
      characters: graphemes.length,
      characters_excluding_whitespace: graphemes.filter((g) => /\S/.test(g.segment)).length,
      // isWordLike leaves out punctuation and spaces, and splits CJK text into words.
      words: segments("word").filter((w) => w.isWordLike).length,
      sentences: segments("sentence").filter((s) => s.segment.trim() !== "").length,
      lines: text === "" ? 0 : body.split(/\r\n|\r|\n/).length,
      paragraphs: text.split(/(?:\r\n|\r|\n)\s*(?:\r\n|\r|\n)/).filter((p) => p.trim() !== "")
        .length,
      utf8_bytes: Buffer.byteLength(text, "utf8"),
    };
    if (find !== undefined) {
      const haystack = case_sensitive === false ? text.toLowerCase() : text;
      const needle = case_sensitive === false ? find.toLowerCase() : find;
      let n = 0;
      for (
        let i = haystack.indexOf(needle);
        i !== -1;
        i = haystack.indexOf(needle, i + needle.length)
      )
        n++;
      stats.occurrences = n;
    }
    return JSON.stringify(stats);
  },
});

const MAX_JSON_CHARS = 200_000;

export const jsonQueryTool = defineTool({
  name: "json_query",
  description:
    "Extracts part of a JSON document by path, so you can read exact values from large JSON instead of " +
    'scanning it. Path syntax: "$" is the whole document; .key or ["key with spaces"] selects a key; ' +
    "[0] an array element ([-1] is the last); [*] applies the rest of the path to every element and " +
    'returns an array. Example: "$.orders[*].total". Returns the selected value as JSON.',
  input: z.strictObject({
    json: z
      .string()
      .min(1, "must not be empty")
      .max(MAX_JSON_CHARS, `must be at most ${MAX_JSON_CHARS} characters`)
      .describe("The JSON document, as text."),
    path: z
      .string()
      .max(1000, "must be at most 1000 characters")
      .describe('The path to select, e.g. "$.items[0].name".'),
  }),
  timeoutMs: 2000,
  run({ json, path }) {
    let document: unknown;
    try {
      document = JSON.parse(json);
    } catch (err) {
      throw new ToolError(`json is not valid JSON: ${(err as Error).message}`);
    }
    try {
      return JSON.stringify(queryJson(document, parsePath(path)), null, 2);
    } catch (err) {
      if (err instanceof JsonQueryError) throw new ToolError(err.message);
      throw err;
    }
  },
});

export const BUILTIN_TOOLS: readonly AgentTool[] = [
  calculatorTool,
  currentTimeTool,
  textStatsTool,
  jsonQueryTool,
];

export function createBuiltinToolRegistry(options: ToolRegistryOptions = {}): ToolRegistry {
  return new ToolRegistry(BUILTIN_TOOLS, options);
}
