/**
 * The plan's link to the policy pack: runs the pack's offline runner (`infra/policy/runner.ts`)
 * over a rendered stack with the environment's policy config, and gives the pack's monthly-cost
 * rule this directory's cost model through `infra/policy/cost-hook.ts`.
 *
 * The runner can be swapped with `--policy <module>`: any module exporting
 * `evaluatePolicies(resources, { environment, config })` (and optionally `toPolicyResource`),
 * which the CLI tests use to exercise the exit code with a known verdict.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Environment } from "../../components/contracts";
import { DEFAULT_PRICES, estimateMonthlyUsd } from "./cost";

/** A violation as the plan reports it. `resource` is the runner's (a URN, or "stack"). */
export interface Violation {
  policy: string;
  level: string;
  resource: string;
  message: string;
  /** Type and logical name of the resource, when the runner gives them (text output only). */
  type?: string;
  name?: string;
}

interface RunnerModule {
  evaluatePolicies(
    resources: readonly unknown[],
    options: { environment: Environment; config?: unknown },
  ): readonly Violation[] | Promise<readonly Violation[]>;
  toPolicyResource?(resource: unknown): unknown;
}

export type EvaluateStack = (
  recorded: readonly unknown[],
  environment: Environment,
) => Promise<Violation[]>;

const POLICY_DIR = join(__dirname, "..", "policy");
export const DEFAULT_POLICY_RUNNER = join(POLICY_DIR, "runner");
export const PLAN_ESTIMATOR_SOURCE = `plan cost model, list prices of ${DEFAULT_PRICES.takenOn}`;

/** `infra/policy/config/<env>.json` (CrossGuard's policy config format), when it exists. */
export function policyConfigFor(
  environment: Environment,
  dir = join(POLICY_DIR, "config"),
): unknown {
  const file = join(dir, `${environment}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as unknown) : undefined;
}

export function loadPolicyRunner(modulePath: string = DEFAULT_POLICY_RUNNER): EvaluateStack {
  let mod: Partial<RunnerModule>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(resolve(modulePath)) as Partial<RunnerModule>;
  } catch (err) {
    throw new Error(`cannot load the policy runner ${modulePath}: ${(err as Error).message}`);
  }
  const { evaluatePolicies, toPolicyResource } = mod;
  if (typeof evaluatePolicies !== "function")
    throw new Error(`${modulePath} exports no evaluatePolicies function`);
  return async (recorded, environment) => {
    const resources =
      typeof toPolicyResource === "function" ? recorded.map((r) => toPolicyResource(r)) : recorded;
    const violations = await evaluatePolicies(resources, {
      environment,
      config: policyConfigFor(environment),
    });
    return violations.map((v) => ({
      policy: v.policy,
      level: v.level,
      resource: v.resource,
      message: v.message,
      type: v.type,
      name: v.name,
    }));
  };
}

/**
 * Registers the plan's estimator with the pack's cost rule, when the pack offers the hook.
 * Returns whether it did.
 */
export function registerCostEstimator(): boolean {
  let hook: { setCostEstimator?: (fn: typeof estimateMonthlyUsd, source?: string) => void };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    hook = require(join(POLICY_DIR, "cost-hook")) as typeof hook;
  } catch {
    return false;
  }
  if (typeof hook.setCostEstimator !== "function") return false;
  hook.setCostEstimator(estimateMonthlyUsd, PLAN_ESTIMATOR_SOURCE);
  return true;
}
