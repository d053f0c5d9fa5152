/**
 * The preflight's rules on facts that carry each problem. Pure and fast; test/preflight/cli.slow.test.ts
 * runs the same rules over rendered fixture stacks end to end.
 */
import { preflight, quotaUsage, type Finding, type LiveFacts } from "../../infra/preflight/checks";
import type { StackFacts } from "../../infra/preflight/facts";

const TODAY = "2026-12-06";

function stack(name: string, over: Partial<StackFacts> = {}): StackFacts {
  return {
    stack: name,
    cloud: "aws",
    target: "lambda",
    environment: "dev",
    region: "us-east-1",
    account: "210987654321",
    accountPinned: true,
    values: {},
    sampled: [],
    secretsUnset: [],
    upstream: { kind: "anthropic", models: [] },
    promotionReaders: [],
    names: [],
    counts: { vpcs: 1, elasticIps: 1, natGateways: 1, lambdaReserved: 0 },
    ...over,
  };
}

const rules = (findings: Finding[]) => findings.map((f) => `${f.severity} ${f.rule} ${f.stack}`);
const run = (stacks: StackFacts[], live?: LiveFacts) => preflight(stacks, { today: TODAY, live });

describe("config", () => {
  test("a required key with no value and no sample is a blocker naming the command", () => {
    const f = preflight([], {
      today: TODAY,
      failures: [
        {
          stack: "vm-x",
          missing: ["agent:vmgroup.imageId"],
          problems: [
            "agent:vmgroup.imageId is required on AWS (...): set it with `...`",
            "agent:scaling.min (5) must not exceed agent:scaling.max (2)",
          ],
        },
      ],
    });
    expect(f).toEqual([
      {
        severity: "blocker",
        rule: "config.invalid",
        stack: "vm-x",
        resource: "agent:scaling.min",
        message: "agent:scaling.min (5) must not exceed agent:scaling.max (2)",
        fix: "change the value in the stack file as the message says",
      },
      {
        severity: "blocker",
        rule: "config.required",
        stack: "vm-x",
        resource: "agent:vmgroup.imageId",
        message:
          "agent:vmgroup.imageId is required and unset (no sample in stacks/offline-samples.yaml either)",
        fix: "pulumi config set --path agent:vmgroup.imageId <value> -s vm-x",
      },
    ]);
  });

  test("sampled values and unset secrets warn offline and block with --live", () => {
    const s = stack("gcp-x", { sampled: ["gcp:project"], secretsUnset: ["agent:anthropicApiKey"] });
    expect(rules(run([s]))).toEqual(["warning config.sample gcp-x", "warning config.secret gcp-x"]);
    expect(rules(run([s], {}))).toEqual([
      "blocker config.required gcp-x",
      "blocker config.secret gcp-x",
    ]);
  });

  test("placeholders in a stack file are blockers, found inside lists too", () => {
    const s = stack("eks-x", {
      values: {
        "agent:eks": JSON.stringify({ publicEndpointCidrs: ["10.1.0.0/16", "203.0.113.0/24"] }),
        "agent:certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/1a2b",
        "agent:billingAccount": "012345-6789AB-CDEF01",
        "agent:domain": "agent-eks.example.com",
        "agent:owner": "platform-team",
      },
    });
    const found = run([s]).filter((f) => f.rule === "config.placeholder");
    expect(found.map((f) => [f.resource, f.message])).toEqual([
      [
        "agent:billingAccount",
        'agent:billingAccount holds "012345-6789AB-CDEF01", an example billing account: it cannot exist in a real account',
      ],
      [
        "agent:certificateArn",
        'agent:certificateArn holds "arn:aws:acm:us-east-1:123456789012:certificate/1a2b", an AWS documentation account id: it cannot exist in a real account',
      ],
      [
        "agent:domain",
        'agent:domain holds "agent-eks.example.com", an RFC 2606 example domain: it cannot exist in a real account',
      ],
      [
        "agent:eks",
        'agent:eks holds "203.0.113.0/24", an RFC 5737 documentation range: it cannot exist in a real account',
      ],
    ]);
    expect(found.every((f) => f.severity === "blocker")).toBe(true);
  });
});

describe("EKS versions", () => {
  const eks = (version: string, extendedSupport = false) =>
    stack("eks-x", {
      target: "eks",
      eks: { created: true, version, extendedSupport, exposure: "nlb" },
    });

  test("1.31 is a blocker naming the version and the day its extended support ended", () => {
    const [f] = run([eks("1.31")]).filter((x) => x.rule === "eks.version");
    expect(f).toMatchObject({ severity: "blocker", resource: "agent:eks.kubernetesVersion" });
    expect(f!.message).toBe(
      "agent:eks.kubernetesVersion is 1.31: its extended support ended on 2026-11-26; EKS cannot create it",
    );
  });

  test("past standard support: a blocker, or with the opt-in a warning that names the price", () => {
    expect(run([eks("1.34")]).find((x) => x.rule === "eks.version")!.severity).toBe("blocker");
    const opted = run([eks("1.34", true)]).find((x) => x.rule === "eks.version")!;
    expect(opted.severity).toBe("warning");
    expect(opted.message).toContain("$0.6/h instead of $0.1/h");
  });

  test("standard support ending within 60 days warns; a live EKS that lacks the version blocks", () => {
    expect(
      preflight([eks("1.35")], { today: "2027-02-10" }).find((x) => x.rule === "eks.version")!
        .message,
    ).toContain("standard support ends on 2027-03-27 (45 days)");
    expect(run([eks("1.35")]).filter((x) => x.rule === "eks.version")).toEqual([]);
    const live: LiveFacts = {
      eksVersions: { "us-east-1": [{ version: "1.34", status: "STANDARD_SUPPORT" }] },
    };
    expect(run([eks("1.35")], live).find((x) => x.rule === "eks.version")!.message).toMatch(
      /does not offer 1\.35/,
    );
  });
});

describe("GCP APIs", () => {
  test("a resource whose API the stack does not enable, or does not wait for, is a blocker", () => {
    const s = stack("gcp-x", {
      cloud: "gcp",
      account: "p1",
      gcp: {
        project: "p1",
        enabledApis: ["compute.googleapis.com"],
        crossProjectGrants: [],
        resources: [
          {
            type: "gcp:compute/network:Network",
            resource: "net",
            api: "compute.googleapis.com",
            enabled: true,
            gated: true,
          },
          {
            type: "gcp:redis/instance:Instance",
            resource: "r",
            api: "redis.googleapis.com",
            enabled: false,
            gated: false,
          },
          {
            type: "gcp:compute/firewall:Firewall",
            resource: "fw",
            api: "compute.googleapis.com",
            enabled: true,
            gated: false,
          },
        ],
      },
    });
    expect(run([s]).map((f) => [f.rule, f.resource])).toEqual([
      ["gcp.api", "redis.googleapis.com"],
      ["gcp.api-order", "compute.googleapis.com"],
    ]);
  });
});

describe("names that must be unique", () => {
  const repo = (stackName: string, location: string, account = "p1") =>
    stack(stackName, {
      cloud: "gcp",
      account,
      names: [
        {
          type: "gcp:artifactregistry/repository:Repository",
          resource: "agent-image-repo",
          field: "repositoryId",
          name: "agent-image",
          scope: "gcp-location",
          location,
        },
      ],
    });

  test("two stacks creating one repository id in one project and region: both are told", () => {
    const f = run([repo("cloudrun-dev", "us-central1"), repo("vm-gcp-dev", "us-central1")]);
    expect(rules(f)).toEqual([
      "blocker names.collision cloudrun-dev",
      "blocker names.collision vm-gcp-dev",
    ]);
    expect(f[0]!.message).toBe(
      'repositoryId "agent-image" is also used by vm-gcp-dev (agent-image-repo) in p1/us-central1: the second create fails',
    );
  });

  test("other regions or projects do not collide", () => {
    expect(run([repo("a", "us-central1"), repo("b", "europe-west1")])).toEqual([]);
    expect(run([repo("a", "us-central1", "p1"), repo("b", "us-central1", "p2")])).toEqual([]);
  });

  test("account-wide names collide across regions; the final snapshot name is explained", () => {
    const snap = (name: string, region: string, type = "aws:rds/instance:Instance") =>
      stack(name, {
        region,
        names: [
          {
            type,
            resource: "pg",
            field: "finalSnapshotIdentifier",
            name: "agent-pg-final",
            scope: "aws-region",
            location: region,
            note: "the snapshot outlives the stack: a fixed name fails the next delete",
          },
        ],
      });
    expect(rules(run([snap("a", "us-east-1"), snap("b", "us-east-1")]))).toHaveLength(2);
    expect(run([snap("a", "us-east-1"), snap("b", "us-east-1")])[0]!.message).toContain(
      "the snapshot outlives the stack",
    );
    expect(run([snap("a", "us-east-1"), snap("b", "us-west-2")])).toEqual([]);
    const role = (name: string, region: string) =>
      stack(name, {
        region,
        names: [
          {
            type: "aws:iam/role:Role",
            resource: "r",
            field: "name",
            name: "agent",
            scope: "aws-account",
          },
        ],
      });
    expect(rules(run([role("a", "us-east-1"), role("b", "eu-west-1")]))).toHaveLength(2);
  });

  test("a shared singleton (the _Default log bucket) is fine while stacks set it alike", () => {
    const bucket = (name: string, retention: number) =>
      stack(name, {
        cloud: "gcp",
        account: "p1",
        names: [
          {
            type: "gcp:logging/projectBucketConfig:ProjectBucketConfig",
            resource: "logs",
            field: "bucketId",
            name: "_Default",
            scope: "gcp-location",
            location: "global",
            shared: JSON.stringify([retention]),
          },
        ],
      });
    expect(run([bucket("a", 30), bucket("b", 30)])).toEqual([]);
    const f = run([bucket("a", 7), bucket("b", 90)]);
    expect(rules(f)).toEqual(["blocker names.collision a", "blocker names.collision b"]);
    expect(f[0]!.message).toContain("with other settings (a: [7]; b: [90])");
  });
});

describe("quotas per account and region", () => {
  const seven = Array.from({ length: 7 }, (_, i) =>
    stack(`s${i}`, {
      accountPinned: false,
      account: "the default account",
      counts: { vpcs: 1, elasticIps: i < 3 ? 3 : 1, natGateways: 1, lambdaReserved: 0 },
    }),
  );

  test("7 VPCs and 13 Elastic IPs in one region exceed the defaults of 5 and 5", () => {
    const f = run(seven).filter((x) => x.rule.startsWith("quota."));
    expect(f.map((x) => x.rule)).toEqual(["quota.elastic-ips", "quota.vpcs"]);
    expect(f.find((x) => x.rule === "quota.vpcs")!.message).toBe(
      "s0, s1, s2, s3, s4, s5, s6 create 7 VPCs in the default account/us-east-1, over the default quota of 5 (stacks without aws:allowedAccountIds are assumed to share one account)",
    );
    expect(f.find((x) => x.rule === "quota.elastic-ips")!.message).toContain(
      "create 13 Elastic IP addresses",
    );
    expect(f[0]!.fix).toContain("--quota-code L-0263D0A3 --desired-value 13");
  });

  test("the plan reports the sums per account and region against the limits", () => {
    expect(quotaUsage(seven)).toEqual([
      {
        account: "the default account",
        region: "us-east-1",
        stacks: ["s0", "s1", "s2", "s3", "s4", "s5", "s6"],
        vpcs: { used: 7, limit: 5 },
        elasticIps: { used: 13, limit: 5 },
        lambdaReserved: { used: 0, limit: 900 },
        source: "default",
      },
    ]);
    const live: LiveFacts = {
      quotas: { "the default account/us-east-1": { lambdaConcurrency: 10 } },
    };
    expect(quotaUsage(seven, live)[0]).toMatchObject({
      lambdaReserved: { used: 0, limit: -90 },
      source: "live",
    });
  });

  test("--live quotas replace the defaults", () => {
    const live: LiveFacts = {
      quotas: { "the default account/us-east-1": { vpcs: 10, elasticIps: 20 } },
    };
    expect(run(seven, live).filter((x) => x.rule.startsWith("quota."))).toEqual([]);
  });

  test("Lambda: fewer than 100 unreserved executions is a blocker; the default limit warns about new accounts", () => {
    const lambdas = [200, 50, 10].map((r, i) =>
      stack(`l${i}`, { counts: { vpcs: 1, elasticIps: 1, natGateways: 1, lambdaReserved: r } }),
    );
    const offline = run(lambdas).filter((x) => x.rule === "quota.lambda-concurrency");
    expect(rules(offline)).toEqual(["warning quota.lambda-concurrency l0"]);
    expect(offline[0]!.message).toContain("reserve 260 concurrent executions");
    const live: LiveFacts = { quotas: { "210987654321/us-east-1": { lambdaConcurrency: 300 } } };
    const blocked = run(lambdas, live).filter((x) => x.rule === "quota.lambda-concurrency");
    expect(rules(blocked)).toEqual(["blocker quota.lambda-concurrency l0"]);
    expect(blocked[0]!.message).toContain("limit of 300, fewer than 100 would stay unreserved");
  });
});

describe("DNS, promotion and billing", () => {
  test("one domain claimed by two stacks; a domain without a zone; a certificate from another region", () => {
    const f = run([
      stack("vm-a", { domain: "agent.acme.io", dnsZone: "Z1" }),
      stack("vm-b", {
        domain: "agent.acme.io",
        certificateArn: "arn:aws:acm:us-west-2:210987654321:certificate/x",
      }),
    ]);
    expect(rules(f)).toEqual([
      "blocker dns.domain-collision vm-a",
      "blocker dns.certificate-region vm-b",
      "blocker dns.domain-collision vm-b",
      "warning dns.manual vm-b",
    ]);
  });

  test("promotion: an unknown source warns, another target blocks, two pinned accounts need a grant", () => {
    const dev = stack("eks-dev", { target: "eks", account: "111111111111" });
    const f = run([
      dev,
      stack("eks-prod", { target: "eks", promoteFrom: "eks-dev", account: "222222222222" }),
      stack("lambda-prod", { promoteFrom: "eks-dev", account: "111111111111" }),
      stack("vm-prod", { target: "vmgroup", promoteFrom: "vm-dev" }),
    ]);
    expect(rules(f).filter((r) => r.includes("promotion"))).toEqual([
      "blocker promotion.cross-account eks-prod",
      "blocker promotion.source lambda-prod",
      "warning promotion.source vm-prod",
    ]);
  });

  test("promotion across AWS accounts: the source's agent:promotionReaders must name the promoted stack's account (issue 15)", () => {
    const promoted = stack("eks-prod", {
      target: "eks",
      promoteFrom: "eks-dev",
      account: "222222222222",
    });
    const source = (promotionReaders: string[]) =>
      stack("eks-dev", { target: "eks", account: "111111111111", promotionReaders });
    const blocked = run([source([]), promoted]).filter((x) => x.rule === "promotion.cross-account");
    expect(blocked).toHaveLength(1);
    expect(blocked[0]!.fix).toBe(
      "on eks-dev: pulumi config set --path 'agent:promotionReaders[0]' arn:aws:iam::222222222222:role/<eks-prod deploy role> (then pulumi up eks-dev before promoting)",
    );
    // Another account's grant does not help; the account or one of its roles does.
    expect(rules(run([source(["333333333333"]), promoted]))).toContain(
      "blocker promotion.cross-account eks-prod",
    );
    for (const reader of ["222222222222", "arn:aws:iam::222222222222:role/deploy"]) {
      expect(
        run([source([reader]), promoted]).filter((x) => x.rule.startsWith("promotion")),
      ).toEqual([]);
    }
  });

  test("promotion across GCP projects: no reader blocks; readers of other projects only warn (issue 15)", () => {
    const gcpStack = (name: string, project: string, over: Partial<StackFacts> = {}) =>
      stack(name, {
        cloud: "gcp",
        target: "cloudrun",
        account: project,
        gcp: { project, enabledApis: [], resources: [], crossProjectGrants: [] },
        ...over,
      });
    const prod = gcpStack("cr-prod", "acme-prod", { promoteFrom: "cr-dev" });
    const f = (readers: string[]) =>
      rules(run([gcpStack("cr-dev", "acme-dev", { promotionReaders: readers }), prod])).filter(
        (r) => r.includes("promotion"),
      );
    expect(f([])).toEqual(["blocker promotion.cross-project cr-prod"]);
    expect(f(["serviceAccount:deploy@acme-stage.iam.gserviceaccount.com"])).toEqual([
      "warning promotion.cross-project cr-prod",
    ]);
    expect(f(["serviceAccount:deploy@acme-prod.iam.gserviceaccount.com"])).toEqual([]);
    // A group cannot be checked offline: trusted.
    expect(f(["group:deployers@acme.test"])).toEqual([]);
    // Projects that are only samples (gcp:project unset in the stack file) may turn out to be
    // one: the missing grant is a warning until the user sets them.
    const sampledDev = gcpStack("cr-dev", "sample-dev", { sampled: ["gcp:project"] });
    const sampledRun = run([
      sampledDev,
      gcpStack("cr-prod", "sample-prod", { promoteFrom: "cr-dev" }),
    ]);
    expect(rules(sampledRun).filter((r) => r.includes("promotion"))).toEqual([
      "warning promotion.cross-project cr-prod",
    ]);
    expect(sampledRun.find((x) => x.rule === "promotion.cross-project")!.message).toContain(
      "the project of cr-dev is a sample",
    );
    // The same project needs no grant.
    expect(
      rules(run([gcpStack("cr-dev", "acme-prod"), prod])).filter((r) => r.includes("promotion")),
    ).toEqual([]);
  });

  test("the budget's tag must be an active cost allocation tag: once per account, silent when --live says Active", () => {
    const tagged = ["a", "b"].map((n) => stack(n, { costAllocationTagKey: "pulumi-stack" }));
    const f = run(tagged).filter((x) => x.rule === "aws.cost-allocation-tag");
    expect(f).toHaveLength(1);
    expect(f[0]!.fix).toContain("TagKey=pulumi-stack,Status=Active");
    expect(
      run(tagged, { costAllocationTags: { "210987654321": { "pulumi-stack": "Active" } } }).filter(
        (x) => x.rule === "aws.cost-allocation-tag",
      ),
    ).toEqual([]);
  });

  test("--live: a project without billing, or a closed billing account, blocks", () => {
    const g = stack("cr", {
      cloud: "gcp",
      account: "p1",
      values: { "agent:billingAccount": "01A2B3-C4D5E6-F7A8B9" },
      gcp: { project: "p1", enabledApis: [], resources: [], crossProjectGrants: [] },
    });
    const f = run([g], {
      gcpProjects: { p1: { billingEnabled: false } },
      billingAccounts: { "01A2B3-C4D5E6-F7A8B9": { open: false } },
    });
    expect(rules(f)).toEqual(["blocker gcp.billing cr", "blocker gcp.billing cr"]);
  });
});

describe("Claude on the cloud (issue 16)", () => {
  test("Bedrock and Vertex stacks are told to get model access before the first request; an Anthropic stack is not", () => {
    const findings = run([
      stack("on-bedrock", {
        upstream: { kind: "bedrock", where: "us", models: ["anthropic.claude-sonnet-4-6"] },
      }),
      stack("on-vertex", {
        cloud: "gcp",
        account: "acme-agent",
        upstream: { kind: "vertex", where: "global", models: ["claude-sonnet-4-6"] },
      }),
      stack("on-anthropic"),
    ]).filter((f) => f.rule === "upstream.model-access");
    expect(findings.map((f) => `${f.severity} ${f.stack}`)).toEqual([
      "warning on-bedrock",
      "warning on-vertex",
    ]);
    expect(findings[0]!.message).toMatch(
      /anthropic\.claude-sonnet-4-6 on Amazon Bedrock \(us inference profiles\).*210987654321/,
    );
    expect(findings[0]!.fix).toMatch(/Model catalog/);
    expect(findings[1]!.message).toMatch(/Vertex AI \(global\) in project acme-agent/);
    expect(findings[1]!.fix).toMatch(/Model Garden/);
  });
});
