/**
 * `npm run plan` end to end: real child processes, real stack files, the real policy pack.
 * Few tests on purpose: each renders stacks in worker processes (several seconds each).
 */
import { spawn } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");
const FIXTURES = join(__dirname, "fixtures", "stacks");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function plan(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "infra/plan/cli.ts", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

type JsonStack = {
  name: string;
  target: string;
  cloud: string;
  resources: { type: string; name: string; parent: string | null }[];
  policy: { violations: { policy: string; level: string; resource: string; message: string }[] };
  cost: {
    monthlyUsd: number;
    items: { type: string; name: string; pricing: string; monthlyUsd: number; detail: string }[];
  };
};

test("one clean stack as JSON: the documented shape, a consistent tree and cost, exit 0", async () => {
  const run = await plan(["lambda-dev", "--json"]);
  expect(run.stderr).not.toMatch(/\[\d+\/\d+\]/); // progress is for many stacks
  expect(run.code).toBe(0);
  const out = JSON.parse(run.stdout) as { stacks: JsonStack[] };
  expect(Object.keys(out)).toEqual(["stacks"]);
  expect(out.stacks).toHaveLength(1);
  const s = out.stacks[0]!;
  expect(Object.keys(s)).toEqual(["name", "target", "cloud", "resources", "policy", "cost"]);
  expect(s).toMatchObject({ name: "lambda-dev", target: "lambda", cloud: "aws" });

  // Every resource has exactly type, name and parent; parents exist; one root, the stack.
  const keys = new Set(s.resources.map((r) => `${r.type}::${r.name}`));
  for (const r of s.resources) {
    expect(Object.keys(r)).toEqual(["type", "name", "parent"]);
    if (r.parent !== null) expect(keys.has(r.parent)).toBe(true);
  }
  expect(s.resources.filter((r) => r.parent === null)).toEqual([
    { type: "pulumi:pulumi:Stack", name: "agent-lambda-dev", parent: null },
  ]);
  expect(s.resources.some((r) => r.type === "aws:lambda/function:Function")).toBe(true);

  expect(Object.keys(s.policy)).toEqual(["violations"]);
  expect(s.policy.violations.filter((v) => v.level === "mandatory")).toEqual([]);
  for (const v of s.policy.violations)
    expect(Object.keys(v)).toEqual(["policy", "level", "resource", "message"]);

  // Cost: one item per custom resource, the total is their sum, and the big items are priced.
  expect(Object.keys(s.cost)).toEqual(["monthlyUsd", "items"]);
  const customs = s.resources.filter(
    (r) => !r.type.startsWith("agent:") && r.type !== "pulumi:pulumi:Stack",
  );
  expect(s.cost.items).toHaveLength(customs.length);
  expect(Math.round(s.cost.items.reduce((n, i) => n + i.monthlyUsd, 0) * 100) / 100).toBe(
    s.cost.monthlyUsd,
  );
  const byType = (t: string) => s.cost.items.find((i) => i.type === t)!;
  expect(byType("aws:rds/instance:Instance")).toMatchObject({
    pricing: "priced",
    monthlyUsd: 13.98,
  });
  expect(byType("aws:ec2/natGateway:NatGateway")).toMatchObject({
    pricing: "priced",
    monthlyUsd: 33.08,
  });
  expect(s.cost.items.filter((i) => i.pricing === "not-priced")).toEqual([]);
  expect(s.cost.monthlyUsd).toBeGreaterThan(60);
  expect(s.cost.monthlyUsd).toBeLessThan(80);
}, 120_000);

test("--all over a stacks directory: progress on stderr, every stack in the JSON, non-zero on a mandatory violation", async () => {
  const run = await plan(["--all", "--json", "--stacks-dir", FIXTURES]);
  expect(run.stderr).toMatch(/^Rendering 2 stacks, 2 at a time$/m);
  for (const i of [1, 2])
    expect(run.stderr).toMatch(
      new RegExp(`^\\[${i}/2\\] (lambda-dev|lambda-staging-oversized) ✓ \\d+\\.\\ds$`, "m"),
    );
  expect(run.code).toBe(1);

  const out = JSON.parse(run.stdout) as { stacks: JsonStack[] };
  expect(out.stacks.map((s) => s.name)).toEqual(["lambda-dev", "lambda-staging-oversized"]);
  const [clean, bad] = out.stacks as [JsonStack, JsonStack];
  expect(clean.policy.violations.filter((v) => v.level === "mandatory")).toEqual([]);
  const mandatory = bad.policy.violations.filter((v) => v.level === "mandatory");
  expect(mandatory.map((v) => v.policy)).toEqual(
    expect.arrayContaining(["monthly-cost-limit", "warm-capacity-bounded"]),
  );
  // The pack's cost rule priced the stack with the plan's cost model, not its fallback.
  expect(mandatory.find((v) => v.policy === "monthly-cost-limit")!.message).toContain(
    "plan cost model",
  );
  // 50 x 4 GB provisioned: 50 x 4 x 2,628,000 s x 0.0000033334
  expect(
    bad.cost.items.find(
      (i) => i.type === "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig",
    )!.monthlyUsd,
  ).toBe(1752.04);
}, 180_000);

test("usage errors exit 2 and say what is wrong", async () => {
  const run = await plan(["no-such-stack"]);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain("plan: unknown stack no-such-stack; known: cloudrun-dev");
  expect(run.stdout).toBe("");
}, 60_000);
