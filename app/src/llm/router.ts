/**
 * Model routing: `model: "auto"` and the tier aliases `fast`, `smart` and `deep` become a model
 * from the table (app/config/models.json), chosen by what the request looks like.
 *
 * - A concrete model id is used as it is (reason `explicit`).
 * - A tier alias picks the tier's first model: the head of its `fallbacks` chain, else the first
 *   model of that tier (reason `alias:<tier>`).
 * - `auto` is cost-aware: it picks `fast` unless the request clearly needs more, then `smart`.
 *   It never picks `deep` (five times the fast tier's prices): that takes the `deep` alias or a
 *   model id. It scores the request (reason `auto:<score>:<signals>`):
 *
 *   | task signals: what is asked (each user turn scored; the hardest turn counts) | points |
 *   |------------------------------------------------------------------------------|--------|
 *   | each distinct strong hint: "step by step", "prove", "proof", "derive",       | 3      |
 *   |   "rigorous", "formally", "think carefully / hard / deeply"                  |        |
 *   | any other hint: "analyze", "compare", "trade-off", "debug", "refactor",      | 2      |
 *   |   "architecture", "design", "optimize", "explain why", "evaluate",           |        |
 *   |   "reason about", "root cause"  (hints add up to at most 4 per turn)         |        |
 *   | a code block (```)                                                           | 1      |
 *
 *   | load signals: how big the job is (the whole request)                         | points |
 *   |------------------------------------------------------------------------------|--------|
 *   | tools offered                                                                | 1      |
 *   | estimated input >= 16 000 / >= 32 000 tokens                                 | 1 / 2  |
 *   | max_tokens >= 8 192 / >= 32 000                                              | 1 / 2  |
 *
 *   Text is read from the first and last 2 KB of each of the newest 64 user turns (text blocks;
 *   tool results are data, not instructions).
 *
 *   smart when the score is >= 3 with at least one task signal and one load signal; else fast.
 *   Words are weak evidence ("compare" and "step by step" are everyday phrasing) and a big
 *   prompt alone is not a hard task: neither escalates alone, a hard task on a big job does.
 *
 * Conversations are sticky without server state. The task signals come from every user turn
 * (hardest wins) and the load signals only grow as a conversation does, so the tier a stateless
 * multi-turn conversation gets never goes down from one turn to the next: it changes at most
 * once (fast to smart), and the turns after that read the same model's warm prompt cache (each
 * model has its own). A follow-up to a hard question stays on the model that answered it, and so
 * does a tool loop whose newest user turn is only tool results. Session routes go further: the
 * model routed for a session's first turn is stored on the session and passed back as
 * `pinnedModel`. `routeModel` is pure: no I/O, no clock, no randomness.
 */
import { estimateInputTokens } from "../budget/estimate";
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
  /** The request's input tokens, from its facts (request-facts.ts); estimated here when absent. */
  inputTokens?: number;
}

/** True for "auto" and the tier aliases: a name the router must resolve. */
export function isRoutingAlias(model: string | null | undefined): boolean {
  return model === AUTO_MODEL || (TIER_ALIASES as readonly string[]).includes(model ?? "");
}

const STRONG_HINTS =
  /\b(step[- ]by[- ]step|prove|proofs?|derive|derivation|rigorous(?:ly)?|formally|think (?:carefully|hard|deeply))\b/gi;
const OTHER_HINTS =
  /\b(analy[sz]e|analysis|compare|trade-?offs?|debug|refactor|architecture|design|optimi[sz]e|explain why|evaluate|reason about|root cause)\b/i;
/**
 * Hints are looked for in this many characters at each end of a long message, where instructions
 * usually are (a pasted document sits in between); with MAX_SCANNED_TURNS this bounds the work
 * to about 256 KB of text however long the conversation.
 */
const HINT_SCAN_CHARS = 2048;
/** User turns scanned for task signals, newest first: bounds the work on very long conversations. */
const MAX_SCANNED_TURNS = 64;
const MAX_HINT_POINTS = 4;

const SMART_SCORE = 3;

interface TaskSignals {
  points: number;
  signals: string[];
}

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

  const task = hardestTurn(request.messages);
  const loadSignals: string[] = [];
  let load = 0;
  if (request.tools && request.tools.length > 0) {
    load += 1;
    loadSignals.push("tools");
  }
  const tokens = context.inputTokens ?? estimateInputTokens(request);
  if (tokens >= 32_000) {
    load += 2;
    loadSignals.push("long-prompt");
  } else if (tokens >= 16_000) {
    load += 1;
    loadSignals.push("prompt-size");
  }
  const maxTokens = request.max_tokens ?? 0;
  if (maxTokens >= 32_000) {
    load += 2;
    loadSignals.push("long-output");
  } else if (maxTokens >= 8_192) {
    load += 1;
    loadSignals.push("output-size");
  }

  const score = task.points + load;
  const tier: Tier = score >= SMART_SCORE && task.points > 0 && load > 0 ? "smart" : "fast";
  const signals = [...loadSignals, ...task.signals];
  return {
    model: modelForTier(tier, catalog),
    tier,
    reason: `auto:${score}:${signals.length ? signals.join(",") : "simple"}`,
  };
}

/** Task signals of the conversation's hardest user turn (the newest of equals). */
function hardestTurn(messages: RoutableRequest["messages"]): TaskSignals {
  let best: TaskSignals = { points: 0, signals: [] };
  let scanned = 0;
  for (let i = messages.length - 1; i >= 0 && scanned < MAX_SCANNED_TURNS; i--) {
    const m = messages[i]!;
    if (m.role !== "user") continue;
    scanned++;
    const text = userText(m.content);
    if (text === "") continue;
    const turn = turnSignals(text);
    if (turn.points > best.points) best = turn;
    if (best.points >= MAX_HINT_POINTS + 1) break; // nothing scores higher
  }
  return best;
}

function turnSignals(text: string): TaskSignals {
  const signals: string[] = [];
  let hints = 0;
  // Distinct strong hints add up ("prove ... step by step" is two); the others count once.
  const strong = new Set<string>();
  for (const m of text.matchAll(STRONG_HINTS))
    strong.add(m[1]!.toLowerCase().replace(/[\s-]+/g, "-"));
  for (const h of [...strong].slice(0, 2)) {
    hints += 3;
    signals.push(`hint:${h}`);
  }
  const other = OTHER_HINTS.exec(text);
  if (other) {
    hints += 2;
    signals.push(`hint:${other[1]!.toLowerCase().replace(/[\s-]+/g, "-")}`);
  }
  let points = Math.min(hints, MAX_HINT_POINTS);
  if (text.includes("```")) {
    points += 1;
    signals.push("code");
  }
  return { points, signals };
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

/** The text blocks of a user message: both ends of a long one, where instructions usually are. */
function userText(content: unknown): string {
  let text = "";
  if (typeof content === "string") text = content;
  else if (Array.isArray(content)) {
    for (const b of content as Array<Record<string, unknown>>) {
      if (b && b.type === "text" && typeof b.text === "string") text += (text ? "\n" : "") + b.text;
    }
  }
  if (text.length <= 2 * HINT_SCAN_CHARS) return text;
  return `${text.slice(0, HINT_SCAN_CHARS)}\n${text.slice(-HINT_SCAN_CHARS)}`;
}
