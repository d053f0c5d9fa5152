/**
 * The preflight's rules: what the clouds will refuse, or what will not work once deployed, across
 * all stacks at once. Pure: facts in (from the plan workers, and optionally from `--live`), findings
 * out. Each finding says what is wrong with which value, and what to do.
 */
import { EKS_VERSIONS, eksVersionStatus, DEFAULT_EKS_VERSION } from "../../components/versions";
import type { StackFacts } from "./facts";
import { cloudModelAccess, promotion } from "./checks-release";
import {
  AWS_QUOTAS,
  LAMBDA_NEW_ACCOUNT_CONCURRENCY,
  LAMBDA_UNRESERVED_MINIMUM,
  PLACEHOLDER_PATTERNS,
} from "./rules";

export type Severity = "blocker" | "warning";

export interface Finding {
  severity: Severity;
  rule: string;
  stack: string;
  /** The resource or config key concerned. */
  resource: string;
  message: string;
  fix: string;
}

/** A stack whose configuration could not be read at all, with the keys it lacks. */
export interface ConfigFailure {
  stack: string;
  problems: string[];
  missing: string[];
}

/** What `--live` read from the clouds; absent fields fall back to the documented defaults. */
export interface LiveFacts {
  /** Applied quota values by `<account>/<region>` and quota key. */
  quotas?: Record<string, Partial<Record<keyof typeof AWS_QUOTAS, number>>>;
  /** EKS versions the API reports, with their status, by region. */
  eksVersions?: Record<
    string,
    Array<{ version: string; status: string; endOfStandardSupport?: string }>
  >;
  /** Cost-allocation tag status by account and tag key ("Active", "Inactive", or absent). */
  costAllocationTags?: Record<string, Record<string, string>>;
  /** Per GCP project: whether billing is enabled, and the APIs already enabled. */
  gcpProjects?: Record<
    string,
    { billingEnabled?: boolean; enabledApis?: string[]; error?: string }
  >;
  /** Per billing account: whether it is open. */
  billingAccounts?: Record<string, { open: boolean }>;
}

export interface PreflightOptions {
  /** `YYYY-MM-DD` (UTC) to judge version support on. */
  today: string;
  /** Stacks whose configuration failed, with their missing keys. */
  failures?: ConfigFailure[];
  /** Set with `--live`: cloud answers, and samples and unset secrets become blockers. */
  live?: LiveFacts;
}

const SEVERITY_ORDER: Record<Severity, number> = { blocker: 0, warning: 1 };

export function preflight(stacks: readonly StackFacts[], options: PreflightOptions): Finding[] {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  for (const failure of options.failures ?? []) configFailure(failure, add);
  for (const s of stacks) {
    configValues(s, options, add);
    eksVersion(s, options, add);
    gcpApis(s, add);
    dns(s, add);
    cloudModelAccess(s, add);
  }
  costAllocationTags(stacks, options, add);
  gcpLive(stacks, options, add);
  nameCollisions(stacks, add);
  quotas(stacks, options, add);
  domains(stacks, add);
  promotion(stacks, add);
  return findings.sort(
    (a, b) =>
      SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] ||
      a.stack.localeCompare(b.stack) ||
      a.rule.localeCompare(b.rule) ||
      a.resource.localeCompare(b.resource),
  );
}

export type Add = (f: Finding) => void;

function setCommand(key: string, secret = false): string {
  return `pulumi config set ${secret ? "--secret " : ""}${key.includes(".") ? "--path " : ""}${key} <value>`;
}

function configFailure(f: ConfigFailure, add: Add): void {
  for (const key of f.missing) {
    add({
      severity: "blocker",
      rule: "config.required",
      stack: f.stack,
      resource: key,
      message: `${key} is required and unset (no sample in stacks/offline-samples.yaml either)`,
      fix: `${setCommand(key)} -s ${f.stack}`,
    });
  }
  const rest = f.problems.filter((p) => !f.missing.some((k) => p.startsWith(`${k} is required`)));
  for (const problem of rest) {
    add({
      severity: "blocker",
      rule: "config.invalid",
      stack: f.stack,
      resource: /^([a-z]+:[\w.]+)/.exec(problem)?.[1] ?? "config",
      message: problem,
      fix: "change the value in the stack file as the message says",
    });
  }
}

/** Every string inside a config value (JSON arrays and objects included). */
function leaves(value: string): string[] {
  try {
    const parsed: unknown = JSON.parse(value);
    const out: string[] = [];
    const walk = (v: unknown) => {
      if (typeof v === "string") out.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") Object.values(v).forEach(walk);
    };
    walk(parsed);
    return out;
  } catch {
    return [value];
  }
}

function configValues(s: StackFacts, o: PreflightOptions, add: Add): void {
  const live = o.live !== undefined;
  for (const key of s.sampled) {
    add({
      severity: live ? "blocker" : "warning",
      rule: live ? "config.required" : "config.sample",
      stack: s.stack,
      resource: key,
      message: live
        ? `${key} is unset: the offline render used a sample, which cannot be deployed`
        : `${key} is unset in stacks/Pulumi.${s.stack}.yaml: rendered with the sample from stacks/offline-samples.yaml`,
      fix: `${setCommand(key)} -s ${s.stack} (a value only you know)`,
    });
  }
  for (const key of s.secretsUnset) {
    add({
      severity: live ? "blocker" : "warning",
      rule: "config.secret",
      stack: s.stack,
      resource: key,
      message: `${key} is a required secret that the stack file does not hold`,
      fix: `${setCommand(key, true)} -s ${s.stack}`,
    });
  }
  for (const [key, value] of Object.entries(s.values)) {
    for (const leaf of leaves(value)) {
      const hit = PLACEHOLDER_PATTERNS.find((p) => p.pattern.test(leaf));
      if (!hit) continue;
      add({
        severity: "blocker",
        rule: "config.placeholder",
        stack: s.stack,
        resource: key,
        message: `${key} holds "${leaf}", ${hit.what}: it cannot exist in a real account`,
        fix: `${setCommand(key)} -s ${s.stack} with your own value`,
      });
    }
  }
}

function eksVersion(s: StackFacts, o: PreflightOptions, add: Add): void {
  if (!s.eks?.created) return;
  const { version, extendedSupport } = s.eks;
  const key = "agent:eks.kubernetesVersion";
  const status = eksVersionStatus(version, o.today);
  const base = { stack: s.stack, resource: key, rule: "eks.version" };
  const liveVersions = o.live?.eksVersions?.[s.region];
  if (liveVersions) {
    const reported = liveVersions.find((v) => v.version === version);
    const offered = ["STANDARD_SUPPORT", "EXTENDED_SUPPORT"];
    if (!reported || !offered.includes(reported.status.toUpperCase().replace(/-/g, "_"))) {
      add({
        ...base,
        severity: "blocker",
        message: `EKS in ${s.region} does not offer ${version} (it reports ${liveVersions.map((v) => `${v.version} ${v.status}`).join(", ")})`,
        fix: `set ${key} to a version EKS reports as STANDARD_SUPPORT, and update components/versions.ts`,
      });
      return;
    }
    if (
      reported.endOfStandardSupport &&
      status.support &&
      reported.endOfStandardSupport.slice(0, 10) !== status.support.endOfStandardSupport
    ) {
      add({
        ...base,
        severity: "warning",
        rule: "eks.version-table",
        message: `the version table says ${version} leaves standard support on ${status.support.endOfStandardSupport}, EKS says ${reported.endOfStandardSupport.slice(0, 10)}`,
        fix: `update components/versions.ts from ${EKS_VERSIONS.source}`,
      });
    }
  }
  switch (status.phase) {
    case "unknown":
      add({
        ...base,
        severity: "blocker",
        message: `${key} is ${version}, which is not in the EKS version table taken ${EKS_VERSIONS.takenOn}`,
        fix: `use ${DEFAULT_EKS_VERSION}, or add ${version} to components/versions.ts with its dates`,
      });
      return;
    case "ended":
      add({
        ...base,
        severity: "blocker",
        message: `${key} is ${version}: its extended support ended on ${status.support!.endOfExtendedSupport}; EKS cannot create it`,
        fix: `set ${key} to ${DEFAULT_EKS_VERSION}`,
      });
      return;
    case "extended":
      add({
        ...base,
        severity: extendedSupport ? "warning" : "blocker",
        message: `${key} is ${version}: its standard support ended on ${status.support!.endOfStandardSupport}${extendedSupport ? `; extended support until ${status.support!.endOfExtendedSupport} costs $${EKS_VERSIONS.pricePerClusterHour.extended}/h instead of $${EKS_VERSIONS.pricePerClusterHour.standard}/h (in the plan's estimate)` : ""}`,
        fix: extendedSupport
          ? `upgrade to ${DEFAULT_EKS_VERSION}`
          : `set ${key} to ${DEFAULT_EKS_VERSION}, or agent:eks.extendedSupport to true to pay for extended support`,
      });
      return;
    case "standard": {
      const days =
        (Date.parse(status.support!.endOfStandardSupport) - Date.parse(o.today)) / 86_400_000;
      if (days <= 60) {
        add({
          ...base,
          severity: "warning",
          message: `${key} is ${version}: standard support ends on ${status.support!.endOfStandardSupport} (${Math.ceil(days)} days)`,
          fix: `plan the upgrade; the newest in the table is ${DEFAULT_EKS_VERSION}`,
        });
      }
    }
  }
}

function gcpApis(s: StackFacts, add: Add): void {
  if (!s.gcp) return;
  const byApi = new Map<string, { enabled: boolean; gated: boolean; resources: string[] }>();
  for (const r of s.gcp.resources) {
    const entry = byApi.get(r.api) ?? { enabled: r.enabled, gated: true, resources: [] };
    entry.gated &&= r.gated;
    if (!r.gated) entry.resources.push(`${r.type} ${r.resource}`);
    byApi.set(r.api, entry);
  }
  for (const [api, e] of byApi) {
    if (!e.enabled) {
      add({
        severity: "blocker",
        rule: "gcp.api",
        stack: s.stack,
        resource: api,
        message: `the stack calls ${api} (${e.resources.slice(0, 3).join("; ")}) but does not enable it: on a fresh project the call fails with "API has not been used or is disabled"`,
        fix: `add ${api} to gcpApisFor in infra/program.ts (components/gcp/apis.ts lists each type's API)`,
      });
    } else if (!e.gated) {
      add({
        severity: "blocker",
        rule: "gcp.api-order",
        stack: s.stack,
        resource: api,
        message: `${e.resources.slice(0, 3).join("; ")} may be created before ${api} is enabled`,
        fix: "create it with ProjectApis.provider (or dependsOn its Service)",
      });
    }
  }
}

function gcpLive(stacks: readonly StackFacts[], o: PreflightOptions, add: Add): void {
  const live = o.live;
  if (!live) return;
  for (const s of stacks) {
    if (!s.gcp) continue;
    const p = live.gcpProjects?.[s.gcp.project];
    if (p?.error) {
      add({
        severity: "blocker",
        rule: "gcp.project",
        stack: s.stack,
        resource: "gcp:project",
        message: `project ${s.gcp.project} could not be read: ${p.error}`,
        fix: "check the project id and that the deploying identity can read it (roles/viewer)",
      });
    } else if (p?.billingEnabled === false) {
      add({
        severity: "blocker",
        rule: "gcp.billing",
        stack: s.stack,
        resource: "gcp:project",
        message: `project ${s.gcp.project} has no billing account linked: Memorystore, Cloud SQL and Cloud Run cannot be created`,
        fix: `gcloud billing projects link ${s.gcp.project} --billing-account=<account>`,
      });
    }
    const account = s.values["agent:billingAccount"];
    if (account && live.billingAccounts?.[account]?.open === false) {
      add({
        severity: "blocker",
        rule: "gcp.billing",
        stack: s.stack,
        resource: "agent:billingAccount",
        message: `billing account ${account} is closed: the budget cannot be created on it`,
        fix: "set agent:billingAccount to an open billing account",
      });
    }
  }
}

function dns(s: StackFacts, add: Add): void {
  if (!s.domain) return;
  if (!s.dnsZone) {
    const record =
      s.cloud === "gcp"
        ? "an A record to the load balancer's address"
        : "a CNAME to the load balancer";
    add({
      severity: "warning",
      rule: "dns.manual",
      stack: s.stack,
      resource: "agent:domain",
      message: `${s.domain} needs ${record}, which you create: ${s.cloud === "gcp" ? "the managed certificate stays PROVISIONING until it resolves" : "clients reach the service by name only once it resolves"}`,
      fix: `after pulumi up, create the record from \`pulumi stack output dnsRecords -s ${s.stack}\`, or set agent:dnsZone to have the stack create it`,
    });
  }
  if (s.cloud === "aws" && s.certificateArn) {
    const region = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):/.exec(s.certificateArn)?.[1];
    if (region && region !== s.region) {
      add({
        severity: "blocker",
        rule: "dns.certificate-region",
        stack: s.stack,
        resource: "agent:certificateArn",
        message: `the certificate is in ${region} but the load balancer in ${s.region}: ACM certificates are regional`,
        fix: `issue the certificate in ${s.region}, or unset agent:certificateArn and set agent:dnsZone to have one issued`,
      });
    }
  }
}

/** Once per account and tag key: activation is an account-wide, one-time step. */
function costAllocationTags(stacks: readonly StackFacts[], o: PreflightOptions, add: Add): void {
  const groups = new Map<string, StackFacts[]>();
  for (const s of stacks) {
    if (s.cloud !== "aws" || !s.costAllocationTagKey) continue;
    const k = `${s.account}|${s.costAllocationTagKey}`;
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  for (const [k, group] of groups) {
    const [account, key] = k.split("|") as [string, string];
    const status = o.live?.costAllocationTags?.[account]?.[key];
    if (status === "Active") continue;
    add({
      severity: "warning",
      rule: "aws.cost-allocation-tag",
      stack: group[0]!.stack,
      resource: key,
      message: `the budgets of ${group.map((s) => s.stack).join(", ")} count spend tagged ${key}, which AWS bills by only once it is an active cost allocation tag in ${account}${status ? ` (Cost Explorer says ${status})` : ""}; until then they see $0`,
      fix: `once, in the payer account, at least 24 h after the first deploy (AWS lists a tag key only once it has been used): aws ce update-cost-allocation-tags-status --cost-allocation-tags-status TagKey=${key},Status=Active`,
    });
  }
}

function scopeKey(s: StackFacts, scope: string, location?: string): string {
  switch (scope) {
    case "aws-global":
      return "aws";
    case "aws-account":
    case "gcp-project":
      return s.account;
    default:
      return `${s.account}/${location ?? s.region}`;
  }
}

function nameCollisions(stacks: readonly StackFacts[], add: Add): void {
  type Owner = { stack: string; resource: string; note?: string; shared?: string };
  const seen = new Map<string, Owner[]>();
  for (const s of stacks) {
    for (const n of s.names) {
      const key = `${n.type}|${n.field}|${scopeKey(s, n.scope, n.location)}|${n.name}`;
      const owners = seen.get(key) ?? [];
      owners.push({ stack: s.stack, resource: n.resource, note: n.note, shared: n.shared });
      seen.set(key, owners);
    }
  }
  for (const [key, owners] of seen) {
    if (owners.length < 2) continue;
    // An adopted singleton is fine to share while every owner sets it alike.
    if (owners.every((o) => o.shared !== undefined && o.shared === owners[0]!.shared)) continue;
    const [type, field, where, name] = key.split("|");
    for (const owner of owners) {
      const others = owners.filter((x) => x !== owner).map((x) => `${x.stack} (${x.resource})`);
      add({
        severity: "blocker",
        rule: "names.collision",
        stack: owner.stack,
        resource: `${type} ${owner.resource}`,
        message:
          owner.shared !== undefined
            ? `${field} "${name}" in ${where} is also managed by ${others.join(", ")} with other settings (${owners.map((o) => `${o.stack}: ${o.shared}`).join("; ")}): ${owner.note ?? "each deploy overwrites the other"}`
            : `${field} "${name}" is also used by ${others.join(", ")} in ${where}: the second create fails${owner.note ? `; ${owner.note}` : ""}`,
        fix:
          owner.shared !== undefined
            ? "let one stack manage it (turn it off in the others), or set it alike in every stack"
            : "derive the name from the stack (pulumi.getStack()), or leave it unset for Pulumi to auto-name",
      });
    }
  }
}

function quotas(stacks: readonly StackFacts[], o: PreflightOptions, add: Add): void {
  const groups = new Map<string, StackFacts[]>();
  for (const s of stacks.filter((x) => x.cloud === "aws")) {
    const key = `${s.account}/${s.region}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const [key, group] of groups) {
    const live = o.live?.quotas?.[key] ?? {};
    const names = group.map((s) => s.stack).join(", ");
    const assumed = group.some((s) => !s.accountPinned)
      ? " (stacks without aws:allowedAccountIds are assumed to share one account)"
      : "";
    const sum = (f: (s: StackFacts) => number) => group.reduce((t, s) => t + f(s), 0);
    for (const [quotaKey, used] of [
      ["vpcs", sum((s) => s.counts.vpcs)],
      ["elasticIps", sum((s) => s.counts.elasticIps)],
    ] as const) {
      const q = AWS_QUOTAS[quotaKey];
      const limit = live[quotaKey] ?? q.defaultValue;
      if (used > limit) {
        add({
          severity: "blocker",
          rule: `quota.${quotaKey === "vpcs" ? "vpcs" : "elastic-ips"}`,
          stack: group[0]!.stack,
          resource: key,
          message: `${names} create ${used} ${q.what.replace(" per region", "")} in ${key}, over the ${live[quotaKey] !== undefined ? "account's" : "default"} quota of ${limit}${assumed}`,
          fix: `move stacks to other regions or accounts (aws:region, aws:allowedAccountIds), or request a higher quota: aws service-quotas request-service-quota-increase --service-code ${q.serviceCode} --quota-code ${q.quotaCode} --desired-value ${used} (${q.source})`,
        });
      }
    }
    const reserved = sum((s) => s.counts.lambdaReserved);
    if (reserved > 0) {
      const q = AWS_QUOTAS.lambdaConcurrency;
      const limit = live.lambdaConcurrency ?? q.defaultValue;
      if (limit - reserved < LAMBDA_UNRESERVED_MINIMUM) {
        add({
          severity: "blocker",
          rule: "quota.lambda-concurrency",
          stack: group[0]!.stack,
          resource: key,
          message: `${names} reserve ${reserved} concurrent executions in ${key}; with ${live.lambdaConcurrency !== undefined ? "the account's" : "the default"} limit of ${limit}, fewer than ${LAMBDA_UNRESERVED_MINIMUM} would stay unreserved and the reservation fails${assumed}`,
          fix: `lower agent:lambda.reservedConcurrency, or request ${reserved + LAMBDA_UNRESERVED_MINIMUM}: aws service-quotas request-service-quota-increase --service-code lambda --quota-code ${q.quotaCode} --desired-value ${reserved + LAMBDA_UNRESERVED_MINIMUM}`,
        });
      } else if (live.lambdaConcurrency === undefined) {
        add({
          severity: "warning",
          rule: "quota.lambda-concurrency",
          stack: group[0]!.stack,
          resource: key,
          message: `${names} reserve ${reserved} concurrent executions in ${key}: fine with the default limit of ${limit}, but new accounts may start at ${LAMBDA_NEW_ACCOUNT_CONCURRENCY}`,
          fix: `run the preflight with --live to read this account's limit (Service Quotas ${q.quotaCode})`,
        });
      }
    }
  }
}

function domains(stacks: readonly StackFacts[], add: Add): void {
  const byDomain = new Map<string, string[]>();
  for (const s of stacks)
    if (s.domain) byDomain.set(s.domain, [...(byDomain.get(s.domain) ?? []), s.stack]);
  for (const [domain, owners] of byDomain) {
    if (owners.length < 2) continue;
    for (const stack of owners) {
      add({
        severity: "blocker",
        rule: "dns.domain-collision",
        stack,
        resource: "agent:domain",
        message: `${domain} is claimed by ${owners.join(" and ")}: one name resolves to one load balancer, and the other stack's certificate is never issued`,
        fix: `give each stack its own agent:domain`,
      });
    }
  }
}

export interface QuotaUse {
  account: string;
  region: string;
  stacks: string[];
  vpcs: { used: number; limit: number };
  elasticIps: { used: number; limit: number };
  lambdaReserved: { used: number; limit: number };
  /** Whether the limits came from the account (`--live`) or the documented defaults. */
  source: "live" | "default";
}

/** What the AWS stacks use per account and region, against the limits: the plan prints it. */
export function quotaUsage(stacks: readonly StackFacts[], live?: LiveFacts): QuotaUse[] {
  const groups = new Map<string, StackFacts[]>();
  for (const s of stacks.filter((x) => x.cloud === "aws")) {
    const key = `${s.account}/${s.region}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, group]) => {
      const q = live?.quotas?.[key] ?? {};
      const sum = (f: (s: StackFacts) => number) => group.reduce((t, s) => t + f(s), 0);
      return {
        account: group[0]!.account,
        region: group[0]!.region,
        stacks: group.map((s) => s.stack),
        vpcs: { used: sum((s) => s.counts.vpcs), limit: q.vpcs ?? AWS_QUOTAS.vpcs.defaultValue },
        elasticIps: {
          used: sum((s) => s.counts.elasticIps),
          limit: q.elasticIps ?? AWS_QUOTAS.elasticIps.defaultValue,
        },
        lambdaReserved: {
          used: sum((s) => s.counts.lambdaReserved),
          limit:
            (q.lambdaConcurrency ?? AWS_QUOTAS.lambdaConcurrency.defaultValue) -
            LAMBDA_UNRESERVED_MINIMUM,
        },
        source: Object.keys(q).length > 0 ? "live" : "default",
      };
    });
}

/** One line per rule: how many findings of each severity. */
export function summarize(findings: readonly Finding[]): { blockers: number; warnings: number } {
  return {
    blockers: findings.filter((f) => f.severity === "blocker").length,
    warnings: findings.filter((f) => f.severity === "warning").length,
  };
}
