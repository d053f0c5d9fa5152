/**
 * Reading resource properties that may be unknown.
 *
 * During `pulumi preview` a value computed from another resource's outputs is not known yet.
 * CrossGuard represents it with sentinel strings (and throws when a rule touches one); the
 * engines here turn every such value into the `UNKNOWN` symbol before rules run. The helpers
 * below propagate it, so a rule writes `if (v === UNKNOWN) return;` once and never mistakes
 * "not known yet" for "missing" or "wrong".
 */

export const UNKNOWN: unique symbol = Symbol.for("agent-policy.unknown");

/**
 * The sentinels `@pulumi/policy` (and the Pulumi runtime, for strings) use for unknown values.
 * Copied rather than imported: the rule modules must not load `@pulumi/policy`.
 */
const UNKNOWN_SENTINELS = new Set<string>([
  "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", // boolean
  "3eeb2bf0-c639-47a8-9e75-3b44932eb421", // number
  "04da6b54-80e4-46f7-96ec-b56ff0331ba9", // string (also the Pulumi runtime's unknown)
  "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2", // array
  "030794c1-ac77-496b-92df-f27374a8bd58", // asset
  "e48ece36-62e2-4504-bad9-02848725956a", // archive
  "dd056dcd-154b-4c76-9bd3-c8f88648b5ff", // object
]);

export function isUnknown(v: unknown): v is typeof UNKNOWN {
  return v === UNKNOWN;
}

/** Deep copy with every unknown sentinel replaced by `UNKNOWN`. */
export function normalizeUnknowns(v: unknown): unknown {
  if (typeof v === "string") return UNKNOWN_SENTINELS.has(v) ? UNKNOWN : v;
  if (Array.isArray(v)) return v.map(normalizeUnknowns);
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeUnknowns(x)]));
  }
  return v;
}

/** Whether a value is, or contains, an unknown. */
export function containsUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (v !== null && typeof v === "object") return Object.values(v).some(containsUnknown);
  return false;
}

/**
 * `get(props, "settings.ipConfiguration.ipv4Enabled")`: the value at a dotted path, `undefined`
 * when any step is missing, `UNKNOWN` when any step is unknown.
 */
export function get(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const key of path.split(".")) {
    if (cur === UNKNOWN) return UNKNOWN;
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Booleans, including the `"true"`/`"false"` strings some providers use (launch templates). */
export function bool(v: unknown): boolean | undefined | typeof UNKNOWN {
  if (v === UNKNOWN) return UNKNOWN;
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "TRUE" || v === "True") return true;
  if (v === "false" || v === "FALSE" || v === "False") return false;
  return undefined;
}

export function num(v: unknown): number | undefined | typeof UNKNOWN {
  if (v === UNKNOWN) return UNKNOWN;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

export function str(v: unknown): string | undefined | typeof UNKNOWN {
  if (v === UNKNOWN) return UNKNOWN;
  return typeof v === "string" ? v : undefined;
}

/** A list; `undefined`/`null` read as empty. */
export function list(v: unknown): unknown[] | typeof UNKNOWN {
  if (v === UNKNOWN) return UNKNOWN;
  return Array.isArray(v) ? v : [];
}

/** A plain object; anything else reads as `undefined`. */
export function record(v: unknown): Record<string, unknown> | undefined | typeof UNKNOWN {
  if (v === UNKNOWN) return UNKNOWN;
  return v !== null && typeof v === "object" && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** `*` matches any run of characters; everything else is literal. Case-insensitive. */
export function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`, "i");
  return re.test(value);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The logical name of the stack a URN belongs to: `urn:pulumi:<stack>::<project>::...`. */
export function stackOfUrn(urn: string): string | undefined {
  const m = /^urn:pulumi:([^:]+)::/.exec(urn);
  return m?.[1];
}

/** How a resource is named in messages: `aws:rds/instance:Instance "agent-pg-db"`. */
export function describe(r: { type: string; name: string }): string {
  return `${r.type} "${r.name}"`;
}
