/**
 * The path language of the `json_query` tool: a small, predictable subset of JSONPath that a
 * model gets right first time, with errors that say where the path stopped matching.
 *
 *   $ or ""               the whole document
 *   .name  or  name       an object key (letters, digits, _ $ -)
 *   ["any key"]           an object key with any characters (JSON string syntax, or '...')
 *   [2]  [-1]             an array element; negative counts from the end
 *   [*]  or  .*           every element of an array (or every value of an object): the rest of
 *                         the path applies to each, and the results come back as an array
 */

export class JsonQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonQueryError";
  }
}

export type PathSegment =
  { kind: "key"; key: string } | { kind: "index"; index: number } | { kind: "wildcard" };

const NAME = /[A-Za-z0-9_$-]+/y;
const INDEX = /-?\d+/y;

export function parsePath(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let i = 0;
  const s = path.trim();
  if (s.startsWith("$")) i = 1;
  const fail = (what: string): never => {
    throw new JsonQueryError(`path: ${what} at position ${i + 1} of "${s}"`);
  };
  let first = true;
  while (i < s.length) {
    const ch = s[i];
    if (ch === ".") {
      i++;
      if (s[i] === "*") {
        segments.push({ kind: "wildcard" });
        i++;
      } else {
        segments.push({ kind: "key", key: readName() ?? fail('expected a key name after "."') });
      }
    } else if (ch === "[") {
      i++;
      if (s[i] === "*") {
        i++;
        segments.push({ kind: "wildcard" });
      } else if (s[i] === '"' || s[i] === "'") {
        segments.push({ kind: "key", key: readQuoted() });
      } else {
        INDEX.lastIndex = i;
        const m = INDEX.exec(s);
        if (!m) fail('expected an index, a quoted key or * after "["');
        const index = Number(m![0]);
        if (!Number.isSafeInteger(index)) fail("index is too large");
        segments.push({ kind: "index", index });
        i += m![0].length;
      }
      if (s[i] !== "]") fail('expected "]"');
      i++;
    } else if (first) {
      // A leading bare name ("items[0]") is what people write most; accept it.
      const name = readName();
      if (name === null) fail(`unexpected "${ch}"`);
      segments.push({ kind: "key", key: name! });
    } else {
      fail(`unexpected "${ch}" (use .key, ["key"], [index] or [*])`);
    }
    first = false;
  }
  return segments;

  function readName(): string | null {
    NAME.lastIndex = i;
    const m = NAME.exec(s);
    if (!m) return null;
    i += m[0].length;
    return m[0];
  }

  function readQuoted(): string {
    const quote = s[i]!;
    let j = i + 1;
    while (j < s.length && s[j] !== quote) j += s[j] === "\\" ? 2 : 1;
    if (j >= s.length) fail(`unterminated ${quote} string`);
    const raw = s.slice(i + 1, j);
    i = j + 1;
    try {
      // Single-quoted keys are read with JSON's escape rules too, after swapping the quotes.
      return JSON.parse(
        `"${quote === "'" ? raw.replace(/\\'/g, "'").replace(/"/g, '\\"') : raw}"`,
      ) as string;
    } catch {
      return fail("invalid escape in quoted key");
    }
  }
}

/** Follow `segments` through `value`; `at` is the path so far, for error messages. */
export function queryJson(value: unknown, segments: readonly PathSegment[], at = "$"): unknown {
  const [head, ...rest] = segments;
  if (!head) return value;
  if (head.kind === "wildcard") {
    if (Array.isArray(value)) return value.map((v, i) => queryJson(v, rest, `${at}[${i}]`));
    if (isObject(value))
      return Object.entries(value).map(([k, v]) => queryJson(v, rest, `${at}${keyPath(k)}`));
    throw new JsonQueryError(`${at} is ${describe(value)}; [*] needs an array or an object`);
  }
  if (head.kind === "index") {
    if (!Array.isArray(value)) {
      throw new JsonQueryError(
        `${at} is ${describe(value)}, not an array; ${isObject(value) ? 'use .key or ["key"]' : "the path goes too deep"}`,
      );
    }
    const i = head.index < 0 ? value.length + head.index : head.index;
    if (i < 0 || i >= value.length) {
      throw new JsonQueryError(
        `index ${head.index} is out of range at ${at} (an array of ${value.length} item${value.length === 1 ? "" : "s"})`,
      );
    }
    return queryJson(value[i], rest, `${at}[${i}]`);
  }
  if (isObject(value)) {
    if (!Object.prototype.hasOwnProperty.call(value, head.key)) {
      const keys = Object.keys(value);
      const shown = keys
        .slice(0, 20)
        .map((k) => JSON.stringify(k))
        .join(", ");
      throw new JsonQueryError(
        `no key ${JSON.stringify(head.key)} at ${at}; ` +
          (keys.length
            ? `keys there: ${shown}${keys.length > 20 ? `, ... (${keys.length} in all)` : ""}`
            : "it is an empty object"),
      );
    }
    return queryJson(value[head.key], rest, `${at}${keyPath(head.key)}`);
  }
  if (Array.isArray(value)) {
    throw new JsonQueryError(
      `${at} is an array of ${value.length} items; use an index such as [0], or [*] for every item, not .${head.key}`,
    );
  }
  throw new JsonQueryError(
    `${at} is ${describe(value)}, which has no key ${JSON.stringify(head.key)}`,
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function keyPath(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}
