/**
 * Calls CrossGuard policies the way @pulumi/policy's server does (server.js: makeAnalyzeRpcFun and
 * makeAnalyzeStackRpcFun): props behind the unknown-checking proxy, the level from the policy
 * config else the policy, disabled policies skipped, `getConfig()` without `enforcementLevel`,
 * violations through `reportViolation`. crossguard.test.ts checks the real server process.
 */
import {
  unknownCheckingProxy,
  type PolicyResource as CrossGuardResource,
  type PolicyResourceOptions,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import type { PolicyConfigFile } from "../../infra/policy/config";
import type { PolicyResource } from "../../infra/policy/types";

export interface Diagnostic {
  policy: string;
  level: string;
  /** The resource URN, or "stack" when a stack policy names none. */
  resource: string;
  message: string;
}

function optsOf(r: PolicyResource): PolicyResourceOptions {
  return {
    protect: r.protect ?? false,
    ignoreChanges: [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
    parent: r.parentUrn,
  };
}

function configOf(
  config: PolicyConfigFile | undefined,
  name: string,
): { level?: string; props: Record<string, unknown> } {
  const entry = config?.[name];
  if (entry === undefined) return { props: {} };
  if (typeof entry === "string") return { level: entry, props: {} };
  const { enforcementLevel, ...props } = entry;
  return { level: enforcementLevel, props };
}

export async function runCrossGuard(
  policies: Array<ResourceValidationPolicy | StackValidationPolicy>,
  resources: readonly PolicyResource[],
  config?: PolicyConfigFile,
): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  for (const p of policies) {
    const { level: configured, props } = configOf(config, p.name);
    let level = configured ?? p.enforcementLevel ?? "advisory";
    if (level === "disabled") continue;
    if (level === "remediate") level = "mandatory";
    const getConfig = <T extends object>() => props as T;
    const notApplicable = (reason?: string): never => {
      throw new Error(`notApplicable: ${reason}`);
    };
    if ("validateResource" in p && p.validateResource) {
      const fns = Array.isArray(p.validateResource) ? p.validateResource : [p.validateResource];
      for (const r of resources) {
        for (const fn of fns) {
          await fn(
            {
              type: r.type,
              name: r.name,
              urn: r.urn,
              props: unknownCheckingProxy(JSON.parse(JSON.stringify(r.props))) as Record<
                string,
                unknown
              >,
              opts: optsOf(r),
              stackTags: new Map(),
              isType: () => false,
              asType: () => undefined,
              getConfig,
              notApplicable,
            },
            (message, urn) => out.push({ policy: p.name, level, resource: urn ?? r.urn, message }),
          );
        }
      }
    } else if ("validateStack" in p) {
      const cg = resources.map(
        (r) =>
          ({
            type: r.type,
            name: r.name,
            urn: r.urn,
            props: unknownCheckingProxy(JSON.parse(JSON.stringify(r.props))),
            opts: optsOf(r),
            dependencies: [],
            propertyDependencies: {},
            isType: () => false,
            asType: () => undefined,
          }) as unknown as CrossGuardResource,
      );
      for (const r of cg) {
        const parentUrn = resources.find((x) => x.urn === r.urn)?.parentUrn;
        if (parentUrn) r.parent = cg.find((x) => x.urn === parentUrn);
      }
      await p.validateStack(
        { resources: cg, stackTags: new Map(), getConfig, notApplicable },
        (message, urn) => out.push({ policy: p.name, level, resource: urn ?? "stack", message }),
      );
    }
  }
  return out;
}
