import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { SecretRef } from "../contracts";
import { checkAutonamedName, checkProjectId, checkRegion, joinProblems } from "./naming";

/** Where Secret Manager keeps copies of a secret. */
export type SecretReplicationPolicy =
  | { kind: "automatic" }
  /** Pinned to these regions: keeps the data in the region the stack runs in. */
  | { kind: "user-managed"; locations: string[] };

/** The role that lets an identity read secret payloads, and nothing else. */
export const SECRET_ACCESSOR_ROLE = "roles/secretmanager.secretAccessor";

/** Secret Manager's representation of a replication policy. */
export function secretReplication(
  policy: SecretReplicationPolicy,
): gcp.types.input.secretmanager.SecretReplication {
  return policy.kind === "automatic"
    ? { auto: {} }
    : { userManaged: { replicas: policy.locations.map((location) => ({ location })) } };
}

export function checkReplication(policy: SecretReplicationPolicy): string | undefined {
  if (policy.kind === "automatic") return undefined;
  if (policy.locations.length === 0) {
    return 'user-managed secret replication needs at least one location, e.g. { kind: "user-managed", locations: ["us-central1"] }.';
  }
  const bad = policy.locations.map(checkRegion).find((p) => p !== undefined);
  if (bad) return `secret replication: ${bad}`;
  if (new Set(policy.locations).size !== policy.locations.length) {
    return `secret replication lists a location twice (${policy.locations.join(", ")}): list each region once.`;
  }
  return undefined;
}

/** A plain (non-Output) empty string is a configuration mistake we can report before deploying. */
function checkSecretValue(label: string, value: pulumi.Input<string>): string | undefined {
  return typeof value === "string" && value.trim() === ""
    ? `${label} is empty: set it (as a secret config value) before deploying.`
    : undefined;
}

export interface GcpSecretArgs {
  project: string;
  /** The payload. Stored as a Pulumi secret whatever the caller passes. */
  value: pulumi.Input<string>;
  replication: SecretReplicationPolicy;
  /** @default {} */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * One Secret Manager secret with one version holding `value`.
 *
 * Cost: $0.06 per active version per month plus $0.03 per 10,000 reads; pennies for this stack.
 */
export class GcpSecret extends pulumi.ComponentResource {
  public readonly ref: SecretRef<"gcp">;
  public readonly secret: gcp.secretmanager.Secret;
  public readonly version: gcp.secretmanager.SecretVersion;

  constructor(name: string, args: GcpSecretArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Secret", name, {}, opts);
    const problem = joinProblems(`GcpSecret "${name}"`, [
      checkAutonamedName(`${name}-secret`, 255),
      checkProjectId(args.project),
      checkReplication(args.replication),
      checkSecretValue("value", args.value),
    ]);
    if (problem) throw new pulumi.ResourceError(problem, this);

    this.secret = new gcp.secretmanager.Secret(
      `${name}-secret`,
      {
        project: args.project,
        replication: secretReplication(args.replication),
        labels: args.labels,
      },
      { parent: this },
    );
    this.version = new gcp.secretmanager.SecretVersion(
      `${name}-version`,
      { secret: this.secret.id, secretData: pulumi.secret(args.value) },
      { parent: this, additionalSecretOutputs: ["secretData"] },
    );
    this.ref = {
      store: "gcp-secretmanager",
      id: this.secret.id,
      name: this.secret.secretId,
      // Targets read "latest" so a rotated value is picked up without redeploying the target.
      version: "latest",
    };
    this.registerOutputs({ secretId: this.secret.id });
  }
}

export interface GcpSecretsArgs {
  project: string;
  region: string;
  /**
   * The Anthropic API key. Pass it as a Pulumi secret (`config.requireSecret`).
   * @default none: the service calls Claude on Vertex AI with its service account
   */
  anthropicApiKey?: pulumi.Input<string>;
  /**
   * Replication for every secret of the stack.
   * @default { kind: "user-managed", locations: [region] }
   */
  replication?: SecretReplicationPolicy;
  /** @default {} */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** Replication the stack uses unless told otherwise: the stack's own region only. */
export function defaultReplication(
  region: string,
  policy?: SecretReplicationPolicy,
): SecretReplicationPolicy {
  return policy ?? { kind: "user-managed", locations: [region] };
}

/**
 * The stack's secrets that come from outside (the Anthropic API key). Generated credentials
 * (Redis AUTH, the database password) are created by the store that owns them with
 * `GcpSecret`, using this component's `replication` so every secret lives in the same places.
 *
 * Cost: about $0.06/month per secret version in us-central1, plus reads.
 */
export class GcpSecrets extends pulumi.ComponentResource {
  public readonly anthropicKey?: GcpSecret;
  public readonly replication: SecretReplicationPolicy;

  constructor(name: string, args: GcpSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Secrets", name, {}, opts);
    const replication = defaultReplication(args.region, args.replication);
    const problem = joinProblems(`GcpSecrets "${name}"`, [
      checkRegion(args.region),
      checkReplication(replication),
      args.anthropicApiKey === undefined
        ? undefined
        : checkSecretValue("anthropicApiKey", args.anthropicApiKey),
    ]);
    if (problem) throw new pulumi.ResourceError(problem, this);
    this.replication = replication;

    this.anthropicKey =
      args.anthropicApiKey === undefined
        ? undefined
        : new GcpSecret(
            `${name}-anthropic-key`,
            {
              project: args.project,
              value: args.anthropicApiKey,
              replication,
              labels: args.labels,
            },
            { parent: this },
          );
    this.registerOutputs({ anthropicKeySecretId: this.anthropicKey?.ref.id });
  }
}

export interface SecretAccessGrantArgs {
  /** The runtime identity of the compute (created by the target). */
  serviceAccountEmail: pulumi.Input<string>;
  /**
   * Exactly the secrets to grant. Prefer a record: its keys name the IAM bindings, so reordering
   * never replaces (and briefly revokes) a binding. Array entries are keyed by position.
   */
  secrets: Record<string, SecretRef<"gcp">> | SecretRef<"gcp">[];
}

export function checkServiceAccountEmail(email: pulumi.Input<string>): string | undefined {
  if (typeof email !== "string") return undefined; // known only at deploy time
  return /^[a-z0-9][-a-z0-9.]*@[-a-z0-9.]+\.gserviceaccount\.com$/.test(email)
    ? undefined
    : `serviceAccountEmail "${email}" is not a service account (expected "<name>@<project>.iam.gserviceaccount.com").`;
}

/** Stable binding keys for the secrets to grant. */
export function grantKeys(
  secrets: Record<string, SecretRef<"gcp">> | SecretRef<"gcp">[],
): [string, SecretRef<"gcp">][] {
  return Array.isArray(secrets) ? secrets.map((s, i) => [String(i), s]) : Object.entries(secrets);
}

/**
 * `roles/secretmanager.secretAccessor` for one service account on exactly the given secrets:
 * per-secret bindings, never a project-wide grant. Targets create this once their service
 * account exists.
 */
export class SecretAccessGrant extends pulumi.ComponentResource {
  public readonly members: gcp.secretmanager.SecretIamMember[];

  constructor(name: string, args: SecretAccessGrantArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:SecretAccessGrant", name, {}, opts);
    const entries = grantKeys(args.secrets);
    const problem = joinProblems(`SecretAccessGrant "${name}"`, [
      checkServiceAccountEmail(args.serviceAccountEmail),
      entries.length === 0 ? "no secrets given: pass the data plane's secrets." : undefined,
      ...entries.map(([key]) =>
        /^[a-z0-9][-a-z0-9]*$/.test(key)
          ? undefined
          : `secret key "${key}" must be lowercase letters, digits, hyphens.`,
      ),
    ]);
    if (problem) throw new pulumi.ResourceError(problem, this);

    const member = pulumi.interpolate`serviceAccount:${args.serviceAccountEmail}`;
    this.members = entries.map(
      ([key, ref]) =>
        new gcp.secretmanager.SecretIamMember(
          `${name}-${key}`,
          { secretId: ref.id, role: SECRET_ACCESSOR_ROLE, member },
          { parent: this },
        ),
    );
    this.registerOutputs({ member });
  }
}
