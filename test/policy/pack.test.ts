/**
 * The CrossGuard adapter, called the way @pulumi/policy's server calls policies: props behind
 * the unknown-checking proxy, config from `getConfig()`, violations through `reportViolation`.
 * (crossguard.test.ts runs the real pack process over gRPC.)
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  unknownCheckingProxy,
  type PolicyResource as CrossGuardResource,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import { buildPolicies, loadPlanCostModel, plainProps } from "../../infra/policy/pack";
import type { Environment, PolicyResource } from "../../infra/policy/types";
import { UNKNOWN } from "../../infra/policy/values";
import { TAGS, aws, k8s } from "./fixtures";

const UNKNOWN_BOOL = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7";
const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function policies(environment?: Environment) {
  const list = buildPolicies({ environment, usePlanCostModel: false });
  return {
    resource: (name: string) => list.find((p) => p.name === name) as ResourceValidationPolicy,
    stack: (name: string) => list.find((p) => p.name === name) as StackValidationPolicy,
  };
}

/** Calls a resource policy as the CrossGuard server does; returns the reported messages. */
async function validate(
  policy: ResourceValidationPolicy,
  r: PolicyResource,
  config: Record<string, unknown> = {},
): Promise<string[]> {
  const reported: string[] = [];
  const fns = Array.isArray(policy.validateResource)
    ? policy.validateResource
    : [policy.validateResource!];
  for (const fn of fns) {
    await fn(
      {
        type: r.type,
        name: r.name,
        urn: r.urn,
        props: unknownCheckingProxy(r.props) as Record<string, unknown>,
        opts: {
          protect: r.protect ?? false,
          ignoreChanges: [],
          aliases: [],
          customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
          additionalSecretOutputs: [],
        },
        stackTags: new Map(),
        isType: () => false,
        asType: () => undefined,
        getConfig: <T extends object>() => config as T,
        notApplicable: (reason?: string) => {
          throw new Error(`not applicable: ${reason}`);
        },
      },
      (message) => reported.push(message),
    );
  }
  return reported;
}

async function validateStack(
  policy: StackValidationPolicy,
  rs: PolicyResource[],
  config: Record<string, unknown> = {},
): Promise<Array<[string, string | undefined]>> {
  const reported: Array<[string, string | undefined]> = [];
  const resources = rs.map(
    (r) =>
      ({
        type: r.type,
        name: r.name,
        urn: r.urn,
        props: unknownCheckingProxy(r.props),
        opts: {
          protect: r.protect ?? false,
          ignoreChanges: [],
          aliases: [],
          customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
          additionalSecretOutputs: [],
        },
        dependencies: [],
        propertyDependencies: {},
        isType: () => false,
        asType: () => undefined,
      }) as unknown as CrossGuardResource,
  );
  await policy.validateStack(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => config as T,
      notApplicable: () => undefined as never,
    },
    (m, urn) => reported.push([m, urn]),
  );
  return reported;
}

test("plainProps copies through the proxy, turning unknowns into UNKNOWN", () => {
  const proxied = unknownCheckingProxy({
    a: 1,
    b: UNKNOWN_BOOL,
    c: { d: [UNKNOWN_STRING, "x"], e: null },
  });
  expect(plainProps(proxied)).toEqual({ a: 1, b: UNKNOWN, c: { d: [UNKNOWN, "x"], e: null } });
});

test("a violation is reported with the rule's message", async () => {
  const p = policies("prod").resource("database-not-public");
  expect(await validate(p, aws.rds({ publiclyAccessible: true }))).toEqual([
    "publiclyAccessible is true: set it to false; reach the database from inside the VPC (compute security group) only.",
  ]);
  expect(await validate(p, aws.rds())).toEqual([]);
});

test("values unknown during preview are neither violations nor errors", async () => {
  const p = policies("prod");
  const rds = aws.rds({
    storageEncrypted: UNKNOWN_BOOL,
    publiclyAccessible: UNKNOWN_BOOL,
    tags: { ...TAGS, owner: UNKNOWN_STRING },
  });
  for (const name of [
    "database-encrypted-at-rest",
    "database-not-public",
    "required-tags",
    "prod-deletion-protection",
  ]) {
    expect([name, await validate(p.resource(name), rds)]).toEqual([name, []]);
  }
  const dep = k8s.deployment({
    image: UNKNOWN_STRING,
    securityContext: { readOnlyRootFilesystem: UNKNOWN_BOOL },
  });
  expect(await validate(p.resource("images-pinned-by-digest"), dep)).toEqual([]);
  expect(await validate(p.resource("k8s-read-only-root-filesystem"), dep)).toEqual([]);
});

test("thresholds come from the policy config when it sets them", async () => {
  const p = policies("prod").resource("database-backups");
  expect(await validate(p, aws.rds({ backupRetentionPeriod: 20 }))).toEqual([]);
  expect(
    await validate(p, aws.rds({ backupRetentionPeriod: 20 }), { minRetentionDays: 30 }),
  ).toEqual(["backupRetentionPeriod is 20: set it to at least 30 days."]);
});

test("resources of other types are left alone", async () => {
  expect(await validate(policies("prod").resource("database-not-public"), aws.lambda())).toEqual(
    [],
  );
});

test("with no environment at start-up, each resource's own decides, and rules off there are skipped", async () => {
  const saved = { ...process.env };
  try {
    for (const k of [
      "AGENT_POLICY_ENVIRONMENT",
      "PULUMI_CONFIG",
      "PULUMI_STACK",
      "PULUMI_NODEJS_STACK",
    ])
      delete process.env[k];
    const p = policies(undefined).resource("prod-deletion-protection");
    const devDb = aws.rds(
      { deletionProtection: false, tags: { ...TAGS, environment: "dev" } },
      false,
    );
    expect(await validate(p, devDb)).toEqual([]);
    const prodDb = aws.rds({ deletionProtection: false }, false);
    expect(await validate(p, prodDb)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/protect resource option is off/),
        "deletionProtection is off: set deletionProtection: true.",
      ]),
    );
  } finally {
    process.env = saved;
  }
});

test("stack policies see every resource and report against a URN", async () => {
  const dep = k8s.deployment();
  expect(await validateStack(policies("prod").stack("k8s-pdb-in-prod"), [dep])).toEqual([
    [expect.stringMatching(/has no PodDisruptionBudget/), dep.urn],
  ]);
  expect(await validateStack(policies("prod").stack("k8s-pdb-in-prod"), [dep, k8s.pdb()])).toEqual(
    [],
  );
  expect(
    await validateStack(policies("prod").stack("monthly-cost-limit"), [aws.rds()], {
      monthlyLimitUsd: 10,
    }),
  ).toEqual([[expect.stringMatching(/over the prod limit of \$10/), undefined]]);
});

describe("the plan's cost model", () => {
  test("is loaded from infra/plan/cost when it exports estimateMonthlyUsd", () => {
    const dir = mkdtempSync(join(tmpdir(), "plan-"));
    writeFileSync(
      join(dir, "cost.js"),
      "exports.estimateMonthlyUsd = (resources, env) => resources.length * 1000 + (env === 'prod' ? 1 : 0);",
    );
    const fn = loadPlanCostModel(dir)!;
    expect(fn([aws.rds()], "prod")).toBe(1001);
    const p = buildPolicies({ environment: "prod", estimateMonthlyUsd: fn }).find(
      (x) => x.name === "monthly-cost-limit",
    ) as StackValidationPolicy;
    return validateStack(p, [aws.rds()], { monthlyLimitUsd: 500 }).then((r) =>
      expect(r).toEqual([
        [expect.stringMatching(/^Estimated \$1001\/month \(plan cost model\)/), undefined],
      ]),
    );
  });

  test("is skipped when absent or broken (the pack still runs)", () => {
    expect(loadPlanCostModel(mkdtempSync(join(tmpdir(), "plan-")))).toBeUndefined();
    const broken = mkdtempSync(join(tmpdir(), "plan-"));
    writeFileSync(join(broken, "cost.js"), "throw new Error('no prices');");
    const err = jest.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      expect(loadPlanCostModel(broken)).toBeUndefined();
      expect(err).toHaveBeenCalledWith(expect.stringContaining("no prices"));
    } finally {
      err.mockRestore();
    }
  });
});
