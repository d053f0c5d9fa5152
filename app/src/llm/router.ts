/**
 * Model routing: `model: "auto"` and the tier aliases `fast`, `smart` and `deep` become a model
 * from the table (app/config/models.json), chosen by what the request looks like.
 *
 * - A concrete model id is used as it is (reason `explicit`).
 * - A tier alias picks the tier's first model: the head of its `fallbacks` chain, else the first
 *   model of that tier (reason `alias:<tier>`).
 * - `auto` scores the request and picks a tier (reason `auto:<score>:<signals>`):
 *
 *   | signal                                                           | points |
 *   |------------------------------------------------------------------|--------|
 *   | estimated input >= 4 000 tokens / >= 32 000 tokens               | 1 / 2  |
 *   | tools offered                                                    | 1      |
 *   | each distinct strong hint in the newest user text:               | 3      |
 *   |   "step by step", "prove", "proof", "derive", "rigorous",        |        |
 *   |   "formally",                                                    |        |
 *   |   "think carefully / hard / deeply"                              |        |
 *   | any other hint: "analyze", "compare", "trade-off", "debug",      | 2      |
 *   |   "refactor", "architecture", "design", "optimize",              |        |
 *   |   "explain why", "evaluate", "reason about", "root cause"        |        |
 *   |   (hints add up to at most 4)                                    |        |
 *   | a code block (```) in the newest user text                       | 1      |
 *   | conversation depth >= 8 / >= 24 messages                         | 1 / 2  |
 *   | max_tokens >= 8 192 / >= 32 000                                  | 1 / 2  |
 *
 *   score <= 1: fast; 2-3: smart; >= 4: deep. Size alone never buys the most expensive tier:
 *   deep also needs a reasoning hint or code, else the request stays on smart.
 *
 * Sessions are sticky: the model routed for a session's first turn is stored on the session and
 * passed back as `pinnedModel`, so every later turn uses it (and its warm prompt cache).
 * `routeModel` is pure: no I/O, no clock, no randomness.
 */
import type { ModelCatalog } from "./models";

export const AUTO_MODEL = "auto";
export const TIER_ALIASES = ["fast", "smart", "deep"] as const;
export type Tier = (typeof TIER_ALIASES)[number];

export interface RouteDecision {
  model: string;
  /** The model's tier in the table, or "unknown" for an explicit id the table does not list. */
  tier: string;
  /** Why: `explicit`, `sticky`, `alias:<tier>` or `auto:<score>:<signal,...>` (safe as a header value). */
  reason: string;
}

/** What the router reads of a request: any Messages request body fits, and so does a session turn. */
export interface RoutableRequest {
  model: string;
  max_tokens?: number | null;
  system?: unknown;
  tools?: readonly unknown[] | null;
  messages: readonly { role: string; content: unknown }[];
}

export interface RouteContext {
  /** The model a session is pinned to; returned as is when it is a concrete id (sticky routing). */
  pinnedModel?: string | null;
  /** Messages in the whole conversation, when `messages` holds only part of it (trimmed history). */
  depth?: number;
  /** Input tokens when the caller has already estimated them. */
  inputTokens?: number;
}

/** True for "auto" and the tier aliases: a name the router must resolve. */
export function isRoutingAlias(model: string | null | undefined): boolean {
  return model === AUTO_MODEL || (TIER_ALIASES as readonly string[]).includes(model ?? "");
}

const STRONG_HINTS =
  /\b(step[- ]by[- ]step|prove|proofs?|derive|derivation|rigorous(?:ly)?|formally|think (?:carefully|hard|deeply))\b/g;
const OTHER_HINTS =
  /\b(analy[sz]e|analysis|compare|trade-?offs?|debug|refactor|architecture|design|optimi[sz]e|explain why|evaluate|reason about|root cause)\b/;
/** Hints are looked for in this many characters at each end of a long message. */
const HINT_SCAN_CHARS = 8192;

const DEEP_SCORE = 4;
const SMART_SCORE = 2;

export function routeModel(
  request: RoutableRequest,
  catalog: ModelCatalog,
  context: RouteContext = {},
): RouteDecision {
  const pinned = context.pinnedModel;
  if (pinned && !isRoutingAlias(pinned)) return concrete(pinned, catalog, "sticky");
  const requested = request.model;
  if (!isRoutingAlias(requested)) return concrete(requested, catalog, "explicit");
  if (requested !== AUTO_MODEL) {
    return {
      model: modelForTier(requested, catalog),
      tier: requested,
      reason: `alias:${requested}`,
    };
  }

  const signals: string[] = [];
  let score = 0;
  const tokens = context.inputTokens ?? estimateRequestTokensCheaply(request);
  if (tokens >= 32_000) {
    score += 2;
    signals.push("long-prompt");
  } else if (tokens >= 4_000) {
    score += 1;
    signals.push("prompt-size");
  }
  if (request.tools && request.tools.length > 0) {
    score += 1;
    signals.push("tools");
  }
  const text = newestUserText(request.messages).toLowerCase();
  let hints = 0;
  // Distinct strong hints add up ("prove ... step by step" is two); the others count once.
  const strong = new Set<string>();
  for (const m of text.matchAll(STRONG_HINTS)) strong.add(m[1]!.replace(/[\s-]+/g, "-"));
  for (const h of [...strong].slice(0, 2)) {
    hints += 3;
    signals.push(`hint:${h}`);
  }
  const other = OTHER_HINTS.exec(text);
  if (other) {
    hints += 2;
    signals.push(`hint:${other[1]!.replace(/[\s-]+/g, "-")}`);
  }
  score += Math.min(hints, 4);
  const code = text.includes("```");
  if (code) {
    score += 1;
    signals.push("code");
  }
  const depth = context.depth ?? request.messages.length;
  if (depth >= 24) {
    score += 2;
    signals.push("deep-conversation");
  } else if (depth >= 8) {
    score += 1;
    signals.push("conversation");
  }
  const maxTokens = request.max_tokens ?? 0;
  if (maxTokens >= 32_000) {
    score += 2;
    signals.push("long-output");
  } else if (maxTokens >= 8_192) {
    score += 1;
    signals.push("output-size");
  }

  let tier: Tier = score >= DEEP_SCORE ? "deep" : score >= SMART_SCORE ? "smart" : "fast";
  if (tier === "deep" && hints === 0 && !code) tier = "smart";
  return {
    model: modelForTier(tier, catalog),
    tier,
    reason: `auto:${score}:${signals.length ? signals.join(",") : "simple"}`,
  };
}

/** The first model of a tier: the head of its fallback chain, else the first such model in the table. */
export function modelForTier(tier: string, catalog: ModelCatalog): string {
  const table = catalog.table;
  const head = table.fallbacks[tier]?.[0] ?? table.models.find((m) => m.tier === tier)?.id;
  if (head) return head;
  if (tier !== table.defaultTier) return modelForTier(table.defaultTier, catalog);
  return table.models[0]!.id;
}

function concrete(model: string, catalog: ModelCatalog, reason: string): RouteDecision {
  return { model, tier: catalog.get(model)?.tier ?? "unknown", reason };
}

/** Text of the newest user message: both ends of a long one, where instructions usually are. */
function newestUserText(messages: RoutableRequest["messages"]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== "user") continue;
    let text = "";
    if (typeof m.content === "string") text = m.content;
    else if (Array.isArray(m.content)) {
      for (const b of m.content as Array<Record<string, unknown>>) {
        if (b && b.type === "text" && typeof b.text === "string")
          text += (text ? "\n" : "") + b.text;
      }
    }
    if (text.length <= 2 * HINT_SCAN_CHARS) return text;
    return `${text.slice(0, HINT_SCAN_CHARS)}\n${text.slice(-HINT_SCAN_CHARS)}`;
  }
  return "";
}

/** Characters / 4 over strings only (no serialisation): cheap enough for every request. */
function estimateRequestTokensCheaply(request: RoutableRequest): number {
  let chars = typeof request.system === "string" ? request.system.length : 0;
  if (Array.isArray(request.system)) chars += blockChars(request.system);
  for (const m of request.messages) {
    chars +=
      typeof m.content === "string"
        ? m.content.length
        : Array.isArray(m.content)
          ? blockChars(m.content)
          : 0;
  }
  // Tool schemas are modest and similar in size; count them at a flat rate rather than serialise.
  chars += (request.tools?.length ?? 0) * 400;
  return Math.ceil(chars / 4);
}

function blockChars(blocks: readonly unknown[]): number {
  let n = 0;
  for (const b of blocks as Array<Record<string, unknown>>) {
    if (!b) continue;
    if (typeof b.text === "string") n += b.text.length;
    else if (typeof b.content === "string") n += b.content.length;
    else if (Array.isArray(b.content)) n += blockChars(b.content);
    else if (b.type === "image" || b.type === "document") n += 6400;
    else if (b.input !== undefined) n += 64;
  }
  return n;
}
