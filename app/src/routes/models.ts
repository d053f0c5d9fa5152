/**
 * The Models API over the model table (app/config/models.json):
 *
 *   GET /v1/models         a page of the models a request may name, newest first
 *   GET /v1/models/{id}    one model; a dated id (`claude-haiku-4-5-20251001`) resolves to its table id
 *
 * Shapes are the official SDK's (resources/models.d.ts: `ModelInfo`, a `Page` of them), so
 * `client.models.list()` pages through them and `client.models.retrieve(id)` finds one. Tier
 * aliases ("fast", "smart", "auto") and the offline synthetic model are accepted by /v1/messages but
 * are not models, and are not listed, as the API lists no aliases.
 *
 * The page helpers here (`pageQuery`, `pageOf`) are the API's list convention, which
 * GET /v1/messages/batches shares (routes/batches.ts): `limit` (1 to 1000, default 20), and either
 * `after_id` (the page after that object) or `before_id` (the page before it); the answer is
 * `{data, has_more, first_id, last_id}` (SDK core/pagination.d.ts, `Page`: with `before_id` the
 * next page is asked for with `before_id: first_id`, otherwise with `after_id: last_id`).
 */
import type { Hono } from "hono";
import type { ModelInfo as SdkModelInfo } from "@anthropic-ai/sdk/resources/models";
import * as z from "zod";
import { badRequest, notFound } from "../errors";
import type { AppContext, AppEnv } from "../http";
import { describeIssues } from "../http";
import type { ModelCatalog, ModelInfo } from "../llm/models";
import type { RouteChains } from "./chain";

/** Release dates are unknown to the table: the SDK's type allows the epoch for that. */
const UNKNOWN_RELEASE = "1970-01-01T00:00:00Z";
const LINES = ["haiku", "sonnet", "opus"] as const;

export const pageQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(20),
    before_id: z.string().min(1).max(256).optional(),
    after_id: z.string().min(1).max(256).optional(),
  })
  .refine((q) => !(q.before_id && q.after_id), "before_id and after_id cannot both be set");

export type PageQuery = z.infer<typeof pageQuerySchema>;

export interface Page<T> {
  data: T[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

/** The paging parameters of a list request; 400 says which one is wrong. */
export function pageQuery(c: AppContext): PageQuery {
  const parsed = pageQuerySchema.safeParse(c.req.query());
  if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues));
  return parsed.data;
}

/** A page of `items` (already in list order), as the API pages it. */
export function pageOf<T extends { id: string }>(items: readonly T[], q: PageQuery): Page<T> {
  const cursor = q.after_id ?? q.before_id;
  let from = 0;
  let to = items.length;
  if (cursor !== undefined) {
    const at = items.findIndex((i) => i.id === cursor);
    if (at < 0) throw badRequest(`${q.after_id ? "after_id" : "before_id"}: no object ${cursor}`);
    if (q.after_id) from = at + 1;
    else to = at;
  }
  const data = q.before_id
    ? items.slice(Math.max(from, to - q.limit), to)
    : items.slice(from, Math.min(to, from + q.limit));
  const hasMore = q.before_id ? to - data.length > from : from + data.length < to;
  return pageFrom(data, hasMore);
}

export function pageFrom<T extends { id: string }>(data: T[], hasMore: boolean): Page<T> {
  return {
    data,
    has_more: hasMore,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
  };
}

/** A model of the table as the Models API describes one. */
export function modelView(m: ModelInfo): SdkModelInfo {
  const line = LINES.find((l) => m.id.startsWith(`claude-${l}-`)) ?? null;
  return {
    type: "model",
    id: m.id,
    display_name: displayName(m),
    created_at: releasedAt(m),
    // Capabilities differ by model and account; the table does not know them, and the type allows null.
    capabilities: null,
    lifecycle: "active",
    deprecated_at: null,
    retires_at: null,
    line,
    max_input_tokens: m.contextWindow,
    max_tokens: null,
  };
}

/**
 * `claude-sonnet-4-6` -> "Claude Sonnet 4.6", as the API names its models; a `displayName` in the
 * table, if its schema ever carries one, wins.
 */
export function displayName(m: ModelInfo): string {
  if ("displayName" in m && typeof m.displayName === "string") return m.displayName;
  const words: string[] = [];
  for (const part of m.id.split("-")) {
    if (/^\d{8}$/.test(part)) continue; // a snapshot date
    const last = words.length - 1;
    if (/^\d+$/.test(part) && last >= 0 && /^\d+(\.\d+)*$/.test(words[last]!))
      words[last] = `${words[last]}.${part}`;
    else words.push(part.charAt(0).toUpperCase() + part.slice(1));
  }
  return words.join(" ");
}

/** A snapshot date in the id (`-20251001`) or a `releasedAt` in the table; else the epoch. */
function releasedAt(m: ModelInfo): string {
  if ("releasedAt" in m && typeof m.releasedAt === "string") return m.releasedAt;
  const date = /-(\d{4})(\d{2})(\d{2})$/.exec(m.id);
  return date ? `${date[1]}-${date[2]}-${date[3]}T00:00:00Z` : UNKNOWN_RELEASE;
}

function byDesc(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

/** The table's models, newest first (as the API lists them); table order among equal dates. */
export function listedModels(catalog: ModelCatalog): SdkModelInfo[] {
  return (
    catalog.table.models
      .map((m, i) => ({ view: modelView(m), i }))
      // Ordinal, not localeCompare: ISO instants sort by code unit, and the first localeCompare
      // of a process loads ICU's collator (~6 ms of a Lambda cold start, in its profile).
      .sort((a, b) => byDesc(a.view.created_at, b.view.created_at) || a.i - b.i)
      .map((x) => x.view)
  );
}

export function registerModelRoutes(app: Hono<AppEnv>, catalog: ModelCatalog, chains: RouteChains) {
  const models = listedModels(catalog);
  app.get("/v1/models", chains.plain(), (c) => c.json(pageOf(models, pageQuery(c))));
  app.get("/v1/models/:id", chains.plain(), (c) => {
    const id = c.req.param("id");
    const info = catalog.get(id);
    if (!info) throw notFound(`model ${JSON.stringify(id.slice(0, 256))} not found`);
    return c.json(modelView(info));
  });
}
