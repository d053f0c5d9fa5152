/**
 * The model table (app/config/models.json) and the cost arithmetic every budget and ledger
 * entry depends on. Prices live in configuration because the line-up changes several times a year.
 */
import * as z from "zod";
import defaultTable from "../../config/models.json";

const modelSchema = z.object({
  id: z.string().min(1),
  tier: z.string().min(1),
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  cacheWritePerMTok: z.number().nonnegative(),
  cacheReadPerMTok: z.number().nonnegative(),
  minCacheableTokens: z.number().int().nonnegative(),
  contextWindow: z.number().int().positive(),
});

export const modelTableSchema = z.object({
  pricesTakenOn: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  source: z.string().optional(),
  batchDiscount: z.number().gt(0).max(1),
  defaultTier: z.string(),
  models: z.array(modelSchema).min(1),
  fallbacks: z.record(z.string(), z.array(z.string()).min(1)),
});

export type ModelInfo = z.infer<typeof modelSchema>;
export type ModelTable = z.infer<typeof modelTableSchema>;

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
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

  static load(raw: unknown = defaultTable): ModelCatalog {
    const parsed = modelTableSchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new Error(`model table: ${i?.path.join(".")}: ${i?.message}`);
    }
    return new ModelCatalog(parsed.data);
  }

  get(id: string): ModelInfo | undefined {
    return this.byId.get(id) ?? this.byId.get(stripDateSuffix(id));
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
    const micro =
      usage.input_tokens * p.inputPerMTok +
      usage.output_tokens * p.outputPerMTok +
      (usage.cache_creation_input_tokens ?? 0) * p.cacheWritePerMTok +
      (usage.cache_read_input_tokens ?? 0) * p.cacheReadPerMTok;
    const usd = micro / 1_000_000;
    return opts.batch ? usd * this.table.batchDiscount : usd;
  }
}

// Dated snapshots such as claude-sonnet-4-5-20250929 price like their alias.
function stripDateSuffix(id: string): string {
  return id.replace(/-\d{8}$/, "");
}
