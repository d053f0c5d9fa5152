/**
 * One Secrets Manager secret and (optionally) its current value, exposed as a cloud-neutral
 * `SecretRef`. Redis, Postgres and the Anthropic key all store their secrets through this, so
 * encryption, recovery window and protection are decided once.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { SecretRef } from "../contracts";

export interface StoredSecretArgs {
  /** Shown in the console; say who reads it. */
  description: string;
  /**
   * The secret value (a plain string, not JSON: the app reads it as-is). It is wrapped in
   * `pulumi.secret` here whatever it arrives as. Omit it to create only the secret and put the
   * value out of band (`aws secretsmanager put-secret-value`), which keeps it out of Pulumi state.
   * @default no value
   */
  value?: pulumi.Input<string>;
  /**
   * Customer-managed KMS key for the secret. Readers then also need `kms:Decrypt` on it.
   * @default the account's AWS-managed `aws/secretsmanager` key
   */
  kmsKeyArn?: pulumi.Input<string>;
  /**
   * Days a deleted secret stays recoverable: 0 (delete at once, so a dev stack can be re-created
   * under the same name) or 7-30.
   * @default 30
   */
  recoveryWindowDays?: number;
  /**
   * Pulumi `protect` on the secret and its value.
   * @default false
   */
  protect?: boolean;
}

/** Validates a recovery window; returns what to change, or undefined. */
export function checkRecoveryWindow(days: number): string | undefined {
  if (!Number.isInteger(days) || (days !== 0 && (days < 7 || days > 30))) {
    return `recoveryWindowDays is ${days}: use 0 (immediate deletion) or a whole number from 7 to 30.`;
  }
  return undefined;
}

/**
 * A Secrets Manager secret. Costs $0.40/month per secret plus $0.05 per 10,000 API calls.
 */
export class StoredSecret extends pulumi.ComponentResource {
  readonly secret: aws.secretsmanager.Secret;
  readonly version?: aws.secretsmanager.SecretVersion;
  /** What targets consume: the ARN, the name and the version stage. */
  readonly ref: SecretRef<"aws">;

  constructor(name: string, args: StoredSecretArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:StoredSecret", name, {}, opts);
    const recoveryWindowDays = args.recoveryWindowDays ?? 30;
    const problem = checkRecoveryWindow(recoveryWindowDays);
    if (problem) throw new pulumi.ResourceError(problem, this);

    const childOpts = { parent: this, protect: args.protect ?? false };
    this.secret = new aws.secretsmanager.Secret(
      `${name}-secret`,
      {
        description: args.description,
        kmsKeyId: args.kmsKeyArn,
        recoveryWindowInDays: recoveryWindowDays,
      },
      childOpts,
    );
    if (args.value !== undefined) {
      this.version = new aws.secretsmanager.SecretVersion(
        `${name}-value`,
        { secretId: this.secret.id, secretString: pulumi.secret(args.value) },
        childOpts,
      );
    }
    this.ref = {
      store: "aws-secretsmanager",
      id: this.secret.arn,
      name: this.secret.name,
      version: "AWSCURRENT",
    };
    this.registerOutputs({ arn: this.secret.arn, name: this.secret.name });
  }
}
