/**
 * Which environment (dev, staging, prod) a stack is, for levels and thresholds.
 *
 * Resolution order, first match wins:
 *
 * 1. `AGENT_POLICY_ENVIRONMENT` in the pack's process environment: an explicit override for CI.
 * 2. `<project>:environment` in the stack config that the Pulumi CLI hands every policy pack
 *    (`PULUMI_CONFIG`). This is `agent:environment` from `stacks/Pulumi.<stack>.yaml`: the very
 *    value `infra/config.ts` validates and the program tags every resource with, so the pack and
 *    the program cannot disagree.
 * 3. The stack name's suffix (`PULUMI_STACK`): `eks-prod` -> prod, `lambda-staging` -> staging.
 * 4. Per resource, when the process tells nothing (older CLIs, the offline runner without an
 *    explicit environment): its `environment` tag or label, then its URN's stack name suffix.
 * 5. prod: when nothing says otherwise, the strictest levels apply.
 *
 * The `environment-consistent` stack rule reports a stack whose tags, name and policy config file
 * disagree, so a dev config file cannot quietly relax a prod stack.
 */
import { AWS_TAG_KEYS } from "../../components/tagging";
import type { Environment, PolicyResource } from "./types";
import { ENVIRONMENTS } from "./types";
import { get, stackOfUrn } from "./values";

const ALIASES: Record<string, Environment> = {
  dev: "dev",
  development: "dev",
  staging: "staging",
  stage: "staging",
  stg: "staging",
  prod: "prod",
  production: "prod",
  prd: "prod",
};

/** `"prod"` -> prod; `"Production"` -> prod; anything else -> undefined. */
export function parseEnvironment(value: unknown): Environment | undefined {
  return typeof value === "string" ? ALIASES[value.trim().toLowerCase()] : undefined;
}

/** The environment a stack name ends with: `eks-prod`, `lambda_staging`, `dev`. */
export function environmentFromStackName(stack: string | undefined): Environment | undefined {
  if (!stack) return undefined;
  const last = stack.split(/[-_.]/).pop();
  return parseEnvironment(last);
}

/** The `environment` tag (AWS), label (GCP) or Cloud SQL user label a resource carries. */
export function environmentTagOf(props: Record<string, unknown>): Environment | undefined {
  for (const path of [
    `tags.${AWS_TAG_KEYS.environment}`,
    "labels.environment",
    "settings.userLabels.environment",
  ]) {
    const env = parseEnvironment(get(props, path));
    if (env) return env;
  }
  return undefined;
}

/** Step 4 for one resource: its tag or label, then its URN's stack name. */
export function environmentOfResource(
  r: Pick<PolicyResource, "urn" | "props">,
): Environment | undefined {
  return environmentTagOf(r.props) ?? environmentFromStackName(stackOfUrn(r.urn));
}

/** Step 4 for a whole stack: the most common tag or label, then the stack name of the URNs. */
export function environmentOfStack(
  resources: readonly Pick<PolicyResource, "urn" | "props">[],
): Environment | undefined {
  const counts = new Map<Environment, number>();
  for (const r of resources) {
    const env = environmentTagOf(r.props);
    if (env) counts.set(env, (counts.get(env) ?? 0) + 1);
  }
  const tagged = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (tagged) return tagged;
  for (const r of resources) {
    const env = environmentFromStackName(stackOfUrn(r.urn));
    if (env) return env;
  }
  return undefined;
}

export interface ProcessEnvironment {
  environment?: Environment;
  /** Where it came from, for messages. */
  source?: string;
}

/** Steps 1-3, from what the Pulumi CLI puts in a policy pack's process environment. */
export function environmentFromProcess(env: NodeJS.ProcessEnv = process.env): ProcessEnvironment {
  const explicit = parseEnvironment(env.AGENT_POLICY_ENVIRONMENT);
  if (explicit) return { environment: explicit, source: "AGENT_POLICY_ENVIRONMENT" };

  const project = env.PULUMI_PROJECT ?? env.PULUMI_NODEJS_PROJECT ?? "agent";
  if (env.PULUMI_CONFIG) {
    try {
      const config = JSON.parse(env.PULUMI_CONFIG) as Record<string, unknown>;
      const fromConfig = parseEnvironment(config[`${project}:environment`]);
      if (fromConfig)
        return { environment: fromConfig, source: `stack config ${project}:environment` };
    } catch {
      // Unparseable config: fall through to the stack name.
    }
  }
  const stack = env.PULUMI_STACK ?? env.PULUMI_NODEJS_STACK;
  const fromName = environmentFromStackName(stack);
  if (fromName) return { environment: fromName, source: `stack name ${stack}` };
  return {};
}

/** The strictest level across environments is prod's; used when nothing resolves. */
export const FALLBACK_ENVIRONMENT: Environment = "prod";

export function isEnvironment(v: unknown): v is Environment {
  return typeof v === "string" && (ENVIRONMENTS as readonly string[]).includes(v);
}
