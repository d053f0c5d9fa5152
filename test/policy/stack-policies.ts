/**
 * The whole pack over one rendered stack file. Each file under test/infra/stacks/ renders one
 * stack (Pulumi's runtime is module-global) and calls `describeStackPolicies`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PolicyConfigFile } from "../../infra/policy/config";
import { environmentOfStack } from "../../infra/policy/environment";
import { buildPolicies } from "../../infra/policy/pack";
import {
  evaluatePolicies,
  formatViolation,
  toPolicyResource,
  type Violation,
} from "../../infra/policy/runner";
import type { Environment, PolicyResource } from "../../infra/policy/types";
import { UNKNOWN } from "../../infra/policy/values";
import { stackRenderer, type RenderedStack } from "../support/render-stack";
import { runCrossGuard } from "./crossguard-harness";

export function readPolicyConfig(environment: Environment): PolicyConfigFile {
  return JSON.parse(
    readFileSync(join(__dirname, "../../infra/policy/config", `${environment}.json`), "utf8"),
  ) as PolicyConfigFile;
}

/** Every leaf value replaced by UNKNOWN: a preview in which nothing is known yet. */
export function allUnknown(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(allUnknown);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, allUnknown(x)]));
  return UNKNOWN;
}

export function describeStackPolicies(
  stack: string,
  render: () => Promise<RenderedStack> = stackRenderer(stack),
): void {
  let s: RenderedStack;
  let resources: PolicyResource[];
  let environment: Environment;
  let config: PolicyConfigFile;
  let violations: Violation[];

  beforeAll(async () => {
    s = await render();
    resources = s.q.all().map(toPolicyResource);
    environment = s.config.environment;
    config = readPolicyConfig(environment);
    violations = evaluatePolicies(resources, { environment, config });
  }, 120_000);

  describe(`policy pack over stack ${stack}`, () => {
    test("the stack's environment is what its tags and name say", () => {
      expect(environmentOfStack(resources)).toBe(environment);
      expect(stack.endsWith(`-${environment}`)).toBe(true);
    });

    test("no mandatory violations", () => {
      expect(violations.filter((v) => v.level === "mandatory").map(formatViolation)).toEqual([]);
    });

    test("every violation says what to change", () => {
      for (const v of violations) expect(v.message).toMatch(/: |set |add |use |remove /i);
    });

    test("CrossGuard (through the adapter) reports exactly what the offline runner reports", async () => {
      const diagnostics = await runCrossGuard(
        buildPolicies({ environment, usePlanCostModel: false }),
        resources,
        config,
      );
      const normalize = (
        xs: Array<{ policy: string; level: string; resource: string; message: string }>,
      ) => xs.map((x) => `${x.level} ${x.policy} ${x.resource} ${x.message}`).sort();
      expect(normalize(diagnostics)).toEqual(normalize(violations));
    });

    test("a preview where no value is known yet adds no violation (only what is absent whatever the values stays)", () => {
      const unknown = resources.map((r) => ({
        ...r,
        props: allUnknown(r.props) as Record<string, unknown>,
      }));
      const known = new Set(violations.map(formatViolation));
      const added = evaluatePolicies(unknown, { environment, config })
        .map(formatViolation)
        .filter((v) => !known.has(v));
      expect(added).toEqual([]);
    });
  });
}
