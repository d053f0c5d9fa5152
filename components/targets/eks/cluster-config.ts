/**
 * EKS cluster settings as plain data and pure functions: per-environment sizing, the add-on plan,
 * the AMI type, the exec-auth kubeconfig. `EksCluster` (../eks-cluster.ts) turns them into
 * resources; tests call them directly.
 */
import type { Environment } from "../../contracts";
import { environmentProfile } from "../../environment";

export type ClusterLogType = "api" | "audit" | "authenticator" | "controllerManager" | "scheduler";
export const CLUSTER_LOG_TYPES: readonly ClusterLogType[] = [
  "api",
  "audit",
  "authenticator",
  "controllerManager",
  "scheduler",
];

export type EksAddonName =
  "vpc-cni" | "kube-proxy" | "coredns" | "metrics-server" | "amazon-cloudwatch-observability";

export interface EksNodeGroupSizing {
  /** One architecture only: the AMI type follows it (Graviton `*g` families run arm64). */
  instanceTypes: string[];
  minSize: number;
  maxSize: number;
  desiredSize: number;
  /** SPOT is ~60-70 % cheaper and can be reclaimed with two minutes' notice. */
  capacityType: "ON_DEMAND" | "SPOT";
  /** Root volume (gp3, encrypted). */
  diskSizeGb: number;
}

export interface EksClusterSizing {
  environment: Environment;
  nodeGroup: EksNodeGroupSizing;
  /** Control-plane log types sent to CloudWatch Logs (billed per GB ingested). */
  logTypes: ClusterLogType[];
  logRetentionDays: number;
  /**
   * The `amazon-cloudwatch-observability` add-on (Container Insights): pod and node metrics in
   * CloudWatch, which the EKS target's restart alarm needs. Billed per metric observation.
   */
  containerInsights: boolean;
  /** EKS deletion protection on the cluster. */
  deletionProtection: boolean;
}

/** Cluster settings for an environment: the one place EKS differs between dev and prod. */
export function eksClusterSizing(environment: Environment): EksClusterSizing {
  const profile = environmentProfile(environment);
  return {
    environment,
    nodeGroup: {
      ...profile.eksNodes,
      instanceTypes: [...profile.eksNodes.instanceTypes],
    },
    // The audit log is what answers "who changed this"; prod keeps everything.
    logTypes: profile.protectData ? [...CLUSTER_LOG_TYPES] : ["api", "audit", "authenticator"],
    logRetentionDays: profile.logRetentionDays,
    containerInsights: profile.protectData,
    deletionProtection: profile.protectData,
  };
}

/** Graviton families (`t4g`, `m7g`, `c7gn`, `r8g`...) have a `g` right after the generation digit. */
function isArm(instanceType: string): boolean {
  return /^[a-z]+\d+g[a-z-]*\./.test(instanceType);
}

/** The Amazon Linux 2023 AMI type for instance types of one architecture. */
export function amiTypeFor(
  instanceTypes: string[],
): "AL2023_ARM_64_STANDARD" | "AL2023_x86_64_STANDARD" {
  const arm = instanceTypes.filter(isArm);
  if (arm.length > 0 && arm.length < instanceTypes.length) {
    throw new Error(
      `instanceTypes ${instanceTypes.join(", ")} mix arm64 (${arm.join(", ")}) and x86_64: one node group runs one AMI; use one architecture.`,
    );
  }
  return arm.length > 0 ? "AL2023_ARM_64_STANDARD" : "AL2023_x86_64_STANDARD";
}

/** An add-on, and whether it must run before nodes join (networking) or needs nodes to become ACTIVE. */
export interface AddonPlan {
  name: EksAddonName;
  phase: "before-nodes" | "after-nodes";
  /** JSON of the add-on's configuration schema. */
  configurationValues?: string;
  /** An IRSA role for the add-on's service account, with these AWS managed policies. */
  irsa?: { namespace: string; serviceAccount: string; managedPolicies: string[] };
}

/**
 * The add-ons, in order. vpc-cni and kube-proxy go first: with `bootstrapSelfManagedAddons: false`
 * nodes stay NotReady until a CNI exists. coredns and metrics-server need nodes to report ACTIVE.
 * metrics-server (an EKS community add-on) feeds the HPA's CPU and memory metrics.
 */
export function eksAddonPlan(sizing: Pick<EksClusterSizing, "containerInsights">): AddonPlan[] {
  const plan: AddonPlan[] = [
    // The VPC CNI enforces NetworkPolicy only when asked to (its node agent is off by default).
    {
      name: "vpc-cni",
      phase: "before-nodes",
      configurationValues: JSON.stringify({ enableNetworkPolicy: "true" }),
    },
    { name: "kube-proxy", phase: "before-nodes" },
    { name: "coredns", phase: "after-nodes" },
    { name: "metrics-server", phase: "after-nodes" },
  ];
  if (sizing.containerInsights) {
    plan.push({
      name: "amazon-cloudwatch-observability",
      phase: "after-nodes",
      irsa: {
        namespace: "amazon-cloudwatch",
        serviceAccount: "cloudwatch-agent",
        managedPolicies: ["CloudWatchAgentServerPolicy"],
      },
    });
  }
  return plan;
}

/** The three policies every managed-node-group node role needs. */
export const NODE_ROLE_POLICIES = [
  "AmazonEKSWorkerNodePolicy",
  "AmazonEKS_CNI_Policy",
  "AmazonEC2ContainerRegistryReadOnly",
] as const;

/**
 * Thumbprint of the root CA that signs EKS OIDC issuers. IAM validates EKS issuers against its own
 * trusted CA library and ignores the value, but setting it keeps the provider's inputs explicit and
 * free of a perpetual diff.
 */
export const EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

export interface KubeconfigParams {
  clusterName: string;
  endpoint: string;
  certificateAuthorityData: string;
  region: string;
  /** Assume this role for `aws eks get-token` (CI deploy roles). */
  roleArn?: string;
}

/**
 * A kubeconfig that holds no credential: `aws eks get-token` mints a 15-minute token from the
 * caller's AWS identity each time, so whoever runs Pulumi needs an EKS access entry.
 */
export function kubeconfigFor(p: KubeconfigParams): Record<string, unknown> {
  const args = [
    "eks",
    "get-token",
    "--cluster-name",
    p.clusterName,
    "--region",
    p.region,
    "--output",
    "json",
  ];
  if (p.roleArn) args.push("--role-arn", p.roleArn);
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: p.clusterName,
        cluster: { server: p.endpoint, "certificate-authority-data": p.certificateAuthorityData },
      },
    ],
    contexts: [{ name: p.clusterName, context: { cluster: p.clusterName, user: p.clusterName } }],
    "current-context": p.clusterName,
    users: [
      {
        name: p.clusterName,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: "aws",
            args,
            interactiveMode: "Never",
          },
        },
      },
    ],
    preferences: {},
  };
}
