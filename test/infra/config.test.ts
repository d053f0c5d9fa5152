import { parseStackConfig, StackConfigError, type RawStackConfig } from "../../infra/config";
import { problems } from "./config-problems";
import {
  listStacks,
  readOfflineSamples,
  readStackFile,
  withOfflineSamples,
} from "../../infra/stack-files";

/** A shipped stack file with the offline samples for the values only a user knows. */
const readSampled = (stack: string) =>
  withOfflineSamples(readStackFile(stack, { secrets: SECRET }), readOfflineSamples()).raw;

const SECRET = { "agent:anthropicApiKey": "sk-ant-test-not-a-real-key" };

const base = (extra: Record<string, string> = {}): RawStackConfig => ({
  stack: "t",
  values: {
    "aws:region": "us-east-1",
    "agent:target": "lambda",
    "agent:environment": "dev",
    "agent:owner": "team",
    "agent:costCenter": "cc-1",
    "agent:anthropicApiKey": "sk-test",
    "agent:alertEmails": '["oncall@acme.test"]',
    ...extra,
  },
  secretKeys: ["agent:anthropicApiKey"],
});

describe("stack files", () => {
  const stacks = listStacks();

  it("cover a dev and a prod stack for every target, and a dev-staging-prod lineage", () => {
    const parsed = stacks.map((s) => parseStackConfig(readSampled(s)));
    const kinds = new Set(parsed.map((c) => `${c.target}/${c.cloud}/${c.environment}`));
    for (const t of ["lambda/aws", "cloudrun/gcp", "eks/aws", "vmgroup/aws", "vmgroup/gcp"]) {
      expect(kinds).toContain(`${t}/dev`);
      expect(kinds).toContain(`${t}/prod`);
    }
    const staging = parsed.find((c) => c.environment === "staging")!;
    expect(staging.promoteFrom).toMatch(/-dev$/);
    const prodOfLineage = parsed.find((c) => c.promoteFrom?.endsWith(staging.stack))!;
    expect(prodOfLineage.environment).toBe("prod");
  });

  it.each(listStacks())(
    "%s parses, keeps the API key secret and promotes prod from another stack",
    (stack) => {
      const c = parseStackConfig(readSampled(stack));
      expect(c.stack).toBe(stack);
      if (c.environment !== "dev") expect(c.promoteFrom).toBeDefined();
      expect(c.alertEmails.length).toBeGreaterThan(0);
    },
  );
});

describe("parseStackConfig errors name the key and what is allowed", () => {
  it("rejects an unknown target", () => {
    expect(problems(base({ "agent:target": "lambada" }))).toEqual([
      'agent:target must be one of lambda, cloudrun, eks, vmgroup (got "lambada")',
    ]);
  });

  it("requires the target", () => {
    const raw = base();
    delete raw.values["agent:target"];
    expect(problems(raw)).toEqual([
      "agent:target is required: one of lambda, cloudrun, eks, vmgroup",
    ]);
  });

  it("requires missing keys with the command that sets them", () => {
    const raw = base();
    delete raw.values["agent:owner"];
    expect(problems(raw)).toEqual([
      "agent:owner is required: set it with `pulumi config set agent:owner <value>`",
    ]);
  });

  it("requires the cloud for vmgroup", () => {
    expect(problems(base({ "agent:target": "vmgroup" }))).toEqual([
      'agent:cloud is required here: one of "aws", "gcp"',
    ]);
  });

  it("rejects out-of-range values with the value it got", () => {
    expect(problems(base({ "agent:lambda": '{"memoryMb": 64}' }))).toEqual([
      "agent:lambda.memoryMb: Too small: expected number to be >=128 (got 64)",
    ]);
  });

  it("rejects unknown keys and misplaced target sections", () => {
    expect(problems(base({ "agent:cloudrun": "{}", "agent:colour": "blue" }))).toEqual([
      "unknown keys agent:cloudrun, agent:colour (a cloudrun section is only valid when agent:target is cloudrun): remove or rename them",
    ]);
    expect(problems(base({ "agent:lambda": '{"memory": 512}' }))).toEqual([
      "unknown key agent:lambda.memory: remove or rename it",
    ]);
  });

  it("rejects a bad environment", () => {
    expect(problems(base({ "agent:environment": "qa" }))).toEqual([
      'agent:environment must be one of "dev", "staging", "prod" (got "qa")',
    ]);
  });

  it("insists the API key is a secret", () => {
    expect(problems({ ...base(), secretKeys: [] })).toEqual([
      "agent:anthropicApiKey must be a secret: set it with `pulumi config set --secret agent:anthropicApiKey <value>`",
    ]);
  });

  it("checks cross-key rules", () => {
    expect(problems(base({ "agent:scaling": '{"min": 5, "max": 2}' }))).toContain(
      "agent:scaling.min (5) must not exceed agent:scaling.max (2)",
    );
    expect(
      problems(
        base({ "agent:target": "eks", "agent:environment": "prod", "agent:scaling": '{"min": 1}' }),
      ),
    ).toContain(
      "agent:scaling.min must be at least 2 in prod (got 1): one replica is a single point of failure",
    );
    const eks = (extra: Record<string, string>) =>
      base({
        "agent:target": "eks",
        ...extra,
        "agent:eks": JSON.stringify({
          viewerPrincipalArns: ["arn:aws:iam::210987654321:role/preview"],
          ...JSON.parse(extra["agent:eks"] ?? "{}"),
        }),
      });
    expect(problems(eks({ "agent:domain": "a.example.com" }))).toEqual([
      "agent:dnsZone is required with agent:domain on AWS (the Route 53 hosted zone of a.example.com: a DNS-validated certificate and the alias record are created in it), unless agent:certificateArn names an issued ACM certificate: set it with `pulumi config set agent:dnsZone <value>`",
    ]);
    expect(problems(eks({ "agent:eks": '{"cluster": "existing"}' }))).toEqual([
      'agent:kubeconfig is required when agent:eks.cluster is "existing": set it with `pulumi config set --secret agent:kubeconfig <value>`',
      'agent:eks.oidcProviderArn and agent:eks.oidcProviderUrl are required when agent:eks.cluster is "existing" (IAM roles for service accounts)',
    ]);
  });

  it("requires the GCP project, region and billing account for GCP stacks, and lists them as missing", () => {
    const raw = base({ "agent:target": "cloudrun" });
    expect(problems(raw)).toEqual([
      "gcp:region is required (where the stack's resources live): set it with `pulumi config set gcp:region <value>`",
      "gcp:project is required for GCP stacks (the project id): set it with `pulumi config set gcp:project <value>`",
      "agent:billingAccount is required for GCP stacks (the billing account the budget with 50/80/100 % alerts is created on, XXXXXX-XXXXXX-XXXXXX): set it with `pulumi config set agent:billingAccount <value>`",
    ]);
    try {
      parseStackConfig(raw);
    } catch (err) {
      expect((err as StackConfigError).missing).toEqual([
        "gcp:region",
        "gcp:project",
        "agent:billingAccount",
      ]);
    }
  });

  it("accepts numbers written as strings and decodes objects", () => {
    const c = parseStackConfig(
      base({
        "agent:monthlyBudgetUsd": "250",
        "agent:owner": "1234",
        "agent:lambda": '{"reservedConcurrency": 5}',
      }),
    );
    expect(c.monthlyBudgetUsd).toBe(250);
    expect(c.owner).toBe("1234");
    expect(c.target === "lambda" && c.lambda.reservedConcurrency).toBe(5);
  });
});
