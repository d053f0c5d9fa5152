/**
 * Limits on what a JSON value may hold before the service stores it. Postgres rejects the NUL
 * character (U+0000) in `text` and `jsonb`, so a client's NUL is refused up front (400, before
 * any model call is paid for), and one in a model's output is replaced before it is stored.
 *
 * Walks are iterative (an explicit stack): a deeply nested value cannot overflow the call stack.
 */

const NUL = "\u0000";

/**
 * Deepest nesting a request body may have. A Messages request needs about ten levels around a
 * tool's input or schema; 64 leaves room for deep tool schemas and keeps every walk cheap.
 */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests arrays and objects deeper than `max` levels. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as object))
      if (child !== null && typeof child === "object") stack.push({ v: child, depth: depth + 1 });
  }
  return false;
}

export const TOO_DEEP = `request body nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`;

export const NUL_REFUSED = "contains a NUL character (U+0000), which cannot be stored; remove it";

/** The path (keys and indexes) of the first string or object key holding a NUL character, or null. */
export function nulPath(value: unknown): Array<string | number> | null {
  const stack: Array<{ v: unknown; path: Array<string | number> }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === "string") {
      if (v.includes(NUL)) return path;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: [...path, i] });
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        if (k.includes(NUL)) return [...path, k.replaceAll(NUL, "\\u0000")];
        stack.push({ v: child, path: [...path, k] });
      }
    }
  }
  return null;
}

/** "requests.3.params.messages.0.content: contains a NUL character ..." */
export function nulMessage(path: ReadonlyArray<string | number>): string {
  return path.length > 0 ? `${path.join(".")}: ${NUL_REFUSED}` : `request body ${NUL_REFUSED}`;
}

/**
 * `value` with every NUL character in its strings replaced by U+FFFD (the replacement character),
 * or `value` itself when it holds none. For model output, which the service stores but does not
 * control.
 */
export function withoutNul<T>(value: T): T {
  if (nulPath(value) === null) return value;
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) =>
    typeof v === "string" ? v.replaceAll(NUL, "\uFFFD") : v,
  ) as T;
}
