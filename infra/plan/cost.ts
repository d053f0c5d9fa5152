/**
 * Estimated monthly cost of a rendered stack, from the dated list prices in `prices.json` and the
 * usage assumptions it states per environment. Pure: resources in, figures out, no I/O.
 *
 * Every custom resource gets one item: `priced` (with the arithmetic in `detail`), `free` (a kind
 * that costs nothing by itself, with the reason) or `not-priced` (a kind or size the table does not
 * know). Nothing is silently zero: an unknown kind or instance size is `not-priced`, never guessed.
 * Items are rounded to cents and the total is the sum of the rounded items, so the printed figures
 * add up.
 */
import type { Environment } from "../../components/contracts";
import PRICES from "./prices.json";
import { utcToday } from "../../components/versions";
import { GCP } from "./cost-gcp";
import { AWS, K8S } from "./cost-aws";
export * from "./cost-aws";
export * from "./cost-gcp";

export type PriceTable = typeof PRICES;
export type UsageAssumptions = PriceTable["usage"]["dev"];

/** What the estimator needs of a resource; the mock runtime's RecordedResource satisfies it. */
export interface CostResource {
  type: string;
  name: string;
  /** The provider id; resources refer to each other by it (an ASG to its launch template...). */
  id?: string;
  /** False for component resources, which cost nothing themselves and get no item. */
  custom?: boolean;
  inputs: Record<string, unknown>;
  /** Provider-computed outputs (`name`, `selfLink`...), used to follow references. */
  state?: Record<string, unknown>;
}

export type Pricing = "priced" | "free" | "not-priced";

export interface CostItem {
  type: string;
  name: string;
  pricing: Pricing;
  monthlyUsd: number;
  /** The arithmetic for priced items; the reason for free and not-priced ones. */
  detail: string;
}

export interface CostEstimate {
  monthlyUsd: number;
  items: CostItem[];
}

export interface CostOptions {
  environment: Environment;
  /** @default the repository's prices.json */
  prices?: PriceTable;
  /** @default the environment's usage assumptions from the price table */
  usage?: UsageAssumptions;
  /** The day (`YYYY-MM-DD`) support phases are judged on (EKS extended support). @default today */
  today?: string;
}

export const DEFAULT_PRICES: PriceTable = PRICES;

/** Rounds to cents, half away from zero, without binary-fraction surprises (1.005 -> 1.01). */
export function roundCents(usd: number): number {
  return (Math.sign(usd) * Math.round(Math.abs(usd) * 100 + 1e-9)) / 100;
}

export function usageFor(environment: Environment, prices: PriceTable = PRICES): UsageAssumptions {
  const usage = prices.usage[environment];
  if (!usage)
    throw new Error(`prices.json has no usage assumptions for environment "${environment}"`);
  return usage;
}

/**
 * The environment's assumptions with every traffic-driven quantity at zero: what the stack costs
 * standing idle (instances, nodes, databases, caches, NAT, load balancers, warm capacity, stored
 * images). The policy pack's monthly-cost rule limits this figure.
 */
export function alwaysOnUsage(usage: UsageAssumptions): UsageAssumptions {
  return {
    ...usage,
    requestsPerMonth: 0,
    cloudRunBusyInstanceHours: 0,
    natDataGbPerMonth: 0,
    loadBalancerAvgLcu: 0,
    loadBalancerDataGbPerMonth: 0,
    appLogGbPerMonth: 0,
    eksControlPlaneLogGbPerMonth: 0,
    flowLogGbPerMonth: 0,
  };
}

export function estimateCost(
  resources: readonly CostResource[],
  options: CostOptions,
): CostEstimate {
  const ctx = new Context(
    resources,
    options.prices ?? PRICES,
    options.usage ?? usageFor(options.environment, options.prices),
    options.today ?? utcToday(),
  );
  const items: CostItem[] = [];
  for (const r of resources) {
    if (r.custom === false) continue;
    items.push(priceOne(r, ctx));
  }
  // Registration order depends on timing; the report must not.
  items.sort((a, b) => a.type.localeCompare(b.type, "en") || a.name.localeCompare(b.name, "en"));
  const monthlyUsd = roundCents(items.reduce((sum, i) => sum + i.monthlyUsd, 0));
  return { monthlyUsd, items };
}

// ---------------------------------------------------------------------------------------------
// Dispatch

export type Outcome = { usd: number; detail: string } | { free: string } | { notPriced: string };
export type Pricer = (r: CostResource, ctx: Context) => Outcome;

function priceOne(r: CostResource, ctx: Context): CostItem {
  const pricer = PRICERS[r.type];
  const outcome: Outcome = pricer ? pricer(r, ctx) : classify(r.type, ctx.prices);
  const base = { type: r.type, name: r.name };
  if ("usd" in outcome)
    return {
      ...base,
      pricing: "priced",
      monthlyUsd: roundCents(outcome.usd),
      detail: outcome.detail,
    };
  if ("free" in outcome) return { ...base, pricing: "free", monthlyUsd: 0, detail: outcome.free };
  return { ...base, pricing: "not-priced", monthlyUsd: 0, detail: outcome.notPriced };
}

function classify(type: string, prices: PriceTable): Outcome {
  const lookup = (table: Record<string, string>) =>
    Object.entries(table).find(
      ([prefix]) => !prefix.startsWith("$") && type.startsWith(prefix),
    )?.[1];
  const notPriced = lookup(prices.notPriced);
  if (notPriced) return { notPriced };
  const free = lookup(prices.free);
  if (free) return { free };
  return { notPriced: `no price rule for ${type}: add one to infra/plan/cost.ts and prices.json` };
}

// ---------------------------------------------------------------------------------------------
// Context: the stack-wide view some prices need (NAT data split, references between resources)

export class Context {
  readonly hours: number;
  readonly seconds: number;
  constructor(
    readonly resources: readonly CostResource[],
    readonly prices: PriceTable,
    readonly usage: UsageAssumptions,
    readonly today: string,
  ) {
    this.hours = prices.hoursPerMonth;
    this.seconds = prices.hoursPerMonth * 3600;
  }

  ofType(type: string): CostResource[] {
    return this.resources.filter((r) => r.type === type && r.custom !== false);
  }

  /**
   * The resource of `type` that `ref` (an id, name, self link or ARN) designates; failing that,
   * the only resource of that type in the stack (the policy pack hands over inputs without ids).
   */
  find(type: string, ref: unknown): CostResource | undefined {
    const candidates = this.ofType(type);
    if (typeof ref === "string" && ref) {
      const bare = ref.replace(/\?.*$/, "");
      const found = candidates.find((r) => {
        const keys = [
          r.id,
          r.state?.name,
          r.inputs.name,
          r.state?.selfLink,
          r.state?.selfLinkUnique,
          r.state?.arn,
        ];
        return keys.some(
          (k) =>
            typeof k === "string" &&
            k !== "" &&
            (k === ref || k === bare || bare.endsWith(`/${k}`)),
        );
      });
      if (found) return found;
    }
    return candidates.length === 1 ? candidates[0] : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Rates as printed in details: whole cents with two decimals ($0.40), finer rates as they are. */
export const usd = (n: number) =>
  Number.isInteger(Math.round(n * 100 * 1e6) / 1e6) ? `$${n.toFixed(2)}` : `$${n}`;
export const num = (v: unknown, fallback: number) =>
  typeof v === "number" && Number.isFinite(v)
    ? v
    : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))
      ? Number(v)
      : fallback;
export const str = (v: unknown) => (typeof v === "string" ? v : undefined);
export const obj = (v: unknown) =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
export const arr = (v: unknown) => (Array.isArray(v) ? (v as unknown[]) : []);
export const thousands = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 3 });
export const lookupPrice = (table: Record<string, number>, key: string | undefined) =>
  key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined;

/** Kubernetes-style quantities: "2", "500m" CPUs; "512Mi", "2Gi", "1G" memory in GiB. */
export function cpuQuantity(q: unknown): number {
  const s = String(q ?? "1");
  return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
export function memoryGiB(q: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi|M|G)?$/.exec(String(q ?? "512Mi"));
  if (!m) return NaN;
  const n = Number(m[1]);
  switch (m[2]) {
    case "Mi":
      return n / 1024;
    case "Gi":
      return n;
    case "M":
      return (n * 1e6) / 2 ** 30;
    case "G":
      return (n * 1e9) / 2 ** 30;
    default:
      return n / 2 ** 30;
  }
}

// ---------------------------------------------------------------------------------------------
// AWS
// ---------------------------------------------------------------------------------------------
// GCP

const PRICERS: Record<string, Pricer> = { ...AWS, ...K8S, ...GCP };

/** The resource kinds with a price rule (for documentation and tests). */
export const PRICED_TYPES: readonly string[] = Object.keys(PRICERS).sort();

// ---------------------------------------------------------------------------------------------
// The policy pack's estimator contract (infra/policy/cost-hook.ts)

/** A resource as the policy rules see it: `props` are its inputs. */
export interface PolicyViewResource {
  type: string;
  name: string;
  props?: Record<string, unknown>;
}

/**
 * What the pack's `monthly-cost-limit` rule limits: the monthly USD of always-on capacity (usage
 * left out, see `alwaysOnUsage`), for resources as the rules see them. Pure and synchronous, as
 * the pack requires; `infra/policy/pack.ts` finds it by this name, the plan registers it through
 * the pack's `setCostEstimator`.
 */
export function estimateMonthlyUsd(
  resources: readonly PolicyViewResource[],
  environment: Environment,
): number {
  const costResources: CostResource[] = resources.map((r) => ({
    type: r.type,
    name: r.name,
    inputs: r.props ?? {},
    state: r.props ?? {},
  }));
  return estimateCost(costResources, { environment, usage: alwaysOnUsage(usageFor(environment)) })
    .monthlyUsd;
}
