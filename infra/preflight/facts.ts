/**
 * What the preflight needs to know about one rendered stack, extracted in the plan worker (one
 * stack per process) as plain JSON, so that the CLI can check all stacks together: physical
 * names and where they must be unique, quota-counted resources, the APIs a GCP stack calls and
 * whether its resources wait for them, and the config values a user still has to set.
 */
import type { LlmUpstream } from "../../components/upstream";
import type { RecordedResource } from "../plan/mock-runtime";
import type { StackConfig } from "../config";
import { apiForType } from "../../components/gcp/apis";
import { DEFAULT_EKS_VERSION } from "../../components/versions";
import { NAME_RULES, type NameScope } from "./rules";

export interface PhysicalName {
  type: string;
  /** The resource's logical name. */
  resource: string;
  field: string;
  name: string;
  scope: NameScope;
  /** Region or location, for regional scopes. */
  location?: string;
  note?: string;
  /** For singletons stacks share: the inputs that must agree (JSON), see NameRule.sharedWhenEqual. */
  shared?: string;
}

export interface StackFacts {
  stack: string;
  cloud: "aws" | "gcp";
  target: string;
  environment: string;
  region: string;
  /**
   * Where account-wide limits and names apply: the AWS account (`aws:allowedAccountIds`, or
   * "the default account" when the stack does not pin one) or the GCP project.
   */
  account: string;
  /** Whether `account` is known (pinned) rather than assumed shared. */
  accountPinned: boolean;
  /** The stack file's own values (samples excluded), for placeholder checks. */
  values: Record<string, string>;
  /** Required keys the stack file leaves unset that the render took from the samples. */
  sampled: string[];
  /** Required secrets the stack file does not hold (`pulumi config set --secret`). */
  secretsUnset: string[];
  promoteFrom?: string;
  /** Who serves the model calls, and the model ids the workload may call there. */
  upstream: { kind: string; where?: string; models: string[] };
  /** `agent:promotionReaders`: who outside the account or project may copy its releases. */
  promotionReaders: string[];
  domain?: string;
  dnsZone?: string;
  certificateArn?: string;
  eks?: {
    created: boolean;
    version: string;
    extendedSupport: boolean;
    exposure: string;
  };
  names: PhysicalName[];
  counts: { vpcs: number; elasticIps: number; natGateways: number; lambdaReserved: number };
  /** The AWS budget's cost-allocation tag key, which must be active in the payer account. */
  costAllocationTagKey?: string;
  gcp?: {
    project: string;
    enabledApis: string[];
    /** Each GCP resource type's API, and whether the stack enables it and waits for it. */
    resources: Array<{
      type: string;
      resource: string;
      api: string;
      enabled: boolean;
      gated: boolean;
    }>;
    /** Artifact Registry repositories in other projects this stack grants itself pulls on. */
    crossProjectGrants: Array<{ project: string; repository: string; member: string }>;
  };
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

function upstreamFacts(u: LlmUpstream): StackFacts["upstream"] {
  if (u.kind === "bedrock")
    return { kind: u.kind, where: u.profile, models: u.models.map((m) => m.modelId) };
  if (u.kind === "vertex") return { kind: u.kind, where: u.region, models: [...u.models] };
  return { kind: u.kind, models: [] };
}

function physicalNames(resources: readonly RecordedResource[], region: string): PhysicalName[] {
  const out: PhysicalName[] = [];
  for (const r of resources) {
    if (!r.custom || r.read) continue;
    for (const rule of NAME_RULES[r.type] ?? []) {
      const name = str(r.inputs[rule.field]);
      // Absent: Pulumi auto-names it with a random suffix, unique by construction.
      if (!name) continue;
      const regional = rule.scope === "aws-region" || rule.scope === "gcp-location";
      const location = regional
        ? (str(r.inputs[rule.locationField ?? "region"]) ?? str(r.inputs.location) ?? region)
        : undefined;
      out.push({
        type: r.type,
        resource: r.name,
        field: rule.field,
        name,
        scope: rule.scope,
        ...(location ? { location } : {}),
        ...(rule.note ? { note: rule.note } : {}),
        ...(rule.sharedWhenEqual
          ? { shared: JSON.stringify(rule.sharedWhenEqual.map((f) => r.inputs[f] ?? null)) }
          : {}),
      });
    }
  }
  return out;
}

function gcpFacts(resources: readonly RecordedResource[], project: string): StackFacts["gcp"] {
  const services = resources.filter((r) => r.type === "gcp:projects/service:Service");
  const enabled = services.map((s) => String(s.inputs.service));
  const serviceUrns = new Set(services.map((s) => s.urn));
  const serviceOf = new Map(services.map((s) => [String(s.inputs.service), s.urn]));
  // A provider "waits for" an API when its registration depends on that API's Service.
  const providerWaitsFor = new Map<string, Set<string>>();
  for (const p of resources.filter((r) => r.type === "pulumi:providers:gcp")) {
    const deps = new Set(p.options.dependencies.filter((d) => serviceUrns.has(d)));
    providerWaitsFor.set(`${p.urn}::${p.id}`, deps);
  }
  const out: NonNullable<StackFacts["gcp"]> = {
    project,
    enabledApis: enabled.sort(),
    resources: [],
    crossProjectGrants: [],
  };
  for (const r of resources) {
    if (!r.custom || r.read || !r.type.startsWith("gcp:")) continue;
    if (r.type === "gcp:projects/service:Service") continue;
    const api = apiForType(r.type);
    if (!api) continue;
    const serviceUrn = serviceOf.get(api);
    const waits = providerWaitsFor.get(r.options.provider);
    out.resources.push({
      type: r.type,
      resource: r.name,
      api,
      enabled: serviceUrn !== undefined,
      gated:
        serviceUrn !== undefined &&
        (r.options.dependencies.includes(serviceUrn) || Boolean(waits?.has(serviceUrn))),
    });
    if (
      r.type === "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember" &&
      str(r.inputs.project) &&
      r.inputs.project !== project
    ) {
      out.crossProjectGrants.push({
        project: String(r.inputs.project),
        repository: String(r.inputs.repository),
        member: String(r.inputs.member),
      });
    }
  }
  return out;
}

export interface FactsInput {
  config: StackConfig;
  /** The stack file's values, without samples or injected secrets. */
  fileValues: Record<string, string>;
  sampled: string[];
  secretsUnset: string[];
  resources: readonly RecordedResource[];
}

/** Pure: the facts of one rendered stack. */
export function stackFacts(input: FactsInput): StackFacts {
  const { config, resources } = input;
  const count = (type: string) => resources.filter((r) => r.type === type && r.custom).length;
  const allowed = input.fileValues["aws:allowedAccountIds"];
  let pinnedAccount: string | undefined;
  if (allowed) {
    try {
      pinnedAccount = (JSON.parse(allowed) as string[])[0];
    } catch {
      pinnedAccount = allowed;
    }
  }
  const account =
    config.cloud === "gcp" ? config.gcpProject! : (pinnedAccount ?? "the default account");
  const budgetFilter = resources
    .filter((r) => r.type === "aws:budgets/budget:Budget")
    .flatMap((r) => (r.inputs.costFilters as Array<{ values?: string[] }> | undefined) ?? [])
    .flatMap((f) => f.values ?? [])[0];
  const facts: StackFacts = {
    stack: config.stack,
    cloud: config.cloud,
    target: config.target,
    environment: config.environment,
    region: config.region,
    account,
    accountPinned: config.cloud === "gcp" || pinnedAccount !== undefined,
    values: input.fileValues,
    sampled: input.sampled,
    secretsUnset: input.secretsUnset,
    promoteFrom: config.promoteFrom,
    upstream: upstreamFacts(config.upstream),
    promotionReaders: config.promotionReaders,
    domain: config.domain,
    dnsZone: config.dnsZone,
    certificateArn: config.certificateArn,
    names: physicalNames(resources, config.region),
    counts: {
      vpcs: count("aws:ec2/vpc:Vpc"),
      elasticIps: count("aws:ec2/eip:Eip"),
      natGateways: count("aws:ec2/natGateway:NatGateway"),
      lambdaReserved: resources
        .filter((r) => r.type === "aws:lambda/function:Function")
        .reduce(
          (sum, r) =>
            sum +
            (Number(r.inputs.reservedConcurrentExecutions) > 0
              ? Number(r.inputs.reservedConcurrentExecutions)
              : 0),
          0,
        ),
    },
    ...(budgetFilter ? { costAllocationTagKey: /^user:([^$]+)\$/.exec(budgetFilter)?.[1] } : {}),
  };
  if (config.target === "eks") {
    facts.eks = {
      created: config.eks.cluster !== "existing",
      version: config.eks.kubernetesVersion ?? DEFAULT_EKS_VERSION,
      extendedSupport: config.eks.extendedSupport ?? false,
      exposure: config.eks.exposure ?? "nlb",
    };
  }
  if (config.cloud === "gcp") facts.gcp = gcpFacts(resources, config.gcpProject!);
  return facts;
}
