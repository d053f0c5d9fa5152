/**
 * Where the monthly-cost rule gets its estimate from. The offline plan's cost model
 * (`infra/plan/cost.ts`, with its price table) registers itself here, or is handed to
 * `evaluatePolicies(..., { estimateMonthlyUsd })`; without either, the rule uses the built-in
 * conservative estimate in `cost-estimate.ts`.
 *
 * Contract for an estimator:
 * - input: every resource of the stack as the rules see it (`PolicyResource`: type, name, urn,
 *   props, parentUrn, protect); a prop may be the `UNKNOWN` symbol (from `./values`) during
 *   `pulumi preview`: price it as low as plausible (the rule must never fail a preview on a value
 *   nobody can see yet);
 * - output: the stack's expected monthly cost in USD for its always-on capacity (usage-based
 *   charges such as requests and tokens are the app's budgets' business), as a finite number >= 0;
 * - pure and synchronous (CrossGuard calls it inside a policy).
 *
 * Precedence: the runner's `estimateMonthlyUsd` option, then `setCostEstimator`, then the fallback.
 */
import type { Environment, PolicyResource } from "./types";

export type CostEstimator = (
  resources: readonly PolicyResource[],
  environment: Environment,
) => number;

interface Registered {
  estimate: CostEstimator;
  source: string;
}

let registered: Registered | undefined;

/** Registers (or, with `undefined`, removes) the estimator the cost rule uses. */
export function setCostEstimator(
  estimate: CostEstimator | undefined,
  source = "plan cost model",
): void {
  registered = estimate ? { estimate, source } : undefined;
}

/** The registered estimator and its name, if any. */
export function getCostEstimator(): Registered | undefined {
  return registered;
}
