/**
 * Stack configuration -> a validated, typed StackConfig. The only module that reads
 * `pulumi.Config`; everything downstream receives plain typed values.
 *
 * Every key lives in the `agent:` namespace (provider settings such as `aws:region`,
 * `gcp:project` and `gcp:region` keep their own). Unknown keys, values of the wrong type and
 * out-of-range numbers fail with a message that names the key and what is allowed.
 */
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import type { Cloud, Environment, TargetKind } from "../components/contracts";
import { DEFAULT_EKS_VERSION, eksVersionProblem, utcToday } from "../components/versions";
import type { RolloutStep } from "../components/release/rollout-plan";
import { releaseSettings } from "./config-release";
import { upstreamSettings } from "./config-upstream";
import type { LlmUpstream } from "../components/upstream";
import { BEDROCK_PROFILES, UPSTREAMS } from "../app/src/llm/upstream-kinds";
import { appBudgetsSchema } from "../app/src/budget/kinds";
import { TARGETS } from "./targets";
import type { TargetDefs, TargetKey } from "./targets/types";
import type { EksSection } from "./targets/eks";

const NS = "agent";

// Stack YAML values reach the program as strings; numbers and booleans may have been written
// either way, so string fields accept them and turn them back into text.
const str = z.preprocess(
  (v) => (typeof v === "number" || typeof v === "boolean" ? String(v) : v),
  z.string().min(1),
);
const email = z.email({ message: "must be an e-mail address" });

const scalingSchema = z.strictObject({
  min: z.number().int().min(0).optional(),
  max: z.number().int().positive().max(1000).optional(),
  /** Target CPU utilisation in percent for autoscalers. */
  cpuTargetPercent: z.number().int().min(10).max(95).optional(),
});

const common = {
  environment: z.enum(["dev", "staging", "prod"]),
  owner: str,
  costCenter: str,
  /** Every stack, promoted ones included, has its own key (a secret in its own store). */
  anthropicApiKey: str.optional(),
  /** Who serves the model calls: the Anthropic API (a key), Bedrock (AWS) or Vertex AI (GCP). */
  upstream: z.enum(UPSTREAMS).optional(),
  /** Bedrock's inference profile geography, or none for in-Region models. */
  bedrockProfile: z.enum(BEDROCK_PROFILES).optional(),
  /** Vertex AI location (`global` or a region serving Claude). */
  vertexRegion: str.optional(),
  alertEmails: z.array(email).optional(),
  monthlyBudgetUsd: z.number().positive().max(1_000_000).optional(),
  domain: z
    .string()
    .regex(/^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, {
      message: "must be a lower-case DNS name",
    })
    .optional(),
  /**
   * DNS zone that holds `domain`: a Route 53 hosted zone id (AWS) or a Cloud DNS managed zone
   * name (GCP). With it the program creates the records (and, on AWS, a DNS-validated ACM
   * certificate); without it the stack exports the records to create (`dnsRecords`).
   */
  dnsZone: z
    .string()
    .regex(/^([A-Z0-9]{1,32}|[a-z][-a-z0-9]{0,62})$/, {
      message: "must be a Route 53 hosted zone id (Z...) or a Cloud DNS zone name",
    })
    .optional(),
  /** ACM certificate for `domain` (AWS targets). */
  certificateArn: z
    .string()
    .startsWith("arn:aws:acm:", { message: "must be an ACM certificate ARN" })
    .optional(),
  /** Fully qualified stack (`org/project/stack`) whose artifact this stack deploys, building nothing. */
  promoteFrom: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/, {
      message: "must be a stack name such as org/agent/lambda-staging",
    })
    .optional(),
  /**
   * A rollback: the release to deploy from this stack's own storage instead of the source
   * stack's current one (an image digest, or a Lambda bundle's SHA-256). Promoted stacks only.
   */
  release: str.optional(),
  /** Progressive delivery: `steps` before 100 % (`[]` deploys at once). Default per environment. */
  rollout: z
    .strictObject({
      steps: z.array(z.strictObject({ percent: z.number(), minutes: z.number() })),
    })
    .optional(),
  /**
   * Who may copy this stack's releases from another account or project: the deployers of the
   * stacks that promote from it (AWS account ids or role ARNs; GCP IAM principals).
   */
  promotionReaders: z.array(str).optional(),
  scaling: scalingSchema.optional(),
  appBudgets: appBudgetsSchema.optional(),
  logLevel: z.enum(["debug", "info", "warn", "error"]).optional(),
  /** GCP: billing account for the budget. */
  billingAccount: str.optional(),
  /** EKS with an existing cluster. */
  kubeconfig: str.optional(),
  /** Image tag to push (e.g. the commit SHA). Default: a hash of the app's sources. */
  imageTag: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { message: "must be a valid image tag" })
    .refine((t) => t !== "latest", { message: '"latest" is refused: tags are immutable' })
    .optional(),
  /** Lambda bundle to deploy (built by `npm run build`). */
  lambdaBundlePath: str.optional(),
};

/** The stack schema of one target key: the common keys, its target and cloud, its own section. */
function stackSchemaFor(key: TargetKey) {
  const { kind, cloud, section } = TARGETS[key];
  // A target whose kind runs on several clouds must say which; the others imply theirs.
  const multiCloud = Object.values(TARGETS).filter((t) => t.kind === kind).length > 1;
  return z.strictObject({
    ...common,
    target: z.literal(kind),
    cloud: multiCloud ? z.literal(cloud) : z.literal(cloud).optional(),
    [kind]: section.optional(),
  });
}

type Common = z.infer<z.ZodObject<typeof common>>;
export type { TargetKey };

interface Base {
  stack: string;
  environment: Environment;
  /** aws:region or gcp:region. */
  region: string;
  owner: string;
  costCenter: string;
  /** The Anthropic API key (anthropic upstream only). */
  anthropicApiKey?: pulumi.Output<string>;
  upstream: LlmUpstream;
  alertEmails: string[];
  monthlyBudgetUsd?: number;
  domain?: string;
  certificateArn?: string;
  dnsZone?: string;
  promoteFrom?: string;
  /** A rollback to this release (normalized: `sha256:<hex>` or a base64 bundle SHA-256). */
  release?: string;
  /** The canary steps before 100 % (the environment's default unless `agent:rollout` says). */
  rolloutSteps: RolloutStep[];
  /** Principals of other accounts or projects that may copy this stack's releases. */
  promotionReaders: string[];
  scaling: Common["scaling"] & {};
  appBudgets: Common["appBudgets"] & {};
  logLevel: string;
  imageTag?: string;
  lambdaBundlePath?: string;
}
interface AwsBase extends Base {
  cloud: "aws";
}
interface GcpBase extends Base {
  cloud: "gcp";
  /** gcp:project */
  gcpProject: string;
  /** The billing account the budget is created on. */
  billingAccount: string;
}

/** An existing EKS cluster, with what the config check required for it. */
export interface ExistingCluster {
  kubeconfig: pulumi.Output<string>;
  oidcProviderArn: string;
  oidcProviderUrl: string;
}

/** What each target key's stack config carries, once validated: derived from `TargetDefs`. */
type StackConfigs = {
  [K in TargetKey]: (TargetDefs[K]["cloud"] extends "gcp" ? GcpBase : AwsBase) & {
    key: K;
    target: TargetDefs[K]["kind"];
  } & { [S in TargetDefs[K]["kind"]]: TargetDefs[K]["section"] } & (K extends "eks"
      ? {
          /** Set when `agent:eks.cluster` is "existing". */
          existingCluster?: ExistingCluster;
        }
      : unknown);
};
export type StackConfigOf<K extends TargetKey> = StackConfigs[K];
export type StackConfig = StackConfigs[TargetKey];

export class StackConfigError extends Error {
  /**
   * @param problems every problem, each saying what to change
   * @param missing the fully qualified keys that are required and unset (a subset of the
   *   problems): values only the user knows, which offline renders take from
   *   `stacks/offline-samples.yaml` and the preflight reports as `config.required`
   */
  constructor(
    readonly problems: string[],
    readonly missing: string[] = [],
  ) {
    super(`Invalid stack configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "StackConfigError";
  }
}

export interface ParseOptions {
  /** The day (`YYYY-MM-DD`, UTC) version support is judged on. @default today */
  today?: string;
}

const KINDS: readonly TargetKind[] = [...new Set(Object.values(TARGETS).map((t) => t.kind))];
const TARGET_SECTIONS = new Set<string>(KINDS);
const SECRET_KEYS = ["anthropicApiKey", "kubeconfig"] as const;

/** Values arrive as strings; objects, arrays, numbers and booleans as their JSON text. */
function decode(raw: string): unknown {
  const t = raw.trim();
  if (/^[[{]/.test(t) || /^-?\d+(\.\d+)?$/.test(t) || t === "true" || t === "false") {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

function describe(issue: z.core.$ZodIssue, input: Record<string, unknown>): string {
  const [head, ...rest] = issue.path.map(String);
  const key = `${NS}:${head ?? ""}${rest.length ? "." + rest.join(".") : ""}`;
  if (issue.code === "unrecognized_keys") {
    const where = head ? `${key}.` : `${NS}:`;
    const names = issue.keys.map((k) => `${where}${k}`);
    const misplaced = issue.keys.filter((k) => TARGET_SECTIONS.has(k));
    const hint = misplaced.length
      ? ` (a ${misplaced.join("/")} section is only valid when ${NS}:target is ${misplaced.join("/")})`
      : "";
    return `unknown key${names.length > 1 ? "s" : ""} ${names.join(", ")}${hint}: remove or rename ${names.length > 1 ? "them" : "it"}`;
  }
  if (issue.code === "invalid_union" && head === "target") {
    return `${NS}:target must be one of ${KINDS.join(", ")} (got ${JSON.stringify(input.target)})`;
  }
  if (issue.code === "invalid_value" && issue.values) {
    if (pick(input, issue.path) === undefined) {
      return `${key} is required here: one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    return `${key} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")} (got ${JSON.stringify(pick(input, issue.path))})`;
  }
  if (issue.code === "invalid_type" && pick(input, issue.path) === undefined) {
    return `${key} is required: set it with \`pulumi config set ${key} <value>\``;
  }
  return `${key}: ${issue.message}${pick(input, issue.path) !== undefined ? ` (got ${JSON.stringify(pick(input, issue.path))})` : ""}`;
}

function pick(input: Record<string, unknown>, path: PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const p of path)
    cur = cur && typeof cur === "object" ? (cur as Record<PropertyKey, unknown>)[p] : undefined;
  return cur;
}

export interface RawStackConfig {
  stack: string;
  /** Every config value, fully qualified (`agent:target`, `aws:region`, ...). */
  values: Record<string, string>;
  /** Fully qualified keys that were set as secrets. */
  secretKeys: string[];
}

/** `agent:a.b` for a zod issue path. */
function keyOf(path: PropertyKey[]): string {
  const [head, ...rest] = path.map(String);
  return `${NS}:${head ?? ""}${rest.length ? "." + rest.join(".") : ""}`;
}

/** Pure: validate raw stack config. Tests call this directly. */
export function parseStackConfig(raw: RawStackConfig, options: ParseOptions = {}): StackConfig {
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw.values)) {
    if (k.startsWith(`${NS}:`)) input[k.slice(NS.length + 1)] = decode(v);
  }
  const problems: string[] = [];
  const missing: string[] = [];
  /** A value only the user can know is unset: say how to set it. */
  const requireKey = (key: string, why: string, secret = false) => {
    missing.push(key);
    problems.push(
      `${key} is required ${why}: set it with \`pulumi config set ${secret ? "--secret " : ""}${key} <value>\``,
    );
  };
  if (typeof input.target === "string" && !KINDS.includes(input.target as TargetKind)) {
    throw new StackConfigError([
      `${NS}:target must be one of ${KINDS.join(", ")} (got "${input.target}")`,
    ]);
  }
  if (input.target === undefined) {
    throw new StackConfigError([`${NS}:target is required: one of ${KINDS.join(", ")}`]);
  }
  const key = targetKeyOf(input.target as TargetKind, input.cloud);
  if (!key) {
    const clouds = Object.entries(TARGETS)
      .filter(([, t]) => t.kind === input.target)
      .map(([, t]) => JSON.stringify(t.cloud));
    if (input.cloud === undefined) {
      throw new StackConfigError(
        [`${NS}:cloud is required here: one of ${clouds.join(", ")}`],
        [`${NS}:cloud`],
      );
    }
    throw new StackConfigError([
      `${NS}:cloud must be one of ${clouds.join(", ")} for ${NS}:target ${String(input.target)} (got ${JSON.stringify(input.cloud)})`,
    ]);
  }
  const parsed = stackSchemaFor(key).safeParse(input);
  if (!parsed.success) {
    const unset = parsed.error.issues
      .filter(
        (i) =>
          (i.code === "invalid_type" || i.code === "invalid_value") &&
          pick(input, i.path) === undefined,
      )
      .map((i) => keyOf(i.path));
    throw new StackConfigError(
      parsed.error.issues.map((i) => describe(i, input)),
      unset,
    );
  }
  const c = parsed.data as Common & {
    target: TargetKind;
    lambda?: TargetDefs["lambda"]["section"];
    cloudrun?: TargetDefs["cloudrun"]["section"];
    eks?: EksSection;
    vmgroup?: TargetDefs["vmgroup-aws"]["section"];
  };

  for (const key of SECRET_KEYS) {
    const fq = `${NS}:${key}`;
    if (raw.values[fq] !== undefined && !raw.secretKeys.includes(fq)) {
      problems.push(
        `${fq} must be a secret: set it with \`pulumi config set --secret ${fq} <value>\``,
      );
    }
  }
  const cloud: Cloud = TARGETS[key].cloud;
  const region = cloud === "aws" ? raw.values["aws:region"] : raw.values["gcp:region"];
  if (!region) requireKey(`${cloud}:region`, "(where the stack's resources live)");
  const gcpProject = raw.values["gcp:project"];
  if (cloud === "gcp" && !gcpProject) requireKey("gcp:project", "for GCP stacks (the project id)");
  if (cloud === "gcp" && !c.billingAccount) {
    requireKey(
      `${NS}:billingAccount`,
      "for GCP stacks (the billing account the budget with 50/80/100 % alerts is created on, XXXXXX-XXXXXX-XXXXXX)",
    );
  }
  // Alarms and the 50/80/100 % budget alerts must reach someone. GCP budgets mail at most five
  // channels; AWS Budgets at most ten addresses per notification.
  const maxEmails = cloud === "gcp" ? 5 : 10;
  if ((c.alertEmails ?? []).length === 0) {
    requireKey(
      `${NS}:alertEmails`,
      `(1 to ${maxEmails} addresses that alarms and the 50/80/100 % budget alerts notify), e.g. with --path 'agent:alertEmails[0]' oncall@your-company.com`,
    );
  } else if (c.alertEmails!.length > maxEmails) {
    problems.push(
      `${NS}:alertEmails has ${c.alertEmails!.length} addresses: give at most ${maxEmails} (${cloud === "gcp" ? "a GCP budget mails at most five channels" : "AWS Budgets notifies at most ten addresses"}; use a group address)`,
    );
  }
  const s = c.scaling ?? {};
  if (c.target === "lambda" && c.scaling) {
    problems.push(
      `${NS}:scaling does not apply to the lambda target (it scales per request): remove it and bound concurrency with ${NS}:lambda.reservedConcurrency`,
    );
  }
  if (s.min !== undefined && s.max !== undefined && s.min > s.max) {
    problems.push(`${NS}:scaling.min (${s.min}) must not exceed ${NS}:scaling.max (${s.max})`);
  }
  if (c.environment === "prod" && s.min !== undefined && s.min < 2 && c.target !== "lambda") {
    problems.push(
      `${NS}:scaling.min must be at least 2 in prod (got ${s.min}): one replica is a single point of failure`,
    );
  }
  // Prod behind our own load balancer serves HTTPS only: API keys must not cross the internet
  // in clear text. Cloud Run and Lambda URLs are HTTPS already.
  if (c.environment === "prod" && (c.target === "eks" || c.target === "vmgroup") && !c.domain) {
    requireKey(
      `${NS}:domain`,
      "in prod for the eks and vmgroup targets (HTTPS on the load balancer)",
    );
  }
  if (c.domain && cloud === "aws" && !c.certificateArn && !c.dnsZone) {
    requireKey(
      `${NS}:dnsZone`,
      `with ${NS}:domain on AWS (the Route 53 hosted zone of ${c.domain}: a DNS-validated certificate and the alias record are created in it), unless ${NS}:certificateArn names an issued ACM certificate`,
    );
  }
  if (c.dnsZone && !c.domain)
    problems.push(`${NS}:dnsZone is set without ${NS}:domain: set both or neither`);
  if (c.target === "lambda" && c.domain) {
    problems.push(
      `${NS}:domain is not supported for the lambda target: its Function URL has no custom domain (put CloudFront in front of it); remove ${NS}:domain`,
    );
  }
  if (c.promoteFrom && (c.imageTag || c.lambdaBundlePath)) {
    problems.push(
      `${NS}:promoteFrom builds nothing: remove ${NS}:imageTag / ${NS}:lambdaBundlePath (the artifact comes from ${c.promoteFrom})`,
    );
  }
  if (c.certificateArn && !c.domain)
    problems.push(`${NS}:certificateArn is set without ${NS}:domain: set both or neither`);
  const { release, rolloutSteps } = releaseSettings(c, cloud, problems);
  const upstream = upstreamSettings(c, cloud, region, problems, requireKey);
  if (c.target === "eks") {
    const e = c.eks ?? {};
    if (e.cluster === "existing" && !c.kubeconfig) {
      requireKey(`${NS}:kubeconfig`, `when ${NS}:eks.cluster is "existing"`, true);
    }
    if (e.cluster === "existing" && (!e.oidcProviderArn || !e.oidcProviderUrl)) {
      problems.push(
        `${NS}:eks.oidcProviderArn and ${NS}:eks.oidcProviderUrl are required when ${NS}:eks.cluster is "existing" (IAM roles for service accounts)`,
      );
    }
    if (e.nodeMin !== undefined && e.nodeMax !== undefined && e.nodeMin > e.nodeMax) {
      problems.push(
        `${NS}:eks.nodeMin (${e.nodeMin}) must not exceed ${NS}:eks.nodeMax (${e.nodeMax})`,
      );
    }
    if (e.cluster !== "existing") {
      const version = e.kubernetesVersion ?? DEFAULT_EKS_VERSION;
      const problem = eksVersionProblem(
        version,
        options.today ?? utcToday(),
        e.extendedSupport ?? false,
      );
      if (problem) problems.push(problem);
      // Nothing here installs the AWS Load Balancer Controller, and an Ingress of class alb gets
      // no address without it (https://docs.aws.amazon.com/eks/latest/userguide/aws-load-balancer-controller.html).
      if (e.exposure === "alb") {
        problems.push(
          `${NS}:eks.exposure "alb" needs the AWS Load Balancer Controller, which a cluster created here does not run: use "nlb" (TLS on the NLB with ${NS}:domain), or deploy onto an existing cluster that runs the controller (${NS}:eks.cluster: existing)`,
        );
      }
      if (
        c.environment === "prod" &&
        (e.publicEndpoint ?? true) &&
        (e.publicEndpointCidrs ?? []).length === 0
      ) {
        requireKey(
          `${NS}:eks.publicEndpointCidrs`,
          `in prod while the cluster's public endpoint is on (the ranges that run pulumi: a self-hosted runner's egress, your VPN), or set ${NS}:eks.publicEndpoint to false and deploy from inside the VPC`,
        );
      }
      if (!e.viewerPrincipalArns?.length) {
        requireKey(
          `${NS}:eks.viewerPrincipalArns`,
          "for a created cluster (the IAM role the preview and drift workflows run as, given read access through an EKS access entry; only the cluster's creator gets one otherwise), e.g. '[\"arn:aws:iam::<account>:role/<preview-role>\"]'",
        );
      }
      if (e.publicEndpoint === false && e.publicEndpointCidrs?.length) {
        problems.push(
          `${NS}:eks.publicEndpointCidrs is set while ${NS}:eks.publicEndpoint is false: remove one`,
        );
      }
    }
  } else if (c.kubeconfig) {
    problems.push(`${NS}:kubeconfig is only used when ${NS}:target is eks: remove it`);
  }
  if (c.target === "vmgroup") {
    const imageId = c.vmgroup?.imageId;
    if (cloud === "aws" && !imageId) {
      requireKey(
        `${NS}:vmgroup.imageId`,
        "on AWS (the Amazon Linux 2023 AMI, pinned so an AMI release is not drift; the README's `aws ssm get-parameter` command prints the current one)",
      );
    } else if (imageId && (cloud === "aws") !== imageId.startsWith("ami-")) {
      problems.push(
        `${NS}:vmgroup.imageId "${imageId}" is not a${cloud === "aws" ? "n AMI id (ami-...)" : " GCP image (projects/cos-cloud/global/images/...)"}`,
      );
    }
  }
  if (
    c.target === "lambda" &&
    c.lambda?.provisionedConcurrency &&
    c.lambda.reservedConcurrency !== undefined &&
    c.lambda.provisionedConcurrency > c.lambda.reservedConcurrency
  ) {
    problems.push(
      `${NS}:lambda.provisionedConcurrency must not exceed ${NS}:lambda.reservedConcurrency`,
    );
  }
  if (problems.length) throw new StackConfigError(problems, missing);

  const base: Base = {
    stack: raw.stack,
    environment: c.environment,
    region: region!,
    owner: c.owner,
    costCenter: c.costCenter,
    anthropicApiKey: c.anthropicApiKey === undefined ? undefined : pulumi.secret(c.anthropicApiKey),
    upstream,
    alertEmails: c.alertEmails ?? [],
    monthlyBudgetUsd: c.monthlyBudgetUsd,
    domain: c.domain,
    certificateArn: c.certificateArn,
    dnsZone: c.dnsZone,
    promoteFrom: c.promoteFrom,
    release,
    rolloutSteps,
    promotionReaders: c.promotionReaders ?? [],
    scaling: s,
    appBudgets: c.appBudgets ?? {},
    logLevel: c.logLevel ?? "info",
    imageTag: c.imageTag,
    lambdaBundlePath: c.lambdaBundlePath,
  };
  const aws = (): AwsBase => ({ ...base, cloud: "aws" });
  const gcp = (): GcpBase => ({
    ...base,
    cloud: "gcp",
    gcpProject: gcpProject!,
    billingAccount: c.billingAccount!,
  });
  switch (key) {
    case "lambda":
      return { ...aws(), key, target: "lambda", lambda: c.lambda ?? {} };
    case "cloudrun":
      return { ...gcp(), key, target: "cloudrun", cloudrun: c.cloudrun ?? {} };
    case "eks": {
      const e = c.eks ?? {};
      return {
        ...aws(),
        key,
        target: "eks",
        eks: e,
        existingCluster:
          e.cluster === "existing"
            ? {
                kubeconfig: pulumi.secret(c.kubeconfig!),
                oidcProviderArn: e.oidcProviderArn!,
                oidcProviderUrl: e.oidcProviderUrl!,
              }
            : undefined,
      };
    }
    case "vmgroup-aws":
      return { ...aws(), key, target: "vmgroup", vmgroup: c.vmgroup ?? {} };
    case "vmgroup-gcp":
      return { ...gcp(), key, target: "vmgroup", vmgroup: c.vmgroup ?? {} };
  }
}

/** The target key of a target and cloud, or undefined when the cloud does not fit the target. */
function targetKeyOf(kind: TargetKind, cloud: unknown): TargetKey | undefined {
  const keys = (Object.keys(TARGETS) as TargetKey[]).filter((k) => TARGETS[k].kind === kind);
  if (keys.length === 1 && (cloud === undefined || cloud === TARGETS[keys[0]!].cloud))
    return keys[0];
  return keys.find((k) => TARGETS[k].cloud === cloud);
}

/** Read the running stack's configuration (pulumi up, preview, or the mock runtime). */
export function loadStackConfig(): StackConfig {
  let secretKeys: string[] = [];
  try {
    secretKeys = JSON.parse(process.env.PULUMI_CONFIG_SECRET_KEYS ?? "[]") as string[];
  } catch {
    secretKeys = [];
  }
  return parseStackConfig({
    stack: pulumi.getStack(),
    values: pulumi.runtime.allConfig(),
    secretKeys,
  });
}
