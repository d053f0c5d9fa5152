/**
 * IAM documents for EKS: the trust policies of the cluster, node and service-account (IRSA)
 * roles. Pure functions over plain strings, so tests and the policy pack can check the exact
 * condition strings; components wrap them in `pulumi.all(...).apply(JSON.stringify)`.
 */

/** An IAM trust (assume-role) policy: the subset this project writes. */
export interface TrustPolicyDocument {
  Version: "2012-10-17";
  Statement: Array<{
    Sid: string;
    Effect: "Allow";
    Principal: { Service: string } | { Federated: string };
    Action: string | string[];
    Condition?: Record<string, Record<string, string>>;
  }>;
}

/** A trust policy of one statement. */
function trustPolicy(statement: TrustPolicyDocument["Statement"][number]): TrustPolicyDocument {
  return { Version: "2012-10-17", Statement: [statement] };
}

/** The audience the pod identity webhook (and our own projected token) requests. */
export const IRSA_AUDIENCE = "sts.amazonaws.com";

/**
 * The issuer as IAM condition keys spell it: no scheme, no trailing slash
 * (`oidc.eks.us-east-1.amazonaws.com/id/ABC`). Accepts the issuer URL or the bare host path.
 */
export function oidcIssuerHostPath(issuer: string): string {
  const host = issuer
    .trim()
    .replace(/^https:\/\//, "")
    .replace(/\/+$/, "");
  if (!/^[a-z0-9.-]+(\/[A-Za-z0-9._-]+)*$/.test(host)) {
    throw new Error(
      `"${issuer}" is not an OIDC issuer URL such as https://oidc.eks.us-east-1.amazonaws.com/id/ABC.`,
    );
  }
  return host;
}

/** Kubernetes names: namespaces and service accounts (RFC 1123 label). */
export function checkKubernetesName(field: string, value: string): string | undefined {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)
    ? undefined
    : `${field} "${value}" must be lowercase letters, digits and hyphens, start and end with a letter or digit, at most 63 characters.`;
}

/**
 * Trust for IAM Roles for Service Accounts: only the one service account of the one namespace,
 * and only tokens minted for STS (`aud`). `StringEquals`, never `StringLike`: a wildcard `sub`
 * would let any service account in the cluster assume the role.
 */
export function irsaTrustPolicy(
  oidcProviderArn: string,
  oidcIssuer: string,
  namespace: string,
  serviceAccount: string,
): TrustPolicyDocument {
  if (!/^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/.+$/.test(oidcProviderArn)) {
    throw new Error(
      `"${oidcProviderArn}" is not an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer>).`,
    );
  }
  for (const problem of [
    checkKubernetesName("namespace", namespace),
    checkKubernetesName("serviceAccount", serviceAccount),
  ]) {
    if (problem) throw new Error(problem);
  }
  const issuer = oidcIssuerHostPath(oidcIssuer);
  return trustPolicy({
    Sid: "ServiceAccountWebIdentity",
    Effect: "Allow",
    Principal: { Federated: oidcProviderArn },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: {
      StringEquals: {
        [`${issuer}:sub`]: `system:serviceaccount:${namespace}:${serviceAccount}`,
        [`${issuer}:aud`]: IRSA_AUDIENCE,
      },
    },
  });
}

/** Trust for an AWS service principal (`eks.amazonaws.com`, `ec2.amazonaws.com`). */
export function serviceTrustPolicy(service: string): TrustPolicyDocument {
  return trustPolicy({
    Sid: "ServiceAssumeRole",
    Effect: "Allow",
    Principal: { Service: service },
    Action: "sts:AssumeRole",
  });
}
