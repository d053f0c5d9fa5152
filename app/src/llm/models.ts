/**
 * The model table (app/config/models.json) and the cost arithmetic every budget and ledger
 * entry depends on. Prices live in configuration because the line-up changes several times a year.
 */
import * as z from "zod";
import defaultTable from "../../config/models.json";
import { BEDROCK_GEOS, type UpstreamKind } from "./upstream-kinds";

/**
 * A cloud's price for a model, relative to the table's list prices: `regionalPremium` multiplies
 * every price of calls that are pinned to a geography or region (Bedrock: a `us.`/`eu.`/... profile
 * or the in-region base id; Vertex: a region or multi-region endpoint) instead of going `global`.
 */
const premium = z.number().min(1).max(2).optional();

/** Where a model is on Amazon Bedrock (infra scopes the compute role's IAM policy to these ids). */
const bedrockSchema = z.object({
  /** The base model id, without a geography prefix (e.g. `anthropic.claude-sonnet-4-6`). */
  modelId: z
    .string()
    .regex(/^[a-z0-9-]+\.[A-Za-z0-9.:-]+$/, "must be a Bedrock model id such as anthropic.<name>")
    .refine((id) => !BEDROCK_GEOS.some((g) => id.startsWith(`${g}.`)), {
      message: "must be the base model id, without a geography prefix (geos lists those)",
    }),
  /** The geographies with a cross-region inference profile for the model. */
  geos: z.array(z.enum(BEDROCK_GEOS)).min(1),
  regionalPremium: premium,
});

/** Where a model is on Vertex AI. */
const vertexSchema = z.object({
  /** The publisher model id (e.g. `claude-haiku-4-5@20251001`). */
  modelId: z.string().regex(/^[a-z0-9.@-]+$/, "must be a Vertex AI model id such as claude-<name>"),
  regionalPremium: premium,
});

const modelSchema = z.object({
  id: z.string().min(1),
  tier: z.string().min(1),
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  /** 5-minute cache writes (the default ttl). */
  cacheWritePerMTok: z.number().nonnegative(),
  /** 1-hour cache writes (`cache_control.ttl: "1h"`). @default 2 × inputPerMTok, the API's ratio */
  cacheWrite1hPerMTok: z.number().nonnegative().optional(),
  cacheReadPerMTok: z.number().nonnegative(),
  minCacheableTokens: z.number().int().nonnegative(),
  contextWindow: z.number().int().positive(),
  bedrock: bedrockSchema.optional(),
  vertex: vertexSchema.optional(),
});

export const modelTableSchema = z.object({
  pricesTakenOn: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  source: z.string().optional(),
  batchDiscount: z.number().gt(0).max(1),
  defaultTier: z.string(),
  /**
   * Send model ids the table does not list upstream as they are (priced at the table's highest
   * prices, labelled `other` in metrics). Off: they are a 400 listing the known models.
   */
  passThroughUnknownModels: z.boolean().optional(),
  models: z.array(modelSchema).min(1),
  fallbacks: z.record(z.string(), z.array(z.string()).min(1)),
});

export type ModelInfo = z.infer<typeof modelSchema>;
export type ModelTable = z.infer<typeof modelTableSchema>;

/**
 * Which cloud's prices the catalog charges: the table's list prices, times the model's
 * `regionalPremium` for that cloud when calls are pinned to a geography or region.
 */
export interface UpstreamPricing {
  upstream: UpstreamKind;
  /** Calls go to a geography or region rather than the cloud's global endpoint. */
  regional: boolean;
}

const PRICE_FIELDS = [
  "inputPerMTok",
  "outputPerMTok",
  "cacheWritePerMTok",
  "cacheWrite1hPerMTok",
  "cacheReadPerMTok",
] as const;

/** The model's prices on `pricing`'s cloud (the table's list prices on the Anthropic API). */
export function upstreamPrices(model: ModelInfo, pricing: UpstreamPricing): ModelInfo {
  if (pricing.upstream === "anthropic" || !pricing.regional) return model;
  const factor = model[pricing.upstream]?.regionalPremium ?? 1;
  if (factor === 1) return model;
  // The 1-hour write price defaults from the input price: fix it before the input price moves.
  const priced: ModelInfo = { ...model, cacheWrite1hPerMTok: cacheWrite1hPerMTok(model) };
  // Rounded to a millionth of a dollar per MTok: 3 x 1.1 is 3.3, not 3.3000000000000003.
  for (const f of PRICE_FIELDS) priced[f] = Math.round(priced[f]! * factor * 1e6) / 1e6;
  return priced;
}

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  /** All cache writes, whatever their ttl. */
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  /** The API's split of the writes by ttl; writes it does not place are priced as 5-minute ones. */
  cache_creation?: CacheCreation | null;
}

export interface CacheCreation {
  ephemeral_5m_input_tokens?: number | null;
  ephemeral_1h_input_tokens?: number | null;
}

/** The 1-hour cache write price of a model. */
export function cacheWrite1hPerMTok(p: ModelInfo): number {
  return p.cacheWrite1hPerMTok ?? 2 * p.inputPerMTok;
}

/**
 * The price a worst-case hold charges each input token at: input that may be written to the
 * prompt cache costs the write price of the longest ttl the request asks for.
 */
export function worstInputPerMTok(
  p: ModelInfo,
  caching: { promptCaching?: boolean; longCacheWrites?: boolean },
): number {
  return Math.max(
    p.inputPerMTok,
    caching.promptCaching || caching.longCacheWrites ? p.cacheWritePerMTok : 0,
    caching.longCacheWrites ? cacheWrite1hPerMTok(p) : 0,
  );
}

/** The offline model's id: it costs nothing and says so. */
export const SYNTHETIC_MODEL = "synthetic-offline";

export class ModelCatalog {
  private readonly byId = new Map<string, ModelInfo>();
  /** The most expensive prices in the table: unknown models are charged at these, never at zero. */
  private readonly ceiling: ModelInfo;

  constructor(readonly table: ModelTable) {
    for (const m of table.models) this.byId.set(m.id, m);
    const priciest = [...table.models].sort((a, b) => b.outputPerMTok - a.outputPerMTok)[0];
    if (!priciest) throw new Error("model table has no models");
    this.ceiling = priciest;
    for (const [tier, chain] of Object.entries(table.fallbacks)) {
      for (const id of chain) {
        if (!this.byId.has(id))
          throw new Error(`model table: fallbacks.${tier} names unknown model "${id}"`);
      }
    }
  }

  /**
   * Parse a model table (default app/config/models.json). With `pricing`, every price is the one
   * that cloud charges (budgets, holds and the ledger all read prices from here).
   */
  static load(raw: unknown = defaultTable, pricing?: UpstreamPricing): ModelCatalog {
    const parsed = modelTableSchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new Error(`model table: ${i?.path.join(".")}: ${i?.message}`);
    }
    const table = parsed.data;
    if (!pricing) return new ModelCatalog(table);
    return new ModelCatalog({
      ...table,
      models: table.models.map((m) => upstreamPrices(m, pricing)),
    });
  }

  get(id: string): ModelInfo | undefined {
    return this.byId.get(id) ?? this.byId.get(stripDateSuffix(id));
  }

  /** Model ids of the table. */
  get ids(): string[] {
    return this.table.models.map((m) => m.id);
  }

  /** The id a metric label shows for `model`: its table id, the synthetic model, or null. */
  labelOf(model: string): string | null {
    if (model === SYNTHETIC_MODEL) return model;
    return this.get(model)?.id ?? null;
  }

  /** Prices for a model; unknown ids get the table's highest prices so budgets stay safe. */
  prices(id: string): ModelInfo {
    if (id === SYNTHETIC_MODEL)
      return {
        ...this.ceiling,
        id,
        inputPerMTok: 0,
        outputPerMTok: 0,
        cacheWritePerMTok: 0,
        cacheWrite1hPerMTok: 0,
        cacheReadPerMTok: 0,
      };
    return this.get(id) ?? this.ceiling;
  }

  /** The model followed by the rest of its tier's fallback chain (what a call may end up using). */
  chainFor(model: string): string[] {
    const info = this.get(model);
    const chain = info ? this.table.fallbacks[info.tier] : undefined;
    if (!info || !chain) return [model];
    return [model, ...chain.filter((id) => id !== model && id !== info.id)];
  }

  costUsd(model: string, usage: TokenUsage, opts: { batch?: boolean } = {}): number {
    const p = this.prices(model);
    const writes = usage.cache_creation_input_tokens ?? 0;
    const writes1h = Math.min(writes, usage.cache_creation?.ephemeral_1h_input_tokens ?? 0);
    const micro =
      usage.input_tokens * p.inputPerMTok +
      usage.output_tokens * p.outputPerMTok +
      (writes - writes1h) * p.cacheWritePerMTok +
      writes1h * cacheWrite1hPerMTok(p) +
      (usage.cache_read_input_tokens ?? 0) * p.cacheReadPerMTok;
    const usd = micro / 1_000_000;
    return opts.batch ? usd * this.table.batchDiscount : usd;
  }
}

// Dated snapshots such as claude-sonnet-4-5-20250929 price like their alias.
function stripDateSuffix(id: string): string {
  return id.replace(/-\d{8}$/, "");
}
