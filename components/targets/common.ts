/**
 * What the deployment targets share: the argument checks that read the same on every target, and
 * the identities, grants and alarms that two targets on one cloud create alike. Each target keeps
 * its own wording wherever its reason differs; only what is really the same lives here.
 */
import { createHash } from "node:crypto";
import * as aws from "@pulumi/aws";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { secretReadPolicy } from "../aws/secrets";
import type { Artifact, DataPlaneOutputs, Environment, SecretRef } from "../contracts";
import type { EnvironmentProfile } from "../environment";
import { ServiceAlerts, type ServiceAlertsArgs } from "../gcp/monitoring";
import { SecretAccessGrant } from "../gcp/secrets";
import { secretBindings, serviceEnv } from "../runtime-env";
import {
  CONTAINER_PORT,
  type ContainerHost,
  MIN_STOP_TIMEOUT_SECONDS,
  guardedCloudConfig,
} from "./cloud-init";
import { targetScaling, type VmScaling } from "./scaling";

/** How every target shapes the app's environment. */
export interface ServiceEnvArgs {
  /** @default "info" */
  logLevel?: string;
  /** Extra non-secret environment variables (secret-looking names are rejected). @default {} */
  extraEnv?: Record<string, pulumi.Input<string>>;
}

// ---------------------------------------------------------------------------------------------
// Argument checks: each returns what to change, or nothing when the argument is fine.

type Cloud = DataPlaneOutputs["cloud"];
const CLOUD_NAME: Record<Cloud, string> = { aws: "AWS", gcp: "GCP" };
const STORE_NAME: Record<SecretRef["store"], string> = {
  "aws-secretsmanager": "AWS Secrets Manager",
  "gcp-secretmanager": "GCP Secret Manager",
};
const ARTIFACT_HINT: Record<Artifact["kind"], string> = {
  image: "pinned by digest",
  "lambda-zip": "dist/lambda.zip",
};

/** Public host names such as `agent.example.com`. */
export const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
/** `<repository>@sha256:<64 hex>`: a tag could move between deploys. */
const DIGEST_REF = /^[^\s@]+@sha256:[a-f0-9]{64}$/;

/** The problems among `checks`, in order: a check gives a message, a list of them, or nothing. */
export function problemsOf(...checks: Array<string | string[] | undefined>): string[] {
  return checks.flatMap((c) => (c === undefined ? [] : c));
}

/**
 * The data plane must be the target's cloud; on AWS its private subnets also need a NAT route
 * (`natConsequence` says what would break without one).
 */
export function dataPlaneProblems(
  dp: DataPlaneOutputs,
  target: { cloud: Cloud; name: string; alternative: string; natConsequence?: string },
): string[] {
  const { cloud } = target;
  if (dp.cloud !== cloud || dp.network.cloud !== cloud) {
    const name = CLOUD_NAME[cloud];
    return [
      `dataPlane is for ${dp.cloud === cloud ? dp.network.cloud : dp.cloud}: ${target.name} runs on ${name}; pass the ${name} data plane's outputs (or use ${target.alternative}).`,
    ];
  }
  if (target.natConsequence !== undefined && dp.network.cloud === "aws" && !dp.network.hasNat) {
    return [
      `the data plane's private subnets have no NAT route: ${target.natConsequence}; set the network's natGateways to single or per-az.`,
    ];
  }
  return [];
}

/** The artifact must be of the kind the target runs (`runs` says why, e.g. "a VM group runs a container"). */
export function artifactKindProblem(
  artifact: Artifact,
  kind: Artifact["kind"],
  runs: string,
): string | undefined {
  return artifact.kind === kind
    ? undefined
    : `artifact is of kind "${artifact.kind}": ${runs}; pass the "${kind}" artifact (${ARTIFACT_HINT[kind]}).`;
}

export function environmentProblem(
  dp: DataPlaneOutputs,
  profile: EnvironmentProfile,
): string | undefined {
  return dp.environment === profile.environment
    ? undefined
    : `dataPlane is for ${dp.environment} but profile is for ${profile.environment}: pass the same environment's profile.`;
}

/**
 * The data plane's secrets must exist (`why.empty`) and, when `why.foreign` is given, all live in
 * `store`, the one store the target's identity can be granted.
 */
export function secretStoreProblems(
  dp: DataPlaneOutputs,
  store: SecretRef["store"],
  why: { empty: string; foreign?: string },
): string[] {
  return problemsOf(
    dp.secrets.length === 0 ? `dataPlane.secrets is empty: ${why.empty}.` : undefined,
    why.foreign !== undefined && dp.secrets.some((s) => s.store !== store)
      ? `dataPlane.secrets holds secrets outside ${STORE_NAME[store]}: ${why.foreign}.`
      : undefined,
  );
}

export function wholeNumberProblem(
  field: string,
  value: number,
  min: number,
  max: number,
): string | undefined {
  return Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : `${field} ${value} must be a whole number from ${min} to ${max}.`;
}

/** A VM group's public host name. */
export function hostNameProblem(domain: string | undefined): string | undefined {
  return domain === undefined || DOMAIN.test(domain)
    ? undefined
    : `domain "${domain}" is not a lowercase host name such as "agent.example.com".`;
}

export function isPinnedByDigest(imageRef: string): boolean {
  return DIGEST_REF.test(imageRef);
}

/** Runs `fn`; what it throws becomes a problem (worded by `describe`) instead of escaping. */
export function attempt<T>(
  problems: string[],
  fn: () => T,
  describe: (message: string) => string = (m) => m,
): T | undefined {
  try {
    return fn();
  } catch (e) {
    problems.push(describe((e as Error).message));
    return undefined;
  }
}

/** A VM group's scaling: the environment's defaults under the args' overrides. */
export function resolveVmScaling(
  problems: string[],
  environment: Environment,
  args: { minInstances?: number; maxInstances?: number; targetCpuPercent?: number },
): VmScaling | undefined {
  return attempt(
    problems,
    () =>
      targetScaling(environment, {
        vm: {
          minInstances: args.minInstances,
          maxInstances: args.maxInstances,
          targetCpuPercent: args.targetCpuPercent,
        },
      }).vm,
  );
}

/** Throws every problem at once, as one ResourceError that names the component (`label`). */
export function failOnProblems(problems: string[], label: string, resource: pulumi.Resource): void {
  if (problems.length > 0)
    throw new pulumi.ResourceError(`${label}: ${problems.join(" ")}`, resource);
}

/** The resolved settings, or a ResourceError listing every problem. */
export function settingsOrFail<S>(
  resolved: { settings?: S; problems: string[] },
  label: string,
  resource: pulumi.Resource,
): S {
  if (!resolved.settings)
    throw new pulumi.ResourceError(`${label}: ${resolved.problems.join(" ")}`, resource);
  return resolved.settings;
}

/** `https://<domain>` when there is one, else plain HTTP to the load balancer (dev). */
export function serviceUrl(
  domain: string | undefined,
  host: pulumi.Input<string>,
): pulumi.Output<string> {
  return domain ? pulumi.output(`https://${domain}`) : pulumi.interpolate`http://${host}`;
}

/**
 * A VM group's user data: the container by digest on the service port, with the service's
 * environment (secret references, never values), stopped no faster than the app drains.
 * `hostEnv` is what the host adds (AWS_REGION on EC2); `extraEnv` may override it.
 */
export function serviceCloudConfig(
  host: pulumi.Input<ContainerHost>,
  imageRef: pulumi.Input<string>,
  dp: DataPlaneOutputs,
  args: ServiceEnvArgs,
  hostEnv: Record<string, pulumi.Input<string>> = {},
): pulumi.Output<string> {
  return guardedCloudConfig({
    host,
    imageRef,
    env: serviceEnv(dp, {
      port: CONTAINER_PORT,
      logLevel: args.logLevel,
      extra: { ...hostEnv, ...args.extraEnv },
    }),
    stopTimeoutSeconds: MIN_STOP_TIMEOUT_SECONDS,
  });
}

// ---------------------------------------------------------------------------------------------
// AWS: the role, its policies and its log group

/** A role that only the AWS service principal `service` may assume. */
export function createServiceRole(
  parent: pulumi.Resource,
  name: string,
  service: string,
  description: string,
): aws.iam.Role {
  return new aws.iam.Role(
    `${name}-role`,
    {
      description,
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: service }, Action: "sts:AssumeRole" }],
      }),
    },
    { parent },
  );
}

/**
 * The role's runtime policy (`-runtime`), and GetSecretValue on exactly the data plane's secret
 * ARNs (`-secrets`, no wildcard), with decrypt on their customer-managed keys.
 */
export function grantRuntimeAndSecrets(
  parent: pulumi.Resource,
  name: string,
  role: aws.iam.Role,
  runtimePolicy: pulumi.Input<string>,
  secrets: { refs: SecretRef[]; kmsKeyArns?: pulumi.Input<string>[] },
): aws.iam.RolePolicy[] {
  const runtime = new aws.iam.RolePolicy(
    `${name}-runtime`,
    { role: role.id, policy: runtimePolicy },
    { parent },
  );
  const read = new aws.iam.RolePolicy(
    `${name}-secrets`,
    { role: role.id, policy: secretReadPolicy(secrets.refs, secrets.kmsKeyArns ?? []) },
    { parent },
  );
  return [runtime, read];
}

/** Created by the component, not on first write, so retention is managed (the default is forever). */
export function createLogGroup(
  parent: pulumi.Resource,
  name: string,
  namePrefix: string,
  retentionInDays: number,
  retainOnDelete: boolean,
): aws.cloudwatch.LogGroup {
  return new aws.cloudwatch.LogGroup(
    `${name}-logs`,
    { namePrefix, retentionInDays },
    { parent, retainOnDelete },
  );
}

// ---------------------------------------------------------------------------------------------
// GCP: the service's own identity, its secret grants and its alerts

/**
 * The service account id: 6-30 characters, lowercase, starting with a letter. A short hash of
 * project, stack and component keeps two stacks sharing a project apart.
 */
export function serviceAccountId(componentName: string, project: string, stack: string): string {
  const base = componentName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^a-z]+/, "");
  const hash = createHash("sha256")
    .update(`${project}/${stack}/${componentName}`)
    .digest("hex")
    .slice(0, 6);
  const head = (base || "agent").slice(0, 30 - 1 - hash.length).replace(/-+$/, "");
  return `${head.length >= 1 ? head : "agent"}-${hash}`.padEnd(6, "0");
}

/**
 * Binding keys for the data plane's secrets: the variable a secret feeds when it is one of the
 * service's three, else its position. Stable keys mean reordering never re-creates (and briefly
 * revokes) a binding.
 */
export function secretGrantKeys(dp: DataPlaneOutputs): Record<string, SecretRef> {
  const named = new Map<SecretRef, string>(
    secretBindings(dp).map((b) => [b.secret, b.variable.toLowerCase().replace(/_/g, "-")]),
  );
  const keys: Record<string, SecretRef> = {};
  dp.secrets.forEach((ref, i) => {
    const key = named.get(ref) ?? `secret-${i}`;
    keys[keys[key] ? `${key}-${i}` : key] = ref;
  });
  return keys;
}

/** Its own identity (never the default compute account), so what it may do is exactly what is granted. */
export function createGcpServiceAccount(
  parent: pulumi.Resource,
  name: string,
  project: string,
  about: { displayName: string; description: string },
): gcp.serviceaccount.Account {
  return new gcp.serviceaccount.Account(
    `${name}-sa`,
    { project, accountId: serviceAccountId(name, project, pulumi.getStack()), ...about },
    { parent },
  );
}

/** secretAccessor on exactly the data plane's secrets, one binding per secret. */
export function grantGcpSecretAccess(
  parent: pulumi.Resource,
  name: string,
  serviceAccount: gcp.serviceaccount.Account,
  dp: DataPlaneOutputs,
): SecretAccessGrant {
  return new SecretAccessGrant(
    `${name}-secret-access`,
    { serviceAccountEmail: serviceAccount.email, secrets: secretGrantKeys(dp) },
    { parent },
  );
}

/** Alert policies always exist (incidents show in the console); they notify the data plane's channels. */
export function createGcpServiceAlerts(
  parent: pulumi.Resource,
  name: string,
  dp: DataPlaneOutputs,
  alerts: Omit<ServiceAlertsArgs, "notificationChannelIds">,
): ServiceAlerts {
  return new ServiceAlerts(
    `${name}-alerts`,
    { ...alerts, notificationChannelIds: dp.monitoring.notificationChannelIds ?? [] },
    { parent },
  );
}
