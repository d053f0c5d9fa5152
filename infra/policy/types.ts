/**
 * The small abstraction every rule is written against. Two engines run the same rules:
 *
 * - `pack.ts` adapts them to CrossGuard (`@pulumi/policy`) for `pulumi preview --policy-pack`;
 * - `runner.ts` evaluates them offline over rendered resources (tests, `npm run plan`).
 *
 * Nothing here (nor in `rules/`) imports `@pulumi/policy`: constructing a `PolicyPack` starts a
 * gRPC server, and even loading the package pulls that server in. Only `pack.ts` and `index.ts`
 * touch it.
 */
import type { UNKNOWN } from "./values";

export type Environment = "dev" | "staging" | "prod";
export const ENVIRONMENTS: readonly Environment[] = ["dev", "staging", "prod"];

/** CrossGuard's levels, minus `remediate` (no rule here rewrites resources). */
export type Level = "advisory" | "mandatory" | "disabled";

export type Domain =
  "data" | "compute" | "kubernetes" | "secrets" | "supply-chain" | "operations" | "cost";

/** A level for each environment. Security rules are mandatory everywhere; cost rules tighten with the environment. */
export type Enforcement = Readonly<Record<Environment, Level>>;

/**
 * One resource as a rule sees it. `props` are the resource's inputs (CrossGuard's resource
 * validation) or its outputs (stack validation; a superset of the inputs for what rules read).
 * During `pulumi preview` a value may be unknown: it is then the `UNKNOWN` symbol, and rules
 * must treat it as "cannot tell", never as a violation.
 */
export interface PolicyResource {
  type: string;
  name: string;
  urn: string;
  props: Record<string, unknown>;
  parentUrn?: string;
  /** The `protect` resource option. */
  protect?: boolean;
}

export type Unknown = typeof UNKNOWN;

/** What a rule receives besides the resource(s). */
export interface RuleContext<C> {
  environment: Environment;
  /** The rule's thresholds: its defaults for the environment, overridden by policy config. */
  config: C;
  /** Only for the monthly cost rule: the estimator the runner or pack resolved. */
  estimateMonthlyUsd?: (resources: readonly PolicyResource[]) => CostEstimate;
}

export interface CostEstimate {
  monthlyUsd: number;
  /** Who estimated: "plan cost model" or the built-in conservative fallback. */
  source: string;
  /** Largest contributors, for the message. */
  top?: ReadonlyArray<{ resource: string; monthlyUsd: number }>;
}

/** Report a violation. Messages say what to change. */
export type ReportResource = (message: string) => void;
/** Report a stack-level violation, optionally about one resource (by URN). */
export type ReportStack = (message: string, urn?: string) => void;

/** The JSON schema subset used for rule configuration (and handed to CrossGuard as `configSchema`). */
export type JsonSchema =
  | { type: "number" | "integer"; minimum?: number; maximum?: number; description?: string }
  | { type: "boolean"; description?: string }
  | { type: "string"; enum?: string[]; description?: string }
  | { type: "array"; items: JsonSchema; minItems?: number; description?: string };

export interface RuleBase<C> {
  /** Stable id: CrossGuard policy name and the key in the policy config files. */
  name: string;
  description: string;
  domain: Domain;
  enforcement: Enforcement;
  /** Thresholds: one JSON schema per property, and the defaults for each environment. */
  config?: {
    schema: Readonly<Record<keyof C & string, JsonSchema>>;
    defaults: Readonly<Record<Environment, C>>;
  };
}

export interface ResourceRule<C = Record<string, never>> extends RuleBase<C> {
  kind: "resource";
  /** Type tokens the rule looks at, or "*" for every resource. */
  types: readonly string[] | "*";
  validateResource(resource: PolicyResource, ctx: RuleContext<C>, report: ReportResource): void;
}

export interface StackRule<C = Record<string, never>> extends RuleBase<C> {
  kind: "stack";
  validateStack(
    resources: readonly PolicyResource[],
    ctx: RuleContext<C>,
    report: ReportStack,
  ): void;
}

// Rules are stored in heterogeneous lists; the config type is checked where each rule is defined.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Rule = ResourceRule<any> | StackRule<any>;

/** Identity helpers that keep each rule's config type while it is being written. */
export function resourceRule<C = Record<string, never>>(
  rule: Omit<ResourceRule<C>, "kind">,
): ResourceRule<C> {
  return { kind: "resource", ...rule };
}
export function stackRule<C = Record<string, never>>(
  rule: Omit<StackRule<C>, "kind">,
): StackRule<C> {
  return { kind: "stack", ...rule };
}

/** Levels shared by the domains, so the mapping is stated once. */
export const LEVELS = {
  /** Security: mandatory everywhere. */
  security: { dev: "mandatory", staging: "mandatory", prod: "mandatory" },
  /** Only prod must satisfy it (deletion protection, two replicas...). */
  prodOnly: { dev: "disabled", staging: "disabled", prod: "mandatory" },
  /** Cost: advice in dev, a gate from staging on. */
  cost: { dev: "advisory", staging: "mandatory", prod: "mandatory" },
} as const satisfies Record<string, Enforcement>;
