/**
 * `--live`: what the clouds say instead of the documented defaults, with the credentials in the
 * environment (the AWS default credential chain, Google Application Default Credentials). Reads
 * only; a call that fails is reported and the offline default stands. Values a render took from
 * the samples are never sent to a cloud.
 *
 * AWS answers for the account of the credentials: with one account per environment, run it once
 * per account (AWS_PROFILE=...).
 */
import { GetServiceQuotaCommand, ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { DescribeClusterVersionsCommand, EKSClient } from "@aws-sdk/client-eks";
import { CostExplorerClient, ListCostAllocationTagsCommand } from "@aws-sdk/client-cost-explorer";
import { ServiceUsageClient } from "@google-cloud/service-usage";
import { CloudBillingClient } from "@google-cloud/billing";
import type { LiveFacts } from "./checks";
import type { StackFacts } from "./facts";
import { AWS_QUOTAS } from "./rules";

/** The SDK clients `--live` uses; tests pass clients whose calls are mocked. */
export interface LiveClients {
  serviceQuotas(region: string): ServiceQuotasClient;
  eks(region: string): EKSClient;
  /** Cost Explorer has one endpoint, in us-east-1. */
  costExplorer(): CostExplorerClient;
  serviceUsage(): ServiceUsageClient;
  billing(): CloudBillingClient;
}

export function defaultLiveClients(): LiveClients {
  const cache = new Map<string, unknown>();
  const once = <T>(key: string, make: () => T): T => {
    if (!cache.has(key)) cache.set(key, make());
    return cache.get(key) as T;
  };
  return {
    serviceQuotas: (region) => once(`sq/${region}`, () => new ServiceQuotasClient({ region })),
    eks: (region) => once(`eks/${region}`, () => new EKSClient({ region })),
    costExplorer: () => once("ce", () => new CostExplorerClient({ region: "us-east-1" })),
    serviceUsage: () => once("su", () => new ServiceUsageClient()),
    billing: () => once("billing", () => new CloudBillingClient()),
  };
}

export interface LiveOptions {
  clients?: LiveClients;
  log?: (message: string) => void;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Asks the clouds what the stacks' checks depend on. Never throws: failures are logged. */
export async function readLiveFacts(
  stacks: readonly StackFacts[],
  options: LiveOptions = {},
): Promise<LiveFacts> {
  const clients = options.clients ?? defaultLiveClients();
  const log = options.log ?? (() => {});
  const facts: LiveFacts = {
    quotas: {},
    eksVersions: {},
    costAllocationTags: {},
    gcpProjects: {},
    billingAccounts: {},
  };
  const attempt = async <T>(what: string, call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (err) {
      log(`preflight --live: ${what} failed (${message(err)}); using the documented default`);
      return undefined;
    }
  };

  const aws = stacks.filter((s) => s.cloud === "aws" && !s.sampled.includes("aws:region"));
  for (const key of new Set(aws.map((s) => `${s.account}/${s.region}`))) {
    const region = key.slice(key.lastIndexOf("/") + 1);
    const quotas: NonNullable<LiveFacts["quotas"]>[string] = {};
    for (const [name, q] of Object.entries(AWS_QUOTAS) as Array<
      [keyof typeof AWS_QUOTAS, (typeof AWS_QUOTAS)[keyof typeof AWS_QUOTAS]]
    >) {
      const out = await attempt(`Service Quotas ${q.quotaCode} in ${region}`, () =>
        clients
          .serviceQuotas(region)
          .send(new GetServiceQuotaCommand({ ServiceCode: q.serviceCode, QuotaCode: q.quotaCode })),
      );
      const value = out?.Quota?.Value;
      if (typeof value === "number") quotas[name] = value;
    }
    facts.quotas![key] = quotas;
  }
  for (const region of new Set(aws.filter((s) => s.eks?.created).map((s) => s.region))) {
    const out = await attempt(`EKS DescribeClusterVersions in ${region}`, () =>
      clients.eks(region).send(new DescribeClusterVersionsCommand({ includeAll: true })),
    );
    if (out?.clusterVersions) {
      facts.eksVersions![region] = out.clusterVersions.map((v) => ({
        version: String(v.clusterVersion),
        status: String(v.versionStatus ?? v.status ?? ""),
        ...(v.endOfStandardSupportDate
          ? { endOfStandardSupport: new Date(v.endOfStandardSupportDate).toISOString() }
          : {}),
      }));
    }
  }
  for (const account of new Set(aws.filter((s) => s.costAllocationTagKey).map((s) => s.account))) {
    const keys = [
      ...new Set(
        aws
          .filter((s) => s.account === account && s.costAllocationTagKey)
          .map((s) => s.costAllocationTagKey!),
      ),
    ];
    const out = await attempt("Cost Explorer ListCostAllocationTags", () =>
      clients.costExplorer().send(new ListCostAllocationTagsCommand({ TagKeys: keys })),
    );
    if (out) {
      facts.costAllocationTags![account] = Object.fromEntries(
        keys.map((k) => [
          k,
          out.CostAllocationTags?.find((t) => t.TagKey === k)?.Status ?? "not found",
        ]),
      );
    }
  }

  const gcp = stacks.filter((s) => s.gcp && !s.sampled.includes("gcp:project"));
  for (const project of new Set(gcp.map((s) => s.gcp!.project))) {
    const entry: NonNullable<LiveFacts["gcpProjects"]>[string] = {};
    try {
      const [info] = await clients.billing().getProjectBillingInfo({ name: `projects/${project}` });
      entry.billingEnabled = Boolean(info.billingEnabled);
      const [services] = await clients
        .serviceUsage()
        .listServices(
          { parent: `projects/${project}`, filter: "state:ENABLED" },
          { autoPaginate: true },
        );
      entry.enabledApis = services.map((svc) =>
        String(svc.config?.name ?? svc.name?.split("/").at(-1)),
      );
    } catch (err) {
      entry.error = message(err);
    }
    facts.gcpProjects![project] = entry;
  }
  const accounts = new Set(
    gcp
      .filter((s) => !s.sampled.includes("agent:billingAccount"))
      .map((s) => s.values["agent:billingAccount"])
      .filter((a): a is string => Boolean(a)),
  );
  for (const account of accounts) {
    const out = await attempt(`Cloud Billing getBillingAccount ${account}`, () =>
      clients.billing().getBillingAccount({ name: `billingAccounts/${account}` }),
    );
    if (out) facts.billingAccounts![account] = { open: Boolean(out[0].open) };
  }
  return facts;
}
