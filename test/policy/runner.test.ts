/** The offline runner's API, as the plan tool uses it. */
import { setCostEstimator } from "../../infra/policy/cost-hook";
import { fallbackEstimate } from "../../infra/policy/cost-estimate";
import { ruleNamed } from "../../infra/policy/rules";
import { evaluatePolicies, formatViolation, toPolicyResource } from "../../infra/policy/runner";
import { resourceRule, stackRule } from "../../infra/policy/types";
import { aws, gcp } from "./fixtures";

afterEach(() => setCostEstimator(undefined));

test("toPolicyResource takes the mock harness's RecordedResource", () => {
  expect(
    toPolicyResource({
      type: "aws:rds/instance:Instance",
      name: "db",
      urn: "urn:pulumi:s::p::aws:rds/instance:Instance::db",
      inputs: { storageEncrypted: true },
      parentUrn: "urn:parent",
      options: { protect: true },
    }),
  ).toEqual({
    type: "aws:rds/instance:Instance",
    name: "db",
    urn: "urn:pulumi:s::p::aws:rds/instance:Instance::db",
    props: { storageEncrypted: true },
    parentUrn: "urn:parent",
    protect: true,
  });
});

test("violations carry policy, domain, level, resource and a message; mandatory first", () => {
  const prodDb = aws.rds({
    publiclyAccessible: true,
    instanceClass: "db.r7g.16xlarge",
    tags: { environment: "dev" },
  });
  const db = { ...prodDb, urn: prodDb.urn.replace("test-prod", "test-dev") };
  const v = evaluatePolicies([db], { environment: "dev" });
  expect(v.map((x) => [x.level, x.policy])).toEqual([
    ["mandatory", "budget-alerts"],
    ["mandatory", "database-not-public"],
    ["advisory", "alarms-present"],
    ["advisory", "allowed-database-sizes"],
    ["advisory", "monthly-cost-limit"],
  ]);
  const pub = v.find((x) => x.policy === "database-not-public")!;
  expect(pub).toEqual({
    policy: "database-not-public",
    domain: "data",
    level: "mandatory",
    resource: db.urn,
    type: db.type,
    name: db.name,
    message: expect.stringMatching(/set it to false/),
  });
  expect(v.find((x) => x.policy === "budget-alerts")).toMatchObject({
    resource: "stack",
    type: undefined,
  });
  expect(formatViolation(pub)).toBe(
    `[mandatory] data/database-not-public aws:rds/instance:Instance "${db.name}": ${pub.message}`,
  );
});

test("CrossGuard's unknown sentinels are unknown, not values", () => {
  const rds = aws.rds({
    storageEncrypted: "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
    publiclyAccessible: "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
    tags: "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
  });
  const v = evaluatePolicies([rds], {
    environment: "prod",
    rules: ["database-encrypted-at-rest", "database-not-public", "required-tags"].map((n) =>
      ruleNamed(n)!,
    ),
  });
  expect(v).toEqual([]);
});

test("a rule that throws fails the evaluation, naming the policy and resource", () => {
  const broken = resourceRule({
    name: "broken",
    description: "d",
    domain: "data",
    enforcement: { dev: "mandatory", staging: "mandatory", prod: "mandatory" },
    types: "*",
    validateResource: () => {
      throw new Error("boom");
    },
  });
  const db = aws.rds();
  expect(() => evaluatePolicies([db], { environment: "dev", rules: [broken] })).toThrow(
    `Policy broken failed on ${db.urn}: boom`,
  );
  const brokenStack = stackRule({
    name: "broken-stack",
    description: "d",
    domain: "data",
    enforcement: { dev: "mandatory", staging: "mandatory", prod: "mandatory" },
    validateStack: () => {
      throw new Error("bang");
    },
  });
  expect(() => evaluatePolicies([db], { environment: "dev", rules: [brokenStack] })).toThrow(
    "Policy broken-stack failed: bang",
  );
});

describe("the monthly cost rule's estimator", () => {
  const cost = ruleNamed("monthly-cost-limit")!;
  const stack = [aws.rds(), aws.redis()];
  const run = (opts: Parameters<typeof evaluatePolicies>[1]) =>
    evaluatePolicies(stack, { ...opts, rules: [cost] }).map((v) => v.message);

  test("the built-in conservative estimate by default", () => {
    const est = fallbackEstimate(stack);
    expect(est.monthlyUsd).toBeGreaterThan(400);
    expect(
      run({ environment: "prod", config: { "monthly-cost-limit": { monthlyLimitUsd: 100 } } }),
    ).toEqual([
      expect.stringContaining(
        `Estimated $${Math.round(est.monthlyUsd)}/month (built-in conservative estimate)`,
      ),
    ]);
  });

  test("then the registered one (the plan's cost model), then the runner option", () => {
    setCostEstimator(() => 9000, "plan cost model, list prices of 2025-01");
    expect(run({ environment: "prod" })).toEqual([
      expect.stringMatching(
        /^Estimated \$9000\/month \(plan cost model, list prices of 2025-01\) is over the prod limit of \$8000\./,
      ),
    ]);
    const seen: unknown[] = [];
    const option = (resources: readonly unknown[], env: string) => {
      seen.push([resources.length, env]);
      return 10;
    };
    expect(run({ environment: "prod", estimateMonthlyUsd: option })).toEqual([]);
    expect(seen).toEqual([[2, "prod"]]);
  });

  test("an estimator returning nonsense fails loudly", () => {
    expect(() => run({ environment: "prod", estimateMonthlyUsd: () => Number.NaN })).toThrow(
      /returned NaN: it must return a finite number of USD >= 0/,
    );
  });
});

test("GCP and AWS resources in one list are each checked by their own rules", () => {
  const v = evaluatePolicies(
    [
      gcp.sql({ settings: { ipConfiguration: { ipv4Enabled: true } } }),
      aws.rds({ publiclyAccessible: true }),
    ],
    { environment: "prod", rules: [ruleNamed("database-not-public")!] },
  );
  expect(new Set(v.map((x) => x.type))).toEqual(
    new Set(["aws:rds/instance:Instance", "gcp:sql/databaseInstance:DatabaseInstance"]),
  );
  expect(v).toHaveLength(2);
});
