/**
 * The workload's own right to call Claude on its cloud (issue 16): Bedrock invoke on exactly the
 * configured models and inference profiles (components/upstream.ts), or Vertex AI's user role for
 * the service account. Created beside a target, on its role or service account.
 */
import * as aws from "@pulumi/aws";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { bedrockInvokePolicy, VERTEX_INVOKER_ROLE, type LlmUpstream } from "./upstream";

type Bedrock = Extract<LlmUpstream, { kind: "bedrock" }>;

export function grantBedrockInvoke(
  name: string,
  role: aws.iam.Role,
  upstream: Bedrock,
  region: string,
  parent: pulumi.Resource,
): aws.iam.RolePolicy {
  const account = aws.getCallerIdentityOutput({}, { parent }).accountId;
  return new aws.iam.RolePolicy(
    `${name}-bedrock`,
    {
      role: role.name,
      policy: account.apply((accountId) =>
        JSON.stringify(
          bedrockInvokePolicy({
            region,
            accountId,
            profile: upstream.profile,
            models: upstream.models,
          }),
        ),
      ),
    },
    { parent },
  );
}

export function grantVertexInvoke(
  name: string,
  project: string,
  serviceAccount: gcp.serviceaccount.Account,
  parent: pulumi.Resource,
  opts: pulumi.CustomResourceOptions = {},
): gcp.projects.IAMMember {
  return new gcp.projects.IAMMember(
    `${name}-vertex-user`,
    { project, role: VERTEX_INVOKER_ROLE, member: serviceAccount.member },
    { parent, ...opts },
  );
}
