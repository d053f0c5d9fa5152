/**
 * Application secrets (the Anthropic API key) and the least-privilege read policy that targets
 * attach to their compute role.
 */
import * as pulumi from "@pulumi/pulumi";
import type { SecretRef } from "../contracts";
import { StoredSecret } from "./stored-secret";

export interface SecretsArgs {
  /**
   * The Anthropic API key, normally `config.requireSecret(...)`. Wrapped in `pulumi.secret`
   * whatever it arrives as. Omit it to create the secret empty and set the value out of band,
   * which keeps the key out of Pulumi state altogether.
   * @default no value (set it with `aws secretsmanager put-secret-value`)
   */
  anthropicApiKey?: pulumi.Input<string>;
  /**
   * Customer-managed KMS key for the secrets.
   * @default the AWS-managed `aws/secretsmanager` key
   */
  kmsKeyArn?: pulumi.Input<string>;
  /** @default 30 */
  recoveryWindowDays?: number;
  /** Pulumi `protect`. @default false */
  protect?: boolean;
}

/** An IAM policy document (the subset this project writes). */
export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: Array<{
    Sid: string;
    Effect: "Allow" | "Deny";
    Action: string[];
    Resource: string[];
    Condition?: Record<string, Record<string, string | string[]>>;
  }>;
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[a-f0-9-]+$/;

/**
 * The policy that lets a runtime identity read exactly the given secrets, and decrypt them with
 * the given customer-managed keys only when Secrets Manager asks (`kms:ViaService`). Pure: tests
 * and the policy pack call it with plain strings. Throws on wildcards or malformed ARNs, since a
 * typo here silently widens or breaks access.
 */
export function secretReadPolicyDocument(
  secretArns: string[],
  kmsKeyArns: string[] = [],
): PolicyDocument {
  if (secretArns.length === 0) {
    throw new Error(
      "secretReadPolicyDocument: no secret ARNs given; pass the SecretRef ids the target reads.",
    );
  }
  const regions = new Set<string>();
  for (const arn of secretArns) {
    const m = SECRET_ARN.exec(arn);
    if (!m)
      throw new Error(
        `"${arn}" is not a Secrets Manager secret ARN (no wildcards): pass SecretRef.id.`,
      );
    regions.add(m[1]!);
  }
  for (const arn of kmsKeyArns) {
    if (!KMS_KEY_ARN.test(arn))
      throw new Error(`"${arn}" is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>).`);
  }
  const doc: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadAppSecrets",
        Effect: "Allow",
        Action: ["secretsmanager:GetSecretValue"],
        Resource: [...new Set(secretArns)].sort(),
      },
    ],
  };
  if (kmsKeyArns.length > 0) {
    doc.Statement.push({
      Sid: "DecryptAppSecrets",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: [...new Set(kmsKeyArns)].sort(),
      Condition: {
        StringEquals: {
          "kms:ViaService": [...regions].sort().map((r) => `secretsmanager.${r}.amazonaws.com`),
        },
      },
    });
  }
  return doc;
}

/** `secretReadPolicyDocument` over Outputs: the JSON a target puts in an `aws.iam.RolePolicy`. */
export function secretReadPolicy(
  secrets: Array<SecretRef<"aws"> | pulumi.Input<string>>,
  kmsKeyArns: pulumi.Input<string>[] = [],
): pulumi.Output<string> {
  const arns = secrets.map((s) => (typeof s === "object" && s !== null && "store" in s ? s.id : s));
  return pulumi
    .all([pulumi.all(arns), pulumi.all(kmsKeyArns)])
    .apply(([a, k]) => JSON.stringify(secretReadPolicyDocument(a, k)));
}

/**
 * The application's own secrets. One Secrets Manager secret: about $0.40/month.
 */
export class Secrets extends pulumi.ComponentResource {
  readonly anthropicKey: StoredSecret;
  readonly anthropicKeyRef: SecretRef<"aws">;
  /** Key to grant `kms:Decrypt` on alongside the secrets, when a CMK is used. */
  readonly kmsKeyArn?: pulumi.Input<string>;

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Secrets", name, {}, opts);
    if (typeof args.anthropicApiKey === "string" && args.anthropicApiKey.trim() === "") {
      throw new pulumi.ResourceError(
        "anthropicApiKey is an empty string: set the stack secret (pulumi config set --secret anthropicApiKey ...) or omit it.",
        this,
      );
    }
    this.kmsKeyArn = args.kmsKeyArn;
    this.anthropicKey = new StoredSecret(
      `${name}-anthropic-key`,
      {
        description: "Anthropic API key read by the agent service at start-up",
        value: args.anthropicApiKey,
        kmsKeyArn: args.kmsKeyArn,
        recoveryWindowDays: args.recoveryWindowDays,
        protect: args.protect,
      },
      { parent: this },
    );
    this.anthropicKeyRef = this.anthropicKey.ref;
    this.registerOutputs({ anthropicKeyArn: this.anthropicKeyRef.id });
  }
}
