/**
 * The identity an AWS target's compute runs as: a role only its service may assume, the runtime
 * policy and read access to exactly the data plane's secrets, and the log group it writes to.
 */
import * as aws from "@pulumi/aws";
import type * as pulumi from "@pulumi/pulumi";
import { secretReadPolicy } from "./secrets";
import type { SecretRef } from "../contracts";

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
  secrets: { refs: SecretRef<"aws">[]; kmsKeyArns?: pulumi.Input<string>[] },
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
