/**
 * The plan comment: rendering (under GitHub's size limit, whatever the plan's size), the
 * marker that finds the previous comment, and the GitHub calls that edit it in place, against
 * a fake of GitHub's REST API on loopback that paginates and enforces the limit like GitHub.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_MAX_LENGTH,
  costRows,
  enrichFromStackFiles,
  GITHUB_COMMENT_LIMIT,
  MARKER,
  cell,
  main,
  normalizeFindings,
  normalizePlan,
  parseArgs,
  renderComment,
  upsertComment,
  type StackPlan,
} from "../../.github/scripts/plan-comment";
import { toJson } from "../../infra/plan/format";
import type { StackPlan as PlannedStack } from "../../infra/plan/types";

const ROOT = join(__dirname, "..", "..");
const SCRIPT = join(ROOT, ".github", "scripts", "plan-comment.ts");
const TSX = require.resolve("tsx/cli");
const STACKS_DIR = join(ROOT, "stacks");

interface JsonViolation {
  policy: string;
  level: string;
  resource: string;
  message: string;
}
interface JsonStack {
  name: string;
  target?: string;
  cloud?: string;
  resources?: unknown[];
  policy?: { violations: JsonViolation[] };
  cost?: { monthlyUsd: number; items: unknown[] };
  error?: string;
}

/** The shape infra/plan/format.ts `toJson` prints (`npm run plan -- --all --json`). */
function smallPlan(): { stacks: JsonStack[] } {
  return {
    stacks: [
      {
        name: "lambda-dev",
        target: "lambda",
        cloud: "aws",
        resources: Array.from({ length: 41 }, (_, i) => ({
          type: "aws:x",
          name: `r${i}`,
          parent: null,
        })),
        policy: { violations: [] },
        cost: {
          monthlyUsd: 96.5,
          items: [
            {
              type: "aws:elasticache/replicationGroup:ReplicationGroup",
              name: "agent-redis",
              pricing: "priced",
              monthlyUsd: 12.41,
              detail: "cache.t4g.micro × 730 h",
            },
            {
              type: "aws:ec2/natGateway:NatGateway",
              name: "agent-nat",
              pricing: "priced",
              monthlyUsd: 32.85,
              detail: "1 × $0.045/h",
            },
            {
              type: "aws:iam/role:Role",
              name: "agent-role",
              pricing: "free",
              monthlyUsd: 0,
              detail: "IAM is free",
            },
            {
              type: "aws:xray/group:Group",
              name: "agent-traces",
              pricing: "not-priced",
              monthlyUsd: 0,
              detail: "no list price in prices.json",
            },
          ],
        },
      },
      {
        name: "lambda-prod",
        target: "lambda",
        cloud: "aws",
        resources: Array.from({ length: 57 }, (_, i) => ({
          type: "aws:x",
          name: `r${i}`,
          parent: null,
        })),
        policy: {
          violations: [
            {
              policy: "rds-multi-az",
              level: "mandatory",
              message: "prod Postgres must be multi-AZ",
              resource: "urn:pulumi:lambda-prod::agent::aws:rds/instance:Instance::agent-db",
            },
            {
              policy: "log-retention",
              level: "advisory",
              message: "keep logs | 90 days </details> <b>x</b>",
              resource: "agent-logs",
            },
          ],
        },
        cost: { monthlyUsd: 2710, items: [] },
      },
      { name: "eks-dev", error: "agent:eks.nodeMin | must be <= nodeMax" },
    ],
  };
}

/** A plan far over the comment limit: every stack with thousands of violations and cost lines. */
function hugePlan(stacks = 11, violations = 2000, items = 500, text = "x"): unknown {
  return {
    stacks: Array.from({ length: stacks }, (_, s) => ({
      stack: `stack-${s}`,
      target: "eks",
      cloud: "aws",
      environment: s % 2 ? "prod" : "dev",
      resources: 300,
      cost: {
        monthlyUsd: 1000 + s,
        items: Array.from({ length: items }, (_, i) => ({
          resource: `res-${s}-${i}`,
          type: "aws:ec2/instance:Instance",
          monthlyUsd: i,
          note: text.repeat(40),
        })),
      },
      violations: Array.from({ length: violations }, (_, i) => ({
        policy: `policy-${i % 17}`,
        level: i % 3 === 0 ? "mandatory" : "advisory",
        message: `${text.repeat(200)} #${i}`,
        resource: `urn:pulumi:stack-${s}::agent::aws:ec2/instance:Instance::res-${i}`,
      })),
    })),
  };
}

const count = (s: string, sub: string) => s.split(sub).length - 1;

describe("normalizePlan", () => {
  it("reads the plan CLI's JSON", () => {
    const [dev, prod, broken] = normalizePlan(smallPlan());
    expect(dev).toMatchObject({
      stack: "lambda-dev",
      target: "lambda",
      cloud: "aws",
      resources: 41,
      monthlyUsd: 96.5,
    });
    expect(dev!.costItems).toHaveLength(4);
    expect(dev!.costItems[3]).toEqual({
      resource: "agent-traces",
      type: "aws:xray/group:Group",
      monthlyUsd: 0,
      pricing: "not-priced",
      note: "no list price in prices.json",
    });
    expect(prod!.violations).toEqual([
      expect.objectContaining({ policy: "rds-multi-az", level: "mandatory" }),
      expect.objectContaining({
        policy: "log-retention",
        level: "advisory",
        resource: "agent-logs",
      }),
    ]);
    expect(broken).toMatchObject({
      stack: "eks-dev",
      error: "agent:eks.nodeMin | must be <= nodeMax",
      violations: [],
      costItems: [],
    });
  });

  it("reads what the plan CLI's own toJson prints (the contract with infra/plan)", () => {
    // What toJson reads of a plan; the rest of the worker's report does not reach the JSON.
    const plan: Pick<PlannedStack, "name" | "target" | "cloud" | "resources" | "policy" | "cost"> =
      {
        name: "lambda-prod",
        target: "lambda",
        cloud: "aws",
        resources: [
          {
            type: "pulumi:pulumi:Stack",
            name: "agent-lambda-prod",
            parent: null,
            depth: 0,
            settings: "",
          },
          {
            type: "aws:rds/instance:Instance",
            name: "agent-pg-db",
            parent: "pulumi:pulumi:Stack::agent-lambda-prod",
            depth: 1,
            settings: "db.m7g.large",
          },
        ],
        policy: {
          violations: [
            {
              policy: "rds-multi-az",
              level: "mandatory",
              resource: "agent-pg-db",
              message: "must be multi-AZ",
            },
          ],
        },
        cost: {
          monthlyUsd: 268.28,
          items: [
            {
              type: "aws:rds/instance:Instance",
              name: "agent-pg-db",
              pricing: "priced",
              monthlyUsd: 268.28,
              detail: "db.m7g.large",
            },
          ],
        },
      };
    const printed = JSON.parse(
      JSON.stringify(toJson([plan as PlannedStack], [{ name: "eks-dev", error: "boom" }])),
    ) as unknown;
    const [broken, prod] = normalizePlan(printed);
    expect(broken).toEqual({ stack: "eks-dev", costItems: [], violations: [], error: "boom" });
    expect(prod).toEqual({
      stack: "lambda-prod",
      target: "lambda",
      cloud: "aws",
      resources: 2,
      monthlyUsd: 268.28,
      costItems: [
        {
          resource: "agent-pg-db",
          type: "aws:rds/instance:Instance",
          monthlyUsd: 268.28,
          pricing: "priced",
          note: "db.m7g.large",
        },
      ],
      violations: [
        {
          policy: "rds-multi-az",
          level: "mandatory",
          resource: "agent-pg-db",
          message: "must be multi-AZ",
        },
      ],
    });
  });

  it("takes the environment and budget from the stack files", () => {
    const plans = enrichFromStackFiles(normalizePlan(smallPlan()), STACKS_DIR);
    expect(plans.map((p) => [p.stack, p.environment, p.budgetUsd])).toEqual([
      ["lambda-dev", "dev", 150],
      ["lambda-prod", "prod", 2500],
      ["eks-dev", "dev", 400],
    ]);
    expect(
      enrichFromStackFiles(
        [{ stack: "no-such-stack", costItems: [], violations: [] }],
        STACKS_DIR,
      )[0]!.environment,
    ).toBeUndefined();
  });

  it("accepts the aliases: stacks keyed by name, CrossGuard-style fields, a resource list", () => {
    const plans = normalizePlan({
      stacks: {
        "eks-dev": {
          resourceCount: "12",
          monthlyCostUsd: 210,
          monthlyBudgetUsd: 400,
          policy: {
            violations: [
              {
                policyName: "eks-private",
                enforcementLevel: "Mandatory",
                description: "endpoint is public",
                urn: "urn:x",
              },
            ],
          },
        },
      },
    });
    expect(plans).toEqual([
      expect.objectContaining({
        stack: "eks-dev",
        resources: 12,
        monthlyUsd: 210,
        budgetUsd: 400,
        violations: [
          {
            policy: "eks-private",
            level: "mandatory",
            message: "endpoint is public",
            resource: "urn:x",
          },
        ],
      }),
    ]);
    expect(normalizePlan([{ name: "a", resources: [{}, {}, {}], cost: 5 }])[0]).toMatchObject({
      stack: "a",
      resources: 3,
      monthlyUsd: 5,
    });
  });

  it("refuses documents without stacks instead of rendering an empty comment", () => {
    expect(() => normalizePlan({})).toThrow(/no stacks/);
    expect(() => normalizePlan({ stacks: [] })).toThrow(/no stacks/);
    expect(() => normalizePlan("text")).toThrow(/no stacks/);
    expect(() => normalizePlan([{ cost: 1 }])).toThrow(/without a stack name/);
  });
});

describe("renderComment", () => {
  it("starts with the hidden marker and summarises cost and policy per stack", () => {
    const body = renderComment(enrichFromStackFiles(normalizePlan(smallPlan()), STACKS_DIR), {
      sha: "0123456789abcdef0123",
      runUrl: "https://github.com/o/r/actions/runs/1",
    });
    expect(body.startsWith(`${MARKER}\n`)).toBe(true);
    expect(body).toContain("commit `0123456789ab`");
    expect(body).toContain("**Estimated total: $2,806.50/month** across 3 stack(s)");
    expect(body).toContain(
      "policy: ❌ 1 stack(s) failed to plan, 1 mandatory violation(s), 1 advisory",
    );
    expect(body).toContain(
      "| `lambda-dev` | lambda (aws) | dev | 41 | $96.50 (+1 not priced) | $150.00 | ✅ |",
    );
    expect(body).toContain(
      "| `lambda-prod` | lambda (aws) | prod | 57 | $2,710.00 ⚠️ over budget | $2,500.00 | ❌ 1 mandatory, 1 advisory |",
    );
    expect(body).toContain("| `eks-dev` |  | dev | – | – | $400.00 | ❌ plan failed |");
    expect(body).toContain("- `eks-dev`: agent:eks.nodeMin \\| must be &lt;= nodeMax");
    expect(body).toContain("🛑 mandatory | `rds-multi-az`");
    // Priced lines by cost, then the unpriced, then the free.
    const order = [
      "agent-nat | aws:ec2/natGateway:NatGateway | $32.85 | 1 × $0.045/h",
      "agent-redis |",
      "agent-traces | aws:xray/group:Group | not priced |",
      "| 1 resource without charge | Role | free |",
    ];
    const at = order.map((o) => body.indexOf(o));
    expect(at.every((i) => i > 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(body).not.toContain("Truncated");
  });

  it("groups cost lines that differ only by name, and folds the free ones into one row", () => {
    const alarm = (n: number) => ({
      resource: `alarm-${n}`,
      type: "aws:cloudwatch/metricAlarm:MetricAlarm",
      monthlyUsd: 0.1,
      pricing: "priced",
      note: "1 metric x $0.10",
    });
    const rows = costRows([
      alarm(1),
      {
        resource: "db",
        type: "aws:rds/instance:Instance",
        monthlyUsd: 268.28,
        pricing: "priced",
        note: "db.m7g.large",
      },
      alarm(2),
      { resource: "role", type: "aws:iam/role:Role", monthlyUsd: 0, pricing: "free" },
      {
        resource: "sg",
        type: "aws:ec2/securityGroup:SecurityGroup",
        monthlyUsd: 0,
        pricing: "free",
      },
      {
        resource: "traces",
        type: "gcp:x:Y",
        monthlyUsd: 0,
        pricing: "not-priced",
        note: "no list price",
      },
      alarm(3),
    ]);
    expect(rows).toEqual([
      "| db | aws:rds/instance:Instance | $268.28 | db.m7g.large |\n",
      "| 3 × alarm-1, alarm-2, alarm-3 | aws:cloudwatch/metricAlarm:MetricAlarm | $0.30 (3 × $0.10) | 1 metric x $0.10 |\n",
      "| traces | gcp:x:Y | not priced | no list price |\n",
      "| 2 resources without charge | Role, SecurityGroup | free | |\n",
    ]);
  });

  it("escapes what would break the table or the <details> around it", () => {
    const body = renderComment(normalizePlan(smallPlan()));
    expect(body).toContain("keep logs \\| 90 days &lt;/details&gt; &lt;b&gt;x&lt;/b&gt;");
    expect(count(body, "<details")).toBe(count(body, "</details>"));
    expect(cell("a\nb|c")).toBe("a b\\|c");
  });

  it("puts the preflight's findings in the same comment: blockers open, warnings folded", () => {
    const plan = smallPlan();
    plan.stacks[1]!.policy!.violations = [];
    plan.stacks.pop();
    const findings = normalizeFindings({
      ...plan,
      findings: [
        {
          severity: "blocker",
          rule: "eks.version",
          stack: "eks-dev",
          resource: "agent:eks.kubernetesVersion",
          message: "agent:eks.kubernetesVersion is 1.31: its extended support ended on 2026-11-26",
          fix: "set agent:eks.kubernetesVersion to 1.35",
        },
        {
          severity: "warning",
          rule: "dns.manual",
          stack: "vm-gcp-prod",
          resource: "agent:domain",
          message: "agent.acme.io needs an A record | created by you",
          fix: "pulumi stack output dnsRecords",
        },
      ],
    });
    const body = renderComment(normalizePlan(plan), { planExitCode: 3, findings });
    expect(body).toContain(
      "**Preflight** (what the clouds would refuse on `pulumi up`): ❌ 1 blocker(s), 1 warning(s)",
    );
    expect(body).toContain("<details open><summary><b>Preflight blockers</b> (1)</summary>");
    expect(body).toContain(
      "| `eks.version` | `eks-dev` | agent:eks.kubernetesVersion | agent:eks.kubernetesVersion is 1.31: its extended support ended on 2026-11-26 | set agent:eks.kubernetesVersion to 1.35 |",
    );
    expect(body).toContain("<details><summary><b>Preflight warnings</b> (1)</summary>");
    expect(body).toContain("needs an A record \\| created by you");
    // Exit 3 is the blockers above, not an unexplained failure of the plan.
    expect(body).toContain("policy: ✅ no mandatory violations");
    expect(body).not.toContain("plan exited with 3");
    expect(normalizeFindings(plan)).toBeUndefined();
  });

  it("says everything is fine when it is", () => {
    const plan = smallPlan();
    plan.stacks[1]!.policy!.violations = [];
    plan.stacks.pop();
    expect(renderComment(normalizePlan(plan))).toContain("policy: ✅ no mandatory violations");
  });

  it("shows stacks that failed to plan, and a plan that failed as a whole with its log", () => {
    const plans: StackPlan[] = [
      {
        stack: "eks-dev",
        costItems: [],
        violations: [],
        error: "agent:eks.nodeMin | must be <= nodeMax",
      },
    ];
    const body = renderComment(plans, { planExitCode: 1 });
    expect(body).toContain("❌ 1 stack(s) failed to plan");
    expect(body).toContain("- `eks-dev`: agent:eks.nodeMin \\| must be &lt;= nodeMax");

    const failed = renderComment(undefined, {
      planExitCode: 2,
      log: "boom\n```\nnot closing the fence\n",
    });
    expect(failed.startsWith(MARKER)).toBe(true);
    expect(failed).toContain("The plan did not produce a report** (exit code 2)");
    expect(failed).toContain("````text\nboom\n```\nnot closing the fence");
    expect(failed).toMatch(/````\n<\/details>/);
  });

  it("keeps a huge plan under GitHub's comment limit, most important first, with a note", () => {
    const plans = normalizePlan(hugePlan());
    const body = renderComment(plans, { runUrl: "https://github.com/o/r/actions/runs/42" });
    expect(body.length).toBeLessThanOrEqual(GITHUB_COMMENT_LIMIT);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(DEFAULT_MAX_LENGTH);
    expect(body.length).toBeGreaterThan(DEFAULT_MAX_LENGTH * 0.95); // filled, not emptied
    // The whole summary table survives; mandatory violations come before cost breakdowns.
    for (let s = 0; s < 11; s++) expect(body).toContain(`| \`stack-${s}\` |`);
    expect(body.indexOf("🛑 mandatory")).toBeLessThan(
      body.indexOf("Cost of") === -1 ? Infinity : body.indexOf("Cost of"),
    );
    expect(body).toMatch(
      /> \[!NOTE\]\n> Truncated to stay under GitHub's 65,536-character comment limit: .*violations.* left out\. The full report is in the \[workflow run\]\(https:\/\/github\.com\/o\/r\/actions\/runs\/42\) summary\./,
    );
    expect(body).toMatch(/\| … \d+ more violations \(truncated\) \|/);
    expect(count(body, "<details")).toBe(count(body, "</details>"));
    // Totals are computed before truncation.
    expect(body).toContain("**Estimated total: $11,055.00/month** across 11 stack(s)");
  });

  it("counts bytes, so multi-byte text cannot push it over either", () => {
    const body = renderComment(normalizePlan(hugePlan(11, 500, 100, "日本語🙂")));
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(DEFAULT_MAX_LENGTH);
    expect(body).toContain("Truncated");
  });

  it("truncates even the summary table when there are too many stacks", () => {
    const body = renderComment(normalizePlan(hugePlan(3000, 0, 0)));
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(DEFAULT_MAX_LENGTH);
    expect(body).toMatch(/\| … \d+ more stacks \(truncated\) \|/);
  });

  it("renders everything when there is no limit (the step summary)", () => {
    const body = renderComment(normalizePlan(hugePlan(2, 50, 20)), { maxLength: Infinity });
    expect(body).not.toContain("Truncated");
    expect(count(body, "🛑 mandatory")).toBe(2 * 17); // ceil(50 / 3) mandatory per stack
  });

  it("honours a custom limit exactly", () => {
    for (const maxLength of [3000, 5000, 20000]) {
      expect(
        Buffer.byteLength(renderComment(normalizePlan(hugePlan(11, 100, 100)), { maxLength })),
      ).toBeLessThanOrEqual(maxLength);
    }
    expect(() => renderComment(normalizePlan(smallPlan()), { maxLength: 100 })).toThrow(
      /too small/,
    );
  });
});

// ---------------------------------------------------------------------------------------------

interface FakeComment {
  id: number;
  body: string;
  user: { login: string; type: string };
  html_url: string;
}

/** GitHub's issue-comment endpoints, as far as the script uses them. */
class FakeGitHub {
  comments: FakeComment[] = [];
  requests: Array<{ method: string; path: string }> = [];
  nextId = 1000;
  failWith?: number;
  private server!: Server;
  url = "";

  async start() {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  stop() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
  seed(n: number, body = (i: number) => `comment ${i}`) {
    for (let i = 0; i < n; i++) this.add(body(i));
  }
  add(body: string, type = "User") {
    const c = {
      id: this.nextId++,
      body,
      user: { login: type === "Bot" ? "github-actions[bot]" : "someone", type },
      html_url: "",
    };
    c.html_url = `https://github.com/o/r/pull/7#issuecomment-${c.id}`;
    this.comments.push(c);
    return c;
  }

  private async handle(req: IncomingMessage, res: import("node:http").ServerResponse) {
    const url = new URL(req.url!, this.url);
    this.requests.push({ method: req.method!, path: url.pathname + url.search });
    const send = (status: number, data?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(data === undefined ? undefined : JSON.stringify(data));
    };
    if (
      req.headers.authorization !== "Bearer t0ken" ||
      req.headers["x-github-api-version"] !== "2022-11-28"
    )
      return send(401, { message: "Bad credentials" });
    if (this.failWith)
      return send(this.failWith, { message: "Resource not accessible by integration" });
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text ? (JSON.parse(text) as { body: string }).body : undefined;
    if (body !== undefined && body.length > GITHUB_COMMENT_LIMIT)
      return send(422, { message: "Body is too long (maximum is 65536 characters)" });

    let m: RegExpExecArray | null;
    if ((m = /^\/repos\/o\/r\/issues\/7\/comments$/.exec(url.pathname))) {
      if (req.method === "GET") {
        const perPage = Number(url.searchParams.get("per_page") ?? 30);
        const page = Number(url.searchParams.get("page") ?? 1);
        const last = Math.max(1, Math.ceil(this.comments.length / perPage));
        const link: Record<string, string> =
          page < last
            ? {
                link: `<${this.url}/repos/o/r/issues/7/comments?per_page=${perPage}&page=${page + 1}>; rel="next", <${this.url}/repos/o/r/issues/7/comments?per_page=${perPage}&page=${last}>; rel="last"`,
              }
            : {};
        return send(200, this.comments.slice((page - 1) * perPage, page * perPage), link);
      }
      if (req.method === "POST") return send(201, this.add(body!, "Bot"));
    }
    if ((m = /^\/repos\/o\/r\/issues\/comments\/(\d+)$/.exec(url.pathname))) {
      const c = this.comments.find((x) => x.id === Number(m![1]));
      if (!c) return send(404, { message: "Not Found" });
      if (req.method === "PATCH") {
        c.body = body!;
        return send(200, c);
      }
      if (req.method === "DELETE") {
        this.comments = this.comments.filter((x) => x !== c);
        return send(204);
      }
    }
    send(404, { message: "Not Found" });
  }
}

describe("upsertComment against a fake GitHub API", () => {
  let gh: FakeGitHub;
  beforeEach(async () => {
    gh = new FakeGitHub();
    await gh.start();
  });
  afterEach(() => gh.stop());
  const target = () => ({ token: "t0ken", repository: "o/r", issueNumber: 7, apiUrl: gh.url });
  const body = (n: number) => renderComment(normalizePlan(smallPlan()), { sha: `run${n}` });

  it("creates the comment when there is none", async () => {
    gh.seed(3);
    const r = await upsertComment(target(), body(1));
    expect(r.action).toBe("created");
    expect(gh.comments).toHaveLength(4);
    expect(gh.comments.at(-1)!.body.startsWith(MARKER)).toBe(true);
  });

  it("finds the previous comment on a later page and edits it in place", async () => {
    gh.seed(130);
    const mine = gh.add(body(1), "Bot");
    gh.seed(40, (i) => `later ${i}`);
    const r = await upsertComment(target(), body(2));
    expect(r).toEqual({ action: "updated", id: mine.id, url: mine.html_url, deleted: [] });
    expect(gh.comments).toHaveLength(171);
    expect(gh.comments.find((c) => c.id === mine.id)!.body).toContain("commit `run2`");
    expect(gh.requests.map((q) => q.method)).toEqual(["GET", "GET", "PATCH"]);
    expect(gh.requests[1]!.path).toContain("page=2");
  });

  it("keeps ONE comment across runs", async () => {
    for (let run = 1; run <= 3; run++) await upsertComment(target(), body(run));
    const marked = gh.comments.filter((c) => c.body.startsWith(MARKER));
    expect(marked).toHaveLength(1);
    expect(marked[0]!.body).toContain("commit `run3`");
    expect(gh.requests.filter((q) => q.method === "POST")).toHaveLength(1);
  });

  it("collapses copies left by runs that raced, keeping the oldest", async () => {
    const first = gh.add(body(1), "Bot");
    gh.seed(2);
    const second = gh.add(body(2), "Bot");
    const r = await upsertComment(target(), body(3));
    expect(r).toMatchObject({ action: "updated", id: first.id, deleted: [second.id] });
    expect(gh.comments.filter((c) => c.body.startsWith(MARKER)).map((c) => c.id)).toEqual([
      first.id,
    ]);
  });

  it("ignores comments that merely quote the marker", async () => {
    gh.add(`> quoting the bot:\n> ${MARKER}\n> ## Plan`);
    const r = await upsertComment(target(), body(1));
    expect(r.action).toBe("created");
  });

  it("refuses a body GitHub would reject, or one the next run could not find", async () => {
    await expect(
      upsertComment(target(), `${MARKER}\n${"x".repeat(GITHUB_COMMENT_LIMIT)}`),
    ).rejects.toThrow(/exceeds GitHub's limit/);
    await expect(upsertComment(target(), "## Plan without marker")).rejects.toThrow(/marker/);
    expect(gh.requests).toHaveLength(0);
  });

  it("reports GitHub's errors (e.g. a fork's read-only token)", async () => {
    gh.failWith = 403;
    await expect(upsertComment(target(), body(1))).rejects.toThrow(
      /answered 403: .*Resource not accessible/,
    );
  });
});

describe("the CLI", () => {
  let gh: FakeGitHub;
  let dir: string;
  beforeEach(async () => {
    gh = new FakeGitHub();
    await gh.start();
    dir = mkdtempSync(join(tmpdir(), "plan-comment-"));
  });
  afterEach(async () => {
    await gh.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    GITHUB_TOKEN: "t0ken",
    GITHUB_REPOSITORY: "o/r",
    GITHUB_API_URL: gh.url,
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_RUN_ID: "99",
    PR_NUMBER: "7",
    PR_HEAD_SHA: "feedface00112233",
    GITHUB_STEP_SUMMARY: join(dir, "summary.md"),
    ...extra,
  });

  it("parses its arguments strictly", () => {
    expect(parseArgs(["--plan", "p.json", "--post", "--plan-exit-code", "0"])).toMatchObject({
      plan: "p.json",
      post: true,
      planExitCode: 0,
    });
    expect(() => parseArgs(["--post"])).toThrow(/--plan/);
    expect(() => parseArgs(["--plan", "p", "--bogus"])).toThrow(/unknown argument/);
    expect(() => parseArgs(["--plan", "p", "--plan-exit-code", "x"])).toThrow(/not an integer/);
  });

  it("posts, then updates the same comment on the next run; writes the full report to the step summary", async () => {
    const planFile = join(dir, "plan.json");
    writeFileSync(planFile, JSON.stringify(hugePlan(11, 100, 50)));
    await expect(
      main(
        [
          "--plan",
          planFile,
          "--post",
          "--summary",
          "--out",
          join(dir, "c.md"),
          "--plan-exit-code",
          "0",
        ],
        env(),
      ),
    ).resolves.toBe(0);
    await expect(
      main(["--plan", planFile, "--post"], env({ PR_HEAD_SHA: "cafebabe99" })),
    ).resolves.toBe(0);
    const marked = gh.comments.filter((c) => c.body.startsWith(MARKER));
    expect(marked).toHaveLength(1);
    expect(marked[0]!.body).toContain("commit `cafebabe99`");
    expect(marked[0]!.body).toContain("[workflow run](https://github.com/o/r/actions/runs/99)");
    expect(marked[0]!.body.length).toBeLessThanOrEqual(GITHUB_COMMENT_LIMIT);
    const summary = readFileSync(join(dir, "summary.md"), "utf8");
    expect(summary).not.toContain(MARKER);
    expect(summary).not.toContain("Truncated");
    expect(summary.length).toBeGreaterThan(GITHUB_COMMENT_LIMIT);
    expect(readFileSync(join(dir, "c.md"), "utf8").startsWith(MARKER)).toBe(true);
  });

  it("fails after posting when a mandatory policy is violated (--fail-on-mandatory)", async () => {
    const planFile = join(dir, "plan.json");
    writeFileSync(planFile, JSON.stringify(smallPlan()));
    await expect(main(["--plan", planFile, "--post", "--fail-on-mandatory"], env())).resolves.toBe(
      3,
    );
    expect(gh.comments).toHaveLength(1);
    const clean = smallPlan();
    clean.stacks[1]!.policy!.violations = clean.stacks[1]!.policy!.violations.filter(
      (v) => v.level !== "mandatory",
    );
    writeFileSync(planFile, JSON.stringify(clean));
    await expect(main(["--plan", planFile, "--fail-on-mandatory"], env())).resolves.toBe(0);
  });

  it("reports a plan that produced no JSON, with its log, and fails", async () => {
    writeFileSync(join(dir, "plan.json"), "");
    writeFileSync(
      join(dir, "plan.log"),
      "Error: stacks/Pulumi.eks-dev.yaml: agent:eks.nodeMin must be <= nodeMax\n",
    );
    const code = await main(
      [
        "--plan",
        join(dir, "plan.json"),
        "--log",
        join(dir, "plan.log"),
        "--plan-exit-code",
        "1",
        "--post",
      ],
      env(),
    );
    expect(code).toBe(4);
    expect(gh.comments[0]!.body).toContain("The plan did not produce a report** (exit code 1)");
    // Inside a code fence: shown verbatim.
    expect(gh.comments[0]!.body).toContain(
      "Error: stacks/Pulumi.eks-dev.yaml: agent:eks.nodeMin must be <= nodeMax",
    );
  });

  it("runs as a script under tsx, as the workflow calls it", () => {
    const planFile = join(dir, "plan.json");
    writeFileSync(planFile, JSON.stringify(smallPlan()));
    const out = join(dir, "comment.md");
    const r = spawnSync(
      process.execPath,
      [TSX, SCRIPT, "--plan", planFile, "--out", out, "--fail-on-mandatory"],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { PATH: process.env.PATH ?? "" },
        timeout: 60_000,
      },
    );
    expect(r.stderr).toContain("1 mandatory policy violation(s)");
    expect(r.status).toBe(3);
    expect(readFileSync(out, "utf8")).toContain("lambda-prod");
  });
});
