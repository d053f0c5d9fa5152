/**
 * The offline engine: evaluates the pack's rules over resources rendered under the Pulumi mock
 * runtime (tests, `npm run plan`), with the same levels, thresholds and messages CrossGuard
 * would give in `pulumi preview --policy-pack infra/policy`.
 *
 * It never loads `@pulumi/policy` (whose import brings in the gRPC server that `PolicyPack`
 * starts): a test pins that.
 *
 * ```ts
 * const violations = evaluatePolicies(
 *   recorded.map(toPolicyResource),
 *   { environment: "prod", config: JSON.parse(readFileSync("infra/policy/config/prod.json", "utf8")) },
 * );
 * if (violations.some((v) => v.level === "mandatory")) process.exitCode = 1;
 * ```
 */
import {
  effectiveConfig,
  levelFor,
  overridesFor,
  validatePolicyConfig,
  type PolicyConfigFile,
} from "./config";
import { getCostEstimator, type CostEstimator } from "./cost-hook";
import { fallbackEstimate } from "./cost-estimate";
import { RULES } from "./rules";
import type { CostEstimate, Domain, Environment, PolicyResource, Rule, RuleContext } from "./types";
import { normalizeUnknowns } from "./values";

export interface EvaluateOptions {
  environment: Environment;
  /** A policy config (the parsed `config/<env>.json`, or any subset); levels and thresholds override the rules' defaults. */
  config?: PolicyConfigFile;
  /** The cost model for `monthly-cost-limit`; else the one registered with `setCostEstimator`, else the built-in fallback. */
  estimateMonthlyUsd?: CostEstimator;
  /** The rules to run. @default every rule of the pack */
  rules?: readonly Rule[];
}

export interface Violation {
  policy: string;
  domain: Domain;
  level: "advisory" | "mandatory";
  /** The URN of the offending resource; for a stack-level finding without one, "stack". */
  resource: string;
  /** Type and logical name of the resource, when there is one. */
  type?: string;
  name?: string;
  message: string;
}

/** What the mock harness records (`RecordedResource`) is enough to build a rule's view. */
export interface RecordedLike {
  type: string;
  name: string;
  urn: string;
  inputs: unknown;
  parentUrn?: string;
  options?: { protect?: boolean };
}

export function toPolicyResource(r: RecordedLike): PolicyResource {
  return {
    type: r.type,
    name: r.name,
    urn: r.urn,
    props: (r.inputs ?? {}) as Record<string, unknown>,
    parentUrn: r.parentUrn,
    protect: r.options?.protect,
  };
}

function normalize(r: PolicyResource): PolicyResource {
  return { ...r, props: (normalizeUnknowns(r.props ?? {}) as Record<string, unknown>) ?? {} };
}

/** Wraps an estimator (or the fallback) into what the cost rule consumes. */
export function costEstimateFn(
  environment: Environment,
  explicit?: CostEstimator,
): (resources: readonly PolicyResource[]) => CostEstimate {
  const registered = getCostEstimator();
  const chosen = explicit ? { estimate: explicit, source: "plan cost model" } : registered;
  return (resources) => {
    if (chosen) {
      const usd = chosen.estimate(resources, environment);
      if (typeof usd !== "number" || !Number.isFinite(usd) || usd < 0) {
        throw new Error(
          `The cost estimator (${chosen.source}) returned ${String(usd)}: it must return a finite number of USD >= 0.`,
        );
      }
      return { monthlyUsd: usd, source: chosen.source };
    }
    const fallback = fallbackEstimate(resources);
    return {
      monthlyUsd: fallback.monthlyUsd,
      source: "built-in conservative estimate",
      top: fallback.lines,
    };
  };
}

function appliesTo(rule: Rule, type: string): boolean {
  return rule.kind === "resource" && (rule.types === "*" || rule.types.includes(type));
}

/**
 * Runs every rule that is not disabled for the environment over the resources; returns the
 * violations, mandatory first, then by policy and resource. Throws when the config is invalid
 * or a rule fails (as CrossGuard fails the preview).
 */
export function evaluatePolicies(
  resources: readonly PolicyResource[],
  options: EvaluateOptions,
): Violation[] {
  const { environment, config } = options;
  const rules = options.rules ?? RULES;
  if (config) {
    const problems = validatePolicyConfig(config, rules);
    if (problems.length > 0) throw new Error(`Invalid policy config:\n  ${problems.join("\n  ")}`);
  }
  const all = resources.map(normalize);
  const estimate = costEstimateFn(environment, options.estimateMonthlyUsd);
  const out: Violation[] = [];

  for (const rule of rules) {
    const level = levelFor(rule, environment, config);
    if (level === "disabled") continue;
    const ctx: RuleContext<unknown> = {
      environment,
      config: effectiveConfig(rule, environment, overridesFor(rule, config)),
      estimateMonthlyUsd: estimate,
    };
    const base = { policy: rule.name, domain: rule.domain, level };
    if (rule.kind === "resource") {
      for (const r of all) {
        if (!appliesTo(rule, r.type)) continue;
        try {
          rule.validateResource(r, ctx, (message) =>
            out.push({ ...base, resource: r.urn, type: r.type, name: r.name, message }),
          );
        } catch (e) {
          throw new Error(`Policy ${rule.name} failed on ${r.urn}: ${(e as Error).message}`, {
            cause: e,
          });
        }
      }
    } else {
      try {
        rule.validateStack(all, ctx, (message, urn) => {
          const r = urn ? all.find((x) => x.urn === urn) : undefined;
          out.push({ ...base, resource: urn ?? "stack", type: r?.type, name: r?.name, message });
        });
      } catch (e) {
        throw new Error(`Policy ${rule.name} failed: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  const rank = (v: Violation) => (v.level === "mandatory" ? 0 : 1);
  return out.sort(
    (a, b) =>
      rank(a) - rank(b) || a.policy.localeCompare(b.policy) || a.resource.localeCompare(b.resource),
  );
}

/** `[mandatory] data/database-not-public aws:rds/instance:Instance "agent-pg-db": publiclyAccessible is true: ...` */
export function formatViolation(v: Violation): string {
  const where = v.type ? `${v.type} "${v.name}"` : v.resource;
  return `[${v.level}] ${v.domain}/${v.policy} ${where}: ${v.message}`;
}
