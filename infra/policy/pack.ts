/**
 * The CrossGuard adapter: turns the rules into `@pulumi/policy` policies. `index.ts` hands the
 * result to `new PolicyPack(...)`; tests call `buildPolicies()` directly (it starts nothing).
 *
 * What the adapter adds to a rule:
 * - its level: the rule's own for the stack's environment (see `environment.ts`), unless the
 *   policy config passed with `--policy-pack-config` sets one (CrossGuard's precedence);
 * - its thresholds: the environment's defaults, overridden by the policy config;
 * - unknown values: CrossGuard throws when a policy reads a value unknown during preview; the
 *   adapter copies the properties first, turning each unknown into the `UNKNOWN` symbol that
 *   rules skip, so nothing unknown is ever reported as a violation.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  UnknownValueError,
  type EnforcementLevel,
  type PolicyConfigSchema,
  type PolicyResource as CrossGuardResource,
  type ResourceValidationArgs,
  type ResourceValidationPolicy,
  type StackValidationArgs,
  type StackValidationPolicy,
} from "@pulumi/policy";
import { configSchemaOf, effectiveConfig } from "./config";
import type { CostEstimator } from "./cost-hook";
import {
  FALLBACK_ENVIRONMENT,
  environmentFromProcess,
  environmentOfResource,
  environmentOfStack,
} from "./environment";
import { RULES } from "./rules";
import { costEstimateFn } from "./runner";
import type { Enforcement, Environment, Level, PolicyResource, Rule } from "./types";
import { UNKNOWN, normalizeUnknowns } from "./values";

export interface BuildOptions {
  /** The stack's environment. @default resolved from the process (see environment.ts), else per resource */
  environment?: Environment;
  /** @default every rule */
  rules?: readonly Rule[];
  /** The cost model. @default the plan's (see `usePlanCostModel`), else the registered one, else the built-in estimate */
  estimateMonthlyUsd?: CostEstimator;
  /** Load `estimateMonthlyUsd` from infra/plan/cost.ts when that file exists. @default true */
  usePlanCostModel?: boolean;
}

const STRICTNESS: Record<Level, number> = { disabled: 0, advisory: 1, mandatory: 2 };

function strictest(enforcement: Enforcement): Level {
  return Object.values(enforcement).reduce(
    (a, b) => (STRICTNESS[b] > STRICTNESS[a] ? b : a),
    "disabled" as Level,
  );
}

/**
 * A plain copy of CrossGuard's property proxy: every value the proxy refuses (unknown during
 * preview) becomes `UNKNOWN`, and any leftover sentinel string too.
 */
export function plainProps(props: unknown): Record<string, unknown> {
  const copy = (read: () => unknown): unknown => {
    let v: unknown;
    try {
      v = read();
    } catch (e) {
      if (e instanceof UnknownValueError) return UNKNOWN;
      throw e;
    }
    if (Array.isArray(v)) {
      const arr = v as unknown[];
      const out: unknown[] = [];
      for (let i = 0; i < arr.length; i++) out.push(copy(() => arr[i]));
      return out;
    }
    if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      const obj = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(obj).map((k) => [k, copy(() => obj[k])]));
    }
    return v;
  };
  return (normalizeUnknowns(copy(() => props)) as Record<string, unknown>) ?? {};
}

function fromResourceArgs(args: ResourceValidationArgs): PolicyResource {
  return {
    type: args.type,
    name: args.name,
    urn: args.urn,
    props: plainProps(args.props),
    parentUrn: args.opts?.parent,
    protect: args.opts?.protect,
  };
}

function fromStackResource(r: CrossGuardResource): PolicyResource {
  return {
    type: r.type,
    name: r.name,
    urn: r.urn,
    props: plainProps(r.props),
    parentUrn: r.parent?.urn,
    protect: r.opts?.protect,
  };
}

/**
 * The plan's cost model (`infra/plan/cost.ts` exporting `estimateMonthlyUsd`), when that module
 * exists. Loaded lazily and only here: the pack must run even when the plan does not.
 */
export function loadPlanCostModel(
  dir: string = path.join(__dirname, "..", "plan"),
): CostEstimator | undefined {
  if (!fs.existsSync(path.join(dir, "cost.ts")) && !fs.existsSync(path.join(dir, "cost.js")))
    return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(dir, "cost")) as { estimateMonthlyUsd?: unknown };
    return typeof mod.estimateMonthlyUsd === "function"
      ? (mod.estimateMonthlyUsd as CostEstimator)
      : undefined;
  } catch (e) {
    // stdout carries the pack's port to the CLI: diagnostics go to stderr.
    console.error(
      `agent-policies: infra/plan/cost could not be loaded (${(e as Error).message}); using the built-in cost estimate.`,
    );
    return undefined;
  }
}

/** The CrossGuard policies for every rule. */
export function buildPolicies(
  options: BuildOptions = {},
): Array<ResourceValidationPolicy | StackValidationPolicy> {
  const built = options.environment ?? environmentFromProcess().environment;
  const rules = options.rules ?? RULES;
  const estimator =
    options.estimateMonthlyUsd ??
    (options.usePlanCostModel === false ? undefined : loadPlanCostModel());

  return rules.map((rule) => {
    const common = {
      name: rule.name,
      description: rule.description,
      // With the environment known, the rule's level for it; otherwise the strictest, and each
      // validation below skips environments where the rule is off.
      enforcementLevel: (built
        ? rule.enforcement[built]
        : strictest(rule.enforcement)) as EnforcementLevel,
      configSchema: configSchemaOf(rule) as PolicyConfigSchema | undefined,
      tags: [rule.domain],
    };
    const skip = (env: Environment) => built === undefined && rule.enforcement[env] === "disabled";

    if (rule.kind === "resource") {
      const policy: ResourceValidationPolicy = {
        ...common,
        validateResource: (args, report) => {
          if (rule.types !== "*" && !rule.types.includes(args.type)) return;
          const resource = fromResourceArgs(args);
          const env = built ?? environmentOfResource(resource) ?? FALLBACK_ENVIRONMENT;
          if (skip(env)) return;
          const config = effectiveConfig(rule, env, args.getConfig<Record<string, unknown>>());
          rule.validateResource(
            resource,
            { environment: env, config, estimateMonthlyUsd: costEstimateFn(env, estimator) },
            (message) => report(message),
          );
        },
      };
      return policy;
    }
    const policy: StackValidationPolicy = {
      ...common,
      validateStack: (args: StackValidationArgs, report) => {
        const resources = args.resources.map(fromStackResource);
        const env = built ?? environmentOfStack(resources) ?? FALLBACK_ENVIRONMENT;
        if (skip(env)) return;
        const config = effectiveConfig(rule, env, args.getConfig<Record<string, unknown>>());
        rule.validateStack(
          resources,
          { environment: env, config, estimateMonthlyUsd: costEstimateFn(env, estimator) },
          (message, urn) => report(message, urn),
        );
      },
    };
    return policy;
  });
}
