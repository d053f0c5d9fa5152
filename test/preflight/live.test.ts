/**
 * `--live` reads the clouds through their SDKs; here the SDKs answer with recorded responses:
 * AWS through aws-sdk-client-mock (the AWS SDK v3's mocking library), Google's clients through
 * their own methods replaced on real client instances. Nothing reaches a cloud.
 */
import { mockClient } from "aws-sdk-client-mock";
import { GetServiceQuotaCommand, ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { DescribeClusterVersionsCommand, EKSClient } from "@aws-sdk/client-eks";
import { CostExplorerClient, ListCostAllocationTagsCommand } from "@aws-sdk/client-cost-explorer";
import { ServiceUsageClient } from "@google-cloud/service-usage";
import { CloudBillingClient } from "@google-cloud/billing";
import { readLiveFacts, type LiveClients } from "../../infra/preflight/live";
import { preflight } from "../../infra/preflight/checks";
import type { StackFacts } from "../../infra/preflight/facts";

const base = (over: Partial<StackFacts>): StackFacts => ({
  stack: "s",
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
});

const stacks: StackFacts[] = [
  base({
    stack: "lambda-prod",
    counts: { vpcs: 3, elasticIps: 3, natGateways: 3, lambdaReserved: 260 },
    costAllocationTagKey: "pulumi-stack",
  }),
  base({
    stack: "eks-dev",
    target: "eks",
    region: "us-east-2",
    eks: { created: true, version: "1.35", extendedSupport: false, exposure: "nlb" },
    costAllocationTagKey: "pulumi-stack",
  }),
  base({
    stack: "cloudrun-dev",
    cloud: "gcp",
    target: "cloudrun",
    account: "acme-agent-dev",
    values: { "agent:billingAccount": "01A2B3-C4D5E6-F7A8B9" },
    gcp: { project: "acme-agent-dev", enabledApis: [], resources: [], crossProjectGrants: [] },
  }),
  // Sampled values are never sent to a cloud.
  base({
    stack: "vm-gcp-dev",
    cloud: "gcp",
    target: "vmgroup",
    account: "sample-agent-dev",
    sampled: ["gcp:project", "agent:billingAccount"],
    values: {},
    gcp: { project: "sample-agent-dev", enabledApis: [], resources: [], crossProjectGrants: [] },
  }),
];

function clients() {
  const quotas = mockClient(ServiceQuotasClient);
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-F678F1CE" }).resolves({ Quota: { Value: 5 } });
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-0263D0A3" }).resolves({ Quota: { Value: 5 } });
  // A new account: ten concurrent executions in all.
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-B99A9384" }).resolves({ Quota: { Value: 10 } });
  const eks = mockClient(EKSClient);
  eks.on(DescribeClusterVersionsCommand).resolves({
    clusterVersions: [
      {
        clusterVersion: "1.34",
        versionStatus: "EXTENDED_SUPPORT",
        endOfStandardSupportDate: new Date("2026-12-02T00:00:00Z"),
      },
      {
        clusterVersion: "1.35",
        versionStatus: "STANDARD_SUPPORT",
        endOfStandardSupportDate: new Date("2027-03-27T00:00:00Z"),
      },
    ],
  });
  const ce = mockClient(CostExplorerClient);
  ce.on(ListCostAllocationTagsCommand).resolves({
    CostAllocationTags: [{ TagKey: "pulumi-stack", Type: "UserDefined", Status: "Inactive" }],
  });
  const serviceUsage = new ServiceUsageClient({
    projectId: "test",
    credentials: { client_email: "x@y", private_key: "k" },
  });
  const billing = new CloudBillingClient({
    projectId: "test",
    credentials: { client_email: "x@y", private_key: "k" },
  });
  const asked: string[] = [];
  jest.spyOn(billing, "getProjectBillingInfo").mockImplementation((async (req: {
    name: string;
  }) => {
    asked.push(req.name);
    return [{ name: `${req.name}/billingInfo`, billingEnabled: false }];
  }) as never);
  jest.spyOn(billing, "getBillingAccount").mockImplementation((async (req: { name: string }) => {
    asked.push(req.name);
    return [{ name: req.name, open: true }];
  }) as never);
  jest.spyOn(serviceUsage, "listServices").mockImplementation((async (req: { parent: string }) => {
    asked.push(req.parent);
    return [
      [
        {
          name: `${req.parent}/services/compute.googleapis.com`,
          config: { name: "compute.googleapis.com" },
        },
      ],
    ];
  }) as never);
  const live: LiveClients = {
    serviceQuotas: () => new ServiceQuotasClient({ region: "us-east-1" }),
    eks: () => new EKSClient({ region: "us-east-1" }),
    costExplorer: () => new CostExplorerClient({ region: "us-east-1" }),
    serviceUsage: () => serviceUsage,
    billing: () => billing,
  };
  return { live, quotas, eks, ce, asked };
}

test("reads quotas, EKS versions, cost allocation tags and GCP billing; never asks about samples", async () => {
  const { live, quotas, eks, ce, asked } = clients();
  const facts = await readLiveFacts(stacks, { clients: live });
  expect(facts.quotas).toEqual({
    "210987654321/us-east-1": { vpcs: 5, elasticIps: 5, lambdaConcurrency: 10 },
    "210987654321/us-east-2": { vpcs: 5, elasticIps: 5, lambdaConcurrency: 10 },
  });
  expect(quotas.commandCalls(GetServiceQuotaCommand).map((c) => c.args[0].input)).toContainEqual({
    ServiceCode: "lambda",
    QuotaCode: "L-B99A9384",
  });
  expect(facts.eksVersions!["us-east-2"]).toEqual([
    {
      version: "1.34",
      status: "EXTENDED_SUPPORT",
      endOfStandardSupport: "2026-12-02T00:00:00.000Z",
    },
    {
      version: "1.35",
      status: "STANDARD_SUPPORT",
      endOfStandardSupport: "2027-03-27T00:00:00.000Z",
    },
  ]);
  expect(eks.commandCalls(DescribeClusterVersionsCommand)).toHaveLength(1);
  expect(ce.commandCalls(ListCostAllocationTagsCommand)[0]!.args[0].input).toEqual({
    TagKeys: ["pulumi-stack"],
  });
  expect(facts.costAllocationTags).toEqual({ "210987654321": { "pulumi-stack": "Inactive" } });
  expect(facts.gcpProjects).toEqual({
    "acme-agent-dev": { billingEnabled: false, enabledApis: ["compute.googleapis.com"] },
  });
  expect(facts.billingAccounts).toEqual({ "01A2B3-C4D5E6-F7A8B9": { open: true } });
  expect(asked.join(" ")).not.toContain("sample-agent-dev");

  // What the preflight makes of it: the account's real Lambda limit, the project without billing,
  // the inactive tag, and the sampled stack's values as blockers.
  const findings = preflight(stacks, { today: "2026-12-06", live: facts });
  const got = findings.map((f) => `${f.severity} ${f.rule} ${f.stack}`);
  expect(got).toEqual(
    expect.arrayContaining([
      "blocker quota.lambda-concurrency lambda-prod",
      "blocker gcp.billing cloudrun-dev",
      "blocker config.required vm-gcp-dev",
      "warning aws.cost-allocation-tag lambda-prod",
    ]),
  );
  expect(findings.find((f) => f.rule === "aws.cost-allocation-tag")!.message).toContain(
    "(Cost Explorer says Inactive)",
  );
  quotas.restore();
  eks.restore();
  ce.restore();
});

test("a failing call is reported and the documented default stands", async () => {
  const { live, quotas, eks, ce } = clients();
  quotas.reset();
  quotas.on(GetServiceQuotaCommand).rejects(new Error("AccessDeniedException: not authorized"));
  const log: string[] = [];
  const facts = await readLiveFacts([stacks[0]!], { clients: live, log: (m) => log.push(m) });
  expect(facts.quotas).toEqual({ "210987654321/us-east-1": {} });
  expect(log[0]).toBe(
    "preflight --live: Service Quotas L-F678F1CE in us-east-1 failed (AccessDeniedException: not authorized); using the documented default",
  );
  quotas.restore();
  eks.restore();
  ce.restore();
});
