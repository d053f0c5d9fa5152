/**
 * The agent's built-in tools. Every one is pure and safe to run on the server (no network, no
 * file system, no code execution) and linear in its input; they run in worker threads with time
 * and memory limits (tool-sandbox.ts), which is why this module imports nothing of the service.
 */
import * as z from "zod";
import {
  CalculatorError,
  evaluateExpression,
  formatNumber,
  MAX_EXPRESSION_LENGTH,
} from "./calculator";
import { JsonQueryError, parsePath, queryJson } from "./json-query";
import { paragraphCount, segmentCounts } from "./text-stats";
import { defineTool, ToolError, type AgentTool } from "./tool-types";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../json-limits";

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
    // A final line break ends the last line rather than starting an empty one, as editors count.
    const body = text.replace(/(\r\n|\r|\n)$/, "");
    const stats: Record<string, number> = {
      // Characters as a reader sees them; isWordLike leaves out punctuation and spaces, and
      // splits CJK text into words.
      ...segmentCounts(text),
      lines: text === "" ? 0 : body.split(/\r\n|\r|\n/).length,
      paragraphs: paragraphCount(text),
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
    // Indented output of a deep document grows with depth times size: bounded here.
    if (nestsDeeperThan(document, MAX_JSON_DEPTH))
      throw new ToolError(`json nests deeper than ${MAX_JSON_DEPTH} levels; query a smaller part`);
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
