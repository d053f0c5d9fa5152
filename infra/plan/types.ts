/** What a plan worker reports for one stack, and what the CLI prints from it. */
import type { CostEstimate } from "./cost";
import type { Violation } from "./policy";
import type { PlanResource } from "./tree";
import type { StackFacts } from "../preflight/facts";

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
  /** With `--preflight`: what the cross-stack checks read. */
  facts?: StackFacts;
}

export interface WorkerRequest {
  stack: string;
  /** Directory holding the stack files. @default the repository's stacks/ */
  stacksDir?: string;
  /** Module exporting `evaluatePolicies`. @default infra/policy/runner.ts */
  policyModule?: string;
  /** Extract the preflight's facts too. */
  preflight?: boolean;
}

export type WorkerMessage =
  | { ok: true; plan: StackPlan }
  | {
      ok: false;
      error: string;
      /** Set when the stack's configuration is invalid or incomplete (not a program failure). */
      config?: { problems: string[]; missing: string[] };
    };
