/**
 * `npm run plan -- --preflight` end to end on fixture stacks that carry the problems a first
 * `pulumi up` would hit (test/preflight/fixtures/stacks): real worker processes, real renders.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { Finding } from "../../infra/preflight/checks";

const ROOT = join(__dirname, "..", "..");
const FIXTURES = join(__dirname, "fixtures", "stacks");

function plan(
  args: string[],
  stacksDir = FIXTURES,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "infra/plan/cli.ts",
        "--stacks-dir",
        stacksDir,
        "--today",
        "2026-12-06",
        ...args,
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let json: { stacks: { name: string; error?: string }[]; findings: Finding[]; preflight: object };
let code: number | null;
beforeAll(async () => {
  const run = await plan(["--all", "--preflight", "--json"]);
  code = run.code;
  json = JSON.parse(run.stdout) as typeof json;
}, 180_000);

const of = (rule: string, stack?: string) =>
  json.findings.filter((f) => f.rule === rule && (stack === undefined || f.stack === stack));

test("blockers exit 3, and --json carries the documented finding shape next to the plan", () => {
  expect(code).toBe(3);
  expect(Object.keys(json)).toEqual(["stacks", "findings", "preflight"]);
  for (const f of json.findings) {
    expect(Object.keys(f)).toEqual(["severity", "rule", "stack", "resource", "message", "fix"]);
    expect(["blocker", "warning"]).toContain(f.severity);
  }
  expect(json.preflight).toMatchObject({
    blockers: json.findings.filter((f) => f.severity === "blocker").length,
    warnings: json.findings.filter((f) => f.severity === "warning").length,
  });
  // Invalid or incomplete configuration is a finding, not a render failure: the plan lists the
  // stacks it rendered, the findings say why the others could not be.
  expect(json.stacks.map((s) => [s.name, s.error])).toEqual([
    ["vm-a", undefined],
    ["vm-b", undefined],
  ]);
});

test("quota sums per account and region: two prod VM groups in us-west-2 need 6 Elastic IPs of 5", () => {
  expect(of("quota.elastic-ips").map((f) => f.message)).toEqual([
    "vm-a, vm-b create 6 Elastic IP addresses in the default account/us-west-2, over the default quota of 5 (stacks without aws:allowedAccountIds are assumed to share one account)",
  ]);
  expect((json.preflight as { quotas: unknown[] }).quotas).toEqual([
    {
      account: "the default account",
      region: "us-west-2",
      stacks: ["vm-a", "vm-b"],
      vpcs: { used: 2, limit: 5 },
      elasticIps: { used: 6, limit: 5 },
      lambdaReserved: { used: 0, limit: 900 },
      source: "default",
    },
  ]);
});

test("EKS 1.31: a blocker that names the version and the day its support ended", () => {
  expect(of("config.invalid", "eks-old").map((f) => f.message)).toEqual([
    "agent:eks.kubernetesVersion is 1.31, whose extended support ended on 2026-11-26: EKS no longer creates it; use 1.35",
  ]);
});

test("values only the user knows, unset and with no sample: config.required with the command", () => {
  expect(of("config.required", "gcp-unset").map((f) => [f.resource, f.fix])).toEqual([
    ["agent:alertEmails", "pulumi config set agent:alertEmails <value> -s gcp-unset"],
    ["agent:billingAccount", "pulumi config set agent:billingAccount <value> -s gcp-unset"],
    ["gcp:project", "pulumi config set gcp:project <value> -s gcp-unset"],
  ]);
});

test("rendered stacks: one domain twice, a certificate from another region, a placeholder account, an unknown source", () => {
  for (const s of ["vm-a", "vm-b"]) {
    expect(of("dns.domain-collision", s)).toHaveLength(1);
    expect(of("dns.certificate-region", s)[0]!.message).toBe(
      "the certificate is in us-east-1 but the load balancer in us-west-2: ACM certificates are regional",
    );
    expect(of("config.placeholder", s).map((f) => f.resource)).toEqual(["agent:certificateArn"]);
    expect(of("promotion.source", s)[0]!.severity).toBe("warning");
    expect(of("config.secret", s)[0]!.resource).toBe("agent:anthropicApiKey");
  }
});

test("text output: one line per finding with its fix, and the summary", async () => {
  const run = await plan(["vm-a", "--preflight", "--summary"]);
  expect(run.code).toBe(3);
  expect(run.stdout).toMatch(/━━ Preflight: 2 blockers, \d+ warnings across 1 stack \(offline/);
  expect(run.stdout).toContain("✗ blocker  dns.certificate-region  vm-a  agent:certificateArn");
  expect(run.stdout).toMatch(/\n {4}fix: issue the certificate in us-west-2/);
}, 120_000);

test("the shipped stacks pass the preflight together: no blocker, exit 0 (issue 12's definition of done)", async () => {
  const run = await plan(["--all", "--preflight", "--json"], join(ROOT, "stacks"));
  const shipped = JSON.parse(run.stdout) as typeof json;
  expect(shipped.findings.filter((f) => f.severity === "blocker")).toEqual([]);
  expect(run.code).toBe(0);
  expect(shipped.stacks.filter((s) => s.error !== undefined)).toEqual([]);
  expect(shipped.stacks).toHaveLength(11);
}, 180_000);
