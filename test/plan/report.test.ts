/**
 * The plan's pure parts besides the cost model: the resource tree, the text and JSON renderings,
 * and the link to the policy pack (runner loading, the cost hook).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resourceTree, keySettings, type TreeInput } from "../../infra/plan/tree";
import {
  formatAssumptions,
  formatStack,
  formatSummary,
  formatTree,
  formatUsd,
  toJson,
  type PrintedPlan,
} from "../../infra/plan/format";
import {
  loadPolicyRunner,
  policyConfigFor,
  registerCostEstimator,
  PLAN_ESTIMATOR_SOURCE,
} from "../../infra/plan/policy";
import { estimateMonthlyUsd } from "../../infra/plan/cost";
import { getCostEstimator, setCostEstimator } from "../../infra/policy/cost-hook";

const urn = (qualifiedType: string, name: string) =>
  `urn:pulumi:dev::agent::${qualifiedType}::${name}`;
const STACK = urn("pulumi:pulumi:Stack", "agent-dev");
const DP = urn("agent:aws:DataPlane", "agent");
const PG = urn("agent:aws:DataPlane$agent:aws:Postgres", "agent-pg");

// Registration order as a real render might produce it: children before siblings, out of order.
const recorded: TreeInput[] = [
  { type: "pulumi:pulumi:Stack", name: "agent-dev", urn: STACK, custom: false, inputs: {} },
  {
    type: "agent:aws:DataPlane",
    name: "agent",
    urn: DP,
    parentUrn: STACK,
    custom: false,
    inputs: {},
  },
  {
    type: "aws:rds/instance:Instance",
    name: "agent-pg-db",
    urn: urn("agent:aws:DataPlane$agent:aws:Postgres$aws:rds/instance:Instance", "agent-pg-db"),
    parentUrn: PG,
    inputs: {
      instanceClass: "db.t4g.micro",
      multiAz: false,
      allocatedStorage: 20,
      storageType: "gp3",
      storageEncrypted: true,
    },
  },
  {
    type: "aws:ec2/vpc:Vpc",
    name: "agent-net-vpc",
    urn: urn("agent:aws:DataPlane$aws:ec2/vpc:Vpc", "agent-net-vpc"),
    parentUrn: DP,
    inputs: { cidrBlock: "10.0.0.0/16" },
  },
  {
    type: "agent:aws:Postgres",
    name: "agent-pg",
    urn: PG,
    parentUrn: DP,
    custom: false,
    inputs: {},
  },
  {
    type: "aws:rds/subnetGroup:SubnetGroup",
    name: "agent-pg-subnets",
    urn: urn(
      "agent:aws:DataPlane$agent:aws:Postgres$aws:rds/subnetGroup:SubnetGroup",
      "agent-pg-subnets",
    ),
    parentUrn: PG,
    inputs: {},
  },
  {
    type: "pulumi:pulumi:StackReference",
    name: "acme/agent/dev",
    urn: urn("pulumi:pulumi:StackReference", "acme/agent/dev"),
    parentUrn: STACK,
    inputs: { name: "acme/agent/dev" },
  },
];

describe("resource tree", () => {
  test("depth-first, components first, then by name; parents as type::name", () => {
    const tree = resourceTree(recorded);
    expect(tree.map((r) => [r.depth, r.type, r.name, r.parent])).toEqual([
      [0, "pulumi:pulumi:Stack", "agent-dev", null],
      [1, "agent:aws:DataPlane", "agent", "pulumi:pulumi:Stack::agent-dev"],
      [2, "agent:aws:Postgres", "agent-pg", "agent:aws:DataPlane::agent"],
      [3, "aws:rds/instance:Instance", "agent-pg-db", "agent:aws:Postgres::agent-pg"],
      [3, "aws:rds/subnetGroup:SubnetGroup", "agent-pg-subnets", "agent:aws:Postgres::agent-pg"],
      [2, "aws:ec2/vpc:Vpc", "agent-net-vpc", "agent:aws:DataPlane::agent"],
      [1, "pulumi:pulumi:StackReference", "acme/agent/dev", "pulumi:pulumi:Stack::agent-dev"],
    ]);
    expect(resourceTree([...recorded].reverse())).toEqual(tree);
  });

  test("key settings say what a reviewer looks for, and nothing for kinds without any", () => {
    expect(keySettings(recorded[2]!)).toBe("db.t4g.micro, single-AZ, 20 GB gp3, encrypted");
    expect(
      keySettings({
        type: "aws:lambda/function:Function",
        inputs: {
          runtime: "nodejs22.x",
          architectures: ["arm64"],
          memorySize: 1024,
          timeout: 120,
          reservedConcurrentExecutions: 10,
        },
      }),
    ).toBe("nodejs22.x, arm64, 1024 MB, timeout 120 s, reserved 10");
    expect(keySettings({ type: "aws:iam/role:Role", inputs: { name: "x" } })).toBe("");
  });

  test("prints as a box-drawing tree", () => {
    expect(formatTree(resourceTree(recorded))).toEqual([
      "pulumi:pulumi:Stack agent-dev",
      "├─ agent:aws:DataPlane agent",
      "│  ├─ agent:aws:Postgres agent-pg",
      "│  │  ├─ aws:rds/instance:Instance agent-pg-db  (db.t4g.micro, single-AZ, 20 GB gp3, encrypted)",
      "│  │  └─ aws:rds/subnetGroup:SubnetGroup agent-pg-subnets",
      "│  └─ aws:ec2/vpc:Vpc agent-net-vpc  (10.0.0.0/16)",
      "└─ pulumi:pulumi:StackReference acme/agent/dev  (acme/agent/dev)",
    ]);
  });
});

function samplePlan(
  name: string,
  violations: PrintedPlan["policy"]["violations"] = [],
): PrintedPlan {
  return {
    name,
    target: "lambda",
    cloud: "aws",
    environment: "dev",
    region: "us-east-1",
    resources: resourceTree(recorded),
    policy: { violations },
    cost: {
      monthlyUsd: 14.18,
      items: [
        {
          type: "aws:cloudwatch/metricAlarm:MetricAlarm",
          name: "a1",
          pricing: "priced",
          monthlyUsd: 0.1,
          detail: "1 metric x $0.10",
        },
        {
          type: "aws:cloudwatch/metricAlarm:MetricAlarm",
          name: "a2",
          pricing: "priced",
          monthlyUsd: 0.1,
          detail: "1 metric x $0.10",
        },
        {
          type: "aws:rds/instance:Instance",
          name: "agent-pg-db",
          pricing: "priced",
          monthlyUsd: 13.98,
          detail: "db.t4g.micro $0.016/h x 730 h + 20 GB gp3 x $0.115",
        },
        {
          type: "aws:rds/subnetGroup:SubnetGroup",
          name: "agent-pg-subnets",
          pricing: "free",
          monthlyUsd: 0,
          detail: "no charge",
        },
        {
          type: "aws:sagemaker/endpoint:Endpoint",
          name: "odd",
          pricing: "not-priced",
          monthlyUsd: 0,
          detail: "no price rule",
        },
      ],
    },
    alwaysOnMonthlyUsd: 14.18,
    messages: ["warning: [runtime] something to look at"],
  };
}

describe("renderings", () => {
  test("JSON has exactly the documented shape", () => {
    const violation = {
      policy: "p",
      level: "mandatory",
      resource: "urn:x",
      message: "m",
      type: "aws:x",
      name: "x",
    };
    const json = toJson(
      [samplePlan("b-stack", [violation]), samplePlan("a-stack")],
      [{ name: "c-stack", error: "boom" }],
    );
    expect(Object.keys(json)).toEqual(["stacks"]);
    expect(json.stacks.map((s) => s.name)).toEqual(["a-stack", "b-stack", "c-stack"]);
    const b = json.stacks[1]!;
    expect(Object.keys(b)).toEqual(["name", "target", "cloud", "resources", "policy", "cost"]);
    if (!("resources" in b)) throw new Error("expected a rendered stack");
    for (const r of b.resources) expect(Object.keys(r)).toEqual(["type", "name", "parent"]);
    expect(b.policy).toEqual({
      violations: [{ policy: "p", level: "mandatory", resource: "urn:x", message: "m" }],
    });
    expect(Object.keys(b.cost)).toEqual(["monthlyUsd", "items"]);
    expect(json.stacks[2]).toEqual({ name: "c-stack", error: "boom" });
  });

  test("text: tree, policy with messages, cost grouped and ordered by amount, not-priced and free listed", () => {
    const text = formatStack(
      samplePlan("lambda-dev", [
        {
          policy: "db-private",
          level: "mandatory",
          resource: "urn:db",
          type: "aws:rds/instance:Instance",
          name: "agent-pg-db",
          message: "make it private",
        },
      ]),
    );
    expect(text).toContain("━━ lambda-dev: lambda on aws, dev, us-east-1 ━━");
    expect(text).toContain(
      "│  │  ├─ aws:rds/instance:Instance agent-pg-db  (db.t4g.micro, single-AZ, 20 GB gp3, encrypted)",
    );
    expect(text).toContain(
      "Policy: 1 mandatory, 0 advisory\n  ✗ mandatory db-private  aws:rds/instance:Instance agent-pg-db\n      make it private",
    );
    expect(text).toContain("Estimated cost: $14.18 / month ($14.18 always-on");
    const rds = text.indexOf("$13.98  aws:rds/instance:Instance agent-pg-db");
    const alarms = text.indexOf("$0.20  2 x aws:cloudwatch/metricAlarm:MetricAlarm ($0.10 each)");
    expect(rds).toBeGreaterThan(0);
    expect(alarms).toBeGreaterThan(rds);
    expect(text).toContain("not priced  aws:sagemaker/endpoint:Endpoint odd: no price rule");
    expect(text).toContain("free  1 resource that cost nothing by themselves");
    expect(text).toContain("Program messages:\n  warning: [runtime] something to look at");
    expect(formatStack(samplePlan("x"), { tree: false })).not.toContain("├─");
  });

  test("summary table and assumptions", () => {
    const summary = formatSummary(
      [
        samplePlan("a"),
        samplePlan("b", [{ policy: "p", level: "advisory", resource: "stack", message: "m" }]),
      ],
      [{ name: "c", error: "boom" }],
    );
    expect(summary.split("\n")).toEqual([
      "stack  target  cloud  env  resources  mandatory  advisory  monthly",
      "a      lambda  aws    dev          7          0         0   $14.18",
      "b      lambda  aws    dev          7          0         1   $14.18",
      "c      -       -      -            -          -         -   FAILED",
      "total                                                       $28.36",
    ]);
    const assumptions = formatAssumptions(["prod", "dev"]);
    expect(assumptions).toMatch(
      /^Prices: list prices taken on \d{4}-\d{2}-\d{2} \(AWS us-east-1, GCP us-central1\)/,
    );
    expect(assumptions).toContain("Usage assumptions (dev / prod):");
    expect(assumptions).toMatch(/requestsPerMonth\s+50,000 \/ 2,000,000\s+agent requests a month/);
    expect(formatUsd(1234.5)).toBe("$1,234.50");
  });
});

describe("policy pack link", () => {
  test("loads a runner, converts resources with its toPolicyResource, passes the environment's policy config", async () => {
    const dir = mkdtempSync(join(tmpdir(), "plan-runner-"));
    const file = join(dir, "runner.js");
    writeFileSync(
      file,
      `exports.toPolicyResource = (r) => ({ type: r.type, name: r.name, urn: r.urn, props: r.inputs });
       exports.evaluatePolicies = (resources, options) => resources
         .filter((r) => r.props.publiclyAccessible === true)
         .map((r) => ({ policy: "database-not-public", domain: "data", level: "mandatory", resource: r.urn, type: r.type, name: r.name,
                        message: options.environment + ":" + JSON.stringify(options.config === undefined ? null : Object.keys(options.config).length) }));`,
    );
    const evaluate = loadPolicyRunner(file);
    const violations = await evaluate(
      [
        {
          type: "aws:rds/instance:Instance",
          name: "open",
          urn: "urn:open",
          inputs: { publiclyAccessible: true },
        },
        {
          type: "aws:rds/instance:Instance",
          name: "closed",
          urn: "urn:closed",
          inputs: { publiclyAccessible: false },
        },
      ],
      "prod",
    );
    const config = policyConfigFor("prod") as Record<string, unknown> | undefined;
    expect(violations).toEqual([
      {
        policy: "database-not-public",
        level: "mandatory",
        resource: "urn:open",
        type: "aws:rds/instance:Instance",
        name: "open",
        message: `prod:${JSON.stringify(config === undefined ? null : Object.keys(config).length)}`,
      },
    ]);
    expect(() => loadPolicyRunner(join(dir, "missing.js"))).toThrow(
      /cannot load the policy runner/,
    );
  });

  test("registers the plan's cost model as the pack's estimator", () => {
    setCostEstimator(undefined);
    expect(registerCostEstimator()).toBe(true);
    expect(getCostEstimator()).toEqual({
      estimate: estimateMonthlyUsd,
      source: PLAN_ESTIMATOR_SOURCE,
    });
    setCostEstimator(undefined);
  });
});
