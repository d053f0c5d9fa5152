/** What a plan worker reports for one stack, and what the CLI prints from it. */
import type { CostEstimate } from "./cost";
import type { Violation } from "./policy";
import type { PlanResource } from "./tree";

export interface StackPlan {
  name: string;
  target: string;
  cloud: string;
  environment: string;
  region: string;
  resources: PlanResource[];
  policy: { violations: Violation[] };
  cost: CostEstimate;
  /** The same estimate with traffic-driven usage at zero: what the monthly-cost-limit policy checks. */
  alwaysOnMonthlyUsd: number;
}

export interface WorkerRequest {
  stack: string;
  /** Directory holding the stack files. @default the repository's stacks/ */
  stacksDir?: string;
  /** Module exporting `evaluatePolicies`. @default infra/policy/runner.ts */
  policyModule?: string;
}

export type WorkerMessage = { ok: true; plan: StackPlan } | { ok: false; error: string };
